"""CS231n's numerical gradient helpers, in the assignment's signatures.

One implementation: these call :mod:`cydrop.nn.gradcheck`. The only difference from the
assignment is the dtype of the result, float64 for a float32 ``x`` (a centred difference in
float32 is mostly rounding error).
"""

from cydrop.nn import gradcheck as _gc

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array", "grad_check_sparse",
           "rel_error"]

rel_error = _gc.rel_error


def eval_numerical_gradient(f, x, verbose=True, h=0.00001):
    """Numerical gradient of a scalar function ``f`` at ``x`` (centred differences).

    Parameters
    ----------
    f : callable
        ``f(x) -> float``, called with ``x`` itself (perturbed in place, then restored).
    x : ndarray
    verbose : bool, default=True
        Print every element's index and gradient (the notebooks pass ``verbose=False``).
    h : float, default=1e-5

    Returns
    -------
    grad : ndarray of float64, ``x``'s shape
    """
    f(x)            # the assignment evaluates f once at x first; kept for the same call count
    return _gc.eval_numerical_gradient(f, x, verbose=verbose, h=h)


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of an array-valued ``f`` at ``x``, contracted with ``df``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray``.
    x : ndarray
        Perturbed in place, then restored.
    df : ndarray
        Upstream gradient, ``f(x)``'s shape.
    h : float, default=1e-5

    Returns
    -------
    grad : ndarray of float64, ``x``'s shape
    """
    return _gc.eval_numerical_gradient_array(f, x, df, h=h)


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5):
    """Check ``num_checks`` random elements of ``analytic_grad`` against centred differences.

    The elements come from Python's ``random.randrange``, as in the assignment; every check
    prints ``numerical: ... analytic: ..., relative error: ...``.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray
        Perturbed in place, then restored.
    analytic_grad : ndarray, ``x``'s shape
    num_checks : int, default=10
    h : float, default=1e-5

    Returns
    -------
    errors : list of float
        The relative errors printed (the assignment returns None).
    """
    return _gc.grad_check_sparse(f, x, analytic_grad, num_checks=num_checks, h=h)
