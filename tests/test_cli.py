"""The meg-gym command line: table, demo, one-line errors."""

import json
import subprocess
import sys

import pytest

from meg_gym.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "meg_gym.cli", *args], capture_output=True, text=True, timeout=600)


def test_table_sd15_with_no_weights(capsys):
    assert main(["table", "--model", "sd15", "--json"]) == 0
    rows = {r["protocol"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"full_ue", "full_es", "uieg", "eiug", "ciag", "esuc", "uidg", "diug", "dsuc", "uidcg",
                         "dcsuc"}
    img, lat = 3 * 512 * 512 * 16, 4 * 64 * 64 * 16
    assert rows["full_es"]["downlink_bits"] == img
    assert rows["ciag"]["downlink_bits"] == lat
    assert rows["eiug"]["downlink_bits"] == lat and rows["uieg"]["downlink_bits"] == img
    assert rows["esuc"]["downlink_bits"] == img // 4
    assert rows["full_ue"]["uplink_bits"] == rows["full_ue"]["downlink_bits"] == 0
    assert rows["ciag"]["uplink_bits"] - lat == rows["uieg"]["uplink_bits"] - lat  # same text bits
    assert rows["full_es"]["uplink_bits"] / rows["ciag"]["uplink_bits"] == pytest.approx(48, rel=0.01)


def test_table_bits_per_value_and_num_es(capsys):
    assert main(["table", "--model", "tiny", "--bits-per-value", "8", "--num-es", "3", "--json"]) == 0
    rows = {r["protocol"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["ciag"]["downlink_bits"] == 4 * 16 * 16 * 8
    assert rows["uidg"]["num_es"] == 3 and rows["uidg"]["downlink_bits"] == 3 * 3 * 64 * 64 * 8


def test_demo_json_and_grid(tmp_path, capsys):
    cfg = tmp_path / "fast.yaml"
    cfg.write_text("generation: {steps: 4, ue_steps: 2, complete_steps: 4}\n")
    assert main(["demo", "--config", str(cfg), "--out", str(tmp_path / "demo"), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["protocol"] for r in records] == ["full_ue", "full_es", "uieg", "eiug", "ciag", "esuc", "uidg",
                                                 "diug", "dsuc", "uidcg", "dcsuc"]
    for r in records:
        for key in ("uplink_bits", "downlink_bits", "latency_s", "ssim", "psnr_db"):
            assert key in r
        assert 0.0 <= r["ssim"] <= 1.0 and r["latency_s"] > 0
    assert (tmp_path / "demo" / "grid.png").stat().st_size > 1000


@pytest.mark.parametrize("args,needle", [
    (["table", "--model", "nope"], "'model' must be a model card name"),
    (["demo", "--channel", "wifi"], "'channel.kind' must be one of"),
    (["demo", "--snr-db", "nan"], "'channel.snr_db'"),
    (["table", "--bits-per-value", "0"], "'transmission.bits_per_value'"),
    (["table", "--config", "/no/such/file.yaml"], "does not exist"),
])
def test_bad_input_one_line_error(args, needle):
    res = run_cli(*args)
    assert res.returncode == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], res.stderr
    assert "Traceback" not in res.stderr


def test_bad_config_file_one_line_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("es:\n  - {flops_per_s: -3.0}\n")
    res = run_cli("table", "--config", str(bad))
    assert res.returncode == 2
    assert res.stderr.strip() == "meg-gym table: error: 'es[0].flops_per_s' must be in [1e+06, 1e+17] (got -3.0)"


# -- agents: train, evaluate, benchmark ---------------------------------------------------------
_SHORT_ENV = '{"workload": {"requests_per_episode": 5}}'


def test_benchmark_writes_tables_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--env", "MEG/SingleES-v1", "--policies", "random,crash_avoid,fixed:*,oracle",
                 "--seeds", "2", "--env-kwargs", _SHORT_ENV, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| random | 2 |" in text and "| fixed:ciag | 2 |" in text
    for name in ("table.md", "table.csv", "table_episodes.csv", "results.json", "bars.png", "protocol_vs_snr.png"):
        assert (out / name).stat().st_size > 100, name
    record = json.loads((out / "results.json").read_text())
    assert record["seeds"] == [1000, 1001]


def test_train_then_evaluate(tmp_path, capsys):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text("algo: ppo\nenv: MEG/SingleES-v1\nenv_kwargs: {workload: {requests_per_episode: 20}}\n"
                   "n_envs: 1\nn_timesteps: 64\ncheckpoint_freq: 32\neval_freq: 32\neval_episodes: 1\n"
                   "hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 1}\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["timesteps"] == 64
    assert main(["evaluate", "--model", f"ppo={run}", "--policies", "random,fixed:*", "--seeds", "2",
                 "--out", str(tmp_path / "ev"), "--env-kwargs", _SHORT_ENV]) == 0
    text = capsys.readouterr().out
    assert "| ppo | 2 |" in text and "ppo: gain over random" in text
    assert (tmp_path / "ev" / "learning_curves.png").stat().st_size > 1000
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 0  # already complete: no-op


@pytest.mark.parametrize("args,needle", [
    (["train", "--config", "/no/such.yaml"], "training config /no/such.yaml does not exist"),
    (["benchmark", "--env", "MEG/Nope-v0"], "'env' must be one of ['MEG/MultiES-live-v1'"),
    (["benchmark", "--env", "MEG/SingleES-v1", "--env-kwargs", "[1]"], "'--env-kwargs' must be a JSON object"),
    (["benchmark", "--env", "MEG/SingleES-v1", "--seeds", "0"], "'--seeds' must be >= 1 (got 0)"),
])
def test_agents_bad_input_one_line_error(args, needle):
    res = run_cli(*args)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], res.stderr


def test_train_bad_algo_one_line_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("algo: td3\nenv: MEG/SingleES-v1\n")
    res = run_cli("train", "--config", str(cfg))
    assert res.returncode == 2
    assert res.stderr.strip() == ("meg-gym train: error: 'algo' must be one of ['ppo', 'a2c', 'dqn', 'sac', "
                                  "'maskable_ppo'] (got 'td3')")


def test_snr_db_flag_replaces_a_scenarios_snr_range():
    import argparse

    from meg_gym.cli import _scenario

    args = argparse.Namespace(config="configs/scenarios/case_study.yaml", snr_db=10.0)
    sc = _scenario(args)
    assert sc.channel.snr_db == 10.0 and sc.channel.snr_range_db is None
    plain = _scenario(argparse.Namespace(config="configs/scenarios/case_study.yaml"))
    assert plain.channel.snr_range_db == (-20.0, 20.0)


def test_commands_leave_the_package_alone_by_default(tmp_path, monkeypatch):
    """costs writes the user cache, not configs/costs (--install does); the package's files stay as they were."""
    from meg_gym.costs import SHIPPED_DIR

    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path / "cache"))
    shipped = {p: p.read_bytes() for p in SHIPPED_DIR.glob("*.json")}
    assert main(["costs", "--model", "tiny", "--max-es", "2"]) == 0
    assert (tmp_path / "cache" / "costs" / "tiny.json").is_file()
    assert {p: p.read_bytes() for p in SHIPPED_DIR.glob("*.json")} == shipped


def test_calibration_output_names_stay_inside_their_folder():
    from meg_gym.cli import _safe_name

    assert _safe_name("../../etc/passwd") == "etc_passwd" and "/" not in _safe_name("/abs/folder/model")
