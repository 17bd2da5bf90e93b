"""``multi_ue_v1``: UEs contending for edge servers (a PettingZoo ``ParallelEnv``).

Factories in the PettingZoo style: ``parallel_env(**kwargs)``, ``env(**kwargs)`` (the AEC
version, through ``pettingzoo.utils.parallel_to_aec``) and ``raw_env`` (the parallel class);
``vector_env(num_envs, **kwargs)``: ``num_envs`` copies as one Gymnasium vector env of agent rows
(parameter-sharing training without a SuperSuit loop).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from envs.codecs import InvalidAction, make_codec
from envs.common import (
    BIG,
    check_overrides,
    check_reward_type,
    feature_info,
    no_feature_info,
    obs_bounds,
    reward_space,
)
from meg_gym.core import Core

__all__ = ["MultiUeEnv", "MultiUeVectorEnv", "env", "parallel_env", "raw_env", "vector_env"]

_SNR_SCALE_DB = 30.0
_BIG = BIG


class _MegParallelEnv(ParallelEnv):
    """What the MEG parallel envs share: scenario loading, seeding, spaces, rendering."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array", "human"], "name": "", "is_parallelizable": True,
                                "render_fps": 4}

    def _setup(self, config: Any, backend: str | None, max_cycles: int | None, local_ratio: float | None,
               render_mode: str | None, world_kwargs: dict[str, Any], overrides: dict[str, Any],
               reward_type: str = "scalar") -> None:
        from meg_gym.config import load_scenario

        check_overrides(type(self).__name__, overrides)
        check_reward_type(reward_type)
        self.reward_type = reward_type
        if backend is not None:
            overrides["backend"] = backend
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"'render_mode' must be one of {self.metadata['render_modes']} or None "
                             f"(got {render_mode!r})")
        self.local_ratio = _check_local_ratio(local_ratio)
        self.scenario = load_scenario(config, **overrides)
        self.world = Core(self.scenario, copies=1, **world_kwargs)
        self.max_cycles = _check_max_cycles(max_cycles, self.scenario)
        self.render_mode = render_mode
        self._seed_rng = np.random.default_rng()
        self.agents: list[str] = []
        self._last: Any = None
        # the global state (skrl's MAPPO, PettingZoo's state()): every UE's observation row, as Core.observe
        w = self.world
        low, high = obs_bounds(w.num_es, w.obs_extra)
        self.state_space = spaces.Box(np.tile(low, w.ues), np.tile(high, w.ues), dtype=np.float32)
        self._state = np.zeros((1, w.ues, w.obs_width))
        if reward_type == "vector":
            self.reward_space = reward_space(self.scenario)

    def state(self) -> np.ndarray:
        """The world as every UE sees it: all UEs' observation rows, concatenated (``state_space``)."""
        if not self.world._started:
            raise RuntimeError("state() called before reset()")
        return self.world.observe(self._state, self.max_cycles).reshape(-1).astype(np.float32)

    def _terms(self, res: Any) -> np.ndarray:
        """Each UE's reward terms (UEs, the world's terms) of the last step, for ``reward_type="vector"``."""
        return np.stack([res.terms[k][0] for k in self.world.terms], axis=1)

    def _spaces(self, obs_low: np.ndarray, obs_high: np.ndarray, action_space: Any) -> None:
        # one object per agent, the same every call (observation_space(agent) is agent)
        self.observation_spaces = {a: spaces.Box(obs_low, obs_high, dtype=np.float32) for a in self.possible_agents}
        self.action_spaces = {a: _copy_space(action_space) for a in self.possible_agents}
        self._agent_index = {a: k for k, a in enumerate(self.possible_agents)}

    def observation_space(self, agent: str) -> spaces.Space:
        try:
            return self.observation_spaces[agent]
        except KeyError:
            raise ValueError(f"'agent' must be one of {self.possible_agents} (got {agent!r})") from None

    def action_space(self, agent: str) -> spaces.Space:
        try:
            return self.action_spaces[agent]
        except KeyError:
            raise ValueError(f"'agent' must be one of {self.possible_agents} (got {agent!r})") from None

    def _world_seed(self, seed: int | None) -> np.random.SeedSequence:
        """The episode's seed sequence: from ``seed``, or the next one of the last seeded stream."""
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
        return np.random.SeedSequence(int(self._seed_rng.integers(2**63 - 1)))

    def _check_actions(self, actions: Any) -> None:
        if not self.agents:
            raise RuntimeError("step() called with no live agents: the episode is over (or reset() was not called)")
        if not isinstance(actions, dict):
            raise InvalidAction(f"actions must be a dict agent -> action for agents {self.agents} "
                                f"(got {type(actions).__name__})")
        if len(actions) != len(self.agents) or any(a not in actions for a in self.agents):
            missing = [a for a in self.agents if a not in actions]
            extra = [a for a in actions if a not in self._agent_index]
            raise InvalidAction(f"actions must name every live agent {self.agents} once "
                                f"(missing {missing}, unknown {extra})")

    def _mix(self, local: np.ndarray, team: Any) -> np.ndarray:
        return _mix(local, team, self.local_ratio)

    def _obs_dict(self, obs: np.ndarray) -> dict[str, np.ndarray]:
        """Each live agent's row of ``obs`` (agents, features) as float32 (views of one array)."""
        return dict(zip(self.agents, obs.astype(np.float32)))

    def _finish(self, obs: np.ndarray, rewards: np.ndarray, infos: list[dict]) -> tuple:
        agents = self.agents
        done = self.epoch >= self.max_cycles
        obs_d = self._obs_dict(obs)
        rew_d = dict(zip(agents, rewards if rewards.ndim == 2 else rewards.tolist()))  # vector rewards: rows
        term_d = dict.fromkeys(agents, False)
        trunc_d = dict.fromkeys(agents, done)
        info_d = dict(zip(agents, infos))
        if done:
            self.agents = []
        return obs_d, rew_d, term_d, trunc_d, info_d

    @property
    def epoch(self) -> int:
        """Epochs served this episode."""
        return int(self.world.served[0])

    @property
    def decisions(self) -> list[Any]:
        """The placements in action-index order (each with ``.protocol`` and ``.es_ids``)."""
        return self.world.placements

    def _links(self) -> list[tuple[int, tuple[int, ...]]]:
        """(UE, ES ids) of the last step's requests that used the radio, for rendering
        (``_last``: the last step's placement indices per UE and its result)."""
        if self._last is None:
            return []
        pls = self.world.placements
        return [(k, pls[p].es_ids) for k, p in enumerate(self._last[0].tolist()) if pls[p].radio]

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the topology frame; ``human``: a one-line text frame on stdout (headless
        machines have no window to open); None: nothing."""
        if self.render_mode == "rgb_array":
            from envs.rendering import render_multi

            return render_multi(self)
        if self.render_mode == "human":
            w = self.world
            backlog = " ".join(f"{b:.2f}" for b in w.backlog_s()[0].tolist())
            print(f"{self.metadata['name']}  t={w.now_s[0]:.1f} s  step {self.epoch}/{self.max_cycles}  "
                  f"ES backlog s: {backlog}  links: {len(self._links())}")
        return None

    def close(self) -> None:
        pass


def _check_local_ratio(value: Any) -> float | None:
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0
    if value is not None and bad:
        raise ValueError(f"'local_ratio' must be a number in [0, 1] or None (got {value!r})")
    return None if value is None else float(value)


def _check_max_cycles(value: Any, scenario: Any) -> int:
    """Steps per episode: ``value``, or the scenario's ``requests_per_episode`` (None)."""
    if value is None:
        value = scenario.workload.requests_per_episode
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"'max_cycles' must be an integer >= 1 (got {value!r})")
    return int(value)


