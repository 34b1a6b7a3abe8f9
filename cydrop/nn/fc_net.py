"""The fully connected network of CS231n assignment 2, written once.

``FullyConnectedNetBase`` is ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) -
affine - softmax`` with the assignment's ``params`` names and ``loss(X, y=None)``; it leaves
open where weights and masks come from. :class:`cydrop.nn.FullyConnectedNet` draws them from a
seed; ``cydrop.compat.cs231n.classifiers.fc_net.FullyConnectedNet`` from NumPy's global state,
as the course does.
"""

import numbers

import numpy as np

from cydrop import _validation

from . import functional as F
from . import normalization

__all__ = ["FullyConnectedNetBase", "NORMALIZATIONS", "check_dims", "check_keep_ratio",
           "check_reg", "check_model_dtype", "check_normalization"]

NORMALIZATIONS = (None, "batchnorm", "layernorm")


def check_dims(hidden_dims, input_dim, num_classes):
    """``[input_dim, *hidden_dims, num_classes]``, all positive ints, or a ValueError naming
    them."""
    if isinstance(hidden_dims, (str, bytes)) or not hasattr(hidden_dims, "__iter__"):
        raise TypeError(f"hidden_dims must be a list of ints, "
                        f"got {_validation._short(hidden_dims)}")
    dims = [input_dim, *list(hidden_dims), num_classes]
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"hidden_dims, input_dim and num_classes must be positive integers, "
                             f"got {dims}")
    return [int(d) for d in dims]


def check_keep_ratio(keep):
    """CS231n's keep ratio as a float in (0, 1]; a ValueError naming it otherwise (a TypeError
    for a non-number)."""
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


def check_reg(reg):
    """``reg`` as a float >= 0, or a ValueError naming it."""
    ok = not isinstance(reg, bool) and isinstance(reg, numbers.Real)
    if ok:
        try:
            value = float(reg)
        except OverflowError:
            ok = False
    if not ok or not value >= 0:
        raise ValueError(f"reg must be a real number >= 0, got {_validation._short(reg)}")
    return value


def check_model_dtype(dtype):
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got "
                         f"{_validation._short(normalization)}")
    return normalization


class FullyConnectedNetBase:
    """The network of CS231n's ``FullyConnectedNet``; subclasses decide the randomness.

    A subclass's ``__init__`` calls :meth:`_setup` with a ``normal(shape)`` draw function and
    defines the hooks ``_dropout_forward(h) -> (out, cache)``,
    ``_dropout_backward(dout, cache) -> dx`` and ``_set_mode(mode)`` (``'train'`` or
    ``'test'``).

    Attributes
    ----------
    params : dict
        ``W1, b1, ..., WL, bL`` and, with normalisation, ``gamma1, beta1, ...``.
    bn_params : list of dict
        One per normalisation layer.
    use_dropout : bool
    normalization, reg, num_layers, dtype
    """

    def _setup(self, hidden_dims, input_dim, num_classes, keep, normalization, reg,
               weight_scale, dtype, normal):
        """Validate and build the parameters; ``normal(shape)`` draws standard normals."""
        dims = check_dims(hidden_dims, input_dim, num_classes)
        self.normalization = check_normalization(normalization)
        self.reg = check_reg(reg)
        weight_scale = _validation.check_real(weight_scale, "weight_scale", low=0.0)
        self.dtype = check_model_dtype(dtype)
        self.use_dropout = keep != 1
        self.num_layers = len(dims) - 1
        self.params = {}
        for i in range(self.num_layers):
            self.params[f"W{i + 1}"] = weight_scale * normal((dims[i], dims[i + 1]))
            self.params[f"b{i + 1}"] = np.zeros(dims[i + 1])
            if self.normalization is not None and i < self.num_layers - 1:
                self.params[f"gamma{i + 1}"] = np.ones(dims[i + 1])
                self.params[f"beta{i + 1}"] = np.zeros(dims[i + 1])
        self.bn_params = []
        if self.normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]
        elif self.normalization == "layernorm":
            self.bn_params = [{} for _ in range(self.num_layers - 1)]
        for k, v in self.params.items():
            self.params[k] = v.astype(self.dtype)

    def loss(self, X, y=None):
        """Scores (test mode, ``y`` None) or loss and gradients (train mode).

        Parameters
        ----------
        X : ndarray of shape (N, d_1, ..., d_k)
        y : ndarray of shape (N,) or None

        Returns
        -------
        scores : ndarray of shape (N, C)
            If ``y`` is None.
        loss : float
            If ``y`` is given: softmax loss plus ``0.5 * reg * sum(W**2)`` over all layers.
        grads : dict
            If ``y`` is given: gradients keyed like ``params``.
        """
        X = np.asarray(X).astype(self.dtype, copy=False)
        mode = "test" if y is None else "train"
        self._set_mode(mode)
        L = self.num_layers
        p = self.params
        caches = []
        h = X
        for i in range(1, L):
            h, c_aff = F.affine_forward(h, p[f"W{i}"], p[f"b{i}"])
            c_norm = None
            if self.normalization == "batchnorm":
                h, c_norm = normalization.batchnorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                              self.bn_params[i - 1])
            elif self.normalization == "layernorm":
                h, c_norm = normalization.layernorm_forward(h, p[f"gamma{i}"], p[f"beta{i}"],
                                              self.bn_params[i - 1])
            h, c_relu = F.relu_forward(h)
            c_drop = None
            if self.use_dropout and mode == "train":
                h, c_drop = self._dropout_forward(h)
            caches.append((c_aff, c_norm, c_relu, c_drop))
        scores, c_last = F.affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        if mode == "test":
            return scores

        loss, dout = F.softmax_cross_entropy(scores, y)
        grads = {}
        dout, grads[f"W{L}"], grads[f"b{L}"] = F.affine_backward(dout, c_last)
        for i in range(L - 1, 0, -1):
            c_aff, c_norm, c_relu, c_drop = caches[i - 1]
            if c_drop is not None:
                dout = self._dropout_backward(dout, c_drop)
            dout = F.relu_backward(dout, c_relu)
            if self.normalization == "batchnorm":
                dout, grads[f"gamma{i}"], grads[f"beta{i}"] = normalization.batchnorm_backward(
                    dout, c_norm)
            elif self.normalization == "layernorm":
                dout, grads[f"gamma{i}"], grads[f"beta{i}"] = normalization.layernorm_backward(
                    dout, c_norm)
            dout, grads[f"W{i}"], grads[f"b{i}"] = F.affine_backward(dout, c_aff)
        if self.reg:
            for i in range(1, L + 1):
                w = p[f"W{i}"]
                loss += 0.5 * self.reg * float((w * w).sum())
                grads[f"W{i}"] += self.reg * w
        return loss, grads
