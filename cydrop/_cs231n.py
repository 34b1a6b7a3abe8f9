"""The CS231n boundary: :func:`dropout_forward`, a drop-in for CS231n assignment 2.

There ``dropout_param['p']`` is the probability of KEEPING an element; it is converted to
cydrop's drop ``rate`` once, here, and never stored under the name ``p`` again. The backward is
:func:`cydrop.dropout_backward`.

This is also the one place of the op layer that reads NumPy's global random state: an unseeded
train-mode call draws its seed from it (see docs/courses.md, "Randomness at the course
boundary"); :func:`cydrop.dropout` never does. :mod:`cydrop.compat` shares the draw through
:func:`seed_from_numpy_global`.
"""

import numpy as np

from cydrop import _validation
from cydrop._core import dropout, dropout_backward
from cydrop._kernels import with_dropout_param

__all__ = ["dropout_backward", "dropout_forward", "seed_from_numpy_global"]

_CS231N_KEYS = ("mode", "p", "seed", "offset", "mask", "n_threads")
_CS231N_MODES = ("train", "test")


def _split_cs231n_param(dropout_param):
    if not isinstance(dropout_param, dict):
        raise TypeError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    unknown = sorted(set(dropout_param) - set(_CS231N_KEYS), key=str)
    if unknown:
        raise ValueError(f"dropout_param has unknown keys {unknown}; allowed keys are "
                         f"{list(_CS231N_KEYS)}")
    if "mode" not in dropout_param:
        raise ValueError("dropout_param must have a 'mode' key, 'train' or 'test'")
    mode = dropout_param["mode"]
    if not isinstance(mode, str) or mode not in _CS231N_MODES:
        raise ValueError(f"Invalid forward dropout mode {mode!r}; dropout_param['mode'] must "
                         f"be 'train' or 'test'")
    if mode == "train" and "p" not in dropout_param:
        raise ValueError("dropout_param must have a 'p' key (the KEEP probability) in "
                         "train mode")
    keep = (_validation.check_probability(dropout_param["p"], "dropout_param['p']")
            if "p" in dropout_param else 1.0)
    return mode, keep


def seed_from_numpy_global():
    """One 64-bit cydrop seed drawn from NumPy's global ``RandomState`` (``np.random``).

    The course boundary (:func:`dropout_forward` and :mod:`cydrop.compat`) uses this for calls
    without a seed, so ``np.random.seed(s)`` makes a course's run repeat. Exactly one draw
    (``np.random.randint`` over all of uint64); the global state is advanced, never reseeded.

    Returns
    -------
    seed : int
        ``0 <= seed < 2**64``.
    """
    return int(np.random.randint(0, 2**64, dtype=np.uint64))


def dropout_forward(x, dropout_param):
    """Forward pass for inverted dropout, in the form of CS231n assignment 2.

    Parameters
    ----------
    x : ndarray of float32, float64, float16 or bfloat16, any shape
        A 16-bit input follows :func:`~cydrop.dropout`'s rule: kept elements are
        ``dtype(float32(x) * scale)``.
    dropout_param : dict
        - ``'mode'``: ``'train'`` or ``'test'``. In test mode ``x`` is returned unchanged.
        - ``'p'``: the probability of KEEPING each neuron output (required in train mode).
        - ``'seed'`` (optional): fixes the mask; the same seed gives the same mask, which the
          assignment's numerical gradient check relies on. Without it (or with None), a
          train-mode call draws its seed from NumPy's global random state, one draw, as the
          assignment's ``np.random.rand`` mask does, so ``np.random.seed`` makes runs repeat.
          Unlike the assignment, a given seed never reseeds NumPy's global state.
        - cydrop extensions (optional): ``'offset'``, ``'mask'`` and ``'n_threads'`` as in
          :func:`~cydrop.dropout`.

    Returns
    -------
    out : ndarray, same shape and dtype as ``x``
    cache : DropoutCache
        For :func:`dropout_backward`. It unpacks as the assignment's cache does:
        ``dropout_param, mask = cache`` gives this very ``dropout_param`` and the mask (0 or
        ``1 / keep``, ``x``'s shape and dtype; None in test mode), built only when unpacked.

    Raises
    ------
    TypeError, ValueError
        Unknown keys or modes, ``p`` outside [0, 1], and everything :func:`~cydrop.dropout` rejects.

    Notes
    -----
    Here, and only here, ``p`` is a KEEP probability, because that is the assignment's contract.
    It is converted once into cydrop's drop ``rate = 1 - p``.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> x = np.random.default_rng(231).standard_normal((500, 500)) + 10
    >>> out, cache = cydrop.dropout_forward(x, {'mode': 'train', 'p': 0.7, 'seed': 1})
    >>> bool(abs(out.mean() - 10) < 0.05), bool(abs((out == 0).mean() - 0.3) < 0.005)
    (True, True)
    """
    mode, keep = _split_cs231n_param(dropout_param)
    seed = dropout_param.get("seed")
    if seed is None and mode == "train":
        x = _validation.as_float_array(x, "x", half=True)   # refuse bad input before drawing
        seed = seed_from_numpy_global()
    out, cache = dropout(x, 1.0 - keep, training=(mode == "train"), seed=seed,
                         offset=dropout_param.get("offset", 0),
                         mask=dropout_param.get("mask", "recompute"),
                         n_threads=dropout_param.get("n_threads"))
    return out, with_dropout_param(cache, dropout_param)
