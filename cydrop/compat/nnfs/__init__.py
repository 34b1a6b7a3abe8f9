"""The classes of *Neural Networks from Scratch in Python* (nnfs.io), up to chapter 15, on
cydrop's dropout kernels.

The book defines its classes in the script; with this module the chapter-15 script keeps every
line below the class definitions and replaces the definitions (and ``import nnfs``) by::

    from cydrop.compat import nnfs
    from cydrop.compat.nnfs import *
    from cydrop.compat.nnfs.datasets import spiral_data

:class:`Layer_Dropout` is the book's class on cydrop's kernels: ``self.rate`` stores the KEEP
probability ``1 - rate`` as the book does, ``binary_mask`` (0 or ``1 / keep``) is built only
when read, and an unseeded forward pass draws its cydrop seed from NumPy's global random state
(one draw), so :func:`init` makes runs repeat. :class:`Layer_Dense`, :class:`Activation_ReLU`,
:class:`Optimizer_SGD` and :class:`Optimizer_Adam` are :mod:`cydrop.nn`'s layers and optimizers
in the book's attribute names (one implementation).
"""

import numpy as np

from cydrop import _validation
from cydrop._core import dropout as _dropout
from cydrop._core import dropout_backward as _dropout_backward
from cydrop._cs231n import seed_from_numpy_global
from cydrop.nn import functional as _F
from cydrop.nn.linear import Dense as _Dense
from cydrop.nn.optim import SGD as _SGD
from cydrop.nn.optim import Adam as _Adam
from cydrop.nn.optim import Optimizer as _Optimizer

__all__ = [
    "init", "Layer_Dense", "Layer_Dropout", "Activation_ReLU", "Activation_Softmax",
    "Loss", "Loss_CategoricalCrossentropy", "Activation_Softmax_Loss_CategoricalCrossentropy",
    "Optimizer_SGD", "Optimizer_Adagrad", "Optimizer_RMSprop", "Optimizer_Adam",
]

_state = {"dtype": np.dtype(np.float64)}


def init(dot_precision_workaround=True, default_dtype="float32", random_seed=0):
    """The book's ``nnfs.init()``: seed NumPy's global random state, default to float32.

    Parameters
    ----------
    dot_precision_workaround : bool, default=True
        Accepted for compatibility. The nnfs package replaces ``np.dot`` process-wide to get
        the same digits on every machine; this module never patches NumPy.
    default_dtype : str, numpy dtype or None, default='float32'
        Dtype of the weights, biases and datasets made afterwards (nnfs patches
        ``np.zeros``/``np.random.randn`` for this; here only this module's classes follow it).
        None means float64.
    random_seed : int or None, default=0
        ``np.random.seed(random_seed)``; None leaves the global state alone.
    """
    dtype = np.float64 if default_dtype is None else default_dtype
    _state["dtype"] = _validation.check_native_float_dtype(dtype, "default_dtype")
    if random_seed is not None:
        np.random.seed(random_seed)


def default_dtype():
    """The dtype new layers and datasets use (float32 after :func:`init`, else float64)."""
    return _state["dtype"]


class Layer_Dense(_Dense):
    """The book's dense layer: ``output = inputs @ weights + biases``.

    :class:`cydrop.nn.Dense` under the book's names: ``weights`` (``0.01 *
    np.random.randn(n_inputs, n_neurons)``, NumPy's global state), ``biases`` (zeros of shape
    (1, n_neurons)), ``dweights``, ``dbiases``, ``dinputs`` and the four regularizer strengths.

    Parameters
    ----------
    n_inputs, n_neurons : int
    weight_regularizer_l1, weight_regularizer_l2, bias_regularizer_l1, bias_regularizer_l2 : float
        The book's L1 and L2 penalty strengths of the weights and biases (default 0).
    """

    def __init__(self, n_inputs, n_neurons, weight_regularizer_l1=0, weight_regularizer_l2=0,
                 bias_regularizer_l1=0, bias_regularizer_l2=0):
        dtype = _state["dtype"]
        super().__init__(n_inputs, n_neurons, init=0.0, weight_l1=weight_regularizer_l1,
                         weight_l2=weight_regularizer_l2, bias_l1=bias_regularizer_l1,
                         bias_l2=bias_regularizer_l2, dtype=dtype, seed=0)
        self._params["W"] = (0.01 * np.random.randn(n_inputs, n_neurons)).astype(dtype)

    weight_regularizer_l1 = property(lambda self: self.weight_l1)
    weight_regularizer_l2 = property(lambda self: self.weight_l2)
    bias_regularizer_l1 = property(lambda self: self.bias_l1)
    bias_regularizer_l2 = property(lambda self: self.bias_l2)

    @property
    def weights(self):
        """ndarray of shape (n_inputs, n_neurons)."""
        return self._params["W"]

    @weights.setter
    def weights(self, value):
        self._params["W"] = np.asarray(value)

    @property
    def biases(self):
        """ndarray of shape (1, n_neurons) (a view of the layer's bias vector)."""
        return self._params["b"].reshape(1, -1)

    @biases.setter
    def biases(self, value):
        self._params["b"] = np.asarray(value).reshape(-1)

    def forward(self, inputs, training=True):
        """Set ``inputs`` and ``output = inputs @ weights + biases``."""
        self.inputs = inputs
        self.output = super().forward(inputs)

    def backward(self, dvalues):
        """Set ``dweights``, ``dbiases`` (regularization included) and ``dinputs``."""
        self.dinputs = super().backward(dvalues)
        self.dweights = self._grads["W"]
        self.dbiases = self._grads["b"].reshape(1, -1)


