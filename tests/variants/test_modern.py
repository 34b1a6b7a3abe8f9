"""The modern ops: dropout_add, drop_path, softmax_dropout, drop_block.

Reference equality (NumPy twins of cydrop.testing.reference_modern) across thread counts,
offsets and every ISA; gradient checks in float64; statistics; bad inputs; out= / inplace=.
"""

import pickle

import numpy as np
import pytest

import cydrop
from cydrop import _kernels
from cydrop.nn.gradcheck import eval_numerical_gradient_array
from cydrop.testing import reference_modern as RM

DTYPES = [np.float32, np.float64]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8))


# ------------------------------------------------------------------ dropout_add

@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_add_with_zero_residual_is_dropout_bit_for_bit(dtype):
    x = _rng().standard_normal(50_001).astype(dtype)
    x[:7] = [-0.0, 0.0, np.inf, -np.inf, np.nan, 1e30, -1e-30]
    for seed, offset, rate in ((5, 0, 0.3), (2**64 - 1, 12_345, 0.9), (0, 3, 1.0)):
        got, _ = cydrop.dropout_add(x, 0, rate, seed=seed, offset=offset)
        ref, _ = cydrop.dropout(x, rate, seed=seed, offset=offset)
        _same_bits(got, ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_add_matches_twin_on_every_isa_thread_count_and_offset(all_isas, dtype):
    rng = _rng(1)
    x = rng.standard_normal((37, 301)).astype(dtype)
    r = rng.standard_normal((37, 301)).astype(dtype)
    b = rng.standard_normal(301).astype(dtype)
    for offset in (0, 1, 4095, 4097):
        ref = RM.dropout_add(x, r, 0.3, 9, offset, bias=b)
        ref_ps = RM.dropout_add(x, r, 0.3, 9, offset, bias=b, per_sample=True)
        for isa in all_isas:
            _kernels.set_isa(isa)
            for n in (1, 2, 3):
                got, _ = cydrop.dropout_add(x, r, 0.3, bias=b, seed=9, offset=offset,
                                            n_threads=n)
                _same_bits(got, ref)
                got, _ = cydrop.dropout_add(x, r, 0.3, bias=b, seed=9, offset=offset,
                                            per_sample=True, n_threads=n)
                _same_bits(got, ref_ps)


@pytest.mark.parametrize("shape", [(5, 7, 300), (3, 5000), (40, 3)])
@pytest.mark.parametrize("residual", [True, False])
def test_per_sample_runs_across_chunks_rows_and_bias(all_isas, shape, residual):
    """Per-sample decisions when a sample's run crosses chunk boundaries (rows longer and
    shorter than a chunk, the bias shorter than a row), with and without the residual and the
    bias: the twin's bits on every ISA and thread count; drop_path is the no-residual case."""
    rng = _rng(21)
    x = rng.standard_normal(shape).astype(np.float32)
    r = rng.standard_normal(shape).astype(np.float32) if residual else None
    b = rng.standard_normal(shape[-1]).astype(np.float32)
    for bias in (b, None):
        ref = RM.dropout_add(x, r, 0.4, 6, 5, bias=bias, per_sample=True)
        for isa in all_isas:
            _kernels.set_isa(isa)
            for n in (1, 2, 3):
                got, _ = cydrop.dropout_add(x, 0 if r is None else r, 0.4, bias=bias, seed=6,
                                            offset=5, per_sample=True, n_threads=n)
                _same_bits(got, ref)
                if bias is None and r is None:
                    dp, _ = cydrop.drop_path(x, 0.4, training=True, seed=6, offset=5,
                                             n_threads=n)
                    _same_bits(dp, RM.drop_path(x, 0.4, 6, 5))


def test_dropout_add_large_is_thread_invariant():
    x = _rng(2).standard_normal(600_000).astype(np.float32)
    r = _rng(3).standard_normal(600_000).astype(np.float32)
    one, _ = cydrop.dropout_add(x, r, 0.2, seed=1, n_threads=1)
    for n in (2, 3):
        _same_bits(cydrop.dropout_add(x, r, 0.2, seed=1, n_threads=n)[0], one)
    _same_bits(one[1000:], cydrop.dropout_add(x[1000:], r[1000:], 0.2, seed=1, offset=1000)[0])


def test_dropout_add_eval_and_rate_zero_add_only():
    x, r, b = _rng().standard_normal((4, 5)), _rng(1).standard_normal((4, 5)), np.arange(5.0)
    for kw in ({"training": False}, {}):
        rate = 0.5 if kw else 0.0
        y, cache = cydrop.dropout_add(x, r, rate, bias=b, seed=1, **kw)
        np.testing.assert_array_equal(y, r + (x + b))
        assert cache.kind == "identity" and cache.seed is None
        dx, dres, db = cydrop.dropout_add_backward(np.ones_like(x), cache)
        np.testing.assert_array_equal(dx, np.ones_like(x))
        np.testing.assert_array_equal(db, np.full(5, 4.0))


@pytest.mark.parametrize("per_sample", [False, True])
def test_dropout_add_gradients(per_sample):
    rng = _rng(4)
    x, r, b = rng.standard_normal((6, 7)), rng.standard_normal((6, 7)), rng.standard_normal(7)
    dout = rng.standard_normal((6, 7))
    f = dict(seed=3, offset=2, per_sample=per_sample)
    _, cache = cydrop.dropout_add(x, r, 0.4, bias=b, **f)
    dx, dres, db = cydrop.dropout_add_backward(dout, cache)
    num_x = eval_numerical_gradient_array(
        lambda v: cydrop.dropout_add(v, r, 0.4, bias=b, **f)[0], x.copy(), dout)
    num_b = eval_numerical_gradient_array(
        lambda v: cydrop.dropout_add(x, r, 0.4, bias=v, **f)[0], b.copy(), dout)
    num_r = eval_numerical_gradient_array(
        lambda v: cydrop.dropout_add(x, v, 0.4, bias=b, **f)[0], r.copy(), dout)
    np.testing.assert_allclose(dx, num_x, atol=1e-8)
    np.testing.assert_allclose(db, num_b, atol=1e-8)
    np.testing.assert_allclose(dres, num_r, atol=1e-8)
    assert dres is dout


def test_dropout_add_statistics():
    x = np.ones(400_000)
    y, cache = cydrop.dropout_add(x, 0, 0.3, seed=11)
    kept = np.count_nonzero(y) / y.size
    assert abs(kept - 0.7) < 0.005
    assert abs(y.mean() - 1.0) < 0.01
    assert cache.keep_mask().mean() == kept and cache.nbytes == 0
    y, _ = cydrop.dropout_add(np.ones((20_000, 8)), 0, 0.3, seed=11, per_sample=True)
    rows = y[:, 0] != 0
    assert np.all((y != 0) == rows[:, None])           # one decision per sample
    assert abs(rows.mean() - 0.7) < 0.015


def test_dropout_add_out_and_inplace():
    rng = _rng(5)
    x, r = rng.standard_normal((8, 9)), rng.standard_normal((8, 9))
    ref, _ = cydrop.dropout_add(x, r, 0.5, seed=2)
    out = np.empty_like(x)
    assert cydrop.dropout_add(x, r, 0.5, seed=2, out=out)[0] is out
    np.testing.assert_array_equal(out, ref)
    rr = r.copy()
    assert cydrop.dropout_add(x, rr, 0.5, seed=2, out=rr)[0] is rr      # residual in place
    np.testing.assert_array_equal(rr, ref)
    xx = x.copy()
    assert cydrop.dropout_add(xx, r, 0.5, seed=2, inplace=True)[0] is xx
    np.testing.assert_array_equal(xx, ref)
    # a broadcast residual and a non-zero scalar
    np.testing.assert_array_equal(cydrop.dropout_add(x, r[0], 0.5, seed=2)[0],
                                  cydrop.dropout_add(x, np.broadcast_to(r[0], x.shape).copy(),
                                                     0.5, seed=2)[0])
    np.testing.assert_array_equal(cydrop.dropout_add(x, 2.0, 0.5, seed=2)[0],
                                  2.0 + cydrop.dropout(x, 0.5, seed=2)[0])


@pytest.mark.parametrize("call, exc, words", [
    (lambda x: cydrop.dropout_add(x, x, 1.5), ValueError, "rate"),
    (lambda x: cydrop.dropout_add(x, x, "a"), TypeError, "rate"),
    (lambda x: cydrop.dropout_add(x, np.ones(3), 0.5), ValueError, "residual"),
    (lambda x: cydrop.dropout_add(x, x.astype(np.float32), 0.5), TypeError, "residual"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, bias=np.ones(4)), ValueError, "bias"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, bias=np.ones(5, np.float32)), TypeError, "bias"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, seed=-1), ValueError, "seed"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, seed=1, offset=2**64 - 1), ValueError, "offset"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, out=np.empty(3)), ValueError, "out"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, training=None), TypeError, "training"),
    (lambda x: cydrop.dropout_add(x, x, 0.5, per_sample=1), TypeError, "per_sample"),
    (lambda x: cydrop.dropout_add(np.float64(1), 0, 0.5, per_sample=True), ValueError,
     "per_sample"),
    (lambda x: cydrop.dropout_add_backward(x, object()), TypeError, "cache"),
])
def test_dropout_add_bad_inputs(call, exc, words):
    with pytest.raises(exc, match=words):
        call(np.ones((4, 5)))


