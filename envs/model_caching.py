"""``MEG/ModelCaching-v0``: serve MEG requests and decide which generation models the ESs keep cached."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from envs.codecs import InvalidAction
from envs.common import obs_bounds
from envs.meg_env import MegEnv

__all__ = ["ModelCachingEnv"]


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
    (``meg_gym.core.Core.observe``), then the request's model one-hot, then per ES and model:
    loaded (0/1), the share of its load still to run, the recency of its last request at the
    ES (exp(-age / ``caching.context_half_life_s``)) and its share of the ES's requests.

    ## Rewards
    The MEG reward terms (``info["rewards"]``) of what the request met: a miss's wait or the
    cloud's latency counts in the latency and deadline terms, a fallback's lower quality in the
    quality term. ``info["cache_hit"]``, ``info["model"]`` and ``info["attempts"]`` per request.

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
        low, high = obs_bounds(n)
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
        w = self.world
        if not w._started:
            raise RuntimeError("step() called before reset()")
        if w.served.item() >= w.workload.requests_per_episode:
            raise RuntimeError(f"step() after the episode was truncated ({w.workload.requests_per_episode} requests "
                               f"served): call reset()")
        placement, share, sets = self.decode(action)  # raises before any state changes
        self._cache_action[0] = sets
        return self._step(placement, share, self._cache_action)

    def action_masks(self) -> np.ndarray:
        raise NotImplementedError("MEG/ModelCaching has no action masks (every cache set fits by construction)")
