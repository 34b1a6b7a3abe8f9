"""Dropout variants as kernel-level features: validation here, then the C kernels.

Every variant is deterministic by ``(seed, offset)``, gives the same bits for any
``n_threads``, keeps float32 as float32, and has a NumPy twin in
:mod:`cydrop.testing.reference_variants`. All read the counter-based draw field of the core
(``draw(seed, position)``, see :mod:`cydrop.testing.reference`):

============================  ================================  ===============================
variant                       element ``i`` reads               ``offset`` counts
============================  ================================  ===============================
:func:`dropout_nd`            ``draw(offset + j)``, ``j`` the   mask elements (16-bit draws)
(noise_shape, spatial,        C-order index in the REDUCED
locked)                       mask
:func:`dropconnect_forward`   ``draw(offset + j)``, ``j`` the   weights (16-bit draws)
                              C-order index in ``W``
:func:`exact_k_dropout`       u32 word ``offset + r n + j``     u32 words (2 draws each)
:func:`alpha_dropout`         ``draw(offset + i)``              elements (16-bit draws)
:func:`gaussian_dropout`      u64 word ``offset + i``           u64 words (4 draws each)
============================  ================================  ===============================

The drop probability is always ``rate``. Functions return ``(out, cache)``; pass the cache to
the matching ``*_backward`` or to :func:`backward`. Every backward validates the cache's state
(it is a plain, picklable Python object) before a kernel sees it. ``n_threads`` accepts any
nonzero int and is capped at the usable cores; inputs of any layout, alignment or ndarray
subclass are read through an aligned C-contiguous base-class array, and results are plain
ndarrays.

The element-wise variants (:func:`dropout_nd`, :func:`spatial_dropout`, :func:`locked_dropout`,
:func:`alpha_dropout`, :func:`gaussian_dropout`, :func:`exact_k_dropout`) and their backwards
take ``out=`` and ``inplace=`` with :func:`cydrop.dropout`'s rules:

>>> import numpy as np
>>> from cydrop import variants
>>> x = np.ones((2, 8), dtype=np.float32)
>>> y, _ = variants.alpha_dropout(x, 0.25, seed=3)
>>> buf = np.empty_like(x)
>>> z, _ = variants.alpha_dropout(x, 0.25, seed=3, out=buf)
>>> z is buf, bool((z == y).all())
(True, True)
"""

from cydrop import _cache
from cydrop._cache import VariantCache
from cydrop._variant_params import ALPHA_PRIME, exact_k_count
from cydrop._variants_misc import (
    dropconnect_backward,
    dropconnect_forward,
    exact_k_dropout,
    exact_k_dropout_backward,
)
from cydrop._variants_nd import dropout_nd, dropout_nd_backward, locked_dropout, spatial_dropout
from cydrop._variants_noise import (
    alpha_dropout,
    alpha_dropout_backward,
    gaussian_dropout,
    gaussian_dropout_backward,
    gaussian_noise,
)

__all__ = [
    "ALPHA_PRIME",
    "VariantCache",
    "alpha_dropout",
    "alpha_dropout_backward",
    "backward",
    "dropconnect_backward",
    "dropconnect_forward",
    "dropout_nd",
    "dropout_nd_backward",
    "exact_k_count",
    "exact_k_dropout",
    "exact_k_dropout_backward",
    "gaussian_dropout",
    "gaussian_dropout_backward",
    "gaussian_noise",
    "locked_dropout",
    "spatial_dropout",
]

for _f in (dropconnect_backward, dropconnect_forward, exact_k_dropout, exact_k_dropout_backward,
           dropout_nd, dropout_nd_backward, locked_dropout, spatial_dropout, alpha_dropout,
           alpha_dropout_backward, gaussian_dropout, gaussian_dropout_backward, gaussian_noise):
    _f.__module__ = __name__        # documented, pickled and shown as cydrop.variants.<name>
del _f

_restore_variant_cache = _cache.restore_variant_v01     # pickles of cydrop 0.1

_MOVED_TO_NN = ("MCPrediction", "SequentialMC", "mc_predict", "mc_sample_seed")


def __getattr__(name):
    # Monte Carlo dropout runs models: it moved to cydrop.nn (the op layer never imports it)
    if name in _MOVED_TO_NN:
        raise AttributeError(f"cydrop.variants.{name} has moved to cydrop.nn.{name} (module "
                             f"cydrop.nn.mc): use `from cydrop.nn.mc import {name}`")
    raise AttributeError(f"module 'cydrop.variants' has no attribute {name!r}")


_BACKWARD = {
    "nd": dropout_nd_backward,
    "dropconnect": dropconnect_backward,
    "exact_k": exact_k_dropout_backward,
    "alpha": alpha_dropout_backward,
    "gaussian": gaussian_dropout_backward,
    "identity": dropout_nd_backward,
}


def backward(dout, cache, *, out=None, inplace=False, n_threads=None):
    """Backward of any variant, chosen by ``cache.kind`` (DropConnect returns (dx, dW, db)).

    The cache's state is validated first (a ``TypeError``/``ValueError`` naming the field).

    Parameters
    ----------
    dout : ndarray
    cache : VariantCache
        From the forward call; its ``kind`` picks the backward.
    out : ndarray or None, default=None
        Where to put ``dx`` (as in :func:`cydrop.dropout_backward`); not for DropConnect.
    inplace : bool, default=False
        Write ``dx`` into ``dout``; not for DropConnect.
    n_threads : int or None, default=None
        Any nonzero int, capped at the usable cores; never changes the result.
    """
    cache = _cache.check_cache(cache, (VariantCache,), "a cydrop.variants function",
                               _cache.VARIANT_KINDS, validate=False)
    if cache.kind == "dropconnect":
        if out is not None or inplace is not False:
            raise TypeError("DropConnect's backward returns (dx, dW, db): out and inplace are "
                            "not supported for it")
        return dropconnect_backward(dout, cache, n_threads=n_threads)
    return _BACKWARD[cache.kind](dout, cache, out=out, inplace=inplace, n_threads=n_threads)
