"""The rate-based functional API: semantics, out=, in-place, layouts, dtypes and bad input."""

import math
import os

import numpy as np
import pytest

import cydrop
from cydrop.testing import reference

from helpers import bits_of


def test_dtype_kept_and_values_are_scaled_or_zero(dtype):
    x = np.random.default_rng(0).standard_normal((64, 33)).astype(dtype)
    y, c = cydrop.dropout(x, 0.2, seed=3)
    assert y.dtype == dtype and y.shape == x.shape
    kept = c.keep_mask().astype(bool)
    np.testing.assert_array_equal(y[kept], x[kept] * dtype.type(c.scale))
    assert np.all(bits_of(y[~kept]) == 0)            # exactly +0.0


def test_same_seed_same_mask_new_seed_new_mask():
    x = np.ones(5000)
    a, _ = cydrop.dropout(x, 0.5, seed=1)
    b, _ = cydrop.dropout(x, 0.5, seed=1)
    c, _ = cydrop.dropout(x, 0.5, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.4


def test_fresh_seed_is_recorded_and_does_not_touch_numpy_global_state():
    state = np.random.get_state()
    x = np.ones(1000, dtype=np.float32)
    y1, c1 = cydrop.dropout(x, 0.5)
    y2, c2 = cydrop.dropout(x, 0.5)
    assert c1.seed != c2.seed
    np.testing.assert_array_equal(y1, cydrop.dropout(x, 0.5, seed=c1.seed)[0])
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


@pytest.mark.parametrize("training, rate", [(False, 0.5), (True, 0.0), (False, 0.0)])
def test_identity_calls_return_the_input(training, rate, dtype):
    x = np.random.default_rng(1).standard_normal(100).astype(dtype)
    y, c = cydrop.dropout(x, rate, training=training, seed=1)
    assert y is x and c.mask_mode == "identity"
    dout = np.ones_like(x)
    assert cydrop.dropout_backward(dout, c) is dout
    out = np.empty_like(x)
    y, _ = cydrop.dropout(x, rate, training=training, out=out)
    assert y is out and np.array_equal(out, x)


def test_rate_one_gives_exact_zeros_never_nan(dtype):
    x = np.array([1.0, -2.0, np.inf, -np.inf, np.nan, 0.0], dtype=dtype)
    y, c = cydrop.dropout(x, 1.0, seed=0)
    assert np.all(bits_of(y) == 0)
    assert np.all(bits_of(cydrop.dropout_backward(x, c)) == 0)


def test_dropped_nan_and_inf_become_positive_zero(dtype):
    x = np.full(4096, np.nan, dtype=dtype)
    x[::2] = np.inf
    y, c = cydrop.dropout(x, 0.5, seed=4)
    kept = c.keep_mask().astype(bool)
    assert np.all(bits_of(y[~kept]) == 0)
    assert np.all(np.isnan(y[kept][1::2]) | np.isinf(y[kept][1::2]))
    assert np.isinf(y[kept & (np.arange(x.size) % 2 == 0)]).all()


def test_zero_dim_and_empty_arrays(dtype):
    x0 = np.array(3.0, dtype=dtype)
    y0, c0 = cydrop.dropout(x0, 0.5, seed=1)
    assert y0.shape == () and y0.dtype == dtype
    assert float(y0) in (0.0, 6.0)
    assert cydrop.dropout_backward(np.array(1.0, dtype=dtype), c0).shape == ()
    for shape in [(0,), (3, 0, 2)]:
        x = np.empty(shape, dtype=dtype)
        y, c = cydrop.dropout(x, 0.5, seed=1, mask="bits")
        assert y.shape == shape and y.dtype == dtype
        assert cydrop.dropout_backward(x, c).shape == shape


@pytest.mark.parametrize("make", [
    lambda a: a[:, ::2], lambda a: a.T, lambda a: a[::-1], lambda a: a[1:, 3:-2],
    lambda a: np.asfortranarray(a)], ids=["step", "transpose", "reversed", "slice", "fortran"])
def test_non_contiguous_input_gives_the_contiguous_result(make, dtype):
    base = np.random.default_rng(2).standard_normal((50, 80)).astype(dtype)
    x = make(base)
    y, c = cydrop.dropout(x, 0.4, seed=7)
    expected, _ = cydrop.dropout(np.ascontiguousarray(x), 0.4, seed=7)
    assert y.shape == x.shape
    np.testing.assert_array_equal(bits_of(y), bits_of(expected))
    dx = cydrop.dropout_backward(make(base), c)
    np.testing.assert_array_equal(bits_of(dx), bits_of(expected))


def test_inplace_on_non_contiguous_view_writes_through(dtype):
    base = np.random.default_rng(3).standard_normal((40, 60)).astype(dtype)
    expected, _ = cydrop.dropout(np.ascontiguousarray(base[:, ::3]), 0.5, seed=2)
    view = base[:, ::3]
    untouched = base[:, 1::3].copy()
    y, _ = cydrop.dropout(view, 0.5, seed=2, inplace=True)
    assert y is view
    np.testing.assert_array_equal(bits_of(base[:, ::3]), bits_of(expected))
    np.testing.assert_array_equal(base[:, 1::3], untouched)


def test_inplace_contiguous(dtype):
    x = np.random.default_rng(4).standard_normal(10_000).astype(dtype)
    expected, _ = cydrop.dropout(x, 0.5, seed=2)
    y, c = cydrop.dropout(x, 0.5, seed=2, inplace=True)
    assert y is x
    np.testing.assert_array_equal(bits_of(x), bits_of(expected))
    dout = np.ones_like(x)
    dx = cydrop.dropout_backward(dout, c, inplace=True)
    assert dx is dout


@pytest.mark.parametrize("mode", ["recompute", "bits", "bytes"])
def test_out_is_returned_as_is(mode, dtype):
    x = np.random.default_rng(5).standard_normal((9, 999)).astype(dtype)
    out = np.empty_like(x)
    y, c = cydrop.dropout(x, 0.5, seed=3, out=out, mask=mode)
    assert y is out
    np.testing.assert_array_equal(bits_of(out), bits_of(reference.dropout(x, 0.5, 3)))
    dxo = np.empty_like(x)
    assert cydrop.dropout_backward(x, c, out=dxo) is dxo
    np.testing.assert_array_equal(bits_of(dxo), bits_of(out))


def test_read_only_input_works_out_of_place():
    x = np.random.default_rng(6).standard_normal(5000)
    x.flags.writeable = False
    y, c = cydrop.dropout(x, 0.5, seed=1)
    np.testing.assert_array_equal(y, reference.dropout(x, 0.5, 1))
    dx = cydrop.dropout_backward(x, c)
    np.testing.assert_array_equal(dx, y)


def test_lists_are_accepted_as_float64():
    y, _ = cydrop.dropout([[1.0, 2.0], [3.0, 4.0]], 0.5, seed=1)
    assert y.dtype == np.float64 and y.shape == (2, 2)


def test_big_endian_input_is_processed_as_native():
    x = np.arange(100, dtype=">f4")
    y, _ = cydrop.dropout(x, 0.5, seed=1)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, cydrop.dropout(x.astype(np.float32), 0.5, seed=1)[0])


