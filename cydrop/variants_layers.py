"""Layers for the dropout variants, in the form of :mod:`cydrop.nn.layers`.

Each layer is a :class:`cydrop.nn.Module`: a ``training`` flag, ``train()`` / ``eval()`` that
return ``self``, ``forward(x)`` / ``backward(dout)`` keeping the cache on ``self``, ``params`` /
``grads`` dicts (only :class:`DropConnectDense` has any), so they plug into
:class:`cydrop.nn.Sequential` and its optimizers. Every training-mode forward draws a fresh,
non-overlapping part of the draw field from the layer's :class:`cydrop.SeedStream`, so one seed
replays a whole run. In evaluation mode every layer is the identity (DropConnectDense the plain
affine map).

For Monte Carlo dropout each stochastic layer also has
``mc_forward(x, stream, fixed_mask=False)``, which runs the stochastic forward with masks taken
from ``stream`` (not the layer's own) and keeps no cache; :class:`cydrop.variants.SequentialMC`
calls it.
"""

import numpy as np

from cydrop import _validation
from cydrop import variants as V
from cydrop._seeds import SeedStream
from cydrop.nn.layers import Dense, Module

__all__ = [
    "AlphaDropout",
    "BroadcastDropout",
    "DropConnectDense",
    "ExactKDropout",
    "GaussianDropout",
    "LockedDropout",
    "SpatialDropout",
]


class _StochasticLayer(Module):
    """Common machinery: rate, a mask stream, the cache, ``mc_forward``.

    Subclasses define ``_draws(x, fixed_mask)`` (16-bit draw positions one call uses) and
    ``_apply(x, seed, offset, fixed_mask)`` returning ``(out, cache)``.
    """

    _fixed_native = False    # can _apply share one mask across the batch axis itself?

    def __init__(self, rate=0.5, *, seed=None, n_threads=None):
        super().__init__()
        self.rate = self._check_rate(rate)
        self.n_threads = _validation.check_n_threads(n_threads)   # any nonzero int, or None
        self.reseed(seed)

    @staticmethod
    def _check_rate(rate):
        # huge numbers (10**400) are a ValueError naming rate; non-numbers a TypeError
        return _validation.check_probability(rate, "rate")

    def reseed(self, seed):
        """Restart this layer's mask stream from ``seed`` (None: OS entropy); returns self."""
        self.seed = seed
        self._stream = SeedStream(seed)
        self._cache = None
        return self

    def forward(self, x):
        """Stochastic forward in training mode, the identity in evaluation mode.

        Parameters
        ----------
        x : ndarray of float32 or float64

        Returns
        -------
        out : ndarray, same shape and dtype as ``x``
        """
        x = _validation.as_float_array(x, "x")        # before the stream advances
        if not self.training or self.rate == 0.0:
            self._cache = None
            return x
        seed, offset = self._stream.next(self._draws(x, False))
        out, self._cache = self._apply(x, seed, offset, False)
        return out

    def backward(self, dout):
        """Gradient of the last :meth:`forward` with respect to its input.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray
        """
        if self._cache is None:
            return dout
        return V.backward(dout, self._cache, n_threads=self.n_threads)

    def mc_forward(self, x, stream, fixed_mask=False):
        """One Monte Carlo pass with masks from ``stream``; no cache is kept.

        With ``fixed_mask`` every row of the batch (axis 0) sees the same mask: natively for the
        broadcast layers, else by running each row with the same (seed, offset).
        """
        x = _validation.as_float_array(x, "x")
        if self.rate == 0.0:
            return x
        if not fixed_mask or self._fixed_native:
            seed, offset = stream.next(self._draws(x, fixed_mask))
            return self._apply(x, seed, offset, fixed_mask)[0]
        seed, offset = stream.next(self._draws(x[:1], False))
        return np.concatenate([self._apply(x[i:i + 1], seed, offset, False)[0]
                               for i in range(len(x))])

    def extra_repr(self):
        return f"rate={self.rate:g}"


