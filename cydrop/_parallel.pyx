# cython: freethreading_compatible = False
"""The chunk runner: the one loop over tasks of every cydrop kernel call.

Design
------
a) C kernels (src/cydrop_kernels.h): each computes one task -- a chunk of 4096 elements, a group
   of rows, or one row -- and cannot fail; the task a thread gets never changes what it computes.
b) This module: ``run_tasks`` runs tasks ``0 .. n_tasks - 1`` of a task function, serially when
   ``use_threads(work, n_threads)`` (cydrop/_parallel.pxd, the one policy) says no, else as
   a static schedule (contiguous equal shares) on ``min(n_threads, n_tasks)`` OpenMP threads: never
   more threads than tasks, since a team OpenMP cannot allocate aborts the process. Callers have
   already capped ``n_threads`` at the usable cores (``effective_n_threads``). Every region is
   timed for the load feedback (src/cydrop_adapt.h): a region that lost to its serial estimate,
   on a machine whose cores are busy with other work, sends the runner serial for a backoff.
c) Wrappers (cydrop/_kernels.pyx, cydrop/_variants.pyx, cydrop/_floor.pyx): validate at the
   boundary, pack a ctx struct, pick the float32/float64 task function, release the GIL and call
   ``run_tasks``.

Tasks needing scratch memory get it preallocated by the boundary, one slice per thread of the
team, indexed by ``task_thread()`` (0 on the serial path and in the serial build).
"""

from cython.parallel cimport parallel, threadid
from libc.stdint cimport int64_t

from cydrop._openmp cimport omp_get_num_threads, omp_get_thread_num

cdef extern from "cydrop_adapt.h" nogil:
    ctypedef struct cydrop_adapt_state:
        int64_t serial_until, backoff, enabled, regions, losses, serial_calls, suspect
    cydrop_adapt_state cydrop_adapt
    double CYDROP_ADAPT_LOSS
    int64_t CYDROP_ADAPT_MIN_NS, CYDROP_ADAPT_MAX_NS
    int64_t cydrop_now_ns() noexcept
    int cydrop_adapt_serial(int64_t now) noexcept
    int cydrop_adapt_record(int64_t region, double serial_estimate, int64_t now) noexcept

MIN_WORK = PARALLEL_MIN_WORK

cdef enum:
    # Threads whose share of a region is timed (the serial estimate takes the fastest of them).
    TIMED = 64


cdef void run_tasks(task_fn fn, void *ctx, int64_t n_tasks, int64_t work,
                    int n_threads) noexcept nogil:
    cdef int64_t t, lo, hi, start, stop, region
    cdef int team, tid, nt, i
    cdef double per_task[TIMED]
    cdef double *shares = per_task
    cdef double fastest, estimate
    if (n_tasks < 2 or not use_threads(work, n_threads)
            or cydrop_adapt_serial(cydrop_now_ns())):
        for t in range(n_tasks):
            fn(ctx, t)
        return
    team = <int>n_tasks if n_tasks < n_threads else n_threads
    for i in range(TIMED):
        per_task[i] = -1.0
    start = cydrop_now_ns()
    # The static schedule by hand: thread k of nt runs tasks [n k / nt, n (k + 1) / nt), as
    # prange(schedule='static') does, and times its share for the load feedback.
    with parallel(num_threads=team):
        tid = threadid()
        nt = omp_get_num_threads()
        lo = n_tasks * tid // nt
        hi = n_tasks * (tid + 1) // nt
        t = cydrop_now_ns()
        for i in range(<int>(hi - lo)):
            fn(ctx, lo + i)
        if tid < TIMED and hi > lo:
            shares[tid] = <double>(cydrop_now_ns() - t) / <double>(hi - lo)
    stop = cydrop_now_ns()
    fastest = -1.0
    for i in range(TIMED):
        if per_task[i] >= 0.0 and (fastest < 0.0 or per_task[i] < fastest):
            fastest = per_task[i]
    if fastest >= 0.0:
        # What the whole call would take on one thread, at the fastest thread's pace per task
        # (an overestimate on a quiet machine, where threads share the memory bus).
        estimate = fastest * <double>n_tasks
        cydrop_adapt_record(stop - start, estimate, stop)


cdef int task_thread() noexcept nogil:
    return omp_get_thread_num()


def uses_threads(int64_t work, int n_threads):
    """Whether a call of ``work`` forward-element equivalents on ``n_threads`` threads runs on an
    OpenMP team (the policy ``use_threads``, before the load feedback; for tests and tools)."""
    return bool(use_threads(work, n_threads))


def load_feedback(enabled=None):
    """The load feedback's state, as a dict; ``enabled`` (a bool) turns it on or off first.

    Returns ``{'enabled', 'regions', 'losses', 'serial_calls', 'serial_for_ns', 'backoff_ns'}``:
    whether it is on, the parallel regions timed and how many lost to the serial estimate, the
    calls it ran serially, how much longer it stays serial, and the next backoff. Turning it off
    (for benchmarks that measure the team itself) also ends any backoff.
    """
    if enabled is not None:
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool or None, got {type(enabled).__name__}")
        cydrop_adapt.enabled = 1 if enabled else 0
        if not enabled:
            cydrop_adapt.serial_until = 0
            cydrop_adapt.backoff = CYDROP_ADAPT_MIN_NS
            cydrop_adapt.suspect = 0
    now = cydrop_now_ns()
    return {"enabled": bool(cydrop_adapt.enabled), "regions": cydrop_adapt.regions,
            "losses": cydrop_adapt.losses, "serial_calls": cydrop_adapt.serial_calls,
            "serial_for_ns": max(0, cydrop_adapt.serial_until - now),
            "backoff_ns": cydrop_adapt.backoff}


def _record(int64_t region_ns, double serial_estimate_ns, int64_t now_ns):
    """``cydrop_adapt_record`` (for tests: feeds the feedback a region's timings); returns
    whether the runner backs off (the second loss in a row)."""
    return bool(cydrop_adapt_record(region_ns, serial_estimate_ns, now_ns))


def _serial_now(int64_t now_ns):
    """``cydrop_adapt_serial``: whether a team-sized call at ``now_ns`` runs serially."""
    return bool(cydrop_adapt_serial(now_ns))


def _now_ns():
    """``cydrop_now_ns()``: the feedback's monotonic clock."""
    return cydrop_now_ns()


LOSS = CYDROP_ADAPT_LOSS
BACKOFF_MIN_NS = CYDROP_ADAPT_MIN_NS
BACKOFF_MAX_NS = CYDROP_ADAPT_MAX_NS
