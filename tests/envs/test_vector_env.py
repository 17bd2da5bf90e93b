"""The native vector env: same spaces and model as the single env, batched in numpy."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from envs import InvalidAction

IDS = ["MEG/SingleES-v1", "MEG/MultiES-v1"]


@pytest.mark.parametrize("env_id", IDS)
def test_make_vec_entry_point_spaces_and_steps(env_id):
    v = gym.make_vec(env_id, num_envs=8, vectorization_mode="vector_entry_point")
    single = gym.make(env_id)
    assert v.single_observation_space == single.observation_space
    assert v.single_action_space == single.action_space
    obs, info = v.reset(seed=1)
    assert obs.shape == (8, single.observation_space.shape[0]) and v.observation_space.contains(obs)
    v.action_space.seed(0)
    for _ in range(20):
        obs, rew, term, trunc, info = v.step(v.action_space.sample())
        assert v.observation_space.contains(obs)
        assert rew.shape == (8,) and np.isfinite(rew).all()
        assert not term.any()
    # the info has SyncVectorEnv's layout (its _key masks inside the nested rewards dict too), which readers
    # of Gymnasium vector infos (TorchRL's GymWrapper) rely on
    sync = gym.make_vec(env_id, num_envs=8, vectorization_mode="sync")
    sync.reset(seed=1)
    assert _layout(info) == _layout(sync.step(sync.action_space.sample())[4])
    assert set(info["rewards"]) == {"quality", "latency", "overhead", "energy", "deadline",
                                    "_quality", "_latency", "_overhead", "_energy", "_deadline"}


def _layout(info: dict) -> dict:
    """The keys of a vector info, nested dicts as dicts, leaves as None."""
    return {k: _layout(v) if isinstance(v, dict) else None for k, v in info.items()}


@pytest.mark.parametrize("action_type", ["discrete", "box"])
def test_other_codecs(action_type):
    v = gym.make_vec("MEG/SingleES-v1", num_envs=4, vectorization_mode="vector_entry_point", action_type=action_type)
    v.reset(seed=0)
    v.action_space.seed(0)
    _, rew, *_ = v.step(v.action_space.sample())
    assert rew.shape == (4,)


def test_same_seed_same_trajectory():
    a = gym.make_vec("MEG/SingleES-v1", num_envs=16, vectorization_mode="vector_entry_point")
    b = gym.make_vec("MEG/SingleES-v1", num_envs=16, vectorization_mode="vector_entry_point")
    oa, _ = a.reset(seed=5)
    ob, _ = b.reset(seed=5)
    np.testing.assert_array_equal(oa, ob)
    a.action_space.seed(3)
    for _ in range(100):
        act = a.action_space.sample()
        ra, rb = a.step(act), b.step(act)
        np.testing.assert_array_equal(ra[0], rb[0])
        np.testing.assert_array_equal(ra[1], rb[1])


def test_episodes_truncate_together_and_autoreset_next_step():
    v = gym.make_vec("MEG/SingleES-v1", num_envs=3, vectorization_mode="vector_entry_point",
                     workload={"requests_per_episode": 5})
    v.reset(seed=0)
    act = np.zeros((3, 2), dtype=np.int64)
    truncs = [v.step(act)[3].copy() for _ in range(5)]
    assert not any(t.any() for t in truncs[:4]) and truncs[4].all()
    obs, rew, term, trunc, _ = v.step(act)  # the reset step
    np.testing.assert_array_equal(rew, 0.0)
    assert not trunc.any() and np.allclose(obs[:, -1], 0.0)  # progress back at 0


def test_bad_actions_rejected_before_any_change():
    v = gym.make_vec("MEG/SingleES-v1", num_envs=2, vectorization_mode="vector_entry_point")
    v.reset(seed=0)
    before = v.unwrapped.world.now_s.copy()
    n = v.single_action_space.nvec
    for bad in (np.array([[n[0], 0], [0, 0]]), np.zeros((3, 2), dtype=np.int64), np.array([[0.5, 0], [0, 0]])):
        with pytest.raises(InvalidAction, match="shape"):
            v.step(bad)
    np.testing.assert_array_equal(v.unwrapped.world.now_s, before)
    v.step(np.zeros((2, 2), dtype=np.int64))


def test_live_backend_is_refused_with_a_pointer_to_sync():
    from envs.vector import MegVectorEnv

    with pytest.raises(ValueError, match="vectorization_mode='sync'"):
        MegVectorEnv(2, "case_study", backend="live")


@pytest.mark.parametrize("protocol", ["full_ue", "full_es", "ciag", "esuc"])
def test_same_model_as_the_single_env(protocol):
    """A fixed policy's mean reward terms agree between the batched and the scalar env."""
    vec = gym.make_vec("MEG/SingleES-v1", num_envs=8, vectorization_mode="vector_entry_point")
    single = gym.make("MEG/SingleES-v1")
    k = [d.protocol for d in single.unwrapped.decisions].index(protocol)
    vec.reset(seed=0)
    single.reset(seed=0)
    v_terms = {t: [] for t in ("quality", "latency", "deadline")}
    s_terms = {t: [] for t in v_terms}
    for _ in range(200):  # one whole episode of 8 copies
        _, _, _, _, info = vec.step(np.tile([k, 2], (8, 1)))
        for t in v_terms:
            v_terms[t].append(info["rewards"][t].mean())
    for _ in range(1200):
        _, _, _, trunc, info = single.step(np.array([k, 2]))
        for t in s_terms:
            s_terms[t].append(info["rewards"][t])
        if trunc:
            single.reset()
    for t in v_terms:
        a, b = np.mean(v_terms[t]), np.mean(s_terms[t])
        se = np.std(s_terms[t]) / np.sqrt(len(s_terms[t])) + np.std(v_terms[t]) / np.sqrt(len(v_terms[t]))
        assert abs(a - b) <= 5 * se + 0.02, (protocol, t, a, b)


