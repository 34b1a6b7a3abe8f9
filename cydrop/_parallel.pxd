# The one chunk runner of cydrop's kernels and its one serial/parallel policy (cydrop/_parallel.pyx).
#
# Every op packs its arguments into a small ctx struct and hands the runner a task function; the
# runner runs tasks 0 .. n_tasks - 1 on the calling thread or on an OpenMP team. A task's result
# never depends on which thread runs it, so the policy changes speed only, never bits.
from libc.stdint cimport int64_t

ctypedef void (*task_fn)(void *ctx, int64_t t) noexcept nogil

cdef enum:
    # Below this much work a call runs on the calling thread. Work is counted in elements of the
    # dropout forward (about 0.3 ns each on one core); costlier ops weigh theirs (see the callers).
    # 131072 elements = 32 chunks of 4096, the threshold the core has always used: a parallel
    # region costs microseconds to open, and its idle workers spin for a while afterwards, taking
    # the cores from whatever runs next (a BLAS call in a training step). Measured on the core
    # forward, threads start paying off at about this size; one value serves every op.
    PARALLEL_MIN_WORK = 131072


cdef inline bint use_threads(int64_t work, int n_threads) noexcept nogil:
    """The policy: threads only when more than one is allowed and the work is worth a team."""
    return n_threads > 1 and work >= PARALLEL_MIN_WORK


cdef void run_tasks(task_fn fn, void *ctx, int64_t n_tasks, int64_t work,
                    int n_threads) noexcept nogil

cdef int task_thread() noexcept nogil
