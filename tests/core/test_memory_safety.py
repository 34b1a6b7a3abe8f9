"""No leaks over many calls, and 64-bit index math (offsets past 2**32 and near 2**64, an array
of more than 2**31 elements behind the ``slow`` marker)."""

import gc
import os
import sys

import numpy as np
import pytest

import cydrop
from cydrop.testing import reference

from helpers import bits_of

PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _one_round(i, xs, douts, out):
    """Forward + backward in every mask mode and the CS231n form; a few call shapes."""
    x, dout = xs[i % 2], douts[i % 2]
    mode = ("recompute", "bits", "bytes")[i % 3]
    y, c = cydrop.dropout(x, 0.3, seed=i, offset=i, mask=mode)
    cydrop.dropout_backward(dout, c)
    if i % 5 == 0:
        y, c = cydrop.dropout_forward(x, {"mode": "train", "p": 0.7, "seed": i, "mask": mode})
        cydrop.dropout_backward(dout, c, out=out[i % 2])
    if i % 7 == 0:
        cydrop.dropout(x, 0.3, training=False)
        cydrop.dropout_mask(x.shape, 0.3, seed=i)
    if i % 11 == 0:                 # the general (validating) path: non-contiguous input
        y, c = cydrop.dropout(x.T, 0.3, seed=i, mask=mode)
        cydrop.dropout_backward(dout.T, c)


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_100k_forward_backward_calls_keep_rss_flat():
    xs = [np.ones((16, 33), dtype=np.float32), np.ones((8, 9))]
    douts = [np.ones_like(x) for x in xs]
    out = [np.empty_like(x) for x in xs]
    for i in range(3000):                       # warm-up: caches, allocator pools, interning
        _one_round(i, xs, douts, out)
    gc.collect()
    start = _rss()
    for i in range(3000, 103_000):
        _one_round(i, xs, douts, out)
    gc.collect()
    grown = _rss() - start
    assert grown < 2 * 2**20, f"RSS grew by {grown / 2**20:.2f} MiB over 100,000 calls"


def test_no_reference_leaks_on_inputs_outputs_and_caches():
    x = np.ones(5000, dtype=np.float32)
    dout = np.ones_like(x)
    out = np.empty_like(x)
    for _ in range(50):                          # warm-up
        y, c = cydrop.dropout(x, 0.5, seed=1, mask="bits", out=out)
        cydrop.dropout_backward(dout, c, out=out)
    del y, c
    gc.collect()
    refs = [sys.getrefcount(a) for a in (x, dout, out)]
    objs = len(gc.get_objects())
    for i in range(2000):
        for mode in ("recompute", "bits", "bytes"):
            y, c = cydrop.dropout(x, 0.5, seed=i, mask=mode, out=out)
            assert y is out
            cydrop.dropout_backward(dout, c, out=out)
            y2, c2 = cydrop.dropout(x, 0.5, seed=i, mask=mode)
            cydrop.dropout_backward(dout, c2, inplace=False)
            try:                                  # failing calls must not leak either
                cydrop.dropout(x, 1.5)
            except ValueError:
                pass
            try:
                cydrop.dropout_backward(dout[:10], c)
            except ValueError:
                pass
    del y, c, y2, c2
    gc.collect()
    assert [sys.getrefcount(a) for a in (x, dout, out)] == refs
    assert len(gc.get_objects()) - objs < 100


def test_cache_releases_its_stored_mask():
    import weakref
    x = np.ones(10_000)
    _, c = cydrop.dropout(x, 0.5, seed=1, mask="bytes")
    ref = weakref.ref(c.stored_mask)
    del c
    gc.collect()
    assert ref() is None


# --------------------------------------------------------------------------- 64-bit indices

@pytest.mark.parametrize("offset", [
    2**31 - 5, 2**31 + 4093, 2**32 - 4096 * 3 - 7, 2**32 + 1, 2**33 - 1, 2**40 + 4095,
    2**48 + 12345, 2**53 + 1, 2**63 - 2000, 2**63 + 7, 2**64 - 4096 * 5, 2**64 - 4097,
    2**64 - 1000])