def _mix(local: np.ndarray, team: Any, local_ratio: float | None) -> np.ndarray:
    """PettingZoo MPE's mix of each agent's own reward with the team's (``local_ratio`` None: own only)."""
    if local_ratio is None:
        return local
    return local_ratio * local + (1.0 - local_ratio) * team


def _copy_space(space: spaces.Space) -> spaces.Space:
    import copy

    return copy.deepcopy(space)


class MultiUeEnv(_MegParallelEnv):
    """
    ## Description
    ``M`` UEs (agents ``ue_0 ... ue_{M-1}``) each send a stream of text-guided image-to-image
    requests to ``N`` shared edge servers. Every step each UE serves its current request: it
    picks the **protocol**, the **ES or ES set** and a **bandwidth request**. The ESs' cells
    and compute queues are shared (the world core ``meg_gym.core.Core``, one copy of M UEs): requests landing on one ES
    split its bandwidth (the requested shares are normalised when they exceed the cell) and
    queue behind each other, so one agent's choice changes the others' latency and quality.

    ## Action Space
    Per agent, as in the Gymnasium envs: a placement (``env.unwrapped.decisions``: protocol + ES
    ids; Full UE once) and a bandwidth share (the scenario's ``bandwidth_shares``),
    ``MultiDiscrete([placements, shares])`` by default (``action_type``: "multidiscrete" |
    "discrete" | "box"). A malformed action raises ``envs.InvalidAction`` naming the agent and
    the allowed range, and changes nothing.

    ## Observation Space
    Per agent, ``Box(4N + 4)`` float32, the layout of every MEG env (``meg_gym.core.Core.observe``):
    its uplink and downlink SNR to every ES over the whole cell (dB / 30), every ES's queue
    backlog (s / latency scale), every ES's bandwidth demand in the last step (sum of requested
    shares: above 1 means contention), its request's deadline (s / latency scale) and quality
    weight, its energy per request so far (relative to a Full-UE generation) and the episode's
    progress (steps / ``max_cycles``).

    ## Rewards
    Each agent's own reward is the Gymnasium envs' (``meg_gym.core.reward_terms``: weighted
    quality, latency, overhead, energy, deadline; the terms in ``info["rewards"]``). With
    ``local_ratio`` (as in PettingZoo's MPE) agent k gets ``local_ratio * r_k + (1 - local_ratio)
    * mean(r)``; ``None`` (default): ``r_k`` alone. ``reward_type="vector"``: the five terms
    (``meg_gym.core.REWARD_TERMS``) per agent, mixed the same way, with ``env.reward_space``.

    ## State
    ``state()`` / ``state_space``: every UE's observation row, concatenated (``Box(M (4N + 4))``).

    ## Episode End
    Truncation of every agent after ``max_cycles`` steps (default ``workload.requests_per_episode``).

    ## Arguments
    ``config`` (scenario; default ``configs/scenarios/multi_ue.yaml``), ``num_ues``, ``backend``
    ("profiled" | "live"), ``max_cycles``, ``local_ratio``, ``action_type``,
    ``max_es_per_request``, ``ue_positions_m`` / ``ue_snr_db`` (see ``meg_gym.core.Core``),
    ``render_mode`` ("rgb_array" | "human": a one-line text frame), ``reward_type`` ("scalar" |
    "vector"), and any scenario key as a keyword override.

    ## Version History
    * v1: the world core behind every env: the observation gains the UE's energy (``4N + 4``, the
      Gymnasium envs' layout); any scenario, the single-UE ones included.
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "name": "multi_ue_v1", "is_parallelizable": True,
                "render_fps": 4}

    def __init__(self, config: Any = "multi_ue", *, num_ues: int = 4, backend: str | None = None,
                 max_cycles: int | None = None, local_ratio: float | None = None, action_type: str = "multidiscrete",
                 max_es_per_request: int = 2, ue_positions_m: Any = None, ue_snr_db: Any = None,
                 render_mode: str | None = None, reward_type: str = "scalar", **overrides: Any) -> None:
        self._setup(config, backend, max_cycles, local_ratio, render_mode,
                    dict(ues=num_ues, max_es_per_request=max_es_per_request, ue_positions_m=ue_positions_m,
                         ue_snr_db=ue_snr_db), overrides, reward_type)
        w = self.world
        n, m = w.num_es, w.ues
        self.possible_agents = [f"ue_{k}" for k in range(m)]
        self.shares = np.array(self.scenario.bandwidth_shares, dtype=np.float64)
        self.codec = make_codec(action_type, len(w.placements), len(self.shares))
        low, high = obs_bounds(n, w.obs_extra)
        self._spaces(low, high, self.codec.space)
        self._obs = np.zeros((1, m, w.obs_width), dtype=np.float64)
        self._fast = action_type == "multidiscrete"
        self._nvec = np.array([self.codec.n_placements, self.codec.n_shares])  # the fast path's bounds
        self._placement_names = [(p.protocol, p.es_ids) for p in w.placements]  # for the infos

    # -- observation ----------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        return self.world.observe(self._obs, self.max_cycles)[0]

    # -- API -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        ss = self._world_seed(seed)
        self.world.reset(int(ss.generate_state(1, np.uint64)[0]))
        self.agents = self.possible_agents[:]
        self._last = None
        return self._obs_dict(self._observe()), {a: self._no_info() for a in self.agents}

    def _no_info(self) -> dict[str, Any]:
        """An agent's info before it served anything: the keys of every step's info."""
        nan = np.float64("nan")
        return {"rewards": dict.fromkeys(self.world.terms, np.float64(0.0)), "protocol": "",
                "es_mask": np.zeros(self.world.num_es, dtype=bool), "bandwidth_hz": nan, "latency_s": nan,
                "quality": nan, "deadline_missed": np.False_, "retransmissions": np.int64(0), "outage": np.False_,
                "attempts": np.int64(0), "es_steps": np.int64(0), "ue_steps": np.int64(0), "es_area": nan,
                **({} if self.world.cache is None else {"cache_hit": np.False_}),
                **no_feature_info(self.world, lambda: nan)}

    def check_action(self, agent: str, action: Any) -> None:
        """Raise :class:`envs.InvalidAction` naming ``agent`` if ``action`` is outside its space."""
        try:
            self.codec.decode(action)
        except InvalidAction as exc:
            raise InvalidAction(f"agent {agent!r}: {exc}") from None

    def _decode(self, actions: dict) -> tuple[np.ndarray, np.ndarray]:
        self._check_actions(actions)
        agents = self.agents
        if self._fast:  # the usual case: one integer array, range-checked at once
            try:
                arr = np.array(itemgetter(*agents)(actions))
            except ValueError:
                arr = None
            if arr is not None and arr.dtype.kind in "iu" and arr.shape == (len(agents), 2) \
                    and arr.min() >= 0 and (arr < self._nvec).all():
                return arr[:, 0].astype(np.int64), self.shares[arr[:, 1]]
        pl = np.empty(len(agents), dtype=np.int64)
        sh = np.empty(len(agents), dtype=np.int64)
        for k, a in enumerate(agents):
            try:
                pl[k], sh[k] = self.codec.decode(actions[a])
            except InvalidAction as exc:
                raise InvalidAction(f"agent {a!r}: {exc}") from None
        return pl, self.shares[sh]

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        placements, shares = self._decode(actions)  # raises before anything changes
        w = self.world
        res = w.step_checked(placements[None], shares[None])  # checked by _decode
        self._last = (placements, res)
        reward = res.reward[0] if self.reward_type == "scalar" else self._terms(res).astype(np.float32)
        rewards = self._mix(reward, reward.mean(axis=0))
        names, masks = self._placement_names, w.es_mask
        t = res.terms
        infos = [  # numpy scalars and fixed shapes, as the single env's
            {"rewards": {"quality": t["quality"][0, k], "latency": t["latency"][0, k],
                         "overhead": t["overhead"][0, k], "energy": t["energy"][0, k],
                         "deadline": t["deadline"][0, k]},
             "protocol": names[p][0], "es_mask": masks[p], "bandwidth_hz": res.bandwidth_hz[0, k],
             "latency_s": res.latency_s[0, k], "quality": res.quality[0, k],
             "deadline_missed": res.deadline_missed[0, k], "retransmissions": res.retransmissions[0, k],
             "outage": res.outage[0, k], "attempts": res.attempts[0, k], "es_steps": w.es_steps[p],
             "ue_steps": w.ue_steps[p], "es_area": w.es_area[p]}
            for k, p in enumerate(placements.tolist())
        ]
        if res.cache_hit is not None:
            for k, info in enumerate(infos):
                info["cache_hit"] = res.cache_hit[0, k]
        if len(w.terms) > 5 or res.leakage is not None or res.aoi_s is not None:  # the features' terms and keys
            for k, info in enumerate(infos):
                info["rewards"].update({name: t[name][0, k] for name in w.terms[5:]})
                info.update(feature_info(res, lambda a, k=k: a[0, k]))
        return self._finish(self._observe(), rewards, infos)


class MultiUeVectorEnv(VectorEnv):
    """``num_envs`` copies of ``multi_ue_v1`` with ``num_ues`` agents each, as one Gymnasium vector env of
    ``num_envs * num_ues`` agent rows (row ``c * num_ues + k`` is agent ``ue_k`` of copy ``c``): the world
    core with ``num_envs`` copies of ``num_ues`` UEs, for training one policy shared by every agent
    without a per-copy Python loop (what SuperSuit's ``pettingzoo_env_to_vec_env_v1`` and
    ``concat_vec_envs_v1`` build from Python envs). Spaces, observation layout and rewards are
    ``multi_ue_v1``'s per agent (``local_ratio`` mixes within a copy); infos are dicts of arrays per
    row. Every copy's episode ends after ``max_cycles`` steps together; autoreset is next-step
    (the step after resets every copy; reward 0)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: Any = "multi_ue", *, num_ues: int = 4, backend: str | None = None,
                 max_cycles: int | None = None, local_ratio: float | None = None, action_type: str = "multidiscrete",
                 max_es_per_request: int = 2, ue_positions_m: Any = None, ue_snr_db: Any = None,
                 **overrides: Any) -> None:
        from meg_gym.config import load_scenario

        check_overrides(type(self).__name__, overrides)
        if backend is not None:
            overrides["backend"] = backend
        sc = load_scenario(config, **overrides)
        if sc.backend != "profiled":
            raise ValueError(f"'backend' must be 'profiled' for the vectorised multi-agent env (got {sc.backend!r})")
        self.scenario = sc
        self.world = Core(sc, copies=num_envs, ues=num_ues, max_es_per_request=max_es_per_request,
                          ue_positions_m=ue_positions_m, ue_snr_db=ue_snr_db)
        w = self.world
        self.num_envs = w.copies * w.ues
        self.max_cycles, self.local_ratio = _check_max_cycles(max_cycles, sc), _check_local_ratio(local_ratio)
        self.decisions = w.placements
        self.shares = np.asarray(sc.bandwidth_shares, dtype=np.float64)
        self.codec = make_codec(action_type, len(w.placements), len(self.shares))
        low, high = obs_bounds(w.num_es, w.obs_extra)
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.single_action_space = self.codec.space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._obs = np.zeros((w.copies, w.ues, w.obs_width))
        self._needs_reset = False
        self._protocols = np.array([p.protocol for p in w.placements])

    def _observe(self) -> np.ndarray:
        return self.world.observe(self._obs, self.max_cycles).reshape(self.num_envs, -1).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        self.world.reset(seed)
        self._needs_reset = False
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        w = self.world
        if not w._started:
            raise RuntimeError("step() called before reset()")
        placement, share = self.codec.decode_batch(actions, self.num_envs)  # raises before any state changes
        n = self.num_envs
        if self._needs_reset:
            w.reset()
            self._needs_reset = False
            zero = np.zeros(n)
            return self._observe(), zero, np.zeros(n, bool), np.zeros(n, bool), {
                "rewards": {k: zero.copy() for k in w.terms}, "latency_s": zero.copy(), "quality": zero.copy(),
                "bandwidth_hz": zero.copy(), "deadline_missed": np.zeros(n, bool),
                "retransmissions": np.zeros(n, np.int64), "outage": np.zeros(n, bool),
                "attempts": np.zeros(n, np.int64), "protocol": self._protocols[placement],
                "es_steps": np.zeros(n, np.int64), "ue_steps": np.zeros(n, np.int64), "es_area": np.zeros(n),
                **({} if w.cache is None else {"cache_hit": np.zeros(n, bool)}),
                **no_feature_info(w, lambda: zero.copy())}
        res = w.step_checked(placement.reshape(w.copies, w.ues), self.shares[share].reshape(w.copies, w.ues))
        reward = _mix(res.reward, res.reward.mean(axis=1, keepdims=True), self.local_ratio)
        done = bool(w.served[0] >= self.max_cycles)
        self._needs_reset = done
        info = {"rewards": {k: v.reshape(-1) for k, v in res.terms.items()}, "latency_s": res.latency_s.reshape(-1),
                "quality": res.quality.reshape(-1), "bandwidth_hz": res.bandwidth_hz.reshape(-1),
                "deadline_missed": res.deadline_missed.reshape(-1), "retransmissions": res.retransmissions.reshape(-1),
                "outage": res.outage.reshape(-1), "attempts": res.attempts.reshape(-1),
                "protocol": self._protocols[placement], "es_steps": w.es_steps[placement],
                "ue_steps": w.ue_steps[placement], "es_area": w.es_area[placement]}
        if res.cache_hit is not None:
            info["cache_hit"] = res.cache_hit.reshape(-1)
        info.update(feature_info(res, lambda a: a.reshape(-1)))
        return self._observe(), reward.reshape(-1), np.zeros(n, bool), np.full(n, done), info


