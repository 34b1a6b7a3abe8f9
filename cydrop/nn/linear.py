"""Fully connected layers: :class:`Dense` (alias :class:`Linear`) and :class:`DropConnectDense`."""

import numbers

import numpy as np

from cydrop import _validation, variants
from cydrop._seeds import SeedStream

from . import functional as F
from .module import Module

__all__ = ["Dense", "Linear", "DropConnectDense"]

_INITS = ("he", "xavier")


class Dense(Module):
    """Fully connected layer ``out = x @ W + b`` with optional L1/L2 penalties.

    Parameters
    ----------
    n_inputs : int
        Number of input features ``D``.
    n_outputs : int
        Number of output units ``M``.
    init : {'he', 'xavier'} or float, default='he'
        Weight initialisation: normal with std ``sqrt(2 / D)`` ('he'),
        ``sqrt(2 / (D + M))`` ('xavier'), or the given std (nnfs uses
        ``0.01``, CS231n's ``weight_scale``). Biases start at zero.
    weight_l1, weight_l2, bias_l1, bias_l2 : float, default=0.0
        Penalty strengths, as nnfs's ``weight_regularizer_l1`` etc.: the
        layer adds ``weight_l1 * sum|W| + weight_l2 * sum(W**2)`` (and the
        same on ``b``) to the loss and its gradient to ``grads``.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Dtype of the parameters.
    seed : int, numpy.random.Generator or None, default=None
        Seed of the weight initialisation (never NumPy's global RNG).

    Attributes
    ----------
    params : dict
        ``{'W': (D, M) array, 'b': (M,) array}``.
    grads : dict
        Gradients under the same keys, set by :meth:`backward`.

    fusion : str
        ``'dense'``: the first layer of a fused run (see :mod:`cydrop.nn.fuse`); a subclass
        that overrides ``forward`` or ``backward`` does not fuse.

    Raises
    ------
    ValueError
        For non-positive sizes, an unknown ``init``, or penalties or an ``init`` std that are
        negative or not finite.
    TypeError
        For a dtype other than native float32 / float64, or a penalty or ``init`` std that is
        not a real number.

    Notes
    -----
    A float16 or bfloat16 (``ml_dtypes.bfloat16``) input runs with float32/float64 master
    weights: parameters and gradients stay in ``dtype``, the input is widened exactly, the
    product is computed in ``dtype``, and the output (and ``dx`` in backward) is rounded back
    to the input's dtype. A fused Dense-ReLU-Dropout run (:class:`cydrop.nn.Sequential`) rounds
    ``x @ W`` and the bias to the input's dtype before its 16-bit kernel, so it agrees with the
    unfused run to 16-bit rounding, not bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dense(3, 2, seed=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
    """

    fusion = "dense"

    def __init__(self, n_inputs, n_outputs, *, init="he", weight_l1=0.0, weight_l2=0.0,
                 bias_l1=0.0, bias_l2=0.0, dtype=np.float64, seed=None):
        super().__init__()
        for name, v in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        dtype = _validation.check_native_float_dtype(dtype, "dtype")
        if isinstance(init, str):
            if init not in _INITS:
                raise ValueError(f"init must be one of {_INITS} or a float std, got {init!r}")
            std = np.sqrt(2.0 / n_inputs) if init == "he" else np.sqrt(2.0 / (n_inputs + n_outputs))
        else:
            std = _validation.check_real(init, "init", low=0.0)
        self.init = init
        self.weight_l1 = _validation.check_real(weight_l1, "weight_l1", low=0.0)
        self.weight_l2 = _validation.check_real(weight_l2, "weight_l2", low=0.0)
        self.bias_l1 = _validation.check_real(bias_l1, "bias_l1", low=0.0)
        self.bias_l2 = _validation.check_real(bias_l2, "bias_l2", low=0.0)
        rng = np.random.default_rng(seed)
        self._params = {
            "W": (std * rng.standard_normal((n_inputs, n_outputs))).astype(dtype),
            "b": np.zeros(n_outputs, dtype=dtype),
        }
        self._grads = {k: np.zeros_like(v) for k, v in self._params.items()}
        self._cache = None

    @property
    def params(self):
        """dict: ``{'W': weights (D, M), 'b': biases (M,)}``."""
        return self._params

    @property
    def grads(self):
        """dict: gradients of the last :meth:`backward`, keys as ``params``."""
        return self._grads

    def forward(self, x):
        """Compute ``x @ W + b``.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        out : ndarray of shape (N, M)
        """
        x, half = self._widen(x)
        out, self._cache = F.affine_forward(x, self._params["W"], self._params["b"])
        return out if half is None else out.astype(half)

    def _widen(self, x):
        """A float16/bfloat16 ``x`` in the parameters' dtype (exact), and the 16-bit dtype that
        activations and ``dx`` are cast back to (None for any other ``x``, left as is).

        The dtype rule of 16-bit runs: parameters, gradients and the matrix product stay in the
        layer's dtype (float32 master weights); only what flows between layers is 16-bit."""
        dt = getattr(x, "dtype", None)
        if isinstance(dt, np.dtype) and _validation.half_format(dt) is not None:
            self._half = dt
            return np.asarray(x).astype(self._params["W"].dtype), dt
        self._half = None
        return x, None

    def forward_unbiased(self, x):
        """Compute ``x @ W`` without the bias, keeping the cache :meth:`backward` needs.

        The first step of a fused run (:class:`cydrop.nn.fuse.FusedDenseReLUDropout`), which
        adds the bias in its kernel. :meth:`backward` afterwards gives the same gradients as
        after :meth:`forward`.

        Parameters
        ----------
        x : ndarray of shape (N, D)
            Converted to native float32 / float64 first; float16 / bfloat16 as in
            :meth:`forward` (``z`` is then cast back to ``x``'s dtype).

        Returns
        -------
        z : ndarray of shape (N, M)
            A fresh array, which the caller may overwrite.

        Raises
        ------
        ValueError
            If the flattened width of ``x`` is not ``D``.
        """
        x = _validation.as_float_array(x, "x", half=True)
        x, half = self._widen(x)
        w, b = self._params["W"], self._params["b"]
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != w.shape[0]:
            raise ValueError(f"x must have {w.shape[0]} features per example to match w of shape "
                             f"{w.shape}, got x of shape {x.shape}")
        self._cache = (x, w, b)
        return x2 @ w if half is None else (x2 @ w).astype(half)

    def backward(self, dout, *, need_dx=True):
        """Back-propagate ``dout`` and store ``grads`` (penalties included).

        Parameters
        ----------
        dout : ndarray of shape (N, M)
        need_dx : bool, default=True
            ``False`` skips the input gradient and returns None (for a first layer).

        Returns
        -------
        dx : ndarray of shape (N, D), or None

        Raises
        ------
        RuntimeError
            If called before :meth:`forward`.
        """
        cache = self._last_cache("Dense")
        half = getattr(self, "_half", None)
        if half is not None:
            dout = np.asarray(dout).astype(self._params["W"].dtype)
        dx, dw, db = F.affine_backward(dout, cache, need_dx=need_dx)
        self._store_grads(dw, db)
        return dx if half is None or dx is None else dx.astype(half)

    def _store_grads(self, dw, db):
        """Add the penalties' gradients to ``dw`` and ``db`` (in place) and store both."""
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

    def regularization_loss(self):
        """Return ``l1 * sum|p| + l2 * sum(p**2)`` over weights and biases.

        Returns
        -------
        loss : float
        """
        w, b = self._params["W"], self._params["b"]
        loss = 0.0
        if self.weight_l1:
            loss += self.weight_l1 * float(np.abs(w).sum())
        if self.weight_l2:
            loss += self.weight_l2 * float((w * w).sum())
        if self.bias_l1:
            loss += self.bias_l1 * float(np.abs(b).sum())
        if self.bias_l2:
            loss += self.bias_l2 * float((b * b).sum())
        return loss

    def extra_repr(self):
        d, m = self._params["W"].shape
        text = f"{d}, {m}, init={self.init!r}"
        for name in ("weight_l1", "weight_l2", "bias_l1", "bias_l2"):
            if getattr(self, name):
                text += f", {name}={getattr(self, name):g}"
        return text


