"""Modern dropout layers: :class:`DropoutAdd` (dropout fused into the residual add),
:class:`DropPath` (stochastic depth), :class:`SoftmaxDropout` (attention probabilities) and
:class:`DropBlock2d` / :class:`DropBlock3d`, each on :class:`cydrop.nn.DropoutBase` (rate,
mask stream, cache) over the functional ops of :mod:`cydrop.residual`, :mod:`cydrop.attention`
and :mod:`cydrop.blocks`; and :func:`drop_path_rates`, the stochastic-depth paper's linear rule.

:class:`DropoutAdd` and :class:`SoftmaxDropout` run their op in evaluation mode too (dropout
off), so they share one forward/backward path of their own, ``_OpDropout``.
"""

import math

from cydrop import _validation, attention, blocks
from cydrop import residual as residual_ops

from .dropout import DropoutBase

__all__ = ["DropBlock2d", "DropBlock3d", "DropPath", "DropoutAdd", "SoftmaxDropout",
           "drop_path_rates"]


def drop_path_rates(max_rate, n_blocks):
    """Linearly increasing per-block drop-path rates, as timm builds them.

    timm's rule is ``torch.linspace(0, drop_path_rate, depth)``.

    Huang et al. (2016) give block ``l = 1 .. L`` the rate ``l / L * max_rate``; timm and
    torchvision's vision transformers start the line at 0 for the first block instead, which is
    what this returns.

    Parameters
    ----------
    max_rate : float
        The last block's rate, ``0 <= max_rate <= 1``.
    n_blocks : int
        Number of residual blocks, ``>= 1``.

    Returns
    -------
    rates : list of float
        ``max_rate * i / (n_blocks - 1)`` for block ``i`` (``[0.0]`` for one block).

    Raises
    ------
    TypeError, ValueError
        A bad ``max_rate`` or ``n_blocks``.

    Examples
    --------
    >>> drop_path_rates(0.2, 3)
    [0.0, 0.1, 0.2]
    """
    max_rate = _validation.check_probability(max_rate, "max_rate")
    if isinstance(n_blocks, bool) or not isinstance(n_blocks, int):
        raise TypeError(f"n_blocks must be an int >= 1, got {n_blocks!r} of type "
                        f"{type(n_blocks).__name__}")
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be an int >= 1, got {n_blocks}")
    if n_blocks == 1:
        return [0.0]
    return [max_rate * i / (n_blocks - 1) for i in range(n_blocks)]


