"""Tests of cydrop.nn.solver.Solver."""

import io

import numpy as np
import pytest

from cydrop.nn import SGD, FullyConnectedNet, Solver, mlp


def _data(n=240, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64) + 2 * (X[:, 2] > 0.5)
    k = n * 3 // 4
    return {"X_train": X[:k], "y_train": y[:k], "X_val": X[k:], "y_val": y[k:]}


class _RecordingModel:
    """A linear softmax model that records the mode of every call."""

    def __init__(self, d=6, c=4):
        self.params = {"W": np.zeros((d, c)), "b": np.zeros(c)}
        self.training = True
        self.calls = []

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def loss(self, X, y=None):
        self.calls.append(("loss" if y is not None else "scores", self.training))
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        p = np.exp(scores - scores.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        loss = -np.log(p[np.arange(len(y)), y]).mean()
        p[np.arange(len(y)), y] -= 1
        p /= len(y)
        return loss, {"W": X.T @ p, "b": p.sum(0)}


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match=r"Unrecognized arguments learning_rate, nepochs"):
        Solver(_RecordingModel(), _data(), nepochs=3, learning_rate=1e-3)


def test_missing_data_and_bad_values():
    data = _data()
    del data["y_val"]
    with pytest.raises(ValueError, match="data is missing y_val"):
        Solver(_RecordingModel(), data)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got 0"):
        Solver(_RecordingModel(), _data(), batch_size=0)
    with pytest.raises(ValueError, match=r"optimizer must be one of"):
        Solver(_RecordingModel(), _data(), update_rule="lbfgs")
    with pytest.raises(ValueError, match="optim_config must be empty"):
        Solver(_RecordingModel(), _data(), update_rule=SGD(), optim_config={"learning_rate": 1.0})


def test_histories_and_eval_around_validation():
    model = _RecordingModel()
    solver = Solver(model, _data(), update_rule="sgd", optim_config={"learning_rate": 0.5},
                    batch_size=50, num_epochs=4, seed=0, verbose=False)
    solver.train()
    per_epoch = -(-180 // 50)
    assert len(solver.loss_history) == 4 * per_epoch
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4
    assert len(solver.epoch_loss_history) == 4
    # every training step ran in training mode, every accuracy check in eval mode
    assert all(mode for kind, mode in model.calls if kind == "loss")
    assert all(not mode for kind, mode in model.calls if kind == "scores")
    assert model.training  # mode restored after the last check
    assert solver.loss_history[-1] < solver.loss_history[0]
    assert solver.val_acc_history[-1] > 0.6


def test_best_params_are_restored():
    model = _RecordingModel()
    solver = Solver(model, _data(), update_rule="sgd", optim_config={"learning_rate": 0.5},
                    num_epochs=5, batch_size=30, seed=1, verbose=False)
    solver.train()
    assert solver.best_val_acc == max(solver.val_acc_history)
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(model.params[k], v)
    assert solver.check_accuracy(solver.X_val, solver.y_val) == solver.best_val_acc


def test_seeded_shuffling_is_reproducible():
    def run(seed):
        m = _RecordingModel()
        s = Solver(m, _data(), update_rule="sgd", optim_config={"learning_rate": 0.3},
                   batch_size=16, num_epochs=2, seed=seed, verbose=False)
        s.train()
        return s.loss_history

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_verbose_prints_every_n_iterations():
    out = io.StringIO()
    solver = Solver(_RecordingModel(), _data(), batch_size=45, num_epochs=2, print_every=3, seed=0,
                    stream=out)
    solver.train()  # 4 iterations per epoch, 8 in all -> iterations 3 and 6
    lines = out.getvalue().splitlines()
    assert [line.split(")")[0] for line in lines if line.startswith("(Iteration")] == [
        "(Iteration 3 / 8", "(Iteration 6 / 8"]
    assert sum(line.startswith("(Epoch") for line in lines) == 2


def test_overfits_small_data_with_sequential_and_dropout():
    """CS231n's sanity check: a net with dropout still overfits 50 examples."""
    data = _data(n=200)
    small = {"X_train": data["X_train"][:50], "y_train": data["y_train"][:50],
             "X_val": data["X_val"], "y_val": data["y_val"]}
    model = mlp(6, [100, 100], 4, rates=0.2, seed=0)
    solver = Solver(model, small, update_rule="adam", optim_config={"learning_rate": 5e-3},
                    batch_size=25, num_epochs=40, num_train_samples=None, seed=0, verbose=False)
    solver.train()
    assert max(solver.train_acc_history) == 1.0
    assert model.training


def test_progress_hooks_are_called():
    events = []

    class P:
        def step(self, epoch, step, loss):
            events.append(("step", epoch, step))

        def epoch_end(self, epoch, loss, train_acc, val_acc, lr):
            events.append(("epoch", epoch, round(lr, 6)))

    model = FullyConnectedNet([8], input_dim=6, num_classes=4, dtype=np.float64, seed=0)
    Solver(model, _data(), update_rule="sgd", optim_config={"learning_rate": 0.1}, lr_decay=0.5,
           batch_size=90, num_epochs=2, seed=0, verbose=False, progress=P()).train()
    assert events == [("step", 1, 1), ("step", 1, 2), ("epoch", 1, 0.05),
                      ("step", 2, 1), ("step", 2, 2), ("epoch", 2, 0.025)]