Linear = Dense


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
        Dense's fused path is not used: this class overrides ``forward``.
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
        """Restart the weight-mask stream from ``seed``.

        Parameters
        ----------
        seed : int or None
            New stream seed; ``None`` draws OS entropy.

        Returns
        -------
        self : DropConnectDense
        """
        self.mask_seed = seed
        self._stream = SeedStream(seed)
        self._dc_cache = None
        return self

    def _masked(self, x, seed, offset):
        return variants.dropconnect_forward(x, self._params["W"], self._params["b"], self.rate,
                                     seed=seed, offset=offset, n_threads=self.n_threads)

    def forward(self, x):
        """Compute ``x @ W_eff + b`` in training mode (``W_eff`` a masked, scaled ``W``), else
        ``x @ W + b``.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        out : ndarray of shape (N, M)
        """
        if not self.training or self.rate == 0.0:
            self._dc_cache = None
            return super().forward(x)
        seed, offset = self._stream.next(self._params["W"].size)
        out, self._dc_cache = self._masked(x, seed, offset)
        self._cache = None
        return out

    def backward(self, dout):
        """Back-propagate ``dout``; ``grads['W']`` is masked by the forward's weight mask.

        Parameters
        ----------
        dout : ndarray of shape (N, M)

        Returns
        -------
        dx : ndarray of shape (N, D)
        """
        if self._dc_cache is None:
            return super().backward(dout)
        dx, dw, db = variants.dropconnect_backward(dout, self._dc_cache,
                                                   n_threads=self.n_threads)
        self._store_grads(dw, db)
        return dx

    def mc_forward(self, x, stream, fixed_mask=False):
        """Run one Monte Carlo pass with a weight mask from ``stream`` (shared by every input).

        Parameters
        ----------
        x : ndarray of shape (N, D)
        stream : cydrop.SeedStream
            Where the mask's (seed, offset) comes from; the layer's own stream is untouched.
        fixed_mask : bool, default=False
            Ignored: one weight mask serves every input anyway.

        Returns
        -------
        out : ndarray of shape (N, M)
        """
        if self.rate == 0.0:
            return variants.dropconnect_forward(x, self._params["W"], self._params["b"], 0.0,
                                         training=False)[0]
        seed, offset = stream.next(self._params["W"].size)
        return self._masked(x, seed, offset)[0]

    def extra_repr(self):
        return super().extra_repr() + f", rate={self.rate:g}"
