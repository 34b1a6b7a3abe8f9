"""Monte Carlo dropout: mean and spread of many stochastic passes of a model.

:func:`mc_predict` runs ``K`` passes, sample ``s`` seeded by :func:`mc_sample_seed`, so any
sample replays alone; :class:`SequentialMC` turns a :class:`cydrop.nn.Sequential` into such a
pass through its layers' ``mc_forward`` hooks.
"""

import numbers

import numpy as np

from cydrop import _validation
from cydrop._contract import GOLDEN, UINT64_MAX, mix64, seed_key
from cydrop._seeds import SeedStream, resolve_seed

__all__ = ["MCPrediction", "SequentialMC", "mc_predict", "mc_sample_seed"]


def mc_sample_seed(seed, sample):
    """Return the seed of Monte Carlo sample ``sample``.

    ``mc_sample_seed(seed, sample) = mix64(mix64(seed + G) ^ ((sample + 1) G))`` with
    ``G = 0x9e3779b97f4a7c15``; ``mix64`` is splitmix64's finaliser (``cydrop._contract``).
    Each sample's masks are a pure function of (seed, sample index).

    Parameters
    ----------
    seed : int
        ``0 <= seed < 2**64``.
    sample : int
        Sample index, ``0 <= sample < 2**64``.

    Returns
    -------
    sample_seed : int

    Raises
    ------
    TypeError, ValueError
        If ``seed`` or ``sample`` is not an int in ``[0, 2**64)``.
    """
    seed = _validation.check_uint64(seed, "seed")
    sample = _validation.check_uint64(sample, "sample")
    return mix64(seed_key(seed) ^ (((sample + 1) * GOLDEN) & UINT64_MAX))


class MCPrediction(tuple):
    """``(mean, std, samples)`` of :func:`mc_predict`; ``samples`` is None unless asked for.

    Parameters
    ----------
    mean, std : ndarray
        Mean and standard deviation (ddof=0) over the samples.
    samples : ndarray or None, default=None
        The (K, ...) stack of outputs.
    """

    __slots__ = ()

    def __new__(cls, mean, std, samples=None):
        return super().__new__(cls, (mean, std, samples))

    mean = property(lambda self: self[0], doc="mean over samples, shape of one output")
    std = property(lambda self: self[1], doc="standard deviation over samples (ddof=0)")
    samples = property(lambda self: self[2], doc="(K, ...) stack of outputs, or None")


def _softmax(s):
    z = s - s.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class SequentialMC:
    """SequentialMC(model)

    Adapter that turns a :class:`cydrop.nn.Sequential` into the callable
    ``f(X, seed, offset, fixed_mask=False)`` that :func:`mc_predict` expects.

    One call runs every layer once: deterministic layers (``Dense``, ``ReLU``, ...) in
    evaluation mode, and every dropout layer stochastically with masks from
    ``SeedStream(seed)`` started at ``offset``, taken in layer order, so a sample is a pure
    function of (seed, offset). Every dropout layer (:mod:`cydrop.nn.dropout`, and
    :class:`cydrop.nn.DropConnectDense`) runs through its ``mc_forward(x, stream, fixed_mask)``
    hook; :class:`cydrop.nn.Dropout` applies :func:`cydrop.dropout`, or with ``fixed_mask``
    :func:`cydrop.variants.dropout_nd` broadcast over the batch axis, so all inputs share one
    mask. The model's own mask streams, modes and parameters are left as they were.

    Parameters
    ----------
    model : cydrop.nn.Sequential
        Anything with ``layers`` (and ``eval()``, ``children()``).

    Raises
    ------
    TypeError
        If ``model`` has no ``layers``.
    """

    def __init__(self, model):
        if not hasattr(model, "layers"):
            raise TypeError(f"model must be a cydrop.nn.Sequential (with .layers), got "
                            f"{type(model).__name__}")
        self.model = model

    supports_fixed_mask = True

    def __call__(self, X, seed, offset=0, fixed_mask=False):
        """Run one stochastic pass whose masks are a pure function of (seed, offset).

        Parameters
        ----------
        X : ndarray of shape (N, ...)
        seed : int
        offset : int, default=0
        fixed_mask : bool, default=False
            Every row of ``X`` sees the same masks.

        Returns
        -------
        out : ndarray
        """
        stream = SeedStream(seed)
        if offset:
            stream.set_state({"seed": seed, "offset": offset})
        model = self.model
        was_training = [(layer, layer.training) for layer in _walk(model)]
        model.eval()
        try:
            x = X
            for layer in model.layers:
                if hasattr(layer, "mc_forward"):
                    x = layer.mc_forward(x, stream, fixed_mask)
                else:
                    x = layer.forward(x)
            return x
        finally:
            for layer, mode in was_training:
                layer.training = mode


