"""The views of one world agree: the single env, the native vector env and the multi-UE env with one
UE are the same world (meg_gym.core.Core), so one fixed policy meets the same statistics in each."""

import gymnasium as gym
import numpy as np
import pytest

import envs

REQUESTS = 20_000
CHUNK = 1_000  # requests per batch mean: the queues correlate neighbouring requests, batch means do not


def _policy(t: int, n_placements: int, n_shares: int) -> tuple[int, int]:
    """A fixed open-loop policy that visits every placement and share."""
    return t % n_placements, (t // n_placements) % n_shares


def _single(env_id: str) -> dict[str, np.ndarray]:
    env = gym.make(env_id)
    env.reset(seed=1)
    u = env.unwrapped
    p, s = len(u.decisions), len(u.shares)
    out = {"reward": [], "latency_s": []}
    t = 0
    for _ in range(REQUESTS):
        _, r, _, trunc, info = env.step(np.array(_policy(t, p, s)))
        out["reward"].append(r)
        out["latency_s"].append(info["latency_s"])
        t += 1
        if trunc:
            env.reset()
            t = 0
    return {k: np.asarray(v) for k, v in out.items()}


def _vector(env_id: str) -> dict[str, np.ndarray]:
    copies = 50
    vec = gym.make_vec(env_id, num_envs=copies, vectorization_mode="vector_entry_point")
    vec.reset(seed=2)
    u = vec.unwrapped
    p, s = len(u.decisions), len(u.shares)
    out = {"reward": [], "latency_s": []}
    t = 0
    while len(out["reward"]) * copies < REQUESTS:
        a, b = _policy(t, p, s)
        _, r, _, trunc, info = vec.step(np.tile([a, b], (copies, 1)))
        out["reward"].append(r)
        out["latency_s"].append(info["latency_s"])
        t += 1
        if trunc.all():
            vec.reset()  # a fresh episode now, instead of the autoreset step's zero reward
            t = 0
    # (steps, copies) -> each copy's stream, one after another
    return {k: np.asarray(v).T.reshape(-1) for k, v in out.items()}


def _multi_ue(config: str, max_es: int | None) -> dict[str, np.ndarray]:
    env = envs.multi_ue_v1.parallel_env(config=config, num_ues=1, backend="profiled", max_es_per_request=max_es)
    env.reset(seed=3)
    p, s = len(env.decisions), len(env.shares)
    out = {"reward": [], "latency_s": []}
    t = 0
    for _ in range(REQUESTS):
        _, r, _, trunc, info = env.step({"ue_0": np.array(_policy(t, p, s))})
        out["reward"].append(r["ue_0"])
        out["latency_s"].append(info["ue_0"]["latency_s"])
        t += 1
        if trunc["ue_0"]:
            env.reset()
            t = 0
    return {k: np.asarray(v) for k, v in out.items()}


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    means = x[: len(x) // CHUNK * CHUNK].reshape(-1, CHUNK).mean(axis=1)
    return float(x.mean()), float(means.std(ddof=1) / np.sqrt(len(means)))


@pytest.mark.parametrize("env_id, config, max_es", [("MEG/SingleES-v1", "case_study", None),
                                                    ("MEG/MultiES-v1", "multi_es", 3)])
def test_single_vector_and_multi_ue_views_agree(env_id, config, max_es):
    multi = envs.multi_ue_v1.parallel_env(config=config, num_ues=1, backend="profiled", max_es_per_request=max_es)
    single = gym.make(env_id).unwrapped
    assert [(d.protocol, d.es_ids) for d in multi.decisions] == [(d.protocol, d.es_ids) for d in single.decisions]
    assert multi.observation_space("ue_0") == single.observation_space
    runs = {"single": _single(env_id), "vector": _vector(env_id), "multi_ue": _multi_ue(config, max_es)}
    for key in ("reward", "latency_s"):
        stats = {name: _mean_se(run[key]) for name, run in runs.items()}
        names = list(stats)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                (ma, sa), (mb, sb) = stats[a], stats[b]
                assert abs(ma - mb) <= 4.5 * np.hypot(sa, sb), (key, stats)
