"""Every dropout layer of cydrop.nn, on one base class.

:class:`DropoutBase` holds what all of them share (PyTorch's ``_DropoutNd`` in spirit): the rate,
validated once in ``__init__``; a mask stream (:class:`cydrop.SeedStream`) from which every
training-mode forward draws a fresh, non-overlapping part of the draw field, so one seed replays a
whole run; the cache between ``forward`` and ``backward``; ``extra_repr``; and ``mc_forward``,
the stochastic pass Monte Carlo dropout (:mod:`cydrop.nn.mc`) runs with masks from a stream of
its own. In evaluation mode (or at ``rate == 0``) every layer is the identity.

A layer defines three hooks, each one line into the functional op:

* ``_draws(x, fixed_mask)``: how many 16-bit draw positions one call on ``x`` uses;
* ``_apply(x, seed, offset, fixed_mask)``: the op, returning ``(out, cache)``;
* ``_backward(dout, cache)``: the op's backward.

:class:`ExactKDropout`, :class:`AlphaDropout` and :class:`GaussianDropout` share the first two
on one private base: each names its op and the draw positions it takes per element.

The layers: :class:`Dropout` (:func:`cydrop.dropout`), :class:`BroadcastDropout`,
:class:`SpatialDropout`, :class:`LockedDropout`, :class:`ExactKDropout`, :class:`AlphaDropout`,
:class:`GaussianDropout` (the ops of :mod:`cydrop.variants`). :class:`cydrop.nn.DropConnectDense`
drops weights and lives with :class:`cydrop.nn.Dense` in :mod:`cydrop.nn.linear`.
"""

import numpy as np

from cydrop import _core, _validation, _variant_params, variants
from cydrop._seeds import SeedStream

from .module import Module

__all__ = [
    "DropoutBase",
    "Dropout",
    "BroadcastDropout",
    "SpatialDropout",
    "LockedDropout",
    "ExactKDropout",
    "AlphaDropout",
    "GaussianDropout",
]


class DropoutBase(Module):
    """Base class of the dropout layers: rate, mask stream, cache and ``mc_forward``.

    Parameters
    ----------
    rate : float, default=0.5
        Probability of dropping an element, ``0 <= rate <= 1`` (PyTorch's ``p``, Keras's
        ``rate``); a subclass may narrow the range in ``_check_rate``.
    seed : int or None, default=None
        Seed of the layer's :class:`cydrop.SeedStream`: every training-mode forward draws a
        fresh, non-overlapping mask from it. ``None`` draws OS entropy.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores.

    Raises
    ------
    ValueError
        If ``rate`` is outside the allowed range (however large), or ``n_threads`` is 0.
    TypeError
        If ``rate`` is not a real number, or ``n_threads`` is not an int or None.

    Notes
    -----
    :class:`Dropout`, :class:`BroadcastDropout`, :class:`SpatialDropout` and
    :class:`LockedDropout` also take float16 and bfloat16 (``ml_dtypes.bfloat16``) inputs and
    keep their dtype (kept elements ``dtype(float32(x) * scale)``, as :func:`cydrop.dropout`);
    the other layers raise the TypeError of ``cydrop._validation.dtype_error``
    (``half_ok`` says which).
    """

    #: Can ``_apply`` share one mask across the batch axis itself (``fixed_mask=True``)?
    _fixed_native = False
    #: Does the layer take float16 and bfloat16 inputs (through a 16-bit kernel)?
    half_ok = False

    def __init__(self, rate=0.5, *, seed=None, n_threads=None):
        super().__init__()
        self.rate = self._check_rate(rate)
        self.n_threads = _validation.check_n_threads(n_threads)
        self.reseed(seed)

    @staticmethod
    def _check_rate(rate):
        return _validation.check_probability(rate, "rate")

    def reseed(self, seed):
        """Restart this layer's mask stream from ``seed``.

        Parameters
        ----------
        seed : int or None
            New stream seed; ``None`` draws OS entropy.

        Returns
        -------
        self : DropoutBase
        """
        self.seed = seed
        self._stream = SeedStream(seed)
        self._cache = None
        return self

    def next_mask_seed(self, draws):
        """Advance this layer's mask stream by ``draws`` positions.

        What a training-mode forward does before it draws its mask; a fused run
        (:mod:`cydrop.nn.fuse`) that computes the mask itself calls it instead, so the stream
        advances exactly as unfused.

        Parameters
        ----------
        draws : int
            16-bit draw positions the mask uses (``x.size`` for :class:`Dropout`).

        Returns
        -------
        seed, offset : int
            Where the mask starts in the draw field.
        """
        return self._stream.next(draws)

    def forward(self, x):
        """Drop (training mode) or return ``x`` itself (evaluation mode, or ``rate == 0``).

        Parameters
        ----------
        x : ndarray of float32 or float64

        Returns
        -------
        out : ndarray, same shape and dtype as ``x``
        """
        x = _validation.as_float_array(x, "x", half=self.half_ok)   # before the stream advances
        if not self.training or self.rate == 0.0:
            self._cache = None
            return x
        seed, offset = self.next_mask_seed(self._draws(x, False))
        out, self._cache = self._apply(x, seed, offset, False)
        return out

    def backward(self, dout):
        """Gradient of the last :meth:`forward` with respect to its input.

        The mask is a pure function of (seed, offset, element index) and is regenerated here
        rather than stored.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray
        """
        if self._cache is None:  # identity forward
            return dout
        return self._backward(dout, self._cache)

    def mc_forward(self, x, stream, fixed_mask=False):
        """Run one Monte Carlo pass with masks from ``stream``; no cache is kept.

        Parameters
        ----------
        x : ndarray of float32 or float64
        stream : cydrop.SeedStream
            Where the masks come from; the layer's own stream is untouched.
        fixed_mask : bool, default=False
            Every row of the batch (axis 0) sees the same mask: natively for the layers that
            broadcast, else by running each row with the same (seed, offset).

        Returns
        -------
        out : ndarray, same shape and dtype as ``x``
        """
        x = _validation.as_float_array(x, "x", half=self.half_ok)
        if self.rate == 0.0:
            return x
        if not fixed_mask or self._fixed_native:
            seed, offset = stream.next(self._draws(x, fixed_mask))
            return self._apply(x, seed, offset, fixed_mask)[0]
        seed, offset = stream.next(self._draws(x[:1], False))
        return np.concatenate([self._apply(x[i:i + 1], seed, offset, False)[0]
                               for i in range(len(x))])

    def _backward(self, dout, cache):
        return variants.backward(dout, cache, n_threads=self.n_threads)

    def extra_repr(self):
        return f"rate={self.rate:g}"


