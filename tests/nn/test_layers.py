"""Tests of cydrop.nn.functional and the layers (module, linear, activation, dropout, loss,
container)."""

import numpy as np
import pytest

import cydrop
from cydrop.nn import Dense, Dropout, Linear, ReLU, Sequential, SoftmaxCrossEntropy, mlp
from cydrop.nn import functional as F
from cydrop.nn.gradcheck import eval_numerical_gradient, eval_numerical_gradient_array, rel_error


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------- functional


def test_affine_gradients(rng):
    x = rng.standard_normal((4, 3, 2))
    w = rng.standard_normal((6, 5))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((4, 5))
    out, cache = F.affine_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(4, 6) @ w + b)
    dx, dw, db = F.affine_backward(dout, cache)
    assert dx.shape == x.shape
    num_dx = eval_numerical_gradient_array(lambda v: F.affine_forward(v, w, b)[0], x, dout)
    num_dw = eval_numerical_gradient_array(lambda v: F.affine_forward(x, v, b)[0], w, dout)
    num_db = eval_numerical_gradient_array(lambda v: F.affine_forward(x, w, v)[0], b, dout)
    assert rel_error(dx, num_dx) < 1e-8
    assert rel_error(dw, num_dw) < 1e-8
    assert rel_error(db, num_db) < 1e-8


def test_affine_shape_error_names_x():
    with pytest.raises(ValueError, match=r"x must have 3 features .* got x of shape \(2, 4\)"):
        F.affine_forward(np.ones((2, 4)), np.ones((3, 2)), np.zeros(2))


def test_relu_gradient(rng):
    x = rng.standard_normal((5, 7))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink
    dout = rng.standard_normal(x.shape)
    out, cache = F.relu_forward(x)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
    dx = F.relu_backward(dout, cache)
    num_dx = eval_numerical_gradient_array(lambda v: F.relu_forward(v)[0], x, dout)
    assert rel_error(dx, num_dx) < 1e-9


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_dtype(dtype):
    x = np.array([[-1.0, 2.0]], dtype=dtype)
    out, cache = F.relu_forward(x)
    assert out.dtype == dtype
    assert F.relu_backward(np.ones_like(x), cache).dtype == dtype


def test_softmax_cross_entropy_matches_naive_and_gradient(rng):
    scores = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    loss, d = F.softmax_cross_entropy(scores, y)
    p = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.log(p[np.arange(6), y]).mean(), rel=1e-12)
    num = eval_numerical_gradient(lambda s: F.softmax_cross_entropy(s, y)[0], scores)
    assert rel_error(d, num) < 1e-7


def test_softmax_cross_entropy_is_stable_for_huge_scores():
    scores = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]])
    loss, d = F.softmax_cross_entropy(scores, np.array([2, 1]))
    # row 0: the true class is 2e4 below the max -> loss 2e4; row 1: log 2
    assert loss == pytest.approx((2e4 + np.log(2)) / 2)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-12)


def test_softmax_cross_entropy_one_hot_equals_sparse(rng):
    scores = rng.standard_normal((5, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1, 0])
    a = F.softmax_cross_entropy(scores, y)
    b = F.softmax_cross_entropy(scores, np.eye(3)[y])
    assert a[0] == b[0]
    assert a[1].dtype == np.float32
    np.testing.assert_array_equal(a[1], b[1])


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"y must satisfy 0 <= y < 3, got labels in \[0, 3\]"):
        F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"y must have shape \(2,\)"):
        F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


# ---------------------------------------------------------------- Dense


@pytest.mark.parametrize("init, std", [
    ("he", np.sqrt(2 / 400)),
    ("xavier", np.sqrt(2 / 600)),
    (0.01, 0.01),
])
def test_dense_init_std(init, std):
    layer = Dense(400, 200, init=init, seed=0)
    assert layer.params["W"].std() == pytest.approx(std, rel=0.02)
    assert abs(layer.params["W"].mean()) < 0.05 * std
    np.testing.assert_array_equal(layer.params["b"], 0.0)


def test_dense_is_linear_alias_and_seeded():
    assert Linear is Dense
    np.testing.assert_array_equal(Dense(3, 4, seed=5).params["W"], Dense(3, 4, seed=5).params["W"])
    assert not np.array_equal(Dense(3, 4, seed=5).params["W"], Dense(3, 4, seed=6).params["W"])


@pytest.mark.parametrize("kwargs, msg", [
    ({"init": "glorot"}, r"init must be one of \('he', 'xavier'\) or a float std, got 'glorot'"),
    ({"weight_l2": -1.0}, r"weight_l2 must satisfy 0.0 <= weight_l2, got -1.0"),
    ({"init": float("inf")}, r"init must satisfy 0.0 <= init, got inf"),
])
def test_dense_rejects_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        Dense(3, 4, **kwargs)


