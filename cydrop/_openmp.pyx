"""Thread control: the one place that turns a user's ``n_threads`` into a thread count.

Design
------
a) C: the OpenMP shim of cydrop/_openmp.pxd (``omp_get_max_threads``, ``omp_get_thread_num``;
   stubs returning 1 / 0 in the serial build).
b) Runner: none here; cydrop/_parallel.pyx runs the tasks with the count resolved here.
c) Wrappers: ``effective_n_threads`` is a ``cpdef`` declared in _openmp.pxd, so the Cython fast
   paths cimport and call it in C; ``openmp_enabled`` and ``forked_serial`` are plain functions.

Fork safety
-----------
GNU libgomp keeps its worker threads in a pool that ``fork()`` does not copy: a child process
forked after ANY code in its parent ran an OpenMP parallel region (cydrop, or another library
linked to the same libgomp: a BLAS, scikit-learn, PyTorch, ...) hangs the first time it enters
one itself. This is what ``multiprocessing``'s ``'fork'`` start method on Linux, ``os.fork`` and
DataLoader-style worker pools do. libgomp offers no way to ask whether its pool exists, and the
parent's thread count cannot tell either (NumPy's BLAS starts threads at import), so cydrop
decides conservatively: an ``os.register_at_fork(after_in_child=...)`` hook switches every forked
child of the OpenMP build to serial kernels, and :func:`effective_n_threads` answers 1 there.
Kernels given one thread run a plain loop and never touch OpenMP, so the child cannot hang; masks
and outputs are bit-identical (they never depend on the thread count). The switch is permanent
for the child's life and grandchildren inherit it.

Opting back in: a child forked while ``CYDROP_FORK_THREADS=1`` is set in the environment keeps
its threads, unless cydrop itself had run multi-threaded kernels in the parent (that child would
hang for certain). Set it only when you know nothing in the parent ran an OpenMP region before
the fork. Processes made by ``'spawn'`` or ``'forkserver'`` start fresh and keep every thread: use
them for parallel workers. :func:`forked_serial` tells whether the switch is on.

Thread counts
-------------
:func:`effective_n_threads` accepts any int. Counts above the usable cores are capped at the
number of usable cores (as scikit-learn does): more threads than cores only adds waiting, and a
huge count must never reach the OpenMP runtime, which aborts the process when it cannot allocate
the team.
"""

import os



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
# True in a forked child (see "Fork safety" above): kernels must stay serial.
cdef bint _forked_serial = False


def _after_fork_in_child():
    global _forked_serial
    if not CYDROP_OPENMP_ENABLED:
        return
    opt_in = os.environ.get("CYDROP_FORK_THREADS", "").strip().lower() in ("1", "true", "yes",
                                                                           "on")
    if _parallel_used or not opt_in:
        _forked_serial = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_serial():
    """Whether this process was forked after OpenMP was used, so kernels run serially.

    Returns
    -------
    bool
        ``True`` in a child forked (``os.fork``, ``multiprocessing``'s ``'fork'`` start method)
        from a process running the OpenMP build, unless ``CYDROP_FORK_THREADS=1`` was set at
        the fork and cydrop had not run multi-threaded kernels in the parent. There
        :func:`effective_n_threads` always answers 1, because entering an OpenMP parallel region
        after a fork hangs with GNU libgomp if anything in the parent had run one. Results are
        unchanged; only speed differs.
    """
    return bool(_forked_serial)


def _usable_cpus():
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n)


cpdef int effective_n_threads(object n_threads=None) except -1:
    """Resolve a requested thread count into the number of threads kernels will use.

    Parameters
    ----------
    n_threads : int or None, default=None
        ``None`` or ``-1``: every usable core, capped by ``CYDROP_NUM_THREADS`` if set, else by
        ``OMP_NUM_THREADS`` (OpenMP's own maximum). ``k > 0``: ``k`` threads, capped at the
        number of usable cores (any int is accepted). ``-k``: the maximum minus ``k - 1``, at
        least 1.

    Returns
    -------
    int
        A thread count ``1 <= n <= usable cores``; always 1 in the serial build, and in a
        forked child (see ``cydrop._openmp.forked_serial()``).

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
    n_threads = min(n_threads, _usable_cpus())
    if n_threads > 1:
        _parallel_used = True
    return n_threads
