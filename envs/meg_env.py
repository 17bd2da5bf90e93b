"""The Gymnasium environment: choose protocol, ES(s) and bandwidth for each MEG request."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.codecs import make_codec
from envs.common import check_overrides, check_reward_type, feature_info, no_feature_info, obs_bounds, reward_space
from meg_gym.core import Core

__all__ = ["MegEnv"]


def _dict_slices(n: int, world: Any = None) -> dict[str, slice]:
    """The box observation's columns (:meth:`meg_gym.core.Core.observe`) as the dict observation's keys
    (with ``world``'s features: ``eavesdropper``, its n + 1 SNRs, and ``twin``, the age)."""
    out = {"snr_ul": slice(0, n), "snr_dl": slice(n, 2 * n), "backlog": slice(2 * n, 3 * n),
           "demand": slice(3 * n, 4 * n), "request": slice(4 * n, 4 * n + 2), "ue": slice(4 * n + 2, 4 * n + 4)}
    col = 4 * n + 4
    if world is not None and world.eve is not None:
        out["eavesdropper"] = slice(col, col + n + 1)
        col += n + 1
    if world is not None and world.twin is not None:
        out["twin"] = slice(col, col + 1)
    return out


class MegEnv(gym.Env):
    """
    ## Description
    One UE sends a stream of text-guided image-to-image requests (Poisson arrivals; input and
    prompt from the procedural scene grammar; a deadline and a quality weight each). For every
    request the agent picks how Mobile Edge Generation serves it: the **protocol** (Full UE,
    Full ES, UIEG, EIUG, CIAG, ESUC and, with several ESs, UIDG, DIUG, DSUC, UIDCG, DCSUC), the
    **ES or ES set**, and the **bandwidth share**. Between requests the UE moves, fading
    changes and other users load the ESs. In ``live`` mode the real split LDM runs every step;
    in ``profiled`` mode quality comes from the calibration table and latency, bits and
    energy from the same FLOP counts and tensor shapes. The world is the core
    ``meg_gym.core.Core`` with one copy of one UE (``env.unwrapped.world``).

    ## Action Space
    Placements are ``env.unwrapped.decisions`` (protocol + ES ids; Full UE once), shares are the scenario's
    ``bandwidth_shares``. ``action_type="multidiscrete"`` (default): ``MultiDiscrete([placements,
    shares])``; ``"discrete"``: ``Discrete(placements * shares)``; ``"box"``: ``Box(-1, 1, (2,))``
    binned. ``action_masks()`` marks placements that can still meet the deadline (all, if none
    can). A malformed action raises ``envs.InvalidAction`` and changes nothing.

    ## Observation Space
    ``observation_type="box"`` (default): ``Box(4N + 4)`` float32, the layout of every MEG env
    (``meg_gym.core.Core.observe``): per ES the uplink and downlink SNR over the whole cell
    (dB / 30), then per ES the queue backlog (s / latency scale), then per ES the bandwidth
    demand of the last step; then the request's deadline (s / latency scale) and quality
    weight, the UE's energy used so far (per request, relative to a Full-UE generation) and the
    episode's progress. ``"dict"``: the same as a one-level Dict (``snr_ul``, ``snr_dl``,
    ``backlog``, ``demand``, ``request``, ``ue``).

    ## Rewards
    Terms (``info["rewards"]``): quality (weighted by the request's quality weight), minus
    latency / latency scale, minus bits / Full-ES bits, minus UE energy / Full-UE energy, minus
    1 for a missed deadline. Scalar reward = the scenario's ``reward.weights`` . terms.
    ``reward_type="vector"`` returns the 5 terms as a vector, with ``env.unwrapped.reward_space``
    (MO-Gymnasium style); ``envs.LinearReward`` scalarises it and keeps the vector in ``info``.
    A scenario's ``eavesdropper`` adds the term ``leakage``, ``info["leakage"]`` and its SNRs'
    observation columns; ``digital_twin`` the term ``aoi``, ``info["aoi_s"]`` and the twin's age
    (``meg_gym.core.term_names``; docs/envs/eavesdropper.md, docs/envs/digital_twin.md).

    ## Starting State
    ``reset(seed=...)`` seeds the channel, mobility, ES queues and the request stream.

    ## Episode End
    Truncation after ``workload.requests_per_episode`` requests; there is no terminal state.

    ## Arguments
    ``config`` (scenario file, shipped scenario name or mapping), ``backend`` ("live" |
    "profiled"), ``action_type``, ``observation_type``, ``reward_type`` ("scalar" | "vector"),
    ``render_mode`` ("rgb_array"), and any scenario key as a keyword override.

    ## Version History
    * v1: a view of the world core (``meg_gym.core.Core``) shared with the vector and
      multi-agent envs: Full UE listed once (``MEG/MultiES``: 36 placements, was 38); the ES
      queues start in their stationary workload (no warm-up); the observation gains each ES's
      last bandwidth demand (``4N + 4``, the multi-agent envs' layout). In the same release
      (not a later change): Full UE runs the MEG paper's 20 steps, digital links fade, fail and
      retransmit (``info["retransmissions"]``, ``info["outage"]``), and UIDCG / DCSUC exchange
      their strips' borders over the ES-to-ES backhaul at every step (``generation.exchange_every``).
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, config: Any = None, *, backend: str | None = None, action_type: str = "multidiscrete",
                 observation_type: str = "box", reward_type: str = "scalar", render_mode: str | None = None,
                 **overrides: Any) -> None:
        from meg_gym.config import load_scenario

        check_overrides(type(self).__name__, overrides)
        if backend is not None:
            overrides["backend"] = backend
        if observation_type not in ("box", "dict"):
            raise ValueError(f"'observation_type' must be one of ['box', 'dict'] (got {observation_type!r})")
        check_reward_type(reward_type)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"'render_mode' must be one of {self.metadata['render_modes']} or None "
                             f"(got {render_mode!r})")
        self.scenario = load_scenario(config, **overrides)
        self.world = Core(self.scenario)  # one copy, one UE
        self.decisions = self.world.placements
        self.shares = tuple(self.scenario.bandwidth_shares)
        self.codec = make_codec(action_type, len(self.decisions), len(self.shares))
        self.action_space = self.codec.space
        self.observation_type = observation_type
        self.reward_type = reward_type
        self.render_mode = render_mode
        n = self.scenario.num_es
        self._n = n
        low, high = obs_bounds(n, self.world.obs_extra)
        self._slices = _dict_slices(n, self.world)
        if observation_type == "box":
            self.observation_space = spaces.Box(low, high, dtype=np.float32)
        else:
            self.observation_space = spaces.Dict({
                key: spaces.Box(low[sl], high[sl], dtype=np.float32) for key, sl in self._slices.items()})
        if reward_type == "vector":
            self.reward_space = reward_space(self.scenario)
        self._obs = np.zeros((1, 1, self.world.obs_width))
        # the info of a step that served nothing (reset), with every step's keys
        nan = np.float64("nan")
        self._no_info = {"rewards": dict.fromkeys(self.world.terms, np.float64(0.0)), "protocol": "",
                         "es_mask": np.zeros(n, dtype=bool), "bandwidth_share": nan, "latency_s": nan,
                         "quality": nan, "ssim": nan, "uplink_bits": np.int64(0), "downlink_bits": np.int64(0),
                         "energy_j": nan, "deadline_missed": np.False_, "retransmissions": np.int64(0),
                         "outage": np.False_, "attempts": np.int64(0), "es_steps": np.int64(0),
                         "ue_steps": np.int64(0), "es_area": nan}
        if self.world.cache is not None:  # model caching: whether the request's model was loaded, and which
            self._no_info.update(cache_hit=np.False_, model="")
        self._no_info.update(no_feature_info(self.world, lambda: nan))
        self._one = (np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1)))  # the step's (1, 1) action arrays
        self._last: Any = None

    # -- observation ----------------------------------------------------------------------
    def _observe(self) -> Any:
        o = self.world.observe(self._obs)[0, 0].astype(np.float32)  # a new array: the caller may keep it
        if self.observation_type == "box":
            return o
        return {key: o[sl].copy() for key, sl in self._slices.items()}

    @property
    def last_outcome(self) -> Any:
        """Live mode: the last step's :class:`meg_gym.system.Outcome` (images, trace); else None."""
        if self._last is None or not self._last[1].outcomes:
            return None
        return self._last[1].outcomes[0]

    def link_snrs_db(self) -> tuple[list[float], list[float]]:
        """Uplink and downlink SNR (dB) to every ES over the whole cell, now."""
        snr = self.world.snr_table_db()[0, 0]
        return snr[:, 0].tolist(), snr[:, 1].tolist()

    # -- API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.world.reset(int(self.np_random.integers(2**63 - 1)))
        self._last = None
        return self._observe(), {**self._no_info, "rewards": dict(self._no_info["rewards"]),
                                 "es_mask": self._no_info["es_mask"].copy()}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        self._check_steppable()
        placement, share = self.codec.decode(action)  # raises before any state changes
        return self._step(placement, share, None)

    def _check_steppable(self) -> None:
        """A step needs a reset first, and none after the episode was truncated."""
        w = self.world
        if not w._started:
            raise RuntimeError("step() called before reset()")
        if w.served.item() >= w.workload.requests_per_episode:
            raise RuntimeError(f"step() after the episode was truncated ({w.workload.requests_per_episode} requests "
                               f"served): call reset()")

    def _step(self, placement: int, share: int, cache: np.ndarray | None) -> tuple[Any, Any, bool, bool, dict]:
        """One request served with a decoded action (``cache``: the cache sets, ModelCaching's)."""
        w = self.world
        pl, sh = self._one
        pl[0, 0], sh[0, 0] = placement, self.shares[share]
        res = self.world.step_checked(pl, sh, cache)
        decision = self.decisions[placement]
        self._last = (decision, res)
        t = res.terms
        # numpy scalars and fixed shapes: what array-based libraries (TorchRL, Tianshou) stack into specs
        terms = {"quality": t["quality"][0, 0], "latency": t["latency"][0, 0], "overhead": t["overhead"][0, 0],
                 "energy": t["energy"][0, 0], "deadline": t["deadline"][0, 0]}  # the keys are REWARD_TERMS
        if len(t) > 5:  # the features' terms (world.terms)
            terms.update({k: t[k][0, 0] for k in w.terms[5:]})
        info = {
            "rewards": terms, "protocol": decision.protocol, "es_mask": self.world.es_mask[placement],
            "bandwidth_share": np.float64(self.shares[share]), "latency_s": res.latency_s[0, 0],
            "quality": res.quality[0, 0], "ssim": res.ssim[0, 0], "uplink_bits": res.uplink_bits[0, 0],
            "downlink_bits": res.downlink_bits[0, 0], "energy_j": res.energy_j[0, 0],
            "deadline_missed": res.deadline_missed[0, 0], "retransmissions": res.retransmissions[0, 0],
            "outage": res.outage[0, 0], "attempts": res.attempts[0, 0],
            # how the placement divides the generation (meg_gym.protocols.generation_split)
            "es_steps": w.es_steps[placement], "ue_steps": w.ue_steps[placement], "es_area": w.es_area[placement],
        }
        if res.cache_hit is not None:
            info["cache_hit"], info["model"] = res.cache_hit[0, 0], w.cache.names[res.model[0, 0]]
        info.update(feature_info(res, lambda a: a[0, 0]))
        if self.reward_type == "vector":
            reward: Any = np.array([terms[k] for k in w.terms], dtype=np.float32)
        else:
            reward = res.reward.item()
        return self._observe(), reward, False, w.served.item() >= w.workload.requests_per_episode, info

    def action_masks(self) -> np.ndarray:
        """Placements whose latency without queueing still meets the request's deadline."""
        if not self.world._started:
            raise RuntimeError("action_masks() called before reset(): the masks depend on the current request")
        ok = self.world.feasible(self.shares[-1])[0, 0]
        if not ok.any():
            ok[:] = True
        return self.codec.mask(ok)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from envs.rendering import render_topology

        return render_topology(self)