class Dropout(DropoutBase):
    """Inverted dropout layer over :func:`cydrop.dropout`.

    In training mode each element is zeroed with probability ``rate`` and
    the kept elements are scaled by ``1 / (1 - rate)``; in evaluation mode
    (or with ``rate == 0``) the layer is the identity. ``rate == 1`` zeros
    everything.

    Parameters
    ----------
    rate : float, default=0.5
        Probability of zeroing an element, ``0 <= rate <= 1`` (PyTorch's
        ``p``, Keras's ``rate``).
    seed : int or None, default=None
        Seed of this layer's :class:`cydrop.SeedStream`: every forward call
        draws a fresh, non-overlapping mask from it, so one seed reproduces
        a whole run. ``None`` draws OS entropy.
    n_threads : int or None, default=None
        Threads for the kernels (see :func:`cydrop.effective_n_threads`): any nonzero int,
        capped at the usable cores.

    Attributes
    ----------
    fusion : str
        ``'dropout'``: the last layer of a fused run (see :mod:`cydrop.nn.fuse`); a subclass
        that overrides ``forward`` or ``backward`` does not fuse.

    Raises
    ------
    ValueError
        If ``rate`` is outside ``[0, 1]`` (however large), or ``n_threads`` is 0.
    TypeError
        If ``rate`` is not a real number (an exception that is also a ValueError), or
        ``n_threads`` is not an int or None.

    Notes
    -----
    The mask is a pure function of (seed, offset, element index) and is
    regenerated in :meth:`backward` rather than stored. For Monte Carlo dropout with
    ``fixed_mask``, one mask is broadcast over the batch axis
    (:func:`cydrop.variants.dropout_nd`).

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=0)
    >>> layer
    Dropout(rate=0.5)
    >>> layer.eval().forward(np.ones(3))
    array([1., 1., 1.])
    """

    fusion = "dropout"
    _fixed_native = True
    half_ok = True

    def _draws(self, x, fixed_mask):
        return int(np.prod(x.shape[1:], dtype=np.int64)) if fixed_mask else x.size

    def _apply(self, x, seed, offset, fixed_mask):
        if fixed_mask:
            return variants.dropout_nd(x, self.rate, broadcast_axes=0, seed=seed, offset=offset,
                                       n_threads=self.n_threads)
        return _core.dropout(x, self.rate, training=True, seed=seed, offset=offset,
                             n_threads=self.n_threads)

    def _backward(self, dout, cache):
        return _core.dropout_backward(dout, cache, n_threads=self.n_threads)


