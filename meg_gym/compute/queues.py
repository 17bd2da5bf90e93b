"""An edge server's FIFO queue with other users' background load, simulated event by event.

Model
-----
One ES is a single FIFO server of rate ``flops_per_s``. Other users' jobs arrive as a
Poisson stream with exponential work of mean ``mean_job_flops``, at the rate that keeps
the server busy a share ``load`` of the time (an M/M/1-type background, utilisation
``rho = load``)::

    mean service  E[S] = mean_job_flops / flops_per_s          (seconds)
    arrival rate  lam  = load / E[S]                            (jobs per second)

The state is the unfinished work ``V`` in seconds: the Lindley recursion on the workload,
``V`` falls at rate 1 while positive and jumps by a job's service time when a job arrives.
Under FIFO a job arriving at time ``a`` waits exactly ``V(a-)``, the work it finds, and
finishes at ``a + V(a-) + service``. :meth:`EsQueue.submit` simulates the background
arrivals from the queue's clock up to the job's arrival, reads the wait off the simulated
workload, and adds the job. No queueing formula is used: the mean wait only *agrees* with
Pollaczek-Khinchine's ``rho E[S] / (1 - rho)`` (``tests/compute/test_queues.py``).

Fast and exact
--------------
The background between two calls is one *interval*. The next background arrival is drawn
ahead (exponential gaps; the stream is memoryless, so this is exact) from standard
exponentials drawn in blocks. A few arrivals (the usual case between two env steps, often
none) are taken one by one and the Lindley recursion runs over them. Many arrivals (a long
gap, the warm-up, a fast stream of small jobs) are not looped over: after a few, the rest
of the interval (a fresh Poisson stream after an arrival) gets a Poisson count, its total
work is drawn as a gamma variable (a sum of exponentials) and the workload at the
interval's end comes from
Loynes' construction, ``V(a) = max(0, V(t) + A(t,a] - (a-t), sup_u (A[a-u, a] - u))``
with ``A`` the arrived work, explored backwards from ``a``: a chunk whose total work
cannot lift the running supremum counts by its total alone, and only the chunks that can
are split (a binomial split of the count and a beta split of the work, the exact
conditionals) down to a few jobs drawn one by one. This has exactly the distribution of a
job-by-job simulation, at a cost that grows with the ``log`` of the number of arrivals.

The chunks are kept (the path is refined lazily, never redrawn), so the workload at any
earlier instant can still be read consistently with what was already drawn.

Our own jobs
------------
Several of our jobs on one ES queue behind each other. Jobs may be submitted out of time
order (request ``k+1``'s ES step can arrive before request ``k``'s): a job arriving before
the clock waits for the work that arrived before it on the recorded path, and its work
delays everything after it until idle time absorbs it (``V' = V + max(0, s - idle since
a)``, exact). Results already returned for later-arriving jobs are not revised. The last
``history_intervals`` intervals are kept; a job older than that raises
:class:`ComputeError`.

The queue is plain Python floats and tuples plus a numpy ``Generator``;
:meth:`EsQueue.copy` (and ``copy.deepcopy``) is cheap and copies the generator's state,
so a copy replays the same background (common random numbers for what-if evaluations).
"""

from __future__ import annotations

import copy as _copy
import math
from bisect import bisect_right
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from meg_gym.compute._validate import ComputeError, check_finite, check_positive, check_range

__all__ = ["EsQueue", "EsQueueBatch", "QueueResult"]

# a chunk with at most this many arrivals is drawn job by job
_LEAF_JOBS = 8
# EsQueueBatch draws its standard exponentials this many at a time
_EXP_BLOCK = 4096

# A leaf of the recorded path is a tuple (t, length, k, work):
#   k >= 0: a chunk [t, t + length) holding k background arrivals of total work ``work``
#           (seconds of service), their times and split not drawn yet;
#   k == -1: one arrival at time t of ``work`` seconds (length 0).
Leaf = tuple[float, float, int, float]


