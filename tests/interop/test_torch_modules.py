"""cydrop.torch's modules and functional forms: values equal the NumPy ops by logical index,
layouts follow the input, gradients, 16-bit dtypes and what goes to torch instead."""

import itertools
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402
from cydrop.interop.torch import _run  # noqa: E402
from cydrop.variants import alpha_dropout, alpha_dropout_backward, dropout_nd  # noqa: E402

KINDS = {   # name: (functional, module class, NumPy forward of (x, p, seed, offset))
    "element": (ct.dropout, ct.Dropout,
                lambda x, p, s, o: cydrop.dropout(x, p, seed=s, offset=o)[0]),
    "channel": (ct.dropout2d, ct.Dropout2d,
                lambda x, p, s, o: dropout_nd(x, p, broadcast_axes=(2, 3), seed=s,
                                              offset=o)[0]),
    "alpha": (ct.alpha_dropout, ct.AlphaDropout,
              lambda x, p, s, o: alpha_dropout(x, p, seed=s, offset=o)[0]),
    "feature_alpha": (ct.feature_alpha_dropout, ct.FeatureAlphaDropout,
                      lambda x, p, s, o: cydrop.feature_alpha_dropout(x, p, seed=s,
                                                                      offset=o)[0]),
}


def _randn(shape, dtype=torch.float64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


def _call(kind, x, p=0.4, seed=5, offset=3, **kw):
    return KINDS[kind][0](x, p, training=True, seed=seed, offset=offset, **kw)


def _layouts(x):
    """The same values in several layouts (name, tensor)."""
    yield "contiguous", x
    yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    yield "permuted", x.permute(3, 1, 0, 2).contiguous().permute(2, 1, 3, 0)
    yield "n_after_c", x.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)
    big = torch.empty(x.shape[:3] + (2 * x.shape[3],), dtype=x.dtype)[..., ::2]
    yield "sliced", big.copy_(x)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_equal_the_numpy_op_by_logical_index_in_every_layout(kind, dtype):
    x = _randn((3, 4, 5, 6), dtype)
    expected = KINDS[kind][2](x.numpy(), 0.4, 5, 3)
    for name, t in _layouts(x):
        y = _call(kind, t)
        assert y.dtype == dtype and y.shape == x.shape, name
        assert np.array_equal(y.contiguous().numpy(), expected), name


@pytest.mark.parametrize("kind", list(KINDS))
def test_output_and_gradient_are_laid_out_like_the_input(kind):
    x = _randn((2, 6, 3, 3), torch.float32)
    for name, t in _layouts(x):
        t = t.detach().requires_grad_()
        y = _call(kind, t)
        order = _run.memory_order(t)
        assert y.permute(order).is_contiguous(), name
        if name != "sliced":                            # dense: the very same strides
            assert y.stride() == t.stride(), name
        g = _randn(x.shape, torch.float32, seed=1)
        (gx,) = torch.autograd.grad(y, t, g)
        assert gx.permute(order).is_contiguous(), name
        ref_t = x.detach().clone().requires_grad_()
        (ref,) = torch.autograd.grad(_call(kind, ref_t), ref_t, g)
        assert torch.equal(gx, ref), name


def test_channels_last_strides_of_the_issue():
    x = torch.ones(2, 3, 3, 6).contiguous(memory_format=torch.channels_last)
    assert x.stride() == (54, 1, 18, 3)
    x = x.permute(0, 1, 3, 2)             # strides (54, 1, 3, 18) as torch lays them
    y = ct.Dropout(0.5, seed=0)(x)
    assert y.stride() == x.stride()


@pytest.mark.parametrize("kind", list(KINDS))
def test_backward_equals_the_numpy_backward(kind):
    x = _randn((3, 4, 5, 2)).requires_grad_()
    g = _randn((3, 4, 5, 2), seed=2)
    _call(kind, x, p=0.3, seed=9, offset=0).backward(g)
    gn = g.numpy()
    if kind == "element":
        _, cache = cydrop.dropout(x.detach().numpy(), 0.3, seed=9)
        expected = cydrop.dropout_backward(gn, cache)
    elif kind == "channel":
        _, cache = dropout_nd(x.detach().numpy(), 0.3, broadcast_axes=(2, 3), seed=9)
        expected = cydrop.variants.dropout_nd_backward(gn, cache)
    elif kind == "alpha":
        _, cache = alpha_dropout(x.detach().numpy(), 0.3, seed=9)
        expected = alpha_dropout_backward(gn, cache)
    else:
        _, cache = cydrop.feature_alpha_dropout(x.detach().numpy(), 0.3, seed=9)
        expected = cydrop.feature_alpha_dropout_backward(gn, cache)
    assert np.array_equal(x.grad.numpy(), expected)


