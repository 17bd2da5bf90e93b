"""Gymnasium envs: API conformance with gymnasium's and SB3's checkers, determinism, bad actions."""

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs import InvalidAction

PROFILED = ["MEG/SingleES-v1", "MEG/MultiES-v1"]

# warnings the checkers may raise that we accept, with the reason
ALLOWED_WARNINGS = (
    # our observations are unbounded (SNR in dB, backlogs); SB3 suggests normalising, we scale to ~unit size
    "unbounded",
    "symmetric and normalized",
)


def _check_no_unexpected(record):
    bad = [str(w.message) for w in record if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not bad, bad


@pytest.mark.parametrize("env_id", PROFILED)
@pytest.mark.parametrize("action_type", ["multidiscrete", "discrete", "box"])
def test_gymnasium_check_env(env_id, action_type):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, action_type=action_type)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    _check_no_unexpected(rec)


@pytest.mark.parametrize("env_id", PROFILED)
@pytest.mark.parametrize("observation_type", ["box", "dict"])
def test_sb3_check_env(env_id, observation_type):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, observation_type=observation_type)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        check_env(env.unwrapped, warn=True)
    _check_no_unexpected(rec)


@pytest.mark.parametrize("env_id", PROFILED)
def test_same_seed_same_trajectory_for_1000_steps(env_id):
    a, b = gym.make(env_id), gym.make(env_id)
    oa, _ = a.reset(seed=42)
    ob, _ = b.reset(seed=42)
    a.action_space.seed(0)
    for _ in range(1000):
        act = a.action_space.sample()
        ra, rb = a.step(act), b.step(act)
        assert np.array_equal(ra[0], rb[0])
        assert ra[1] == rb[1] and ra[3] == rb[3]
        if ra[3]:
            a.reset(seed=None), b.reset(seed=None)
    c = gym.make(env_id)
    oc, _ = c.reset(seed=43)
    assert not np.array_equal(oa, oc) or env_id == "MEG/SingleES-v1"


@pytest.mark.parametrize("bad", [[99, 0], [0, 7], [-1, 0], [0.5, 1], [0, 0, 0]])
def test_bad_action_raises_and_env_still_works(bad):
    env = gym.make("MEG/SingleES-v1")
    env.reset(seed=0)
    served = env.unwrapped.world.served
    now = env.unwrapped.world.system.now_s
    with pytest.raises(InvalidAction, match="must be"):
        env.step(np.array(bad))
    assert env.unwrapped.world.served == served and env.unwrapped.world.system.now_s == now
    obs, r, term, trunc, info = env.step(env.action_space.sample())
    assert np.isfinite(r)


def test_bad_action_box_and_discrete():
    env = gym.make("MEG/SingleES-v1", action_type="box")
    env.reset(seed=0)
    for bad in ([2.0, 0.0], [np.nan, 0.0]):
        with pytest.raises(InvalidAction, match=r"\[-1, 1\]"):
            env.step(np.array(bad, dtype=np.float32))
    env = gym.make("MEG/SingleES-v1", action_type="discrete")
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match="must be in"):
        env.step(10_000)


def test_pickle_round_trip():
    env = gym.make("MEG/MultiES-v1")
    env.reset(seed=5)
    env.step(env.action_space.sample())
    clone = pickle.loads(pickle.dumps(env))
    act = env.action_space.sample()
    r1, r2 = env.step(act), clone.step(act)
    assert np.array_equal(r1[0], r2[0]) and r1[1] == r2[1]


def test_info_terms_combine_to_reward():
    env = gym.make("MEG/SingleES-v1")
    env.reset(seed=1)
    w = env.unwrapped.scenario.reward.weights
    for _ in range(20):
        _, r, _, _, info = env.step(env.action_space.sample())
        t = info["rewards"]
        expect = (w.quality * t["quality"] + w.latency * t["latency"] + w.overhead * t["overhead"]
                  + w.energy * t["energy"] + w.deadline * t["deadline"])
        assert r == pytest.approx(expect)


def test_vector_reward_and_linear_wrapper():
    env = gym.make("MEG/SingleES-v1", reward_type="vector")
    assert env.unwrapped.reward_space.shape == (5,)
    env.reset(seed=2)
    _, vec, *_ = env.step(env.action_space.sample())
    assert vec.shape == (5,) and env.unwrapped.reward_space.contains(vec)
    lin = envs.LinearReward(gym.make("MEG/SingleES-v1", reward_type="vector"))
    scalar = gym.make("MEG/SingleES-v1")
    lin.reset(seed=3), scalar.reset(seed=3)
    act = np.array([1, 0])
    (_, r1, _, _, i1), (_, r2, _, _, _) = lin.step(act), scalar.step(act)
    assert r1 == pytest.approx(r2, rel=1e-5)
    assert i1["vector_reward"].shape == (5,)


