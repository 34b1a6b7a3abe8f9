"""CS231n assignment 2's ``Solver``, with the assignment's bookkeeping.

The training loop is :class:`cydrop.nn.Solver`'s (one implementation); this subclass sets the
assignment's policies:

* ``iterations_per_epoch = max(num_train // batch_size, 1)``; every minibatch is
  ``np.random.choice(num_train, batch_size)`` (NumPy's global state, with replacement);
* accuracies are checked after the first iteration and at the end of every epoch, so the
  histories of ``num_epochs`` epochs have ``num_epochs + 1`` entries (when an epoch has more
  than one iteration), and the subsampled train accuracy uses ``np.random.choice`` too;
* log lines ``(Iteration 1 / 125) loss: ...`` every ``print_every`` iterations counted from the
  first, and ``(Epoch 0 / 25) train acc: ...; val_acc: ...``;
* updates are the functions of :mod:`cydrop.compat.cs231n.optim`, one config dict per parameter
  (``solver.optim_configs``), ``lr_decay`` multiplies each ``learning_rate`` after every epoch;
* with ``checkpoint_name``, every accuracy check pickles a checkpoint to
  ``'%s_epoch_%d.pkl' % (checkpoint_name, epoch)``;
* at the end ``model.params`` is replaced by ``best_params``.
"""

import pickle

import numpy as np

from cydrop.nn import solver as _nn_solver

from . import optim

__all__ = ["Solver"]

_DEFAULTS = {**_nn_solver.COMMON_DEFAULTS, "checkpoint_name": None}


class Solver(_nn_solver.Solver):
    """Train a classification model with the assignment's ``Solver`` semantics.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of ndarray) and ``loss(X, y=None)``.
    data : dict
        ``X_train``, ``y_train``, ``X_val``, ``y_val``.
    update_rule : str or callable, default='sgd'
        A function name of :mod:`cydrop.compat.cs231n.optim` (``'sgd'``, ``'sgd_momentum'``,
        ``'rmsprop'``, ``'adam'``) or a function ``rule(w, dw, config) -> (next_w, config)``.
    optim_config : dict or None, default=None
        Hyperparameters given to the update rule (copied once per parameter).
    lr_decay : float, default=1.0
        Multiplies every config's ``learning_rate`` after each epoch.
    batch_size : int, default=100
    num_epochs : int, default=10
    num_train_samples : int or None, default=1000
        Training examples sampled for the train accuracy (``None``: all).
    num_val_samples : int or None, default=None
        Validation examples sampled (``None``: all).
    checkpoint_name : str or None, default=None
        Prefix of the pickled checkpoints (one per accuracy check).
    print_every : int, default=10
    verbose : bool, default=True

    Attributes
    ----------
    loss_history, train_acc_history, val_acc_history : list
    best_val_acc : float
    best_params : dict
    optim_configs : dict of dict
    epoch : int

    Raises
    ------
    ValueError
        Unknown options (``Unrecognized arguments ...``), an unknown update rule, missing data
        keys, non-positive counts.
    """

    _check_after_first_step = True

    def __init__(self, model, data, **kwargs):
        opts = _nn_solver.parse_options(model, data, kwargs, _DEFAULTS)
        self._set_common(model, data, opts)
        self.eval_batch_size = 100
        self.optim_config = {} if opts["optim_config"] is None else opts["optim_config"]
        if not isinstance(self.optim_config, dict):
            raise TypeError(f"optim_config must be a dict, got "
                            f"{type(self.optim_config).__name__}")
        name = opts["checkpoint_name"]
        if name is not None and not isinstance(name, str):
            raise TypeError(f"checkpoint_name must be a str or None, got {type(name).__name__}")
        self.checkpoint_name = name
        rule = opts["update_rule"]
        if isinstance(rule, str):
            if rule not in optim.__all__:
                raise ValueError(f'Invalid update_rule "{rule}"; update_rule must be one of '
                                 f'{optim.__all__} or a function')
            rule = getattr(optim, rule)
        elif not callable(rule):
            raise ValueError(f"Invalid update_rule {rule!r}; update_rule must be one of "
                             f"{optim.__all__} or a function")
        self.update_rule = rule
        self._reset()

    def _reset(self):
        self._reset_histories()
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}

    # ------------------------------------------------------------------ the course's policies

    def _iterations_per_epoch(self, n):
        return max(n // self.batch_size, 1)

    def _epoch_batches(self, n, per_epoch):
        for _ in range(per_epoch):
            yield np.random.choice(n, self.batch_size)

    def _step(self, X_batch, y_batch):
        loss, grads = self.model.loss(X_batch, y_batch)
        self._apply_update(grads)
        return loss

    def _apply_update(self, grads):
        params = self.model.params
        for p, w in list(params.items()):
            next_w, next_config = self.update_rule(w, grads[p], self.optim_configs[p])
            params[p] = next_w
            self.optim_configs[p] = next_config

    def _decay_learning_rate(self):
        for config in self.optim_configs.values():
            if "learning_rate" in config:
                config["learning_rate"] *= self.lr_decay

    def _current_learning_rate(self):
        return next((c.get("learning_rate") for c in self.optim_configs.values()), None)

    def _subsample(self, n, num_samples):
        return np.random.choice(n, num_samples)

    def _prints_iteration(self, t):
        return (t - 1) % self.print_every == 0

    def _save_checkpoint(self):
        if self.checkpoint_name is None:
            return
        checkpoint = {
            "model": self.model,
            "update_rule": self.update_rule,
            "lr_decay": self.lr_decay,
            "optim_config": self.optim_config,
            "batch_size": self.batch_size,
            "num_train_samples": self.num_train_samples,
            "num_val_samples": self.num_val_samples,
            "epoch": self.epoch,
            "loss_history": self.loss_history,
            "train_acc_history": self.train_acc_history,
            "val_acc_history": self.val_acc_history,
        }
        filename = f"{self.checkpoint_name}_epoch_{self.epoch}.pkl"
        if self.verbose:
            self._print(f'Saving checkpoint to "{filename}"')
        with open(filename, "wb") as f:
            pickle.dump(checkpoint, f)

    def _restore_best(self):
        self.model.params = self.best_params

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Accuracy of the model on ``X`` (``num_samples`` rows drawn with
        ``np.random.choice`` when given and smaller than ``len(X)``).

        Parameters
        ----------
        X : ndarray of shape (N, ...)
        y : ndarray of shape (N,)
        num_samples : int or None, default=None
        batch_size : int, default=100

        Returns
        -------
        acc : float
        """
        return super().check_accuracy(X, y, num_samples=num_samples, batch_size=batch_size)
