"""The three classroom dropout experiments, reproduced offline.

* :func:`nnfs_ch15` -- nnfs.io chapter 15: a spiral classifier with
  Dropout(0.1), 10,000 full-batch Adam epochs (and the 512-unit variant);
* :func:`cs231n_regularization` -- CS231n's dropout regularization
  experiment on scikit-learn's digits: keep 1 vs 0.25 on a small training
  subset, train/validation accuracy per epoch;
* :func:`d2l_sweep` -- d2l.ai's sweep of (rate1, rate2) over an
  ``in -> 256 -> 256 -> out`` MLP, including rates of 1.

Each function returns its results (dicts of numbers and histories), prints
a final table (:func:`cydrop.apps.report.format_table`), and saves a PNG when ``plot`` names a
file (matplotlib is the optional extra ``cydrop[plot]``).
"""

import sys
import time

import numpy as np

from cydrop.nn import (
    SGD,
    Adam,
    Dense,
    Dropout,
    FullyConnectedNet,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    Solver,
    accuracy,
    mlp,
)
from cydrop.nn.module import child_seeds

from . import data as _data
from .report import format_table, require_matplotlib

__all__ = [
    "nnfs_ch15",
    "run_nnfs",
    "cs231n_regularization",
    "d2l_sweep",
    "D2L_PAIRS",
    "NNFS_REFERENCE",
]

#: Figures the nnfs.io book reports for chapter 15 (quoted by the issue).
NNFS_REFERENCE = {
    64: {"acc": 0.69, "val_acc": 0.76},
    512: {"acc": None, "val_acc": "0.86-0.90"},
}

#: (rate1, rate2) pairs of d2l.ai's dropout sweep.
D2L_PAIRS = ((0.2, 0.5), (0.0, 0.0), (0.9, 0.9), (0.6, 0.8), (0.8, 0.6), (1.0, 1.0))


def _out(stream):
    return stream if stream is not None else sys.stdout


# ---------------------------------------------------------------------------
# 1. nnfs.io chapter 15


def nnfs_ch15(*, hidden=64, epochs=10000, samples=1000, classes=3, rate=0.1, learning_rate=0.05,
              decay=5e-5, l2=5e-4, seed=0, record_every=100, n_threads=None, stream=None,
              print_every=0):
    """nnfs.io chapter 15: spiral data, one hidden layer, Dropout(0.1), Adam.

    ``Dense(2, hidden)`` with L2 ``l2`` on weights and biases, ReLU,
    ``Dropout(rate)``, ``Dense(hidden, classes)``, fused softmax
    cross-entropy, ``Adam(learning_rate, decay)``; one full-batch step per
    epoch; validation on a fresh ``spiral_data(100, classes)``. Weights
    start as ``0.01 * normal`` as in the book.

    Parameters
    ----------
    hidden : int, default=64
    epochs : int, default=10000
    samples : int, default=1000
        Training points per class.
    classes : int, default=3
    rate : float, default=0.1
        Drop probability.
    learning_rate : float, default=0.05
    decay : float, default=5e-5
    l2 : float, default=5e-4
    seed : int, default=0
        Model seed (data, weights and dropout masks are derived from it).
    record_every : int, default=100
        Epoch interval of the recorded history.
    n_threads : int or None, default=None
    stream : file-like or None, default=None
        Where per-epoch lines go when ``print_every`` > 0.
    print_every : int, default=0
        Print the book's epoch line every this many epochs (0: never).

    Returns
    -------
    result : dict
        ``acc`` and ``loss`` (training pass of the last epoch, dropout on,
        as the book prints them), ``data_loss``, ``reg_loss``, ``lr``,
        ``train_acc`` (evaluation mode), ``val_acc``, ``val_loss``,
        ``seconds`` and ``history`` (dict of lists: ``epoch``, ``acc``,
        ``loss``, ``val_acc``).
    """
    data_seed, val_seed, model_seed = child_seeds(seed, 3)
    X, y = _data.spiral_data(samples, classes, seed=data_seed)
    X_val, y_val = _data.spiral_data(100, classes, seed=val_seed)
    w1, w2, drop_seed = child_seeds(model_seed, 3)
    model = Sequential(
        Dense(2, hidden, init=0.01, weight_l2=l2, bias_l2=l2, seed=w1),
        ReLU(),
        Dropout(rate, seed=drop_seed),
        Dense(hidden, classes, init=0.01, seed=w2),
        n_threads=n_threads,
    )
    crit = SoftmaxCrossEntropy()
    opt = Adam(learning_rate=learning_rate, decay=decay)
    hist = {"epoch": [], "acc": [], "loss": [], "val_acc": []}
    t0 = time.perf_counter()
    for epoch in range(epochs + 1):  # the book runs range(10001)
        model.train()
        scores = model.forward(X)
        data_loss = crit.forward(scores, y)
        reg_loss = model.regularization_loss()
        loss = data_loss + reg_loss
        acc = accuracy(scores, y)
        lr = opt.current_learning_rate
        model.backward(crit.backward())
        opt.step(model.params, model.grads)
        if record_every and epoch % record_every == 0:
            hist["epoch"].append(epoch)
            hist["acc"].append(acc)
            hist["loss"].append(loss)
            hist["val_acc"].append(accuracy(model.predict(X_val), y_val))
        if print_every and epoch % print_every == 0:
            print(f"epoch: {epoch}, acc: {acc:.3f}, loss: {loss:.3f} (data_loss: {data_loss:.3f}, "
                  f"reg_loss: {reg_loss:.3f}), lr: {lr}", file=_out(stream))
    seconds = time.perf_counter() - t0
    model.eval()
    val_scores = model.forward(X_val)
    val_loss = crit.forward(val_scores, y_val)
    return {
        "hidden": hidden, "epochs": epochs, "acc": acc, "loss": loss, "data_loss": data_loss,
        "reg_loss": reg_loss, "lr": lr, "train_acc": accuracy(model.forward(X), y),
        "val_acc": accuracy(val_scores, y_val), "val_loss": val_loss, "seconds": seconds,
        "history": hist,
    }


