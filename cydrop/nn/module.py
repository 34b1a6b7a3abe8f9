"""The base class of every cydrop.nn layer, and the seed derivation the models share.

Each layer has a ``training`` flag, ``train(mode=True)`` / ``eval()`` that return ``self``,
``forward`` / ``backward`` that keep their cache on ``self`` between the two calls (as in nnfs),
and ``params`` / ``grads`` dicts under the same keys (as in CS231n), which the optimizers in
:mod:`cydrop.nn.optim` iterate.

Fusion protocol
---------------
A layer class may declare ``fusion``, the role it plays in a fused run of
:class:`cydrop.nn.Sequential` (see :mod:`cydrop.nn.fuse`): ``"dense"``, ``"relu"`` or
``"dropout"``; ``None`` (the default) never fuses. The role is inherited only by a subclass that
keeps its parent's computation: a subclass that overrides ``forward``, ``backward`` or one of the
hooks they run (``forward_unbiased``, ``_apply``, ``_draws``, ``_backward``) runs on its own,
unfused, unless its class body sets ``fusion`` again (and then it must compute what the fused
kernel computes).
"""

import numpy as np

__all__ = ["Module", "child_seeds"]

# The methods that define what a layer computes: overriding one drops the inherited fusion role.
_COMPUTATION = ("forward", "backward", "forward_unbiased", "_apply", "_draws", "_backward")


def child_seeds(seed, n):
    """Derive ``n`` independent integer seeds from one model seed.

    Uses :class:`numpy.random.SeedSequence` (no global state); ``seed=None``
    draws OS entropy once.
    """
    ss = np.random.SeedSequence(seed)
    return [int(s.generate_state(1, np.uint32)[0]) for s in ss.spawn(n)]


class Module:
    """Base class of every layer: a ``training`` flag and empty parameters.

    Attributes
    ----------
    training : bool
        True in training mode (dropout active), False in evaluation mode.
    n_threads : int or None
        Thread count passed to the dropout kernels; ``None`` uses all
        usable cores, any other nonzero int is capped at the usable cores
        (see :func:`cydrop.effective_n_threads`).
    fusion : {None, 'dense', 'relu', 'dropout'}
        Class attribute: this layer's role in a fused run of :class:`cydrop.nn.Sequential`
        (see the module's fusion protocol); ``None`` never fuses.
    """

    fusion = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a subclass that computes something else does not inherit its parent's fused role
        overrides = any(name in cls.__dict__ for name in _COMPUTATION)
        if overrides and "fusion" not in cls.__dict__:
            cls.fusion = None

    def __init__(self):
        self.training = True
        self.n_threads = None

    def children(self):
        """Return the sub-layers of this layer (none for a plain layer).

        Returns
        -------
        children : tuple of Module
        """
        return ()

    def train(self, mode=True):
        """Set training mode on this layer and every sub-layer.

        Parameters
        ----------
        mode : bool, default=True
            True for training mode, False for evaluation mode.

        Returns
        -------
        self : Module

        Raises
        ------
        TypeError
            If ``mode`` is not a bool.
        """
        if not isinstance(mode, bool):
            raise TypeError(f"mode must be a bool (training mode is boolean), got {mode!r}")
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Set evaluation mode; same as ``train(False)``.

        Returns
        -------
        self : Module
        """
        return self.train(False)

    @property
    def params(self):
        """dict of str to ndarray: trainable arrays (empty for this layer)."""
        return {}

    @property
    def grads(self):
        """dict of str to ndarray: gradients, same keys as ``params``."""
        return {}

    def regularization_loss(self):
        """Return the penalty this layer adds to the loss (0 here).

        Returns
        -------
        loss : float
        """
        return 0.0

    def __call__(self, x):
        return self.forward(x)

    def _last_cache(self, name):
        """Return the cache the last ``forward`` left on ``self._cache``.

        The one check of every layer whose ``backward`` needs a forward first; ``name`` is the
        layer named in the error (a subclass keeps its parent's message).

        Raises
        ------
        RuntimeError
            ``'<name>.backward called before forward'``, if there is no cache.
        """
        if self._cache is None:
            raise RuntimeError(f"{name}.backward called before forward")
        return self._cache

    def extra_repr(self):
        """Return the argument summary shown inside ``repr(layer)``.

        Returns
        -------
        text : str
        """
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"
