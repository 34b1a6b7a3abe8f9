"""cydrop.torch: same masks as cydrop.dropout, torch.nn.Dropout semantics, deferral, gradients."""

import copy
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402

DTYPES = [torch.float32, torch.float64]


def _randn(shape, dtype, seed=0):
    """A tensor from NumPy's Generator (torch's global RNG stays untouched)."""
    a = np.random.default_rng(seed).standard_normal(shape)
    return torch.from_numpy(a).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5), (4, 3, 1025), (2, 4096 * 5 + 3)])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_matches_numpy_dropout(dtype, shape, p):
    x = _randn(shape, dtype)
    y = ct.dropout(x, p, seed=1234)
    expected, _ = cydrop.dropout(x.numpy(), p, seed=1234)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_array_equal(y.numpy(), expected)
    assert y.numpy().tobytes() == expected.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_input_uses_c_order(dtype):
    base = _randn((6, 40), dtype)
    x = base.t()[::2]                     # non-contiguous view
    assert not x.is_contiguous()
    y = ct.dropout(x, 0.4, seed=9, offset=17)
    expected, _ = cydrop.dropout(x.numpy(), 0.4, seed=9, offset=17)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_offset_composes_like_numpy():
    x = _randn((10, 33), torch.float32)
    whole = ct.dropout(x, 0.5, seed=3)
    tail = ct.dropout(x[4:], 0.5, seed=3, offset=4 * 33)
    torch.testing.assert_close(tail, whole[4:], rtol=0, atol=0)


@pytest.mark.parametrize("n_threads", [1, 2, 4])
def test_thread_count_does_not_change_result(n_threads):
    x = _randn((64, 4096), torch.float32)
    ref = ct.dropout(x, 0.3, seed=11, n_threads=1)
    torch.testing.assert_close(ct.dropout(x, 0.3, seed=11, n_threads=n_threads), ref,
                               rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_recomputes_numpy_gradient(dtype):
    x = _randn((5, 300), dtype).requires_grad_()
    y = ct.dropout(x, 0.35, seed=77)
    g = _randn((5, 300), dtype, seed=1)
    y.backward(g)
    _, cache = cydrop.dropout(x.detach().numpy(), 0.35, seed=77)
    np.testing.assert_array_equal(x.grad.numpy(), cydrop.dropout_backward(g.numpy(), cache))
    # the kept positions carry x's scale, the dropped ones are exactly zero
    kept = y.detach() != 0
    assert torch.equal(x.grad != 0, kept & (g != 0))


def test_backward_keeps_no_mask():
    x = _randn((256, 256), torch.float64).requires_grad_()
    y = ct.dropout(x, 0.5, seed=1)
    node = y.grad_fn
    saved = [v for k, v in vars(node).items() if isinstance(v, torch.Tensor)]
    assert saved == []                  # only scalars on the context
    assert (node.seed, node.offset, node.p) == (1, 0, 0.5)


def test_gradcheck_float64():
    x = _randn((4, 6), torch.float64).requires_grad_()

    def f(t):
        return ct.dropout(t, 0.3, seed=2024)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(f, (x,), eps=1e-6, atol=1e-6)


def test_gradcheck_module_float64_non_contiguous():
    x = _randn((6, 5), torch.float64).t().requires_grad_()
    m = ct.Dropout(0.5, seed=8)
    state = m.stream.get_state()

    def f(t):
        m.stream.set_state(state)       # the same mask for every evaluation
        return m(t)

    assert torch.autograd.gradcheck(f, (x,), eps=1e-6, atol=1e-6)


def test_never_touches_torch_global_rng():
    before = torch.get_rng_state()
    x = _randn((100, 100), torch.float32).requires_grad_()
    ct.dropout(x, 0.5).sum().backward()            # fresh OS seed
    ct.Dropout(0.5)(x).sum().backward()            # module with a fresh stream
    ct.dropout(x, 0.5, seed=1).sum().backward()
    assert torch.equal(torch.get_rng_state(), before)


def test_torch_manual_seed_does_not_change_masks():
    x = _randn((50, 50), torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        a = ct.Dropout(0.5, seed=5)(x)
        torch.manual_seed(1)
        b = ct.Dropout(0.5, seed=5)(x)
    assert torch.equal(a, b)


def test_module_stream_replays_and_advances():
    x = _randn((33, 17), torch.float32)
    m1, m2 = ct.Dropout(0.5, seed=99), ct.Dropout(0.5, seed=99)
    first = [m1(x) for _ in range(3)]
    second = [m2(x) for _ in range(3)]
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], first[1])
    stream = cydrop.SeedStream(99)
    for y in first:
        seed, offset = stream.next(x.numel())
        expected, _ = cydrop.dropout(x.numpy(), 0.5, seed=seed, offset=offset)
        np.testing.assert_array_equal(y.numpy(), expected)


