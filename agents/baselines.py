"""Baseline policies for the MEG environments, with Stable-Baselines3's ``predict`` signature.

``make_policy(name, env)`` builds one of:

* ``random``: a uniform placement and bandwidth share;
* ``round_robin``: the placements of ``env.unwrapped.decisions`` in turn, whole band (with
  one protocol and several ESs, as in the AIGC service-provider case, this cycles the ESs);
* ``crash_avoid``: the least-loaded ES (smallest observed queue backlog) with one fixed
  protocol (``crash_avoid:<protocol>``; default: the scenario's first protocol that runs on
  an ES), whole band;
* ``greedy``: the action of best *expected* one-step reward given what the agent observes:
  latency, bits and energy from the scenario's timing model at the observed SNRs plus the
  observed queue backlog, quality from the calibration table's mean (no noise draw, no
  knowledge of the queue's future);
* ``fixed:<protocol>``: always that protocol (on ES 0 or the first ES set), whole band;
* ``fixed_split:<k>``: always the temporal split at k ES denoising steps (``tsplit:<k>``; 0: Full UE,
  the whole loop: CIAG), whole band;
* ``fixed_area:<x>``: always the spatial split with the ES generating the share x of the image
  (``ssplit:<x>``; 0: Full UE, 1: CIAG), whole band;
* ``oracle``: every action tried on a deep copy of the env (same randomness), the best
  scalar reward taken: a one-step upper bound that sees the future draws.

Model caching (``MEG/ModelCaching-v0``; ``meg_gym.caching``), each routing a request to an ES
that has its model loaded (the least backlogged of them; else the least backlogged ES) with the
scenario's first protocol, whole band:

* ``lru``, ``lfu``, ``lc``: the ES admits a missed model, evicting the least recently
  requested, the least often requested, or the one with the least contexts (the survey's LC
  rule, Xu et al. 2023, arXiv:2305.12130) until it fits (``ModelCache.rule_action``, the rule
  the other views run when ``caching.rule`` names it);
* ``no_cache``: the caches stay empty (every request a miss);
* ``popularity_oracle``: knows the Zipf popularity the others learn from the requests and holds,
  from the first request on, the sets of the ESs whose union covers the most popularity (the
  best static caches when requests are independent draws).

Every policy has ``predict(obs, state=None, episode_start=None, deterministic=True)`` returning
``(action, state)`` like an SB3 model, so one evaluation loop runs baselines and trained
models. ``random``, ``round_robin``, ``crash_avoid`` and ``fixed`` act on the observation alone
and accept a batch; ``greedy`` and ``oracle`` read the env they were made with and accept a
single observation or a batch of one.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np

from meg_gym.config import ConfigError

__all__ = ["CACHE_POLICIES", "POLICIES", "BaselinePolicy", "PolicyError", "make_policy", "policy_names"]


class PolicyError(ConfigError):
    """A bad policy name or a use the policy does not support (a ConfigError: the CLI prints one line)."""


def _unwrap(env: Any) -> Any:
    """The MegEnv behind a gym env, its wrappers, or a one-env DummyVecEnv."""
    if hasattr(env, "envs"):  # an SB3 DummyVecEnv
        if len(env.envs) != 1:
            raise PolicyError(f"baselines need one env, not a vector of {len(env.envs)}")
        env = env.envs[0]
    base = getattr(env, "unwrapped", env)
    for attr in ("decisions", "shares", "codec", "world"):
        if not hasattr(base, attr):
            raise PolicyError(f"baselines need a MEG env (envs.MegEnv); {type(base).__name__} has no {attr!r}")
    return base


def _runs_on_es(protocol: str) -> bool:
    from meg_gym.protocols import PROTOCOLS

    return any(getattr(s, "on", "ue") != "ue" for s in PROTOCOLS[protocol].steps)


class BaselinePolicy:
    """A policy over a MEG env with SB3's ``predict``; subclasses choose (placement, share)."""

    name = ""
    needs_env = False  # True: reads the env's state, so only a batch of one

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        self.env = _unwrap(env)
        self.n_es = self.env.scenario.num_es
        self.rng = np.random.default_rng(seed)
        self.full_share = len(self.env.shares) - 1

    # -- observation helpers ----------------------------------------------------------------
    def _flat(self, obs: Any) -> np.ndarray:
        if isinstance(obs, dict):
            return np.concatenate([np.asarray(obs[k], dtype=np.float32).reshape(-1)
                                   for k in ("snr_ul", "snr_dl", "backlog", "request", "ue")])
        return np.asarray(obs, dtype=np.float32)

    def _batch(self, obs: Any) -> tuple[list[np.ndarray], bool]:
        """The observations as a list of flat vectors, and whether the input was a batch."""
        width = self.env.world.obs_width  # obs_size(n_es) and the features' columns
        if isinstance(obs, dict):
            first = np.asarray(obs["snr_ul"])
            if first.ndim == 1:
                return [self._flat(obs)], False
            return [self._flat({k: np.asarray(v)[i] for k, v in obs.items()}) for i in range(first.shape[0])], True
        a = np.asarray(obs, dtype=np.float32)
        if a.shape == (width,):
            return [a], False
        if a.ndim == 2 and a.shape[1] == width:
            return list(a), True
        raise PolicyError(f"observation must have shape ({width},) or (batch, {width}) (got {a.shape})")

    # -- SB3 API -------------------------------------------------------------------------------
    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """``(action, state)`` for one observation or a batch (a batch of one for env-reading policies)."""
        rows, batched = self._batch(observation)
        if self.needs_env and len(rows) != 1:
            raise PolicyError(f"policy {self.name!r} reads the env it was made with, so it takes one observation "
                              f"or a batch of 1 (got a batch of {len(rows)})")
        starts = np.zeros(len(rows), dtype=bool) if episode_start is None else np.asarray(episode_start, bool)
        starts = np.broadcast_to(starts.reshape(-1), (len(rows),))
        codec = self.env.codec
        actions = [np.asarray(codec.encode(*self.choose(o, i, bool(s)))) for i, (o, s) in enumerate(zip(rows, starts))]
        return (np.stack(actions) if batched else actions[0]), state

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        """(placement index, share index) for one flat observation (``index``: its place in the batch)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class RandomPolicy(BaselinePolicy):
    name = "random"

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        return int(self.rng.integers(len(self.env.decisions))), int(self.rng.integers(len(self.env.shares)))


class RoundRobinPolicy(BaselinePolicy):
    name = "round_robin"

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        self.next: dict[int, int] = {}

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        if episode_start or obs[-1] == 0.0:  # the last entry is the episode's progress: 0 at reset
            self.next[index] = 0
        k = self.next.get(index, 0)
        self.next[index] = (k + 1) % len(self.env.decisions)
        return k, self.full_share


def _placement_of(env: Any, protocol: str, es_ids: tuple[int, ...] | None = None) -> int:
    for k, d in enumerate(env.decisions):
        if d.protocol == protocol and (es_ids is None or tuple(d.es_ids) == tuple(es_ids)):
            return k
    offered = sorted({d.protocol for d in env.decisions})
    raise PolicyError(f"protocol must be one of the env's {offered} (got {protocol!r})")


class FixedPolicy(BaselinePolicy):
    name = "fixed"

    def __init__(self, env: Any, seed: int | None = 0, protocol: str = "") -> None:
        super().__init__(env, seed)
        self.protocol = protocol
        self.name = f"fixed:{protocol}"
        self.placement = _placement_of(self.env, protocol)

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        return self.placement, self.full_share


class FixedSplitPolicy(FixedPolicy):
    """``fixed_split:<k>``: always the temporal split at ``k`` ES denoising steps (``tsplit:<k>``; k = 0 is
    Full UE and k = n, the whole img2img loop, is CIAG), whole band."""

    name = "fixed_split"

    def __init__(self, env: Any, seed: int | None = 0, k: str = "") -> None:
        from meg_gym.ldm.stages import denoising_loop_steps

        base = _unwrap(env)
        g = base.world.system.settings
        n = denoising_loop_steps(g.steps, g.strength)
        if not k.isdigit() or not 0 <= int(k) <= n:
            raise PolicyError(f"policy 'fixed_split' needs k, the ES's denoising steps, an integer in [0, {n}] "
                              f"(got {k!r})")
        protocol = "full_ue" if int(k) == 0 else "ciag" if int(k) == n else f"tsplit:{int(k)}"
        super().__init__(env, seed, protocol=protocol)
        self.name = f"fixed_split:{int(k)}"


class FixedAreaPolicy(FixedPolicy):
    """``fixed_area:<x>``: always the spatial split with the ES generating the share ``x`` of the image
    (``ssplit:<x>``; x = 0 is Full UE and x = 1, the whole image, is CIAG), whole band."""

    name = "fixed_area"

    def __init__(self, env: Any, seed: int | None = 0, x: str = "") -> None:
        from meg_gym.ldm.stages import SPATIAL_AREAS

        allowed = ["0", *map(str, SPATIAL_AREAS), "1"]
        if x not in allowed:
            raise PolicyError(f"policy 'fixed_area' needs x, the ES's share of the image, one of {allowed} "
                              f"(got {x!r})")
        super().__init__(env, seed, protocol={"0": "full_ue", "1": "ciag"}.get(x, f"ssplit:{x}"))
        self.name = f"fixed_area:{x}"


class CrashAvoidPolicy(BaselinePolicy):
    name = "crash_avoid"

    def __init__(self, env: Any, seed: int | None = 0, protocol: str | None = None) -> None:
        super().__init__(env, seed)
        single = [d.protocol for d in self.env.decisions if len(d.es_ids) == 1 and _runs_on_es(d.protocol)]
        if protocol is None:
            if not single:
                raise PolicyError("crash_avoid needs a single-ES protocol that runs on an ES; the env offers "
                                  f"{sorted({d.protocol for d in self.env.decisions})}")
            protocol = single[0]
        elif protocol not in single:
            raise PolicyError(f"crash_avoid's protocol must be one of the env's single-ES protocols that run on an "
                              f"ES {sorted(set(single))} (got {protocol!r})")
        self.protocol = protocol
        if protocol != single[0]:
            self.name = f"crash_avoid:{protocol}"
        self.by_es = [_placement_of(self.env, protocol, (i,)) for i in range(self.n_es)]

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        n = self.n_es
        backlog = obs[2 * n:3 * n]
        return self.by_es[int(np.argmin(backlog))], self.full_share  # argmin: ties go to the lowest id


class GreedyPolicy(BaselinePolicy):
    name = "greedy"
    needs_env = True

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        world = self.env.world
        self.table = world.table
        if self.table is None:  # live mode: expectations from the profiled table of the same model
            from meg_gym.core import load_table_for

            self.table = load_table_for(world.scenario)
        self.es_protocol = np.array([_runs_on_es(d.protocol) for d in self.env.decisions])

    def expected_rewards(self, obs: np.ndarray) -> np.ndarray:
        """Expected scalar reward of every (placement, share), from what the agent observes: the
        world core's timing on idle ESs plus the observed backlog, the table's mean quality."""
        from meg_gym.core import reward_terms

        env, world = self.env, self.env.world
        sc = world.scenario
        n = self.n_es
        backlog_s = obs[2 * n:3 * n] * world.workload.latency_scale_s
        wait = np.array([max(backlog_s[i] for i in d.es_ids) for d in env.decisions]) * self.es_protocol
        snr_ul, snr_dl = env.link_snrs_db()
        steps = world.system.settings.steps
        bits = world.uplink_bits + world.downlink_bits
        out = np.empty((len(env.decisions), len(env.shares)))
        for j, share in enumerate(env.shares):
            timing = world.idle_timing(share)[0, 0]
            latency = timing[:, 0] + wait
            off = 10.0 * np.log10(share) if world.channel.scales_with_bandwidth else 0.0
            quality = np.array([self.table.lookup(d.protocol, min(snr_ul[i] for i in d.es_ids) - off,
                                                  min(snr_dl[i] for i in d.es_ids) - off, steps, "quality")[0]
                                for d in env.decisions])
            _, out[:, j] = reward_terms(quality, float(world.quality_weight[0, 0]), latency, bits, timing[:, 1],
                                        latency > world.deadline_s[0, 0], world.scales, sc.reward.weights)
        return out

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        r = self.expected_rewards(obs)
        k, j = np.unravel_index(int(np.argmax(r)), r.shape)
        return int(k), int(j)


class OraclePolicy(BaselinePolicy):
    name = "oracle"
    needs_env = True

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        from meg_gym.core import term_weights

        self.weights = term_weights(self.env.scenario)

    def rewards(self) -> np.ndarray:
        """The scalar reward every (placement, share) would get now, each tried on a copy of the env."""
        env = self.env
        out = np.empty((len(env.decisions), len(env.shares)))
        for k in range(len(env.decisions)):
            for j in range(len(env.shares)):
                trial = copy.deepcopy(env)
                _, r, _, _, _ = trial.step(env.codec.encode(k, j))
                out[k, j] = float(np.dot(self.weights, r)) if np.ndim(r) else float(r)
        return out

    def choose(self, obs: np.ndarray, index: int, episode_start: bool) -> tuple[int, int]:
        if not self.env.world._started:
            raise PolicyError("oracle needs its env reset first: it tries every action on a copy of that env")
        r = self.rewards()
        k, j = np.unravel_index(int(np.argmax(r)), r.shape)
        return int(k), int(j)


class CachePolicy(BaselinePolicy):
    """A model-caching baseline (``MEG/ModelCaching``): cache-aware routing and a cache rule."""

    name = "lru"
    needs_env = True

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        if not hasattr(self.env, "cache_sets"):
            raise PolicyError(f"policy {self.name!r} needs MEG/ModelCaching (an env with cache sets); "
                              f"{type(self.env).__name__} has none")
        single = [d for d in self.env.decisions if len(d.es_ids) == 1]
        protocol = single[0].protocol
        self.by_es = [_placement_of(self.env, protocol, (i,)) for i in range(self.n_es)]

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """``(action, state)`` for the env's current request (the observation is read from the env)."""
        a = np.asarray(observation)
        if a.ndim > 1 and a.shape[0] != 1:
            raise PolicyError(f"policy {self.name!r} reads the env it was made with, so it takes one observation "
                              f"or a batch of 1 (got a batch of {a.shape[0]})")
        w = self.env.world
        placement = self.by_es[int(w.cache.route(w.models, w.backlog_s(), w.now_s)[0, 0])]
        sets = self.cache_sets(placement)
        action = self.env.encode(placement, self.full_share, sets)
        return (action[None] if a.ndim > 1 else action), state

    def cache_sets(self, placement: int) -> np.ndarray:
        """The set index every ES holds from now on."""
        w = self.env.world
        uses = w.es_mask[placement][None, None]
        return w.cache.rule_action(self.name, w.models, uses, np.zeros(1, np.int64), w.now_s)[0]


