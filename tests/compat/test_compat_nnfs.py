"""cydrop.compat.nnfs against the book's (nnfs.io, chapter 15) classes and script."""

import contextlib
import io
import os
import runpy

import numpy as np
import pytest

from cydrop.compat import nnfs
from cydrop.compat.nnfs import (
    Activation_ReLU,
    Activation_Softmax,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Layer_Dense,
    Layer_Dropout,
    Loss_CategoricalCrossentropy,
    Optimizer_Adagrad,
    Optimizer_Adam,
    Optimizer_RMSprop,
    Optimizer_SGD,
)
from cydrop.compat.nnfs.datasets import spiral_data

SCRIPTS = os.path.join(os.path.dirname(__file__), "course_scripts")


@pytest.fixture(autouse=True)
def _float64_default():
    yield
    nnfs._state["dtype"] = np.dtype(np.float64)


def _state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


def _run_script(**globs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(os.path.join(SCRIPTS, "nnfs_ch15.py"), init_globals=globs)
    return ns, out.getvalue()


def test_layer_dropout_is_the_books_class():
    layer = Layer_Dropout(0.1)
    assert layer.rate == pytest.approx(0.9)              # stored inverted, as in the book
    inputs = np.random.default_rng(0).standard_normal((300, 64)).astype(np.float32)
    layer.forward(inputs)
    assert layer.inputs is inputs
    mask = layer.binary_mask
    assert mask.shape == inputs.shape and mask.dtype == np.float32
    assert set(np.unique(mask).tolist()) <= {0.0, np.float32(65536 / 58982)}
    assert abs((mask == 0).mean() - 0.1) < 0.01
    np.testing.assert_array_equal(layer.output, inputs * mask)
    dvalues = np.ones_like(inputs)
    layer.backward(dvalues)
    np.testing.assert_array_equal(layer.dinputs, dvalues * mask)
    layer.backward(dvalues.astype(np.float64))            # another dtype: the book's multiply
    np.testing.assert_array_equal(layer.dinputs, dvalues * mask)


def test_training_false_copies():
    layer = Layer_Dropout(0.5)
    x = np.ones((3, 4))
    state = np.random.get_state()
    layer.forward(x, training=False)
    assert layer.output is not x and np.array_equal(layer.output, x)
    assert _state_equal(state, np.random.get_state())


def test_rates_zero_and_one():
    x = np.ones((4, 5))
    layer = Layer_Dropout(0.0)
    layer.forward(x)
    assert layer.output is not x and np.array_equal(layer.output, x)
    np.testing.assert_array_equal(layer.binary_mask, np.ones_like(x))
    layer = Layer_Dropout(1.0)
    layer.forward(x)
    assert not layer.output.any()


def test_unseeded_forward_draws_once_from_numpy_global_state():
    x = np.ones((50, 50))
    nnfs.init()
    a = Layer_Dropout(0.3)
    a.forward(x)
    after = np.random.get_state()
    np.random.seed(0)
    np.random.randint(0, 2**64, dtype=np.uint64)
    assert _state_equal(after, np.random.get_state())
    nnfs.init()
    b = Layer_Dropout(0.3)
    b.forward(x)
    np.testing.assert_array_equal(a.output, b.output)


@pytest.mark.parametrize("rate, exc, match", [
    (1.5, ValueError, r"rate must satisfy 0 <= rate <= 1, got 1\.5"),
    (-0.1, ValueError, r"rate must satisfy 0 <= rate <= 1, got -0\.1"),
    ("0.1", TypeError, r"rate must be a real number"),
])
def test_bad_rate_same_errors_as_core(rate, exc, match):
    with pytest.raises(exc, match=match):
        Layer_Dropout(rate)


def test_bad_inputs_name_the_argument():
    with pytest.raises(TypeError, match=r"inputs has dtype int64"):
        Layer_Dropout(0.1).forward(np.arange(4))


def test_init_seeds_and_sets_float32():
    nnfs.init()
    X, y = spiral_data(samples=100, classes=3)
    assert X.dtype == np.float32 and y.dtype == np.uint8 and X.shape == (300, 2)
    dense = Layer_Dense(2, 4)
    assert dense.weights.dtype == np.float32 and dense.biases.shape == (1, 4)
    # the book's draws: spiral noise, then 0.01 * randn weights, after np.random.seed(0)
    np.random.seed(0)
    noise = [np.random.randn(100) for _ in range(3)]
    w = 0.01 * np.random.randn(2, 4)
    np.testing.assert_allclose(dense.weights, w.astype(np.float32))
    t0 = np.linspace(0, 4, 100) + noise[0].astype(np.float32) * 0.2
    r = np.linspace(0.0, 1, 100)
    np.testing.assert_allclose(X[:100, 0], r * np.sin(t0 * 2.5), rtol=1e-5, atol=1e-6)


def test_dense_forward_backward_with_regularizers():
    np.random.seed(1)
    layer = Layer_Dense(3, 2, weight_regularizer_l1=0.1, weight_regularizer_l2=0.2,
                        bias_regularizer_l2=0.3)
    layer.biases += 0.5
    x = np.random.randn(5, 3)
    layer.forward(x)
    np.testing.assert_allclose(layer.output, x @ layer.weights + layer.biases)
    dv = np.random.randn(5, 2)
    layer.backward(dv)
    w = layer.weights
    np.testing.assert_allclose(layer.dweights, x.T @ dv + 0.1 * np.sign(w) + 0.4 * w)
    np.testing.assert_allclose(layer.dbiases, dv.sum(0, keepdims=True) + 0.6 * layer.biases)
    np.testing.assert_allclose(layer.dinputs, dv @ w.T)
    loss = Loss_CategoricalCrossentropy().regularization_loss(layer)
    assert loss == pytest.approx(0.1 * np.abs(w).sum() + 0.2 * (w ** 2).sum()
                                 + 0.3 * (layer.biases ** 2).sum())


def test_optimizers_follow_the_books_formulas():
    np.random.seed(2)
    layer = Layer_Dense(3, 2)
    w0 = layer.weights.copy()
    layer.forward(np.random.randn(4, 3))
    layer.backward(np.random.randn(4, 2))
    g = layer.dweights.copy()
    opt = Optimizer_Adam(learning_rate=0.05, decay=5e-5)
    opt.pre_update_params()
    opt.update_params(layer)
    opt.post_update_params()
    m = 0.1 * g / (1 - 0.9)
    c = 0.001 * g * g / (1 - 0.999)
    np.testing.assert_allclose(layer.weights, w0 - 0.05 * m / (np.sqrt(c) + 1e-7))
    assert opt.iterations == 1 and opt.beta_1 == 0.9 and opt.epsilon == 1e-7
    opt.pre_update_params()
    assert opt.current_learning_rate == pytest.approx(0.05 / (1 + 5e-5))
    for cls in (Optimizer_SGD, Optimizer_Adagrad, Optimizer_RMSprop):
        o = cls()
        before = layer.weights.copy()
        o.pre_update_params()
        o.update_params(layer)
        o.post_update_params()
        assert not np.array_equal(before, layer.weights)


def test_softmax_and_loss_match_the_books_results():
    softmax_outputs = np.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])
    class_targets = np.array([0, 1, 1])
    # the book's check: both backward forms give the same dinputs
    fused = Activation_Softmax_Loss_CategoricalCrossentropy()
    fused.backward(softmax_outputs, class_targets)
    act, loss = Activation_Softmax(), Loss_CategoricalCrossentropy()
    loss.backward(softmax_outputs, class_targets)
    act.output = softmax_outputs
    act.backward(loss.dinputs)
    np.testing.assert_allclose(fused.dinputs, act.dinputs, atol=1e-12)
    assert loss.calculate(softmax_outputs, class_targets) == pytest.approx(0.38506088005216804)
    relu = Activation_ReLU()
    relu.forward(np.array([[-1.0, 2.0]]))
    relu.backward(np.array([[5.0, 5.0]]))
    np.testing.assert_array_equal(relu.dinputs, [[0.0, 5.0]])


def test_chapter_15_script_runs_with_the_import_lines_changed():
    ns, text = _run_script(EPOCHS=201, SAMPLES=100)
    lines = text.splitlines()
    assert lines[0].startswith("epoch: 0, acc: ") and "data_loss: " in lines[0]
    assert lines[2].startswith("epoch: 200, acc: ")
    assert lines[-1].startswith("validation, acc: ")
    assert ns["dropout1"].rate == pytest.approx(0.9)
    assert ns["accuracy"] > 0.4                          # three classes: chance is 1/3
    ns2, text2 = _run_script(EPOCHS=201, SAMPLES=100)
    assert text2 == text                                 # nnfs.init() makes the run repeat
