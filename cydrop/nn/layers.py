"""Layer classes in PyTorch form over the CS231n-style functional core.

Each layer has a ``training`` flag, ``train(mode=True)`` / ``eval()`` that
return ``self``, ``forward`` / ``backward`` that keep their cache on
``self`` between the two calls (as in nnfs), and ``params`` / ``grads``
dicts under the same keys (as in CS231n), which the optimizers in
:mod:`cydrop.nn.optim` iterate.

In cydrop's own API the dropout argument is ``rate``: the probability of
*zeroing* an element. Kept elements are scaled so that the expected output
equals the input (inverted dropout).
"""

import numbers

import numpy as np

import cydrop as _cydrop
from cydrop import _validation
from cydrop import fused as _fused

from . import functional as F

__all__ = [
    "Module",
    "Dense",
    "Linear",
    "ReLU",
    "Dropout",
    "SoftmaxCrossEntropy",
    "Sequential",
]

_INITS = ("he", "xavier")


def _check_nonneg(value, name):
    """``value`` as a float >= 0; a huge number (``10**400``) is a ValueError, not an
    OverflowError."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        try:
            as_float = float(value)
        except OverflowError:
            ok = False
    if not ok or not as_float >= 0:
        raise ValueError(f"{name} must be a real number >= 0, got {_validation._short(value)}")
    return as_float


def _check_rate(rate, name="rate"):
    """``rate`` as a float in [0, 1]: a TypeError for a non-number, a ValueError naming ``name``
    and the value for a number outside [0, 1] (NaN and ``10**400`` included)."""
    return _validation.check_probability(rate, name)


def _child_seeds(seed, n):
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
    """

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

    def extra_repr(self):
        """Return the argument summary shown inside ``repr(layer)``.

        Returns
        -------
        text : str
        """
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


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

    Raises
    ------
    ValueError
        For non-positive sizes, an unknown ``init``, negative penalties or a
        non-float dtype.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dense(3, 2, seed=0)
    >>> layer.forward(np.ones((4, 3))).shape
    (4, 2)
    """

    def __init__(self, n_inputs, n_outputs, *, init="he", weight_l1=0.0, weight_l2=0.0,
                 bias_l1=0.0, bias_l2=0.0, dtype=np.float64, seed=None):
        super().__init__()
        for name, v in (("n_inputs", n_inputs), ("n_outputs", n_outputs)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        if isinstance(init, str):
            if init not in _INITS:
                raise ValueError(f"init must be one of {_INITS} or a float std, got {init!r}")
            std = np.sqrt(2.0 / n_inputs) if init == "he" else np.sqrt(2.0 / (n_inputs + n_outputs))
        else:
            std = _check_nonneg(init, "init")
        self.init = init
        self.weight_l1 = _check_nonneg(weight_l1, "weight_l1")
        self.weight_l2 = _check_nonneg(weight_l2, "weight_l2")
        self.bias_l1 = _check_nonneg(bias_l1, "bias_l1")
        self.bias_l2 = _check_nonneg(bias_l2, "bias_l2")
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
        out, self._cache = F.affine_forward(x, self._params["W"], self._params["b"])
        return out

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
        if self._cache is None:
            raise RuntimeError("Dense.backward called before forward")
        dx, dw, db = F.affine_backward(dout, self._cache, need_dx=need_dx)
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


class ReLU(Module):
    """Rectified linear unit, ``max(x, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> ReLU().forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    """

    def __init__(self):
        super().__init__()
        self._cache = None

    def forward(self, x):
        """Return ``np.maximum(x, 0)``.

        Parameters
        ----------
        x : ndarray

        Returns
        -------
        out : ndarray
        """
        out, self._cache = F.relu_forward(x)
        return out

    def backward(self, dout):
        """Pass ``dout`` where the forward input was positive.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray
        """
        if self._cache is None:
            raise RuntimeError("ReLU.backward called before forward")
        return F.relu_backward(dout, self._cache)


class Dropout(Module):
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
    regenerated in :meth:`backward` rather than stored.

    Examples
    --------
    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=0)
    >>> layer
    Dropout(rate=0.5)
    >>> layer.eval().forward(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, rate=0.5, *, seed=None, n_threads=None):
        super().__init__()
        self.rate = _check_rate(rate)
        self.n_threads = _validation.check_n_threads(n_threads)   # rejects 0 and non-ints now
        self.reseed(seed)

    def reseed(self, seed):
        """Restart this layer's mask stream from ``seed``.

        Parameters
        ----------
        seed : int or None
            New stream seed; ``None`` draws OS entropy.

        Returns
        -------
        self : Dropout
        """
        self.seed = seed
        self._stream = _cydrop.SeedStream(seed)
        self._cache = None
        return self

    def forward(self, x):
        """Apply dropout (training mode) or return ``x`` (evaluation mode).

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
        seed, offset = self._stream.next(x.size)
        out, self._cache = _cydrop.dropout(
            x, self.rate, training=True, seed=seed, offset=offset, n_threads=self.n_threads
        )
        return out

    def backward(self, dout):
        """Multiply ``dout`` by the forward mask and scale.

        Parameters
        ----------
        dout : ndarray

        Returns
        -------
        dx : ndarray
        """
        if self._cache is None:  # identity forward
            return dout
        return _cydrop.dropout_backward(dout, self._cache, n_threads=self.n_threads)

    def extra_repr(self):
        return f"rate={self.rate:g}"


class SoftmaxCrossEntropy(Module):
    """Fused softmax + mean cross-entropy loss (stable, max-subtracted).

    Examples
    --------
    >>> import numpy as np
    >>> crit = SoftmaxCrossEntropy()
    >>> round(crit.forward(np.zeros((2, 4)), np.array([0, 3])), 4)
    1.3863
    >>> crit.backward().shape
    (2, 4)
    """

    def __init__(self):
        super().__init__()
        self._dscores = None

    def forward(self, scores, y):
        """Return the mean loss and keep its gradient for :meth:`backward`.

        Parameters
        ----------
        scores : ndarray of shape (N, C)
        y : ndarray of shape (N,) of int

        Returns
        -------
        loss : float
        """
        loss, self._dscores = F.softmax_cross_entropy(scores, y)
        return loss

    def __call__(self, scores, y):
        return self.forward(scores, y)

    def backward(self, dout=1.0):
        """Return ``dout * d loss / d scores``.

        Parameters
        ----------
        dout : float, default=1.0
            Upstream gradient of the scalar loss.

        Returns
        -------
        dscores : ndarray of shape (N, C)
        """
        if self._dscores is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        return self._dscores if dout == 1.0 else self._dscores * dout


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
        Run each ``Dense, ReLU[, Dropout]`` run of layers (exactly these classes) as one fused
        pass: the bias add, the ReLU and the dropout mask in one kernel forward
        (:func:`cydrop.fused.bias_relu_dropout`), and one mask-free kernel backward. The
        results are the same as unfused, bit for bit in the forward pass; the fused layers'
        own ``forward`` / ``backward`` are not called.

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
                raise TypeError(f"layers[{i}] must be a cydrop.nn Module, got {type(layer).__name__}")
        self.layers = list(layers)
        self.criterion = SoftmaxCrossEntropy() if loss is None else loss
        self.n_threads = n_threads
        self.fuse = _validation.check_bool(fuse, "fuse")
        self._fused_caches = {}

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
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

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
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads.items()}

    def forward(self, x):
        """Run ``x`` through every layer in the current mode.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        scores : ndarray of shape (N, C)
        """
        self._fused_caches = {}
        for start, stop in self._segments():
            if stop - start == 1:
                x = self.layers[start].forward(x)
            else:
                x = self._fused_forward(start, stop, x)
        return x

    def backward(self, dout, *, input_grad=True):
        """Back-propagate ``dout`` through every layer, last first.

        Parameters
        ----------
        dout : ndarray of shape (N, C)
        input_grad : bool, default=True
            ``False`` skips the gradient with respect to the network's input (the first
            layer's, when it is a :class:`Dense`) and returns None: one matrix product less.

        Returns
        -------
        dx : ndarray of shape (N, D), or None
        """
        segments = self._segments()
        for start, stop in reversed(segments):
            first = start == 0
            layer = self.layers[start]
            if stop - start > 1:
                dout, db = _fused.bias_relu_dropout_backward(dout, self._fused_caches[start])
                dout = layer.backward(dout, need_dx=input_grad or not first)
            elif first and not input_grad and type(layer) is Dense:
                dout = layer.backward(dout, need_dx=False)
            else:
                dout = layer.backward(dout)
        return dout

    def _segments(self):
        """(start, stop) index ranges: fused ``Dense, ReLU[, Dropout]`` runs or single layers."""
        layers, out, i = self.layers, [], 0
        while i < len(layers):
            stop = i + 1
            if (self.fuse and type(layers[i]) is Dense and i + 1 < len(layers)
                    and type(layers[i + 1]) is ReLU):
                stop = i + 3 if i + 2 < len(layers) and type(layers[i + 2]) is Dropout else i + 2
            out.append((i, stop))
            i = stop
        return out

    def _fused_forward(self, start, stop, x):
        """Dense -> ReLU [-> Dropout] as one matrix product and one fused kernel."""
        dense = self.layers[start]
        x = _validation.as_float_array(x, "x")
        w, b = dense.params["W"], dense.params["b"]
        x2 = x.reshape(x.shape[0], -1)
        if x2.shape[1] != w.shape[0]:
            raise ValueError(f"x must have {w.shape[0]} features per example to match w of shape "
                             f"{w.shape}, got x of shape {x.shape}")
        z = x2 @ w
        dense._cache = (x, w, b)                       # Dense.backward computes dW and dx
        drop = self.layers[start + 2] if stop - start == 3 else None
        rate, seed, offset = 0.0, None, 0
        if drop is not None and drop.training and drop.rate > 0.0:
            rate = drop.rate
            seed, offset = drop._stream.next(z.size)
        if b.dtype != z.dtype:                          # e.g. float64 input, float32 layer
            b = b.astype(z.dtype)
        out, self._fused_caches[start] = _fused.bias_relu_dropout(
            z, b, rate, seed=seed, offset=offset, out=z, n_threads=self.n_threads)
        return out

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
            (:func:`cydrop.variants.mc_predict` with ``transform='softmax'``).
        seed : int or None, default=None
            Seed of the MC samples (None: fresh OS entropy).
        fixed_mask : bool, default=False
            With ``mc_samples``: one mask per sample shared by every row of ``X``.

        Returns
        -------
        labels : ndarray of shape (N,) of int
            Without ``mc_samples``.
        prediction : cydrop.variants.MCPrediction
            With ``mc_samples``: ``(mean, std, samples)`` of the class probabilities, each
            (N, C); ``mean.argmax(axis=1)`` are the labels.
        """
        if mc_samples is not None:
            from cydrop.variants import mc_predict
            return mc_predict(self, X, mc_samples, seed=seed, fixed_mask=fixed_mask,
                              transform="softmax")
        was_training = self.training
        self.eval()
        try:
            n = X.shape[0]
            step = n if not batch_size else int(batch_size)
            parts = [self.forward(X[i:i + step]).argmax(axis=1) for i in range(0, max(n, 1), max(step, 1))]
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)
        finally:
            self.train(was_training)

    def dropout_layers(self):
        """Return the :class:`Dropout` layers, in order.

        Returns
        -------
        layers : list of Dropout
        """
        return [layer for layer in self.layers if isinstance(layer, Dropout)]

    def reseed(self, seed):
        """Restart every stochastic layer's mask stream from one model seed.

        Every layer with a ``reseed`` method takes part (:class:`Dropout` and the layers of
        :mod:`cydrop.variants_layers`), in order.

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
        for layer, s in zip(drops, _child_seeds(seed, len(drops))):
            layer.reseed(s)
        return self

    def extra_repr(self):
        return "\n" + "".join(f"  ({i}): {layer!r}\n" for i, layer in enumerate(self.layers))
