"""The ES queue: simulated waits against M/M/1 theory, our own jobs, out-of-order jobs, copies; the batched queues."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from meg_gym.compute import ComputeError, EsQueue, EsQueueBatch, QueueResult


def pk_mean_wait_s(load: float, mean_service_s: float) -> float:
    """Pollaczek-Khinchine mean wait of a Poisson arrival (PASTA: the mean unfinished work):
    ``rho E[S^2] / (2 E[S] (1 - rho))``, which is ``rho E[S] / (1 - rho)`` for exponential work."""
    return load * mean_service_s / (1.0 - load)


def probe_waits(queue: EsQueue, rng: np.random.Generator, n: int, mean_gap_s: float) -> np.ndarray:
    """Waits of ``n`` tiny probe jobs arriving as a Poisson stream (they see time averages)."""
    times = np.cumsum(rng.exponential(mean_gap_s, n)).tolist()
    return np.array([queue.submit(t, 1e-12).wait_s for t in times])


@pytest.mark.parametrize(("load", "n", "gap"), [(0.5, 40_000, 1.0), (0.8, 80_000, 4.0)])
def test_mean_wait_matches_mm1_theory(load, n, gap):
    """Short gaps between jobs: the job-by-job path. Within 15% of rho E[S] / (1 - rho)."""
    mean_s = 2.0  # 2e12 FLOPs of background work per job at 1e12 FLOP/s
    rng = np.random.default_rng(12)
    q = EsQueue(1e12, load, 2e12, rng)
    waits = probe_waits(q, rng, n, gap * mean_s)
    theory = pk_mean_wait_s(load, mean_s)
    assert abs(waits.mean() - theory) / theory < 0.15, (waits.mean(), theory)
    assert abs((waits == 0).mean() - (1 - load)) < 0.05  # an arrival finds the server idle w.p. 1 - rho


def test_long_gaps_use_the_gamma_path_and_stay_exact():
    """Gaps of 200 mean service times (>32 expected arrivals): Poisson count + gamma total, Loynes."""
    rng = np.random.default_rng(5)
    q = EsQueue(1.0, 0.5, 1.0, rng)
    waits = probe_waits(q, rng, 3000, 200.0)
    assert abs(waits.mean() - pk_mean_wait_s(0.5, 1.0)) < 0.15
    assert abs((waits == 0).mean() - 0.5) < 0.05


def test_warm_start_is_in_steady_state():
    backlogs = np.array([EsQueue(1.0, 0.7, 1.0, np.random.default_rng(s)).backlog_s(0.0) for s in range(2000)])
    assert abs(backlogs.mean() - pk_mean_wait_s(0.7, 1.0)) / pk_mean_wait_s(0.7, 1.0) < 0.15
    assert EsQueue(1.0, 0.7, 1.0, np.random.default_rng(0), warmup_s=0).backlog_s(0.0) == 0.0


def test_our_jobs_queue_behind_each_other():
    q = EsQueue(10.0, 0.0, 1.0, np.random.default_rng(0))  # no background: only our jobs
    r1 = q.submit(1.0, 20.0)  # 2 s of service
    r2 = q.submit(1.0, 10.0)  # same instant, submitted second: waits for the first
    r3 = q.submit(2.5, 10.0)
    assert r1 == QueueResult(0.0, 2.0, 3.0)
    assert r2 == QueueResult(2.0, 1.0, 4.0)
    assert r3.wait_s == pytest.approx(1.5) and r3.finish_s == pytest.approx(5.0) and r3.start_s == pytest.approx(4.0)
    assert q.backlog_s(4.5) == pytest.approx(0.5)
    assert q.backlog_s(10.0) == 0.0


def test_out_of_order_jobs_wait_fifo_and_delay_what_came_after():
    q = EsQueue(1.0, 0.0, 1.0, np.random.default_rng(0))
    assert q.submit(10.0, 2.0).wait_s == 0.0  # busy 10..12
    late = q.submit(5.0, 6.0)  # arrived first (5..11); the caller reports it later
    assert late == QueueResult(0.0, 6.0, 11.0)
    # the path now holds both: 1 s of the late job was left at 10, so 3 s of work at 10
    assert q.backlog_s(10.0) == pytest.approx(3.0)
    assert q.submit(12.0, 1.0).wait_s == pytest.approx(1.0)
    with pytest.raises(ComputeError, match=r"'arrival_s' must be >= 0.0, the oldest time this queue still records"):
        q.submit(-1.0, 1.0)
    short = EsQueue(1.0, 0.0, 1.0, np.random.default_rng(0), history_intervals=2)
    for t in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
        short.backlog_s(t)
    with pytest.raises(ComputeError, match=r"raise 'history_intervals' to reach further back"):
        short.submit(1.5, 1.0)


def _workload(v0: float, t0: float, arrivals: list[tuple[float, float]], tau: float, *, strict: bool) -> float:
    """Brute force: Lindley over ``arrivals`` from V(t0-) = v0 up to tau (``strict``: arrivals before tau only)."""
    v, t = v0, t0
    for at, size in arrivals:
        if at > tau or (strict and at >= tau):
            break
        v = max(0.0, v - (at - t)) + size
        t = at
    return max(0.0, v - (tau - t))


def _check_path(q: EsQueue) -> list[tuple[float, float]]:
    """Draw the whole recorded path of a copy and check every boundary against the brute force."""
    c = q.copy()
    arrivals = c._expand_all()
    for b, vm in zip(c._b, c._vm, strict=True):
        assert vm == pytest.approx(_workload(c._vm[0], c._b[0], arrivals, b, strict=True), abs=1e-9)
    return arrivals


@pytest.mark.parametrize(("load", "mean_s"), [(0.6, 1.0), (0.7, 0.01)])  # few / many arrivals per interval
def test_late_jobs_match_a_brute_force_replay(load, mean_s):
    rng = np.random.default_rng(3)
    q = EsQueue(1.0, load, mean_s, rng)
    for t in (5.0, 9.0, 60.0, 61.5, 90.0):  # our jobs in time order, with gaps long and short
        q.submit(t, 1.5)
    q.backlog_s(120.0)
    _check_path(q)
    for a, work in [(7.2, 2.5), (30.0, 0.7), (61.5, 1.0), (100.0, 3.0), (8.0, 0.4)]:  # 61.5 ties with ours
        res = q.submit(a, work)
        arrivals = _check_path(q)
        # it is the last to arrive at ``a`` (ours at exactly ``a`` submitted before it stay ahead)
        expected = _workload(q._vm[0], q._b[0], arrivals, a, strict=False) - work
        assert res.wait_s == pytest.approx(expected, abs=1e-9)
    assert q.clock_s == 120.0


def test_late_jobs_work_with_a_fast_stream_of_small_background_jobs():
    """The tiny model's background: ~650 jobs/s of ~1 ms. Late jobs seconds back are fine."""
    q = EsQueue(2.77e13, 0.7, 3e10, np.random.default_rng(0))
    assert q.submit(3.0, 3e12).wait_s < 0.1
    late = q.submit(1.2, 3e12)
    assert 0.0 <= late.wait_s < 0.1 and late.finish_s > 1.2
    assert q.backlog_s(1.25) >= late.finish_s - 1.25 - 1e-12  # its work is on the path
    _check_path(q)