class BroadcastDropout(_StochasticLayer):
    """Dropout with one mask value shared along ``broadcast_axes`` (Flax's ``broadcast_dims``).

    Parameters
    ----------
    rate : float, default=0.5
        Drop probability.
    broadcast_axes : int or tuple of int, default=()
        Axes along which the mask is shared.
    seed : int or None, default=None
        Seed of the layer's mask stream.
    n_threads : int or None, default=None
        Threads for the kernels: any nonzero int, capped at the usable cores.

    See Also
    --------
    cydrop.variants.dropout_nd
    """

    _fixed_native = True

    def __init__(self, rate=0.5, broadcast_axes=(), *, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        if isinstance(broadcast_axes, (int, np.integer)) and not isinstance(broadcast_axes, bool):
            broadcast_axes = (broadcast_axes,)
        self.broadcast_axes = tuple(broadcast_axes)

    def _axes(self, x, fixed_mask):
        axes = V._normalize_axes(self.broadcast_axes, x.ndim, "broadcast_axes")
        return tuple(sorted(set(axes) | {0})) if fixed_mask else axes

    def _draws(self, x, fixed_mask):
        axes = self._axes(x, fixed_mask)
        return int(np.prod([s for d, s in enumerate(x.shape) if d not in axes], dtype=np.int64))

    def _apply(self, x, seed, offset, fixed_mask):
        return V.dropout_nd(x, self.rate, broadcast_axes=self._axes(x, fixed_mask), seed=seed,
                            offset=offset, n_threads=self.n_threads)

    def extra_repr(self):
        return f"rate={self.rate:g}, broadcast_axes={self.broadcast_axes}"


class SpatialDropout(BroadcastDropout):
    """Channel dropout for (N, C, L), (N, C, H, W), (N, C, D, H, W): PyTorch's Dropout1d/2d/3d.

    One mask value per (sample, channel), shared over the spatial axes.
    """

    def __init__(self, rate=0.5, *, seed=None, n_threads=None):
        super().__init__(rate, (), seed=seed, n_threads=n_threads)

    def _axes(self, x, fixed_mask):
        if x.ndim not in (3, 4, 5):
            raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial) for "
                             f"SpatialDropout, got shape {x.shape}")
        axes = tuple(range(2, x.ndim))
        return (0,) + axes if fixed_mask else axes

    def extra_repr(self):
        return f"rate={self.rate:g}"


class LockedDropout(BroadcastDropout):
    """Locked (variational) dropout: one mask for every time step of a sequence.

    Parameters
    ----------
    rate : float, default=0.5
    time_axis : int, default=0
        0 for (T, N, F) inputs, 1 for (N, T, F).
    seed, n_threads
        As :class:`BroadcastDropout`.
    """

    def __init__(self, rate=0.5, *, time_axis=0, seed=None, n_threads=None):
        super().__init__(rate, (time_axis,), seed=seed, n_threads=n_threads)
        self.time_axis = time_axis

    def _axes(self, x, fixed_mask):
        if x.ndim < 2:
            raise ValueError(f"x must have at least 2 dimensions for LockedDropout, got shape "
                             f"{x.shape}")
        axes = V._normalize_axes((self.time_axis,), x.ndim, "time_axis")
        if fixed_mask:   # share across the batch axis as well
            batch = 1 if axes == (0,) else 0
            axes = tuple(sorted(set(axes) | {batch}))
        return axes

    def extra_repr(self):
        return f"rate={self.rate:g}, time_axis={self.time_axis}"


class ExactKDropout(_StochasticLayer):
    """Drop exactly ``floor(rate * n + 0.5)`` of the ``n`` units of every row (last axis).

    See Also
    --------
    cydrop.variants.exact_k_dropout
    """

    def _draws(self, x, fixed_mask):
        return 2 * x.size

    def _apply(self, x, seed, offset, fixed_mask):
        return V.exact_k_dropout(x, self.rate, seed=seed, offset=offset // 2,
                                 n_threads=self.n_threads)


class AlphaDropout(_StochasticLayer):
    """AlphaDropout for SELU networks (keeps zero mean and unit variance), as PyTorch's.

    See Also
    --------
    cydrop.variants.alpha_dropout
    """

    def _draws(self, x, fixed_mask):
        return x.size

    def _apply(self, x, seed, offset, fixed_mask):
        return V.alpha_dropout(x, self.rate, seed=seed, offset=offset, n_threads=self.n_threads)