class QueueResult(NamedTuple):
    """What happened to one job at the ES: seconds waiting, in service, and when it finished
    (a named tuple: made on every submit, so cheap to build)."""

    wait_s: float
    service_s: float
    finish_s: float

    @property
    def start_s(self) -> float:
        """When service started (``finish_s - service_s``)."""
        return self.finish_s - self.service_s


class EsQueue:
    """A FIFO edge server with Poisson background load, simulated as its workload process.

    Args:
        flops_per_s: the ES's effective rate (``meg_gym.compute.DEVICES[...].flops_per_s``).
        load: the share of time background jobs keep the server busy, in [0, 1).
        mean_job_flops: mean work of one background job (exponentially distributed).
        rng: the ``numpy.random.Generator`` the background is drawn from.
        start_s: the time the queue starts at (its clock).
        warmup_s: how long the background runs (from an empty queue) before ``start_s``,
            so that the first job meets a steady-state backlog. ``None``: 50 relaxation
            times of the M/M/1 workload, ``50 E[S] / (1 - sqrt(load))**2``; 0: start empty.
        history_intervals: how many recent intervals (stretches between two calls) are
            kept for jobs submitted out of time order.
    """

    __slots__ = ("flops_per_s", "load", "mean_job_flops", "rng", "history_intervals",
                 "_mean_s", "_rate", "_b", "_vm", "_jump", "_leaves", "_work", "_next", "_exp", "_exp_i")

    def __init__(self, flops_per_s: float, load: float, mean_job_flops: float, rng: np.random.Generator, *,
                 start_s: float = 0.0, warmup_s: float | None = None, history_intervals: int = 256) -> None:
        self.flops_per_s = check_positive("flops_per_s", flops_per_s)
        self.load = check_range("load", load, 0.0, 1.0)
        self.mean_job_flops = check_positive("mean_job_flops", mean_job_flops)
        if not isinstance(rng, np.random.Generator):
            raise ComputeError(f"'rng' must be a numpy.random.Generator, e.g. np.random.default_rng(seed) "
                               f"(got {type(rng).__name__})")
        if isinstance(history_intervals, bool) or not isinstance(history_intervals, int) or history_intervals < 1:
            raise ComputeError(f"'history_intervals' must be an int >= 1 (got {history_intervals!r})")
        self.rng = rng
        self.history_intervals = history_intervals
        self._mean_s = self.mean_job_flops / self.flops_per_s
        self._rate = self.load / self._mean_s
        start = check_finite("start_s", start_s)
        if warmup_s is None:
            warm = 50.0 * self._mean_s / (1.0 - math.sqrt(self.load)) ** 2 if self.load > 0 else 0.0
        else:
            warm = check_positive("warmup_s", warmup_s, allow_zero=True)
        # standard exponentials drawn in blocks (never mutated: copies share them), and the
        # time of the next background arrival, drawn ahead (memoryless, so exact)
        self._exp: list[float] = []
        self._exp_i = 0
        self._next = start - warm + self._draw_exp() / self._rate if self._rate > 0 else math.inf
        v_start = self._simulate(start - warm, 0.0, warm)[0] if warm > 0 and self._rate > 0 else 0.0
        # The recorded path: boundaries b[0] < ... < b[n] (b[n] is the clock), the workload
        # just before each (vm), our work arriving exactly at each (jump), and per interval
        # (b[i], b[i+1]) its leaves and their total work.
        self._b: list[float] = [start]
        self._vm: list[float] = [v_start]
        self._jump: list[float] = [0.0]
        self._leaves: list[tuple[Leaf, ...]] = []
        self._work: list[float] = []

    # -- what the queue is ----------------------------------------------------------------
    @property
    def mean_service_s(self) -> float:
        """Mean service time of a background job, ``mean_job_flops / flops_per_s``."""
        return self._mean_s

    @property
    def arrival_rate_per_s(self) -> float:
        """Background jobs per second, ``load / mean_service_s``."""
        return self._rate

    @property
    def clock_s(self) -> float:
        """The time up to which the background has been simulated."""
        return self._b[-1]

    def __repr__(self) -> str:
        return (f"EsQueue(flops_per_s={self.flops_per_s:g}, load={self.load:g}, "
                f"mean_job_flops={self.mean_job_flops:g}, clock_s={self._b[-1]:g})")

    # -- use ------------------------------------------------------------------------------
    def submit(self, arrival_s: float, work_flops: float) -> QueueResult:
        """Our job of ``work_flops`` arrives at ``arrival_s``: its wait, service and finish time."""
        clock = self._b[-1]
        if type(arrival_s) is float and type(work_flops) is float and arrival_s >= clock \
                and arrival_s - arrival_s == 0.0 and 0.0 <= work_flops < math.inf:
            a, service = arrival_s, work_flops / self.flops_per_s  # the usual case (in order), checked cheaply
        else:
            a = check_finite("arrival_s", arrival_s)
            service = check_positive("work_flops", work_flops, allow_zero=True) / self.flops_per_s
        if a >= clock:
            if a > clock:
                self._advance(a)
            wait = self._vm[-1] + self._jump[-1]
            self._jump[-1] += service
        else:
            wait = self._insert_late(a, service)
        return QueueResult(wait, service, a + wait + service)

    def backlog_s(self, now_s: float) -> float:
        """Unfinished work in seconds at ``now_s`` (what a job arriving then would wait for).

        At or after the clock this simulates the background up to ``now_s``. Before the
        clock (jobs were already submitted for later times) it reads the recorded path.
        Jobs arriving after ``now_s`` are not counted; ours arriving exactly then are.
        """
        b = self._b
        if type(now_s) is float and now_s - now_s == 0.0:  # a finite float, checked cheaply
            now = now_s
        else:
            now = check_finite("now_s", now_s)
        if now >= b[-1]:
            if now > b[-1]:
                self._advance(now)
            return self._vm[-1] + self._jump[-1]
        i = self._interval_of(now, "now_s")
        if now == b[i]:
            return self._vm[i] + self._jump[i]
        v, _, leaves, _ = self._query(self._leaves[i], b[i], self._vm[i] + self._jump[i], now)
        self._leaves[i] = leaves
        return v

    def copy(self) -> EsQueue:
        """An independent copy with the same state and the same generator state."""
        new = object.__new__(EsQueue)
        for name in ("flops_per_s", "load", "mean_job_flops", "history_intervals", "_mean_s", "_rate", "_next",
                     "_exp", "_exp_i"):
            object.__setattr__(new, name, getattr(self, name))
        new.rng = np.random.Generator(_copy.copy(self.rng.bit_generator))
        new._b, new._vm, new._jump = list(self._b), list(self._vm), list(self._jump)
        new._leaves, new._work = list(self._leaves), list(self._work)  # leaves are immutable tuples
        return new

    def __copy__(self) -> EsQueue:
        return self.copy()  # a shallow copy sharing the generator would break reproducibility

    def __deepcopy__(self, memo: dict[int, Any]) -> EsQueue:
        return self.copy()

    # -- simulation -----------------------------------------------------------------------
    def _advance(self, t: float) -> None:
        """Simulate the background from the clock up to ``t`` as a new interval."""
        c = self._b[-1]
        span = t - c
        if span <= 0.0:
            return
        v_c = self._vm[-1] + self._jump[-1]
        if self._rate == 0.0:
            v, leaves, work = (v_c - span if v_c > span else 0.0), (), 0.0
        else:
            v, leaves, work = self._simulate(c, v_c, span)
        self._b.append(t)
        self._vm.append(v)
        self._jump.append(0.0)
        self._leaves.append(leaves)
        self._work.append(work)
        if len(self._b) > 2 * self.history_intervals + 1:
            self._prune()

    def _draw_exp(self) -> float:
        """The next standard exponential of the queue's stream (drawn 256 at a time)."""
        i = self._exp_i
        if i == len(self._exp):
            self._exp, i = self.rng.standard_exponential(256).tolist(), 0
        self._exp_i = i + 1
        return self._exp[i]

    def _simulate(self, t0: float, v0: float, span: float) -> tuple[float, tuple[Leaf, ...], float]:
        """Background over (t0, t0 + span] from workload ``v0``: (V at the end, leaves, total work).

        Arrivals come one by one from the drawn-ahead next arrival (exponential gaps). After
        ``_LEAF_JOBS`` of them the rest of the interval, a fresh Poisson stream after an
        arrival, is one chunk (Poisson count, gamma work) resolved by :meth:`_query`; the
        next arrival after the interval is then drawn afresh from its end (memoryless)."""
        end = t0 + span
        nxt = self._next
        if nxt > end:  # the usual case between two env steps at a light load
            return (v0 - span if v0 > span else 0.0), (), 0.0
        m, gap = self._mean_s, 1.0 / self._rate
        leaves: list[Leaf] = []
        sizes: list[float] = []
        v, prev = v0, t0
        exp, i = self._exp, self._exp_i  # _draw_exp written out: two draws per arrival
        while nxt <= end:
            if i == len(exp):
                exp, i = self.rng.standard_exponential(256).tolist(), 0
                self._exp = exp
            size = m * exp[i]
            i += 1
            v -= nxt - prev
            if v < 0.0:
                v = 0.0
            v += size
            prev = nxt
            leaves.append((nxt, 0.0, -1, size))
            sizes.append(size)
            if len(leaves) == _LEAF_JOBS + 1:  # many arrivals: the rest of the interval as one chunk
                self._exp_i = i
                rng = self.rng
                k = int(rng.poisson(self._rate * (end - prev)))
                work = m * rng.standard_gamma(k) if k else 0.0
                v, _, rest, _ = self._query(((prev, end - prev, k, work),), prev, v, end)
                self._next = end + gap * self._draw_exp()
                return v, tuple(leaves) + rest, math.fsum(sizes) + work
            if i == len(exp):
                exp, i = self.rng.standard_exponential(256).tolist(), 0
                self._exp = exp
            nxt += gap * exp[i]
            i += 1
        self._exp_i = i
        self._next = nxt
        v -= end - prev
        return (v if v > 0.0 else 0.0), tuple(leaves), math.fsum(sizes)

    def _query(self, leaves: tuple[Leaf, ...], b: float, v_b: float, tau: float
               ) -> tuple[float, float, tuple[Leaf, ...], int]:
        """Workload at ``tau`` in an interval starting at ``b`` with workload ``v_b``.

        Returns ``(V(tau), work arrived in (b, tau], the interval's leaves refined, how many
        of them lie at or before tau)``.
        Loynes' construction, backwards from ``tau`` over the leaves; chunks are split
        only where they could lift the supremum, with exact conditional draws.
        """
        rng = self.rng
        before: list[Leaf] = []
        after: list[Leaf] = []
        for leaf in leaves:
            t, length, k, w = leaf
            if k < 0:
                (before if t <= tau else after).append(leaf)
            elif t + length <= tau:
                before.append(leaf)
            elif t >= tau:
                after.append(leaf)
            else:  # a chunk straddling tau: split its count and work at tau
                k1 = rng.binomial(k, (tau - t) / length)
                w1 = self._share(w, k1, k - k1)
                before.append((t, tau - t, k1, w1))
                after.append((tau, t + length - tau, k - k1, w - w1))
        best = 0.0  # sup so far of A[tau - u, tau] - u (0: idle at tau)
        acc = 0.0  # work of the leaves explored so far
        out: list[Leaf] = []
        stack = before  # in time order; pop() gives the one nearest to tau
        while stack:
            leaf = stack.pop()
            t, length, k, w = leaf
            if k < 0:
                acc += w
                y = acc - (tau - t)
                if y > best:
                    best = y
                out.append(leaf)
            elif k == 0:
                continue
            elif acc + w - (tau - t - length) <= best:  # cannot lift the supremum: its total is enough
                acc += w
                out.append(leaf)
            elif k <= _LEAF_JOBS:  # draw its jobs
                if k == 1:
                    stack.append((t + length * rng.random(), 0.0, -1, w))
                else:
                    arr = rng.random(k)
                    arr.sort()
                    e = rng.standard_exponential(k)
                    sizes = (e * (w / e.sum())).tolist()  # iid exponentials given their sum
                    stack.extend((at, 0.0, -1, size) for at, size in zip((t + length * arr).tolist(), sizes,
                                                                         strict=True))
            else:  # split in halves: far half explored after the near one
                half = 0.5 * length
                k_near = rng.binomial(k, 0.5)
                w_near = self._share(w, k_near, k - k_near)
                stack.append((t, half, k - k_near, w - w_near))
                stack.append((t + half, half, k_near, w_near))
        out.reverse()
        v = v_b + acc - (tau - b)
        v = best if best > v else (v if v > 0.0 else 0.0)
        return v, acc, tuple(out) + tuple(after), len(out)

    def _share(self, work: float, k1: int, k2: int) -> float:
        """The work of the first k1 of k1 + k2 iid exponential jobs totalling ``work`` (a Beta(k1, k2) share)."""
        if k1 == 0:
            return 0.0
        if k2 == 0:
            return work
        g1 = self.rng.standard_gamma(k1)
        return work * g1 / (g1 + self.rng.standard_gamma(k2))

    # -- out-of-order jobs ----------------------------------------------------------------
    def _interval_of(self, t: float, field: str) -> int:
        b = self._b
        i = bisect_right(b, t) - 1
        if i < 0:
            if t < b[0] - 1e-9 * max(1.0, abs(b[0])):
                raise ComputeError(f"'{field}' must be >= {b[0]!r}, the oldest time this queue still records "
                                   f"(got {t!r}); raise 'history_intervals' to reach further back")
            i = 0
        return i

    def _insert_late(self, a: float, service: float) -> float:
        """Our job arriving at ``a`` < clock: its wait on the recorded path; its work added to the path."""
        b, vm, jump, work = self._b, self._vm, self._jump, self._work
        i = self._interval_of(a, "arrival_s")
        a = max(a, b[0])
        if a == b[i]:  # exactly on a boundary: behind our jobs already there
            wait = vm[i] + jump[i]
            jump[i] += service
            extra, j, v_j = service, i, wait
        else:
            wait, acc, leaves, cut = self._query(self._leaves[i], b[i], vm[i] + jump[i], a)
            self._leaves[i] = leaves[:cut] + ((a, 0.0, -1, service),) + leaves[cut:]
            busy = wait + (work[i] - acc) - vm[i + 1]  # of the path without our job, over (a, b[i+1])
            work[i] += service
            extra = service - max(0.0, (b[i + 1] - a) - busy)
            if extra <= 0.0:
                return wait
            v_j = vm[i + 1] + jump[i + 1]
            vm[i + 1] += extra
            j = i + 1
        # the extra work carries over each later interval, less the idle time it fills
        last = len(b) - 1
        while j < last:
            v_next = vm[j + 1]
            idle = (b[j + 1] - b[j]) - (v_j + work[j] - v_next)
            if idle > 0.0:
                extra -= idle
                if extra <= 0.0:
                    break
            vm[j + 1] = v_next + extra
            v_j = v_next + jump[j + 1]
            j += 1
        return wait

    def _prune(self) -> None:
        """Forget the oldest intervals, keeping ``history_intervals``."""
        drop = len(self._b) - 1 - self.history_intervals
        if drop <= 0:
            return
        del self._b[:drop], self._vm[:drop], self._jump[:drop], self._leaves[:drop], self._work[:drop]

    def _expand_all(self) -> list[tuple[float, float]]:
        """Draw every arrival of the recorded path (consistently) and list ``(time, seconds)``, ours included.

        For checks: the workload at the boundaries equals the Lindley recursion over this list
        from ``V(b[0]-)``.
        """
        out: list[tuple[float, float]] = []
        for i in range(len(self._leaves)):
            if self._jump[i]:
                out.append((self._b[i], self._jump[i]))
            leaves = self._leaves[i]
            while any(leaf[2] >= 0 for leaf in leaves):
                # halve every chunk (exact conditional splits) until all of them are single jobs
                refined: list[Leaf] = []
                for leaf in leaves:
                    t, length, k, w = leaf
                    if k <= 0:
                        if k < 0:
                            refined.append(leaf)
                        continue
                    if k <= _LEAF_JOBS:
                        arr = np.sort(self.rng.random(k))
                        e = self.rng.standard_exponential(k)
                        refined.extend((at, 0.0, -1, s) for at, s in zip((t + length * arr).tolist(),
                                                                         (e * (w / e.sum())).tolist(),
                                                                         strict=True))
                    else:
                        half = 0.5 * length
                        k_near = self.rng.binomial(k, 0.5)
                        w_near = self._share(w, k_near, k - k_near)
                        refined.append((t, half, k - k_near, w - w_near))
                        refined.append((t + half, half, k_near, w_near))
                leaves = tuple(sorted(refined))
            self._leaves[i] = leaves
            out.extend((t, w) for t, _, _, w in leaves)
        if self._jump[-1]:
            out.append((self._b[-1], self._jump[-1]))
        return out


