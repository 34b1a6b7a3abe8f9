"""The book's ``nnfs.datasets.spiral_data``, drawing from NumPy's global random state as the
nnfs package does (so after :func:`cydrop.compat.nnfs.init` it gives the book's points).

cydrop's own ``cydrop.apps.data.spiral_data`` is the seeded form that never touches global
state.
"""

import numbers

import numpy as np

from . import default_dtype

__all__ = ["spiral_data"]


def spiral_data(samples, classes):
    """Interleaved spirals, one arm per class (nnfs's ``spiral_data``).

    Parameters
    ----------
    samples : int
        Points per class.
    classes : int

    Returns
    -------
    X : ndarray of shape (samples * classes, 2)
        In ``cydrop.compat.nnfs.default_dtype()`` (float32 after ``init()``).
    y : ndarray of uint8, shape (samples * classes,)
    """
    for name, v in (("samples", samples), ("classes", classes)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    X = np.zeros((samples * classes, 2), dtype=default_dtype())
    y = np.zeros(samples * classes, dtype="uint8")
    for k in range(classes):
        ix = range(samples * k, samples * (k + 1))
        r = np.linspace(0.0, 1, samples)
        t = (np.linspace(k * 4, (k + 1) * 4, samples)
             + np.random.randn(samples).astype(default_dtype()) * 0.2)
        X[ix] = np.c_[r * np.sin(t * 2.5), r * np.cos(t * 2.5)]
        y[ix] = k
    return X, y
