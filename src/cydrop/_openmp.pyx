"""Thread control: the one place that turns a user's ``n_threads`` into a thread count.

Fork safety
-----------
GNU libgomp keeps its worker threads in a pool that ``fork()`` does not copy: a child process
forked after its parent ran an OpenMP parallel region hangs (or crashes) the first time it enters
one itself. This is what ``multiprocessing``'s default ``'fork'`` start method on Linux, and
``os.fork``, do. So cydrop registers an ``os.register_at_fork(after_in_child=...)`` hook: a child
forked from a process in which :func:`effective_n_threads` ever resolved to more than one thread
(the only way cydrop's kernels enter a parallel region) is switched to serial for its whole life,
and :func:`effective_n_threads` answers 1 there. Kernels given one thread run a plain loop and
never touch OpenMP, so the child cannot hang; masks and outputs are bit-identical (they never
depend on the thread count). libgomp cannot be re-initialised in the child, so the switch is
permanent; grandchildren inherit it. Processes made by ``'spawn'`` or ``'forkserver'`` (whose
server never runs kernels) start fresh and keep every thread: use them for parallel workers.
:func:`forked_serial` tells whether the switch is on.
"""

import os

from cydrop._openmp cimport CYDROP_OPENMP_ENABLED, omp_get_max_threads


def openmp_enabled():
    """Whether this build of cydrop runs its kernels with OpenMP.

    Returns
    -------
    bool
        ``True`` for the OpenMP build, ``False`` for the serial one (built when the compiler
        had no OpenMP or ``CYDROP_DISABLE_OPENMP=1`` was set). Both give the same results.
    """
    return bool(CYDROP_OPENMP_ENABLED)


# True once effective_n_threads resolved to more than one thread in this process (or in an
# ancestor it was forked from): from then on, a kernel may have started libgomp's thread pool.
cdef bint _parallel_used = False
# True in a process forked after _parallel_used was set: kernels must stay serial (see above).
cdef bint _forked_serial = False


def _after_fork_in_child():
    global _forked_serial
    if _parallel_used:
        _forked_serial = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_serial():
    """Whether this process was forked after OpenMP was used, so kernels run serially.

    Returns
    -------
    bool
        ``True`` in a child forked (``os.fork``, ``multiprocessing``'s ``'fork'`` start method)
        from a process that had run cydrop kernels with more than one thread. There
        :func:`effective_n_threads` always answers 1, because entering an OpenMP parallel region
        after such a fork hangs with GNU libgomp. Results are unchanged; only speed differs.
    """
    return bool(_forked_serial)


def _usable_cpus():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


def effective_n_threads(n_threads=None):
    """Resolve a requested thread count into the number of threads kernels will use.

    Parameters
    ----------
    n_threads : int or None, default=None
        ``None`` or ``-1``: every usable core, capped by ``CYDROP_NUM_THREADS`` if set, else by
        ``OMP_NUM_THREADS`` (OpenMP's own maximum). ``k > 0``: ``k`` threads. ``-k``: the
        maximum minus ``k - 1``, at least 1.

    Returns
    -------
    int
        A thread count >= 1; always 1 in the serial build, and in a process forked after
        cydrop ran multi-threaded (see :func:`forked_serial`).

    Raises
    ------
    TypeError
        If ``n_threads`` is not an int or None.
    ValueError
        If ``n_threads`` is 0, or if ``CYDROP_NUM_THREADS`` is set but not a positive integer.
    """
    if n_threads is not None and (isinstance(n_threads, bool)
                                  or not hasattr(n_threads, "__index__")):
        raise TypeError(f"n_threads must be an int or None, got {n_threads!r}")
    if n_threads is not None:
        n_threads = int(n_threads.__index__())
        if n_threads == 0:
            raise ValueError("n_threads must be a nonzero int or None, got 0")
    env = os.environ.get("CYDROP_NUM_THREADS")
    if env is not None and env.strip():
        try:
            max_threads = int(env)
        except ValueError:
            max_threads = 0
        if max_threads <= 0:
            raise ValueError(
                f"CYDROP_NUM_THREADS must be a positive integer, got {env!r}")
    else:
        max_threads = min(omp_get_max_threads(), _usable_cpus())
    global _parallel_used
    if not CYDROP_OPENMP_ENABLED or _forked_serial:
        return 1
    if n_threads is None:
        n_threads = max_threads
    elif n_threads < 0:
        n_threads = max(1, max_threads + n_threads + 1)
    if n_threads > 1:
        _parallel_used = True
    return n_threads