class DropPath(DropoutBase):
    """Stochastic depth over :func:`cydrop.drop_path`: each sample of the branch is dropped
    with probability ``rate`` (timm's ``DropPath``).

    Parameters
    ----------
    rate : float, default=0.0
        Probability of dropping a sample (timm's default ``drop_prob=0.``).
    scale_by_keep : bool, default=True
    seed : int or None, default=None
    n_threads : int or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> DropPath(0.1, seed=0).eval().forward(np.ones((2, 3))).tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """

    def __init__(self, rate=0.0, *, scale_by_keep=True, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        self.scale_by_keep = _validation.check_bool(scale_by_keep, "scale_by_keep")

    def _draws(self, x, fixed_mask):
        return 1 if fixed_mask else x.shape[0]

    def _apply(self, x, seed, offset, fixed_mask):
        return residual_ops.drop_path(x, self.rate, training=True, seed=seed, offset=offset,
                                  scale_by_keep=self.scale_by_keep, n_threads=self.n_threads)

    def _backward(self, dout, cache):
        return residual_ops.drop_path_backward(dout, cache, n_threads=self.n_threads)

    def extra_repr(self):
        return f"rate={self.rate:g}" + ("" if self.scale_by_keep else ", scale_by_keep=False")


class _OpDropout(DropoutBase):
    """Base of the layers whose op runs in both modes, with dropout off in evaluation mode (or
    at ``rate == 0``), so that ``backward`` always needs a forward first.

    A subclass sets ``_op`` and ``_op_backward`` (the functional op and its backward, called
    with the rate, ``training``, ``seed``, ``offset`` and ``n_threads``) and ``_draws`` (as
    :class:`DropoutBase`); its ``forward`` runs :meth:`_run`, its ``backward`` :meth:`_backward`
    on :meth:`_last_cache`.
    """

    def _run(self, x, *inputs, **options):
        """``_op(x, *inputs, rate, ..., **options)``; the stream advances only in training mode
        at ``rate > 0``. Returns the output and keeps the cache."""
        x = _validation.as_float_array(x, "x")
        active = self.training and self.rate > 0.0
        seed, offset = self.next_mask_seed(self._draws(x, False)) if active else (None, 0)
        out, self._cache = self._op(x, *inputs, self.rate, training=active, seed=seed,
                                    offset=offset, n_threads=self.n_threads, **options)
        return out

    def _backward(self, dout, cache):
        return self._op_backward(dout, cache, n_threads=self.n_threads)


class DropoutAdd(_OpDropout):
    """``residual + dropout(x + bias)`` as one layer over :func:`cydrop.dropout_add`.

    ``forward(x, residual, bias=None)`` takes the branch output and the residual stream;
    ``backward(dout)`` returns ``(dx, dresidual, dbias)`` (``dbias`` None without a bias).

    Parameters
    ----------
    rate : float, default=0.1
        Drop probability.
    per_sample : bool, default=False
        One decision per sample: stochastic depth fused into the residual add.
    seed : int or None, default=None
    n_threads : int or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> layer = DropoutAdd(0.5, seed=0).eval()
    >>> layer.forward(np.ones(3), np.ones(3)).tolist()
    [2.0, 2.0, 2.0]
    """

    _op = staticmethod(residual_ops.dropout_add)
    _op_backward = staticmethod(residual_ops.dropout_add_backward)

    def __init__(self, rate=0.1, *, per_sample=False, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        self.per_sample = _validation.check_bool(per_sample, "per_sample")

    def _draws(self, x, fixed_mask):
        return x.shape[0] if self.per_sample else x.size

    def forward(self, x, residual=None, bias=None):
        """Compute ``residual + dropout(x + bias)``.

        Parameters
        ----------
        x : ndarray
        residual : ndarray or scalar, default=None
            The residual (None: 0).
        bias : ndarray or None, default=None

        Returns
        -------
        out : ndarray
        """
        return self._run(x, 0 if residual is None else residual, bias=bias,
                         per_sample=self.per_sample)

    def backward(self, dout):
        """Gradients of the last forward.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx, dresidual, dbias : ndarray, ndarray, ndarray or None
        """
        return self._backward(dout, self._last_cache("DropoutAdd"))

    def mc_forward(self, x, stream, fixed_mask=False):
        """Not available: the layer takes two inputs.

        Parameters
        ----------
        x, stream, fixed_mask
            As :meth:`cydrop.nn.DropoutBase.mc_forward`.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError("DropoutAdd takes two inputs and has no Monte Carlo pass")

    def extra_repr(self):
        return f"rate={self.rate:g}" + (", per_sample=True" if self.per_sample else "")


class SoftmaxDropout(_OpDropout):
    """Softmax then dropout of attention probabilities, over :func:`cydrop.softmax_dropout`.

    In evaluation mode (or at ``rate == 0``) it is the softmax alone (not the identity).

    Parameters
    ----------
    rate : float, default=0.1
    axis : int, default=-1
    seed : int or None, default=None
    n_threads : int or None, default=None

    Examples
    --------
    >>> import numpy as np
    >>> SoftmaxDropout(0.1, seed=0).eval().forward(np.zeros((1, 2))).tolist()
    [[0.5, 0.5]]
    """

    _op = staticmethod(attention.softmax_dropout)
    _op_backward = staticmethod(attention.softmax_dropout_backward)

    def __init__(self, rate=0.1, *, axis=-1, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise TypeError(f"axis must be an int, got {axis!r} of type {type(axis).__name__}")
        self.axis = axis

    def _draws(self, x, fixed_mask):
        return x.size

    def forward(self, x):
        """Softmax along ``axis``, then dropout in training mode.

        Parameters
        ----------
        x : ndarray

        Returns
        -------
        out : ndarray
        """
        return self._run(x, axis=self.axis)

    def backward(self, dout):
        """Gradient with respect to the scores.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray
        """
        return self._backward(dout, self._last_cache("SoftmaxDropout"))

    def mc_forward(self, x, stream, fixed_mask=False):
        """Not available: Monte Carlo dropout of attention probabilities is not supported.

        Parameters
        ----------
        x, stream, fixed_mask
            As :meth:`cydrop.nn.DropoutBase.mc_forward`.

        Raises
        ------
        NotImplementedError
            Always.
        """
        raise NotImplementedError("SoftmaxDropout has no Monte Carlo pass")

    def extra_repr(self):
        return f"rate={self.rate:g}, axis={self.axis}"


class _DropBlockNd(DropoutBase):
    _ndim = 4

    def __init__(self, rate=0.1, *, block_size=7, seed=None, n_threads=None):
        super().__init__(rate, seed=seed, n_threads=n_threads)
        self.block_size = blocks._check_block_size(block_size)

    def _draws(self, x, fixed_mask):
        if x.ndim != self._ndim:
            raise ValueError(f"x must be {self._ndim}-D for {type(self).__name__}, got shape "
                             f"{x.shape}")
        b = min(self.block_size, *x.shape[2:])
        return math.prod(x.shape[:2]) * math.prod(s - b + 1 for s in x.shape[2:])

    def _apply(self, x, seed, offset, fixed_mask):
        return blocks.drop_block(x, self.rate, block_size=self.block_size, training=True,
                                 seed=seed, offset=offset, n_threads=self.n_threads)

    def _backward(self, dout, cache):
        return blocks.drop_block_backward(dout, cache)

    def extra_repr(self):
        return f"rate={self.rate:g}, block_size={self.block_size}"


class DropBlock2d(_DropBlockNd):
    """DropBlock for (N, C, H, W) maps over :func:`cydrop.drop_block` (torchvision's
    ``DropBlock2d``).

    Parameters
    ----------
    rate : float, default=0.1
    block_size : int, default=7
    seed : int or None, default=None
    n_threads : int or None, default=None
    """

    _ndim = 4


class DropBlock3d(_DropBlockNd):
    """DropBlock for (N, C, D, H, W) maps over :func:`cydrop.drop_block` (torchvision's
    ``DropBlock3d``).

    Parameters
    ----------
    rate : float, default=0.1
    block_size : int, default=7
    seed : int or None, default=None
    n_threads : int or None, default=None
    """

    _ndim = 5
