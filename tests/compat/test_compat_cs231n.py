"""cydrop.compat.cs231n against CS231n assignment 2's published contracts and notebook numbers.

The Dropout notebook's cells run from tests/course_scripts/cs231n_dropout.py (re-typed, only the
import lines changed, synthetic data of CIFAR-10's shape, a smaller hidden layer).
"""

import contextlib
import io
import os
import pickle
import runpy

import numpy as np
import pytest

import cydrop
from cydrop.compat.cs231n import gradient_check, layers, optim
from cydrop.compat.cs231n.classifiers.fc_net import FullyConnectedNet
from cydrop.compat.cs231n.layer_utils import affine_relu_backward, affine_relu_forward
from cydrop.compat.cs231n.solver import Solver

SCRIPTS = os.path.join(os.path.dirname(__file__), "course_scripts")


def rel_error(x, y):
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


def _state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


@pytest.fixture(scope="module")
def notebook():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns = runpy.run_path(os.path.join(SCRIPTS, "cs231n_dropout.py"),
                            init_globals={"HIDDEN": 20})
    ns["stdout"] = out.getvalue()
    return ns


# ------------------------------------------------------------------ the notebook, cell by cell

def test_notebook_forward_cell(notebook):
    for p, mean_train, mean_test, zero_train, zero_test in notebook["forward_stats"]:
        # "Mean of train-time output" ~ 10: within 5 standard errors of the mean
        sd = np.sqrt((101 / p - 100) / 250_000)
        assert abs(mean_train - 10) < 5 * sd
        assert abs(mean_test - 10) < 0.01
        assert abs(zero_train - (1 - p)) < 0.005      # "Fraction ... set to zero" ~ 1 - p
        assert zero_test == 0


def test_notebook_backward_cell(notebook):
    assert notebook["backward_error"] < 1e-10           # "around e-10 or less"


def test_notebook_whole_net_gradient_check(notebook):
    g = notebook["gradcheck"]
    # keep = 1: no dropout, the weights are np.random.randn's after np.random.seed(231): the
    # notebook's own "Initial loss:  2.3004790897684924"
    assert g[(1, "loss")] == pytest.approx(2.3004790897684924, rel=1e-12)
    assert g[(1, "W2")] < 1e-4                          # "W2 error on the order of e-5" is fine
    for keep in (0.75, 0.5):
        assert 2.0 < g[(keep, "loss")] < 2.6
        # "Relative errors should be around e-6 or less" (1.0 when masks change per call)
        for name in ("W1", "W2", "W3"):
            assert g[(keep, name)] < 1e-5, (keep, name, g[(keep, name)])
        for name in ("b1", "b2", "b3"):
            assert g[(keep, name)] < 1e-6, (keep, name, g[(keep, name)])
        assert np.median([g[(keep, n)] for n in ("W1", "W2", "W3", "b1", "b2", "b3")]) < 1e-6


def test_notebook_regularization_cell(notebook):
    lines = notebook["stdout"].splitlines()
    assert "X_train: (500, 3, 32, 32)" in lines
    for keep in (1, 0.25):
        s = notebook["solvers"][keep]
        assert len(s.loss_history) == 125                       # 25 epochs x 500 // 100
        assert len(s.train_acc_history) == len(s.val_acc_history) == 26
        assert s.model.params is s.best_params
        assert s.best_val_acc == max(s.val_acc_history)
    it_lines = [l.split(")")[0] + ")" for l in lines if l.startswith("(Iteration")]
    assert it_lines == ["(Iteration 1 / 125)", "(Iteration 101 / 125)"] * 2
    epochs = [l.split(")")[0] + ")" for l in lines if l.startswith("(Epoch")]
    assert epochs[:2] == ["(Epoch 0 / 25)", "(Epoch 1 / 25)"] and epochs[25] == "(Epoch 25 / 25)"
    assert any(l.startswith("(Epoch 0 / 25) train acc: ") and "; val_acc: " in l for l in lines)
    assert len(notebook["train_accs"]) == len(notebook["val_accs"]) == 2


# ------------------------------------------------------------------ dropout and its cache

