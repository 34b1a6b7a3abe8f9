"""The training job of ``cydrop train``: load a dataset, train an MLP with dropout, report.

:func:`load_dataset` gives the train / validation split of a named dataset; :func:`train_mlp`
trains :func:`cydrop.nn.mlp` with :class:`cydrop.nn.Solver` on it and prints the summary table
(and saves the curves when asked). The command line (:mod:`cydrop.apps.cli`) resolves its flags
and calls these two.
"""

import time

import numpy as np

from cydrop._openmp import effective_n_threads
from cydrop.nn import Progress, Solver, mlp

from . import data
from .report import format_table, require_matplotlib

__all__ = ["DATASETS", "load_dataset", "train_mlp"]

DATASETS = ("spiral", "digits", "mnist")


def load_dataset(name, path=None, *, seed=0):
    """Return ``(X, y, X_val, y_val)`` of a named dataset.

    Parameters
    ----------
    name : {'spiral', 'digits', 'mnist'}
        ``spiral``: 1000 training and 300 validation points of the embedded spiral (seeds
        ``seed`` and ``seed + 1``); ``digits``: scikit-learn's digits, a 25 % validation
        split seeded by ``seed``; ``mnist``: the IDX files under ``path``, train and test.
    path : str or None, default=None
        Directory of MNIST / Fashion-MNIST IDX files (mnist only).
    seed : int, default=0

    Returns
    -------
    X, y, X_val, y_val : ndarray

    Raises
    ------
    ValueError
        For an unknown ``name``.
    """
    if name == "spiral":
        X, y = data.spiral_data(1000, 3, seed=seed)
        X_val, y_val = data.spiral_data(300, 3, seed=seed + 1)
        return X, y, X_val, y_val
    if name == "digits":
        X, y = data.load_digits()
        return data.train_val_split(X, y, 0.25, seed=seed)
    if name == "mnist":
        X, y = data.load_mnist(path, "train")
        X_val, y_val = data.load_mnist(path, "test")
        return X, y, X_val, y_val
    raise ValueError(f"name must be one of {DATASETS}, got {name!r}")


def train_mlp(split, *, dataset, hidden, rates, optimizer="adam", learning_rate=0.005, decay=0.0,
              l2=0.0, epochs=60, batch_size=128, seed=0, dtype=np.float64, n_threads=None,
              plot=None, quiet=False, stream=None, rate_schedule=None):
    """Train an MLP with dropout on ``split`` and print the summary table.

    Parameters
    ----------
    split : tuple of ndarray
        ``(X, y, X_val, y_val)``, as :func:`load_dataset` returns.
    dataset : str
        Name shown in the table and the plot.
    hidden : list of int
        Hidden layer sizes.
    rates : list of float
        Dropout rate after each hidden layer, one per layer.
    optimizer : {'sgd', 'momentum', 'adam'}, default='adam'
    learning_rate : float, default=0.005
    decay : float, default=0.0
        The learning rate at step ``t`` is ``learning_rate / (1 + decay * t)``.
    l2 : float, default=0.0
        L2 penalty on weights and biases.
    epochs : int, default=60
    batch_size : int, default=128
    seed : int, default=0
        Model seed (weights, masks, shuffling).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
    n_threads : int or None, default=None
        Threads for the dropout kernels: any nonzero int, capped at the usable cores.
    plot : str or None, default=None
        A ``.png`` file to save the loss and accuracy curves to (needs matplotlib).
    quiet : bool, default=False
        No progress display, only the final table.
    stream : file-like or None, default=None
        Where the progress and the table go (``sys.stdout``).
    rate_schedule : callable or None, default=None
        A :mod:`cydrop.nn.schedules` schedule driving every dropout layer's rate, advanced
        once per update (see :meth:`cydrop.nn.Sequential.set_rate_schedule`).

    Returns
    -------
    solver : cydrop.nn.Solver
        The trained solver: its histories, ``best_val_acc``, and the model.

    Raises
    ------
    ValueError, TypeError
        For invalid settings (from :func:`cydrop.nn.mlp` and :class:`cydrop.nn.Solver`).
    MissingExtraError
        If ``plot`` is given and matplotlib is not installed.
    """
    if plot:
        require_matplotlib()
    n_threads = effective_n_threads(n_threads)
    X, y, X_val, y_val = split
    X, X_val = X.astype(dtype, copy=False), X_val.astype(dtype, copy=False)
    n_classes = int(max(y.max(), y_val.max())) + 1
    model = mlp(X.shape[1], hidden, n_classes, rates=rates, weight_l2=l2, bias_l2=l2,
                dtype=dtype, seed=seed, n_threads=n_threads)
    if rate_schedule is not None:
        model.set_rate_schedule(rate_schedule)
    steps = -(-len(X) // batch_size)
    rate_label = "rate " + ",".join(f"{r:g}" for r in rates)
    progress = None if quiet else Progress(epochs, steps, label=rate_label, stream=stream)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X_val, "y_val": y_val},
                    update_rule=optimizer,
                    optim_config={"learning_rate": learning_rate, "decay": decay},
                    batch_size=batch_size, num_epochs=epochs, num_train_samples=None, seed=seed,
                    verbose=False, progress=progress)
    t0 = time.perf_counter()
    try:
        solver.train()
    finally:
        if progress is not None:
            progress.close()
    seconds = time.perf_counter() - t0
    arch = " -> ".join(str(d) for d in [X.shape[1], *hidden, n_classes])
    print(format_table(
        ["dataset", "model", "rates", "optimizer", "epochs", "final loss", "train_acc", "val_acc",
         "best val_acc", "threads", "seconds"],
        [[dataset, arch, ",".join(f"{r:g}" for r in rates), f"{optimizer} lr {learning_rate:g}",
          epochs, solver.epoch_loss_history[-1], solver.train_acc_history[-1],
          solver.val_acc_history[-1], solver.best_val_acc, n_threads, f"{seconds:.1f}"]]),
        file=stream)
    print("(accuracies in evaluation mode after each epoch; the model keeps the best-val_acc "
          "parameters)", file=stream)
    if plot:
        _plot_curves(solver, epochs, f"{dataset}: {arch}, dropout {rate_label}", plot)
        print(f"saved {plot}", file=stream)
    return solver


def _plot_curves(solver, epochs, title, path):
    Figure = require_matplotlib()
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    ep = np.arange(1, epochs + 1)
    ax1.plot(ep, solver.epoch_loss_history)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("mean training loss (dropout on)")
    ax2.plot(ep, solver.train_acc_history, label="train")
    ax2.plot(ep, solver.val_acc_history, label="validation")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
