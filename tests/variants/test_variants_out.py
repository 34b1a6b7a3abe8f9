"""out= / inplace= on the variants (the core's rules and messages), and channels-last channel
dropout (channel_axis) with its mask contract."""

import pickle
import re

import numpy as np
import pytest

import cydrop
import cydrop.variants as V
from cydrop.nn import SpatialDropout

from helpers import bits_of


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# name -> (forward(x, rate, **kw), backward, shape, 16-bit dtypes accepted)
VARIANTS = {
    "nd": (lambda x, r, **k: V.dropout_nd(x, r, broadcast_axes=1, **k), V.dropout_nd_backward,
           (6, 5, 7), True),
    "spatial": (V.spatial_dropout, V.dropout_nd_backward, (3, 4, 5, 6), True),
    "spatial_last": (lambda x, r, **k: V.spatial_dropout(x, r, channel_axis=-1, **k),
                     V.dropout_nd_backward, (3, 5, 6, 4), True),
    "locked": (lambda x, r, **k: V.locked_dropout(x, r, time_axis=1, **k),
               V.dropout_nd_backward, (4, 9, 6), True),
    "alpha": (V.alpha_dropout, V.alpha_dropout_backward, (7, 33), False),
    "gaussian": (V.gaussian_dropout, V.gaussian_dropout_backward, (7, 33), False),
    "exact_k": (V.exact_k_dropout, V.exact_k_dropout_backward, (7, 33), False),
}
NAMES = sorted(VARIANTS)


def _error_of(fn):
    with pytest.raises((TypeError, ValueError)) as info:
        fn()
    return info.value


def _same_error(variant_call, core_call):
    """The variant raises the core's error type and message."""
    want = _error_of(core_call)
    with pytest.raises(type(want), match=re.escape(str(want))):
        variant_call()


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


# ================================================================ out= / inplace=, forward

@pytest.mark.parametrize("name", NAMES)
def test_forward_out_and_inplace_match_allocating_call(name, dtype):
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, dtype)
    ref, cref = fwd(x.copy(), 0.3, seed=11)
    buf = np.full(shape, 7, dtype)
    y, c = fwd(x, 0.3, seed=11, out=buf)
    assert y is buf and (bits_of(y) == bits_of(ref)).all()
    xi = x.copy()
    y, c2 = fwd(xi, 0.3, seed=11, inplace=True)
    assert y is xi and (bits_of(xi) == bits_of(ref)).all()
    for cache in (c, c2):
        assert pickle.loads(pickle.dumps(cache)).kind == cref.kind
        assert (bits_of(bwd(np.ones(shape, dtype), cache))
                == bits_of(bwd(np.ones(shape, dtype), cref))).all()
    # out=x is in place too; inplace=True with out=x as well
    xo = x.copy()
    y, _ = fwd(xo, 0.3, seed=11, out=xo)
    assert y is xo and (bits_of(xo) == bits_of(ref)).all()
    xo = x.copy()
    y, _ = fwd(xo, 0.3, seed=11, inplace=True, out=xo)
    assert y is xo and (bits_of(xo) == bits_of(ref)).all()


@pytest.mark.parametrize("name", NAMES)
def test_backward_out_and_inplace_match_allocating_call(name, dtype):
    fwd, bwd, shape, _ = VARIANTS[name]
    _, cache = fwd(_x(shape, dtype), 0.3, seed=4)
    dout = _x(shape, dtype, 1)
    ref = bwd(dout.copy(), cache)
    buf = np.empty(shape, dtype)
    dx = bwd(dout, cache, out=buf)
    assert dx is buf and (bits_of(dx) == bits_of(ref)).all()
    d = dout.copy()
    dx = bwd(d, cache, inplace=True)
    assert dx is d and (bits_of(d) == bits_of(ref)).all()
    # the dispatching backward passes them on
    buf2 = np.empty(shape, dtype)
    assert V.backward(dout, cache, out=buf2) is buf2 and (bits_of(buf2) == bits_of(ref)).all()
    d = dout.copy()
    assert V.backward(d, cache, inplace=True) is d and (bits_of(d) == bits_of(ref)).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_unaligned_and_strided_targets(name, n_threads):
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, np.float64)
    ref, cache = fwd(x, 0.4, seed=3, n_threads=n_threads)
    raw = np.zeros(x.nbytes + 1, np.uint8)
    out = raw[1:].view(np.float64).reshape(shape)        # C-contiguous, unaligned
    assert not out.flags.aligned
    y, _ = fwd(x, 0.4, seed=3, out=out, n_threads=n_threads)
    assert y is out and (bits_of(out) == bits_of(ref)).all()
    # in place on a non-contiguous view of a larger array: written through, neighbours untouched
    big = np.zeros((2,) + shape, np.float64)
    big[0] = x
    view = big[0]
    y, _ = fwd(view, 0.4, seed=3, inplace=True, n_threads=n_threads)
    assert y is view and (bits_of(big[0]) == bits_of(ref)).all() and not big[1].any()
    dout = _x(shape, np.float64, 2)
    dx = bwd(dout, cache, out=out, n_threads=n_threads)
    assert dx is out and (bits_of(out) == bits_of(bwd(dout, cache))).all()