def test_residual_cache_pickles_and_rejects_tampering():
    _, cache = cydrop.dropout_add(np.ones((3, 4)), 0, 0.5, seed=1, per_sample=True)
    again = pickle.loads(pickle.dumps(cache))
    np.testing.assert_array_equal(again.keep_mask(), cache.keep_mask())
    cache.rate = 2.0
    with pytest.raises(ValueError, match="cache rate"):
        cydrop.dropout_add_backward(np.ones((3, 4)), cache)


# ------------------------------------------------------------------ drop_path

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale_by_keep", [True, False])
def test_drop_path_matches_twin_and_dropout_add_per_sample(all_isas, dtype, scale_by_keep):
    x = _rng(6).standard_normal((50, 3, 7)).astype(dtype)
    for offset in (0, 4095):
        ref = RM.drop_path(x, 0.3, 8, offset, scale_by_keep)
        for isa in all_isas:
            _kernels.set_isa(isa)
            for n in (1, 2, 3):
                got, _ = cydrop.drop_path(x, 0.3, training=True, seed=8, offset=offset,
                                          scale_by_keep=scale_by_keep, n_threads=n)
                _same_bits(got, ref)
    if scale_by_keep:
        fused, _ = cydrop.dropout_add(x, 0, 0.3, seed=8, per_sample=True)
        _same_bits(fused, cydrop.drop_path(x, 0.3, training=True, seed=8)[0])


