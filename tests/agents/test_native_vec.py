"""SB3 on the native vector env (agents.native_vec): what DummyVecEnv of Monitor-wrapped envs gives, from one core."""

import csv

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecNormalize

import envs  # noqa: F401
from agents.native_vec import native_vec_env
from agents.training import TrainConfigError, load_model, load_train_config, train

SHORT = {"workload": {"requests_per_episode": 7}}


def _dummy(env_id, n, seed, **kw):
    venv = DummyVecEnv([lambda: Monitor(gym.make(env_id, **kw)) for _ in range(n)])
    venv.seed(seed)
    return venv


@pytest.mark.parametrize("env_id", ["MEG/SingleES-v1", "MEG/MultiES-v1"])
def test_one_copy_is_the_monitored_single_env_step_for_step(env_id):
    """Seeded alike, one copy meets the single env's world over several episodes, with Monitor's statistics."""
    nat, dum = native_vec_env(env_id, 1, seed=5, **SHORT), _dummy(env_id, 1, 5, **SHORT)
    assert np.array_equal(nat.reset(), dum.reset())
    rng = np.random.default_rng(0)
    episodes = 0
    for t in range(3 * 7):
        a = np.array([nat.action_space.sample() for _ in range(1)]) if t % 3 else rng.integers(0, 2, (1, 2))
        on, rn, dn, inf_n = nat.step(a)
        od, rd, dd, inf_d = dum.step(a)
        assert np.array_equal(on, od) and np.array_equal(rn, rd) and np.array_equal(dn, dd), t
        assert inf_n[0]["TimeLimit.truncated"] == inf_d[0]["TimeLimit.truncated"]
        assert inf_n[0]["protocol"] == inf_d[0]["protocol"] and inf_n[0]["latency_s"] == inf_d[0]["latency_s"]
        if dn[0]:
            episodes += 1
            en, ed = inf_n[0]["episode"], inf_d[0]["episode"]
            assert (en["r"], en["l"]) == (ed["r"], ed["l"]) and en["l"] == 7
            assert np.array_equal(inf_n[0]["terminal_observation"], inf_d[0]["terminal_observation"])
    assert episodes == 3


def test_copies_statistics_files_and_seeding(tmp_path):
    n = 4
    venv = native_vec_env("MEG/SingleES-v1", n, seed=2, monitor_dir=tmp_path, **SHORT)
    obs = venv.reset()
    assert obs.shape == (n, *venv.observation_space.shape) and obs.dtype == np.float32
    sums, seen = np.zeros(n), []
    for _ in range(2 * 7):
        _, r, d, infos = venv.step(np.array([venv.action_space.sample() for _ in range(n)]))
        sums += r.astype(np.float64)
        if d.all():
            seen.append([i["episode"]["r"] for i in infos])
            assert [i["episode"]["l"] for i in infos] == [7] * n
            np.testing.assert_allclose(seen[-1], sums, rtol=1e-5)  # the float64 sum of the float64 rewards
            sums[:] = 0.0
        else:
            assert not d.any()
    venv.close()
    assert len(seen) == 2 and len(set(seen[0])) == n  # the copies are different worlds
    for i in range(n):
        rows = list(csv.DictReader((tmp_path / f"{i}.monitor.csv").read_text().splitlines()[1:]))
        assert [float(r["r"]) for r in rows] == [s[i] for s in seen]
    first = native_vec_env("MEG/SingleES-v1", n, seed=2, **SHORT).reset()
    again = native_vec_env("MEG/SingleES-v1", n, seed=2, **SHORT).reset()
    other = native_vec_env("MEG/SingleES-v1", n, seed=3, **SHORT).reset()
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_sb3_algorithms_wrappers_and_masks_accept_it():
    venv = VecCheckNan(native_vec_env("MEG/SingleES-v1", 3, seed=0, **SHORT), raise_exception=True)
    PPO("MlpPolicy", VecNormalize(venv), n_steps=16, batch_size=24, n_epochs=1, seed=0).learn(96)
    A2C("MlpPolicy", venv, n_steps=5, seed=0).learn(45)
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=48, seed=0)
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=3, warn=False)
    assert np.isfinite(mean)
    from sb3_contrib.common.maskable.utils import get_action_masks

    masked = native_vec_env("MEG/SingleES-v1", 3, seed=0, **SHORT)
    masked.reset()
    m = get_action_masks(masked)
    assert m.shape == (3, sum(masked.action_space.nvec)) and m.dtype == bool


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="'env' must be a MEG id with a native vector env"):
        native_vec_env("MEG/SingleES-live-v1", 2)
    with pytest.raises(ValueError, match="'n_envs' must be an integer >= 1 \\(got 0\\)"):
        native_vec_env("MEG/SingleES-v1", 0)
    with pytest.raises(ValueError, match="'seed' must be an integer >= 0 or None"):
        native_vec_env("MEG/SingleES-v1", 2, seed=-1)
    with pytest.raises(ValueError, match="scalar reward"):
        v = native_vec_env("MEG/SingleES-v1", 2, reward_type="vector", **SHORT)
        v.reset()
        v.step(np.zeros((2, 2), dtype=np.int64))
    v = native_vec_env("MEG/SingleES-v1", 2, **SHORT)
    v.set_options({"reset_mask": [True, False]})
    with pytest.raises(ValueError, match="'options' must be empty for the native vector env"):
        v.reset()
    base = {"algo": "ppo", "env": "multi_ue_v1", "vec_env": "native"}
    with pytest.raises(TrainConfigError, match="'vec_env' native needs an env with a native vector env"):
        load_train_config(base)
    with pytest.raises(TrainConfigError, match="'vec_env' must be one of \\['dummy', 'native'\\] \\(got 'fast'\\)"):
        load_train_config({**base, "env": "MEG/SingleES-v1", "vec_env": "fast"})


def _cfg(**kw):
    cfg = {"algo": "ppo", "env": "MEG/SingleES-v1", "env_kwargs": {"workload": {"requests_per_episode": 40}},
           "n_envs": 3, "n_timesteps": 288, "seed": 1, "checkpoint_freq": 96, "eval_freq": 0, "vec_env": "native",
           "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2}}
    cfg.update(kw)
    return cfg


def _params(path):
    model, _ = load_model(path)
    return {k: v.detach().numpy().copy() for k, v in model.policy.state_dict().items()}


def test_train_native_resume_is_exact(tmp_path):
    from tests.agents.test_training import Crash

    cfg = _cfg(normalize=True)
    train(cfg, out=tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out=tmp_path / "b", callbacks=[Crash(200)])
    summary = train(cfg, out=tmp_path / "b", resume=True)
    assert summary["resumed_from"] == 192 and summary["timesteps"] == 288
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    for i in range(3):  # the monitor files of the resumed run hold the uninterrupted run's episodes
        ra = [r.split(",")[:2] for r in (tmp_path / "a" / "monitor" / f"{i}.monitor.csv").read_text().splitlines()[2:]]
        rb = [r.split(",")[:2] for r in (tmp_path / "b" / "monitor" / f"{i}.monitor.csv").read_text().splitlines()[2:]]
        assert ra == rb and len(ra) == 2


def test_one_copy_trains_the_dummy_vec_env_model_bit_for_bit(tmp_path):
    train(_cfg(vec_env="dummy", n_envs=1, n_timesteps=96), out=tmp_path / "d")
    train(_cfg(n_envs=1, n_timesteps=96), out=tmp_path / "n")
    pd, pn = _params(tmp_path / "d"), _params(tmp_path / "n")
    assert all(np.array_equal(pd[k], pn[k]) for k in pd)