def test_cache_unpacks_as_the_course_documents():
    x = np.random.default_rng(0).standard_normal((40, 30)).astype(np.float32)
    param = {"mode": "train", "p": 0.75, "seed": 7}
    out, cache = layers.dropout_forward(x, param)
    assert cache.stored_mask is None and cache.nbytes == 0       # O(1) until asked
    dropout_param, mask = cache
    assert dropout_param is param
    assert mask.shape == x.shape and mask.dtype == x.dtype
    assert set(np.unique(mask).tolist()) <= {0.0, np.float32(1 / 0.75)}
    np.testing.assert_array_equal(out, x * mask)
    np.testing.assert_array_equal(layers.dropout_backward(np.ones_like(x), cache), mask)
    assert len(cache) == 2 and cache[0] is param
    np.testing.assert_array_equal(cache[-1], mask)
    with pytest.raises(IndexError, match="unpacks as"):
        cache[2]
    again = pickle.loads(pickle.dumps(cache))
    assert again.dropout_param == param
    np.testing.assert_array_equal(again[1], mask)


def test_test_mode_cache_unpacks_to_param_and_none():
    param = {"mode": "test", "p": 0.5}
    x = np.ones(5)
    out, cache = layers.dropout_forward(x, param)
    assert out is x
    dropout_param, mask = cache
    assert dropout_param is param and mask is None


def test_rate_api_cache_unpacks_to_a_rebuilt_param():
    _, cache = cydrop.dropout(np.ones(100), 0.25, seed=3)
    dropout_param, mask = cache
    assert dropout_param == {"mode": "train", "p": 0.75, "seed": 3}
    assert set(np.unique(mask).tolist()) <= {0.0, cache.scale}


def test_seeded_call_same_mask_and_global_state_untouched():
    x = np.ones(10_000)
    before = np.random.get_state()
    a, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 123})
    b, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 123})
    np.testing.assert_array_equal(a, b)
    assert _state_equal(before, np.random.get_state())       # never reseeded, never advanced


def test_unseeded_call_makes_one_draw_from_numpy_global_state():
    x = np.ones(10_000)
    np.random.seed(231)
    a, ca = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5})
    after_a = np.random.get_state()
    np.random.seed(231)
    expected_seed = int(np.random.randint(0, 2**64, dtype=np.uint64))
    assert ca.seed == expected_seed
    assert _state_equal(after_a, np.random.get_state())       # exactly one draw
    np.random.seed(231)
    b, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(a, b)                       # np.random.seed repeats runs
    c, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5})
    assert (a != c).any()
    state = np.random.get_state()
    layers.dropout_forward(x, {"mode": "test", "p": 0.5})      # test mode draws nothing
    assert _state_equal(state, np.random.get_state())


def test_cydrop_own_api_stays_free_of_global_state():
    state = np.random.get_state()
    cydrop.dropout(np.ones(100), 0.5)
    cydrop.nn.Dropout(0.5).forward(np.ones(100))
    assert _state_equal(state, np.random.get_state())


@pytest.mark.parametrize("param, exc, match", [
    ({"mode": "train", "p": 1.5}, ValueError,
     r"dropout_param\['p'\] must satisfy 0 <= .* got 1\.5"),
    ({"mode": "eval", "p": 0.5}, ValueError, r"Invalid forward dropout mode 'eval'"),
    ({"mode": "train", "p": 0.5, "seed": -1}, ValueError, r"seed must satisfy .* got -1"),
])
def test_bad_dropout_param_same_errors_as_core(param, exc, match):
    with pytest.raises(exc, match=match):
        layers.dropout_forward(np.ones(4), param)


def test_bad_x_is_refused_before_any_draw():
    state = np.random.get_state()
    with pytest.raises(TypeError, match=r"x has dtype int64; only float32 and float64"):
        layers.dropout_forward(np.arange(4), {"mode": "train", "p": 0.5})
    assert _state_equal(state, np.random.get_state())


# ------------------------------------------------------------------ FullyConnectedNet

def test_course_signature_positional_order_and_dropout_param():
    np.random.seed(0)
    net = FullyConnectedNet([7, 6], 5, 4, 0.5, "layernorm", 0.1, 1e-1, np.float64, 3)
    assert net.normalization == "layernorm" and net.reg == 0.1 and net.dtype == np.float64
    assert net.dropout_param == {"mode": "train", "p": 0.5, "seed": 3}
    assert sorted(net.params) == sorted(["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2",
                                         "beta2", "W3", "b3"])
    assert net.params["W1"].std() == pytest.approx(0.1, rel=0.5)
    net.loss(np.ones((2, 5)))
    assert net.dropout_param["mode"] == "test"
    assert FullyConnectedNet([3], input_dim=2).dropout_param == {}