class LfuPolicy(CachePolicy):
    name = "lfu"


class LcPolicy(CachePolicy):
    name = "lc"


class NoCachePolicy(CachePolicy):
    name = "no_cache"

    def cache_sets(self, placement: int) -> np.ndarray:
        return np.zeros(self.n_es, dtype=np.int64)  # set 0: the empty set


class PopularityOraclePolicy(CachePolicy):
    name = "popularity_oracle"

    def __init__(self, env: Any, seed: int | None = 0) -> None:
        super().__init__(env, seed)
        cache = self.env.world.cache
        sets = [int(x) for x in cache.sets]
        if len(sets) ** self.n_es > 100_000:
            raise PolicyError(f"popularity_oracle searches every ES's set jointly: {len(sets)} sets on "
                              f"{self.n_es} ESs are too many (at most 100000 combinations)")

        def value(combo: tuple[int, ...]) -> tuple[float, float]:
            union = 0
            for i in combo:
                union |= sets[i]
            covered = sum(float(cache.popularity[j]) for j in range(cache.k) if union >> j & 1)
            return covered, -sum(cache.mask_gb(sets[i]) for i in combo)  # among equals the fewest GB to load

        self.static = np.array(max(itertools.product(range(len(sets)), repeat=self.n_es), key=value),
                               dtype=np.int64)

    def cache_sets(self, placement: int) -> np.ndarray:
        return self.static


