"""The layer container: :class:`Sequential`."""

import numpy as np

from cydrop import _validation

from .dropout import Dropout, DropoutBase
from .fuse import FusedDenseReLUDropout, fusion_plan
from .loss import SoftmaxCrossEntropy
from .mc import mc_predict
from .module import Module, child_seeds

__all__ = ["Sequential"]


class Sequential(Module):
    """A chain of layers with a loss, in PyTorch form.

    Parameters
    ----------
    *layers : Module
        Layers applied in order.
    loss : Module or None, default=None
        Loss used by :meth:`loss`; ``None`` means
        :class:`SoftmaxCrossEntropy`.
    n_threads : int or None, default=None
        Thread count passed down to every layer: any nonzero int, capped at the usable cores
        when the kernels run.
    fuse : bool, default=True
        Run each ``Dense, ReLU[, Dropout]`` run of layers as one
        :class:`~cydrop.nn.fuse.FusedDenseReLUDropout` step: the bias add, the ReLU and the
        dropout mask in one kernel forward, and one mask-free kernel backward. The results are
        the same as unfused, bit for bit in the forward pass. Which layers fuse is their
        ``fusion`` role (:mod:`cydrop.nn.module`): :class:`Dense`, :class:`ReLU`,
        :class:`Dropout` and subclasses that keep their ``forward`` and ``backward``; the
        fused layers' own ``forward`` / ``backward`` are not called (the Dense's backward is).

    Attributes
    ----------
    layers : list of Module
    params : dict
        Every layer's parameters under ``"<index>.<name>"`` keys (the
        arrays themselves, not copies); assigning a dict copies into them.
    grads : dict
        Gradients under the same keys.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.nn import Dense, Dropout, ReLU
    >>> net = Sequential(Dense(2, 8, seed=0), ReLU(), Dropout(0.5, seed=1), Dense(8, 3, seed=2))
    >>> sorted(net.params)
    ['0.W', '0.b', '3.W', '3.b']
    >>> net.eval().training, net.layers[2].training
    (False, False)
    """

    def __init__(self, *layers, loss=None, n_threads=None, fuse=True):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layers[{i}] must be a cydrop.nn Module, "
                                f"got {type(layer).__name__}")
        self.layers = list(layers)
        self.criterion = SoftmaxCrossEntropy() if loss is None else loss
        self.n_threads = n_threads
        self.fuse = _validation.check_bool(fuse, "fuse")
        self._steps = None

    @property
    def n_threads(self):
        """int or None: thread count, passed down to every layer when set."""
        return self._n_threads

    @n_threads.setter
    def n_threads(self, value):
        value = _validation.check_n_threads(value)      # rejects 0 and non-ints now
        self._n_threads = value
        for layer in getattr(self, "layers", ()):
            layer.n_threads = value

    def children(self):
        """Return the layers, for :meth:`train` / :meth:`eval`.

        Returns
        -------
        children : tuple of Module
        """
        return tuple(self.layers)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    @property
    def params(self):
        """dict: every layer's arrays under ``"<index>.<name>"`` (live, not copies)."""
        return {f"{i}.{k}": v
                for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    @params.setter
    def params(self, values):
        own = self.params
        unknown = set(values) - set(own)
        if unknown:
            raise KeyError(f"params has unknown keys {sorted(unknown)}; expected {sorted(own)}")
        for k, v in values.items():
            own[k][...] = v

    @property
    def grads(self):
        """dict: the layers' last gradients, keyed like :attr:`params`."""
        return {f"{i}.{k}": v
                for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def steps(self):
        """Return the modules a forward pass runs, in order.

        With ``fuse``, each ``Dense, ReLU[, Dropout]`` run is one
        :class:`~cydrop.nn.fuse.FusedDenseReLUDropout`; every other layer is itself.

        Returns
        -------
        steps : list of Module
        """
        if not self.fuse:
            return list(self.layers)
        return fusion_plan(self.layers, n_threads=self.n_threads)

    def forward(self, x):
        """Run ``x`` through every layer in the current mode.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        scores : ndarray of shape (N, C)
        """
        schedule = getattr(self, "_rate_schedule", None)
        if schedule is not None and self.training:
            rate = schedule(self.schedule_step)
            for layer in self.layers:
                if isinstance(layer, DropoutBase):
                    layer.rate = layer._check_rate(rate)
        self._steps = self.steps()
        for step in self._steps:
            x = step.forward(x)
        return x

    def backward(self, dout, *, input_grad=True):
        """Back-propagate ``dout`` through every layer, last first.

        Parameters
        ----------
        dout : ndarray of shape (N, C)
        input_grad : bool, default=True
            ``False`` skips the gradient with respect to the network's input (the first
            layer's, when it is a :class:`Dense` or a fused run) and returns None: one matrix
            product less.

        Returns
        -------
        dx : ndarray of shape (N, D), or None
        """
        steps = self._steps if self._steps is not None else self.steps()
        for i in range(len(steps) - 1, -1, -1):
            step = steps[i]
            if i == 0 and not input_grad and (isinstance(step, FusedDenseReLUDropout)
                                               or step.fusion == "dense"):
                dout = step.backward(dout, need_dx=False)
            else:
                dout = step.backward(dout)
        return dout

    def regularization_loss(self):
        """Return the sum of the layers' penalties.

        Returns
        -------
        loss : float
        """
        return sum(layer.regularization_loss() for layer in self.layers)

    def loss(self, X, y=None):
        """Compute scores, or loss and gradients, in CS231n's ``loss`` form.

        Parameters
        ----------
        X : ndarray of shape (N, D)
        y : ndarray of shape (N,) or None, default=None
            Labels. ``None`` returns the scores (in the current mode).

        Returns
        -------
        scores : ndarray of shape (N, C)
            If ``y`` is None.
        loss : float
            Data loss plus penalties, if ``y`` is given.
        grads : dict
            Gradients keyed as ``params``, if ``y`` is given.
        """
        scores = self.forward(X)
        if y is None:
            return scores
        loss = self.criterion.forward(scores, y) + self.regularization_loss()
        self.backward(self.criterion.backward(), input_grad=False)
        return loss, self.grads

    def predict(self, X, batch_size=None, *, mc_samples=None, seed=None, fixed_mask=False):
        """Predict class labels in evaluation mode (the mode is restored), or MC-dropout.

        Parameters
        ----------
        X : ndarray of shape (N, D)
        batch_size : int or None, default=None
            Rows per forward pass; ``None`` means all at once.
        mc_samples : int or None, default=None
            ``K >= 1`` runs Monte Carlo dropout instead: ``K`` passes with the dropout layers
            active, sample ``s`` drawn from ``(seed, s)``
            (:func:`cydrop.nn.mc.mc_predict` with ``transform='softmax'``).
        seed : int or None, default=None
            Seed of the MC samples (None: fresh OS entropy).
        fixed_mask : bool, default=False
            With ``mc_samples``: one mask per sample shared by every row of ``X``.

        Returns
        -------
        labels : ndarray of shape (N,) of int
            Without ``mc_samples``.
        prediction : cydrop.nn.mc.MCPrediction
            With ``mc_samples``: ``(mean, std, samples)`` of the class probabilities, each
            (N, C); ``mean.argmax(axis=1)`` are the labels.
        """
        if mc_samples is not None:
            return mc_predict(self, X, mc_samples, seed=seed, fixed_mask=fixed_mask,
                              transform="softmax")
        was_training = self.training
        self.eval()
        try:
            n = X.shape[0]
            step = n if not batch_size else int(batch_size)
            parts = [self.forward(X[i:i + step]).argmax(axis=1)
                     for i in range(0, max(n, 1), max(step, 1))]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        finally:
            self.train(was_training)

    def set_rate_schedule(self, schedule):
        """Drive every dropout layer's rate by ``schedule`` (:mod:`cydrop.nn.schedules`).

        Before each training-mode forward, every :class:`DropoutBase` layer gets the rate
        ``schedule(self.schedule_step)``; :meth:`step_schedule` advances the step (the
        :class:`Solver` calls it once per update). ``None`` stops driving the rates.

        Parameters
        ----------
        schedule : callable or None
            ``schedule(step) -> rate``.

        Returns
        -------
        self : Sequential
        """
        if schedule is not None and not callable(schedule):
            raise TypeError(f"schedule must be callable (step -> rate) or None, got "
                            f"{type(schedule).__name__}")
        self._rate_schedule = schedule
        self.schedule_step = 0
        return self

    def step_schedule(self):
        """Advance the rate schedule by one training step (no-op without one).

        Returns
        -------
        step : int
            The new step.
        """
        self.schedule_step = getattr(self, "schedule_step", 0) + 1
        return self.schedule_step

    def dropout_layers(self):
        """Return the :class:`Dropout` layers, in order.

        Returns
        -------
        layers : list of Dropout
        """
        return [layer for layer in self.layers if isinstance(layer, Dropout)]

    def reseed(self, seed):
        """Restart every stochastic layer's mask stream from one model seed.

        Every layer with a ``reseed`` method takes part (the dropout layers of
        :mod:`cydrop.nn.dropout` and :class:`DropConnectDense`), in order.

        Child seeds are derived with :class:`numpy.random.SeedSequence`, so
        the layers draw independent masks.

        Parameters
        ----------
        seed : int or None

        Returns
        -------
        self : Sequential
        """
        drops = [layer for layer in self.layers if callable(getattr(layer, "reseed", None))]
        for layer, s in zip(drops, child_seeds(seed, len(drops))):
            layer.reseed(s)
        return self

    def extra_repr(self):
        return "\n" + "".join(f"  ({i}): {layer!r}\n" for i, layer in enumerate(self.layers))