@pytest.mark.parametrize("env_id", ["MEG/SingleES-v1", "MEG/MultiES-v1"])
def test_observation_rows_are_each_copys_world(env_id):
    """Row r of the batch's observation is copy r's SNRs, backlogs, demand, request and progress, in the
    single env's layout (the same Core.observe columns)."""
    vec = gym.make_vec(env_id, num_envs=4, vectorization_mode="vector_entry_point")
    single = gym.make(env_id).unwrapped
    assert vec.single_observation_space == single.observation_space
    obs, _ = vec.reset(seed=3)
    w = vec.unwrapped.world
    n, scale = w.num_es, w.workload.latency_scale_s
    for t in range(30):
        obs, *_ = vec.step(vec.action_space.sample())
        if t % 10:
            continue
        snr = w.snr_table_db()[:, 0]
        np.testing.assert_allclose(obs[:, :n], snr[:, :, 0] / 30, rtol=1e-6)
        np.testing.assert_allclose(obs[:, n:2 * n], snr[:, :, 1] / 30, rtol=1e-6)
        np.testing.assert_allclose(obs[:, 2 * n:3 * n], w.backlog_s() / scale, rtol=1e-6)
        np.testing.assert_allclose(obs[:, 3 * n:4 * n], w.last_demand, rtol=1e-6)
        np.testing.assert_allclose(obs[:, 4 * n], w.deadline_s[:, 0] / scale, rtol=1e-6)
        np.testing.assert_allclose(obs[:, -1], (t + 1) / w.workload.requests_per_episode, rtol=1e-6)
        assert len(set(obs[:, 4 * n].tolist())) == 4  # the copies draw their own requests


def _run_episode(v, steps):
    out = None
    for _ in range(steps):
        out = v.step(np.zeros((v.num_envs, 2), dtype=np.int64))
    return out


@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_autoreset_modes_and_key_masks(mode):
    """Gymnasium's three autoreset modes; every info key has its ``_key`` mask, False where nothing was served."""
    v = gym.make_vec("MEG/SingleES-v1", num_envs=3, vectorization_mode="vector_entry_point", autoreset_mode=mode,
                     workload={"requests_per_episode": 4})
    assert v.metadata["autoreset_mode"].value == mode
    obs, info = v.reset(seed=0)
    assert set(info) >= {"latency_s", "_latency_s", "es_mask", "_es_mask"} and not info["_latency_s"].any()
    _, _, _, trunc, info = _run_episode(v, 4)
    assert trunc.all() and info["_latency_s"].all() and info["es_mask"].shape == (3, 1)
    if mode == "SameStep":
        assert info["_final_obs"].all() and info["final_obs"][:, -1].tolist() == [1.0] * 3
        obs, _, _, trunc, info = v.step(np.zeros((3, 2), dtype=np.int64))  # the new episodes' first step
        assert not trunc.any() and info["_latency_s"].all()
    elif mode == "NextStep":
        obs, r, _, trunc, info = v.step(np.zeros((3, 2), dtype=np.int64))
        assert not trunc.any() and (r == 0).all() and not info["_latency_s"].any()
        assert np.isnan(info["latency_s"]).all() and info["protocol"].tolist() == [""] * 3
    else:
        with pytest.raises(RuntimeError, match="call reset"):
            v.step(np.zeros((3, 2), dtype=np.int64))
        with pytest.raises(ValueError, match="all True or all False"):
            v.reset(options={"reset_mask": np.array([True, False, True])})
        obs, _ = v.reset(options={"reset_mask": np.ones(3, bool)})
        assert obs[:, -1].tolist() == [0.0] * 3


def test_vector_action_masks_and_call():
    v = gym.make_vec("MEG/MultiES-v1", num_envs=4, vectorization_mode="vector_entry_point")
    with pytest.raises(RuntimeError, match="before reset"):
        v.unwrapped.action_masks()
    v.reset(seed=0)
    single = gym.make("MEG/MultiES-v1").unwrapped
    masks = v.unwrapped.action_masks()
    assert masks.shape == (4, len(single.decisions) + len(single.shares)) and masks.any(axis=1).all()
    assert len(v.unwrapped.call("action_masks")) == 4
    assert v.unwrapped.call("decisions")[3] is v.unwrapped.decisions
