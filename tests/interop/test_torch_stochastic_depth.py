"""cydrop.torch's stochastic depth: ``stochastic_depth(input, p, mode, training)`` and the
``StochasticDepth(p, mode)`` module, on cydrop's ``drop_path``."""

import copy
import math
import pickle
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cydrop  # noqa: E402
import cydrop.torch as ct  # noqa: E402
from cydrop._contract import threshold_and_scale  # noqa: E402


def _randn(shape, dtype=torch.float64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


def _drop_path(a, p, seed, offset=0):
    return cydrop.drop_path(a, p, training=True, seed=seed, offset=offset)[0]


# ------------------------------------------------------------------------------------------
# values
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_row_equals_drop_path_bit_for_bit(dtype, p):
    x = _randn((64, 3, 5), dtype)
    y = ct.stochastic_depth(x, p, "row", seed=11, offset=7)
    ref = _drop_path(x.numpy(), p, 11, 7)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.array_equal(y.numpy().view(np.uint8), ref.view(np.uint8))


def test_row_float16_equals_drop_path_in_float32_rounded_once():
    x = _randn((64, 7), torch.float16)
    y = ct.stochastic_depth(x, 0.3, "row", seed=4, offset=2)
    ref = _drop_path(x.numpy().astype(np.float32), 0.3, 4, 2).astype(np.float16)
    assert y.dtype == torch.float16
    assert np.array_equal(y.numpy().view(np.uint16), ref.view(np.uint16))


def test_row_bfloat16_equals_drop_path_in_float32_rounded_once():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = _randn((64, 7), torch.bfloat16)
    a = x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    y = ct.stochastic_depth(x, 0.3, "row", seed=4, offset=2)
    ref = _drop_path(a.astype(np.float32), 0.3, 4, 2).astype(ml_dtypes.bfloat16)
    assert y.dtype == torch.bfloat16
    assert np.array_equal(y.view(torch.int16).numpy(), ref.view(np.int16))


def test_row_one_decision_per_sample_with_cydrops_scale():
    p = 0.3
    _, scale = threshold_and_scale(p)
    y = ct.stochastic_depth(torch.ones(200, 3, 2, dtype=torch.float64), p, "row", seed=8)
    per_sample = y.reshape(200, -1)
    assert bool((per_sample == per_sample[:, :1]).all())
    assert set(per_sample[:, 0].tolist()) == {0.0, scale}
    assert scale == 65536 / round((1 - p) * 65536)


def test_row_offset_counts_samples():
    x = _randn((40, 6))
    full = ct.stochastic_depth(x, 0.5, "row", seed=3)
    part = ct.stochastic_depth(x[10:25], 0.5, "row", seed=3, offset=10)
    assert torch.equal(part, full[10:25])


@pytest.mark.parametrize("seed", range(12))
def test_batch_is_all_kept_or_all_zero(seed):
    p = 0.5
    _, scale = threshold_and_scale(p)
    x = _randn((5, 4, 3), seed=seed)
    y = ct.stochastic_depth(x, p, "batch", seed=seed, offset=seed)
    assert torch.equal(y, torch.zeros_like(x)) or torch.equal(y, x * scale)
    ref = _drop_path(x.numpy().reshape(1, -1), p, seed, seed).reshape(x.shape)
    assert np.array_equal(y.numpy(), ref)


def test_batch_both_outcomes_occur_and_a_0d_input_works():
    outcomes = {bool(ct.stochastic_depth(torch.ones(3, 2), 0.5, "batch", seed=s).any())
                for s in range(40)}
    assert outcomes == {True, False}
    y = ct.stochastic_depth(torch.tensor(2.0), 0.5, "batch", seed=1)
    assert y.shape == () and float(y) in (0.0, 2.0 * threshold_and_scale(0.5)[1])


def test_row_kept_fraction_is_binomial():
    n, p = 100_000, 0.3
    keep = threshold_and_scale(p)[0] / 65536
    y = ct.stochastic_depth(torch.ones(n, 2), p, "row", seed=2024)
    kept = int((y[:, 0] != 0).sum())
    sigma = math.sqrt(n * keep * (1 - keep))
    assert abs(kept - n * keep) < 6 * sigma       # fails by chance with probability ~2e-9


def test_eval_and_p0_return_the_input_itself():
    x = _randn((4, 3))
    assert ct.stochastic_depth(x, 0.5, "row", training=False) is x
    assert ct.stochastic_depth(x, 0.0, "batch") is x
    assert ct.stochastic_depth(x, 0.5, "batch", False) is x
    m = ct.StochasticDepth(0.5, "row", seed=1).eval()
    assert m(x) is x
    assert m.stream.offset == 0          # eval calls take no indices


def test_p1_gives_zeros_even_for_nan():
    x = _randn((4, 3))
    x[0, 0] = float("nan")
    for mode in ("row", "batch"):
        y = ct.stochastic_depth(x, 1.0, mode, seed=5)
        assert torch.equal(y, torch.zeros_like(x))


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), 10**400])
def test_p_out_of_range_message(p):
    msg = f"drop probability has to be between 0 and 1, but got {p}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        ct.stochastic_depth(torch.ones(2, 2), p, "row")
    with pytest.raises(ValueError, match=re.escape(msg)):
        ct.StochasticDepth(p, "row")