def vector_env(num_envs: int = 1, **kwargs: Any) -> MultiUeVectorEnv:
    """``num_envs`` copies of ``multi_ue_v1`` as one Gymnasium vector env of agent rows (:class:`MultiUeVectorEnv`)."""
    return MultiUeVectorEnv(num_envs, **kwargs)


def raw_env(**kwargs: Any) -> MultiUeEnv:
    """The parallel environment class itself."""
    return MultiUeEnv(**kwargs)


def parallel_env(**kwargs: Any) -> MultiUeEnv:
    """``multi_ue_v1`` as a PettingZoo ``ParallelEnv``."""
    return MultiUeEnv(**kwargs)


class _CheckedAEC(parallel_to_aec_wrapper):
    """PettingZoo's parallel-to-AEC conversion, with each action checked at the turn it is given: a bad
    one raises there (naming the agent) and is not stored, so the env stays usable."""

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if action is not None and not (self.terminations.get(agent) or self.truncations.get(agent)):
            self.env.check_action(agent, action)
        super().step(action)


def aec(par_env: ParallelEnv) -> Any:
    """A MEG parallel env as a PettingZoo ``AECEnv`` (agents act in turn; the world steps after the last)."""
    return OrderEnforcingWrapper(_CheckedAEC(par_env))


def env(**kwargs: Any) -> Any:
    """``multi_ue_v1`` as a PettingZoo ``AECEnv`` (agents act in turn; the world steps after the last)."""
    return aec(parallel_env(**kwargs))