def run_nnfs(*, hidden_sizes=(64, 512), epochs=10000, seed=0, plot=None, stream=None,
             n_threads=None, print_every=0):
    """Run :func:`nnfs_ch15` for each hidden size and print a table beside the book.

    Parameters
    ----------
    hidden_sizes : sequence of int, default=(64, 512)
    epochs : int, default=10000
    seed : int, default=0
    plot : str or None, default=None
        PNG path: training accuracy and validation accuracy against epoch.
    stream : file-like or None, default=None
    n_threads : int or None, default=None
    print_every : int, default=0

    Returns
    -------
    results : list of dict
        One :func:`nnfs_ch15` result per hidden size.
    """
    if plot:
        require_matplotlib()
    results = [nnfs_ch15(hidden=h, epochs=epochs, seed=seed, n_threads=n_threads, stream=stream,
                         print_every=print_every) for h in hidden_sizes]
    rows = []
    for r in results:
        ref = NNFS_REFERENCE.get(r["hidden"], {})
        rows.append([f"Dense(2,{r['hidden']})", r["epochs"], r["acc"], ref.get("acc"), r["loss"],
                     r["val_acc"], ref.get("val_acc"), r["val_loss"], f"{r['seconds']:.1f}"])
    print("nnfs.io ch.15: spiral_data(1000, 3), Dropout(0.1), Adam(0.05, decay 5e-5)",
          file=_out(stream))
    print(format_table(["model", "epochs", "acc", "book acc", "loss", "val_acc", "book val_acc",
                        "val_loss", "seconds"], rows), file=_out(stream))
    if plot:
        Figure = require_matplotlib()
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        for r in results:
            h = r["history"]
            ax.plot(h["epoch"], h["acc"], label=f"{r['hidden']} units: train (dropout on)")
            ax.plot(h["epoch"], h["val_acc"], "--", label=f"{r['hidden']} units: validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.set_title("nnfs.io ch.15 on spiral data, Dropout(0.1)")
        ax.legend()
        fig.savefig(plot, dpi=100)
    return results


# ---------------------------------------------------------------------------
# 2. CS231n regularization experiment, on digits


def cs231n_regularization(*, keep_ratios=(1.0, 0.25), num_train=500, hidden=500, epochs=25,
                          batch_size=100, learning_rate=5e-4, weight_scale=1e-2, seed=0, plot=None,
                          stream=None, n_threads=None, verbose=False):
    """CS231n's dropout regularization experiment on scikit-learn's digits.

    A ``FullyConnectedNet([hidden])`` is trained on a small training subset
    once per keep ratio (CS231n's ``dropout_keep_ratio``; 1 means no
    dropout) with Adam; the rest of the digits are the validation set.
    Inputs are centred by the training mean.

    Parameters
    ----------
    keep_ratios : sequence of float, default=(1.0, 0.25)
        KEEP probabilities, CS231n's convention.
    num_train : int, default=500
    hidden : int, default=500
    epochs : int, default=25
    batch_size : int, default=100
    learning_rate : float, default=5e-4
    weight_scale : float, default=1e-2
    seed : int, default=0
    plot : str or None, default=None
        PNG path: train and validation accuracy per epoch for every keep
        ratio (the notebook's figure).
    stream : file-like or None, default=None
    n_threads : int or None, default=None
    verbose : bool, default=False
        Print the solver's epoch lines.

    Returns
    -------
    results : list of dict
        Per keep ratio: ``keep``, ``rate``, ``train_acc``, ``val_acc``
        (last epoch), ``best_val_acc``, ``gap`` (train - val, last epoch),
        ``train_acc_history``, ``val_acc_history``.

    Raises
    ------
    ImportError
        If scikit-learn is not installed (extra ``cydrop[digits]``).
    """
    if plot:
        require_matplotlib()
    X, y = _data.load_digits(dtype=np.float64)
    split_seed, *model_seeds = child_seeds(seed, 1 + len(keep_ratios))
    perm = np.random.default_rng(split_seed).permutation(len(X))
    tr, va = perm[:num_train], perm[num_train:]
    mean = X[tr].mean(axis=0)
    data = {"X_train": X[tr] - mean, "y_train": y[tr], "X_val": X[va] - mean, "y_val": y[va]}
    results = []
    for keep, mseed in zip(keep_ratios, model_seeds):
        model = FullyConnectedNet([hidden], input_dim=X.shape[1], num_classes=10,
                                  dropout_keep_ratio=keep, weight_scale=weight_scale,
                                  dtype=np.float64, seed=mseed, n_threads=n_threads)
        solver = Solver(model, data, num_train_samples=num_train, num_epochs=epochs,
                        batch_size=batch_size, update_rule="adam",
                        optim_config={"learning_rate": learning_rate}, seed=mseed,
                        verbose=verbose, print_every=100, stream=stream)
        solver.train()
        results.append({
            "keep": keep, "rate": model.rate,
            "train_acc": solver.train_acc_history[-1], "val_acc": solver.val_acc_history[-1],
            "best_val_acc": solver.best_val_acc,
            "gap": solver.train_acc_history[-1] - solver.val_acc_history[-1],
            "train_acc_history": solver.train_acc_history,
            "val_acc_history": solver.val_acc_history,
        })
    out = _out(stream)
    print(f"CS231n dropout regularization on digits: {num_train} training images, hidden {hidden}, "
          f"{epochs} epochs, batch {batch_size}, Adam lr {learning_rate:g}", file=out)
    print(format_table(["keep", "rate", "train_acc", "val_acc", "best_val_acc", "gap (train-val)"],
                       [[f"{r['keep']:g}", f"{r['rate']:g}", r["train_acc"], r["val_acc"],
                         r["best_val_acc"], r["gap"]] for r in results]), file=out)
    if len(results) >= 2:
        a, b = results[0], results[-1]
        verb = "narrowed" if b["gap"] < a["gap"] else "did not narrow"
        print(f"dropout (keep {b['keep']:g}) {verb} the train-val gap: "
              f"{a['gap']:.4f} -> {b['gap']:.4f}", file=out)
    if plot:
        Figure = require_matplotlib()
        fig = Figure(figsize=(11, 4.5))
        ax1, ax2 = fig.subplots(1, 2)
        for r in results:
            ep = np.arange(1, len(r["train_acc_history"]) + 1)
            ax1.plot(ep, r["train_acc_history"], "o-", label=f"keep {r['keep']:g}")
            ax2.plot(ep, r["val_acc_history"], "o-", label=f"keep {r['keep']:g}")
        for ax, title in ((ax1, "Train accuracy"), (ax2, "Val accuracy")):
            ax.set_title(title)
            ax.set_xlabel("Epoch")
            ax.set_ylabel("Accuracy")
            ax.legend(ncol=2, loc="lower right")
        fig.savefig(plot, dpi=100)
    return results


# ---------------------------------------------------------------------------
# 3. d2l.ai sweep


def _d2l_data(dataset, data_path, seed):
    if dataset == "digits":
        X, y = _data.load_digits(dtype=np.float32)
        X_tr, y_tr, X_te, y_te = _data.train_val_split(X, y, 0.25, seed=seed)
        return X_tr, y_tr, X_te, y_te
    if dataset in ("mnist", "fashion-mnist"):
        if data_path is None:
            raise ValueError(f"data_path must name a directory of IDX files for dataset "
                             f"{dataset!r}, got None")
        X_tr, y_tr = _data.load_mnist(data_path, "train")
        X_te, y_te = _data.load_mnist(data_path, "test")
        return X_tr, y_tr, X_te, y_te
    raise ValueError(f"dataset must be 'digits', 'mnist' or 'fashion-mnist', got {dataset!r}")


def d2l_sweep(pairs=D2L_PAIRS, *, dataset="digits", data_path=None, hidden=(256, 256), epochs=None,
              batch_size=256, learning_rate=0.5, seed=0, plot=None, stream=None, n_threads=None):
    """d2l.ai's dropout sweep: final train/test accuracy per (rate1, rate2).

    ``in -> 256 -> 256 -> out`` with ``Dropout(rate1)`` and
    ``Dropout(rate2)`` after the two hidden ReLUs, normal(0.01) weights,
    plain SGD (d2l's lr 0.5, batch 256), float32. A rate of 1 zeros every
    activation: the net can only learn the output bias, so it must run and
    land at chance accuracy.

    Parameters
    ----------
    pairs : sequence of (float, float), default=D2L_PAIRS
    dataset : {'digits', 'mnist', 'fashion-mnist'}, default='digits'
        ``digits`` (75/25 split) works offline; the IDX datasets read
        ``data_path`` (the d2l original is Fashion-MNIST).
    data_path : str or None, default=None
    hidden : (int, int), default=(256, 256)
    epochs : int or None, default=None
        None: 10 for the IDX datasets (d2l's value), 100 for digits, which
        has ~50x fewer images per epoch.
    batch_size : int, default=256
    learning_rate : float, default=0.5
    seed : int, default=0
    plot : str or None, default=None
        PNG path: bar chart of train/test accuracy per pair.
    stream : file-like or None, default=None
    n_threads : int or None, default=None

    Returns
    -------
    results : list of dict
        Per pair: ``rates``, ``train_loss`` (mean of the last epoch, dropout
        on), ``train_acc`` and ``test_acc`` (evaluation mode), ``chance``
        (``1 / classes``), ``seconds``.
    """
    if plot:
        require_matplotlib()
    X_tr, y_tr, X_te, y_te = _d2l_data(dataset, data_path, seed)
    if epochs is None:
        epochs = 100 if dataset == "digits" else 10
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    data = {"X_train": X_tr, "y_train": y_tr, "X_val": X_te, "y_val": y_te}
    results = []
    for (r1, r2), mseed in zip(pairs, child_seeds(seed, len(pairs))):
        model = mlp(X_tr.shape[1], hidden, n_classes, rates=[r1, r2], init=0.01, dtype=np.float32,
                    seed=mseed, n_threads=n_threads)
        solver = Solver(model, data, update_rule=SGD(learning_rate=learning_rate),
                        batch_size=batch_size, num_epochs=epochs, num_train_samples=None,
                        seed=mseed, verbose=False)
        t0 = time.perf_counter()
        solver.train()
        seconds = time.perf_counter() - t0
        results.append({
            "rates": (r1, r2), "train_loss": solver.epoch_loss_history[-1],
            "train_acc": solver.train_acc_history[-1], "test_acc": solver.val_acc_history[-1],
            "chance": 1.0 / n_classes, "seconds": seconds,
        })
    out = _out(stream)
    print(f"d2l.ai dropout sweep on {dataset}: "
          f"{X_tr.shape[1]} -> {hidden[0]} -> {hidden[1]} -> {n_classes}, "
          f"SGD lr {learning_rate:g}, batch {batch_size}, {epochs} epochs (last epoch's accuracy; "
          f"chance {1.0 / n_classes:.2f})", file=out)
    print(format_table(["rate1", "rate2", "train_loss", "train_acc", "test_acc", "seconds"],
                       [[f"{r['rates'][0]:g}", f"{r['rates'][1]:g}", r["train_loss"],
                         r["train_acc"], r["test_acc"], f"{r['seconds']:.1f}"]
                        for r in results]), file=out)
    if plot:
        Figure = require_matplotlib()
        fig = Figure(figsize=(8, 4.5))
        ax = fig.add_subplot()
        xs = np.arange(len(results))
        ax.bar(xs - 0.2, [r["train_acc"] for r in results], 0.4, label="train")
        ax.bar(xs + 0.2, [r["test_acc"] for r in results], 0.4, label="test")
        ax.axhline(1.0 / n_classes, color="gray", ls=":", label="chance")
        ax.set_xticks(xs, [f"({a:g}, {b:g})" for a, b in (r["rates"] for r in results)])
        ax.set_xlabel("(rate1, rate2)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"d2l.ai dropout sweep on {dataset}")
        ax.legend()
        fig.savefig(plot, dpi=100)
    return results
