"""Dropout variants: kernels vs their NumPy twins, threads, statistics, gradients, errors."""

import doctest
import math

import numpy as np
import pytest

import cydrop
import cydrop.testing.reference_variants as RV
import cydrop.variants as V
from cydrop import _variants
from cydrop.nn.gradcheck import eval_numerical_gradient_array, rel_error

from helpers import bits_of


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ the draw field

@pytest.mark.parametrize("p0, count", [(0, 1), (0, 4096), (5, 33), (4090, 5000), (2**40 + 7, 100)])
def test_draws_match_reference(p0, count):
    assert np.array_equal(_variants.draws(123, p0, count), RV.draws16(123, p0, count))


def test_normal_matches_reference():
    for w in [0, 1, 2**63, 2**64 - 1, 0x123456789ABCDEF0]:
        assert _variants.normal(w) == RV.normal_from_word(w)


# ------------------------------------------------------------------ every ISA, the same bits

def _every_variant_kernel(dtype, n_threads):
    """The outputs of every variant kernel of cydrop._variants on inputs with NaN, inf, -0.0."""
    n = 161 * 77               # 12397: parallel for the costly kernels, partial chunks
    x = _x(n, dtype, seed=11)
    x[[3, 5000]] = np.nan
    x[[4, 9000]] = [np.inf, -np.inf]
    x[6] = -0.0
    out = {"draws": _variants.draws(7, 4090, 10_000).copy(),
           "normal": np.array([_variants.normal(w) for w in
                               (0, 1, 2**63, 2**64 - 1, 0x123456789ABCDEF0)]).view(np.uint64)}
    keep = np.empty(n, np.uint8)
    _variants.keep_mask(n, 7, 123, 40000, keep, n_threads)
    out["keep_mask"] = keep
    for name, call in [
            ("dropout", lambda y: _variants.dropout(x, y, 7, 123, 40000, 65536 / 40000,
                                                    n_threads)),
            ("alpha", lambda y: _variants.alpha(x, y, 7, 123, 40000, 1.5, 0.1, -1.7, n_threads)),
            ("gauss", lambda y: _variants.gauss(x, y, 7, 123, 0.37, n_threads)),
            ("bcast", lambda y: _variants.bcast(
                x, y, keep[:77], np.array([n // 77, 77], np.int64), np.array([0, 1], np.int64),
                1.25, n_threads))]:
        y = np.full_like(x, 99)
        call(y)
        out[name] = bits_of(y)
    rows, units = 40, 1000
    k8 = np.empty(rows * units, np.uint8)
    _variants.exactk_mask(rows, units, 333, 7, 5, k8, np.empty(2 * units, np.uint64), n_threads)
    out["exactk"] = k8
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_variant_kernel_gives_the_same_bits_on_every_isa(all_isas, dtype):
    """Each ISA build of the variant kernels (libm calls included) matches the baseline's bits,
    on one thread and on two."""
    from cydrop import _kernels
    assert "baseline" in all_isas
    results = {}
    for name in all_isas:
        _kernels.set_isa(name)
        for n_threads in (1, 2):
            results[name, n_threads] = _every_variant_kernel(dtype, n_threads)
    base = results["baseline", 1]
    for key, got in results.items():
        assert got.keys() == base.keys()
        for op in base:
            np.testing.assert_array_equal(got[op], base[op], err_msg=f"{key} {op}")


# ------------------------------------------------------------------ dropout_nd

ND_CASES = [
    ((3, 4, 5, 6), None),
    ((3, 4, 5, 6), 0),
    ((3, 4, 5, 6), (2, 3)),
    ((3, 4, 5, 6), (1, 3)),
    ((3, 4, 5, 6), (0, 2)),
    ((3, 4, 5, 6), (0, 1, 2, 3)),
    ((7, 1, 9), (1,)),
    ((5,), 0),
    ((), None),
]


@pytest.mark.parametrize("shape, axes", ND_CASES)
def test_dropout_nd_matches_reference(shape, axes, dtype):
    x = _x(shape, dtype)
    y, cache = V.dropout_nd(x, 0.3, broadcast_axes=axes, seed=7, offset=11)
    yr, keep = RV.dropout_nd(x, 0.3, cache.keep.shape, 7, 11)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.array_equal(bits_of(y), bits_of(yr))
    assert np.array_equal(cache.keep.astype(bool), keep)
    dx = V.dropout_nd_backward(x, cache)
    assert np.array_equal(bits_of(dx), bits_of(yr))


def test_noise_shape_equals_broadcast_axes(dtype):
    x = _x((4, 3, 8), dtype)
    a, ca = V.dropout_nd(x, 0.4, noise_shape=(4, 1, None), seed=1)
    b, cb = V.dropout_nd(x, 0.4, broadcast_axes=-2, seed=1)
    assert np.array_equal(bits_of(a), bits_of(b)) and ca.keep.shape == (4, 1, 8)


def test_no_broadcast_equals_core_dropout(dtype):
    x = _x((33, 129), dtype)
    y, _ = V.dropout_nd(x, 0.25, seed=9, offset=100)
    assert np.array_equal(bits_of(y), bits_of(cydrop.dropout(x, 0.25, seed=9, offset=100)[0]))


def test_reduced_mask_is_core_mask():
    x = np.ones((6, 5, 10))
    _, cache = V.dropout_nd(x, 0.5, broadcast_axes=2, seed=3, offset=4)
    assert np.array_equal(cache.keep, cydrop.dropout_mask((6, 5, 1), 0.5, seed=3, offset=4))


def test_spatial_dropout_zeros_whole_channels(dtype):
    for shape in [(4, 6, 10), (4, 6, 5, 5), (2, 6, 3, 4, 5)]:
        x = np.abs(_x(shape, dtype)) + 1
        y, cache = V.spatial_dropout(x, 0.5, seed=2)
        flat = y.reshape(shape[0], shape[1], -1)
        zero = (flat == 0).all(axis=2)
        assert (zero | (flat != 0).all(axis=2)).all()
        assert np.array_equal(~zero, cache.keep.reshape(shape[:2]).astype(bool))


@pytest.mark.parametrize("time_axis, shape", [(0, (7, 3, 5)), (1, (3, 7, 5))])
def test_locked_dropout_same_mask_every_step(time_axis, shape, dtype):
    x = np.ones(shape, dtype)
    y, _ = V.locked_dropout(x, 0.5, time_axis=time_axis, seed=5)
    steps = np.moveaxis(y, time_axis, 0)
    assert (steps == steps[:1]).all() and 0 < (steps[0] == 0).mean() < 1


def test_dropout_nd_kept_fraction():
    rate, m = 0.3, 200_000
    _, cache = V.dropout_nd(np.ones((m, 4), np.float32), rate, broadcast_axes=1, seed=11)
    frac = cache.keep.mean()
    assert abs(frac - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / m)


def test_dropout_nd_identity():
    x = _x((3, 4), np.float32)
    assert V.dropout_nd(x, 0.5, training=False)[0] is x
    y, c = V.dropout_nd(x, 0.0, broadcast_axes=0)
    assert y is x and V.dropout_nd_backward(x, c) is x


def test_dropout_nd_noncontiguous_and_readonly(dtype):
    base = _x((8, 10), dtype)
    x = base[:, ::2]
    x.flags.writeable = False
    y, _ = V.dropout_nd(x, 0.5, broadcast_axes=1, seed=4)
    yr, _ = RV.dropout_nd(np.ascontiguousarray(x), 0.5, (8, 1), 4)
    assert np.array_equal(bits_of(y), bits_of(yr))


# ------------------------------------------------------------------ DropConnect

def test_dropconnect_matches_reference(dtype):
    x, W, b = _x((5, 2, 3), dtype, 1), _x((6, 4), dtype, 2), _x(4, dtype, 3)
    out, cache = V.dropconnect_forward(x, W, b, 0.4, seed=2, offset=9)
    outr, W_eff = RV.dropconnect_forward(x, W, b, 0.4, 2, 9)
    assert out.dtype == dtype and np.array_equal(bits_of(out), bits_of(outr))
    dout = _x((5, 4), dtype, 4)
    got = V.dropconnect_backward(dout, cache)
    want = RV.dropconnect_backward(dout, x, W_eff, 0.4, 2, 9)
    for g, w in zip(got, want):
        assert g.dtype == dtype and np.array_equal(bits_of(g), bits_of(w))


def test_dropconnect_eval_is_affine():
    x, W, b = _x((5, 6), np.float64), _x((6, 4), np.float64, 2), _x(4, np.float64, 3)
    out, cache = V.dropconnect_forward(x, W, b, 0.5, training=False)
    assert np.allclose(out, x @ W + b)
    dx, dW, db = V.dropconnect_backward(np.ones((5, 4)), cache)
    assert np.allclose(dW, x.T @ np.ones((5, 4)))


# ------------------------------------------------------------------ exact-k

@pytest.mark.parametrize("shape, rate", [((50, 37), 0.3), ((4, 3, 10), 0.5), ((6, 1), 0.5),
                                         ((9, 8), 1.0), ((3, 5000), 0.1), ((1, 16), 0.05)])
def test_exact_k_matches_reference(shape, rate, dtype):
    x = _x(shape, dtype)
    y, cache = V.exact_k_dropout(x, rate, seed=3, offset=5)
    yr, keep = RV.exact_k_dropout(x, rate, 3, 5)
    assert y.dtype == dtype and np.array_equal(bits_of(y), bits_of(yr))
    if cache.keep is not None:
        assert np.array_equal(cache.keep.astype(bool), keep)


@pytest.mark.parametrize("n, rate", [(10, 0.3), (37, 0.5), (100, 0.25), (7, 0.5), (5, 0.1)])
def test_exact_k_drops_exactly_k_per_row(n, rate):
    x = np.ones((200, n))
    y, cache = V.exact_k_dropout(x, rate, seed=8)
    k = V.exact_k_count(n, rate)
    assert k == math.floor(rate * n + 0.5)
    assert ((y == 0).sum(axis=1) == k).all()
    if k:
        assert np.allclose(y.sum(axis=1), n)      # scale n / (n - k) keeps the row sum


def test_exact_k_rows_are_independent_slices():
    x = _x((40, 12), np.float64)
    full, _ = V.exact_k_dropout(x, 0.5, seed=2, offset=100)
    part, _ = V.exact_k_dropout(x[10:25], 0.5, seed=2, offset=100 + 10 * 12)
    assert np.array_equal(part, full[10:25])


def test_exact_k_positions_uniform():
    rows, n, rate = 20_000, 10, 0.3
    _, cache = V.exact_k_dropout(np.ones((rows, n), np.float32), rate, seed=21)
    freq = 1 - cache.keep.mean(axis=0)
    assert np.all(np.abs(freq - 0.3) < 5 * math.sqrt(0.21 / rows))


# ------------------------------------------------------------------ Alpha and Gaussian

def test_alpha_matches_reference(dtype):
    x = _x(10_001, dtype)
    for rate in (0.05, 0.2, 0.5, 1.0):
        y, cache = V.alpha_dropout(x, rate, seed=1, offset=3)
        assert y.dtype == dtype
        assert np.array_equal(bits_of(y), bits_of(RV.alpha_dropout(x, rate, 1, 3)))
        dx = V.alpha_dropout_backward(x, cache)
        assert np.array_equal(bits_of(dx), bits_of(RV.alpha_dropout_backward(x, rate, 1, 3)))


def test_alpha_constants_match_pytorch_formula():
    # torch.nn.functional.alpha_dropout: a = 1 / sqrt((alpha^2 p + 1) (1 - p)), alpha = 1.758...
    thr, a, b, c = RV.alpha_constants(0.25)
    p = 1 - thr / 65536
    alpha = 1.7580993408473766
    assert math.isclose(a, 1 / math.sqrt((alpha * alpha * p + 1) * (1 - p)), rel_tol=1e-14)
    assert math.isclose(b, alpha * a * p, rel_tol=1e-14)
    assert math.isclose(c, -alpha * a + alpha * a * p, rel_tol=1e-14)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_alpha_keeps_mean_and_variance(rate):
    n = 400_000
    x = np.random.default_rng(5).standard_normal(n)
    x = (x - x.mean()) / x.std()          # exactly mean 0, variance 1
    y, _ = V.alpha_dropout(x, rate, seed=17)
    # the output's variance is 1; its sample mean and variance then have sd ~ 1/sqrt(n), ~ 2/sqrt(n)
    assert abs(y.mean()) < 5 / math.sqrt(n)
    assert abs(y.var() - 1) < 5 * 2.5 / math.sqrt(n)


def test_gaussian_matches_reference(dtype):
    x = _x(5000, dtype)
    y, cache = V.gaussian_dropout(x, 0.3, seed=1, offset=3)
    assert y.dtype == dtype
    assert np.array_equal(bits_of(y), bits_of(RV.gaussian_dropout(x, 0.3, 1, 3)))
    dout = _x(5000, dtype, 9)
    dx = V.gaussian_dropout_backward(dout, cache)
    assert np.array_equal(bits_of(dx), bits_of(RV.gaussian_dropout(dout, 0.3, 1, 3)))


def test_gaussian_words_are_lane_outputs():
    # u64 word h is 4 consecutive draws: the lane output itself, read little-endian
    d = RV.draws16(4, 0, 4096)
    assert np.array_equal(RV.words64(4, 0, 1024), np.ascontiguousarray(d).view("<u8"))


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_gaussian_noise_moments(rate):
    n = 200_000
    eps = V.gaussian_noise(n, rate, seed=31)
    var = rate / (1 - rate)
    sd = math.sqrt(var)
    assert abs(eps.mean() - 1) < 5 * sd / math.sqrt(n)
    assert abs(eps.var() - var) < 5 * var * math.sqrt(2 / n)
    z = (eps - 1) / sd
    assert abs(np.mean(np.abs(z) < 1) - 0.682689) < 0.005
    assert abs(np.mean(z ** 3)) < 0.05 and abs(np.mean(z ** 4) - 3) < 0.1


# ------------------------------------------------------------------ threads

THREAD_CALLS = {
    "nd": lambda x, t: V.dropout_nd(x, 0.3, broadcast_axes=1, seed=5, n_threads=t)[0],
    "nd_full": lambda x, t: V.dropout_nd(x, 0.3, seed=5, n_threads=t)[0],
    "spatial": lambda x, t: V.spatial_dropout(x.reshape(40, 50, -1), 0.3, seed=5,
                                              n_threads=t)[0],
    "exact_k": lambda x, t: V.exact_k_dropout(x, 0.3, seed=5, n_threads=t)[0],
    "alpha": lambda x, t: V.alpha_dropout(x, 0.3, seed=5, n_threads=t)[0],
    "gaussian": lambda x, t: V.gaussian_dropout(x, 0.3, seed=5, n_threads=t)[0],
    "dropconnect": lambda x, t: V.dropconnect_forward(x[:4], x.T[:, :7].copy(),
                                                      np.zeros(7, x.dtype), 0.3, seed=5,
                                                      n_threads=t)[0],
}


@pytest.mark.parametrize("name", sorted(THREAD_CALLS))
def test_same_bits_for_1_and_2_threads(name, dtype):
    x = _x((200, 500), dtype)
    a, b = THREAD_CALLS[name](x, 1), THREAD_CALLS[name](x, 2)
    assert np.array_equal(bits_of(a), bits_of(b))


# ------------------------------------------------------------------ gradients

def _gradcheck(forward, backward, shape, seed=0):
    x = _x(shape, np.float64, seed)
    dout = _x(shape, np.float64, seed + 1)
    _, cache = forward(x)
    dx = backward(dout, cache)
    num = eval_numerical_gradient_array(lambda v: forward(v)[0], x, dout)
    assert rel_error(dx, num) < 1e-8


@pytest.mark.parametrize("name", ["nd", "spatial", "locked", "exact_k", "alpha", "gaussian"])
def test_numerical_gradient(name):
    f = {
        "nd": (lambda x: V.dropout_nd(x, 0.4, broadcast_axes=(1,), seed=3), (4, 3, 5)),
        "spatial": (lambda x: V.spatial_dropout(x, 0.4, seed=3), (2, 3, 2, 2)),
        "locked": (lambda x: V.locked_dropout(x, 0.4, time_axis=1, seed=3), (2, 4, 3)),
        "exact_k": (lambda x: V.exact_k_dropout(x, 0.4, seed=3), (5, 8)),
        "alpha": (lambda x: V.alpha_dropout(x, 0.4, seed=3), (5, 8)),
        "gaussian": (lambda x: V.gaussian_dropout(x, 0.4, seed=3), (5, 8)),
    }[name]
    _gradcheck(f[0], V.backward, f[1])


def test_dropconnect_numerical_gradient():
    x, W, b = _x((4, 5), np.float64, 1), _x((5, 3), np.float64, 2), _x(3, np.float64, 3)
    dout = _x((4, 3), np.float64, 4)
    _, cache = V.dropconnect_forward(x, W, b, 0.5, seed=6)
    dx, dW, db = V.backward(dout, cache)
    fwd = lambda x_, W_, b_: V.dropconnect_forward(x_, W_, b_, 0.5, seed=6)[0]  # noqa: E731
    assert rel_error(dx, eval_numerical_gradient_array(lambda v: fwd(v, W, b), x, dout)) < 1e-8
    assert rel_error(dW, eval_numerical_gradient_array(lambda v: fwd(x, v, b), W, dout)) < 1e-8
    assert rel_error(db, eval_numerical_gradient_array(lambda v: fwd(x, W, v), b, dout)) < 1e-8
    assert (dW[cache.W_eff == 0] == 0).all()


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize("call, exc, match", [
    (lambda: V.dropout_nd(np.ones(3), 1.5), ValueError,
     r"rate must satisfy 0 <= rate <= 1, got 1\.5"),
    (lambda: V.dropout_nd(np.ones((2, 3)), 0.5, noise_shape=(2, 2)), ValueError,
     r"noise_shape\[1\] must be 1 or x\.shape\[1\]=3 \(or None\), got 2"),
    (lambda: V.dropout_nd(np.ones((2, 3)), 0.5, noise_shape=(2,)), ValueError,
     r"noise_shape must have x\.ndim=2 entries"),
    (lambda: V.dropout_nd(np.ones((2, 3)), 0.5, broadcast_axes=2), ValueError,
     r"broadcast_axes entries must satisfy -2 <= axis < 2 .* got 2"),
    (lambda: V.dropout_nd(np.ones((2, 3)), 0.5, broadcast_axes=(0, -2)), ValueError,
     r"broadcast_axes must not repeat an axis"),
    (lambda: V.dropout_nd(np.ones((2, 3)), 0.5, noise_shape=(1, 3), broadcast_axes=0), ValueError,
     r"noise_shape or broadcast_axes, not both"),
    (lambda: V.dropout_nd(np.ones(3, np.int64), 0.5), TypeError,
     r"x has dtype int64; only float32 and float64"),
    (lambda: V.dropout_nd(np.ones(3), 0.5, seed=-1), ValueError, r"seed must satisfy 0 <= seed"),
    (lambda: V.spatial_dropout(np.ones((2, 3)), 0.5), ValueError,
     r"x must have 3, 4 or 5 dimensions \(N, C, \*spatial\).*got shape \(2, 3\)"),
    (lambda: V.locked_dropout(np.ones(3), 0.5), ValueError, r"at least 2 dimensions"),
    (lambda: V.gaussian_dropout(np.ones(3), 1.0), ValueError,
     r"rate must satisfy 0 <= rate < 1 for Gaussian dropout .* got 1\.0"),
    (lambda: V.gaussian_dropout(np.ones(3), 0.5, offset=2**62), ValueError,
     r"offset \+ size must be <= 2\*\*64 / 4"),
    (lambda: V.exact_k_dropout(np.float64(1.0), 0.5), ValueError, r"at least 1 dimension"),
    (lambda: V.exact_k_dropout(np.ones(3), 0.5, offset=2**63), ValueError,
     r"offset \+ size must be <= 2\*\*64 / 2"),
    (lambda: V.dropconnect_forward(np.ones((2, 3)), np.ones((4, 2)), np.ones(2)), ValueError,
     r"x must have 4 features per example to match W of shape \(4, 2\)"),
    (lambda: V.dropconnect_forward(np.ones((2, 3)), np.ones((3, 2), np.float32), np.ones(2)),
     TypeError, r"x, W and b must share one dtype"),
    (lambda: V.dropout_nd_backward(np.ones(3), object()), TypeError,
     r"cache must be the VariantCache"),
    (lambda: V.dropout_nd_backward(np.ones(4), V.dropout_nd(np.ones(3), 0.5, seed=1)[1]),
     ValueError, r"dout must have the forward output's shape \(3,\), got \(4,\)"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_docstring_examples():
    result = doctest.testmod(V, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
