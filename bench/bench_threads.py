"""pytest-benchmark: thread scaling of the 4M-element float32 forward (1 vs 2 threads)."""

import numpy as np
import pytest

import cydrop

N = 1 << 22


@pytest.fixture(scope="module")
def arrays4m():
    x = np.random.default_rng(0).standard_normal(N).astype(np.float32)
    return x, np.empty_like(x)


@pytest.mark.parametrize("n_threads", [1, 2])
def test_forward_4m_threads(benchmark, arrays4m, n_threads):
    if n_threads > 1 and not cydrop.openmp_enabled():
        pytest.skip("serial build")
    x, y = arrays4m
    benchmark.group = "thread scaling, forward 4M float32"
    out, _ = benchmark(cydrop.dropout, x, 0.5, seed=1, out=y, n_threads=n_threads)
    np.testing.assert_array_equal(out, cydrop.dropout(x, 0.5, seed=1, n_threads=1)[0])
