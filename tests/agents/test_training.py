"""Training from YAML: a PPO smoke run, save, load and evaluate; resume equals an uninterrupted run."""

import importlib.util
import re

import numpy as np
import pytest
import yaml
from stable_baselines3.common.callbacks import BaseCallback

from agents.evaluation import evaluate_policies, summarize
from agents.training import TrainConfigError, latest_checkpoint, load_model, load_train_config, train

SHORT_ENV = {"workload": {"requests_per_episode": 40}}


def _cfg(algo="ppo", **kw):
    hp = {"ppo": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
          "dqn": {"learning_starts": 32, "buffer_size": 500, "batch_size": 16, "train_freq": 4}}[algo]
    cfg = {"algo": algo, "env": "MEG/SingleES-v1", "env_kwargs": dict(SHORT_ENV), "n_envs": 2, "n_timesteps": 256,
           "seed": 1, "checkpoint_freq": 64, "eval_freq": 128, "eval_episodes": 1, "hyperparams": hp}
    cfg.update(kw)
    return cfg


class Crash(BaseCallback):
    """Simulates a run killed mid-rollout."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def _on_step(self):
        if self.num_timesteps >= self.at:
            raise KeyboardInterrupt
        return True


def _params(path):
    model, _ = load_model(path)
    return {k: v.detach().numpy().copy() for k, v in model.policy.state_dict().items()}


def test_ppo_smoke_train_save_load_evaluate(tmp_path):
    summary = train(_cfg(), out=tmp_path / "run")
    run = tmp_path / "run"
    assert summary["timesteps"] == 256 and (run / "final_model.zip").exists()
    assert list((run / "tb").rglob("events.out.tfevents*")), "TensorBoard logs"
    assert latest_checkpoint(run) is not None and (run / "evaluations.npz").exists()
    assert list((run / "monitor").glob("*.monitor.csv"))
    model, obs_rms = load_model(run)
    assert type(model).__name__ == "PPO" and obs_rms is None
    results = evaluate_policies([f"ppo={run}", "random"], "MEG/SingleES-v1", [1000, 1001],
                                {"workload": {"requests_per_episode": 5}})
    rows = {r["policy"]: r for r in summarize(results)}
    assert rows["ppo"]["episodes"] == 2 and np.isfinite(rows["ppo"]["return"])


def test_resume_gives_the_same_model_as_an_uninterrupted_run(tmp_path):
    cfg = _cfg(normalize=True)  # VecNormalize's running statistics must survive the interruption too
    train(cfg, out=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "b", callbacks=[Crash(150)])
    assert latest_checkpoint(tmp_path / "b").name == "ckpt_000000000128"
    summary = train(cfg, out=tmp_path / "b", resume=True)
    assert summary["resumed_from"] == 128 and summary["timesteps"] == 256
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    ea, eb = np.load(tmp_path / "a" / "evaluations.npz"), np.load(tmp_path / "b" / "evaluations.npz")
    assert np.array_equal(ea["timesteps"], eb["timesteps"]) and np.array_equal(ea["results"], eb["results"])


def test_an_uninterrupted_rerun_is_identical_but_another_seed_is_not(tmp_path):
    cfg = _cfg(n_timesteps=128, eval_freq=0)
    train(cfg, out=tmp_path / "a")
    train(cfg, out=tmp_path / "b")
    train({**cfg, "seed": 2}, out=tmp_path / "c")
    pa, pb, pc = (_params(tmp_path / x) for x in "abc")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    assert not all(np.array_equal(pa[k], pc[k]) for k in pa)


@pytest.mark.slow
def test_resume_exact_for_dqn(tmp_path):
    cfg = _cfg("dqn", n_envs=1, env_kwargs={**SHORT_ENV, "action_type": "discrete"})
    train(cfg, out=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "b", callbacks=[Crash(100)])
    train(cfg, out=tmp_path / "b", resume=True)
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_resume_honours_verbose_and_the_bar_shows_progress_and_return(tmp_path, capsys):
    from agents.progress import TrainProgressBar

    cfg = _cfg(n_timesteps=128, eval_freq=0)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "r", callbacks=[Crash(100)])
    capsys.readouterr()
    bar = TrainProgressBar(refresh_s=0.0)
    train(cfg, out=tmp_path / "r", resume=True, verbose=1, callbacks=[bar])
    cap = capsys.readouterr()
    assert "Logging to" in cap.out and "ep_rew_mean" in cap.out  # SB3's verbose 1: it was dropped on resume
    assert f"TensorBoard logs: {tmp_path / 'r' / 'tb'} (view them with: tensorboard --logdir" in cap.err
    assert "64/128" in cap.err and "128/128" in cap.err  # from the checkpoint to the end
    assert re.search(r"mean return -?\d+\.\d\d \(\d+ episodes\)", cap.err) and "step/s" in cap.err
    assert bar.bar.n == 128


def test_resume_without_a_checkpoint_begins_again_and_refuses_a_changed_config(tmp_path, capsys):
    summary = train(_cfg(n_timesteps=64, eval_freq=0), out=tmp_path / "none", resume=True)
    assert summary["resumed_from"] is None and summary["timesteps"] == 64
    assert "no complete checkpoint" in capsys.readouterr().err
    train(_cfg(n_timesteps=64, eval_freq=0), out=tmp_path / "r")
    with pytest.raises(TrainConfigError, match="already holds checkpoints or a model"):
        train(_cfg(n_timesteps=64, eval_freq=0), out=tmp_path / "r")
    assert train(_cfg(n_timesteps=64, eval_freq=0), out=tmp_path / "r", resume=True)["already_complete"]
    with pytest.raises(TrainConfigError, match="differs"):
        train(_cfg(n_timesteps=64, eval_freq=0, seed=5), out=tmp_path / "r", resume=True)


def test_shipped_configs_validate():
    from pathlib import Path

    files = sorted(Path("configs/train").glob("*.yaml"))
    assert {f.stem for f in files} >= {"ppo_single_es", "dqn_single_es", "a2c_single_es", "sac_single_es",
                                       "maskable_ppo_single_es", "ppo_multi_es", "ppo_aigc"}
    for f in files:
        if yaml.safe_load(f.read_text()).get("library") == "rllib":
            continue  # tests/agents/test_rllib.py
        cfg = load_train_config(f)
        assert cfg.algo in ("ppo", "a2c", "dqn", "sac", "maskable_ppo")
    assert load_train_config("configs/train/sac_single_es.yaml").env_kwargs["action_type"] == "box"
    assert load_train_config("configs/train/dqn_single_es.yaml").env_kwargs["action_type"] == "discrete"
    assert load_train_config("configs/train/ppo_single_es.yaml").hyperparams["learning_rate"] == 3e-4


@pytest.mark.parametrize("change,needle", [
    ({"algo": "td3"}, "'algo' must be one of ['ppo', 'a2c', 'dqn', 'sac', 'maskable_ppo'] (got 'td3')"),
    ({"env": "CartPole-v1"},
     "'env' must be one of ['MEG/GenerationSplit-v0', 'MEG/ModelCaching-v0', 'MEG/MultiES-live-v1'"),
    ({"algo": "dqn"}, "'env_kwargs.action_type' must be one of ['discrete'] for dqn (got 'multidiscrete')"),
    ({"n_envs": 0}, "'n_envs' must be an integer >= 1 (got 0)"),
    ({"hyperparams": {"n_stepz": 3}}, "'hyperparams.n_stepz' is not a parameter of PPO; allowed:"),
    ({"bogus": 1}, "'bogus' is not a known field of a training config; allowed:"),
    ({"normalize": "yes"}, "'normalize' must be true, false or a mapping"),
])
def test_bad_config_names_the_field(change, needle):
    cfg = {"algo": "ppo", "env": "MEG/SingleES-v1", "env_kwargs": {"action_type": "multidiscrete"}, **change}
    with pytest.raises(TrainConfigError) as e:
        load_train_config(cfg)
    assert needle in str(e.value)


def test_bad_schedule_string(tmp_path):
    with pytest.raises(TrainConfigError, match="'hyperparams.learning_rate' must be a number or 'lin_<number>'"):
        train(_cfg(hyperparams={"learning_rate": "fast"}), out=tmp_path / "x")


def test_yaml_file_and_linear_schedule(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump(_cfg(n_timesteps=64, eval_freq=0, hyperparams={
        "n_steps": 32, "batch_size": 32, "n_epochs": 1, "learning_rate": "lin_3e-4",
        "policy_kwargs": {"net_arch": [16], "activation_fn": "relu"}})))
    summary = train(f, out=tmp_path / "run")
    model, _ = load_model(tmp_path / "run")
    assert summary["timesteps"] == 64 and model.policy.activation_fn.__name__ == "ReLU"


@pytest.mark.skipif(importlib.util.find_spec("agents.marl") is None, reason="agents.marl (PettingZoo envs) absent")
def test_marl_dispatch(tmp_path):
    cfg = load_train_config("configs/train/ppo_multi_ue.yaml", n_timesteps=64, checkpoint_freq=32,
                            hyperparams={"n_steps": 16, "batch_size": 16, "n_epochs": 1})
    summary = train(cfg, out=tmp_path / "marl")
    assert summary["timesteps"] >= 64 and (tmp_path / "marl" / "final_model.zip").exists()


def test_train_refuses_a_bad_thread_count_before_touching_torch(capsys):
    import torch

    from meg_gym.cli import main

    before = torch.get_num_threads()
    assert main(["train", "--config", "configs/train/ppo_single_es.yaml", "--torch-threads", "0"]) == 2
    assert "'--torch-threads' must be an integer >= 1 (got 0)" in capsys.readouterr().err
    assert torch.get_num_threads() == before  # nothing set on the way to the error
