"""pytest-benchmark: cydrop's forward and backward against NumPy forms and the np.multiply floor.

Run with ``pytest bench/ --benchmark-only``; ``python -m cydrop bench`` prints the same
comparison as a ratio table from one run. Each test times one call and checks its result after.
"""

import numpy as np
import pytest

import cydrop

KEEP = 0.5


def _group(benchmark, kind, n):
    benchmark.group = f"{kind} {n:>10,} float32"


@pytest.mark.parametrize("mask", ["recompute", "bits", "bytes"])
def test_cydrop_forward(benchmark, arrays, n_threads, mask):
    x, y = arrays
    _group(benchmark, "forward", x.size)
    out, cache = benchmark(cydrop.dropout, x, 1 - KEEP, seed=1, out=y, mask=mask,
                           n_threads=n_threads)
    assert out is y and abs((out == 0).mean() - (1 - KEEP)) < 0.05


@pytest.mark.parametrize("mask", ["recompute", "bits", "bytes"])
def test_cydrop_backward(benchmark, arrays, n_threads, mask):
    x, y = arrays
    _group(benchmark, "backward", x.size)
    _, cache = cydrop.dropout(x, 1 - KEEP, seed=1, mask=mask)
    dx = benchmark(cydrop.dropout_backward, x, cache, out=y, n_threads=n_threads)
    assert dx is y and abs((dx == 0).mean() - (1 - KEEP)) < 0.05


@pytest.mark.parametrize("kind", ["forward", "backward"])
def test_floor_np_multiply(benchmark, arrays, kind):
    x, y = arrays
    _group(benchmark, kind, x.size)
    out = benchmark(np.multiply, x, np.float32(1 / KEEP), out=y)
    assert out is y


def test_numpy_generator_form(benchmark, arrays):
    x, _ = arrays
    _group(benchmark, "forward", x.size)
    rng = np.random.default_rng(0)
    out = benchmark(lambda: x * ((rng.random(x.size, dtype=np.float32) < KEEP) / KEEP))
    assert out.shape == x.shape


def test_cs231n_form(benchmark, arrays):
    x, _ = arrays
    _group(benchmark, "forward", x.size)
    rs = np.random.RandomState(0)
    out = benchmark(lambda: x * ((rs.rand(*x.shape) < KEEP) / KEEP))
    assert out.shape == x.shape


def test_nnfs_form(benchmark, arrays):
    x, _ = arrays
    _group(benchmark, "forward", x.size)
    rs = np.random.RandomState(0)
    out = benchmark(lambda: x * (rs.binomial(1, KEEP, x.shape) / KEEP))
    assert out.shape == x.shape


def test_torch_dropout(benchmark, arrays, n_threads):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(n_threads)
    x, _ = arrays
    _group(benchmark, "forward", x.size)
    tx = torch.from_numpy(x)
    out = benchmark(torch.nn.functional.dropout, tx, 1 - KEEP, True)
    assert out.shape == tx.shape