class GaussianDropout(_StochasticLayer):
    """Multiplicative ``N(1, rate / (1 - rate))`` noise, as Keras's GaussianDropout.

    Raises
    ------
    ValueError
        If ``rate`` is not in ``[0, 1)``.

    See Also
    --------
    cydrop.variants.gaussian_dropout
    """

    @staticmethod
    def _check_rate(rate):
        return V._check_gauss_rate(rate)

    def _draws(self, x, fixed_mask):
        return 4 * x.size

    def _apply(self, x, seed, offset, fixed_mask):
        return V.gaussian_dropout(x, self.rate, seed=seed, offset=offset // 4,
                                  n_threads=self.n_threads)


class DropConnectDense(Dense):
    """Fully connected layer with DropConnect: each step drops WEIGHTS with probability ``rate``.

    Parameters
    ----------
    n_inputs, n_outputs : int
    rate : float, default=0.5
        Probability of dropping each weight in training mode; kept weights are scaled by the
        inverse realised keep probability, so evaluation mode uses ``W`` itself.
    init, weight_l1, weight_l2, bias_l1, bias_l2, dtype
        As :class:`cydrop.nn.Dense`.
    seed : int or None, default=None
        Seed of the weight initialisation (as :class:`cydrop.nn.Dense`).
    mask_seed : int or None, default=None
        Seed of the weight-mask stream (one mask per forward call, shared by the batch).
    n_threads : int or None, default=None
        Threads for the kernels: any nonzero int, capped at the usable cores.

    Attributes
    ----------
    params : dict
        ``{'W': (D, M), 'b': (M,)}``.
    grads : dict
        Gradients under the same keys (masked ``dW``, penalties added).

    See Also
    --------
    cydrop.variants.dropconnect_forward
    """

    def __init__(self, n_inputs, n_outputs, rate=0.5, *, init="he", weight_l1=0.0,
                 weight_l2=0.0, bias_l1=0.0, bias_l2=0.0, dtype=np.float64, seed=None,
                 mask_seed=None, n_threads=None):
        super().__init__(n_inputs, n_outputs, init=init, weight_l1=weight_l1,
                         weight_l2=weight_l2, bias_l1=bias_l1, bias_l2=bias_l2, dtype=dtype,
                         seed=seed)
        self.rate = _validation.check_probability(rate, "rate")
        self.n_threads = _validation.check_n_threads(n_threads)   # any nonzero int, or None
        self.reseed(mask_seed)

    def reseed(self, seed):
        """Restart the weight-mask stream from ``seed``; returns self."""
        self.mask_seed = seed
        self._stream = SeedStream(seed)
        self._dc_cache = None
        return self

    def _masked(self, x, seed, offset):
        return V.dropconnect_forward(x, self._params["W"], self._params["b"], self.rate,
                                     seed=seed, offset=offset, n_threads=self.n_threads)

    def forward(self, x):
        """``x @ W_eff + b`` in training mode (``W_eff`` a masked, scaled ``W``), else
        ``x @ W + b``."""
        if not self.training or self.rate == 0.0:
            self._dc_cache = None
            return super().forward(x)
        seed, offset = self._stream.next(self._params["W"].size)
        out, self._dc_cache = self._masked(x, seed, offset)
        self._cache = None
        return out

    def backward(self, dout):
        """Back-propagate ``dout``; ``grads['W']`` is masked by the forward's weight mask."""
        if self._dc_cache is None:
            return super().backward(dout)
        dx, dw, db = V.dropconnect_backward(dout, self._dc_cache, n_threads=self.n_threads)
        w, b = self._params["W"], self._params["b"]
        if self.weight_l1:
            dw += self.weight_l1 * np.sign(w)
        if self.weight_l2:
            dw += (2.0 * self.weight_l2) * w
        if self.bias_l1:
            db += self.bias_l1 * np.sign(b)
        if self.bias_l2:
            db += (2.0 * self.bias_l2) * b
        self._grads["W"] = dw
        self._grads["b"] = db
        return dx

    def mc_forward(self, x, stream, fixed_mask=False):
        """One Monte Carlo pass with a weight mask from ``stream`` (shared by every input)."""
        if self.rate == 0.0:
            return V.dropconnect_forward(x, self._params["W"], self._params["b"], 0.0,
                                         training=False)[0]
        seed, offset = stream.next(self._params["W"].size)
        return self._masked(x, seed, offset)[0]

    def extra_repr(self):
        return super().extra_repr() + f", rate={self.rate:g}"
