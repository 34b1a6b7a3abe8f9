"""d2l.ai's dropout-from-scratch function on cydrop's kernels.

The chapter "Dropout" defines ``dropout_layer(X, dropout)`` in the notebook; replace that
definition by ``from cydrop.compat.d2l import dropout_layer`` and the rest of the chapter runs as
it is. Works on torch tensors (differentiable; CPU float32/float64 tensors run cydrop's kernels,
anything else goes to ``torch.nn.functional.dropout``) and on NumPy arrays. torch is optional.

Randomness as in the chapter: an unseeded call draws its cydrop seed from the generator the
chapter's ``torch.rand`` would use, torch's global generator for a tensor (so
``torch.manual_seed`` makes runs repeat), NumPy's global state for an array; one draw per call.
"""

import numbers

import numpy as np

from cydrop import _validation
from cydrop._core import dropout as _dropout
from cydrop._cs231n import seed_from_numpy_global

__all__ = ["dropout_layer", "DropoutRangeError"]


class DropoutRangeError(AssertionError, ValueError):
    """``dropout`` outside [0, 1]: an AssertionError, as d2l's ``assert`` raises, and a
    ValueError, as cydrop's checks raise."""


def _check_dropout(dropout):
    if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
        if getattr(dropout, "ndim", None) == 0 and hasattr(dropout, "item"):
            dropout = dropout.item()     # a 0-d array or tensor
        if isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real):
            raise TypeError(f"dropout must be a real number with 0 <= dropout <= 1, got "
                            f"{_validation._short(dropout)} of type {type(dropout).__name__}")
    try:
        value = float(dropout)
    except OverflowError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise DropoutRangeError(f"dropout must satisfy 0 <= dropout <= 1, got "
                                f"{_validation._short(dropout)}")
    return value


def _torch_seed(torch):
    """One draw from torch's global generator, as a uint64 seed."""
    return int(torch.randint(-2**63, 2**63 - 1, (), dtype=torch.int64)) % 2**64


def dropout_layer(X, dropout):
    """Inverted dropout of d2l.ai: zero each element with probability ``dropout``.

    Parameters
    ----------
    X : torch.Tensor or array_like of float32/float64
    dropout : float
        Probability of DROPPING an element, ``0 <= dropout <= 1``.

    Returns
    -------
    torch.Tensor or ndarray
        ``X``'s type, shape and dtype: zeros for ``dropout == 1``, ``X`` itself for
        ``dropout == 0``, else the kept elements scaled by ``1 / keep`` (``keep`` within 2**-16
        of ``1 - dropout``). For a tensor, differentiable with respect to ``X``.

    Raises
    ------
    DropoutRangeError
        ``dropout`` outside [0, 1] (an AssertionError and a ValueError).
    TypeError
        ``dropout`` not a number; an array of another dtype than float32/float64.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(16, dtype=np.float32).reshape(2, 8)
    >>> dropout_layer(X, 1.0).sum(), dropout_layer(X, 0.0) is X
    (np.float32(0.0), True)
    """
    dropout = _check_dropout(dropout)
    torch = None
    if type(X).__module__.startswith("torch"):
        import torch
    if torch is not None and isinstance(X, torch.Tensor):
        if dropout == 1.0:
            return torch.zeros_like(X)
        if dropout == 0.0:
            return X
        from cydrop.interop import torch as _cytorch
        return _cytorch.dropout(X, dropout, seed=_torch_seed(torch))
    X = _validation.as_float_array(X, "X")
    if dropout == 1.0:
        return np.zeros_like(X)
    if dropout == 0.0:
        return X
    return _dropout(X, dropout, seed=seed_from_numpy_global())[0]