class Layer_Dropout:
    """The book's dropout layer, on cydrop's kernels.

    Parameters
    ----------
    rate : float
        Probability of DROPPING a unit, ``0 <= rate <= 1``; stored inverted, as the book does:
        ``self.rate = 1 - rate`` (the keep probability).

    Attributes
    ----------
    rate : float
        The KEEP probability.
    inputs, output, dinputs : ndarray
    binary_mask : ndarray
        0 where dropped, ``1 / keep`` where kept, ``inputs``' shape and dtype. Built from the
        forward pass's seed only when read (the book's is ``np.random.binomial(1, keep) /
        keep``; cydrop's masks are statistically, not bitwise, the same).

    Raises
    ------
    ValueError, TypeError
        ``rate`` outside [0, 1] or not a number (the message names ``rate``).
    """

    def __init__(self, rate):
        self._drop = _validation.check_probability(rate, "rate")
        self.rate = 1 - self._drop
        self._cache = None
        self._mask = None

    @property
    def binary_mask(self):
        if self._mask is None and self._cache is not None:
            mask = self._cache[1]
            self._mask = (np.ones(self._cache.shape, dtype=self._cache.dtype)
                          if mask is None else mask)
        return self._mask

    @binary_mask.setter
    def binary_mask(self, value):
        self._mask = value
        self._cache = None

    def forward(self, inputs, training=True):
        """Drop units of ``inputs`` (training) or copy them (``training=False``).

        An unseeded pass draws its cydrop seed from NumPy's global random state (one draw).
        """
        self.inputs = inputs
        if not training:
            self.output = inputs.copy()
            return
        x = _validation.as_float_array(inputs, "inputs")
        out, self._cache = _dropout(x, self._drop, seed=seed_from_numpy_global())
        self._mask = None
        self.output = out.copy() if out is x else out

    def backward(self, dvalues):
        """``dinputs = dvalues * binary_mask``."""
        cache = self._cache
        d = np.asarray(dvalues)
        if (cache is not None and isinstance(dvalues, np.ndarray) and d.dtype == cache.dtype
                and d.shape == cache.shape):
            dx = _dropout_backward(d, cache)
            self.dinputs = d.copy() if dx is d else dx
        else:
            mask = self.binary_mask
            self.dinputs = d * mask if mask is not None else d.copy()


class Activation_ReLU:
    """The book's ReLU (:mod:`cydrop.nn.functional`'s): ``output = max(0, inputs)``."""

    def forward(self, inputs, training=True):
        self.inputs = inputs
        self.output, _ = _F.relu_forward(inputs)

    def backward(self, dvalues):
        self.dinputs = _F.relu_backward(dvalues, self.inputs)

    def predictions(self, outputs):
        return outputs


class Activation_Softmax:
    """The book's softmax: row-wise normalised exponentials."""

    def forward(self, inputs, training=True):
        self.inputs = inputs
        self.output = _F.softmax(np.array(inputs, dtype=np.result_type(inputs, np.float32)))

    def backward(self, dvalues):
        out = self.output
        # Jacobian-vector product of softmax, per row: s * (d - sum(s * d))
        self.dinputs = out * (dvalues - (out * dvalues).sum(axis=1, keepdims=True))

    def predictions(self, outputs):
        return np.argmax(outputs, axis=1)


class Loss:
    """The book's loss base: mean sample loss and the layers' regularization loss."""

    def regularization_loss(self, layer):
        """``l1 * sum|w| + l2 * sum(w**2)`` (weights and biases) of a :class:`Layer_Dense`."""
        return layer.regularization_loss()

    def calculate(self, output, y):
        """Mean of the subclass's ``forward`` over the samples."""
        return np.mean(self.forward(output, y))


