"""RLlib training from YAML (agents.rllib): config checks, env glue, tiny runs (sampling in the driver) with resume."""

import numpy as np
import pytest

pytest.importorskip("ray.rllib")

from agents.rllib import RllibConfigError, is_rllib_config, is_rllib_run, load_rllib_config, make_env  # noqa: E402

SHORT = {"workload": {"requests_per_episode": 20}}
TINY_HP = {"train_batch_size_per_learner": 40, "minibatch_size": 20, "num_epochs": 1, "lr": 3e-4, "gamma": 0.9}


def test_shipped_rllib_configs_validate():
    single = load_rllib_config("configs/train/rllib_ppo_single_es.yaml")
    multi = load_rllib_config("rllib_ppo_multi_ue")
    assert single.env == "MEG/SingleES-v1" and not single.marl and single.hyperparams["gamma"] == 0.9
    assert multi.env == "multi_ue_v1" and multi.marl and multi.policies == "shared"
    assert is_rllib_config("configs/train/rllib_ppo_single_es.yaml")
    assert not is_rllib_config("configs/train/ppo_single_es.yaml")


@pytest.mark.parametrize("change,needle", [
    ({"algo": "dqn"}, "'algo' must be one of ['ppo'] (got 'dqn')"),
    ({"env": "CartPole-v1"}, "'env' must be one of ["),
    ({"policies": "each"}, "'policies' must be one of ['shared', 'per_agent'] (got 'each')"),
    ({"policies": "per_agent"}, "'policies' per_agent needs a multi-agent env"),
    ({"hyperparams": {"learning_rate": 1e-3}}, "'hyperparams.learning_rate' is not a training() parameter"),
    ({"model": {"hidden": [8]}}, "'model.hidden' is not a field of RLlib's DefaultModelConfig"),
    ({"num_env_runners": -1}, "'num_env_runners' must be an integer >= 0 (got -1)"),
    ({"n_steps": 5}, "'n_steps' is not a known field of an RLlib training config"),
])
def test_bad_config_names_the_field(change, needle):
    base = {"library": "rllib", "algo": "ppo", "env": "MEG/SingleES-v1"}
    with pytest.raises(Exception, match="^" + __import__("re").escape(needle)):
        load_rllib_config({**base, **change})


def test_sb3_loader_points_rllib_configs_elsewhere():
    from agents.training import TrainConfigError, load_train_config

    with pytest.raises(TrainConfigError, match="'library' must be 'sb3' for an SB3 config"):
        load_train_config("configs/train/rllib_ppo_single_es.yaml")


def test_env_glue_flattens_dict_obs_and_scalarises_vector_rewards():
    import gymnasium as gym

    import envs

    e = make_env("MEG/SingleES-v1", {**SHORT, "observation_type": "dict", "reward_type": "vector"})
    ref = envs.LinearReward(gym.make("MEG/SingleES-v1", **SHORT, reward_type="vector"))
    obs, _ = e.reset(seed=3)
    ref_obs, _ = ref.reset(seed=3)
    assert isinstance(e.observation_space, gym.spaces.Box) and obs.shape == ref_obs.shape
    assert sorted(obs) == sorted(ref_obs)  # the same values, the dict's keys in Gymnasium's flatten order
    _, r, _, _, info = e.step(np.array([1, 2]))
    _, r_ref, _, _, _ = ref.step(np.array([1, 2]))
    assert isinstance(r, float) and r == r_ref and info["vector_reward"].shape == (5,)

    ma = make_env("multi_ue_v1", {"num_ues": 3, "reward_type": "vector"})
    scalar = make_env("multi_ue_v1", {"num_ues": 3})
    o, _ = ma.reset(seed=1)
    o2, _ = scalar.reset(seed=1)
    assert sorted(o) == ["ue_0", "ue_1", "ue_2"] and all(np.array_equal(o[a], o2[a]) for a in o)
    acts = {a: np.array([0, 1]) for a in o}
    _, rv, _, trunc, _ = ma.step(acts)
    _, rs, _, _, _ = scalar.step(acts)
    assert "__all__" in trunc
    for a in rs:  # the weighted terms are the env's own scalar reward
        assert rv[a] == pytest.approx(rs[a], rel=1e-6, abs=1e-9)


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from agents.rllib import init_ray

    init_ray(None)
    yield
    ray.shutdown()