def _bad_outs(shape, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    ro = np.zeros(shape, dtype)
    ro.flags.writeable = False
    return {
        "shape": np.zeros(shape[:-1] + (shape[-1] + 1,), dtype),
        "dtype": np.zeros(shape, other),
        "strided": np.zeros(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2],
        "readonly": ro,
        "list": np.zeros(shape, dtype).tolist(),
    }


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", ["shape", "dtype", "strided", "readonly", "list"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "identity"])
def test_bad_out_same_error_as_core_and_nothing_written(name, bad, training, dtype):
    # identity calls (training=False, or an identity cache) check out as well
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, dtype)
    x0 = x.copy()
    out = _bad_outs(shape, dtype)[bad]
    before = np.array(out, copy=True)
    _same_error(lambda: fwd(x, 0.3, seed=1, training=training, out=out),
                lambda: cydrop.dropout(x, 0.3, seed=1, training=training, out=out))
    assert np.array_equal(np.asarray(out), before) and (bits_of(x) == bits_of(x0)).all()
    _, cache = fwd(x, 0.3, seed=1, training=training)
    _, core = cydrop.dropout(x, 0.3, seed=1, training=training)
    dout = _x(shape, dtype, 5)
    d0 = dout.copy()
    _same_error(lambda: bwd(dout, cache, out=out),
                lambda: cydrop.dropout_backward(dout, core, out=out))
    assert np.array_equal(np.asarray(out), before) and (bits_of(dout) == bits_of(d0)).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("training", [True, False], ids=["train", "identity"])
def test_inplace_errors_same_as_core(name, training, dtype):
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, dtype)
    x0 = x.copy()
    ro = x.copy()
    ro.flags.writeable = False
    _same_error(lambda: fwd(ro, 0.3, seed=1, training=training, inplace=True),
                lambda: cydrop.dropout(ro, 0.3, seed=1, training=training, inplace=True))
    _same_error(lambda: fwd(x.tolist(), 0.3, seed=1, training=training, inplace=True),
                lambda: cydrop.dropout(x.tolist(), 0.3, seed=1, training=training,
                                       inplace=True))
    swapped = x.astype(x.dtype.newbyteorder())
    _same_error(lambda: fwd(swapped, 0.3, seed=1, training=training, inplace=True),
                lambda: cydrop.dropout(swapped, 0.3, seed=1, training=training, inplace=True))
    other = np.zeros_like(x)
    _same_error(lambda: fwd(x, 0.3, seed=1, training=training, inplace=True, out=other),
                lambda: cydrop.dropout(x, 0.3, seed=1, training=training, inplace=True,
                                       out=other))
    assert not other.any() and (bits_of(x) == bits_of(x0)).all()
    _same_error(lambda: fwd(x, 0.3, seed=1, training=training, inplace="yes"),
                lambda: cydrop.dropout(x, 0.3, seed=1, training=training, inplace="yes"))
    _, cache = fwd(x, 0.3, seed=1, training=training)
    _, core = cydrop.dropout(x, 0.3, seed=1, training=training)
    _same_error(lambda: bwd(ro, cache, inplace=True),
                lambda: cydrop.dropout_backward(ro, core, inplace=True))
    _same_error(lambda: bwd(x, cache, inplace=True, out=other),
                lambda: cydrop.dropout_backward(x, core, inplace=True, out=other))
    assert not other.any() and (bits_of(x) == bits_of(x0)).all()