POLICIES: dict[str, type[BaselinePolicy]] = {
    c.name: c for c in (RandomPolicy, RoundRobinPolicy, CrashAvoidPolicy, GreedyPolicy, FixedPolicy, OraclePolicy,
                        CachePolicy, LfuPolicy, LcPolicy, NoCachePolicy, PopularityOraclePolicy, FixedSplitPolicy,
                        FixedAreaPolicy)
}
CACHE_POLICIES = ("lru", "lfu", "lc", "no_cache", "popularity_oracle")


def policy_names(env: Any | None = None) -> list[str]:
    """The baseline names; with an env, ``fixed:<protocol>`` spelt out for each protocol it offers."""
    names = [n for n in POLICIES if n not in ("fixed", "fixed_split", "fixed_area")]
    if env is not None and not hasattr(_unwrap(env), "cache_sets"):
        names = [n for n in names if n not in CACHE_POLICIES]  # they need MEG/ModelCaching
    if env is None:
        return [*names, "fixed:<protocol>", "fixed_split:<k>", "fixed_area:<x>"]
    protocols = list(dict.fromkeys(d.protocol for d in _unwrap(env).decisions))
    splits = [f"fixed_{kind}:{p.partition(':')[2]}" for p in protocols for kind, family in
              (("split", "tsplit:"), ("area", "ssplit:")) if p.startswith(family) and "@" not in p]
    return [*names, *(f"fixed:{p}" for p in protocols), *splits]


def make_policy(name: str, env: Any, seed: int | None = 0) -> BaselinePolicy:
    """The baseline ``name`` over ``env`` (``random``, ``round_robin``, ``crash_avoid[:<protocol>]``,
    ``greedy``, ``fixed:<protocol>``, ``oracle``); an unknown name lists the known ones."""
    if not isinstance(name, str):
        raise PolicyError(f"policy name must be a string (got {name!r})")
    base, _, arg = name.partition(":")
    if base not in POLICIES:
        raise PolicyError(f"policy must be one of {policy_names()} (got {name!r})")
    if base == "fixed":
        if not arg:
            fixed = [n for n in policy_names(env) if n.startswith("fixed:")]
            raise PolicyError(f"policy 'fixed' needs a protocol: one of {fixed}")
        return FixedPolicy(env, seed, protocol=arg)
    if base == "fixed_split":
        return FixedSplitPolicy(env, seed, k=arg)
    if base == "fixed_area":
        return FixedAreaPolicy(env, seed, x=arg)
    if base == "crash_avoid":
        return CrashAvoidPolicy(env, seed, protocol=arg or None)
    if arg:
        raise PolicyError(f"policy {base!r} takes no ':' argument (got {name!r})")
    return POLICIES[base](env, seed)