def test_copies_are_independent_and_replay_the_same_background():
    q = EsQueue(1.0, 0.5, 1.0, np.random.default_rng(9))
    q.submit(3.0, 1.0)
    for twin in (q.copy(), copy.deepcopy(q), copy.copy(q)):
        assert twin.submit(50.0, 1.0) == q.copy().submit(50.0, 1.0)
    c = q.copy()
    before = q.backlog_s(3.0)
    c.submit(3.5, 100.0)
    assert q.backlog_s(3.0) == before and q.clock_s == 3.0  # the original did not move


def test_arguments_are_validated():
    rng = np.random.default_rng(0)
    cases = [
        (dict(flops_per_s=-3.0), r"'flops_per_s' must be > 0 \(got -3.0\)"),
        (dict(load=1.0), r"'load' must be in \[0, 1\) \(got 1.0\)"),
        (dict(load=-0.1), r"'load' must be in \[0, 1\) \(got -0.1\)"),
        (dict(load="high"), r"'load' must be a finite number in \[0, 1\) \(got 'high'\)"),
        (dict(mean_job_flops=0.0), r"'mean_job_flops' must be > 0 \(got 0.0\)"),
        (dict(rng=42), r"'rng' must be a numpy.random.Generator, e.g. np.random.default_rng\(seed\) \(got int\)"),
        (dict(warmup_s=-1.0), r"'warmup_s' must be >= 0 \(got -1.0\)"),
        (dict(history_intervals=0), r"'history_intervals' must be an int >= 1 \(got 0\)"),
    ]
    base = dict(flops_per_s=1e12, load=0.3, mean_job_flops=1e12, rng=rng)
    for change, message in cases:
        with pytest.raises(ComputeError, match=message):
            EsQueue(**{**base, **change})
    q = EsQueue(**base)
    with pytest.raises(ComputeError, match=r"'work_flops' must be >= 0 \(got -1.0\)"):
        q.submit(1.0, -1.0)
    with pytest.raises(ComputeError, match=r"'arrival_s' must be a finite number \(got nan\)"):
        q.submit(float("nan"), 1.0)