def test_drop_path_semantics_and_gradient():
    x = _rng(7).standard_normal((40_000, 3))
    y, cache = cydrop.drop_path(x, 0.25, training=True, seed=1)
    kept = np.all(y != 0, axis=1)
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(y[kept], x[kept] / 0.75)
    assert abs(y.mean() - x.mean()) < 0.02
    assert cache.mask_shape == (40_000,)
    np.testing.assert_array_equal(cache.keep_mask(), kept)
    xs, dout = x[:5].copy(), _rng(8).standard_normal((5, 3))
    _, c = cydrop.drop_path(xs, 0.5, training=True, seed=3)
    num = eval_numerical_gradient_array(
        lambda v: cydrop.drop_path(v, 0.5, training=True, seed=3)[0], xs.copy(), dout)
    np.testing.assert_allclose(cydrop.drop_path_backward(dout, c), num, atol=1e-8)
    assert cydrop.drop_path(x, 0.5, training=False)[0] is x
    with pytest.raises(TypeError):
        cydrop.drop_path(x, 0.5)                    # training is required
    with pytest.raises(TypeError, match="scale_by_keep"):
        cydrop.drop_path(x, 0.5, training=True, scale_by_keep="yes")


# ------------------------------------------------------------------ softmax_dropout

@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_dropout_matches_twin_on_every_isa_and_thread_count(all_isas, dtype):
    z = (_rng(9).standard_normal((6, 5, 301)) * 8).astype(dtype)
    z[0, 0, :5] = -np.inf                           # masked positions
    for offset, axis in ((0, -1), (4097, -1), (3, 1), (0, 0)):
        ref = RM.softmax_dropout(z, 0.2, 4, offset, axis=axis)
        for isa in all_isas:
            _kernels.set_isa(isa)
            for n in (1, 2, 3):
                got, _ = cydrop.softmax_dropout(z, 0.2, training=True, axis=axis, seed=4,
                                                offset=offset, n_threads=n)
                _same_bits(got, ref)