class BroadcastDropout(DropoutBase):
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

    Raises
    ------
    ValueError, TypeError
        As :class:`DropoutBase`; a bad axis when the layer first sees an input.

    See Also
    --------
    cydrop.variants.dropout_nd
    """

    _fixed_native = True
    half_ok = True

    def __init__(self, rate=0.5, broadcast_axes=(), *, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        if isinstance(broadcast_axes, (int, np.integer)) and not isinstance(broadcast_axes, bool):
            broadcast_axes = (broadcast_axes,)
        self.broadcast_axes = tuple(broadcast_axes)

    def _axes(self, x, fixed_mask):
        axes = _variant_params.normalize_axes(self.broadcast_axes, x.ndim, "broadcast_axes")
        return tuple(sorted(set(axes) | {0})) if fixed_mask else axes

    def _draws(self, x, fixed_mask):
        axes = self._axes(x, fixed_mask)
        return int(np.prod([s for d, s in enumerate(x.shape) if d not in axes], dtype=np.int64))

    def _apply(self, x, seed, offset, fixed_mask):
        return variants.dropout_nd(x, self.rate, broadcast_axes=self._axes(x, fixed_mask),
                                   seed=seed, offset=offset, n_threads=self.n_threads)

    def extra_repr(self):
        return f"rate={self.rate:g}, broadcast_axes={self.broadcast_axes}"


class SpatialDropout(BroadcastDropout):
    """Channel dropout for (N, C, L), (N, C, H, W), (N, C, D, H, W): PyTorch's Dropout1d/2d/3d;
    with ``channel_axis=-1``, for channels-last (N, L, C), (N, H, W, C), (N, D, H, W, C).

    One mask value per (sample, channel), shared over the spatial axes. The (N, C) decisions
    are the same in both layouts for one seed (see :func:`cydrop.variants.spatial_dropout`).

    Parameters
    ----------
    rate, seed, n_threads
        As :class:`DropoutBase`.
    channel_axis : int, default=1
        The channel axis of the input: 1 (channels-first) or -1 (channels-last), or any axis
        but 0, the batch axis. Checked against each input's dimensions.

    See Also
    --------
    cydrop.variants.spatial_dropout
    """

    def __init__(self, rate=0.5, *, channel_axis=1, seed=None, n_threads=None):
        if isinstance(channel_axis, bool) or not isinstance(channel_axis, (int, np.integer)):
            raise TypeError(f"channel_axis must be an int, got {type(channel_axis).__name__} "
                            f"{channel_axis!r}")
        if channel_axis == 0:
            raise ValueError("channel_axis must not be axis 0, the batch axis (one decision per "
                             "sample and channel), got 0")
        super().__init__(rate, (), seed=seed, n_threads=n_threads)
        self.channel_axis = int(channel_axis)

    def _axes(self, x, fixed_mask):
        if x.ndim not in (3, 4, 5):
            raise ValueError(f"x must have 3, 4 or 5 dimensions (N, C, *spatial) for "
                             f"SpatialDropout, got shape {x.shape}")
        _, axes = _variant_params.channel_axes(getattr(self, "channel_axis", 1), x.ndim)
        return (0,) + axes if fixed_mask else axes

    def extra_repr(self):
        if getattr(self, "channel_axis", 1) == 1:
            return f"rate={self.rate:g}"
        return f"rate={self.rate:g}, channel_axis={self.channel_axis}"


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
        axes = _variant_params.normalize_axes((self.time_axis,), x.ndim, "time_axis")
        if fixed_mask:   # share across the batch axis as well
            batch = 1 if axes == (0,) else 0
            axes = tuple(sorted(set(axes) | {batch}))
        return axes

    def extra_repr(self):
        return f"rate={self.rate:g}, time_axis={self.time_axis}"


class _NoiseDropout(DropoutBase):
    """Base of the layers over one op of :mod:`cydrop.variants` that takes ``_per_element``
    16-bit draw positions per element: the stream advances ``_per_element * x.size``
    positions, and the op's ``offset`` counts its own draws (``offset // _per_element``)."""

    _per_element = 1

    def _draws(self, x, fixed_mask):
        return self._per_element * x.size

    def _apply(self, x, seed, offset, fixed_mask):
        return self._op(x, self.rate, seed=seed, offset=offset // self._per_element,
                        n_threads=self.n_threads)


class ExactKDropout(_NoiseDropout):
    """Drop exactly ``floor(rate * n + 0.5)`` of the ``n`` units of every row (last axis).

    Parameters
    ----------
    rate, seed, n_threads
        As :class:`DropoutBase`.

    See Also
    --------
    cydrop.variants.exact_k_dropout
    """

    _op = staticmethod(variants.exact_k_dropout)
    _per_element = 2


class AlphaDropout(_NoiseDropout):
    """AlphaDropout for SELU networks (keeps zero mean and unit variance), as PyTorch's.

    Parameters
    ----------
    rate, seed, n_threads
        As :class:`DropoutBase`.

    See Also
    --------
    cydrop.variants.alpha_dropout
    """

    _op = staticmethod(variants.alpha_dropout)


class GaussianDropout(_NoiseDropout):
    """Multiplicative ``N(1, rate / (1 - rate))`` noise, as Keras's GaussianDropout.

    Parameters
    ----------
    rate, seed, n_threads
        As :class:`DropoutBase`.

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
        return _variant_params.check_gauss_rate(rate)

    _op = staticmethod(variants.gaussian_dropout)
    _per_element = 4