@pytest.mark.parametrize("mode", ["col", "Row", None, 3])
def test_mode_message(mode):
    msg = f"mode has to be either 'batch' or 'row', but got {mode}"
    with pytest.raises(ValueError, match=re.escape(msg)):
        ct.stochastic_depth(torch.ones(2, 2), 0.5, mode)
    with pytest.raises(ValueError, match=re.escape(msg)):
        ct.StochasticDepth(0.5, mode)


def test_p_is_checked_before_mode_and_other_errors():
    with pytest.raises(ValueError, match="drop probability"):
        ct.stochastic_depth(torch.ones(2), 2.0, "col")
    with pytest.raises(TypeError, match="torch.Tensor"):
        ct.stochastic_depth(np.ones(2), 0.5, "row")
    with pytest.raises(TypeError):
        ct.stochastic_depth(torch.ones(2), "0.5", "row")
    with pytest.raises(IndexError):
        ct.stochastic_depth(torch.tensor(1.0), 0.5, "row", seed=1)


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["row", "batch"])
def test_gradcheck_and_gradgradcheck(mode):
    x = _randn((6, 3, 2)).requires_grad_()
    seed = 3 if mode == "row" else 0

    def f(t):
        return ct.stochastic_depth(t, 0.4, mode, seed=seed, offset=1)

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))


def test_gradient_is_the_forward_mask_and_scale():
    x = torch.ones(50, 4, requires_grad=True)
    y = ct.stochastic_depth(x, 0.5, "row", seed=9)
    y.backward(torch.full_like(y, 3.0))
    assert torch.equal(x.grad, 3.0 * y.detach())


# ------------------------------------------------------------------------------------------
# layouts, dtypes and the tensors cydrop does not take
# ------------------------------------------------------------------------------------------

def test_non_contiguous_input_masks_by_logical_index():
    base = _randn((12, 8, 3))
    x = base.transpose(0, 1)[:, ::2]              # (8, 6, 3), neither contiguous nor dense
    assert not x.is_contiguous()
    y = ct.stochastic_depth(x, 0.5, "row", seed=6)
    assert torch.equal(y, ct.stochastic_depth(x.contiguous(), 0.5, "row", seed=6))
    assert np.array_equal(y.numpy(), _drop_path(x.contiguous().numpy(), 0.5, 6))


@pytest.mark.parametrize("mode", ["row", "batch"])
def test_channels_last_input_gives_channels_last_output(mode):
    x = _randn((6, 3, 4, 5), torch.float32).to(memory_format=torch.channels_last)
    x.requires_grad_()
    y = ct.stochastic_depth(x, 0.5, mode, seed=2)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, ct.stochastic_depth(x.detach().contiguous(), 0.5, mode, seed=2))
    y.sum().backward()
    assert x.grad.is_contiguous(memory_format=torch.channels_last)