def test_softmax_dropout_long_rows_match_twin(all_isas):
    """Rows longer than the kernel's 2048-element segment take its two-pass path."""
    z = (_rng(16).standard_normal((3, 5001)) * 4).astype(np.float32)
    ref = RM.softmax_dropout(z, 0.3, 2, 77)
    for isa in all_isas:
        _kernels.set_isa(isa)
        for n in (1, 2, 3):
            got, cache = cydrop.softmax_dropout(z, 0.3, training=True, seed=2, offset=77,
                                                n_threads=n)
            _same_bits(got, ref)
            _same_bits(cache.probs, RM.softmax(z))


def test_softmax_dropout_is_dropout_of_softmax():
    z = _rng(10).standard_normal((64, 200))
    y, cache = cydrop.softmax_dropout(z, 0.1, training=True, seed=6)
    p, _ = cydrop.softmax_dropout(z, 0.1, training=False)
    _same_bits(y, cydrop.dropout(p, 0.1, seed=6)[0])
    e = np.exp(z - z.max(-1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(-1, keepdims=True), rtol=1e-13)
    np.testing.assert_array_equal(cache.probs, p)
    assert cache.nbytes == p.nbytes
    assert abs(y.sum(-1).mean() - 1.0) < 0.02      # expected row sum preserved


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_dropout_gradient_float64(axis):
    z = _rng(11).standard_normal((3, 4, 5))
    dout = _rng(12).standard_normal((3, 4, 5))
    _, cache = cydrop.softmax_dropout(z, 0.3, training=True, axis=axis, seed=2)
    num = eval_numerical_gradient_array(
        lambda v: cydrop.softmax_dropout(v, 0.3, training=True, axis=axis, seed=2)[0],
        z.copy(), dout)
    np.testing.assert_allclose(cydrop.softmax_dropout_backward(dout, cache), num, atol=1e-8)
    _, cache = cydrop.softmax_dropout(z, 0.3, training=False, axis=axis)
    num = eval_numerical_gradient_array(
        lambda v: cydrop.softmax_dropout(v, 0.3, training=False, axis=axis)[0], z.copy(), dout)
    np.testing.assert_allclose(cydrop.softmax_dropout_backward(dout, cache), num, atol=1e-8)


@pytest.mark.parametrize("shape, axis", [((5, 1), -1), ((4, 7), -1), ((3, 8), -1),
                                         ((6, 9), 0), ((2, 3, 33), 1), ((3, 5001), -1)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
def test_softmax_dropout_backward_matches_twin(all_isas, shape, axis, dtype, training):
    """The backward kernel against its NumPy twin, bit for bit, on every ISA and thread count:
    rows shorter than a lane group, rows of 8 and 9, rows longer than a kernel segment (5001),
    the softmax axis not last, training (mask from the seed) and evaluation (no mask)."""
    z = (_rng(17).standard_normal(shape) * 3).astype(dtype)
    dout = _rng(18).standard_normal(shape).astype(dtype)
    _, cache = cydrop.softmax_dropout(z, 0.3, training=training, axis=axis, seed=4, offset=9)
    probs = RM.softmax(np.moveaxis(z, axis, -1))
    ref = RM.softmax_dropout_backward(dout, np.moveaxis(probs, -1, axis), 0.3,
                                      4 if training else None, 9, axis)
    for isa in all_isas:
        _kernels.set_isa(isa)
        for n in (1, 2, 3):
            got = cydrop.softmax_dropout_backward(dout, cache, n_threads=n)
            assert got.dtype == dtype and got.shape == shape
            _same_bits(got, ref)


def test_softmax_dropout_backward_rows_are_independent_and_sum_to_zero():
    """Each row's gradient depends on that row only, and sums to ~0 (softmax's Jacobian has
    the ones vector in its left null space), dropped positions included."""
    z = _rng(19).standard_normal((50, 300))
    dout = _rng(20).standard_normal((50, 300))
    _, cache = cydrop.softmax_dropout(z, 0.5, training=True, seed=3)
    dz = cydrop.softmax_dropout_backward(dout, cache)
    np.testing.assert_allclose(dz.sum(-1), 0.0, atol=1e-14)
    _, c7 = cydrop.softmax_dropout(z[7:8], 0.5, training=True, seed=3, offset=7 * 300)
    _same_bits(cydrop.softmax_dropout_backward(dout[7:8], c7), dz[7:8])


def test_softmax_dropout_bad_inputs_and_out():
    z = np.zeros((2, 3))
    with pytest.raises(TypeError, match="training"):
        cydrop.softmax_dropout(z, 0.1)                            # no default
    with pytest.raises(TypeError, match="training"):
        cydrop.softmax_dropout(z, 0.1, training="no")
    with pytest.raises(ValueError, match="axis"):
        cydrop.softmax_dropout(z, 0.1, training=True, axis=2)
    with pytest.raises(TypeError, match="axis"):
        cydrop.softmax_dropout(z, 0.1, training=True, axis=1.0)
    with pytest.raises(ValueError, match="scores"):
        cydrop.softmax_dropout(np.float64(1.0), 0.1, training=True)
    with pytest.raises(ValueError, match="out"):
        cydrop.softmax_dropout(z, 0.1, training=True, out=z)
    out = np.empty_like(z)
    assert cydrop.softmax_dropout(z, 0.1, training=True, seed=1, out=out)[0] is out


# ------------------------------------------------------------------ drop_block

@pytest.mark.parametrize("shape, b", [((2, 3, 9, 8), 3), ((2, 2, 7, 7), 2), ((1, 2, 5, 6, 7), 3),
                                      ((2, 1, 4, 4), 9)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_drop_block_matches_torchvision_style_twin(all_isas, shape, b, dtype):
    x = _rng(13).standard_normal(shape).astype(dtype)
    for offset in (0, 5):
        ref = RM.drop_block(x, 0.3, 7, b, offset)
        for isa in all_isas:
            _kernels.set_isa(isa)
            for n in (1, 2, 3):
                got, _ = cydrop.drop_block(x, 0.3, block_size=b, training=True, seed=7,
                                           offset=offset, n_threads=n)
                _same_bits(got, ref)


@pytest.mark.parametrize("b", [2, 3, 4])
def test_drop_block_drops_whole_blocks(b):
    """Every dropped position lies in a fully dropped b x b block, and the union of the fully
    dropped blocks is exactly the dropped set."""
    y, _ = cydrop.drop_block(np.ones((2, 3, 20, 17)), 0.3, block_size=b, training=True, seed=9)
    dropped = (y == 0).astype(np.uint8)
    win = np.lib.stride_tricks.sliding_window_view(dropped, (b, b), axis=(2, 3))
    full = win.min(axis=(-2, -1))                          # windows wholly dropped
    cover = np.zeros_like(dropped)
    for i in range(b):
        for j in range(b):
            cover[:, :, i:i + full.shape[2], j:j + full.shape[3]] |= full
    np.testing.assert_array_equal(cover, dropped)
    assert 0 < dropped.mean() < 1


def test_drop_block_statistics_follow_gamma():
    N, C, H, W, b, rate = 8, 16, 32, 32, 5, 0.2
    x = np.ones((N, C, H, W))
    y, cache = cydrop.drop_block(x, rate, block_size=b, training=True, seed=3)
    gamma = RM.drop_block_gamma(rate, (H, W), b)
    seeds = (H - b + 1) * (W - b + 1)
    # a position is dropped unless no seed of the b x b windows covering it is set
    cover = np.zeros((H, W))
    for i in range(H - b + 1):
        for j in range(W - b + 1):
            cover[i:i + b, j:j + b] += 1
    expected_drop = 1 - np.mean((1 - gamma) ** cover)
    dropped = np.mean(y == 0)
    assert abs(dropped - expected_drop) < 0.02
    assert abs(y.mean() - 1.0) < 1e-5                      # rescaled by the kept fraction
    keep = cache.keep_mask().astype(bool)
    np.testing.assert_array_equal(keep, y != 0)
    # block structure: every dropped region is a union of b x b squares
    assert gamma * seeds > 0
    dx = cydrop.drop_block_backward(np.ones_like(x), cache)
    np.testing.assert_array_equal(dx, y)


def test_drop_block_gradient_and_bad_inputs():
    x = _rng(14).standard_normal((1, 2, 5, 5))
    dout = _rng(15).standard_normal(x.shape)
    _, cache = cydrop.drop_block(x, 0.4, block_size=2, training=True, seed=1)
    num = eval_numerical_gradient_array(
        lambda v: cydrop.drop_block(v, 0.4, block_size=2, training=True, seed=1)[0], x.copy(),
        dout)
    np.testing.assert_allclose(cydrop.drop_block_backward(dout, cache), num, atol=1e-8)
    assert cydrop.drop_block(x, 0.4, block_size=2, training=False)[0] is x
    xx = x.copy()
    assert cydrop.drop_block(xx, 0.4, block_size=2, training=True, seed=1, inplace=True)[0] is xx
    with pytest.raises(ValueError, match="4-D"):
        cydrop.drop_block(np.ones((2, 3, 4)), 0.1, block_size=3, training=True)
    with pytest.raises(ValueError, match="block_size"):
        cydrop.drop_block(x, 0.1, block_size=0, training=True)
    with pytest.raises(TypeError, match="block_size"):
        cydrop.drop_block(x, 0.1, block_size=2.0, training=True)
    with pytest.raises(ValueError, match="rate"):
        cydrop.drop_block(x, -0.1, block_size=2, training=True)
    with pytest.raises(TypeError):
        cydrop.drop_block(x, 0.1, block_size=2)                  # training is required


# ------------------------------------------------------------------ the residual-add floor

@pytest.mark.parametrize("n", [0, 1, 4095, 4097, 300_001])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_stream_add_floor_is_x_plus_r(n, n_threads):
    from cydrop import _floor
    x = _rng(n).standard_normal(n).astype(np.float32)
    r = _rng(n + 1).standard_normal(n).astype(np.float32)
    for isa in _floor.isas():
        y = np.full_like(x, np.nan)
        _floor.stream_add(x, r, y, n_threads, isa=isa)
        np.testing.assert_array_equal(y, x + r)
    with pytest.raises(ValueError, match="y"):
        _floor.stream_add(x, r, np.empty(n + 1, np.float32))
    with pytest.raises(ValueError, match="isa"):
        _floor.stream_add(x, r, np.empty_like(x), isa="sse9")


def test_modern_kernels_are_in_every_isa_table(all_isas):
    x = _rng().standard_normal(9000)
    ref = cydrop.dropout_add(x, x, 0.5, seed=1)[0]
    for isa in all_isas:
        _kernels.set_isa(isa)
        assert _kernels.current_isa() == isa
        _same_bits(cydrop.dropout_add(x, x, 0.5, seed=1)[0], ref)
