"""Tests of cydrop.nn.optim."""

import numpy as np
import pytest

from cydrop.nn import SGD, Adam, make_optimizer, optim


def test_sgd_step_is_exact():
    p = {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}
    SGD(learning_rate=0.1).step(p, {"w": np.array([10.0, 20.0]), "b": np.array([-5.0])})
    np.testing.assert_allclose(p["w"], [0.0, -4.0])
    np.testing.assert_allclose(p["b"], [1.0])


def test_sgd_momentum_two_steps():
    p = {"w": np.array([0.0])}
    opt = SGD(learning_rate=0.1, momentum=0.9)
    g = {"w": np.array([1.0])}
    opt.step(p, g)  # v = -0.1
    opt.step(p, g)  # v = 0.9 * -0.1 - 0.1 = -0.19
    np.testing.assert_allclose(p["w"], [-0.29])
    np.testing.assert_allclose(opt.state["w"], [-0.19])


def test_nnfs_decay_schedule():
    opt = SGD(learning_rate=1.0, decay=0.1)
    p, g = {"w": np.zeros(1)}, {"w": np.ones(1)}
    lrs = []
    for _ in range(4):
        opt.pre_update_params()
        lrs.append(opt.current_learning_rate)
        opt.update_params(p, g)
        opt.post_update_params()
    np.testing.assert_allclose(lrs, [1 / (1 + 0.1 * t) for t in range(4)])
    np.testing.assert_allclose(p["w"], [-sum(lrs)])
    assert opt.iterations == 4


def test_adam_matches_cs231n_rule():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4))
    p = {"w": w0.copy()}
    opt = Adam(learning_rate=1e-2, epsilon=1e-8)
    ref_w, config = w0.copy(), {"learning_rate": 1e-2}
    for _ in range(5):
        dw = rng.standard_normal((3, 4))
        opt.step(p, {"w": dw})
        ref_w, config = optim.adam(ref_w, dw, config)
    np.testing.assert_allclose(p["w"], ref_w, rtol=1e-12, atol=1e-14)
    assert config["t"] == 5 and opt.iterations == 5


def test_adam_first_step_moves_by_lr():
    p = {"w": np.zeros(3)}
    Adam(learning_rate=0.05).step(p, {"w": np.array([3.0, -1e-3, 100.0])})
    np.testing.assert_allclose(p["w"], [-0.05, 0.05, -0.05], rtol=1e-4)


@pytest.mark.parametrize("make", [
    lambda: SGD(0.1),
    lambda: SGD(0.1, momentum=0.9),
    lambda: Adam(0.1),
])
def test_updates_keep_float32(make):
    p = {"w": np.ones((2, 2), dtype=np.float32)}
    opt = make()
    for _ in range(2):
        opt.step(p, {"w": np.ones((2, 2), dtype=np.float32)})
    assert p["w"].dtype == np.float32
    assert np.all(p["w"] < 1)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_optimizers_minimise_a_quadratic(name):
    target = np.array([3.0, -2.0, 0.5])
    p = {"w": np.zeros(3)}
    lr = {"sgd": 0.1, "momentum": 0.05, "adam": 0.1}[name]
    opt = make_optimizer(name, learning_rate=lr)
    for _ in range(500):
        opt.step(p, {"w": 2 * (p["w"] - target)})
    np.testing.assert_allclose(p["w"], target, atol=1e-3)


def test_make_optimizer_names():
    assert make_optimizer("momentum").momentum == 0.9
    assert make_optimizer("sgd_momentum", momentum=0.5).momentum == 0.5
    assert isinstance(make_optimizer("adam"), Adam)
    with pytest.raises(ValueError, match=r"optimizer must be one of "
                                         r"\('sgd', 'momentum', 'adam'\), got 'rmsprop'"):
        make_optimizer("rmsprop")


@pytest.mark.parametrize("make, msg", [
    (lambda: SGD(learning_rate=0), r"learning_rate must satisfy 0.0 < learning_rate, got 0"),
    (lambda: SGD(momentum=1.0), r"momentum must satisfy 0.0 <= momentum < 1.0, got 1.0"),
    (lambda: Adam(decay=-1), r"decay must satisfy 0.0 <= decay, got -1"),
    (lambda: Adam(beta2=1.5), r"beta2 must satisfy 0.0 <= beta2 < 1.0, got 1.5"),
])
def test_bad_hyperparameters_are_named(make, msg):
    with pytest.raises(ValueError, match=msg):
        make()


def test_missing_gradient_is_named():
    with pytest.raises(KeyError, match="grads has no entry for parameter 'b'"):
        SGD().step({"w": np.zeros(1), "b": np.zeros(1)}, {"w": np.zeros(1)})


def test_cs231n_rules():
    w, dw = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    nw, cfg = optim.sgd(w, dw)
    np.testing.assert_allclose(nw, w - 1e-2 * dw)
    nw, cfg = optim.sgd_momentum(w, dw, {"learning_rate": 0.1, "momentum": 0.5})
    nw, cfg = optim.sgd_momentum(nw, dw, cfg)
    np.testing.assert_allclose(cfg["velocity"], 0.5 * (-0.1 * dw) - 0.1 * dw)
    np.testing.assert_allclose(nw, w - 0.1 * dw + cfg["velocity"])