def test_module_is_a_torch_dropout_with_train_eval():
    m = ct.Dropout(0.3, seed=1)
    assert isinstance(m, torch.nn.Dropout)
    assert repr(m) == "Dropout(p=0.3, inplace=False, seed=1)"
    x = _randn((20, 20), torch.float32)
    assert m.eval() is m and not m.training
    assert m(x) is x
    assert m.train() is m and m.training
    y = m(x)
    assert not torch.equal(y, x)
    assert ((y == 0) | torch.isclose(y, x / 0.7, rtol=1e-4)).all()


def test_inside_sequential_model_eval_propagates():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8, dtype=torch.float64), torch.nn.ReLU(),
                                ct.Dropout(0.5, seed=0), torch.nn.Linear(8, 2, dtype=torch.float64))
    x = _randn((16, 4), torch.float64)
    model.eval()
    with torch.no_grad():
        ref = model[3](model[1](model[0](x)))
        torch.testing.assert_close(model(x), ref, rtol=0, atol=0)
    model.train()
    model(x).sum().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_writes_input_without_copy(dtype):
    x = _randn((8, 50), dtype)
    expected, _ = cydrop.dropout(x.numpy().copy(), 0.5, seed=4)
    ptr, version = x.data_ptr(), x._version
    y = ct.dropout(x, 0.5, seed=4, inplace=True)
    assert y is x and x.data_ptr() == ptr
    assert x._version > version         # autograd sees the in-place write
    np.testing.assert_array_equal(x.numpy(), expected)


def test_inplace_module_gradient_through_non_leaf():
    a = _randn((10, 10), torch.float64).requires_grad_()
    h = a * 3.0
    m = ct.Dropout(0.5, inplace=True, seed=21)
    y = m(h)
    assert y is h
    y.sum().backward()
    seed, offset = cydrop.SeedStream(21).next(100)
    mask = cydrop.dropout_mask((10, 10), 0.5, seed=seed, offset=offset)
    expected = 3.0 * mask * (65536 / cydrop._contract.threshold_and_scale(0.5)[0])
    np.testing.assert_allclose(a.grad.numpy(), expected, rtol=1e-15)


def test_inplace_on_leaf_requiring_grad_raises_like_torch():
    x = _randn((3, 3), torch.float32).requires_grad_()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        ct.dropout(x, 0.5, seed=0, inplace=True)


def test_identity_cases_return_input():
    x = _randn((5, 5), torch.float32)
    assert ct.dropout(x, 0.5, training=False) is x
    assert ct.dropout(x, 0.0, seed=1) is x
    assert ct.Dropout(0.0)(x) is x


def test_p_one_zeroes_everything_and_its_gradient():
    x = _randn((6, 7), torch.float64).requires_grad_()
    y = ct.dropout(x, 1.0, seed=0)
    assert torch.equal(y, torch.zeros_like(y))
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_dtypes_run_on_cydrop_with_the_float32_masks(dtype):
    # float16/bfloat16 go through cydrop (natively once the core takes them, else in float32
    # with the same masks, rounded once); torch's RNG is never used
    x = _randn((64, 64), torch.float32).to(dtype).requires_grad_()
    assert ct.uses_cydrop(x)
    before = torch.get_rng_state()
    y = ct.dropout(x, 0.5, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    ref = ct.dropout(x.detach().float(), 0.5, seed=3)
    assert y.dtype == dtype
    assert torch.equal(y != 0, ref != 0)
    torch.testing.assert_close(y.float(), ref.to(dtype).float(), rtol=0, atol=0)
    y.float().sum().backward()
    assert x.grad.dtype == dtype and torch.equal(x.grad != 0, y.detach() != 0)
    assert torch.equal(ct.Dropout(0.5, seed=3)(x).detach() != 0, ref != 0)


def test_other_devices_defer_to_torch():
    x = torch.empty((4, 4), device="meta")
    assert not ct.uses_cydrop(x)
    y = ct.dropout(x, 0.5, seed=0)
    assert y.device.type == "meta" and y.shape == x.shape


def test_integer_tensor_errors_like_torch():
    x = torch.arange(6)
    with pytest.raises(RuntimeError) as ours:
        ct.dropout(x, 0.5)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.functional.dropout(x, 0.5)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_bad_p_raises_value_error(p):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        ct.Dropout(p)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ct.dropout(torch.ones(3), p)


def test_bad_arguments_name_themselves():
    with pytest.raises(TypeError, match="p must be a real number"):
        ct.Dropout("0.5")
    with pytest.raises(TypeError, match="inplace"):
        ct.Dropout(0.5, inplace="yes")
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        ct.dropout(np.ones(3), 0.5)
    with pytest.raises(ValueError, match="seed"):
        ct.dropout(torch.ones(3), 0.5, seed=-1)
    with pytest.raises(ValueError, match="n_threads"):
        ct.Dropout(0.5, n_threads=0)


def test_deepcopy_and_pickle_carry_the_stream():
    m = ct.Dropout(0.5, seed=6)
    x = _randn((10, 10), torch.float32)
    m(x)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.stream.get_state() == m.stream.get_state()
        assert torch.equal(clone(x), copy.deepcopy(m)(x))
    assert m.stream.get_state() == {"seed": 6, "offset": 4096}
