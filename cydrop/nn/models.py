"""Models: CS231n's ``FullyConnectedNet`` and a :class:`Sequential` MLP builder.

``FullyConnectedNet`` keeps CS231n's contract, including its
``dropout_keep_ratio`` (a KEEP probability). That keep ratio is converted
once, in ``__init__``, to cydrop's ``rate = 1 - dropout_keep_ratio`` (a DROP
probability); nothing else in the model speaks in keep terms.
"""

import numbers

import numpy as np

import cydrop as _cydrop
from cydrop import _validation

from . import functional as F
from .layers import Dense, Dropout, ReLU, Sequential, _check_rate, _child_seeds

__all__ = ["FullyConnectedNet", "mlp", "accuracy"]


def accuracy(scores_or_labels, y):
    """Fraction of correct predictions.

    Parameters
    ----------
    scores_or_labels : ndarray of shape (N, C) or (N,)
        Class scores (argmax taken) or predicted labels.
    y : ndarray of shape (N,)
        True labels.

    Returns
    -------
    acc : float
    """
    pred = scores_or_labels
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    return float(np.mean(pred == y)) if len(y) else 0.0


class FullyConnectedNet:
    """Fully connected net with ReLU and optional dropout, CS231n's API.

    Architecture: ``{affine - relu - [dropout]} x (L - 1) - affine - softmax``.

    Parameters
    ----------
    hidden_dims : list of int
        Size of each hidden layer.
    input_dim : int, default=3072
        Input features.
    num_classes : int, default=10
    dropout_keep_ratio : float, default=1.0
        CS231n's KEEP probability, ``0 < keep <= 1``; 1 means no dropout.
        Stored as ``self.rate = 1 - dropout_keep_ratio`` (DROP probability).
    reg : float, default=0.0
        L2 strength; the loss adds ``0.5 * reg * sum(W**2)`` per layer.
    weight_scale : float, default=1e-2
        Std of the normal weight initialisation.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        Use float64 for numerical gradient checks.
    seed : int or None, default=None
        One model seed: weights come from one child of
        ``SeedSequence(seed)``, dropout masks from another via
        :class:`cydrop.SeedStream`, so the same seed reproduces a run.
    n_threads : int or None, default=None
        Threads for the dropout kernels: any nonzero int, capped at the usable cores.

    Attributes
    ----------
    params : dict
        ``W1, b1, ..., WL, bL``.
    use_dropout : bool
    rate : float
        Drop probability used by every dropout layer.

    Raises
    ------
    ValueError
        For an invalid keep ratio (however large), sizes, ``reg``, dtype or ``n_threads``.
    TypeError
        For a keep ratio that is not a real number (an exception that is also a ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> net = FullyConnectedNet([8], input_dim=4, num_classes=3, dtype=np.float64, seed=0)
    >>> net.loss(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None, n_threads=None):
        keep = _check_keep_ratio(dropout_keep_ratio)
        dims = [input_dim, *list(hidden_dims), num_classes]
        for d in dims:
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
                raise ValueError(f"hidden_dims, input_dim and num_classes must be positive integers, got {dims}")
        reg = _check_reg(reg)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.rate = _check_rate(1.0 - keep)  # the one keep -> rate conversion
        self.use_dropout = self.rate > 0.0
        self.reg = reg
        self.num_layers = len(dims) - 1
        self.n_threads = _validation.check_n_threads(n_threads)
        weight_seed, self._dropout_seed = _child_seeds(seed, 2)
        rng = np.random.default_rng(weight_seed)
        self.params = {}
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = (weight_scale * rng.standard_normal((dims[i], dims[i + 1]))).astype(self.dtype)
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1], dtype=self.dtype)
        self.reseed(self._dropout_seed)

    def reseed(self, seed):
        """Restart the dropout mask stream from ``seed``.

        Calling ``reseed(s)`` before each :meth:`loss` call freezes the
        masks, which numerical gradient checks need.

        Parameters
        ----------
        seed : int

        Returns
        -------
        self : FullyConnectedNet
        """
        self._dropout_seed = seed
        self._stream = _cydrop.SeedStream(seed)
        return self

    def loss(self, X, y=None):
        """Compute scores (test mode) or loss and gradients (train mode).

        Parameters
        ----------
        X : ndarray of shape (N, d_1, ..., d_k)
        y : ndarray of shape (N,) or None, default=None
            Labels; ``None`` runs in test mode (no dropout) and returns
            the scores.

        Returns
        -------
        scores : ndarray of shape (N, C)
            If ``y`` is None.
        loss : float
            If ``y`` is given: data loss plus ``0.5 * reg * sum(W**2)``.
        grads : dict
            If ``y`` is given: gradients keyed like ``params``.
        """
        X = np.asarray(X).astype(self.dtype, copy=False)
        train = y is not None
        caches = []
        h = X
        for i in range(1, self.num_layers):
            h, c_aff = F.affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            h, c_relu = F.relu_forward(h)
            c_drop = None
            if self.use_dropout and train:
                seed, offset = self._stream.next(h.size)
                h, c_drop = _cydrop.dropout(h, self.rate, training=True, seed=seed, offset=offset,
                                            n_threads=self.n_threads)
            caches.append((c_aff, c_relu, c_drop))
        L = self.num_layers
        scores, c_last = F.affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        if not train:
            return scores

        loss, dout = F.softmax_cross_entropy(scores, y)
        grads = {}
        dout, dw, db = F.affine_backward(dout, c_last)
        grads[f"W{L}"], grads[f"b{L}"] = dw, db
        for i in range(L - 1, 0, -1):
            c_aff, c_relu, c_drop = caches[i - 1]
            if c_drop is not None:
                dout = _cydrop.dropout_backward(dout, c_drop, n_threads=self.n_threads)
            dout = F.relu_backward(dout, c_relu)
            dout, dw, db = F.affine_backward(dout, c_aff)
            grads[f"W{i}"], grads[f"b{i}"] = dw, db
        if self.reg:
            for i in range(1, L + 1):
                w = self.params[f"W{i}"]
                loss += 0.5 * self.reg * float((w * w).sum())
                grads[f"W{i}"] += self.reg * w
        return loss, grads


def _check_keep_ratio(keep):
    """CS231n's keep ratio as a float in (0, 1]; huge numbers are a ValueError naming it."""
    rule = "dropout_keep_ratio must satisfy 0 < dropout_keep_ratio <= 1"
    try:
        value = _validation.check_probability(keep, "dropout_keep_ratio")
    except TypeError:
        raise TypeError(f"{rule}, got {_validation._short(keep)} of type "
                             f"{type(keep).__name__} (a real number is required)") from None
    except ValueError:
        value = None
    if value is None or value == 0.0:
        raise ValueError(f"{rule}, got {_validation._short(keep)}")
    return value