class EsQueueBatch:
    """Independent copies of ESs' queues as arrays: ``shape = (copies, num_es)``; the model of
    :class:`EsQueue` (FIFO server, Poisson background of exponential jobs at utilisation
    ``load``) for batched environments.

    Each queue's state is its workload ``V`` (seconds of unfinished work) at its clock and
    the time of its next background arrival (memoryless, so drawing it ahead is exact).
    :meth:`advance` runs the Lindley recursion over the arrivals up to a time, job by job
    (exact), as one compiled pass, queue by queue, over standard exponentials drawn from the
    generator in blocks (as :class:`EsQueue` draws them; a different generator than the last
    call's starts afresh): two per background arrival, its job's size, then the gap to the
    next one. :meth:`reset` starts a queue in the stationary M/M/1 workload distribution
    (empty with probability ``1 - load``, else exponential of mean ``E[S] / (1 - load)``),
    the distribution that :class:`EsQueue`'s warm-up approaches. Our jobs are added with
    :meth:`add`, in time order (what the timing model's per-request reservation needs).
    ``v``, ``clock`` and ``next_arrival`` are updated in place.
    """

    def __init__(self, flops_per_s: Any, load: Any, mean_job_flops: float, copies: int) -> None:
        self.flops_per_s = np.asarray(flops_per_s, dtype=np.float64)
        self.load = np.asarray(load, dtype=np.float64)
        if self.flops_per_s.shape != self.load.shape or self.flops_per_s.ndim != 1:
            raise ComputeError("'flops_per_s' and 'load' must be 1-D with one entry per ES")
        for i, (f, rho) in enumerate(zip(self.flops_per_s.tolist(), self.load.tolist())):
            check_positive(f"flops_per_s[{i}]", f)
            check_range(f"load[{i}]", rho, 0.0, 1.0)
        self.mean_service_s = check_positive("mean_job_flops", mean_job_flops) / self.flops_per_s
        rate = self.load / self.mean_service_s
        self.mean_gap_s = np.where(rate > 0, 1.0 / np.where(rate > 0, rate, 1.0), np.inf)
        shape = (int(copies), len(self.load))
        self.v = np.zeros(shape)
        self.clock = np.zeros(shape)
        self.next_arrival = np.full(shape, np.inf)
        self._exp = np.empty(0)  # standard exponentials drawn ahead from _exp_rng, used from _exp_i on
        self._exp_i = 0
        self._exp_rng: np.random.Generator | None = None

    def reset(self, rows: Any, rng: np.random.Generator, start_s: Any = 0.0) -> None:
        """Queues of ``rows`` (an index array or mask) in the stationary workload at ``start_s``."""
        rows = np.arange(self.v.shape[0])[rows]
        k, n = len(rows), self.v.shape[1]
        busy = rng.random((k, n)) < self.load
        tail = self.mean_service_s / np.maximum(1.0 - self.load, 1e-12)
        start = np.broadcast_to(np.asarray(start_s, dtype=np.float64).reshape(-1, 1), (k, 1))
        self.v[rows] = np.where(busy, rng.standard_exponential((k, n)) * tail, 0.0)
        self.clock[rows] = start
        self.next_arrival[rows] = start + rng.standard_exponential((k, n)) * self.mean_gap_s

    def advance(self, t_s: Any, rng: np.random.Generator) -> None:
        """Run every queue's background up to ``t_s`` (one time per copy, or one for all, >= their
        clocks); ``rng`` gives the standard exponentials when the drawn-ahead block runs out."""
        t = t_s if type(t_s) is np.ndarray and t_s.ndim == 1 and t_s.dtype == np.float64 \
            else np.asarray(t_s, dtype=np.float64).reshape(-1)
        if t.shape[0] not in (1, self.v.shape[0]):
            raise ComputeError(f"'t_s' must be one time or one per copy ({self.v.shape[0]}; got {t.shape[0]})")
        if rng is not self._exp_rng:  # a new generator (a new seed): its own stream from now on
            self._exp, self._exp_i, self._exp_rng = np.empty(0), 0, rng
        while True:
            self._exp_i = _lindley(t, self.v, self.clock, self.next_arrival, self.mean_service_s, self.mean_gap_s,
                                   self._exp, self._exp_i)
            if self._exp_i >= 0:
                return
            # the block ran out (the queues done so far stay done): a new block, then go on
            self._exp, self._exp_i = rng.standard_exponential(_EXP_BLOCK), 0

    def backlog_s(self) -> np.ndarray:
        """Unfinished work (seconds) of every queue at its clock: what a job arriving now waits."""
        return self.v

    def add(self, rows: np.ndarray, es: int, seconds: np.ndarray) -> None:
        """Our jobs of ``seconds`` of service arrive at the clocks of ``rows``' ES ``es``."""
        self.v[rows, es] += seconds

    def row_queues(self, row: int) -> dict[int, RowQueue]:
        """Copy ``row``'s queues as the objects the timing walk reads and feeds (es_id -> queue):
        live mode serves through them, so live and profiled requests join the same queues."""
        return {i: RowQueue(self, row, i) for i in range(self.v.shape[1])}


