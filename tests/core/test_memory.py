"""The default mask mode makes no temporary the size of the input (NumPy allocations are traced
by tracemalloc)."""

import tracemalloc

import numpy as np
import pytest

import cydrop


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("non_contiguous", [False, True])
def test_forward_and_backward_allocate_only_their_output(non_contiguous):
    x = np.random.default_rng(0).standard_normal(1 << 22).astype(np.float32)   # 16 MiB
    small = 256 * 1024
    y = np.empty_like(x)
    (_, cache), peak = _peak(lambda: cydrop.dropout(x, 0.5, seed=1, out=y))
    assert peak < small, peak
    (out, _), peak = _peak(lambda: cydrop.dropout(x, 0.5, seed=1))
    assert peak < out.nbytes + small, peak
    dx, peak = _peak(lambda: cydrop.dropout_backward(x, cache, out=y))
    assert peak < small, peak
    assert cache.nbytes == 0
    if non_contiguous:
        # a strided input needs one contiguous copy; nothing else
        xs = np.random.default_rng(1).standard_normal(1 << 23).astype(np.float32)[::2]
        (out, _), peak = _peak(lambda: cydrop.dropout(xs, 0.5, seed=1))
        assert peak < 2 * out.nbytes + small, peak


def test_bits_mode_stores_an_eighth_of_a_byte_per_element():
    x = np.ones(1 << 22, dtype=np.float32)
    y = np.empty_like(x)
    (_, cache), peak = _peak(lambda: cydrop.dropout(x, 0.5, seed=1, out=y, mask="bits"))
    assert cache.nbytes == x.size // 8
    assert peak < x.size // 8 + 256 * 1024