def _check_reg(reg):
    ok = not isinstance(reg, bool) and isinstance(reg, numbers.Real)
    if ok:
        try:
            value = float(reg)
        except OverflowError:
            ok = False
    if not ok or not value >= 0:
        raise ValueError(f"reg must be a real number >= 0, got {_validation._short(reg)}")
    return value


def mlp(input_dim, hidden_dims, num_classes, rates=0.0, *, init="he", weight_l1=0.0, weight_l2=0.0,
        bias_l1=0.0, bias_l2=0.0, dtype=np.float64, seed=None, n_threads=None):
    """Build ``Dense - ReLU - [Dropout]`` blocks and a final ``Dense``.

    Parameters
    ----------
    input_dim : int
    hidden_dims : sequence of int
    num_classes : int
    rates : float or sequence of float, default=0.0
        Drop probability after each hidden ReLU (one value for all, or one
        per hidden layer). A Dropout layer is added where the rate is > 0.
    init, weight_l1, weight_l2, bias_l1, bias_l2, dtype
        Passed to every :class:`~cydrop.nn.layers.Dense`.
    seed : int or None, default=None
        Model seed; weight and mask seeds are derived from it with
        :class:`numpy.random.SeedSequence`.
    n_threads : int or None, default=None
        Threads for the dropout kernels: any nonzero int, capped at the usable cores.

    Returns
    -------
    model : Sequential

    Raises
    ------
    ValueError
        If the number of rates does not match the hidden layers, or a rate
        is outside ``[0, 1]`` (however large; the message names it).
    TypeError
        If a rate is not a real number (an exception that is also a ValueError).

    Examples
    --------
    >>> net = mlp(2, [16, 16], 3, rates=[0.2, 0.5], seed=0)
    >>> [type(layer).__name__ for layer in net.layers]
    ['Dense', 'ReLU', 'Dropout', 'Dense', 'ReLU', 'Dropout', 'Dense']
    """
    hidden_dims = list(hidden_dims)
    if (isinstance(rates, (str, bytes)) or not hasattr(rates, "__iter__")
            or (isinstance(rates, np.ndarray) and rates.ndim == 0)):
        rate = _check_rate(rates)                       # one rate for every hidden layer
        rates = [rate] * len(hidden_dims)
    else:
        rates = [_check_rate(r, f"rates[{i}]") for i, r in enumerate(rates)]
    if len(rates) != len(hidden_dims):
        raise ValueError(
            f"rates must have one value per hidden layer ({len(hidden_dims)}), got {len(rates)}: {rates}"
        )
    dims = [input_dim, *hidden_dims, num_classes]
    seeds = iter(_child_seeds(seed, 2 * len(dims)))
    layers = []
    for i in range(len(dims) - 1):
        layers.append(Dense(dims[i], dims[i + 1], init=init, weight_l1=weight_l1, weight_l2=weight_l2,
                            bias_l1=bias_l1, bias_l2=bias_l2, dtype=dtype, seed=next(seeds)))
        if i < len(hidden_dims):
            layers.append(ReLU())
            if rates[i] > 0:
                layers.append(Dropout(rates[i], seed=next(seeds)))
    return Sequential(*layers, n_threads=n_threads)