class RowQueue:
    """One ES queue of an :class:`EsQueueBatch` copy, with :class:`EsQueue`'s ``backlog_s`` /
    ``submit`` / ``flops_per_s``, at the batch's clock (the batch is advanced by its owner)."""

    __slots__ = ("batch", "row", "es", "flops_per_s")

    def __init__(self, batch: EsQueueBatch, row: int, es: int) -> None:
        self.batch, self.row, self.es = batch, row, es
        self.flops_per_s = float(batch.flops_per_s[es])

    def backlog_s(self, now_s: float) -> float:
        clock = float(self.batch.clock[self.row, self.es])
        if now_s != clock:
            raise ComputeError(f"'now_s' must be the batch's clock {clock} (got {now_s}): advance the batch first")
        return float(self.batch.v[self.row, self.es])

    def submit(self, arrival_s: float, work_flops: float) -> None:
        self.backlog_s(arrival_s)
        self.batch.v[self.row, self.es] += work_flops / self.flops_per_s


@njit(cache=True)
def _lindley(t, v, clock, nxt, service, gap, exp, i):
    """:meth:`EsQueueBatch.advance`, compiled: queue by queue (copy-major), the Lindley
    recursion over its background arrivals up to its copy's time ``t``, then the drain to it.
    Each arrival takes two standard exponentials from ``exp`` at ``i`` (its job's size, then
    the gap to the next arrival). Returns the next unused index, or -1 when ``exp`` ran out:
    the queues before are then at ``t``, the rest as they were or part-way (their state is
    whole after each arrival), so the same call with a new block goes on where it stopped."""
    copies, n = v.shape
    for r in range(copies):
        tr = t[r] if t.shape[0] > 1 else t[0]
        for j in range(n):
            while nxt[r, j] <= tr:
                if i + 2 > exp.shape[0]:
                    return -1
                a = nxt[r, j]
                x = v[r, j] - (a - clock[r, j])
                v[r, j] = (x if x > 0.0 else 0.0) + exp[i] * service[j]
                clock[r, j] = a
                nxt[r, j] = a + exp[i + 1] * gap[j]
                i += 2
            x = v[r, j] - (tr - clock[r, j])
            v[r, j] = x if x > 0.0 else 0.0
            clock[r, j] = tr
    return i
