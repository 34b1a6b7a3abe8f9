"""The kernels against cydrop.reference, bit for bit, and the mask contract."""

import numpy as np
import pytest

import cydrop
from cydrop import _kernels
from cydrop.testing import reference

from helpers import bits_of

SHAPES = [(1,), (7,), (4096,), (4097,), (3, 5000), (2, 3, 1500), (40000,)]
SEEDS = [0, 1, 2**32 + 7, 2**64 - 1]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_forward_equals_reference(shape, seed, dtype):
    rng = np.random.default_rng(seed % 1000)
    x = rng.standard_normal(shape).astype(dtype)
    for rate, offset in [(0.5, 0), (0.1, 31), (0.75, 4095), (0.3, 2**33 + 5)]:
        y, _ = cydrop.dropout(x, rate, seed=seed, offset=offset)
        expected = reference.dropout(x, rate, seed, offset)
        assert y.dtype == dtype
        np.testing.assert_array_equal(bits_of(y), bits_of(expected))


@pytest.mark.parametrize("n", [0, 1, 8, 31, 32, 33, 4095, 4096, 4097, 12345])
@pytest.mark.parametrize("offset", [0, 1, 7, 4064, 4095, 4096, 2**32 - 3, 2**64 - 20000])
def test_mask_equals_reference_at_block_edges(n, offset):
    m = cydrop.dropout_mask(n, 0.5, seed=99, offset=offset)
    np.testing.assert_array_equal(m, reference.keep_mask(n, 0.5, 99, offset))


# Golden masks: packbits(mask, bitorder='little') of 64 elements. If these change, every
# saved seed of every user produces different masks: that is a breaking change.
GOLDEN = [
    (1234567890, 0, 0.5, "a954afb3965cd824"),
    (0, 4090, 0.25, "6fff95ffbbcfedbb"),
    (2**64 - 1, 2**40 + 3, 0.9, "0848243400008000"),
]


@pytest.mark.parametrize("seed, offset, rate, hexbits", GOLDEN)
def test_golden_masks(seed, offset, rate, hexbits):
    m = cydrop.dropout_mask(64, rate, seed=seed, offset=offset)
    assert np.packbits(m, bitorder="little").tobytes().hex() == hexbits
    m_ref = reference.keep_mask(64, rate, seed, offset)
    assert np.packbits(m_ref, bitorder="little").tobytes().hex() == hexbits


@pytest.mark.parametrize("n_threads", [1, 2, 3, 4, 8])
def test_identical_for_any_thread_count(n_threads, dtype):
    x = np.random.default_rng(1).standard_normal(300_001).astype(dtype)
    y1, _ = cydrop.dropout(x, 0.4, seed=5, offset=3, n_threads=1)
    yn, c = cydrop.dropout(x, 0.4, seed=5, offset=3, n_threads=n_threads, mask="bits")
    np.testing.assert_array_equal(bits_of(yn), bits_of(y1))
    dx1 = cydrop.dropout_backward(x, c, n_threads=1)
    dxn = cydrop.dropout_backward(x, c, n_threads=n_threads)
    np.testing.assert_array_equal(bits_of(dxn), bits_of(dx1))


@pytest.mark.parametrize("cuts", [[0, 1, 2, 100_000], [0, 4095, 8192, 100_000],
                                  [0, 33_333, 66_666, 100_000], [0, 17, 50_001, 99_999, 100_000]])
def test_chunked_with_offset_equals_whole(cuts, dtype):
    x = np.random.default_rng(2).standard_normal(100_000).astype(dtype)
    whole, _ = cydrop.dropout(x, 0.3, seed=11, offset=1000)
    parts = [cydrop.dropout(x[a:b], 0.3, seed=11, offset=1000 + a)[0]
             for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(bits_of(np.concatenate(parts)), bits_of(whole))


def test_every_isa_variant_gives_the_same_bits(all_isas, dtype):
    assert "baseline" in all_isas
    x = np.random.default_rng(3).standard_normal(70_001).astype(dtype)
    results = {}
    for name in all_isas:
        _kernels.set_isa(name)
        assert _kernels.current_isa() == name
        y, c = cydrop.dropout(x, 0.5, seed=8, offset=5, mask="bits")
        results[name] = (bits_of(y), c.stored_mask.copy(),
                         bits_of(cydrop.dropout_backward(x, c)))
    base = results["baseline"]
    for name, got in results.items():
        for a, b in zip(got, base):
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_set_isa_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"isa must be one of .* got 'sse9'"):
        _kernels.set_isa("sse9")


def test_three_mask_modes_agree(dtype):
    x = np.random.default_rng(4).standard_normal((37, 1001)).astype(dtype)
    dout = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    outs, grads, masks = [], [], []
    for mode in ("recompute", "bits", "bytes"):
        y, c = cydrop.dropout(x, 0.35, seed=21, offset=9, mask=mode)
        outs.append(bits_of(y))
        grads.append(bits_of(cydrop.dropout_backward(dout, c)))
        masks.append(c.keep_mask())
    for got in outs[1:]:
        np.testing.assert_array_equal(got, outs[0])
    for got in grads[1:]:
        np.testing.assert_array_equal(got, grads[0])
    for got in masks[1:]:
        np.testing.assert_array_equal(got, masks[0])
    np.testing.assert_array_equal(masks[0], (outs[0] != 0).reshape(x.shape) | (x == 0))


def test_bits_mode_stores_one_bit_per_element():
    x = np.ones(10_001, dtype=np.float32)
    _, c = cydrop.dropout(x, 0.5, seed=1, mask="bits")
    assert c.stored_mask.dtype == np.uint8 and c.stored_mask.size == (x.size + 7) // 8
    np.testing.assert_array_equal(
        np.unpackbits(c.stored_mask, count=x.size, bitorder="little"),
        reference.keep_mask(x.size, 0.5, 1, 0))
    _, c = cydrop.dropout(x, 0.5, seed=1)
    assert c.nbytes == 0 and c.stored_mask is None


def test_threshold_and_scale_match_reference():
    for rate in [0.0, 1e-9, 0.1, 0.25, 0.3, 0.5, 0.7, 0.999, 1 - 2**-18, 1.0]:
        thr = _kernels.threshold(1 - rate)
        ref_thr, ref_scale = reference.threshold_and_scale(rate)
        assert thr == ref_thr
        assert abs(thr / 65536 - (1 - rate)) <= 2**-17
        if thr:
            assert ref_scale == 65536 / thr