@pytest.mark.parametrize("kwargs, msg", [
    ({"dtype": np.int64}, r"dtype must be native float32 or float64, got int64"),
    ({"dtype": ">f8"}, r"dtype must be native float32 or float64, got >f8"),
    ({"weight_l1": "0.1"}, r"weight_l1 must be a real number with 0.0 <= weight_l1, got '0.1' of "
                           r"type str"),
])
def test_dense_rejects_bad_types(kwargs, msg):
    # as in the core: a dtype or a non-number is a TypeError naming the argument
    with pytest.raises(TypeError, match=msg):
        Dense(3, 4, **kwargs)


def test_dense_rejects_bad_size():
    with pytest.raises(ValueError, match=r"n_outputs must be a positive integer, got 0"):
        Dense(3, 0)


def test_dense_regularization_loss_and_gradients(rng):
    layer = Dense(5, 3, init=0.5, weight_l1=0.01, weight_l2=0.02, bias_l1=0.03, bias_l2=0.04,
                  seed=1)
    layer.params["b"][:] = rng.standard_normal(3)
    x = rng.standard_normal((4, 5))
    dout = rng.standard_normal((4, 3))
    w, b = layer.params["W"], layer.params["b"]
    expected = (0.01 * np.abs(w).sum() + 0.02 * (w ** 2).sum() + 0.03 * np.abs(b).sum()
                + 0.04 * (b ** 2).sum())
    assert layer.regularization_loss() == pytest.approx(expected)

    def total(_):
        return float((layer.forward(x) * dout).sum()) + layer.regularization_loss()

    layer.forward(x)
    layer.backward(dout)
    for key in ("W", "b"):
        num = eval_numerical_gradient(total, layer.params[key])
        assert rel_error(layer.grads[key], num) < 1e-7, key


def test_dense_float32_stays_float32():
    layer = Dense(3, 2, dtype=np.float32, seed=0, weight_l2=1e-3)
    x = np.ones((4, 3), dtype=np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and layer.grads["W"].dtype == np.float32


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="Dense.backward called before forward"):
        Dense(2, 2).backward(np.ones((1, 2)))


# ---------------------------------------------------------------- Dropout


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), 10**400])
def test_dropout_rejects_bad_rate(rate):
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1, got"):
        Dropout(rate)


@pytest.mark.parametrize("rate", ["0.5", True, None])
def test_dropout_rejects_a_rate_that_is_not_a_number(rate):
    with pytest.raises(TypeError, match=r"rate must be a real number with 0 <= rate <= 1, got"):
        Dropout(rate)


def test_dropout_repr_and_eval_identity():
    layer = Dropout(0.25, seed=0)
    assert repr(layer) == "Dropout(rate=0.25)"
    x = np.arange(6.0).reshape(2, 3)
    assert layer.eval() is layer
    assert layer.forward(x) is x
    assert layer.backward(x) is x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_dropout_statistics_and_backward(rate, dtype):
    layer = Dropout(rate, seed=42)
    x = np.ones((200, 500), dtype=dtype)
    out = layer.forward(x)
    assert out.dtype == dtype
    kept = out != 0
    n = x.size
    # binomial std of the dropped fraction is sqrt(rate(1-rate)/n) ~ 1e-3; allow 6 sigma
    assert abs((1 - kept.mean()) - rate) < 6 * np.sqrt(rate * (1 - rate) / n) + 2e-5
    scale = out[kept][0]
    assert scale == pytest.approx(1 / (1 - rate), rel=1e-3)
    assert out.mean() == pytest.approx(1.0, abs=0.02)
    dout = np.full_like(x, 2.0)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx != 0, kept)
    np.testing.assert_allclose(dx[kept], 2 * scale, rtol=1e-6)


def test_dropout_fresh_masks_per_call_and_reproducible():
    x = np.ones((64, 64))
    a = Dropout(0.5, seed=7)
    b = Dropout(0.5, seed=7)
    m1, m2 = a.forward(x) != 0, a.forward(x) != 0
    assert not np.array_equal(m1, m2)  # fresh mask per step
    np.testing.assert_array_equal(m1, b.forward(x) != 0)  # same seed, same stream
    np.testing.assert_array_equal(m2, b.forward(x) != 0)
    a.reseed(7)
    np.testing.assert_array_equal(m1, a.forward(x) != 0)
    assert not np.array_equal(m1, Dropout(0.5, seed=8).forward(x) != 0)


def test_dropout_masks_follow_the_seed_stream():
    x = np.ones((10, 30), dtype=np.float32)
    layer = Dropout(0.3, seed=99)
    stream = cydrop.SeedStream(99)
    for _ in range(3):
        seed, offset = stream.next(x.size)
        expected = cydrop.dropout_mask(x.shape, 0.3, seed=seed, offset=offset).astype(bool)
        np.testing.assert_array_equal(layer.forward(x) != 0, expected)


