"""Numerical gradient helpers (centred differences), as in CS231n.

Use float64 inputs: in float32 the rounding error of a centred difference
with ``h = 1e-5`` swamps the truncation error.
"""

import random

import numpy as np

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "grad_check_sparse",
           "rel_error"]


def _plus_minus(f, x, ix, h):
    """``(f(x + h e_ix), f(x - h e_ix))``, perturbing ``x[ix]`` in place and restoring it."""
    old = x[ix]
    x[ix] = old + h
    plus = f(x)
    x[ix] = old - h
    minus = f(x)
    x[ix] = old
    return plus, minus


def eval_numerical_gradient(f, x, verbose=False, h=1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x``.

    ``x`` is perturbed in place, one element at a time, and restored.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``; it is called with ``x`` itself.
    x : ndarray
        Point at which to evaluate the gradient (modified and restored).
    verbose : bool, default=False
        Print every element's index and gradient as it is computed (CS231n's form, whose
        default is True: ``cydrop.compat.cs231n.gradient_check``).
    h : float, default=1e-5
        Step of the centred difference.

    Returns
    -------
    grad : ndarray, same shape as ``x``
        ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every element ``i``.

    Examples
    --------
    >>> import numpy as np
    >>> g = eval_numerical_gradient(lambda v: float((v ** 2).sum()), np.array([1.0, -2.0]))
    >>> np.allclose(g, [2.0, -4.0])
    True
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        fxph, fxmh = _plus_minus(f, x, ix, h)
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of an array-valued ``f`` contracted with ``df``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray``.
    x : ndarray
        Input (modified and restored).
    df : ndarray
        Upstream gradient, same shape as ``f(x)``.
    h : float, default=1e-5

    Returns
    -------
    grad : ndarray, same shape as ``x``
        ``sum((f(x + h e_i) - f(x - h e_i)) * df) / (2 h)`` for every ``i``.
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        pos, neg = _plus_minus(lambda v: np.array(f(v), dtype=np.float64, copy=True), x, ix, h)
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, *, rng=None):
    """Compare the analytic gradient with centred differences at a few random elements.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, called with ``x`` itself.
    x : ndarray
        Point of the check (modified and restored).
    analytic_grad : ndarray, same shape as ``x``
    num_checks : int, default=10
        Number of random elements checked; each prints
        ``numerical: ... analytic: ..., relative error: ...``.
    h : float, default=1e-5
    rng : random.Random or None, default=None
        Where the element indices come from (Python's ``random.randrange``; ``None``: the
        ``random`` module's global generator, as CS231n does).

    Returns
    -------
    errors : list of float
        The relative error of every check (CS231n's version returns None; it only prints).
    """
    randrange = (rng or random).randrange
    errors = []
    for _ in range(int(num_checks)):
        ix = tuple(randrange(m) for m in x.shape)
        fxph, fxmh = _plus_minus(f, x, ix, h)
        num = (fxph - fxmh) / (2 * h)
        ana = analytic_grad[ix]
        den = abs(num) + abs(ana)
        err = abs(num - ana) / den if den else 0.0
        errors.append(float(err))
        print(f"numerical: {num:f} analytic: {ana:f}, relative error: {err:e}")
    return errors


def rel_error(x, y):
    """Maximum relative error ``|x - y| / max(1e-8, |x| + |y|)``.

    Parameters
    ----------
    x, y : array_like

    Returns
    -------
    err : float
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y))))
