"""Evaluation: t quantiles, confidence intervals, tables and plots from real episodes."""

import csv
import math

import numpy as np
import pytest

from agents.evaluation import (
    EvaluationError,
    criteria,
    evaluate_policies,
    mean_ci,
    plot_bars,
    plot_learning_curves,
    plot_protocol_vs_snr,
    summarize,
    t_quantile,
    write_csv,
    write_markdown,
)
from tests.agents.conftest import SHORT


@pytest.mark.parametrize("df,expected", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (29, 2.0452),
                                         (120, 1.9799), (1e6, 1.9600)])
def test_t_quantile_matches_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)


def test_t_quantile_other_levels_and_symmetry():
    assert t_quantile(0.95, 10) == pytest.approx(1.8125, abs=1e-4)
    assert t_quantile(0.995, 5) == pytest.approx(4.0321, abs=1e-4)
    assert t_quantile(0.025, 9) == pytest.approx(-2.2622, abs=1e-4)
    assert t_quantile(0.5, 3) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="'p' must be in"):
        t_quantile(1.0, 3)


def test_mean_ci():
    m, h = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert m == 3.0 and h == pytest.approx(2.7764 * math.sqrt(2.5) / math.sqrt(5), rel=1e-4)
    assert math.isnan(mean_ci([1.0])[1])


@pytest.fixture(scope="module")
def results():
    return evaluate_policies(["random", "fixed:*", "oracle"], "MEG/SingleES-v1", [1000, 1001, 1002], SHORT)


def test_every_policy_meets_the_same_seeds(results):
    assert set(results) >= {"random", "oracle", "fixed:ciag", "fixed:full_ue"}
    for eps in results.values():
        assert [e.seed for e in eps] == [1000, 1001, 1002]
        assert all(len(e.protocols) == len(e.snr_db) == 4 for e in eps)
    # same seed, same world: the oracle's per-episode return is at least every fixed protocol's
    for k in range(3):
        best_fixed = max(v[k].metrics["return"] for n, v in results.items() if n.startswith("fixed:"))
        assert results["oracle"][k].metrics["return"] >= best_fixed - 1e-9


def test_tables(results, tmp_path):
    rows = summarize(results)
    text = write_markdown(rows, tmp_path / "t.md", title="x")
    assert "| policy | episodes | return |" in text and "| oracle | 3 |" in text and "±" in text
    write_csv(rows, tmp_path / "t.csv", results)
    with (tmp_path / "t.csv").open() as f:
        table = list(csv.DictReader(f))
    assert {r["policy"] for r in table} == set(results) and "return_ci" in table[0]
    with (tmp_path / "t_episodes.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3 * len(results)
    c = criteria(rows, "oracle")
    assert c["best_fixed"].startswith("fixed:") and c["of_oracle"] == pytest.approx(1.0)


def test_plots(results, tmp_path):
    rows = summarize(results)
    for path in (plot_bars(rows, tmp_path / "bars.png"), plot_protocol_vs_snr(results, tmp_path / "snr.png")):
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "evaluations.npz", timesteps=np.array([0, 100]), results=np.array([[-5.0, -4.0], [-2.0, -1.0]]))
    p = plot_learning_curves([run], tmp_path / "lc.png", {"random": -6.0})
    assert p.stat().st_size > 5000


def test_unknown_env_and_missing_model():
    with pytest.raises(EvaluationError, match="'env' must be one of"):
        evaluate_policies(["random"], "CartPole-v1", [0])
    with pytest.raises(EvaluationError, match="does not exist"):
        evaluate_policies(["runs/no_such_run"], "MEG/SingleES-v1", [0], SHORT)
    with pytest.raises(EvaluationError, match="policy must be one of"):
        evaluate_policies(["nope"], "MEG/SingleES-v1", [0], SHORT)
