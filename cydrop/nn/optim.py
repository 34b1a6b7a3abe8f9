"""Optimizers: SGD, SGD with momentum, Adam, with nnfs learning-rate decay.

Two forms are provided:

* classes (:class:`SGD`, :class:`Adam`) that update a ``params`` dict in
  place from a ``grads`` dict with the same keys, keeping their moments in
  their own per-key state, with the decay ``lr / (1 + decay * step)`` of
  nnfs.io; their :meth:`Optimizer.step` is split into
  ``pre_update_params`` / ``update_params`` / ``post_update_params`` as in
  nnfs;
* CS231n update rules :func:`~cydrop.compat.cs231n.optim.sgd`,
  :func:`~cydrop.compat.cs231n.optim.sgd_momentum`, :func:`~cydrop.compat.cs231n.optim.rmsprop`,
  :func:`~cydrop.compat.cs231n.optim.adam` of
  the form ``rule(w, dw, config=None) -> (next_w, config)``, with the assignment's defaults
  (``cydrop.compat.cs231n.optim`` is these functions).

Updates keep the parameters' dtype (float32 stays float32).
"""

import numpy as np

from cydrop import _validation

__all__ = ["Optimizer", "SGD", "Adam", "make_optimizer", "OPTIMIZERS", "sgd", "sgd_momentum",
           "rmsprop", "adam"]


class Optimizer:
    """Base class: learning rate, nnfs decay and the update loop.

    Parameters
    ----------
    learning_rate : float
        Initial learning rate, ``> 0``.
    decay : float, default=0.0
        The learning rate at step ``t`` (counting from 0) is
        ``learning_rate / (1 + decay * t)``.

    Attributes
    ----------
    current_learning_rate : float
        Learning rate used by the next update.
    iterations : int
        Number of completed steps.
    state : dict
        Per-parameter state (moments), keyed like ``params``.
    """

    def __init__(self, learning_rate, decay=0.0):
        self.learning_rate = _validation.check_real(learning_rate, "learning_rate", low=0.0,
                                                    low_inclusive=False)
        self.decay = _validation.check_real(decay, "decay", low=0.0)
        self.current_learning_rate = self.learning_rate
        self.iterations = 0
        self.state = {}

    def pre_update_params(self):
        """Apply the learning-rate decay for the coming step."""
        if self.decay:
            self.current_learning_rate = self.learning_rate / (1.0 + self.decay * self.iterations)

    def update_params(self, params, grads):
        """Update every array of ``params`` in place from ``grads``.

        Parameters
        ----------
        params : dict of str to ndarray
        grads : dict of str to ndarray
            Same keys as ``params``.

        Raises
        ------
        KeyError
            If a parameter has no gradient.
        """
        for key, w in params.items():
            if key not in grads:
                raise KeyError(f"grads has no entry for parameter {key!r}")
            self._update(key, w, grads[key])

    def post_update_params(self):
        """Count the finished step."""
        self.iterations += 1

    def step(self, params, grads):
        """Run one full optimisation step (pre, update, post).

        Parameters
        ----------
        params : dict of str to ndarray
            Updated in place.
        grads : dict of str to ndarray
        """
        self.pre_update_params()
        self.update_params(params, grads)
        self.post_update_params()

    def _update(self, key, w, dw):  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with momentum.

    Parameters
    ----------
    learning_rate : float, default=1.0
        nnfs's default; CS231n uses 1e-2.
    decay : float, default=0.0
        See :class:`Optimizer`.
    momentum : float, default=0.0
        ``0 <= momentum < 1``; with momentum the update is
        ``v = momentum * v - lr * dw; w += v``.

    Examples
    --------
    >>> import numpy as np
    >>> p = {"w": np.array([1.0, 2.0])}
    >>> SGD(learning_rate=0.5).step(p, {"w": np.array([1.0, 1.0])})
    >>> p["w"]
    array([0.5, 1.5])
    """

    def __init__(self, learning_rate=1.0, decay=0.0, momentum=0.0):
        super().__init__(learning_rate, decay)
        self.momentum = _validation.check_real(momentum, "momentum", low=0.0, high=1.0,
                                               high_inclusive=False)

    def _update(self, key, w, dw):
        lr = self.current_learning_rate
        if self.momentum:
            v = self.state.get(key)
            if v is None:
                v = self.state[key] = np.zeros_like(w)
            v *= self.momentum
            v -= lr * dw
            w += v
        else:
            w -= lr * dw

    def __repr__(self):
        return (f"SGD(learning_rate={self.learning_rate:g}, decay={self.decay:g}, "
                f"momentum={self.momentum:g})")


class Adam(Optimizer):
    """Adam with bias-corrected moments (Kingma & Ba), as in nnfs and CS231n.

    Parameters
    ----------
    learning_rate : float, default=0.001
    decay : float, default=0.0
        See :class:`Optimizer`.
    beta1 : float, default=0.9
    beta2 : float, default=0.999
    epsilon : float, default=1e-7
        nnfs's value (CS231n uses 1e-8).

    Examples
    --------
    >>> import numpy as np
    >>> p = {"w": np.zeros(2, dtype=np.float32)}
    >>> Adam(learning_rate=0.1).step(p, {"w": np.ones(2, dtype=np.float32)})
    >>> p["w"].dtype, bool(np.allclose(p["w"], -0.1))
    (dtype('float32'), True)
    """

    def __init__(self, learning_rate=0.001, decay=0.0, beta1=0.9, beta2=0.999, epsilon=1e-7):
        super().__init__(learning_rate, decay)
        self.beta1 = _validation.check_real(beta1, "beta1", low=0.0, high=1.0,
                                            high_inclusive=False)
        self.beta2 = _validation.check_real(beta2, "beta2", low=0.0, high=1.0,
                                            high_inclusive=False)
        self.epsilon = _validation.check_real(epsilon, "epsilon", low=0.0, low_inclusive=False)

    def _update(self, key, w, dw):
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = (np.zeros_like(w), np.zeros_like(w))
        m, v = st
        t = self.iterations + 1
        b1, b2 = self.beta1, self.beta2
        m *= b1
        m += (1.0 - b1) * dw
        v *= b2
        v += (1.0 - b2) * (dw * dw)
        # lr * m_hat / (sqrt(v_hat) + eps), with the corrections folded in
        m_hat_scale = 1.0 / (1.0 - b1 ** t)
        v_hat = v / (1.0 - b2 ** t)
        np.sqrt(v_hat, out=v_hat)
        v_hat += self.epsilon
        w -= (self.current_learning_rate * m_hat_scale) * m / v_hat

    def __repr__(self):
        return (f"Adam(learning_rate={self.learning_rate:g}, decay={self.decay:g}, "
                f"beta1={self.beta1:g}, beta2={self.beta2:g}, epsilon={self.epsilon:g})")


OPTIMIZERS = ("sgd", "momentum", "adam")


def make_optimizer(name, **config):
    """Build an optimizer by name.

    Parameters
    ----------
    name : {'sgd', 'momentum', 'sgd_momentum', 'adam'}
        ``'momentum'`` is SGD with ``momentum=0.9`` unless given.
    **config
        Keyword arguments of the class (``learning_rate``, ``decay``, ...).

    Returns
    -------
    optimizer : Optimizer

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if name == "sgd":
        return SGD(**config)
    if name in ("momentum", "sgd_momentum"):
        config.setdefault("momentum", 0.9)
        return SGD(**config)
    if name == "adam":
        return Adam(**config)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


