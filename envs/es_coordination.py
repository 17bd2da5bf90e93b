"""``es_coordination_v1``: edge servers coordinating admission, bandwidth and cooperation.

Factories in the PettingZoo style: ``parallel_env(**kwargs)``, ``env(**kwargs)`` (AEC) and
``raw_env``. The UEs' own choices (protocol and home ES) come from a policy of
:data:`UE_POLICIES` or any callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from envs.codecs import InvalidAction, _show
from envs.multi_ue import _BIG, _SNR_SCALE_DB, _MegParallelEnv, aec

__all__ = ["COOPERATIVE", "MODES", "UE_POLICIES", "EsCoordinationEnv", "env", "parallel_env", "raw_env"]

# what an ES does with a request in one of its slots
MODES = ("reject", "serve", "cooperate", "hand_over")
# the cooperative (several ESs share one generation) protocol a request's protocol turns into:
# seed-based ones into UIDCG (sub-seeds), the sketch-based one into DCSUC (partial sketches)
COOPERATIVE = {"full_es": "uidcg", "uieg": "uidcg", "eiug": "uidcg", "ciag": "uidcg", "esuc": "dcsuc"}
_SLOT_FEATURES = 8
# with an eavesdropper (scenario key 'eavesdropper'), per slot also its SNR to the UE's send, to this ES's
# and to the partner's (dB / 30): the sends a serve, a cooperation and a hand-over put on the air
_EVE_FEATURES = 3


def _policy_nearest(world: Any, rng: np.random.Generator, protocols: list[str]) -> list[tuple[str, int]]:
    """Each UE asks the ES with its best uplink SNR, for a protocol drawn uniformly."""
    best = world.snr_table_db()[0, :, :, 0].argmax(axis=1).tolist()
    picks = rng.integers(len(protocols), size=world.ues).tolist()
    return [(protocols[p], i) for p, i in zip(picks, best)]


def _policy_least_loaded(world: Any, rng: np.random.Generator, protocols: list[str]) -> list[tuple[str, int]]:
    """Each UE asks the ES with the smallest queue backlog now, for a protocol drawn uniformly."""
    best = int(world.backlog_s()[0].argmin())
    picks = rng.integers(len(protocols), size=world.ues).tolist()
    return [(protocols[p], best) for p in picks]


def _policy_random(world: Any, rng: np.random.Generator, protocols: list[str]) -> list[tuple[str, int]]:
    """Each UE asks a uniformly drawn ES for a uniformly drawn protocol."""
    picks = rng.integers(len(protocols), size=world.ues).tolist()
    es = rng.integers(world.num_es, size=world.ues).tolist()
    return [(protocols[p], i) for p, i in zip(picks, es)]


UE_POLICIES: dict[str, Callable[..., list[tuple[str, int]]]] = {
    "nearest": _policy_nearest,
    "least_loaded": _policy_least_loaded,
    "random": _policy_random,
}


class EsCoordinationEnv(_MegParallelEnv):
    """
    ## Description
    ``N`` edge servers (agents ``es_0 ... es_{N-1}``) serve ``M`` UEs. Every step a batch of
    requests arrives, one per UE; each UE's policy (``ue_policy``) picks the protocol it wants
    and the ES it asks (its home ES). Up to ``max_requests_per_es`` requests fill the home
    ES's slots (in UE order); the rest overflow and the UE serves them itself (Full UE). Each
    ES then decides, per slot, what happens to the request and how much of its cell it gets.
    The world underneath is the world core of ``multi_ue_v1`` (``meg_gym.core.Core``, one copy
    of ``M`` UEs): shared ES queues and bandwidth, one channel per UE.

    ## Action Space
    Per ES, ``MultiDiscrete([4, S] * K)`` for its ``K`` slots: a mode and a bandwidth share
    (index into the scenario's ``bandwidth_shares``). Modes (:data:`MODES`): 0 reject (the UE
    falls back to Full UE), 1 serve the UE's protocol here, 2 cooperate: serve it with the
    cooperative protocol (:data:`COOPERATIVE`: UIDCG for seed-based, DCSUC for sketch-based)
    together with the request's partner ES, 3 hand it over to the partner ES. The partner is
    the other ES with the best uplink SNR to that UE. Shares on an ES are normalised when they
    exceed its cell (the same rule as ``multi_ue_v1``); a cooperative request runs at its
    smaller allocation. Empty slots ignore their action. A malformed action raises
    ``envs.InvalidAction`` naming the agent and the allowed range, and changes nothing.

    ## Observation Space
    Per ES, ``Box(3N + 1 + 8K)`` float32: its own index (one-hot), every ES's backlog
    (s / latency scale), every ES's bandwidth demand in the last step, the episode's progress,
    then per slot: occupied (0/1), the UE's uplink and downlink SNR to this ES and uplink SNR
    to the partner (dB / 30), the partner's backlog, the request's deadline (s / latency
    scale) and quality weight, and its protocol (index in ``ue_protocols`` / count). With an
    ``eavesdropper`` in the scenario each slot has 3 more (``Box(3N + 1 + 11K)``): the
    eavesdropper's SNR to the UE's send, to this ES's and to the partner's over the whole cell
    (dB / 30; ``meg_gym.core.Core.eve_snr_table_db``).

    ## Rewards
    Every request gets the single-UE reward (``meg_gym.core.reward_terms``). The team reward is
    their mean over the batch (overflow and rejected requests included, served by Full UE); an
    ES's individual reward is the mean over the requests in its slots (0 if none). ES reward =
    ``local_ratio * individual + (1 - local_ratio) * team`` (default ``local_ratio`` 0.5).
    With an ``eavesdropper`` the request's reward has the core's leakage term (``reward.weights.leakage``,
    docs/envs/eavesdropper.md) and ``infos[agent]["leakage"]`` is each slot's leakage in [0, 1]
    (``(K,)``, NaN in an empty slot; the core's ``CoreStep.leakage`` of the request in that slot).

    ## Episode End
    Truncation of every agent after ``max_cycles`` steps (default ``workload.requests_per_episode``).

    ## Arguments
    ``config`` (default ``configs/scenarios/es_coordination.yaml``), ``num_ues``,
    ``max_requests_per_es``, ``ue_policy`` (a name of :data:`UE_POLICIES` or a callable
    ``(core, rng, protocols) -> [(protocol, es_id)] * num_ues``, ``core`` the
    ``meg_gym.core.Core`` whose read-outs have a leading copies axis of 1), ``ue_protocols`` (default: the
    scenario's single-ES protocols that use an ES), ``backend``, ``max_cycles``,
    ``local_ratio``, ``ue_positions_m`` / ``ue_snr_db``, ``render_mode`` ("rgb_array" | "human"), ``action_type``
    ("multidiscrete" | "discrete": one index over all slots), ``reward_type`` ("scalar" | "vector": the
    five terms, team and individual means mixed as above), and scenario overrides.

    ## Version History
    * v1: on the world core shared with every env (ES queues start in their stationary workload;
      UE policies get the core); ``action_type="discrete"``, ``reward_type="vector"``, ``state()``,
      ``render_mode="human"``.
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array", "human"], "name": "es_coordination_v1", "is_parallelizable": True,
                "render_fps": 4}

    def __init__(self, config: Any = "es_coordination", *, num_ues: int = 8, max_requests_per_es: int = 4,
                 ue_policy: str | Callable[..., Any] = "nearest", ue_protocols: Any = None,
                 backend: str | None = None, max_cycles: int | None = None, local_ratio: float | None = 0.5,
                 ue_positions_m: Any = None, ue_snr_db: Any = None, render_mode: str | None = None,
                 action_type: str = "multidiscrete", reward_type: str = "scalar", **overrides: Any) -> None:
        if action_type not in ("multidiscrete", "discrete"):
            raise ValueError(f"'action_type' must be one of ['multidiscrete', 'discrete'] (got {action_type!r})")
        self.action_type = action_type
        self._setup(config, backend, max_cycles, local_ratio, render_mode,
                    dict(ues=num_ues, max_es_per_request=2, ue_positions_m=ue_positions_m, ue_snr_db=ue_snr_db),
                    overrides, reward_type)
        w = self.world
        sc = self.scenario
        if w.num_es < 2:
            raise ValueError(f"'num_es' must be >= 2 for es_coordination_v1: cooperation and hand-over need a "
                             f"neighbour (got {w.num_es})")
        if isinstance(max_requests_per_es, bool) or not isinstance(max_requests_per_es, int) \
                or max_requests_per_es < 1:
            raise ValueError(f"'max_requests_per_es' must be an integer >= 1 (got {max_requests_per_es!r})")
        self.slots = max_requests_per_es
        if isinstance(ue_policy, str):
            if ue_policy not in UE_POLICIES:
                raise ValueError(f"'ue_policy' must be one of {sorted(UE_POLICIES)} or a callable (got {ue_policy!r})")
            self.ue_policy = UE_POLICIES[ue_policy]
        elif callable(ue_policy):
            self.ue_policy = ue_policy
        else:
            raise ValueError(f"'ue_policy' must be one of {sorted(UE_POLICIES)} or a callable (got {ue_policy!r})")
        offered = list(sc.protocols)
        if ue_protocols is None:
            ue_protocols = [p for p in offered if p in COOPERATIVE]
        ue_protocols = list(ue_protocols)
        for p in ue_protocols:
            if p not in COOPERATIVE:
                raise ValueError(f"'ue_protocols' must name single-ES protocols that use an ES, "
                                 f"{sorted(COOPERATIVE)} (got {p!r})")
            if p not in offered or COOPERATIVE[p] not in offered:
                raise ValueError(f"'ue_protocols' entry {p!r} needs {p!r} and its cooperative form "
                                 f"{COOPERATIVE[p]!r} among the scenario's protocols {offered}")
        if not ue_protocols:
            raise ValueError(f"'ue_protocols' must name at least one of {sorted(COOPERATIVE)} offered by the "
                             f"scenario (offered: {offered})")
        if "full_ue" not in offered:
            raise ValueError(f"the scenario's 'protocols' must include 'full_ue', the fallback of a rejected "
                             f"request (got {offered})")
        self.ue_protocols = ue_protocols
        self._proto_code = {p: (j + 1) / len(ue_protocols) for j, p in enumerate(ue_protocols)}
        self._full_ue = w.placement_index("full_ue", (0,))
        n, k = w.num_es, self.slots
        self.possible_agents = [f"es_{i}" for i in range(n)]
        self.shares = np.array(sc.bandwidth_shares, dtype=np.float64)
        s = len(self.shares)
        self._nvec = np.array([len(MODES), s] * k, dtype=np.int64)
        # "discrete": one index over every slot's (mode, share), in MultiDiscrete's row-major order
        action = spaces.MultiDiscrete(self._nvec) if action_type == "multidiscrete" \
            else spaces.Discrete(int(np.prod(self._nvec)))
        self._slot_width = _SLOT_FEATURES + (_EVE_FEATURES if w.eve is not None else 0)
        d = 3 * n + 1 + self._slot_width * k
        low = np.full(d, 0.0, dtype=np.float32)
        high = np.full(d, _BIG, dtype=np.float32)
        eve = [-10.0] * (self._slot_width - _SLOT_FEATURES), [10.0] * (self._slot_width - _SLOT_FEATURES)
        low[3 * n + 1:] = np.tile(np.array([0, -10, -10, -10, 0, 0, 0, 0] + eve[0], np.float32), k)
        high[3 * n + 1:] = np.tile(np.array([1, 10, 10, 10, _BIG, _BIG, _BIG, 1] + eve[1], np.float32), k)
        high[:n] = 1.0
        high[3 * n] = 1.0
        self._spaces(low, high, action)
        self._onehot = np.eye(n)
        self._policy_rng = np.random.default_rng(0)

    # -- the UEs' side: who asks whom ------------------------------------------------------------
    def _route(self) -> None:
        """UE policy picks (protocol, home ES); requests fill their home's slots; partners by SNR."""
        w = self.world
        picks = self.ue_policy(w, self._policy_rng, self.ue_protocols)
        if not isinstance(picks, (list, tuple)) or len(picks) != w.ues:
            raise ValueError(f"'ue_policy' must return num_ues={w.ues} (protocol, es_id) pairs (got {picks!r})")
        slots: list[list[int]] = [[] for _ in range(w.num_es)]
        protocol = []
        for u, pick in enumerate(picks):
            try:
                p, i = pick
                i = int(i)
            except (TypeError, ValueError):
                raise ValueError(f"'ue_policy' must return (protocol, es_id) pairs (got {pick!r} for UE {u})") from None
            if p not in self._proto_code or not 0 <= i < w.num_es:
                raise ValueError(f"'ue_policy' gave UE {u} ({p!r}, {i}); protocol must be one of {self.ue_protocols} "
                                 f"and es_id in [0, {w.num_es - 1}]")
            protocol.append(p)
            if len(slots[i]) < self.slots:
                slots[i].append(u)
        home = np.full(w.ues, -1)
        for i, us in enumerate(slots):
            home[us] = i
        ul_other = w.snr_table_db()[0, :, :, 0].copy()
        rows = np.flatnonzero(home >= 0)
        ul_other[rows, home[rows]] = -np.inf
        self._partner = ul_other.argmax(axis=1)
        self._slots = slots
        self._protocol = protocol

    def _observe(self) -> np.ndarray:
        w = self.world
        n, k, width = w.num_es, self.slots, self._slot_width
        scale = w.workload.latency_scale_s
        backlog = w.backlog_s()[0] / scale
        snr = w.snr_table_db()[0] / _SNR_SCALE_DB
        eve = None if w.eve is None else w.eve_snr_table_db()[0] / _SNR_SCALE_DB  # (ues, 1 + num_es)
        obs = np.zeros((n, 3 * n + 1 + width * k))
        obs[:, :n] = self._onehot
        obs[:, n:2 * n] = backlog
        obs[:, 2 * n:3 * n] = w.last_demand[0]
        obs[:, 3 * n] = self.epoch / self.max_cycles
        base = 3 * n + 1
        for i, us in enumerate(self._slots):
            for j, u in enumerate(us):
                part = self._partner[u]
                col = base + width * j
                obs[i, col: col + _SLOT_FEATURES] = (
                    1.0, snr[u, i, 0], snr[u, i, 1], snr[u, part, 0], backlog[part], w.deadline_s[0, u] / scale,
                    w.quality_weight[0, u], self._proto_code[self._protocol[u]])
                if eve is not None:
                    obs[i, col + _SLOT_FEATURES: col + width] = eve[u, 0], eve[u, 1 + i], eve[u, 1 + part]
        return obs

    # -- API -------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        ss = self._world_seed(seed)
        world_ss, policy_ss = ss.spawn(2)
        self.world.reset(int(world_ss.generate_state(1, np.uint64)[0]))
        self._policy_rng = np.random.default_rng(policy_ss)
        self.agents = self.possible_agents[:]
        self._last = None
        self._route()
        return self._obs_dict(self._observe()), {a: self._no_info() for a in self.agents}

    def _no_info(self) -> dict[str, Any]:
        """An ES's info before any step: the keys of every step's info."""
        out = {"team_reward": np.float64(0.0), "individual_reward": np.float64(0.0), "requests": 0, "rejected": 0,
               "served": 0, "cooperated": 0, "handed_over": 0, "overflow": 0}
        if self.world.eve is not None:
            out["leakage"] = np.full(self.slots, np.nan)
        return out

    def check_action(self, agent: str, action: Any) -> None:
        """Raise :class:`envs.InvalidAction` naming ``agent`` if ``action`` is outside its space."""
        self._decode_one(agent, action)

    def _decode(self, actions: dict) -> np.ndarray:
        self._check_actions(actions)
        return np.stack([self._decode_one(a, actions[a]) for a in self.agents])

    def _decode_one(self, a: str, action: Any) -> np.ndarray:
        """One ES's action as [mode, share] * slots, or :class:`envs.InvalidAction` naming the agent."""
        try:
            act = np.asarray(action)
        except (TypeError, ValueError):
            act = np.asarray(None)
        if self.action_type == "discrete":
            n_discrete = int(np.prod(self._nvec))
            if act.shape != () or act.dtype.kind not in "iu" or not 0 <= int(act) < n_discrete:
                raise InvalidAction(f"agent {a!r}: action must be an integer in [0, {n_discrete - 1}] "
                                    f"(Discrete over [mode, share] * {self.slots} slots; got {_show(action)})")
            return np.array(np.unravel_index(int(act), tuple(self._nvec)), dtype=np.int64)
        ok = act.shape == self._nvec.shape and (act.dtype.kind in "iu" or (
            act.dtype.kind == "f" and np.all(np.isfinite(act)) and np.all(act % 1 == 0)))
        if ok:
            act = act.astype(np.int64)
            ok = bool(np.all((act >= 0) & (act < self._nvec)))
        if not ok:
            raise InvalidAction(
                f"agent {a!r}: action must be {len(self._nvec)} integers [mode, share] * {self.slots} slots "
                f"with mode in [0, {len(MODES) - 1}] ({', '.join(MODES)}) and share in "
                f"[0, {len(self.shares) - 1}] (got {_show(action)})")
        return act

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        acts = self._decode(actions)  # raises before anything changes
        w = self.world
        m = w.ues
        placement = np.full(m, self._full_ue, dtype=np.int64)
        share = np.ones(m)
        counts = np.zeros((w.num_es, len(MODES)), dtype=np.int64)
        for i, us in enumerate(self._slots):
            for j, u in enumerate(us):
                mode, s = int(acts[i, 2 * j]), int(acts[i, 2 * j + 1])
                counts[i, mode] += 1
                p, part = self._protocol[u], int(self._partner[u])
                if mode == 1:
                    placement[u] = w.placement_index(p, (i,))
                elif mode == 2:
                    placement[u] = w.placement_index(COOPERATIVE[p], (i, part))
                elif mode == 3:
                    placement[u] = w.placement_index(p, (part,))
                share[u] = self.shares[s]
        res = w.step(placement[None], share[None])
        self._last = (placement, res)
        reward = res.reward[0] if self.reward_type == "scalar" else self._terms(res)
        team = reward.mean(axis=0)
        local = np.stack([reward[us].mean(axis=0) if us else np.zeros_like(team) for us in self._slots])
        rewards = self._mix(local, team)
        if self.reward_type == "vector":
            rewards = rewards.astype(np.float32)
            team, local = res.reward[0].mean(), np.array([res.reward[0][us].mean() if us else 0.0
                                                          for us in self._slots])
        overflow = m - sum(len(us) for us in self._slots)
        infos = [{"team_reward": np.float64(team), "individual_reward": np.float64(local[i]), "requests": len(us),
                  "rejected": int(counts[i, 0]), "served": int(counts[i, 1]), "cooperated": int(counts[i, 2]),
                  "handed_over": int(counts[i, 3]), "overflow": overflow}
                 for i, us in enumerate(self._slots)]
        if res.leakage is not None:  # each slot's request's leakage, as the core measured it (NaN: empty slot)
            for info, us in zip(infos, self._slots):
                info["leakage"] = np.full(self.slots, np.nan)
                info["leakage"][:len(us)] = res.leakage[0, us]
        if self.epoch < self.max_cycles:
            self._route()
        return self._finish(self._observe(), rewards, infos)


def raw_env(**kwargs: Any) -> EsCoordinationEnv:
    """The parallel environment class itself."""
    return EsCoordinationEnv(**kwargs)


def parallel_env(**kwargs: Any) -> EsCoordinationEnv:
    """``es_coordination_v1`` as a PettingZoo ``ParallelEnv``."""
    return EsCoordinationEnv(**kwargs)


def env(**kwargs: Any) -> Any:
    """``es_coordination_v1`` as a PettingZoo ``AECEnv`` (agents act in turn; the world steps after the last)."""
    return aec(parallel_env(**kwargs))