def test_stored_masks_are_read_only():
    _, c = cydrop.dropout(np.ones(100), 0.5, seed=1, mask="bytes")
    assert c.stored_mask.shape == (100,) and not c.stored_mask.flags.writeable
    with pytest.raises(ValueError):
        c.stored_mask[0] = 1


@pytest.mark.parametrize("mode", ["bits", "bytes"])
@pytest.mark.parametrize("shape", [(5, 13), (8192 + 7,), (1,)])
def test_mask_out_receives_the_stored_mask_and_is_reused(mode, shape, dtype):
    x = np.random.default_rng(2).standard_normal(shape).astype(dtype)
    dout = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    size = x.size
    buf = np.full((size + 7) // 8 if mode == "bits" else shape, 0xEE, np.uint8)
    for seed, offset in [(1, 0), (2, 4096 + 5)]:          # the same buffer, step after step
        y_ref, c_ref = cydrop.dropout(x, 0.3, seed=seed, offset=offset, mask=mode)
        y, c = cydrop.dropout(x, 0.3, seed=seed, offset=offset, mask=mode, mask_out=buf)
        np.testing.assert_array_equal(bits_of(y), bits_of(y_ref))
        np.testing.assert_array_equal(buf, c_ref.stored_mask)
        assert np.shares_memory(c.stored_mask, buf) and not c.stored_mask.flags.writeable
        assert buf.flags.writeable                           # the caller's array stays theirs
        dx, dx_ref = cydrop.dropout_backward(dout, c), cydrop.dropout_backward(dout, c_ref)
        np.testing.assert_array_equal(bits_of(dx), bits_of(dx_ref))


@pytest.mark.parametrize("mode", ["bits", "bytes"])
def test_mask_out_on_the_validated_path_matches_the_fast_path(mode, dtype):
    # a Fortran-ordered input and a list rate take the Python path, not the C fast path
    x = np.asfortranarray(np.random.default_rng(4).standard_normal((9, 11)).astype(dtype))
    shape = ((x.size + 7) // 8,) if mode == "bits" else x.shape
    fast_buf, slow_buf = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    y_fast, _ = cydrop.dropout(np.ascontiguousarray(x), 0.25, seed=9, mask=mode,
                               mask_out=fast_buf)
    y_slow, c = cydrop.dropout(x, np.float32(0.25), seed=9, mask=mode, mask_out=slow_buf)
    np.testing.assert_array_equal(bits_of(y_slow), bits_of(y_fast))
    np.testing.assert_array_equal(slow_buf, fast_buf)
    assert np.shares_memory(c.stored_mask, slow_buf) and not c.stored_mask.flags.writeable


def test_mask_out_is_checked_but_untouched_on_identity_calls():
    x = np.ones((3, 3))
    buf = np.full((3, 3), 7, np.uint8)
    y, c = cydrop.dropout(x, 0.0, seed=1, mask="bytes", mask_out=buf)
    assert y is x and c.mask_mode == "identity" and (buf == 7).all()
    with pytest.raises(ValueError, match=r"mask_out must have shape \(3, 3\)"):
        cydrop.dropout(x, 0.5, training=False, mask="bytes", mask_out=buf[:2])


def test_cache_repr_names_its_fields():
    _, c = cydrop.dropout(np.ones(3, dtype=np.float32), 0.25, seed=9)
    text = repr(c)
    assert "rate=0.25" in text and "seed=9" in text and "float32" in text


# ---------------------------------------------------------------------- bad input

def _snapshot(*arrays):
    return [(a, a.copy()) for a in arrays]


def _unchanged(snaps):
    for a, before in snaps:
        np.testing.assert_array_equal(bits_of(a), bits_of(before))


BAD_CALLS = [
    ({"rate": 1.5}, ValueError, r"rate must satisfy 0 <= rate <= 1, got 1\.5"),
    ({"rate": -0.1}, ValueError, r"rate must satisfy 0 <= rate <= 1, got -0\.1"),
    ({"rate": math.nan}, ValueError, r"rate must satisfy 0 <= rate <= 1, got nan"),
    ({"rate": math.inf}, ValueError, r"rate must satisfy 0 <= rate <= 1, got inf"),
    ({"rate": "0.5"}, TypeError, r"rate must be a real number .* got '0\.5' of type str"),
    ({"rate": True}, TypeError, r"rate must be a real number"),
    ({"rate": np.array([0.5, 0.5])}, TypeError, r"rate must be a real number"),
    ({"seed": -1}, ValueError, r"seed must satisfy 0 <= seed < 2\*\*64, got -1"),
    ({"seed": 2**64}, ValueError, r"seed must satisfy 0 <= seed < 2\*\*64, got 18446744073"),
    ({"seed": 1.5}, TypeError, r"seed must be an int .* got 1\.5 of type float"),
    ({"offset": -3}, ValueError, r"offset must satisfy 0 <= offset < 2\*\*64, got -3"),
    ({"offset": 2**64 - 10}, ValueError, r"offset \+ size must be <= 2\*\*64"),
    ({"mask": "packed"}, ValueError, r"mask must be one of \('recompute', 'bits', 'bytes'\), "
                                     r"got 'packed'"),
    ({"training": "yes"}, TypeError, r"training must be a bool, got 'yes'"),
    ({"n_threads": 0}, ValueError, r"n_threads must be a nonzero int or None, got 0"),
    ({"n_threads": 1.5}, TypeError, r"n_threads must be an int or None, got 1\.5"),
    ({"out": np.empty(99)}, ValueError, r"out must have shape \(100,\), got \(99,\)"),
    ({"out": np.empty(100, dtype=np.float32)}, TypeError,
     r"out must have dtype float64, got float32"),
    ({"out": np.empty(200)[::2]}, ValueError, r"out must be C-contiguous, writable"),
    ({"out": [0.0] * 100}, TypeError, r"out must be a numpy.ndarray, got list"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD_CALLS,
                         ids=[f"{next(iter(k))}={str(next(iter(k.values())))[:12]}"
                              for k, _, _ in BAD_CALLS])
def test_bad_arguments_raise_and_change_nothing(kwargs, exc, match):
    x = np.random.default_rng(7).standard_normal(100)
    kwargs = dict(kwargs)
    kwargs.setdefault("rate", 0.5)
    snaps = _snapshot(x, *[v for v in kwargs.values() if isinstance(v, np.ndarray)])
    rate = kwargs.pop("rate")
    with pytest.raises(exc, match=match):
        cydrop.dropout(x, rate, **kwargs)
    _unchanged(snaps)


@pytest.mark.parametrize("bad_dtype", [np.int64, np.int32, np.bool_, np.complex128, object,
                                       np.longdouble, np.dtype([("a", "f4"), ("b", "f4")])])
def test_unsupported_dtypes_are_rejected(bad_dtype):
    x = np.zeros(10, dtype=bad_dtype)
    with pytest.raises(TypeError, match=r"x has dtype .*; only float32 and float64 are "
                                        r"supported"):
        cydrop.dropout(x, 0.5, seed=1)


def test_float16_error_suggests_a_cast():
    # dropout takes float16 (issue 16); a variant without a 16-bit kernel says how to cast
    from cydrop import variants
    with pytest.raises(TypeError, match=r"astype\(np\.float32\)"):
        variants.alpha_dropout(np.zeros(3, dtype=np.float16), 0.5)


def test_inplace_on_read_only_array_is_rejected_and_changes_nothing():
    x = np.arange(10.0)
    x.flags.writeable = False
    with pytest.raises(ValueError, match=r"inplace=True needs x to be a writable "
                                         r"numpy.ndarray; x is read-only"):
        cydrop.dropout(x, 0.5, seed=1, inplace=True)
    np.testing.assert_array_equal(x, np.arange(10.0))


def test_out_overlapping_the_input_is_rejected():
    buf = np.arange(200.0)
    x, out = buf[:100], buf[50:150]
    before = buf.copy()
    with pytest.raises(ValueError, match=r"out overlaps the input"):
        cydrop.dropout(x, 0.5, seed=1, out=out)
    np.testing.assert_array_equal(buf, before)


def test_out_that_is_the_input_means_in_place():
    x = np.random.default_rng(8).standard_normal(1000)
    expected, _ = cydrop.dropout(x, 0.5, seed=1)
    y, _ = cydrop.dropout(x, 0.5, seed=1, out=x)
    assert y is x
    np.testing.assert_array_equal(x, expected)


def test_backward_rejects_mismatched_dout_and_foreign_caches():
    x = np.ones((4, 5), dtype=np.float32)
    _, c = cydrop.dropout(x, 0.5, seed=1)
    with pytest.raises(ValueError, match=r"dout must have the forward input's shape \(4, 5\), "
                                         r"got \(5, 4\)"):
        cydrop.dropout_backward(np.ones((5, 4), dtype=np.float32), c)
    with pytest.raises(TypeError, match=r"dout must have the forward input's dtype float32, "
                                        r"got float64"):
        cydrop.dropout_backward(np.ones((4, 5)), c)
    for foreign in [({"mode": "train", "p": 0.5}, np.ones((4, 5))), None, {"seed": 1}]:
        with pytest.raises(TypeError, match=r"cache must be the DropoutCache returned by "
                                            r"cydrop.dropout"):
            cydrop.dropout_backward(np.ones((4, 5), dtype=np.float32), foreign)


def test_dropout_mask_argument_checks():
    with pytest.raises(TypeError, match=r"seed must be an int"):
        cydrop.dropout_mask(4, 0.5, seed=None)
    with pytest.raises(ValueError, match=r"shape must satisfy 0 <= shape < 2\*\*64, got -1"):
        cydrop.dropout_mask((2, -1), 0.5, seed=1)
    assert cydrop.dropout_mask((2, 3), 0.5, seed=1).shape == (2, 3)


def test_effective_n_threads_semantics(monkeypatch):
    monkeypatch.delenv("CYDROP_NUM_THREADS", raising=False)
    full = cydrop.effective_n_threads()
    assert full >= 1
    assert cydrop.effective_n_threads(-1) == full
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cydrop.effective_n_threads(3) == (min(3, cores) if cydrop.openmp_enabled() else 1)
    assert cydrop.effective_n_threads(-full - 5) == 1
    monkeypatch.setenv("CYDROP_NUM_THREADS", "1")
    assert cydrop.effective_n_threads() == 1
    monkeypatch.setenv("CYDROP_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match=r"CYDROP_NUM_THREADS must be a positive integer, "
                                         r"got 'zero'"):
        cydrop.effective_n_threads()
