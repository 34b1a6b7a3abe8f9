"""cydrop.compat.d2l.dropout_layer against d2l.ai's "Dropout" chapter (from scratch)."""

import contextlib
import io
import os
import runpy

import numpy as np
import pytest

from cydrop.compat.d2l import DropoutRangeError, dropout_layer

SCRIPTS = os.path.join(os.path.dirname(__file__), "course_scripts")


def _state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_contract(dtype):
    X = np.arange(16, dtype=dtype).reshape(2, 8) + 1
    assert dropout_layer(X, 0.0) is X                      # "all elements are kept"
    zeros = dropout_layer(X, 1.0)                          # "all elements are dropped out"
    assert zeros.dtype == dtype and not zeros.any()
    big = np.ones((200, 500), dtype=dtype)
    out = dropout_layer(big, 0.5)
    assert out.dtype == dtype and out.shape == big.shape
    assert set(np.unique(out).tolist()) == {0.0, 2.0}
    assert abs((out == 0).mean() - 0.5) < 0.01
    half = dropout_layer(X, 0.5)
    assert np.all((half == 0) | (half == 2 * X))


def test_numpy_draws_once_from_global_state():
    X = np.ones(1000)
    np.random.seed(0)
    a = dropout_layer(X, 0.3)
    after = np.random.get_state()
    np.random.seed(0)
    np.random.randint(0, 2**64, dtype=np.uint64)
    assert _state_equal(after, np.random.get_state())
    np.random.seed(0)
    np.testing.assert_array_equal(a, dropout_layer(X, 0.3))


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), 10**400])
def test_out_of_range_asserts_like_d2l_and_is_a_value_error(bad):
    with pytest.raises(AssertionError, match=r"dropout must satisfy 0 <= dropout <= 1, got"):
        dropout_layer(np.ones(3), bad)
    with pytest.raises(ValueError):
        dropout_layer(np.ones(3), bad)
    assert issubclass(DropoutRangeError, AssertionError)


def test_bad_types_name_the_argument():
    with pytest.raises(TypeError, match=r"dropout must be a real number .* got '0.5' of type str"):
        dropout_layer(np.ones(3), "0.5")
    with pytest.raises(TypeError, match=r"X has dtype int64; only float32 and float64"):
        dropout_layer(np.arange(3), 0.5)


def test_torch_tensor_contract():
    torch = pytest.importorskip("torch")
    X = torch.arange(16, dtype=torch.float64).reshape(2, 8)
    assert dropout_layer(X, 0.0) is X
    z = dropout_layer(X, 1.0)
    assert z.dtype == torch.float64 and not z.any()
    x = torch.ones(100, 300, requires_grad=True)
    y = dropout_layer(x, 0.25)
    assert y.dtype == torch.float32 and y.requires_grad
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                 # d/dx of mask * x / keep
    assert set(torch.unique(y.detach()).tolist()) <= {0.0, float(np.float32(65536 / 49152))}
    torch.manual_seed(3)
    a = dropout_layer(torch.ones(1000), 0.5)
    torch.manual_seed(3)
    b = dropout_layer(torch.ones(1000), 0.5)
    assert torch.equal(a, b)                               # torch.manual_seed repeats runs
    state = np.random.get_state()
    dropout_layer(torch.ones(10), 0.5)
    assert _state_equal(state, np.random.get_state())      # a tensor uses torch's generator


def test_chapter_code_runs_with_one_import_changed():
    pytest.importorskip("torch")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(os.path.join(SCRIPTS, "d2l_dropout.py"), init_globals={"NUM_EPOCHS": 3})
    text = out.getvalue()
    assert text.startswith("tensor([[ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.],")
    assert ns["train_losses"][-1] < ns["train_losses"][0]
    assert ns["train_acc"] > 0.5
