"""The GIL is released in every kernel, and processes forked after OpenMP ran do not hang.

GIL: two Python threads each run a one-thread kernel on a large array; their (start, end)
intervals, taken with time.perf_counter around the call, must intersect. With the GIL held for
the whole call, the second call cannot start before the first ends, so the intervals would be
disjoint every time; the test repeats a few times and asks for one overlap.

Fork: GNU libgomp hangs a child that enters a parallel region after its parent used one.
cydrop's at-fork hook (src/cydrop/_openmp.pyx) makes such children serial; each worker here
runs under a timeout and must give the parent's (bit-identical) result. A bare ``os.fork``
child is tested in a fresh interpreter by test_regressions_core.py (test_forked_child_never_hangs).
"""

import multiprocessing as mp
import sys
import threading
import time

import numpy as np
import pytest

import cydrop
from cydrop import _openmp

from helpers import bits_of

N_BIG = 8_000_000          # ~30 ms per float32 forward on one thread: long enough to overlap


def _overlapping_calls(fn, repeats=20):
    """Run fn(i) in two threads at once, up to `repeats` times (until the calls overlap: on a
    loaded two-core machine the second thread may not be scheduled in time); return the pairs.

    The GIL switch interval is raised to 5 s meanwhile, so the GIL changes hands only when a
    thread releases it itself. Taking a timestamp and entering the call then happen under one
    hold of the GIL, and so do returning and taking the end timestamp: if the call kept the
    GIL, one thread's whole interval would complete before the other's begins.
    """
    old = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        return _overlapping_calls_inner(fn, repeats)
    finally:
        sys.setswitchinterval(old)


def _overlapping_calls_inner(fn, repeats):
    def target(i, barrier, spans, errors):
        try:
            barrier.wait()
            t0 = time.perf_counter()
            fn(i)
            spans[i] = (t0, time.perf_counter())
        except Exception as exc:  # surfaced below
            errors.append(exc)

    pairs = []
    for _ in range(repeats):
        barrier = threading.Barrier(2)
        spans = [None, None]
        errors = []
        threads = [threading.Thread(target=target, args=(i, barrier, spans, errors))
                   for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        pairs.append(spans)
        if _overlapped([spans]):
            break
    return pairs


def _overlapped(pairs):
    """Whether the two intervals of some pair intersect."""
    return any(max(a0, b0) < min(a1, b1) for (a0, a1), (b0, b1) in pairs)


@pytest.fixture(scope="module")
def big():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(N_BIG, dtype=np.float32)
    return x


@pytest.mark.parametrize("kernel", ["forward", "forward-bits", "backward-recompute",
                                    "backward-bits", "mask"])
def test_one_thread_kernels_in_two_python_threads_overlap(kernel, big):
    x = big
    outs = [np.empty_like(x), np.empty_like(x)]
    _, cache_bits = cydrop.dropout(x, 0.5, seed=1, mask="bits", n_threads=1)
    _, cache_rec = cydrop.dropout(x, 0.5, seed=1, n_threads=1)
    masks = [np.empty(N_BIG, np.uint8), np.empty(N_BIG, np.uint8)]
    calls = {
        "forward": lambda i: cydrop.dropout(x, 0.5, seed=i, out=outs[i], n_threads=1),
        "forward-bits": lambda i: cydrop.dropout(x, 0.5, seed=i, out=outs[i], mask="bits",
                                                 n_threads=1),
        "backward-recompute": lambda i: cydrop.dropout_backward(x, cache_rec, out=outs[i],
                                                                n_threads=1),
        "backward-bits": lambda i: cydrop.dropout_backward(x, cache_bits, out=outs[i],
                                                           n_threads=1),
        "mask": lambda i: cydrop._kernels.mask(N_BIG, i, 0, 32768, None, masks[i], 1),
    }
    pairs = _overlapping_calls(calls[kernel])
    assert _overlapped(pairs), f"no overlap in {len(pairs)} tries: {pairs}"


def test_the_overlap_check_fails_for_a_call_that_holds_the_gil():
    # Control: builtin sum over a range runs in C without releasing the GIL.
    pairs = _overlapping_calls(lambda i: sum(range(2_000_000)), repeats=3)
    assert len(pairs) == 3 and not _overlapped(pairs), pairs


def test_overlap_is_not_an_artifact_of_interleaving_with_the_gil():
    # Stronger GIL evidence independent of timestamps' interleaving: while one thread runs a
    # long one-thread kernel, a pure-Python counter in another thread keeps making progress.
    x = np.ones(2 * N_BIG, dtype=np.float32)
    out = np.empty_like(x)
    sys_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)   # longer than the kernel: no forced GIL hand-over meanwhile
    try:
        started, done = threading.Event(), threading.Event()
        count = [0]

        def counter():
            started.set()
            while not done.is_set():
                count[0] += 1

        t = threading.Thread(target=counter)
        t.start()
        started.wait()
        before = count[0]
        cydrop.dropout(x, 0.5, seed=1, out=out, n_threads=1)
        during = count[0] - before
        done.set()
        t.join()
    finally:
        sys.setswitchinterval(sys_interval)
    assert during > 0, "no Python progress while the kernel ran: the GIL was held"


# ------------------------------------------------------------------------------- processes

def _worker(args):
    seed, n, n_threads = args
    x = np.arange(n, dtype=np.float32) / n
    y, c = cydrop.dropout(x, 0.3, seed=seed, n_threads=n_threads, mask="bits")
    dx = cydrop.dropout_backward(x, c, n_threads=n_threads)
    return (bits_of(y).tobytes(), bits_of(dx).tobytes(), cydrop.effective_n_threads(n_threads),
            _openmp.forked_serial())


def _parent_runs_parallel_kernels():
    x = np.ones(4_000_000, dtype=np.float32)
    for _ in range(3):
        cydrop.dropout(x, 0.5, seed=1, n_threads=2)
        cydrop.dropout_mask(x.size, 0.5, seed=2, n_threads=2)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_workers_finish_after_parent_ran_parallel_kernels(method):
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} not available")
    _parent_runs_parallel_kernels()
    n = 2_000_000
    jobs = [(s, n, 2) for s in range(4)]
    expected = [_worker(j)[:2] for j in jobs]
    ctx = mp.get_context(method)
    with ctx.Pool(2) as pool:
        res = pool.map_async(_worker, jobs)
        try:
            got = res.get(timeout=120)
        except mp.TimeoutError:
            pool.terminate()
            pytest.fail(f"{method} workers hung after the parent used OpenMP")
    for (y, dx, threads, serial), (ey, edx) in zip(got, expected):
        assert y == ey and dx == edx
        if method == "fork" and cydrop.openmp_enabled():
            assert serial and threads == 1
        else:
            assert not serial