def test_weights_come_from_numpy_global_state():
    np.random.seed(5)
    a = FullyConnectedNet([4], input_dim=3, num_classes=2)
    np.random.seed(5)
    b = FullyConnectedNet([4], input_dim=3, num_classes=2)
    np.random.seed(5)
    w1 = (1e-2 * np.random.randn(3, 4)).astype(np.float32)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    np.testing.assert_array_equal(a.params["W1"], w1)
    assert a.params["W1"].dtype == np.float32


def test_seed_fixes_the_mask_for_every_loss_call_without_seed_fresh():
    np.random.seed(1)
    X = np.random.randn(8, 6)
    y = np.random.randint(3, size=8)
    net = FullyConnectedNet([30], input_dim=6, num_classes=3, dropout_keep_ratio=0.5,
                            dtype=np.float64, seed=123)
    assert net.loss(X, y)[0] == net.loss(X, y)[0]
    free = FullyConnectedNet([30], input_dim=6, num_classes=3, dropout_keep_ratio=0.5,
                             dtype=np.float64)
    assert free.loss(X, y)[0] != free.loss(X, y)[0]


@pytest.mark.parametrize("normalization", ["batchnorm", "layernorm"])
def test_normalized_net_gradient_check(normalization):
    np.random.seed(231)
    N, D, H1, H2, C = 10, 8, 12, 9, 5
    X = np.random.randn(N, D)
    y = np.random.randint(C, size=(N,))
    for reg in (0.0, 3.14):
        model = FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, reg=reg,
                                  weight_scale=5e-2, dtype=np.float64,
                                  normalization=normalization, dropout_keep_ratio=0.75, seed=7)
        loss, grads = model.loss(X, y)
        for name in sorted(grads):
            f = lambda _, model=model: model.loss(X, y)[0]
            num = gradient_check.eval_numerical_gradient(f, model.params[name], verbose=False)
            if normalization == "batchnorm" and name in ("b1", "b2"):
                # a bias before batch normalisation has no effect: both gradients ~0
                assert np.abs(num).max() < 1e-8 and np.abs(grads[name]).max() < 1e-12
                continue
            assert rel_error(num, grads[name]) < 1e-4, (normalization, reg, name)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"dropout_keep_ratio": 0}, ValueError, r"0 < dropout_keep_ratio <= 1, got 0"),
    ({"dropout_keep_ratio": 1.5}, ValueError, r"dropout_keep_ratio .* got 1\.5"),
    ({"dropout_keep_ratio": "a"}, TypeError, r"dropout_keep_ratio"),
    ({"normalization": "groupnorm"}, ValueError, r"normalization must be one of .* 'groupnorm'"),
    ({"reg": -1}, ValueError, r"reg must be a real number >= 0, got -1"),
    ({"dtype": np.int32}, ValueError, r"dtype must be float32 or float64"),
    ({"seed": -3}, ValueError, r"seed must satisfy 0 <= seed < 2\*\*64, got -3"),
    ({"weight_scale": -1.0}, ValueError, r"weight_scale must satisfy 0.0 <= weight_scale"),
])
def test_bad_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        FullyConnectedNet([3], input_dim=2, **kwargs)


# ------------------------------------------------------------------ layers

def test_batchnorm_forward_train_and_test():
    np.random.seed(231)
    N, D1, D2, D3 = 200, 50, 60, 3
    X = np.random.randn(N, D1)
    W1 = np.random.randn(D1, D2)
    W2 = np.random.randn(D2, D3)
    a = np.maximum(0, X.dot(W1)).dot(W2)
    gamma, beta = np.asarray([1.0, 2.0, 3.0]), np.asarray([11.0, 12.0, 13.0])
    out, _ = layers.batchnorm_forward(a, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-8)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-4)
    bn_param = {"mode": "train"}
    for _ in range(50):
        a = np.maximum(0, np.random.randn(N, D1).dot(W1)).dot(W2)
        layers.batchnorm_forward(a, gamma, beta, bn_param)
    bn_param["mode"] = "test"
    a = np.maximum(0, np.random.randn(N, D1).dot(W1)).dot(W2)
    out, _ = layers.batchnorm_forward(a, gamma, beta, bn_param)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=0.3 * gamma.max())
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=0.2)


