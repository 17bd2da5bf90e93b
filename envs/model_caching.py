"""Model caching views: ``MEG/ModelCaching-v0`` (the central controller: placement, share and every
ES's cache set) and ``model_caching_v0`` (PettingZoo: the ESs as agents, each choosing its own set)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.codecs import InvalidAction
from envs.common import BIG, obs_bounds
from envs.meg_env import MegEnv
from envs.multi_ue import _MegParallelEnv, aec

__all__ = ["ModelCachingEnv", "ModelCachingParallelEnv", "env", "parallel_env", "raw_env"]


class ModelCachingEnv(MegEnv):
    """
    ## Description
    The MEG request stream of :class:`envs.MegEnv` with model caching at the ESs
    (``meg_gym.caching``): every request asks for one of the scenario's catalogue models (a Zipf
    popularity over ``caching.models``); each ES holds a set of models that fits its GPU memory
    (``caching.es_memory_gb``); a model newly cached loads from the cloud over the ES's backhaul
    (``memory_gb * 8e9 / caching.backhaul_bps`` s). A request is a hit when its model is loaded at
    every ES it uses; a miss waits for a load, goes to the cloud or falls back to a loaded model
    at lower quality (``caching.on_miss``). The agent is the central controller: per request it
    picks the placement, the bandwidth share and the set every ES holds from now on (cache and
    evict in one). The world is ``meg_gym.core.Core`` with one copy of one UE.

    ## Action Space
    ``MultiDiscrete([placements, shares, sets, ..., sets])`` (one ``sets`` per ES): the
    placement (``env.unwrapped.decisions``), the share (``scenario.bandwidth_shares``) and per
    ES an index into ``env.unwrapped.cache_sets`` (the catalogue subsets that fit the ES's
    memory, as model names; index 0 is the empty set). A malformed action raises
    ``envs.InvalidAction`` and changes nothing.

    ## Observation Space
    ``Box(4N + 4 + K + 4NK)`` float32 (N ESs, K models): the MEG observation
    (``meg_gym.core.Core.observe``; with an ``eavesdropper`` its N + 1 SNRs follow, as in
    :class:`envs.MegEnv`), then the request's model one-hot, then per ES and model:
    loaded (0/1), the share of its load still to run, the recency of its last request at the
    ES (exp(-age / ``caching.context_half_life_s``)) and its share of the ES's requests.

    ## Rewards
    The MEG reward terms (``info["rewards"]``) of what the request met: a miss's wait or the
    cloud's latency counts in the latency and deadline terms, a fallback's lower quality in the
    quality term. ``info["cache_hit"]``, ``info["model"]`` and ``info["attempts"]`` per request.
    With an ``eavesdropper`` the core's leakage term and ``info["leakage"]``, as in :class:`envs.MegEnv`
    (the leakage of the tensors sent over the radio: a miss served by the cloud or by another model
    sends the same ones; docs/envs/eavesdropper.md).

    ## Episode End
    Truncation after ``workload.requests_per_episode`` requests; caches start empty each episode.

    ## Arguments
    ``config`` (default the shipped ``model_caching`` scenario; it must set ``caching``),
    ``reward_type``, ``render_mode`` and any scenario key as a keyword override;
    ``action_type`` and ``observation_type`` take only ``"multidiscrete"`` and ``"box"``.

    ## Version History
    * v0: initial version.
    """

    def __init__(self, config: Any = "model_caching", *, action_type: str = "multidiscrete",
                 observation_type: str = "box", reward_type: str = "scalar", render_mode: str | None = None,
                 **overrides: Any) -> None:
        # one action and one observation layout (the training configs name them, as for the other MEG ids)
        if action_type != "multidiscrete":
            raise ValueError(f"'action_type' must be one of ['multidiscrete'] for MEG/ModelCaching "
                             f"(got {action_type!r})")
        if observation_type != "box":
            raise ValueError(f"'observation_type' must be one of ['box'] for MEG/ModelCaching "
                             f"(got {observation_type!r})")
        super().__init__(config, action_type="multidiscrete", observation_type="box", reward_type=reward_type,
                         render_mode=render_mode, **overrides)
        cache = self.world.cache
        if cache is None:
            raise ValueError("'caching' must be set in the scenario of MEG/ModelCaching (got None): see "
                             "configs/scenarios/model_caching.yaml")
        self.cache_sets = [tuple(n for j, n in enumerate(cache.names) if int(s) >> j & 1) for s in cache.sets]
        n, k = self._n, cache.k
        self._nvec = np.array([len(self.decisions), len(self.shares)] + [len(self.cache_sets)] * n)
        self.action_space = spaces.MultiDiscrete(self._nvec)
        # the MEG row with the features' columns (an eavesdropper's SNRs: Core.obs_extra), as MegEnv's
        low, high = obs_bounds(n, self.world.obs_extra)
        extra = k + 4 * n * k
        self.observation_space = spaces.Box(np.concatenate([low, np.zeros(extra, np.float32)]),
                                            np.concatenate([high, np.ones(extra, np.float32)]), dtype=np.float32)
        self._cache_action = np.zeros((1, n), dtype=np.int64)

    def _observe(self) -> np.ndarray:
        w = self.world
        feats = w.cache.features(w.models, w.now_s, w.scenario.caching.context_half_life_s)[0, 0]
        return np.concatenate([w.observe(self._obs)[0, 0], feats]).astype(np.float32)

    def decode(self, action: Any) -> tuple[int, int, np.ndarray]:
        """(placement, share index, cache sets per ES) of an action, or :class:`envs.InvalidAction`."""
        a = np.asarray(action)
        if a.shape != self._nvec.shape or a.dtype.kind not in "iu" and not (
                a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a % 1 == 0)):
            raise InvalidAction(f"action must be {len(self._nvec)} integers [placement, share, "
                                f"{self._n} cache sets] (got {action!r})")
        a = a.astype(np.int64)
        bad = np.flatnonzero((a < 0) | (a >= self._nvec))
        if len(bad):
            i = int(bad[0])
            raise InvalidAction(f"action[{i}] must be in [0, {self._nvec[i] - 1}] (got {a[i]})")
        return int(a[0]), int(a[1]), a[2:]

    def encode(self, placement: int, share: int, cache_sets: Any) -> np.ndarray:
        """The action of a placement, a share index and one cache-set index per ES."""
        return np.array([placement, share, *np.asarray(cache_sets).reshape(-1).tolist()], dtype=np.int64)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        self._check_steppable()
        placement, share, sets = self.decode(action)  # raises before any state changes
        self._cache_action[0] = sets
        return self._step(placement, share, self._cache_action)

    def action_masks(self) -> np.ndarray:
        raise NotImplementedError("MEG/ModelCaching has no action masks (every cache set fits by construction)")


class ModelCachingParallelEnv(_MegParallelEnv):
    """
    ## Description
    The per-ES form of model caching (PettingZoo parallel API): the ESs are the agents
    (``es_0 ... es_{N-1}``), each deciding every epoch which set of catalogue models it holds
    from now on; ``num_ues`` UEs each send one request per epoch for a Zipf-drawn model, routed
    by the world core's cache-aware rule (``meg_gym.caching.ModelCache.route``: to an ES with the
    model loaded, the least backlogged of them, else the least backlogged ES) with the
    scenario's first protocol at the whole band. Everything else is ``MEG/ModelCaching-v0``'s.

    ## Spaces
    ``action_space(agent)``: ``Discrete(len(env.cache_sets))``, the set the ES holds from now.
    ``observation_space(agent)``: ``Box(1 + K + 4K)`` float32: the ES's queue backlog (s / latency
    scale), the share of the epoch's requests asking each model, then the ES's per-model
    cache features (loaded, load still to run, recency, request share; ``ModelCache.features``).

    ## Rewards
    Each ES: the mean scalar reward of the requests it served this epoch (0 when none), mixed
    with the mean over all requests by ``local_ratio`` (None: the local reward alone).
    ``infos[agent]``: ``requests``, ``hits`` (of them), ``cache_set`` (model names); with an
    ``eavesdropper``, ``leakage``: the mean leakage of the requests the ES served (NaN when none; the
    reward carries the core's leakage term; the agents pick cache sets only, so their observations
    hold no eavesdropper SNRs).

    ## Arguments
    ``config`` (default ``model_caching``; must set ``caching``), ``num_ues``, ``max_cycles``,
    ``local_ratio`` and any scenario key as a keyword override.

    ## Version History
    * v0: initial version.
    """

    metadata = {**_MegParallelEnv.metadata, "name": "model_caching_v0"}

    def __init__(self, config: Any = "model_caching", *, num_ues: int = 4, max_cycles: int | None = None,
                 local_ratio: float | None = None, **overrides: Any) -> None:
        self._setup(config, None, max_cycles, local_ratio, None, {"ues": num_ues}, overrides)
        w = self.world
        if w.cache is None:
            raise ValueError("'caching' must be set in the scenario of model_caching_v0 (got None): see "
                             "configs/scenarios/model_caching.yaml")
        cache = w.cache
        self.cache_sets = [tuple(n for j, n in enumerate(cache.names) if int(s) >> j & 1) for s in cache.sets]
        self.possible_agents = [f"es_{i}" for i in range(w.num_es)]
        k = cache.k
        self._spaces(np.zeros(1 + 5 * k, np.float32), np.concatenate([[BIG], np.ones(5 * k)]).astype(np.float32),
                     spaces.Discrete(len(self.cache_sets)))
        protocol = next(p.protocol for p in w.placements if len(p.es_ids) == 1)
        self._by_es = np.array([w.placement_index(protocol, (i,)) for i in range(w.num_es)])
        self._full = np.ones((1, w.ues))

    def _observe(self) -> np.ndarray:
        w = self.world
        c = w.cache
        n, k = w.num_es, c.k
        asked = np.bincount(w.models[0], minlength=k) / w.ues
        per_es = c.features(w.models[:, :1], w.now_s, w.scenario.caching.context_half_life_s)[0, 0, k:]
        per_es = per_es.reshape(n, 4 * k)
        backlog = w.backlog_s()[0, :, None] / w.workload.latency_scale_s
        return np.concatenate([backlog, np.tile(asked, (n, 1)), per_es], axis=1)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        ss = self._world_seed(seed)
        self.world.reset(int(ss.generate_state(1, np.uint64)[0]))
        self.agents = self.possible_agents[:]
        return self._obs_dict(self._observe()), {a: {"requests": 0, "hits": 0, "cache_set": ()} for a in self.agents}

    def _decode(self, actions: dict) -> np.ndarray:
        self._check_actions(actions)
        n_sets = len(self.cache_sets)
        out = np.empty((1, len(self.agents)), dtype=np.int64)
        for i, a in enumerate(self.agents):
            v = np.asarray(actions[a])
            if v.shape not in ((), (1,)) or v.dtype.kind not in "iu" or not 0 <= int(v.reshape(-1)[0]) < n_sets:
                raise InvalidAction(f"agent {a!r}: action must be a cache set in [0, {n_sets - 1}] "
                                    f"(got {actions[a]!r})")
            out[0, i] = int(v.reshape(-1)[0])
        return out

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        sets = self._decode(actions)  # raises before anything changes
        w = self.world
        es = w.cache.route(w.models, w.backlog_s(), w.now_s)[0]
        res = w.step_checked(self._by_es[es][None], self._full, cache=sets)
        reward, hit = res.reward[0], res.cache_hit[0]
        team = float(reward.mean())
        served = [es == i for i in range(w.num_es)]
        local = np.array([reward[m].mean() if m.any() else 0.0 for m in served])
        infos = [{"requests": int(m.sum()), "hits": int(hit[m].sum()), "cache_set": self.cache_sets[int(sets[0, i])]}
                 for i, m in enumerate(served)]
        if res.leakage is not None:  # the mean leakage of the requests each ES served (NaN: it served none)
            for m, info in zip(served, infos):
                info["leakage"] = float(res.leakage[0][m].mean()) if m.any() else math.nan
        return self._finish(self._observe(), self._mix(local, team), infos)


def raw_env(**kwargs: Any) -> ModelCachingParallelEnv:
    """The per-ES parallel environment class itself."""
    return ModelCachingParallelEnv(**kwargs)


def parallel_env(**kwargs: Any) -> ModelCachingParallelEnv:
    """``model_caching_v0``: the ESs as agents choosing their cache sets (PettingZoo parallel API)."""
    return ModelCachingParallelEnv(**kwargs)


def env(**kwargs: Any) -> Any:
    """The AEC form of :func:`parallel_env` (PettingZoo's ``parallel_to_aec``), actions checked."""
    return aec(parallel_env(**kwargs))
