"""A CS231n-style ``Solver``: minibatch training with histories.

The model is anything with a ``params`` dict and
``loss(X, y=None) -> scores | (loss, grads)``: :class:`FullyConnectedNet`,
:class:`Sequential`, or a user's own class. If the model has ``train()`` /
``eval()`` (as :class:`Sequential` does), the solver calls ``train()``
before every step and ``eval()`` around every accuracy check.
"""

import copy
import math
import numbers
import sys

import numpy as np

from .optim import Optimizer, make_optimizer

__all__ = ["Solver"]

_DEFAULTS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "eval_batch_size": 1000,
    "seed": None,
    "print_every": 10,
    "verbose": True,
    "progress": None,
    "stream": None,
}


class Solver:
    """Train a classification model with minibatch gradient steps.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of ndarray, updated in place) and
        ``loss(X, y=None)``.
    data : dict
        ``X_train``, ``y_train``, ``X_val``, ``y_val`` arrays.
    update_rule : {'sgd', 'momentum', 'sgd_momentum', 'adam'} or Optimizer, default='sgd'
    optim_config : dict or None, default=None
        Keyword arguments of the optimizer (``learning_rate``, ``decay``,
        ``momentum``, ``beta1`` ...).
    lr_decay : float, default=1.0
        Multiplies the optimizer's learning rate after every epoch (CS231n).
    batch_size : int, default=100
    num_epochs : int, default=10
    num_train_samples : int or None, default=1000
        Training examples sampled for the per-epoch train accuracy
        (``None``: all).
    num_val_samples : int or None, default=None
        Validation examples used (``None``: all).
    eval_batch_size : int, default=1000
        Rows per forward pass when checking accuracy.
    seed : int or None, default=None
        Seeds the per-epoch shuffling and the accuracy subsampling, with a
        :func:`numpy.random.default_rng` owned by the solver.
    print_every : int, default=10
        With ``verbose``, print the loss every this many iterations.
    verbose : bool, default=True
    progress : object or None, default=None
        Optional display with ``step(epoch, step, loss)`` and
        ``epoch_end(epoch, loss, train_acc, val_acc, lr)`` methods, e.g.
        :class:`cydrop.nn.progress.Progress`.
    stream : file-like or None, default=None
        Where verbose lines go (``sys.stdout``).

    Attributes
    ----------
    loss_history : list of float
        Loss of every iteration.
    epoch_loss_history : list of float
        Mean loss of every epoch.
    train_acc_history, val_acc_history : list of float
        Accuracies measured in evaluation mode at the end of every epoch.
    best_val_acc : float
    best_params : dict
        Copy of the parameters with the best validation accuracy; copied
        back into ``model.params`` when :meth:`train` finishes.

    Raises
    ------
    ValueError
        For unknown options, missing data keys or invalid values.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.nn import FullyConnectedNet
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((60, 4)); y = (X[:, 0] > 0).astype(int)
    >>> data = dict(X_train=X, y_train=y, X_val=X, y_val=y)
    >>> net = FullyConnectedNet([16], input_dim=4, num_classes=2, dtype=np.float64, seed=0)
    >>> s = Solver(net, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
    ...            num_epochs=5, batch_size=20, seed=0, verbose=False)
    >>> s.train(); len(s.val_acc_history)
    5
    """

    def __init__(self, model, data, **kwargs):
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(f"Unrecognized arguments {', '.join(unknown)}; "
                             f"expected some of {', '.join(sorted(_DEFAULTS))}")
        opts = {**_DEFAULTS, **kwargs}
        missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"data is missing {', '.join(missing)}")
        if not hasattr(model, "params") or not callable(getattr(model, "loss", None)):
            raise ValueError("model must have a params dict and a loss(X, y=None) method")
        self.model = model
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]
        if len(self.X_train) != len(self.y_train):
            raise ValueError(f"X_train and y_train must have the same length, got {len(self.X_train)} "
                             f"and {len(self.y_train)}")
        if len(self.X_val) != len(self.y_val):
            raise ValueError(f"X_val and y_val must have the same length, got {len(self.X_val)} "
                             f"and {len(self.y_val)}")
        for name in ("batch_size", "num_epochs", "print_every", "eval_batch_size"):
            v = opts[name]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        lr_decay = opts["lr_decay"]
        if isinstance(lr_decay, np.ndarray) and lr_decay.ndim == 0:
            lr_decay = lr_decay.item()
        ok = not isinstance(lr_decay, bool) and isinstance(lr_decay, numbers.Real)
        try:
            ok = ok and float(lr_decay) > 0     # 10**400 is a ValueError, not an OverflowError
        except OverflowError:
            ok = False
        if not ok:
            shown = repr(lr_decay)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise ValueError(f"lr_decay must be > 0, got {shown}")
        self.batch_size = int(opts["batch_size"])
        self.num_epochs = int(opts["num_epochs"])
        self.num_train_samples = opts["num_train_samples"]
        self.num_val_samples = opts["num_val_samples"]
        self.eval_batch_size = int(opts["eval_batch_size"])
        self.lr_decay = float(lr_decay)
        self.print_every = int(opts["print_every"])
        self.verbose = bool(opts["verbose"])
        self.progress = opts["progress"]
        self.stream = opts["stream"]
        self.seed = opts["seed"]
        rule = opts["update_rule"]
        if isinstance(rule, Optimizer):
            if opts["optim_config"]:
                raise ValueError("optim_config must be empty when update_rule is an Optimizer instance")
            self.optimizer = rule
        else:
            self.optimizer = make_optimizer(rule, **dict(opts["optim_config"] or {}))
        self.update_rule = rule
        self._reset()

    def _reset(self):
        ss = np.random.SeedSequence(self.seed)
        shuffle_ss, sample_ss = ss.spawn(2)
        self._shuffle_rng = np.random.default_rng(shuffle_ss)
        self._sample_rng = np.random.default_rng(sample_ss)
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.epoch_loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []

    def _print(self, text):
        print(text, file=self.stream or sys.stdout, flush=True)

    def _set_mode(self, training):
        fn = getattr(self.model, "train" if training else "eval", None)
        if callable(fn):
            fn() if not training else fn(True)

    def _step(self, X_batch, y_batch):
        self._set_mode(True)
        loss, grads = self.model.loss(X_batch, y_batch)
        self.optimizer.step(self.model.params, grads)
        return float(loss)

    def check_accuracy(self, X, y, num_samples=None, batch_size=None):
        """Accuracy of the model on ``X``, in evaluation mode.

        Parameters
        ----------
        X : ndarray of shape (N, ...)
        y : ndarray of shape (N,)
        num_samples : int or None, default=None
            Subsample this many rows (with the solver's own RNG).
        batch_size : int or None, default=None
            Rows per forward pass (``eval_batch_size``).

        Returns
        -------
        acc : float
        """
        n = X.shape[0]
        if num_samples is not None and n > num_samples:
            idx = self._sample_rng.choice(n, num_samples, replace=False)
            X, y = X[idx], y[idx]
            n = num_samples
        if n == 0:
            return 0.0
        bs = batch_size or self.eval_batch_size
        self._set_mode(False)
        try:
            preds = [np.argmax(self.model.loss(X[i:i + bs]), axis=1) for i in range(0, n, bs)]
        finally:
            self._set_mode(True)
        return float(np.mean(np.concatenate(preds) == y))

    def train(self):
        """Run ``num_epochs`` epochs of shuffled minibatch steps.

        Shuffling is a fresh permutation per epoch from the solver's seeded
        RNG. After every epoch the train (subsampled) and validation
        accuracies are recorded; the best parameters are copied back into
        the model at the end.
        """
        n = self.X_train.shape[0]
        if n == 0:
            raise ValueError("X_train must hold at least one example, got 0")
        per_epoch = max(math.ceil(n / self.batch_size), 1)
        total = self.num_epochs * per_epoch
        t = 0
        for _ in range(self.num_epochs):
            perm = self._shuffle_rng.permutation(n)
            epoch_losses = []
            for step in range(per_epoch):
                idx = perm[step * self.batch_size:(step + 1) * self.batch_size]
                loss = self._step(self.X_train[idx], self.y_train[idx])
                self.loss_history.append(loss)
                epoch_losses.append(loss)
                t += 1
                if self.verbose and t % self.print_every == 0:
                    self._print(f"(Iteration {t} / {total}) loss: {loss:f}")
                if self.progress is not None:
                    self.progress.step(self.epoch + 1, step + 1, loss)
            self.epoch += 1
            if self.lr_decay != 1.0:
                self.optimizer.learning_rate *= self.lr_decay
                self.optimizer.current_learning_rate *= self.lr_decay
            self.epoch_loss_history.append(float(np.mean(epoch_losses)))
            train_acc = self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples)
            val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
            self.train_acc_history.append(train_acc)
            self.val_acc_history.append(val_acc)
            if self.verbose:
                self._print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; "
                            f"val_acc: {val_acc:f}")
            if self.progress is not None:
                self.progress.epoch_end(self.epoch, self.epoch_loss_history[-1], train_acc, val_acc,
                                        self.optimizer.current_learning_rate)
            if val_acc > self.best_val_acc or not self.best_params:
                self.best_val_acc = val_acc
                self.best_params = {k: copy.deepcopy(v) for k, v in self.model.params.items()}
        params = self.model.params
        for k, v in self.best_params.items():
            params[k][...] = v