@pytest.mark.parametrize("which", ["batchnorm", "layernorm"])
def test_norm_backward_gradient_check(which):
    np.random.seed(231)
    N, D = 4, 5
    x = 5 * np.random.randn(N, D) + 12
    gamma, beta = np.random.randn(D), np.random.randn(D)
    dout = np.random.randn(N, D)
    fwd = layers.batchnorm_forward if which == "batchnorm" else layers.layernorm_forward
    bwd = layers.batchnorm_backward if which == "batchnorm" else layers.layernorm_backward
    param = {"mode": "train"}
    fx = lambda v: fwd(v, gamma, beta, param)[0]
    fg = lambda v: fwd(x, v, beta, param)[0]
    fb = lambda v: fwd(x, gamma, v, param)[0]
    dx_num = gradient_check.eval_numerical_gradient_array(fx, x, dout)
    dg_num = gradient_check.eval_numerical_gradient_array(fg, gamma.copy(), dout)
    db_num = gradient_check.eval_numerical_gradient_array(fb, beta.copy(), dout)
    _, cache = fwd(x, gamma, beta, param)
    dx, dgamma, dbeta = bwd(dout, cache)
    assert rel_error(dx_num, dx) < 1e-7
    assert rel_error(dg_num, dgamma) < 1e-7
    assert rel_error(db_num, dbeta) < 1e-7


def test_affine_relu_softmax_svm_helpers():
    np.random.seed(231)
    x, w, b = np.random.randn(3, 2, 4), np.random.randn(8, 5), np.random.randn(5)
    dout = np.random.randn(3, 5)
    out, cache = affine_relu_forward(x, w, b)
    dx, dw, db = affine_relu_backward(dout, cache)
    dx_num = gradient_check.eval_numerical_gradient_array(
        lambda v: affine_relu_forward(v, w, b)[0], x, dout)
    assert dx.shape == x.shape and rel_error(dx, dx_num) < 1e-8
    scores, y = 0.001 * np.random.randn(50, 10), np.random.randint(10, size=50)
    loss, dx = layers.softmax_loss(scores, y)
    assert loss == pytest.approx(np.log(10), abs=0.01)                 # the notebook: ~2.3
    num = gradient_check.eval_numerical_gradient(lambda v: layers.softmax_loss(v, y)[0],
                                                 scores, verbose=False)
    assert rel_error(num, dx) < 1e-7
    loss, dx = layers.svm_loss(scores, y)
    assert loss == pytest.approx(9, abs=0.1)                           # the notebook: ~9
    num = gradient_check.eval_numerical_gradient(lambda v: layers.svm_loss(v, y)[0],
                                                 scores, verbose=False)
    assert rel_error(num, dx) < 1e-8


def test_layer_errors_name_the_argument():
    g, b = np.ones(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"Invalid forward batchnorm mode 'eval'"):
        layers.batchnorm_forward(np.ones((2, 3)), g, b, {"mode": "eval"})
    with pytest.raises(ValueError, match=r"bn_param\['eps'\] must satisfy 0.0 < "):
        layers.batchnorm_forward(np.ones((2, 3)), g, b, {"mode": "train", "eps": -1})
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\)"):
        layers.layernorm_forward(np.ones((2, 4)), g, np.zeros(4), {})
    with pytest.raises(TypeError, match=r"x has dtype int64"):
        layers.relu_forward(np.arange(3))


# ------------------------------------------------------------------ optim: the notebook's values

def _lin(a, b, N=4, D=5):
    return np.linspace(a, b, num=N * D).reshape(N, D)


