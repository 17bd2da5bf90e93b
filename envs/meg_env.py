"""The Gymnasium environment: choose protocol, ES(s) and bandwidth for each MEG request."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.codecs import make_codec
from meg_gym.world import REWARD_TERMS, World

__all__ = ["MegEnv"]

_SNR_SCALE_DB = 30.0


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
    energy from the same FLOP counts and tensor shapes.

    ## Action Space
    Placements are ``env.unwrapped.decisions`` (protocol + ES ids), shares are the scenario's
    ``bandwidth_shares``. ``action_type="multidiscrete"`` (default): ``MultiDiscrete([placements,
    shares])``; ``"discrete"``: ``Discrete(placements * shares)``; ``"box"``: ``Box(-1, 1, (2,))``
    binned. ``action_masks()`` marks placements that can still meet the deadline (all, if none
    can). A malformed action raises ``envs.InvalidAction`` and changes nothing.

    ## Observation Space
    ``observation_type="box"`` (default): flat float32 of, per ES, uplink and downlink SNR at
    the full bandwidth (dB / 30) and queue backlog (s / latency scale); then the request's
    deadline (s / latency scale) and quality weight, the UE's energy used so far (per request,
    relative to a Full-UE generation) and the episode's progress. ``"dict"``: the same as a
    one-level Dict (``snr_ul``, ``snr_dl``, ``backlog``, ``request``, ``ue``).

    ## Rewards
    Terms (``info["rewards"]``): quality (weighted by the request's quality weight), minus
    latency / latency scale, minus bits / Full-ES bits, minus UE energy / Full-UE energy, minus
    1 for a missed deadline. Scalar reward = the scenario's ``reward.weights`` . terms.
    ``reward_type="vector"`` returns the 5 terms as a vector, with ``env.unwrapped.reward_space``
    (MO-Gymnasium style); ``envs.LinearReward`` scalarises it and keeps the vector in ``info``.

    ## Starting State
    ``reset(seed=...)`` seeds the channel, mobility, ES queues and the request stream.

    ## Episode End
    Truncation after ``workload.requests_per_episode`` requests; there is no terminal state.

    ## Arguments
    ``config`` (scenario file, shipped scenario name or mapping), ``backend`` ("live" |
    "profiled"), ``action_type``, ``observation_type``, ``reward_type`` ("scalar" | "vector"),
    ``render_mode`` ("rgb_array"), and any scenario key as a keyword override.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, config: Any = None, *, backend: str | None = None, action_type: str = "multidiscrete",
                 observation_type: str = "box", reward_type: str = "scalar", render_mode: str | None = None,
                 **overrides: Any) -> None:
        from meg_gym.config import load_scenario

        if backend is not None:
            overrides["backend"] = backend
        if observation_type not in ("box", "dict"):
            raise ValueError(f"'observation_type' must be one of ['box', 'dict'] (got {observation_type!r})")
        if reward_type not in ("scalar", "vector"):
            raise ValueError(f"'reward_type' must be one of ['scalar', 'vector'] (got {reward_type!r})")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"'render_mode' must be one of {self.metadata['render_modes']} or None "
                             f"(got {render_mode!r})")
        self.scenario = load_scenario(config, **overrides)
        self.world = World(self.scenario)
        self.decisions = self.world.decisions
        self.shares = tuple(self.scenario.bandwidth_shares)
        self.codec = make_codec(action_type, len(self.decisions), len(self.shares))
        self.action_space = self.codec.space
        self.observation_type = observation_type
        self.reward_type = reward_type
        self.render_mode = render_mode
        n = self.scenario.num_es
        self._n = n
        # bounds far outside what the models produce (SNR within +-300 dB, backlogs below hours)
        snr = (-10.0, 10.0)
        big = 1e4
        low = np.array([snr[0]] * 2 * n + [0.0] * n + [0.0, 0.0, 0.0, 0.0], dtype=np.float32)
        high = np.array([snr[1]] * 2 * n + [big] * n + [big, big, big, 1.0], dtype=np.float32)
        if observation_type == "box":
            self.observation_space = spaces.Box(low, high, dtype=np.float32)
        else:
            self.observation_space = spaces.Dict({
                "snr_ul": spaces.Box(snr[0], snr[1], (n,), np.float32),
                "snr_dl": spaces.Box(snr[0], snr[1], (n,), np.float32),
                "backlog": spaces.Box(0.0, big, (n,), np.float32),
                "request": spaces.Box(0.0, big, (2,), np.float32),
                "ue": spaces.Box(np.array([0.0, 0.0], np.float32), np.array([big, 1.0], np.float32)),
            })
        if reward_type == "vector":
            # quality <= max quality weight; costs >= -big (latency, bits, energy ratios), deadline in [-1, 0]
            hi_q = float(self.scenario.workload.quality_weight[1])
            self.reward_space = spaces.Box(np.array([0.0, -big, -big, -big, -1.0], np.float32),
                                           np.array([hi_q, 0.0, 0.0, 0.0, 0.0], np.float32))
        self._energy_j = 0.0
        self._last: Any = None

    # -- observation ----------------------------------------------------------------------
    def _observe(self) -> Any:
        w = self.world
        sys_ = w.system
        now = sys_.now_s
        ul, dl = w.link_snrs(self.scenario.bandwidth_hz)
        queues = sys_.queues
        req = w.request
        o = self._observation(ul, dl, [queues[i].backlog_s(now) for i in range(self._n)], req.deadline_s,
                              req.quality_weight, self._energy_j, w.served)
        if self.observation_type == "box":
            return o
        n = self._n
        return {"snr_ul": o[:n].copy(), "snr_dl": o[n:2 * n].copy(), "backlog": o[2 * n:3 * n].copy(),
                "request": o[3 * n:3 * n + 2].copy(), "ue": o[3 * n + 2:].copy()}

    def _observation(self, snr_ul_db: list[float], snr_dl_db: list[float], backlog_s: list[float], deadline_s: float,
                     quality_weight: float, energy_j: float, served: int) -> np.ndarray:
        """The box observation from the world's raw numbers (the layout the class docstring gives;
        ``envs.vector`` writes the same columns for a batch, checked in its tests)."""
        w = self.world
        scale = w.workload.latency_scale_s
        return np.array([v / _SNR_SCALE_DB for v in snr_ul_db] + [v / _SNR_SCALE_DB for v in snr_dl_db]
                        + [b / scale for b in backlog_s]
                        + [deadline_s / scale, quality_weight, energy_j / (w._refs["energy_j"] * (served or 1)),
                           served / w.workload.requests_per_episode], dtype=np.float32)

    # -- API -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.world.reset(int(self.np_random.integers(2**63 - 1)))
        self._energy_j = 0.0
        self._last = None
        return self._observe(), {}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        if self.world.request is None:
            raise RuntimeError("step() called before reset()")
        placement, share = self.codec.decode(action)  # raises before any state changes
        decision = self.decisions[placement]
        res = self.world.step(decision, self.shares[share])
        self._energy_j += res.energy_j
        self._last = res
        info = {
            "rewards": res.terms, "protocol": decision.protocol, "es_ids": decision.es_ids,
            "bandwidth_share": self.shares[share], "latency_s": res.latency_s, "quality": res.quality,
            "ssim": res.ssim, "uplink_bits": res.uplink_bits, "downlink_bits": res.downlink_bits,
            "energy_j": res.energy_j, "deadline_missed": res.deadline_missed,
        }
        if self.reward_type == "vector":
            reward: Any = np.array([res.terms[k] for k in REWARD_TERMS], dtype=np.float32)
        else:
            reward = float(res.reward)
        return self._observe(), reward, False, self.world.done, info

    def action_masks(self) -> np.ndarray:
        """Placements whose latency without queueing still meets the request's deadline."""
        ok = self.world.feasible(self.shares[-1])
        if not ok.any():
            ok[:] = True
        return self.codec.mask(ok)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from envs.rendering import render_topology

        return render_topology(self)