# -- EsQueueBatch: the same model as arrays (the batched worlds' queues) -------------------------------------------
def _replay(v, clock, nxt, service, gap, t, exp):
    """EsQueueBatch.advance written out: queue by queue (copy-major), each background arrival
    takes its job's size, then the gap to the next, from the standard exponentials ``exp``."""
    v, clock, nxt, i = v.copy(), clock.copy(), nxt.copy(), 0
    for r in range(v.shape[0]):
        for j in range(v.shape[1]):
            while nxt[r, j] <= t[r]:
                a = nxt[r, j]
                v[r, j] = max(v[r, j] - (a - clock[r, j]), 0.0) + exp[i] * service[j]
                clock[r, j], nxt[r, j] = a, a + exp[i + 1] * gap[j]
                i += 2
            v[r, j], clock[r, j] = max(v[r, j] - (t[r] - clock[r, j]), 0.0), t[r]
    return v, clock, nxt


def test_batch_advance_is_the_lindley_recursion_over_its_draws():
    """Exactly the job-by-job recursion over the generator's standard exponentials, across several
    of its drawn-ahead blocks (thousands of arrivals), with one time per copy; a load of 0 never
    sees an arrival."""
    q = EsQueueBatch([1.0, 2.0, 1.0], [0.3, 0.8, 0.0], 1.0, 3)
    q.reset(slice(None), np.random.default_rng(1), 0.0)
    rng = np.random.default_rng(2)
    twin = copy.deepcopy(rng)
    exp = twin.standard_exponential(4096 * 8)
    t = np.array([2000.0, 10.0, 3500.0])
    want = _replay(q.v, q.clock, q.next_arrival, q.mean_service_s, q.mean_gap_s, t, exp)
    q.advance(t, rng)
    for got, w in zip((q.v, q.clock, q.next_arrival), want):
        np.testing.assert_array_equal(got, w)
    assert np.all(q.next_arrival[:, 2] == np.inf) and np.all(q.backlog_s()[:, 2] == 0.0)
    assert q._exp_i > 0 and q.clock.tolist() == np.repeat(t[:, None], 3, axis=1).tolist()


def test_batch_backlog_is_stationary_mm1():
    """Reset draws the stationary workload (mean rho E[S] / (1 - rho), idle w.p. 1 - rho), and
    advancing keeps it there; our work added at the clock raises the backlog by its seconds."""
    q = EsQueueBatch([2.0], [0.7], 4.0, 20_000)  # E[S] = 2 s
    rng = np.random.default_rng(3)
    q.reset(slice(None), rng, 0.0)
    theory = pk_mean_wait_s(0.7, 2.0)
    for t in (0.0, 5.0, 60.0):
        q.advance(t, rng)
        b = q.backlog_s()[:, 0]
        assert abs(b.mean() - theory) / theory < 0.05, (t, b.mean(), theory)
        assert abs((b == 0).mean() - 0.3) < 0.02
    before = q.backlog_s()[:5, 0].copy()
    q.add(np.arange(5), 0, np.full(5, 1.5))
    np.testing.assert_allclose(q.backlog_s()[:5, 0], before + 1.5)


def test_batch_is_reproducible_and_a_new_generator_starts_afresh():
    def run(q, seed):
        rng = np.random.default_rng(seed)
        q.reset(slice(None), rng, 0.0)
        for t in (3.0, 9.0, 40.0):
            q.advance(t, rng)
        return q.backlog_s().copy()

    used = EsQueueBatch([1.0, 1.0], [0.5, 0.6], 1.0, 4)
    run(used, 11)  # leaves drawn-ahead numbers of generator 11 behind
    np.testing.assert_array_equal(run(used, 7), run(EsQueueBatch([1.0, 1.0], [0.5, 0.6], 1.0, 4), 7))


def test_batch_arguments_are_validated():
    with pytest.raises(ComputeError, match=r"'load\[1\]' must be in \[0, 1\) \(got 1.0\)"):
        EsQueueBatch([1.0, 1.0], [0.5, 1.0], 1.0, 2)
    with pytest.raises(ComputeError, match="one entry per ES"):
        EsQueueBatch([1.0, 1.0], [0.5], 1.0, 2)
    q = EsQueueBatch([1.0], [0.5], 1.0, 3)
    with pytest.raises(ComputeError, match=r"'t_s' must be one time or one per copy \(3; got 2\)"):
        q.advance([1.0, 2.0], np.random.default_rng(0))