def test_adam_matches_the_notebook():
    w, dw, m, v = _lin(-0.4, 0.6), _lin(-0.6, 0.4), _lin(0.6, 0.9), _lin(0.7, 0.5)
    config = {"learning_rate": 1e-2, "m": m, "v": v, "t": 5}
    next_w, config = optim.adam(w, dw, config=config)
    expected_next_w = np.asarray([
        [-0.40094747, -0.34836187, -0.29577703, -0.24319299, -0.19060977],
        [-0.1380274, -0.08544591, -0.03286534, 0.01971428, 0.0722929],
        [0.1248705, 0.17744702, 0.23002243, 0.28259667, 0.33516969],
        [0.38774145, 0.44031188, 0.49288093, 0.54544852, 0.59801459]])
    assert rel_error(expected_next_w, next_w) < 5e-7       # 8 published digits
    assert config["v"][0, 0] == pytest.approx(0.69966) and config["m"][0, 0] == pytest.approx(0.48)
    assert config["t"] == 6
    _, defaults = optim.adam(np.zeros(2), np.ones(2))
    assert {k: defaults[k] for k in ("learning_rate", "beta1", "beta2", "epsilon", "t")} == {
        "learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "t": 1}


def test_rmsprop_and_sgd_momentum_match_the_notebook():
    w, dw = _lin(-0.4, 0.6), _lin(-0.6, 0.4)
    next_w, config = optim.rmsprop(w, dw, {"learning_rate": 1e-2, "cache": _lin(0.6, 0.9)})
    assert rel_error(next_w[0], np.array([-0.39223849, -0.34037513, -0.28849239, -0.23659121,
                                          -0.18467247])) < 1e-7
    assert rel_error(config["cache"][-1], np.array([0.82883269, 0.84469141, 0.86060554,
                                                    0.87657507, 0.8926])) < 1e-7
    next_w, config = optim.sgd_momentum(w, dw, {"learning_rate": 1e-3,
                                                "velocity": _lin(0.6, 0.9)})
    assert rel_error(next_w[0], np.array([0.1406, 0.20738947, 0.27417895, 0.34096842,
                                          0.40775789])) < 1e-7
    assert config["momentum"] == 0.9 and config["velocity"][0, 0] == pytest.approx(0.5406)
    _, c = optim.sgd(w, dw)
    assert c == {"learning_rate": 1e-2}


# ------------------------------------------------------------------ gradient_check

def test_eval_numerical_gradient_course_signature(capsys):
    x = np.array([1.0, -2.0])
    g = gradient_check.eval_numerical_gradient(lambda v: float((v ** 2).sum()), x, False, 1e-5)
    np.testing.assert_allclose(g, [2.0, -4.0])
    assert capsys.readouterr().out == ""
    gradient_check.eval_numerical_gradient(lambda v: float((v ** 2).sum()), x)
    assert capsys.readouterr().out.splitlines()[0].startswith("(0,) 2.0")   # verbose=True
    errs = gradient_check.grad_check_sparse(lambda v: float((v ** 2).sum()), x, 2 * x,
                                            num_checks=3)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[0].startswith("numerical: ")
    assert "relative error: " in lines[0] and max(errs) < 1e-8


# ------------------------------------------------------------------ Solver bookkeeping

def _data(n_train=250, n_val=50, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_train + n_val, d))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)
    return {"X_train": X[:n_train], "y_train": y[:n_train], "X_val": X[n_train:],
            "y_val": y[n_train:]}


class _Linear:
    def __init__(self, d=6, c=3):
        self.params = {"W": np.zeros((d, c)), "b": np.zeros(c)}

    def loss(self, X, y=None):
        s = X @ self.params["W"] + self.params["b"]
        if y is None:
            return s
        loss, ds = layers.softmax_loss(s, y)
        return loss, {"W": X.T @ ds, "b": ds.sum(0)}


def test_iterations_histories_and_log_lines():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        s = Solver(_Linear(), _data(), num_epochs=3, batch_size=100, print_every=2,
                   optim_config={"learning_rate": 0.5})
        s.train()
    # 250 // 100 = 2 iterations per epoch (the course rounds down), 6 in all
    assert len(s.loss_history) == 6
    assert len(s.train_acc_history) == len(s.val_acc_history) == 4
    lines = out.getvalue().splitlines()
    assert [l.split(")")[0] for l in lines if l.startswith("(Iteration")] == [
        "(Iteration 1 / 6", "(Iteration 3 / 6", "(Iteration 5 / 6"]
    assert [l.split(")")[0] for l in lines if l.startswith("(Epoch")] == [
        "(Epoch 0 / 3", "(Epoch 1 / 3", "(Epoch 2 / 3", "(Epoch 3 / 3"]


def test_minibatches_from_numpy_global_state():
    def run():
        s = Solver(_Linear(), _data(), num_epochs=2, batch_size=50, verbose=False,
                   num_train_samples=100)
        s.train()
        return s.loss_history, s.train_acc_history

    np.random.seed(231)
    a = run()
    np.random.seed(231)
    b = run()
    assert a == b
    np.random.seed(0)
    idx = np.random.choice(250, 50)          # the first minibatch is np.random.choice's
    np.random.seed(0)
    model = _Linear()
    s = Solver(model, _data(), num_epochs=1, batch_size=50, verbose=False)
    first = {}
    orig = model.loss

    def spy(X, y=None):
        if y is not None and not first:
            first["X"] = X.copy()
        return orig(X, y)

    model.loss = spy
    s.train()
    np.testing.assert_array_equal(first["X"], _data()["X_train"][idx])


