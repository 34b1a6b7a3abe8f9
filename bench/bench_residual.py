"""pytest-benchmark: ``cydrop.dropout_add`` against its memory floor and the unfused NumPy sequence.

The floor (``cydrop._floor.stream_add``: ``y := x + r``, chunked and threaded like the op) reads
``x`` and the residual and writes the output, the traffic of the fused op with no generator.
The targets (issue 17): ``dropout_add`` within 1.05x of the floor on the same thread count, and
at least 3x faster than the unfused NumPy sequence at 16M. The unfused sequence is what a NumPy
transformer writes: a fresh mask, the masked and scaled branch, then the residual add.

Run with ``pytest bench/bench_residual.py --benchmark-only`` (``--benchmark-group-by=group``
keeps each size's four rows together).
"""

import numpy as np
import pytest

import cydrop
from cydrop import _floor

RATE = 0.1


@pytest.fixture(scope="module")
def pair(size):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(size).astype(np.float32)
    r = rng.standard_normal(size).astype(np.float32)
    return x, r, np.empty_like(x)


def _group(benchmark, n, n_threads):
    benchmark.group = f"dropout_add {n:>10,} float32, {n_threads} thread(s)"


@pytest.mark.parametrize("threads", ["one", "all"])
def test_dropout_add(benchmark, pair, n_threads, threads):
    x, r, y = pair
    nt = 1 if threads == "one" else n_threads
    _group(benchmark, x.size, nt)
    out, _ = benchmark(cydrop.dropout_add, x, r, RATE, seed=1, out=y, n_threads=nt)
    assert out is y and abs((out == r).mean() - RATE) < 0.05


@pytest.mark.parametrize("threads", ["one", "all"])
def test_floor_stream_add(benchmark, pair, n_threads, threads):
    x, r, y = pair
    nt = 1 if threads == "one" else n_threads
    _group(benchmark, x.size, nt)
    benchmark(_floor.stream_add, x, r, y, nt)
    np.testing.assert_array_equal(y[:100], x[:100] + r[:100])


def test_numpy_unfused(benchmark, pair, n_threads):
    x, r, _ = pair
    _group(benchmark, x.size, 1)
    rng = np.random.default_rng(0)
    keep = np.float32(1.0 - RATE)

    def unfused():
        mask = rng.random(x.size, dtype=np.float32) < keep
        return r + x * mask / keep

    out = benchmark(unfused)
    assert out.shape == x.shape
