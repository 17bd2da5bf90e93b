"""Many independent profiled worlds stepped at once, as numpy arrays: the native vector env's core.

:class:`BatchWorld` runs ``num_worlds`` copies of a profiled :class:`~meg_gym.world.World`
(one UE, the scenario's ESs) in lock step. It takes everything that defines the model from
a scalar ``World`` built from the same scenario: the placements, their compiled plans (the
one timing walk, compiled: the world's :class:`~meg_gym.timing.PlanTable`), the calibration table
(:meth:`QualityTable.draw_batch`), the reward scales and the device rates. Per copy:

* the request stream: deadline and quality weight uniform in the workload's ranges,
  exponential gaps (Poisson arrivals), one standard normal for the quality draw;
* the ES queues: :class:`~meg_gym.compute.EsQueueBatch` (the model of ``EsQueue``: Poisson
  background of whole Full-ES generations at utilisation ``load``, FIFO; built by
  :meth:`MegSystem.queue_batch`, advanced in one compiled pass); a request reserves each ES
  it uses at its arrival, as in the scalar timing model;
* the channel: ``awgn``/``perfect`` (fixed, or a uniform SNR per block with
  ``snr_range_db``) as arrays; the 3GPP kinds (``umi``/``uma``) keep one scalar channel
  model per copy, stepped in a Python loop (mobility and shadowing are per-copy state).

The random streams differ from the scalar env's (they are drawn as arrays), so a copy is
not step-for-step identical to ``MegEnv`` with the same seed; the model is the same, which
the tests check on the statistics of long runs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meg_gym.quality.calibration import GridDraw
from meg_gym.world import World, reward_terms

__all__ = ["BatchWorld"]

_ARRAY_CHANNELS = ("awgn", "perfect")


class BatchWorld:
    """``num_worlds`` profiled worlds of one scenario, stepped together."""

    def __init__(self, scenario: Any, num_worlds: int, *, world: World | None = None) -> None:
        from meg_gym.channel import make_channel
        from meg_gym.config import load_scenario
        from meg_gym.system import channel_params

        sc = scenario if hasattr(scenario, "model_dump") else load_scenario(scenario)
        if sc.backend != "profiled":
            raise ValueError(f"'backend' must be 'profiled' for batched worlds (got {sc.backend!r}): live mode runs "
                             f"the split LDM one request at a time; use gym.make_vec(..., vectorization_mode='sync')")
        if isinstance(num_worlds, bool) or not isinstance(num_worlds, (int, np.integer)) or num_worlds < 1:
            raise ValueError(f"'num_envs' must be an int >= 1 (got {num_worlds!r})")
        self.scenario = sc
        self.world = world if world is not None else World(sc)
        self.num = int(num_worlds)
        self.num_es = sc.num_es
        sys_ = self.world.system
        self.decisions = self.world.decisions
        self.plans = [self.world.compiled[(d.protocol, d.es_ids)] for d in self.decisions]
        self.shares = np.asarray(sc.bandwidth_shares, dtype=np.float64)
        # QualityTable.draw for every copy at once, per placement
        self._draw = GridDraw(self.world.table, [p.protocol for p in self.plans], sys_.settings.steps)
        # per placement: its bits, and which ESs it uses (+inf elsewhere, for the worst link's SNR)
        self._ul_bits = np.array([p.uplink_bits for p in self.plans], dtype=np.int64)
        self._dl_bits = np.array([p.downlink_bits for p in self.plans], dtype=np.int64)
        self._off_es = np.array([[0.0 if i in p.es_ids else np.inf for i in range(self.num_es)] for p in self.plans])
        self._table = self.world._table  # the plans in decision order, as self.plans
        self._ids = self._table.es_ids  # (placements, widest ES set), padded
        self.queues = sys_.queue_batch(self.num)
        self.snr_full = np.zeros((self.num, self.num_es, 2))  # at the whole bandwidth: [..., 0] ul, [..., 1] dl
        params = channel_params(sc)
        if sc.channel.kind in _ARRAY_CHANNELS:  # one model gives the fixed SNRs; a range is drawn as arrays
            ch = make_channel(sc.channel.kind, **params)
            ch.reset(np.random.default_rng(0), self.num_es)
            self._channels = [ch]
            self._range = sc.channel.snr_range_db
            self._fixed = np.stack([np.asarray(v) for v in ch.snr_lists_db(sc.bandwidth_hz)], axis=-1)  # (num_es, 2)
        else:  # per-copy state (position, shadowing, LOS): one scalar model and generator per copy
            self._channels = [make_channel(sc.channel.kind, **params) for _ in range(self.num)]
            self._channel_rngs: list[np.random.Generator | None] = [None] * self.num
        self._array_channel = sc.channel.kind in _ARRAY_CHANNELS
        self._per_hz = self._channels[0].scales_with_bandwidth
        self.rng: np.random.Generator | None = None
        self.now = np.zeros(self.num)
        self.served = np.zeros(self.num, dtype=np.int64)
        self.deadline = np.zeros(self.num)
        self.weight = np.zeros(self.num)
        self._z = np.zeros(self.num)

    # -- state ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, rows: np.ndarray | None = None) -> None:
        """New episodes for ``rows`` (all by default); ``seed`` reseeds the batch's generator."""
        if seed is not None or self.rng is None:
            self.rng = np.random.default_rng(seed)
        rows = np.arange(self.num) if rows is None else np.flatnonzero(rows) if np.asarray(rows).dtype == bool \
            else np.asarray(rows)
        if not len(rows):
            return
        rng = self.rng
        self.now[rows] = 0.0
        self.served[rows] = 0
        self.queues.reset(rows, rng, 0.0)
        if self._array_channel:
            self._draw_array_channel(rows)
        else:
            for r, s in zip(rows.tolist(), rng.integers(2**63 - 1, size=len(rows)).tolist()):
                self._channel_rngs[r] = np.random.default_rng(s)
                self._channels[r].reset(self._channel_rngs[r], self.num_es)
            self._read_scalar_channels(rows)
        self._new_requests(rows)

    def _draw_array_channel(self, rows: np.ndarray) -> None:
        if self._range is None:
            self.snr_full[rows] = self._fixed
            return
        lo, hi = self._range
        snr = lo + (hi - lo) * self.rng.random((len(rows), self.num_es))
        self.snr_full[rows] = snr[..., None]  # both links of an ES: the block's SNR

    def _read_scalar_channels(self, rows: np.ndarray) -> None:
        bw = self.scenario.bandwidth_hz
        for r in rows.tolist():
            ul, dl = self._channels[r].snr_lists_db(bw)
            self.snr_full[r, :, 0] = ul
            self.snr_full[r, :, 1] = dl

    def _new_requests(self, rows: np.ndarray) -> None:
        w, rng, k = self.scenario.workload, self.rng, len(rows)
        u = rng.random((2, k))
        self.deadline[rows] = w.deadline_s[0] + (w.deadline_s[1] - w.deadline_s[0]) * u[0]
        self.weight[rows] = w.quality_weight[0] + (w.quality_weight[1] - w.quality_weight[0]) * u[1]
        self._z[rows] = rng.standard_normal(k)

    @property
    def done(self) -> np.ndarray:
        return self.served >= self.scenario.workload.requests_per_episode

    # -- step -------------------------------------------------------------------------------
    def step(self, placement: np.ndarray, share: np.ndarray) -> dict[str, np.ndarray]:
        """Serve every copy's request (placement and share indices per copy), then move on.

        Returns arrays per copy: ``reward``, the reward ``terms`` (dict), ``latency_s``,
        ``quality``, ``ssim``, ``uplink_bits``, ``downlink_bits``, ``energy_j``, ``deadline_missed``.
        """
        sc = self.scenario
        n = self.num
        bw = self.shares[share] * sc.bandwidth_hz
        off = 10.0 * np.log10(self.shares[share]) if self._per_hz else np.zeros(n)
        backlog = self.queues.backlog_s().copy()  # before this step's jobs
        snr = self.snr_full - off[:, None, None]  # (copies, ESs, [ul, dl]) at each copy's bandwidth
        # every copy's request against its own ES backlogs, in one compiled walk
        rows = np.arange(n)
        ids = self._ids[placement]
        start = self.now
        out = self._table.walk(rows, placement, start, backlog.copy(), snr[rows[:, None], ids, 0],
                               snr[rows[:, None], ids, 1], bw, shared=False)
        for j in range(ids.shape[1]):  # each ES's share of the copy's job, from its turn (each once per copy)
            busy = out[:, 7 + j]
            used = ~np.isnan(busy)
            if used.any():
                r, i = rows[used], ids[used, j]
                self.queues.add(r, i, busy[used] - (start[used] + backlog[r, i]))
        latency, energy = out[:, 0], out[:, 1]
        ul_bits, dl_bits = self._ul_bits[placement], self._dl_bits[placement]
        worst = (snr + self._off_es[placement][:, :, None]).min(axis=1)  # (copies, [ul, dl]) over its ESs
        quality, ssim = self._draw(placement, worst, self._z)
        missed = latency > self.deadline
        terms, reward = reward_terms(quality, self.weight, latency, ul_bits + dl_bits, energy, missed,
                                     self.world._refs, sc.reward.weights)
        # move on: exponential gaps, the queues' background, the channel, the next requests
        self.served += 1
        gap = self.rng.standard_exponential(n) / sc.workload.arrival_rate_hz
        self.now += gap
        self.queues.advance(self.now, self.rng)
        all_rows = np.arange(n)
        if self._array_channel:
            self._draw_array_channel(all_rows)
        else:
            for r, dt in enumerate(gap.tolist()):
                self._channels[r].advance(dt, self._channel_rngs[r])
            self._read_scalar_channels(all_rows)
        self._new_requests(all_rows)
        return {"reward": reward, "terms": terms, "latency_s": latency, "quality": quality, "ssim": ssim,
                "uplink_bits": ul_bits, "downlink_bits": dl_bits, "energy_j": energy, "deadline_missed": missed}