@pytest.mark.parametrize("name", NAMES)
def test_overlapping_out_same_error_as_core(name, dtype):
    fwd, bwd, shape, _ = VARIANTS[name]
    size = int(np.prod(shape))
    buf = _x(size + 1, dtype)
    x, out = buf[:-1].reshape(shape), buf[1:].reshape(shape)
    b0 = buf.copy()
    _same_error(lambda: fwd(x, 0.3, seed=1, out=out),
                lambda: cydrop.dropout(x, 0.3, seed=1, out=out))
    assert (bits_of(buf) == bits_of(b0)).all()
    _, cache = fwd(x.copy(), 0.3, seed=1)
    _, core = cydrop.dropout(x.copy(), 0.3, seed=1)
    _same_error(lambda: bwd(x, cache, out=out),
                lambda: cydrop.dropout_backward(x, core, out=out))
    assert (bits_of(buf) == bits_of(b0)).all()


@pytest.mark.parametrize("name", NAMES)
def test_identity_calls_honour_out_and_inplace(name, dtype):
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, dtype)
    for rate, training in ((0.3, False), (0.0, True)):
        out = np.empty_like(x)
        y, cache = fwd(x, rate, seed=1, training=training, out=out)
        assert y is out and (bits_of(out) == bits_of(x)).all() and cache.kind == "identity"
        assert fwd(x, rate, seed=1, training=training, inplace=True)[0] is x
        assert fwd(x, rate, seed=1, training=training, out=x)[0] is x
        dout = _x(shape, dtype, 3)
        dx = bwd(dout, cache, out=out)
        assert dx is out and (bits_of(out) == bits_of(dout)).all()
        assert bwd(dout, cache, inplace=True) is dout
        assert bwd(dout, cache) is dout


def test_dropconnect_dispatch_refuses_out():
    x, W, b = _x((4, 6), np.float64), _x((6, 3), np.float64, 1), _x(3, np.float64, 2)
    _, cache = V.dropconnect_forward(x, W, b, 0.5, seed=1)
    with pytest.raises(TypeError, match="out and inplace are not supported"):
        V.backward(np.ones((4, 3)), cache, out=np.empty((4, 6)))


@pytest.mark.parametrize("name", ["nd", "spatial", "spatial_last", "locked"])
def test_float16_out_and_inplace(name):
    fwd, bwd, shape, _ = VARIANTS[name]
    x = _x(shape, np.float16)
    ref, cache = fwd(x.copy(), 0.3, seed=2)
    out = np.empty_like(x)
    assert fwd(x, 0.3, seed=2, out=out)[0] is out and (bits_of(out) == bits_of(ref)).all()
    xi = x.copy()
    assert fwd(xi, 0.3, seed=2, inplace=True)[0] is xi and (bits_of(xi) == bits_of(ref)).all()
    dout = _x(shape, np.float16, 1)
    dref = bwd(dout, cache)
    assert bwd(dout, cache, inplace=True) is dout and (bits_of(dout) == bits_of(dref)).all()


# ================================================================ channels-last

@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("shape", [(4, 3, 17), (3, 5, 6, 7), (2, 3, 4, 5, 6)])
def test_channels_last_equals_channels_first_transposed(dt, n_threads, shape):
    x = _x(shape, dt)
    perm = (0,) + tuple(range(2, len(shape))) + (1,)
    x_last = np.ascontiguousarray(x.transpose(perm))
    a, ca = V.spatial_dropout(x, 0.4, seed=21, offset=5, n_threads=n_threads)
    b, cb = V.spatial_dropout(x_last, 0.4, channel_axis=-1, seed=21, offset=5,
                              n_threads=n_threads)
    assert (bits_of(np.ascontiguousarray(a.transpose(perm))) == bits_of(b)).all()
    # the (N, C) decisions: the same mask elements n * C + c in both layouts
    n, c = shape[:2]
    assert np.array_equal(ca.keep.reshape(n, c), cb.keep.reshape(n, c))
    assert np.array_equal(cb.keep.reshape(n, c),
                          cydrop.dropout_mask((n, c), 0.4, seed=21, offset=5))
    # positive channel_axis = ndim - 1 is the same call; backward follows the same mask
    b2, _ = V.spatial_dropout(x_last, 0.4, channel_axis=len(shape) - 1, seed=21, offset=5)
    assert (bits_of(b2) == bits_of(b)).all()
    g = V.dropout_nd_backward(np.ones_like(x_last), cb, n_threads=n_threads)
    ga = V.dropout_nd_backward(np.ones_like(x), ca)
    assert (bits_of(np.ascontiguousarray(ga.transpose(perm))) == bits_of(g)).all()


