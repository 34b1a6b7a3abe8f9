"""Fused bias + ReLU + dropout kernels against the unfused composition, and their gradients."""

import numpy as np
import pytest

import cydrop
from cydrop import fused

from helpers import bits_of


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 256), (33, 4097), (300, 100)])
@pytest.mark.parametrize("rate", [0.0, 0.2, 0.5, 1.0])
def test_forward_equals_unfused(shape, rate, dtype):
    rng = np.random.default_rng(0)
    z = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    a, cache = fused.bias_relu_dropout(z, b, rate, seed=9, offset=13)
    expected, _ = cydrop.dropout(np.maximum(z + b, dtype.type(0)), rate, seed=9, offset=13)
    np.testing.assert_array_equal(bits_of(a), bits_of(expected))
    for n_threads in (1, 2, 3):
        a2, _ = fused.bias_relu_dropout(z, b, rate, seed=9, offset=13, n_threads=n_threads)
        np.testing.assert_array_equal(bits_of(a2), bits_of(a))


def test_backward_matches_unfused_and_numerical_gradient():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((6, 5))
    a, cache = fused.bias_relu_dropout(z, b, 0.4, seed=3)
    dz, db = fused.bias_relu_dropout_backward(dout, cache)
    # unfused: relu backward then dropout backward
    _, dcache = cydrop.dropout(np.maximum(z + b, 0), 0.4, seed=3)
    expected_dz = cydrop.dropout_backward(dout, dcache) * (z + b > 0)
    np.testing.assert_allclose(dz, expected_dz, rtol=0, atol=0)
    np.testing.assert_allclose(db, expected_dz.sum(axis=0), rtol=1e-12)
    # numerical gradient w.r.t. z (away from the ReLU kink)
    h = 1e-6
    num = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        fp = np.sum(fused.bias_relu_dropout(zp, b, 0.4, seed=3)[0] * dout)
        fm = np.sum(fused.bias_relu_dropout(zm, b, 0.4, seed=3)[0] * dout)
        num[i] = (fp - fm) / (2 * h)
    assert np.max(np.abs(num - dz)) < 1e-6


def test_in_place_and_eval_mode(dtype):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((8, 9)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    expected = np.maximum(z + b, dtype.type(0))
    a, cache = fused.bias_relu_dropout(z, b, 0.5, training=False, out=z)
    assert a is z and cache.scale == 1.0 and cache.seed is None
    np.testing.assert_array_equal(a, expected)


def test_bad_input():
    z = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError,
                       match=r"b must have shape \(3,\) to match z's units, got \(4,\)"):
        fused.bias_relu_dropout(z, np.zeros(4, dtype=np.float32), 0.5, seed=1)
    with pytest.raises(TypeError, match=r"b must have z's dtype float32, got float64"):
        fused.bias_relu_dropout(z, np.zeros(3), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"z must be 2-D \(rows, units\), got shape \(12,\)"):
        fused.bias_relu_dropout(z.ravel(), np.zeros(3, dtype=np.float32), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1, got 2\.0"):
        fused.bias_relu_dropout(z, np.zeros(3, dtype=np.float32), 2.0, seed=1)
    _, cache = fused.bias_relu_dropout(z, np.zeros(3, dtype=np.float32), 0.5, seed=1)
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(4, 3\)"):
        fused.bias_relu_dropout_backward(np.zeros((3, 4), dtype=np.float32), cache)
    with pytest.raises(TypeError, match=r"cache must be the FusedCache"):
        fused.bias_relu_dropout_backward(z, object())


@pytest.mark.parametrize("m", [1, 15, 16, 17, 300])
def test_backward_kernel_rule_on_every_isa_and_in_place(m, dtype, all_isas):
    """dz = where(a > 0, dout * scale, +0.0) bit for bit and db its row-order sum from +0.0, on
    every ISA, for widths around the kernel's 16-element tile, with NaN, both zeros, negatives
    and inf in the forward output (only a > 0 passes the gradient), out of place and in place."""
    from cydrop import _kernels
    rng = np.random.default_rng(m)
    rows = 41
    da = rng.standard_normal((rows, m)).astype(dtype)
    a = np.maximum(rng.standard_normal((rows, m)), 0).astype(dtype)
    special = np.array([np.nan, -0.0, 0.0, -1.0, np.inf, 5e-324 if dtype == np.float64
                        else 1e-45], dtype=dtype)
    a.flat[::7] = np.resize(special, a.flat[::7].size)
    scale = 1 / 0.7
    with np.errstate(invalid="ignore"):
        want = np.where(a > 0, da * dtype.type(scale), dtype.type(0))
    want_db = np.zeros(m, dtype=dtype)
    for row in want:
        want_db += row
    for isa in all_isas:
        _kernels.set_isa(isa)
        dz, db = np.empty_like(da), np.full(m, np.nan, dtype=dtype)
        _kernels.bias_relu_dropout_backward(da, a, dz, db, scale)
        np.testing.assert_array_equal(bits_of(dz), bits_of(want))
        np.testing.assert_array_equal(bits_of(db), bits_of(want_db))
        d = da.copy()
        _kernels.bias_relu_dropout_backward(d, a, d, db, scale)
        np.testing.assert_array_equal(bits_of(d), bits_of(want))
