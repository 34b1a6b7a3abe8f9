"""pytest-benchmark: thread scaling of the 4M-element float32 forward (1 vs 2 threads).

The floor beside it is a STREAM-style scale ``y = x * s`` chunked and threaded exactly like
cydrop (``cydrop._floor.stream_scale``): same memory traffic, no generator. Its 1 -> 2 thread
speed-up is what this machine's memory system allows for this access pattern, and cydrop's is
judged against it. ``python -m cydrop bench`` prints both speed-ups from one run.
"""

import numpy as np
import pytest

import cydrop
from cydrop import _floor, _parallel

N = 1 << 22


@pytest.fixture(scope="module", autouse=True)
def _bare_team():
    """Thread scaling measures the OpenMP team itself: the runner's load feedback (which may send
    calls serial on a busy machine) is off here and restored afterwards."""
    was = _parallel.load_feedback(False)["enabled"]
    yield
    _parallel.load_feedback(was)


@pytest.fixture(scope="module")
def arrays4m():
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    return x, np.empty_like(x)


def _skip_serial(n_threads):
    if n_threads > 1 and not cydrop.openmp_enabled():
        pytest.skip("serial build")


@pytest.mark.parametrize("n_threads", [1, 2])
def test_forward_4m_threads(benchmark, arrays4m, n_threads):
    _skip_serial(n_threads)
    x, y = arrays4m
    benchmark.group = "thread scaling, forward 4M float32"
    out, _ = benchmark(cydrop.dropout, x, 0.5, seed=1, out=y, n_threads=n_threads)
    np.testing.assert_array_equal(out, cydrop.dropout(x, 0.5, seed=1, n_threads=1)[0])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_floor_scale_4m_threads(benchmark, arrays4m, n_threads):
    _skip_serial(n_threads)
    x, y = arrays4m
    benchmark.group = "thread scaling, forward 4M float32"
    benchmark(_floor.stream_scale, x, y, np.float32(2), n_threads)
    np.testing.assert_array_equal(y, x * np.float32(2))