def _walk(module):
    yield module
    for child in getattr(module, "children", lambda: ())():
        yield from _walk(child)


def mc_predict(f, X, mc_samples=20, *, seed=None, offset=0, fixed_mask=False, transform=None,
               return_samples=False):
    """Monte Carlo dropout prediction: mean and spread of ``mc_samples`` stochastic passes.

    Parameters
    ----------
    f : callable or cydrop.nn.Sequential
        ``f(X, seed, offset)`` runs ONE stochastic forward pass whose masks are a pure function
        of ``(seed, offset)`` and returns an array. A model with ``.layers`` (the trainer's
        ``Sequential``) is wrapped in :class:`SequentialMC`.
    X : ndarray of shape (N, ...)
    mc_samples : int, default=20
        Number of passes ``K >= 1``.
    seed : int or None, default=None
        Sample ``s`` runs ``f(X, mc_sample_seed(seed, s), offset)``, so any sample can be
        replayed alone. None draws a fresh seed from the OS (pass a seed to reproduce).
    offset : int, default=0
        Passed to every call.
    fixed_mask : bool, default=False
        Hold one mask fixed across all inputs of a sample (every row of ``X`` sees the same
        dropped units). Uses ``f(X, seed, offset, fixed_mask=True)`` when ``f`` has a true
        ``supports_fixed_mask`` attribute (as :class:`SequentialMC` does); otherwise calls
        ``f`` on each row separately with the same seed, which any pure ``f`` satisfies.
    transform : None, 'softmax' or callable, default=None
        Applied to each pass's output before averaging (``'softmax'`` turns class scores into
        probabilities).
    return_samples : bool, default=False
        Also return the (K, ...) stack of transformed outputs.

    Returns
    -------
    MCPrediction
        ``(mean, std, samples)``: mean and standard deviation (ddof=0) over samples, and the
        stack or None.

    Raises
    ------
    ValueError, TypeError
        For a bad ``mc_samples``, ``seed``, ``offset`` or ``transform``.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.nn.mc import mc_predict
    >>> from cydrop.variants import dropout_nd
    >>> f = lambda X, seed, offset: dropout_nd(X, 0.5, seed=seed, offset=offset)[0]
    >>> mean, std, _ = mc_predict(f, np.ones((2, 3)), 8, seed=0)
    >>> mean.shape, std.shape
    ((2, 3), (2, 3))
    """
    if hasattr(f, "layers"):
        f = SequentialMC(f)
    if not callable(f):
        raise TypeError(f"f must be callable as f(X, seed, offset), got {type(f).__name__}")
    if isinstance(mc_samples, bool) or not isinstance(mc_samples, numbers.Integral) \
            or mc_samples < 1:
        raise ValueError(f"mc_samples must be an integer >= 1, got {mc_samples!r}")
    seed = resolve_seed(seed)
    offset = _validation.check_uint64(offset, "offset")
    fixed_mask = _validation.check_bool(fixed_mask, "fixed_mask")
    return_samples = _validation.check_bool(return_samples, "return_samples")
    if transform == "softmax":
        transform = _softmax
    elif transform is None:
        transform = lambda s: s  # noqa: E731
    elif not callable(transform):
        raise ValueError(f"transform must be None, 'softmax' or a callable, got {transform!r}")
    native = fixed_mask and bool(getattr(f, "supports_fixed_mask", False))
    outs = []
    for s in range(int(mc_samples)):
        ss = mc_sample_seed(seed, s)
        if native:
            y = f(X, ss, offset, fixed_mask=True)
        elif fixed_mask:
            y = np.concatenate([np.asarray(f(X[i:i + 1], ss, offset)) for i in range(len(X))])
        else:
            y = f(X, ss, offset)
        outs.append(np.asarray(transform(np.asarray(y))))
    stack = np.stack(outs)
    return MCPrediction(stack.mean(axis=0), stack.std(axis=0),
                        stack if return_samples else None)