# ---------------------------------------------------------------------------
# CS231n update rules: rule(w, dw, config=None) -> (next_w, config)


def sgd(w, dw, config=None):
    """Vanilla SGD, CS231n form.

    Parameters
    ----------
    w : ndarray
        Current weights.
    dw : ndarray
        Gradient, same shape as ``w``.
    config : dict or None
        ``learning_rate`` (default 1e-2).

    Returns
    -------
    next_w : ndarray
    config : dict
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    return w - config["learning_rate"] * dw, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum, CS231n form.

    Parameters
    ----------
    w, dw : ndarray
    config : dict or None
        ``learning_rate`` (1e-2), ``momentum`` (0.9), ``velocity`` (zeros).

    Returns
    -------
    next_w : ndarray
    config : dict
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("momentum", 0.9)
    v = config.get("velocity", np.zeros_like(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def rmsprop(w, dw, config=None):
    """RMSProp, CS231n form: a moving average of squared gradients sets per-element step sizes.

    Parameters
    ----------
    w, dw : ndarray
    config : dict or None
        ``learning_rate`` (1e-2), ``decay_rate`` (0.99), ``epsilon`` (1e-8), ``cache``
        (zeros): ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``, then
        ``next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    Returns
    -------
    next_w : ndarray
    config : dict
        ``config`` itself, its ``cache`` updated.
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-2)
    config.setdefault("decay_rate", 0.99)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("cache", np.zeros_like(w))
    rho = config["decay_rate"]
    config["cache"] = rho * config["cache"] + (1 - rho) * dw * dw
    next_w = w - config["learning_rate"] * dw / (np.sqrt(config["cache"]) + config["epsilon"])
    return next_w, config


def adam(w, dw, config=None):
    """Adam, CS231n form (``t`` is incremented before it is used).

    Parameters
    ----------
    w, dw : ndarray
    config : dict or None
        ``learning_rate`` (1e-3), ``beta1`` (0.9), ``beta2`` (0.999),
        ``epsilon`` (1e-8), ``m``, ``v`` (zeros), ``t`` (0).

    Returns
    -------
    next_w : ndarray
    config : dict
    """
    if config is None:
        config = {}
    config.setdefault("learning_rate", 1e-3)
    config.setdefault("beta1", 0.9)
    config.setdefault("beta2", 0.999)
    config.setdefault("epsilon", 1e-8)
    config.setdefault("m", np.zeros_like(w))
    config.setdefault("v", np.zeros_like(w))
    config.setdefault("t", 0)
    config["t"] += 1
    b1, b2, t = config["beta1"], config["beta2"], config["t"]
    config["m"] = b1 * config["m"] + (1 - b1) * dw
    config["v"] = b2 * config["v"] + (1 - b2) * dw * dw
    mt = config["m"] / (1 - b1 ** t)
    vt = config["v"] / (1 - b2 ** t)
    next_w = w - config["learning_rate"] * mt / (np.sqrt(vt) + config["epsilon"])
    return next_w, config