def test_dropout_rate_one_zeros_everything_and_stays_finite():
    layer = Dropout(1.0, seed=0)
    x = np.ones((8, 8))
    out = layer.forward(x)
    np.testing.assert_array_equal(out, 0.0)
    dx = layer.backward(np.ones_like(x))
    assert np.all(np.isfinite(dx)) and np.all(dx == 0)


# ---------------------------------------------------------------- Sequential


def _net(seed=0, dtype=np.float64):
    return Sequential(Dense(4, 16, seed=seed, dtype=dtype), ReLU(), Dropout(0.5, seed=seed + 1),
                      Dense(16, 3, seed=seed + 2, dtype=dtype))


def test_train_eval_reach_every_layer_and_return_self():
    net = _net()
    assert net.eval() is net
    assert [layer.training for layer in net.layers] == [False] * 4
    assert net.train() is net
    assert all(layer.training for layer in net.layers)
    with pytest.raises(TypeError, match=r"mode must be a bool .* got 'yes'"):
        net.train("yes")


def test_sequential_params_are_live_and_settable():
    net = _net()
    assert sorted(net.params) == ["0.W", "0.b", "3.W", "3.b"]
    assert net.params["0.W"] is net.layers[0].params["W"]
    new = {k: np.full_like(v, 0.5) for k, v in net.params.items()}
    net.params = new
    np.testing.assert_array_equal(net.layers[3].params["b"], 0.5)
    with pytest.raises(KeyError, match="unknown keys"):
        net.params = {"9.W": np.zeros(1)}


def test_sequential_n_threads_passed_down():
    net = _net()
    net.n_threads = 1
    assert all(layer.n_threads == 1 for layer in net.layers)
    assert Sequential(Dropout(0.1), n_threads=2).layers[0].n_threads == 2


def test_sequential_rejects_non_modules():
    with pytest.raises(TypeError, match=r"layers\[1\] must be a cydrop.nn Module, got function"):
        Sequential(ReLU(), lambda x: x)


def test_predict_uses_eval_mode_and_restores_it(rng):
    net = _net().train()
    X = rng.standard_normal((50, 4))
    p1 = net.predict(X)
    assert net.training and all(layer.training for layer in net.layers)
    np.testing.assert_array_equal(p1, net.predict(X, batch_size=7))  # deterministic: no dropout
    np.testing.assert_array_equal(p1, net.eval().forward(X).argmax(axis=1))


@pytest.mark.parametrize("rates", [0.0, 0.3])
def test_sequential_whole_net_gradient(rng, rates):
    net = mlp(5, [12, 9], 4, rates=rates, weight_l2=1e-2, bias_l2=1e-2, seed=3)
    for v in net.params.values():
        if v.ndim == 1:
            v[:] = rng.standard_normal(v.shape) * 0.1
    X = rng.standard_normal((6, 5))
    y = rng.integers(0, 4, 6)
    net.reseed(11)
    loss, grads = net.loss(X, y)
    grads = {k: v.copy() for k, v in grads.items()}

    def f(_):
        net.reseed(11)  # replay the same masks for every evaluation
        return net.loss(X, y)[0]

    for key, value in net.params.items():
        assert rel_error(grads[key], eval_numerical_gradient(f, value)) < 1e-6, key


def test_softmax_cross_entropy_layer():
    crit = SoftmaxCrossEntropy()
    with pytest.raises(RuntimeError, match="before forward"):
        crit.backward()
    loss = crit(np.zeros((2, 5)), np.array([1, 2]))
    assert loss == pytest.approx(np.log(5))
    np.testing.assert_allclose(crit.backward(2.0),
                               2 * F.softmax_cross_entropy(np.zeros((2, 5)), [1, 2])[1])


@pytest.mark.parametrize("name", ["cydrop.nn.functional", "cydrop.nn.linear",
                                  "cydrop.nn.activation", "cydrop.nn.dropout", "cydrop.nn.loss",
                                  "cydrop.nn.container",
                                  "cydrop.nn.fuse", "cydrop.nn.mc", "cydrop.nn.optim",
                                  "cydrop.nn.models", "cydrop.nn.solver", "cydrop.nn.gradcheck",
                                  "cydrop.nn.progress", "cydrop.apps.data",
                                  "cydrop.apps.report"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("old, new", [("cydrop.nn.layers", "cydrop.nn"),
                                      ("cydrop.data", "cydrop.apps.data"),
                                      ("cydrop.experiments", "cydrop.apps.experiments"),
                                      ("cydrop.cli", "cydrop.apps.cli")])
def test_moved_modules_are_deprecated_aliases(old, new):
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.deprecated_call(match=f"{old} is deprecated"):
        alias = importlib.import_module(old)
    target = importlib.import_module(new)
    for name in alias.__all__:
        assert getattr(alias, name) is getattr(target, name, None) or name in (
            "format_table", "require_matplotlib", "MissingExtraError"), name