class Loss_CategoricalCrossentropy(Loss):
    """The book's cross-entropy, predictions clipped to [1e-7, 1 - 1e-7]."""

    def forward(self, y_pred, y_true):
        n = len(y_pred)
        clipped = np.clip(y_pred, 1e-7, 1 - 1e-7)
        y_true = np.asarray(y_true)
        if y_true.ndim == 1:
            confidences = clipped[np.arange(n), y_true]
        else:
            confidences = np.sum(clipped * y_true, axis=1)
        return -np.log(confidences)

    def backward(self, dvalues, y_true):
        n, labels = dvalues.shape
        y_true = np.asarray(y_true)
        if y_true.ndim == 1:
            y_true = np.eye(labels)[y_true]
        self.dinputs = -y_true / dvalues / n


class Activation_Softmax_Loss_CategoricalCrossentropy:
    """The book's fused softmax and cross-entropy (the simple combined gradient)."""

    def __init__(self):
        self.activation = Activation_Softmax()
        self.loss = Loss_CategoricalCrossentropy()

    def forward(self, inputs, y_true):
        self.activation.forward(inputs)
        self.output = self.activation.output
        return self.loss.calculate(self.output, y_true)

    def backward(self, dvalues, y_true):
        n = len(dvalues)
        y_true = np.asarray(y_true)
        if y_true.ndim == 2:
            y_true = np.argmax(y_true, axis=1)
        self.dinputs = dvalues.copy()
        self.dinputs[np.arange(n), y_true] -= 1
        self.dinputs = self.dinputs / n


class _LayerOptimizer:
    """The book's ``update_params(layer)`` over :class:`cydrop.nn.optim.Optimizer`'s per-key
    updates (state keyed by the layer)."""

    def update_params(self, layer):
        """Update ``layer.weights`` and ``layer.biases`` from its ``dweights`` and ``dbiases``.

        Parameters
        ----------
        layer : Layer_Dense
        """
        self._update((layer, "W"), layer._params["W"], layer.dweights)
        self._update((layer, "b"), layer._params["b"], layer.dbiases.reshape(-1))


class Optimizer_SGD(_LayerOptimizer, _SGD):
    """The book's SGD (:class:`cydrop.nn.SGD`): learning_rate=1.0, decay=0, momentum=0."""

    def __init__(self, learning_rate=1.0, decay=0.0, momentum=0.0):
        _SGD.__init__(self, learning_rate, decay, momentum)


class Optimizer_Adam(_LayerOptimizer, _Adam):
    """The book's Adam (:class:`cydrop.nn.Adam`): learning_rate=0.001, decay=0, epsilon=1e-7,
    beta_1=0.9, beta_2=0.999."""

    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, beta_1=0.9, beta_2=0.999):
        _Adam.__init__(self, learning_rate, decay, beta_1, beta_2, epsilon)

    beta_1 = property(lambda self: self.beta1)
    beta_2 = property(lambda self: self.beta2)


class Optimizer_Adagrad(_LayerOptimizer, _Optimizer):
    """The book's Adagrad: ``cache += dw**2; w -= lr * dw / (sqrt(cache) + epsilon)``."""

    def __init__(self, learning_rate=1.0, decay=0.0, epsilon=1e-7):
        _Optimizer.__init__(self, learning_rate, decay)
        self.epsilon = _validation.check_real(epsilon, "epsilon", low=0.0, low_inclusive=False)

    def _update(self, key, w, dw):
        cache = self.state.setdefault(key, np.zeros_like(w))
        cache += dw * dw
        w -= self.current_learning_rate * dw / (np.sqrt(cache) + self.epsilon)


class Optimizer_RMSprop(_LayerOptimizer, _Optimizer):
    """The book's RMSprop: ``cache = rho * cache + (1 - rho) * dw**2``; learning_rate=0.001,
    decay=0, epsilon=1e-7, rho=0.9."""

    def __init__(self, learning_rate=0.001, decay=0.0, epsilon=1e-7, rho=0.9):
        _Optimizer.__init__(self, learning_rate, decay)
        self.epsilon = _validation.check_real(epsilon, "epsilon", low=0.0, low_inclusive=False)
        self.rho = _validation.check_real(rho, "rho", low=0.0, high=1.0,
                                          high_inclusive=False)

    def _update(self, key, w, dw):
        cache = self.state.setdefault(key, np.zeros_like(w))
        cache *= self.rho
        cache += (1 - self.rho) * dw * dw
        w -= self.current_learning_rate * dw / (np.sqrt(cache) + self.epsilon)