def test_meta_tensor_goes_to_the_torch_computation():
    x = torch.empty((4, 3), device="meta")
    assert not ct.uses_cydrop(x)
    for mode in ("row", "batch"):
        y = ct.stochastic_depth(x, 0.5, mode, seed=1)
        assert y.device.type == "meta" and y.shape == x.shape
    y = ct.StochasticDepth(0.5, "row", seed=1)(x)
    assert y.device.type == "meta"


def test_sparse_tensor_goes_to_the_torch_computation():
    x = torch.ones(64, 3).to_sparse()
    assert not ct.uses_cydrop(x)
    torch.manual_seed(0)
    y = ct.stochastic_depth(x, 0.5, "row")
    assert y.layout == torch.sparse_coo
    dense = y.to_dense()
    assert bool((dense == dense[:, :1]).all())
    assert set(dense[:, 0].tolist()) == {0.0, 2.0}   # torch's formula: 1 / (1 - p)
    torch.manual_seed(0)
    assert torch.equal(ct.stochastic_depth(x, 0.5, "row").to_dense(), dense)


# ------------------------------------------------------------------------------------------
# the module
# ------------------------------------------------------------------------------------------

def test_module_repr_and_attributes():
    m = ct.StochasticDepth(0.2, "row", seed=42)
    assert repr(m) == "StochasticDepth(p=0.2, mode=row, seed=42)"
    assert isinstance(m, torch.nn.Module)
    assert (m.p, m.mode, m.n_threads) == (0.2, "row", None)


def test_module_stream_advances_and_replays():
    x = torch.ones(256, 2)
    m = ct.StochasticDepth(0.5, "row", seed=123)
    a, b = m(x), m(x)
    assert not torch.equal(a, b)
    assert m.stream.offset == 2 * 4096                # whole blocks, as SeedStream.next
    assert torch.equal(a, ct.stochastic_depth(x, 0.5, "row", seed=123, offset=0))
    assert torch.equal(b, ct.stochastic_depth(x, 0.5, "row", seed=123, offset=4096))
    again = ct.StochasticDepth(0.5, "row", seed=123, n_threads=1)
    assert torch.equal(again(x), a) and torch.equal(again(x), b)


def test_module_batch_mode_takes_one_index_per_call():
    m = ct.StochasticDepth(0.5, "batch", seed=5)
    x = torch.ones(3, 4)
    ys = [m(x) for _ in range(3)]
    assert m.stream.offset == 3 * 4096
    for i, y in enumerate(ys):
        assert torch.equal(y, ct.stochastic_depth(x, 0.5, "batch", seed=5, offset=4096 * i))


def test_module_has_no_persistent_state():
    m = ct.StochasticDepth(0.5, "row", seed=1)
    assert m.state_dict() == {}
    m(torch.ones(8, 2))
    assert m.state_dict() == {}
    assert "cydrop_state" in dict(m.named_buffers())
    other = ct.StochasticDepth(0.5, "row", seed=2)
    other.load_state_dict(m.state_dict())
    assert other.stream.get_state() == {"seed": 2, "offset": 0}


def test_module_copies_carry_the_stream():
    m = ct.StochasticDepth(0.25, "row", seed=9)
    m(torch.ones(4, 2))
    for twin in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert twin.stream.get_state() == m.stream.get_state()
        assert (twin.p, twin.mode) == (m.p, m.mode)
        assert torch.equal(twin(torch.ones(4, 2)), m(torch.ones(4, 2)))
        m.stream.set_state({"seed": 9, "offset": 4096})


def test_module_gradients_flow():
    m = ct.StochasticDepth(0.5, "row", seed=3)
    x = _randn((10, 4)).requires_grad_()
    y = m(x)
    y.sum().backward()
    scale = threshold_and_scale(0.5)[1]
    assert torch.equal(x.grad, (y.detach() != 0).to(x.dtype) * scale)