def test_channel_axis_default_is_unchanged():
    x = _x((3, 4, 5, 6), np.float32)
    a, _ = V.spatial_dropout(x, 0.5, seed=1)
    b, _ = V.spatial_dropout(x, 0.5, channel_axis=1, seed=1)
    c, _ = V.dropout_nd(x, 0.5, broadcast_axes=(2, 3), seed=1)
    assert (bits_of(a) == bits_of(b)).all() and (bits_of(a) == bits_of(c)).all()


@pytest.mark.parametrize("channel_axis", [-1, 1, 2])
def test_channels_all_kept_or_all_dropped(channel_axis):
    n, c, rate = 64, 32, 0.3
    shape = [n, 5, 6, 5]
    shape[channel_axis] = c
    x = np.ones(shape, np.float64)
    y, _ = V.spatial_dropout(x, rate, channel_axis=channel_axis, seed=8)
    per = np.moveaxis(y, channel_axis, 1).reshape(n, c, -1)
    first = per[:, :, :1]
    assert (per == first).all()                         # one decision per (n, c)
    assert set(np.unique(first).tolist()) <= {0.0, 65536 / round((1 - rate) * 65536)}
    dropped = (first == 0).mean()
    sigma = (rate * (1 - rate) / (n * c)) ** 0.5
    assert abs(dropped - rate) < 5 * sigma


@pytest.mark.parametrize("bad, exc, msg", [
    (0, ValueError, "channel_axis must not be axis 0, the batch axis.*got 0"),
    (-4, ValueError, "channel_axis must not be axis 0, the batch axis.*got -4"),
    (4, ValueError, r"channel_axis must satisfy -4 <= channel_axis < 4 .*got 4"),
    (-5, ValueError, r"channel_axis must satisfy -4 <= channel_axis < 4 .*got -5"),
    (1.0, TypeError, "channel_axis must be an int, got float 1.0"),
    (True, TypeError, "channel_axis must be an int, got bool True"),
    ("1", TypeError, "channel_axis must be an int, got str '1'"),
])
def test_bad_channel_axis(bad, exc, msg):
    x = _x((2, 3, 4, 5), np.float32)
    x0 = x.copy()
    with pytest.raises(exc, match=msg):
        V.spatial_dropout(x, 0.5, channel_axis=bad, seed=1, inplace=True)
    assert (bits_of(x) == bits_of(x0)).all()


def test_spatial_layer_channel_axis():
    x_first = _x((4, 3, 6, 5), np.float32)
    x_last = np.ascontiguousarray(x_first.transpose(0, 2, 3, 1))
    first = SpatialDropout(0.5, seed=9)
    last = SpatialDropout(0.5, channel_axis=-1, seed=9)
    for _ in range(3):
        a, b = first.forward(x_first), last.forward(x_last)
        assert (bits_of(np.ascontiguousarray(a.transpose(0, 2, 3, 1))) == bits_of(b)).all()
        ga = first.backward(np.ones_like(a))
        gb = last.backward(np.ones_like(b))
        assert (bits_of(np.ascontiguousarray(ga.transpose(0, 2, 3, 1))) == bits_of(gb)).all()
    assert "channel_axis=-1" in repr(last) and "channel_axis" not in repr(first)
    with pytest.raises(ValueError, match="channel_axis must not be axis 0"):
        SpatialDropout(0.5, channel_axis=0)
    with pytest.raises(TypeError, match="channel_axis must be an int"):
        SpatialDropout(0.5, channel_axis=None)
    with pytest.raises(ValueError, match=r"channel_axis must satisfy -3 <= channel_axis < 3"):
        SpatialDropout(0.5, channel_axis=3, seed=1).forward(_x((2, 3, 4), np.float32))