def test_update_rules_lr_decay_and_best_params():
    s = Solver(_Linear(), _data(), update_rule="sgd_momentum", num_epochs=3, batch_size=50,
               lr_decay=0.5, optim_config={"learning_rate": 0.1}, verbose=False)
    s.train()
    assert set(s.optim_configs) == {"W", "b"}
    for config in s.optim_configs.values():
        assert config["learning_rate"] == pytest.approx(0.1 * 0.5 ** 3)
        assert config["momentum"] == 0.9 and "velocity" in config
    assert s.optim_config == {"learning_rate": 0.1}             # the template stays untouched
    assert s.model.params is s.best_params
    assert s.check_accuracy(s.X_val, s.y_val) == s.best_val_acc
    for rule in ("sgd", "rmsprop", "adam"):
        Solver(_Linear(), _data(), update_rule=rule, num_epochs=1, verbose=False).train()


def test_checkpoints_are_pickled_per_epoch(tmp_path):
    name = str(tmp_path / "ck")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        s = Solver(_Linear(), _data(), num_epochs=2, batch_size=100, checkpoint_name=name,
                   num_val_samples=20)
        s.train()
    files = sorted(os.listdir(tmp_path))
    assert files == ["ck_epoch_0.pkl", "ck_epoch_1.pkl", "ck_epoch_2.pkl"]
    assert f'Saving checkpoint to "{name}_epoch_2.pkl"' in out.getvalue()
    with open(tmp_path / "ck_epoch_2.pkl", "rb") as f:
        ck = pickle.load(f)
    assert set(ck) == {"model", "update_rule", "lr_decay", "optim_config", "batch_size",
                       "num_train_samples", "num_val_samples", "epoch", "loss_history",
                       "train_acc_history", "val_acc_history"}
    assert ck["epoch"] == 2 and ck["update_rule"] is optim.sgd and len(ck["loss_history"]) == 4
    assert ck["num_val_samples"] == 20


def test_one_iteration_per_epoch():
    s = Solver(_Linear(), _data(n_train=30), num_epochs=4, batch_size=100, verbose=False)
    s.train()
    assert len(s.loss_history) == 4 and len(s.val_acc_history) == 4


def test_solver_errors():
    with pytest.raises(ValueError, match=r"Unrecognized arguments learning_rate"):
        Solver(_Linear(), _data(), learning_rate=1e-3)
    with pytest.raises(ValueError, match=r'Invalid update_rule "lbfgs"'):
        Solver(_Linear(), _data(), update_rule="lbfgs")
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        Solver(_Linear(), _data(), batch_size=0)
    with pytest.raises(ValueError, match=r"lr_decay must satisfy 0.0 < lr_decay, got -1"):
        Solver(_Linear(), _data(), lr_decay=-1)


def test_full_cs231n_net_trains_with_dropout():
    np.random.seed(231)
    data = _data(n_train=200)
    model = FullyConnectedNet([40, 40], input_dim=6, num_classes=3, dropout_keep_ratio=0.5,
                              normalization="batchnorm", dtype=np.float64)
    s = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3},
               num_epochs=5, batch_size=50, verbose=False)
    s.train()
    assert s.best_val_acc > 0.5                       # chance is ~0.4
    assert np.mean(s.loss_history[-4:]) < np.mean(s.loss_history[:4])


# ------------------------------------------------------------------ cydrop.nn keeps its behaviour

def test_nn_net_is_the_same_network_with_its_own_randomness():
    net = cydrop.nn.FullyConnectedNet([6], 4, 3, 0.5, "layernorm", seed=0, dtype=np.float64)
    from cydrop.nn.fc_net import FullyConnectedNetBase
    # one network (cydrop.nn.fc_net), two sources of randomness: the course's and cydrop's
    assert isinstance(net, FullyConnectedNetBase) and issubclass(FullyConnectedNet,
                                                                 FullyConnectedNetBase)
    assert net.loss is not None and type(net).loss is FullyConnectedNet.loss
    assert net.normalization == "layernorm"
    X, y = np.ones((5, 4)), np.array([0, 1, 2, 0, 1])
    state = np.random.get_state()
    assert net.loss(X, y)[0] != net.loss(X, y)[0]              # a fresh mask per call
    assert _state_equal(state, np.random.get_state())


def test_docstring_examples():
    import doctest

    from cydrop.compat import d2l
    from cydrop.compat.cs231n.classifiers import fc_net
    for module in (fc_net, d2l):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
