"""Thread control: the one place that turns a user's ``n_threads`` into a thread count."""

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
        A thread count >= 1; always 1 in the serial build.

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
    if not CYDROP_OPENMP_ENABLED:
        return 1
    if n_threads is None:
        return max_threads
    if n_threads < 0:
        return max(1, max_threads + n_threads + 1)
    return n_threads
