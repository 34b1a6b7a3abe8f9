"""Tests of cydrop.nn.models: FullyConnectedNet (CS231n's contract) and mlp."""

import numpy as np
import pytest

from cydrop.nn import FullyConnectedNet, Solver, mlp
from cydrop.nn.gradcheck import eval_numerical_gradient, rel_error

N, D, H1, H2, C = 2, 15, 20, 30, 10


@pytest.mark.parametrize("keep", [1, 0.75, 0.5])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_whole_net_gradient_check(keep, reg):
    """The CS231n notebook's check, with dropout masks replayed per evaluation.

    weight_scale 0.2 (CS231n: 5e-2) keeps every gradient entry well above the
    ~1e-11 round-off of a centred difference, so the element-wise relative
    error measures the backward pass, not the noise floor.
    """
    rng = np.random.default_rng(231)
    X = rng.standard_normal((N, D))
    y = rng.integers(C, size=N)
    model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, dropout_keep_ratio=keep,
                              reg=reg, weight_scale=0.2, dtype=np.float64, seed=123)
    # non-zero biases keep every ReLU input off the kink (an all-dropped row would sit on it)
    for k, v in model.params.items():
        if k.startswith("b"):
            v[:] = rng.standard_normal(v.shape) * 0.05
    model.reseed(7)
    loss, grads = model.loss(X, y)
    assert np.isfinite(loss)
    assert model.rate == pytest.approx(1 - keep)

    def f(_):
        model.reseed(7)
        return model.loss(X, y)[0]

    for name in sorted(model.params):
        err = rel_error(eval_numerical_gradient(f, model.params[name], h=1e-5), grads[name])
        assert err <= 1e-6, f"{name}: {err:.2e}"


def test_initial_loss_is_log_c():
    model = FullyConnectedNet([50], input_dim=20, num_classes=C, weight_scale=1e-3,
                              dtype=np.float64, seed=0)
    X = np.random.default_rng(0).standard_normal((200, 20))
    loss, _ = model.loss(X, np.arange(200) % C)
    assert loss == pytest.approx(np.log(C), abs=1e-3)


def test_test_mode_has_no_dropout_and_train_mode_does():
    model = FullyConnectedNet([100], input_dim=8, num_classes=3, dropout_keep_ratio=0.5,
                              dtype=np.float64, seed=1)
    X = np.random.default_rng(1).standard_normal((30, 8))
    np.testing.assert_array_equal(model.loss(X), model.loss(X))  # test mode: deterministic
    y = np.zeros(30, dtype=int)
    g1 = model.loss(X, y)[1]["W1"]
    g2 = model.loss(X, y)[1]["W1"]
    assert not np.array_equal(g1, g2)  # a fresh mask each training call


def test_dtype_is_kept():
    model = FullyConnectedNet([10], input_dim=4, num_classes=3, dropout_keep_ratio=0.5, seed=0)
    assert all(v.dtype == np.float32 for v in model.params.values())
    loss, grads = model.loss(np.ones((5, 4)), np.zeros(5, dtype=int))
    assert all(g.dtype == np.float32 for g in grads.values())
    assert model.loss(np.ones((5, 4))).dtype == np.float32


@pytest.mark.parametrize("keep, exc", [(0, ValueError), (1.5, ValueError), (-0.2, ValueError),
                                       (10**400, ValueError), (True, TypeError),
                                       ("0.5", TypeError)])
def test_bad_keep_ratio_is_named(keep, exc):
    with pytest.raises(exc, match=r"dropout_keep_ratio must satisfy 0 < dropout_keep_ratio <= 1"):
        FullyConnectedNet([10], input_dim=4, num_classes=3, dropout_keep_ratio=keep)


def test_bad_sizes_and_reg():
    with pytest.raises(ValueError, match="positive integers"):
        FullyConnectedNet([0], input_dim=4)
    with pytest.raises(ValueError, match=r"reg must be a real number >= 0, got -1"):
        FullyConnectedNet([3], input_dim=4, reg=-1)


def _train(seed, keep=0.5, epochs=3):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    data = {"X_train": X[:200], "y_train": y[:200], "X_val": X[200:], "y_val": y[200:]}
    model = FullyConnectedNet([64, 64], input_dim=10, num_classes=2, dropout_keep_ratio=keep,
                              seed=seed)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    batch_size=32, num_epochs=epochs, seed=seed, verbose=False)
    solver.train()
    return model, solver


def test_same_seed_is_a_bit_identical_training_run():
    m1, s1 = _train(seed=11)
    m2, s2 = _train(seed=11)
    assert s1.loss_history == s2.loss_history
    for k in m1.params:
        np.testing.assert_array_equal(m1.params[k], m2.params[k])
    m3, s3 = _train(seed=12)
    assert s1.loss_history != s3.loss_history


def test_mlp_builder():
    net = mlp(4, [8, 8, 8], 2, rates=[0.1, 0.0, 0.5], seed=0)
    names = [type(layer).__name__ for layer in net.layers]
    assert names == ["Dense", "ReLU", "Dropout", "Dense", "ReLU", "Dense", "ReLU", "Dropout",
                     "Dense"]
    assert [d.rate for d in net.dropout_layers()] == [0.1, 0.5]
    with pytest.raises(ValueError,
                       match=r"rates must have one value per hidden layer \(3\), got 2"):
        mlp(4, [8, 8, 8], 2, rates=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1, got 2"):
        mlp(4, [8], 2, rates=2)
    a, b = mlp(4, [8], 2, rates=0.5, seed=3), mlp(4, [8], 2, rates=0.5, seed=3)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
