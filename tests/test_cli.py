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
    # by default latency is at Stable Diffusion 1.5 scale (cost_model sd15): Full UE takes about a second on
    # the phone, not the tiny model's milliseconds
    assert records[0]["latency_s"] > 0.05
    assert (tmp_path / "demo" / "grid.png").stat().st_size > 1000


@pytest.mark.parametrize("args,needle", [
    (["table", "--model", "nope"], "'model' must be a model card name"),
    (["demo", "--channel", "wifi"], "'channel.kind' must be one of"),
    (["demo", "--snr-db", "nan"], "'channel.snr_db'"),
    (["demo", "--cost-model", "nope"], "'cost_model' must be a model card name ['sd15', 'tiny', 'tiny_ue']"),
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
    cap = capsys.readouterr()
    assert json.loads(cap.out.strip().splitlines()[-1])["timesteps"] == 64
    assert f"TensorBoard logs: {run / 'tb'}" in cap.err and "64/64" in cap.err  # the progress bar, to its end
    assert main(["evaluate", "--model", f"ppo={run}", "--policies", "random,fixed:*", "--seeds", "2",
                 "--out", str(tmp_path / "ev"), "--env-kwargs", _SHORT_ENV]) == 0
    text = capsys.readouterr().out
    assert "| ppo | 2 |" in text and "ppo: gain over random" in text
    assert (tmp_path / "ev" / "learning_curves.png").stat().st_size > 1000
    assert main(["train", "--config", str(cfg), "--out", str(run), "--resume"]) == 0  # already complete: no-op


@pytest.mark.parametrize("args,needle", [
    (["train", "--config", "/no/such.yaml"], "training config /no/such.yaml does not exist"),
    (["benchmark", "--env", "MEG/Nope-v0"],
     "'env' must be one of ['MEG/GenerationSplit-v0', 'MEG/ModelCaching-v0', 'MEG/MultiES-live-v1'"),
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


# -- help text -----------------------------------------------------------------------------------
def _subparsers():
    import argparse

    from meg_gym.cli import _parser

    p = _parser()
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_command_has_help():
    missing = [f"{name} {'/'.join(a.option_strings)}" for name, sp in _subparsers().items() for a in sp._actions
               if a.option_strings and not (a.help or "").strip()]
    assert missing == []


def test_top_level_help_lists_every_command_without_importing_torch():
    code = ("import sys\nfrom meg_gym.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('TORCH', 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    for name in _subparsers():
        assert f"    {name}" in res.stdout, name  # each command on its own line, with its help
    assert "costs" in res.stdout and res.stdout.strip().endswith("TORCH False")


def test_docs_cli_md_is_the_parser():
    from pathlib import Path

    from meg_gym.cli import reference_markdown

    doc = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
    assert doc.read_text(encoding="utf-8") == reference_markdown(), \
        "docs/cli.md is stale: regenerate it with the command at its top"


def test_stated_defaults_are_the_code_defaults():
    """train-ldm's step defaults are the shipped weights' steps; --help's thread count is TrainSettings'."""
    from pathlib import Path

    from meg_gym.cli import TRAIN_LDM_DEFAULTS, TRAIN_SETTINGS_THREADS
    from meg_gym.ldm.components import SHIPPED_DIR
    from meg_gym.ldm.train import DEFAULT_CKPT, TrainSettings

    meta = json.loads((SHIPPED_DIR / "tiny" / "meta.json").read_text())
    assert {ph: steps for ph, (steps, _) in TRAIN_LDM_DEFAULTS.items()} == {
        ph: meta[f"{ph}_steps"] for ph in ("vae", "unet", "classifier")}
    assert TrainSettings(phase="vae", steps=1).threads == TRAIN_SETTINGS_THREADS
    help_text = " ".join(_subparsers()["train-ldm"].format_help().split())
    assert "unet 7,000" in help_text and f"default {TRAIN_SETTINGS_THREADS}" in help_text
    assert str(DEFAULT_CKPT).replace(str(Path.home()), "~") in help_text


# -- Ctrl-C --------------------------------------------------------------------------------------
def _interrupt(args, marker, timeout_s=300):
    """Start ``meg-gym ARGS``, send SIGINT once ``marker`` shows on its stderr; (status, stderr)."""
    import os
    import select
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "meg_gym.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    seen, deadline = b"", time.monotonic() + timeout_s
    try:
        while marker.encode() not in seen:
            assert time.monotonic() < deadline and proc.poll() is None, seen.decode(errors="replace")[-2000:]
            if select.select([proc.stderr], [], [], 1.0)[0]:
                seen += os.read(proc.stderr.fileno(), 65536)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
    text = (seen + rest).decode(errors="replace")
    return proc.returncode, text


def _last_line(text):
    return [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-1]


def test_ctrl_c_on_benchmark_is_one_line(tmp_path):
    code, err = _interrupt(["benchmark", "--env", "MEG/SingleES-v1", "--seeds", "500", "--out", str(tmp_path / "b")],
                           "episodes:")
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert _last_line(err) == "meg-gym benchmark: interrupted; stopped before writing anything"
    assert not (tmp_path / "b").exists()


@pytest.mark.slow
def test_ctrl_c_on_train_ldm_says_how_to_resume(tmp_path):
    ckpt = tmp_path / "ckpt"
    code, err = _interrupt(["train-ldm", "--phase", "vae", "--steps", "100000", "--checkpoint-dir", str(ckpt),
                            "--out", str(tmp_path / "tiny")], "vae:")
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert _last_line(err) == (f"meg-gym train-ldm: interrupted; run the same command again to resume the vae phase "
                               f"from its last checkpoint in {ckpt} (saved every 200 steps)")


@pytest.mark.slow
def test_ctrl_c_on_train_says_how_to_resume(tmp_path):
    cfg = tmp_path / "ppo.yaml"
    cfg.write_text("algo: ppo\nenv: MEG/SingleES-v1\nn_envs: 1\nn_timesteps: 10000000\ncheckpoint_freq: 64\n"
                   "eval_freq: 0\nhyperparams: {n_steps: 64, batch_size: 64, n_epochs: 1}\n")
    code, err = _interrupt(["train", "--config", str(cfg), "--out", str(tmp_path / "run")], "TensorBoard logs:")
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert _last_line(err) == (f"meg-gym train: interrupted; continue from the last checkpoint with: meg-gym train "
                               f"--config {cfg} --out {tmp_path / 'run'} --resume")