def test_action_masks_shape():
    env = gym.make("MEG/MultiES-v1", action_type="discrete")
    env.reset(seed=0)
    m = env.unwrapped.action_masks()
    assert m.shape == (env.action_space.n,) and m.dtype == bool and m.any()


def test_render_rgb_array():
    env = gym.make("MEG/MultiES-v1", render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="'action_type' must be one of"):
        gym.make("MEG/SingleES-v1", action_type="cont")
    with pytest.raises(ValueError, match="'observation_type' must be one of"):
        gym.make("MEG/SingleES-v1", observation_type="image")


def test_deepcopy_is_an_independent_world_with_the_same_future():
    import copy

    env = gym.make("MEG/MultiES-v1").unwrapped
    env.reset(seed=9)
    twin = copy.deepcopy(env)
    assert twin.world.system.comps is env.world.system.comps  # the model is shared, not copied
    for a in ([0, 0], [5, 1], [20, 2]):
        r1, r2 = env.step(np.array(a)), twin.step(np.array(a))
        assert np.array_equal(r1[0], r2[0]) and r1[1] == r2[1]
    env.step(np.array([1, 1]))
    assert env.world.served == twin.world.served + 1


def test_unknown_keyword_is_a_type_error_and_scenario_keys_pass():
    """An unknown keyword raises TypeError as Python does (TorchRL retries without it); scenario keys work."""
    import envs as envs_mod

    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):
        gym.make("MEG/SingleES-v1", frameskip=4)
    with pytest.raises(TypeError, match="unexpected keyword argument 'frameskip'"):
        envs_mod.multi_ue_v1.parallel_env(frameskip=4)
    env = gym.make("MEG/SingleES-v1", channel__snr_db=3.0, **{"workload.requests_per_episode": 5})
    assert env.unwrapped.scenario.workload.requests_per_episode == 5


def test_info_keys_at_reset_equal_every_steps_with_numpy_scalars_and_a_fixed_es_mask():
    import envs as envs_mod

    env = gym.make("MEG/MultiES-v1")
    with pytest.raises(RuntimeError, match="before reset"):
        env.unwrapped.action_masks()
    _, first = env.reset(seed=0)
    for _ in range(5):
        _, _, _, _, info = env.step(env.action_space.sample())
        assert set(info) == set(first) and info["es_mask"].shape == (3,) and info["es_mask"].dtype == bool
        assert isinstance(info["latency_s"], np.floating) and isinstance(info["rewards"]["quality"], np.floating)
    par = envs_mod.multi_ue_v1.parallel_env(num_ues=2)
    _, infos = par.reset(seed=0)
    _, _, _, _, step_infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    assert all(set(infos[a]) == set(step_infos[a]) for a in par.possible_agents)


@pytest.mark.parametrize("action_type, bad", [
    ("multidiscrete", "ab"), ("multidiscrete", np.array([1 + 2j, 0])), ("multidiscrete", [True, False]),
    ("multidiscrete", object()), ("multidiscrete", [[1, 2], [3]]), ("discrete", "3"), ("discrete", True),
    ("discrete", 2.5), ("box", np.array([0.5 + 1j, 0.0])), ("box", ["0.5", "0.1"]), ("box", [True, False]),
])
def test_odd_actions_are_invalid_actions_and_change_nothing(action_type, bad):
    """Strings, complex numbers, booleans, objects and ragged lists are InvalidAction (one line, abbreviated),
    never numpy's own error nor a silent conversion."""
    from envs import InvalidAction

    env = gym.make("MEG/SingleES-v1", action_type=action_type)
    env.reset(seed=0)
    now = env.unwrapped.world.now_s.copy()
    with pytest.raises(InvalidAction) as err:
        env.step(bad)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300
    assert env.unwrapped.world.now_s.tolist() == now.tolist()


def test_step_after_truncation_raises_until_reset():
    env = gym.make("MEG/SingleES-v1", workload={"requests_per_episode": 2}).unwrapped
    env.reset(seed=0)
    a = np.array([0, 0])
    env.step(a)
    assert env.step(a)[3]
    with pytest.raises(RuntimeError, match="truncated .*call reset"):
        env.step(a)
    env.reset()
    env.step(a)
