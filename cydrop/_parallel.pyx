# cython: freethreading_compatible = False
"""The chunk runner: the one loop over tasks of every cydrop kernel call.

Design
------
a) C kernels (src/cydrop_kernels.h): each computes one task -- a chunk of 4096 elements, a group
   of rows, or one row -- and cannot fail; the task a thread gets never changes what it computes.
b) This module: ``run_tasks`` runs tasks ``0 .. n_tasks - 1`` of a task function, serially when
   ``use_threads(work, n_threads)`` (cydrop/_parallel.pxd, the one policy) says no, else as
   ``prange(n_tasks, schedule='static')`` on ``min(n_threads, n_tasks)`` OpenMP threads: never
   more threads than tasks, since a team OpenMP cannot allocate aborts the process. Callers have
   already capped ``n_threads`` at the usable cores (``effective_n_threads``).
c) Wrappers (cydrop/_kernels.pyx, cydrop/_variants.pyx, cydrop/_floor.pyx): validate at the
   boundary, pack a ctx struct, pick the float32/float64 task function, release the GIL and call
   ``run_tasks``.

Tasks needing scratch memory get it preallocated by the boundary, one slice per thread of the
team, indexed by ``task_thread()`` (0 on the serial path and in the serial build).
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t

from cydrop._openmp cimport omp_get_thread_num

MIN_WORK = PARALLEL_MIN_WORK


cdef void run_tasks(task_fn fn, void *ctx, int64_t n_tasks, int64_t work,
                    int n_threads) noexcept nogil:
    cdef int64_t t
    cdef int team
    if n_tasks < 2 or not use_threads(work, n_threads):
        for t in range(n_tasks):
            fn(ctx, t)
        return
    team = <int>n_tasks if n_tasks < n_threads else n_threads
    for t in prange(n_tasks, schedule="static", num_threads=team):
        fn(ctx, t)


cdef int task_thread() noexcept nogil:
    return omp_get_thread_num()


def uses_threads(int64_t work, int n_threads):
    """Whether a call of ``work`` forward-element equivalents on ``n_threads`` threads runs on an
    OpenMP team (the policy ``use_threads``; for tests and tools)."""
    return bool(use_threads(work, n_threads))
