"""A CS231n-style ``Solver``: minibatch training with histories.

The model is anything with a ``params`` dict and
``loss(X, y=None) -> scores | (loss, grads)``: :class:`FullyConnectedNet`,
:class:`Sequential`, or a user's own class. If the model has ``train()`` /
``eval()`` (as :class:`Sequential` does), the solver calls ``train()``
before every step and ``eval()`` around every accuracy check.

The training loop is written once, here. :class:`Solver` is cydrop's idiomatic trainer (seeded,
shuffled epochs, optimizer objects); ``cydrop.compat.cs231n.solver.Solver`` is the assignment's
exact bookkeeping (global-state minibatches, update-rule functions, an accuracy check after the
first iteration, checkpoints) as a subclass that only overrides the policy hooks
(``_iterations_per_epoch``, ``_epoch_batches``, ``_apply_update``, ``_decay_learning_rate``,
``_subsample``, ``_prints_iteration``, ``_save_checkpoint``, ``_restore_best``).
"""

import copy
import math
import sys

import numpy as np

from cydrop import _validation

from .optim import Optimizer, make_optimizer

__all__ = ["Solver", "parse_options", "COMMON_DEFAULTS"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _optional_count(value, name):
    return None if value is None else _positive_int(value, name)


def parse_options(model, data, kwargs, defaults):
    """Check a solver's model, data and options; return the options with defaults filled in.

    Shared by :class:`Solver` and ``cydrop.compat.cs231n.solver.Solver``: unknown options,
    missing data keys, mismatched lengths and bad counts are refused with the same messages.
    """
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ValueError(f"Unrecognized arguments {', '.join(unknown)}; "
                         f"expected some of {', '.join(sorted(defaults))}")
    opts = {**defaults, **kwargs}
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict with X_train, y_train, X_val, y_val, got "
                        f"{type(data).__name__}")
    missing = [k for k in ("X_train", "y_train", "X_val", "y_val") if k not in data]
    if missing:
        raise ValueError(f"data is missing {', '.join(missing)}")
    if not hasattr(model, "params") or not callable(getattr(model, "loss", None)):
        raise ValueError("model must have a params dict and a loss(X, y=None) method")
    for a, b in (("X_train", "y_train"), ("X_val", "y_val")):
        if len(data[a]) != len(data[b]):
            raise ValueError(f"{a} and {b} must have the same length, got {len(data[a])} "
                             f"and {len(data[b])}")
    for name in ("batch_size", "num_epochs", "print_every", "eval_batch_size"):
        if name in opts:
            opts[name] = _positive_int(opts[name], name)
    for name in ("num_train_samples", "num_val_samples"):
        if name in opts:
            opts[name] = _optional_count(opts[name], name)
    opts["lr_decay"] = _validation.check_real(opts["lr_decay"], "lr_decay", low=0.0,
                                               low_inclusive=False)
    return opts


#: The options both solvers take, with their defaults (``cydrop.compat.cs231n.solver`` adds
#: ``checkpoint_name``; :class:`Solver` adds its own below).
COMMON_DEFAULTS = {
    "update_rule": "sgd",
    "optim_config": None,
    "lr_decay": 1.0,
    "batch_size": 100,
    "num_epochs": 10,
    "num_train_samples": 1000,
    "num_val_samples": None,
    "print_every": 10,
    "verbose": True,
}