@pytest.mark.parametrize("kind", list(KINDS))
def test_gradcheck_float64(kind):
    x = _randn((3, 4, 2, 2)).permute(0, 1, 3, 2).requires_grad_()

    def f(t):
        return _call(kind, t, p=0.4, seed=2024, offset=0)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(f, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_modules_are_their_torch_peers_with_a_replaying_stream(kind):
    cls = KINDS[kind][1]
    peer = cls.__mro__[2]
    assert issubclass(cls, peer) and peer.__module__.startswith("torch.nn")
    m = cls(0.25, seed=42)
    assert isinstance(m, peer)
    assert repr(m) == f"{cls.__name__}(p=0.25, inplace=False, seed=42)"
    x = _randn((4, 3, 5, 5), torch.float32)
    a, b = cls(0.25, seed=42), cls(0.25, seed=42)
    ya, yb = [a(x) for _ in range(3)], [b(x) for _ in range(3)]
    assert all(torch.equal(u, v) for u, v in zip(ya, yb))
    assert not torch.equal(ya[0], ya[1])          # fresh masks on every call
    stream = cydrop.SeedStream(42)
    numel = 12 if kind in ("channel", "feature_alpha") else x.numel()
    for y in ya:                                  # each call takes the next indices
        s, o = stream.next(numel)
        assert np.array_equal(y.numpy(), KINDS[kind][2](x.numpy(), 0.25, s, o))
    assert m.eval()(x) is x
    with pytest.raises(TypeError, match="seed"):
        cls(0.5, seed="1")
    with pytest.raises(TypeError):
        cls(0.5, False, 3)                        # seed is keyword-only
    assert cls(0.5, seed=1, n_threads=2).n_threads == 2


def test_channel_modules_follow_torch_shape_rules():
    assert ct.Dropout1d(0.5, seed=1)(torch.ones(4, 6)).shape == (4, 6)      # (C, L)
    y = ct.Dropout3d(0.5, seed=1)(torch.ones(3, 2, 2, 2))                   # (C, D, H, W)
    assert all(v.unique().numel() == 1 for v in y)
    with pytest.raises(RuntimeError, match="Feature dropout requires at least 2 dimensions"):
        ct.feature_alpha_dropout(torch.ones(3), 0.5, training=True, seed=0)
    one_d = torch.ones(3)                       # as torch: no check in evaluation mode
    assert ct.feature_alpha_dropout(one_d, 0.5, training=False) is one_d
    assert ct.FeatureAlphaDropout(0.5).eval()(one_d) is one_d
    with pytest.warns(UserWarning, match="Received a 1-D input to dropout2d"), \
            pytest.raises(RuntimeError, match="Feature dropout requires at least 2"):
        ct.dropout2d(torch.ones(3), 0.5, seed=0)
    x = torch.ones(2, 3) * 1.0
    h = x.clone()
    assert ct.dropout1d(h, 0.5, inplace=True, seed=0) is h


def test_alpha_modules_ignore_inplace_like_torch():
    x = _randn((4, 3, 2), torch.float32)
    before = x.clone()
    for cls in (ct.AlphaDropout, ct.FeatureAlphaDropout):
        y = cls(0.5, inplace=True, seed=0)(x)
        assert y is not x and torch.equal(x, before)
    assert ct.alpha_dropout(x, 0.5) is x                          # training=False by default
    assert ct.feature_alpha_dropout(x, 0.5) is x


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_computes_in_float32_with_the_same_masks(kind, dtype):
    x = _randn((2, 3, 4, 5), torch.float32).to(dtype).requires_grad_()
    before = torch.get_rng_state()
    y = _call(kind, x)
    assert torch.equal(torch.get_rng_state(), before)          # never torch's RNG
    ref = _call(kind, x.detach().float()).to(dtype)
    g = torch.ones_like(y)
    y.backward(g)
    x32 = x.detach().float().requires_grad_()
    (g32,) = torch.autograd.grad(_call(kind, x32), x32, g.float())
    assert y.dtype == dtype and x.grad.dtype == dtype
    if (kind, False, dtype) in _run._unsupported:       # the float32 path: bit for bit
        assert torch.equal(y, ref) and torch.equal(x.grad, g32.to(dtype))
    else:                                               # native 16-bit kernels: same masks
        torch.testing.assert_close(y, ref)
        torch.testing.assert_close(x.grad, g32.to(dtype))
        if kind in ("element", "channel"):
            assert torch.equal(y == 0, ref == 0)


def test_bfloat16_reaches_the_core_as_ml_dtypes_when_it_takes_it(monkeypatch):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    seen = []

    def native_op(kind, backward, a, p, seed, offset, threads, noise_shape):
        seen.append(a.dtype)
        return a * a.dtype.type(2)        # a stand-in for a core with 16-bit kernels

    monkeypatch.setattr(_run, "_op", native_op)
    monkeypatch.setattr(_run, "_unsupported", set())
    x = torch.tensor([1.5, -2.0, 3.0], dtype=torch.bfloat16)
    y = ct.dropout(x, 0.5, seed=0)
    assert seen == [np.dtype(ml_dtypes.bfloat16)]
    assert y.dtype == torch.bfloat16 and torch.equal(y, x * 2)
    h = torch.tensor([1.5, 2.0], dtype=torch.float16)
    assert torch.equal(ct.dropout(h, 0.5, seed=0), h * 2) and seen[-1] == np.float16


def test_the_float32_fallback_is_taken_once_per_op_and_dtype(monkeypatch):
    calls = []
    real = _run._op

    def op(kind, backward, a, *args):
        calls.append(a.dtype)
        if a.dtype == np.float16:                # a stand-in for a core without 16-bit kernels
            raise TypeError(f"x must be float32 or float64, got {a.dtype}")
        return real(kind, backward, a, *args)

    monkeypatch.setattr(_run, "_op", op)
    monkeypatch.setattr(_run, "_unsupported", set())
    x = torch.ones(8, dtype=torch.float16)
    ct.dropout(x, 0.5, seed=0)
    ct.dropout(x, 0.5, seed=0)
    assert calls[0] == np.float16 and calls[1:] == [np.float32, np.float32]


def test_16_bit_tensors_run_natively_on_this_core(monkeypatch):
    # the core has float16/bfloat16 kernels: no float32 detour, the tensor's own dtype goes in
    calls = []
    real = _run._op

    def op(kind, backward, a, *args):
        calls.append(a.dtype)
        return real(kind, backward, a, *args)

    monkeypatch.setattr(_run, "_op", op)
    monkeypatch.setattr(_run, "_unsupported", set())
    x = torch.randn(64, dtype=torch.float16)
    y = ct.dropout(x, 0.5, seed=3)
    assert calls == [np.float16]
    want, _ = cydrop.dropout(x.numpy(), 0.5, seed=3)
    np.testing.assert_array_equal(y.numpy().view(np.uint16), want.view(np.uint16))


def test_other_tensors_go_to_torch():
    meta = torch.empty((4, 4), device="meta")
    assert not ct.uses_cydrop(meta)
    assert ct.dropout(meta, 0.5, seed=0).device.type == "meta"
    assert ct.Dropout2d(0.5, seed=0)(meta[None, None]).device.type == "meta"
    sparse = torch.ones(3, 3).to_sparse()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # quantized tensors are deprecated
        quant = torch.quantize_per_tensor(torch.ones(3, 3), 0.1, 0, torch.quint8)
    for t in (sparse, quant):
        assert not ct.uses_cydrop(t)
        with pytest.raises(NotImplementedError) as ours:       # torch's own error
            ct.Dropout(0.5, seed=0)(t)
        with pytest.raises(NotImplementedError) as theirs:
            torch.nn.functional.dropout(t, 0.5)
        assert str(ours.value) == str(theirs.value)


def test_empty_and_identity_cases_return_the_input():
    for kind in KINDS:
        e = torch.empty(0, 3, 2, 2)
        assert _call(kind, e) is e
        x = torch.ones(2, 3, 2, 2)
        assert KINDS[kind][0](x, 0.0, training=True, seed=0) is x
        assert KINDS[kind][0](x, 0.5, training=False, seed=0) is x


def test_inference_mode_made_module_is_usable_outside_it():
    with torch.inference_mode():
        m = ct.Dropout(0.5, seed=1)
        m(torch.ones(10))
    assert m.stream.get_state() == {"seed": 1, "offset": 4096}
    m(torch.ones(10))
    assert m.stream.get_state() == {"seed": 1, "offset": 8192}
    m.stream.set_state({"seed": 2, "offset": 0})
    assert m.stream.seed == 2


def test_output_strides_are_torchs_for_dense_sliced_and_broadcast_inputs():
    # torch's element-wise layout rule (TensorIterator's), on every permutation; size-1 axes
    # have no place in memory and their strides are not compared
    shape = (2, 3, 4, 5)
    for perm in itertools.permutations(range(4)):
        inv = [perm.index(i) for i in range(4)]
        dense = torch.ones(shape).permute(perm).contiguous().permute(inv)
        bcast = torch.ones(2, 1, 4, 5).permute(perm).contiguous().permute(inv).expand(shape)
        for x in (dense, dense[:, :, :, ::2], dense[1:], bcast):
            y = ct.dropout(x, 0.5, seed=0)
            t = torch.nn.functional.dropout(x, 0.5)
            assert [s for s, n in zip(y.stride(), y.shape) if n > 1] == \
                [s for s, n in zip(t.stride(), t.shape) if n > 1], (perm, x.stride())
            assert torch.equal(y, ct.dropout(x.contiguous(), 0.5, seed=0))


def test_a_pickle_of_the_previous_dropout_module_loads():
    m = ct.Dropout(0.5, seed=6)
    state = m.__getstate__()
    state = dict(state)
    buffers = dict(state["_buffers"])
    del buffers["cydrop_state"]
    state["_buffers"] = buffers
    state["stream"] = {"seed": 6, "offset": 8192}      # how 0.1 pickled it
    old = ct.Dropout.__new__(ct.Dropout)
    old.__setstate__(state)
    assert old.stream.get_state() == {"seed": 6, "offset": 8192}
    x = torch.ones(10)
    m.stream.set_state({"seed": 6, "offset": 8192})
    assert torch.equal(old(x), m(x))