def _cfg(**kw):
    cfg = {"library": "rllib", "algo": "ppo", "env": "MEG/SingleES-v1", "env_kwargs": dict(SHORT),
           "n_timesteps": 80, "seed": 0, "num_env_runners": 0, "hyperparams": dict(TINY_HP),
           "model": {"fcnet_hiddens": [16]}, "checkpoint_freq": 40}
    cfg.update(kw)
    return cfg


def test_single_es_train_resume_and_evaluate(tmp_path, ray_local):
    from agents.evaluation import evaluate_policies, summarize
    from agents.rllib import latest_checkpoint, train

    run = tmp_path / "run"
    s = train(_cfg(), out=run)
    assert s["timesteps"] == 80 and s["resumed_from"] is None and is_rllib_run(run)
    assert (run / "final" / ".done").exists() and latest_checkpoint(run).name == "ckpt_000000000080"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt_000000000040", "ckpt_000000000080"]
    with pytest.raises(RllibConfigError, match="already holds checkpoints"):
        train(_cfg(), out=run)
    with pytest.raises(RllibConfigError, match="differs"):
        train(_cfg(seed=1), out=run, resume=True)
    s2 = train(_cfg(n_timesteps=120), out=run, resume=True)
    assert s2["resumed_from"] == 80 and s2["timesteps"] == 120
    assert train(_cfg(n_timesteps=120), out=run, resume=True)["already_complete"]
    rows = (run / "progress.csv").read_text().splitlines()
    assert rows[0].startswith("timesteps,") and [r.split(",")[0] for r in rows[1:]] == ["40", "80", "120"]
    results = evaluate_policies([f"rl={run}", "random"], "MEG/SingleES-v1", [1000, 1001], SHORT)
    table = {r["policy"]: r for r in summarize(results)}
    assert table["rl"]["episodes"] == 2 and np.isfinite(table["rl"]["return"])
    # greedy actions are a function of the observation: two evaluations agree
    again = evaluate_policies([f"rl={run}"], "MEG/SingleES-v1", [1000], SHORT)
    assert again["rl"][0].metrics == results["rl"][0].metrics


@pytest.mark.parametrize("policies", ["shared", "per_agent"])
def test_multi_ue_policies(tmp_path, ray_local, policies):
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE

    from agents.rllib import train

    s = train(_cfg(env="multi_ue_v1", env_kwargs={"num_ues": 2, **SHORT}, policies=policies, n_timesteps=40),
              out=tmp_path / policies)
    assert s["timesteps"] >= 40
    modules = tmp_path / policies / "final" / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER / COMPONENT_RL_MODULE
    names = sorted(p.name for p in modules.iterdir() if p.is_dir())
    assert names == (["shared"] if policies == "shared" else ["ue_0", "ue_1"])


def test_cli_names_misplaced_ray_options(capsys):
    from meg_gym.cli import main

    assert main(["train", "--config", "configs/train/ppo_single_es.yaml", "--ray-address", "auto"]) == 2
    assert "'--ray-address' applies to RLlib configs (library: rllib) only" in capsys.readouterr().err
    assert main(["train", "--config", "configs/train/ppo_single_es.yaml", "--num-env-runners", "0"]) == 2
    assert "'--num-env-runners' applies to RLlib configs (library: rllib) only" in capsys.readouterr().err
    assert main(["train", "--config", "configs/train/rllib_ppo_single_es.yaml", "--num-env-runners", "-1"]) == 2
    assert "'num_env_runners' must be an integer >= 0 (got -1)" in capsys.readouterr().err
    assert main(["calibrate", "--workers", "2"]) == 2
    assert "'--workers' needs '--ray'" in capsys.readouterr().err