_DEFAULTS = {
    **COMMON_DEFAULTS,
    "eval_batch_size": 1000,
    "seed": None,
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
        opts = parse_options(model, data, kwargs, _DEFAULTS)
        self._set_common(model, data, opts)
        self.eval_batch_size = opts["eval_batch_size"]
        self.progress = opts["progress"]
        self.stream = opts["stream"]
        self.seed = opts["seed"]
        rule = opts["update_rule"]
        if isinstance(rule, Optimizer):
            if opts["optim_config"]:
                raise ValueError("optim_config must be empty when update_rule is an Optimizer "
                                 "instance")
            self.optimizer = rule
        else:
            self.optimizer = make_optimizer(rule, **dict(opts["optim_config"] or {}))
        self.update_rule = rule
        self._reset()

    def _set_common(self, model, data, opts):
        self.model = model
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]
        self.batch_size = opts["batch_size"]
        self.num_epochs = opts["num_epochs"]
        self.num_train_samples = opts["num_train_samples"]
        self.num_val_samples = opts["num_val_samples"]
        self.lr_decay = opts["lr_decay"]
        self.print_every = opts["print_every"]
        self.verbose = bool(opts["verbose"])
        self.progress = None
        self.stream = None

    def _reset(self):
        ss = np.random.SeedSequence(self.seed)
        shuffle_ss, sample_ss = ss.spawn(2)
        self._shuffle_rng = np.random.default_rng(shuffle_ss)
        self._sample_rng = np.random.default_rng(sample_ss)
        self._reset_histories()

    def _reset_histories(self):
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.epoch_loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []

    # ------------------------------------------------------------------ policy hooks
    # cydrop's own policy; cydrop.compat.cs231n.solver.Solver overrides these and nothing else
    # of the loop.

    #: Check the accuracies after the very first iteration too (CS231n's "Epoch 0" line).
    _check_after_first_step = False

    def _iterations_per_epoch(self, n):
        """Every example once per epoch: the last batch may be short."""
        return max(math.ceil(n / self.batch_size), 1)

    def _epoch_batches(self, n, per_epoch):
        """Index arrays of one epoch: slices of a fresh permutation from the solver's RNG."""
        perm = self._shuffle_rng.permutation(n)
        for step in range(per_epoch):
            yield perm[step * self.batch_size:(step + 1) * self.batch_size]

    def _apply_update(self, grads):
        self.optimizer.step(self.model.params, grads)

    def _decay_learning_rate(self):
        if self.lr_decay != 1.0:
            self.optimizer.learning_rate *= self.lr_decay
            self.optimizer.current_learning_rate *= self.lr_decay

    def _current_learning_rate(self):
        return self.optimizer.current_learning_rate

    def _subsample(self, n, num_samples):
        """Rows for a subsampled accuracy check: without replacement, the solver's RNG."""
        return self._sample_rng.choice(n, num_samples, replace=False)

    def _prints_iteration(self, t):
        """Whether iteration ``t`` (counted from 1) is logged: every ``print_every``-th."""
        return t % self.print_every == 0

    def _save_checkpoint(self):
        """Nothing to save (CS231n's solver pickles a checkpoint here)."""

    def _restore_best(self):
        """Copy the best parameters back into the model's arrays, in place."""
        params = self.model.params
        for k, v in self.best_params.items():
            params[k][...] = v

    # ------------------------------------------------------------------ the loop

    def _print(self, text):
        print(text, file=self.stream or sys.stdout, flush=True)

    def _set_mode(self, training):
        fn = getattr(self.model, "train" if training else "eval", None)
        if callable(fn):
            fn() if not training else fn(True)

    def _step(self, X_batch, y_batch):
        self._set_mode(True)
        loss, grads = self.model.loss(X_batch, y_batch)
        self._apply_update(grads)
        if callable(getattr(self.model, "step_schedule", None)):
            self.model.step_schedule()          # a rate schedule advances once per update
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
            idx = self._subsample(n, num_samples)
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

    def _check_and_record(self, epoch_end):
        train_acc = self.check_accuracy(self.X_train, self.y_train,
                                        num_samples=self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        self._save_checkpoint()
        if self.verbose:
            self._print(f"(Epoch {self.epoch} / {self.num_epochs}) train acc: {train_acc:f}; "
                        f"val_acc: {val_acc:f}")
        if self.progress is not None and epoch_end:
            self.progress.epoch_end(self.epoch, self.epoch_loss_history[-1], train_acc, val_acc,
                                    self._current_learning_rate())
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = val_acc
            self.best_params = {k: copy.deepcopy(v) for k, v in self.model.params.items()}

    def train(self):
        """Run ``num_epochs`` epochs of minibatch steps.

        Shuffling is a fresh permutation per epoch from the solver's seeded
        RNG. After every epoch the train (subsampled) and validation
        accuracies are recorded; the best parameters are copied back into
        the model at the end.
        """
        n = self.X_train.shape[0]
        if n == 0:
            raise ValueError("X_train must hold at least one example, got 0")
        per_epoch = self._iterations_per_epoch(n)
        total = self.num_epochs * per_epoch
        t = 0
        for _ in range(self.num_epochs):
            epoch_losses = []
            for step, idx in enumerate(self._epoch_batches(n, per_epoch)):
                loss = self._step(self.X_train[idx], self.y_train[idx])
                self.loss_history.append(loss)
                epoch_losses.append(loss)
                t += 1
                if self.verbose and self._prints_iteration(t):
                    self._print(f"(Iteration {t} / {total}) loss: {loss:f}")
                if self.progress is not None:
                    self.progress.step(self.epoch + 1, step + 1, loss)
                epoch_end = step == per_epoch - 1
                if epoch_end:
                    self.epoch += 1
                    self._decay_learning_rate()
                    self.epoch_loss_history.append(float(np.mean(epoch_losses)))
                if epoch_end or (t == 1 and self._check_after_first_step):
                    self._check_and_record(epoch_end)
        self._restore_best()