def test_offsets_beyond_32_bits_equal_the_reference(offset, dtype):
    n = min(9000, 2**64 - offset)
    x = np.random.default_rng(offset % 1000).standard_normal(n).astype(dtype)
    y, c = cydrop.dropout(x, 0.4, seed=2**64 - 3, offset=offset, mask="bits")
    expected = reference.dropout(x, 0.4, 2**64 - 3, offset)
    np.testing.assert_array_equal(bits_of(y), bits_of(expected))
    np.testing.assert_array_equal(
        np.unpackbits(c.stored_mask, count=n, bitorder="little"),
        reference.keep_mask(n, 0.4, 2**64 - 3, offset))


def test_last_element_of_the_index_space():
    m = cydrop.dropout_mask(1, 0.5, seed=5, offset=2**64 - 1)
    np.testing.assert_array_equal(m, reference.keep_mask(1, 0.5, 5, 2**64 - 1))
    m = cydrop.dropout_mask(4096, 0.5, seed=5, offset=2**64 - 4096)
    np.testing.assert_array_equal(m, reference.keep_mask(4096, 0.5, 5, 2**64 - 4096))


def test_block_indices_do_not_wrap_at_32_bits():
    # Blocks 2**32 apart would collide if the block index were truncated to 32 bits.
    a = cydrop.dropout_mask(4096, 0.5, seed=9, offset=4096 * 3)
    b = cydrop.dropout_mask(4096, 0.5, seed=9, offset=4096 * (3 + 2**32))
    c = cydrop.dropout_mask(4096, 0.5, seed=9, offset=4096 * (3 + 2**20))
    assert (a != b).mean() > 0.4 and (a != c).mean() > 0.4


def _free_bytes():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info.get("MemAvailable", 0)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs /proc (Linux)")
def test_more_than_2_31_elements_in_place():
    n = 2**31 + 4096 * 3 + 77                      # float32: 8.6 GB, processed in place
    need = n * 4 + n // 8 + 2**30
    if _free_bytes() < need:
        pytest.skip(f"needs {need / 2**30:.1f} GiB of available memory")
    x = np.empty(n, dtype=np.float32)
    x[...] = 1.0
    offset = 2**32 - 4096 * 5 - 3                  # global indices cross 2**32 inside the array
    y, c = cydrop.dropout(x, 0.25, seed=123, offset=offset, inplace=True, mask="bits",
                          n_threads=2)
    assert y is x
    scale = np.float32(c.scale)
    bits = c.stored_mask
    assert bits.size == (n + 7) // 8
    rng = np.random.default_rng(0)
    starts = [0, 4096 * 2 - 100, 2**31 - 2048, 2**31 - 1, 2**31 + 1, n - 5000,
              *rng.integers(0, n - 5000, 8).tolist()]
    for s in starts:
        s = int(s)
        k = min(5000, n - s)
        keep = reference.keep_mask(k, 0.25, 123, offset + s)
        np.testing.assert_array_equal(x[s:s + k] != 0, keep)
        assert np.all(x[s:s + k][keep] == scale)
        got_bits = np.unpackbits(bits[s // 8:(s + k + 7) // 8], bitorder="little")
        np.testing.assert_array_equal(got_bits[s % 8:s % 8 + k], keep)
    # the kept fraction over the whole array is binomial
    kept = int(np.count_nonzero(x))
    p = c.threshold / 65536
    assert abs(kept - n * p) < 6 * np.sqrt(n * p * (1 - p))
    # backward in place over the same > 2**31 elements, from the stored bits
    x[...] = 2.0
    dx = cydrop.dropout_backward(x, c, inplace=True, n_threads=2)
    assert dx is x
    for s in starts[:6]:
        s = int(s)
        k = min(5000, n - s)
        keep = reference.keep_mask(k, 0.25, 123, offset + s)
        np.testing.assert_array_equal(x[s:s + k] != 0, keep)
