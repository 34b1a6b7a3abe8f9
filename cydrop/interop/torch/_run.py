"""Tensors in, tensors out: cydrop's NumPy ops run on a tensor's memory, laid out like torch.

Every cydrop op on a tensor goes through :func:`run`. It picks the output's layout the way
torch's element-wise ops do (the input's stride order, made dense), views the tensors as NumPy
arrays (16-bit floats included, through ``ml_dtypes``), runs the op and views the result back.

Masks follow LOGICAL indices
----------------------------
A mask is a function of ``(seed, offset + index)``. Here ``index`` is always the element's
LOGICAL (row-major, C-order) index in the tensor's shape, never its position in memory. So a
contiguous, a channels_last, a transposed or a sliced tensor with the same values gets the same
output values, the masks equal :func:`cydrop.dropout`'s on ``t.numpy()``, and a model's masks
do not change when torch (or inductor) picks another memory format for an activation. Memory
order would save one copy for non-row-major inputs of the element-wise ops; reproducibility
across layouts matters more. The channel ops (reduced mask of shape ``(N, C, 1, ...)``) lose
nothing: when ``N`` comes before ``C`` in memory (channels_last, channels_last_3d, row-major),
the reduced mask's memory order IS its logical order, and they run on the tensor's memory
directly.
"""

import numpy as np
import torch

from cydrop._core import dropout as _dropout
from cydrop._core import dropout_mask as _dropout_mask
from cydrop._feature_alpha import (
    FeatureAlphaCache,
    feature_alpha_dropout,
    feature_alpha_dropout_backward,
)
from cydrop.residual import ResidualCache, drop_path, drop_path_backward
from cydrop.variants import VariantCache, alpha_dropout, alpha_dropout_backward, dropout_nd

__all__ = ["KINDS", "memory_order", "out_like", "run"]

#: element: torch.nn.Dropout; channel: Dropout1d/2d/3d (one decision per (N, C));
#: alpha: AlphaDropout; feature_alpha: FeatureAlphaDropout (alpha, one decision per (N, C));
#: row / batch: stochastic depth, one decision per sample (dim 0) / for the whole tensor
KINDS = ("element", "channel", "alpha", "feature_alpha", "row", "batch")
_CHANNEL_KINDS = ("channel", "feature_alpha")
_NATIVE = {torch.float32: np.float32, torch.float64: np.float64}
_HALF = (torch.float16, torch.bfloat16)
_unsupported = set()          # (kind, backward, dtype) the core refused: computed in float32


def memory_order(t):
    """The permutation ``perm`` of ``t``'s axes from the outermost in memory to the innermost,
    as torch's TensorIterator orders them for an element-wise op's output: ``t.permute(perm)``
    is row-major when ``t`` is dense, and broadcast (stride 0) axes keep their place."""
    n = t.dim()
    if n <= 1 or t.is_contiguous():
        return tuple(range(n))
    shape, stride = t.shape, t.stride()

    def compare(d0, d1):    # TensorIterator's should_swap, for one operand
        s0, s1 = stride[d0], stride[d1]
        if s0 == 0 or s1 == 0:
            return 0
        if s0 != s1:
            return -1 if s0 < s1 else 1
        return 1 if shape[d0] > shape[d1] else 0

    perm = list(range(n - 1, -1, -1))       # innermost first, as TensorIterator keeps it
    for i in range(1, n):
        d1 = i
        for d0 in range(i - 1, -1, -1):
            c = compare(perm[d0], perm[d1])
            if c > 0:
                perm[d0], perm[d1] = perm[d1], perm[d0]
                d1 = d0
            elif c < 0:
                break
    return tuple(reversed(perm))


def _inverse(perm):
    inv = [0] * len(perm)
    for i, d in enumerate(perm):
        inv[d] = i
    return tuple(inv)


def _empty(shape, perm, like):
    """An uninitialised dense tensor of ``shape`` whose memory order is ``perm``."""
    shape_p = [shape[d] for d in perm]
    return torch.empty(shape_p, dtype=like.dtype, device=like.device).permute(_inverse(perm))


def _to_numpy(t, half_native):
    """A NumPy view of a row-major CPU tensor (float32/64, or 16-bit when ``half_native``),
    or of its float32 copy."""
    t = t.detach().resolve_neg().resolve_conj()
    if t.dtype in _NATIVE:
        return t.numpy()
    if half_native:
        if t.dtype == torch.float16:
            return t.numpy()
        try:
            import ml_dtypes
        except ImportError:     # no bfloat16 for NumPy: the float32 path
            raise TypeError("bfloat16 dtype not supported: ml_dtypes is not installed") from None
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.float().numpy()


def _from_numpy(a, dtype):
    """``a`` (a result of a cydrop op) as a tensor of ``dtype``: viewed, or cast from float32."""
    if dtype == torch.bfloat16 and a.dtype != np.float32:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    t = torch.from_numpy(a)
    return t if t.dtype == dtype else t.to(dtype)


def _op(kind, backward, a, p, seed, offset, threads, noise_shape):
    """The cydrop op on the NumPy array ``a`` (row-major): a new array."""
    if kind in ("row", "batch"):
        return _depth(kind, backward, a, p, seed, offset, threads)
    if kind == "element":
        return _dropout(a, p, seed=seed, offset=offset, n_threads=threads)[0]
    if kind == "channel":
        return dropout_nd(a, p, noise_shape=noise_shape, seed=seed, offset=offset,
                          n_threads=threads)[0]
    if kind == "alpha":
        if backward:
            cache = VariantCache("alpha", p, seed, offset, a.shape, a.dtype)
            return alpha_dropout_backward(a, cache, n_threads=threads)
        return alpha_dropout(a, p, seed=seed, offset=offset, n_threads=threads)[0]
    if backward:
        keep = _dropout_mask(noise_shape, p, seed=seed, offset=offset, n_threads=threads)
        cache = FeatureAlphaCache(p, seed, offset, a.shape, a.dtype, keep)
        return feature_alpha_dropout_backward(a, cache, n_threads=threads)
    return feature_alpha_dropout(a, p, noise_shape=noise_shape, seed=seed, offset=offset,
                                 n_threads=threads)[0]


def _depth(kind, backward, a, p, seed, offset, threads):
    """Stochastic depth: :func:`cydrop.drop_path` on ``a`` ("row", ``a.ndim >= 1``) or on its
    ``(1, a.size)`` view ("batch": one sample, one decision); the backward from the seed."""
    view = a.reshape(1, -1) if kind == "batch" else a
    if backward:
        cache = ResidualCache("per_sample", p, seed, offset, view.shape, view.dtype)
        out = drop_path_backward(view, cache, n_threads=threads)
    else:
        out = drop_path(view, p, training=True, seed=seed, offset=offset,
                        n_threads=threads)[0]
    return out.reshape(a.shape)


def _compute(kind, backward, src, p, seed, offset, threads, noise_shape):
    """``_op`` on the row-major tensor ``src``; 16-bit tensors run natively when the core
    takes them, else in float32 with the same masks, rounded back once."""
    key = (kind, backward, src.dtype)
    if src.dtype in _HALF and key not in _unsupported:
        try:
            out = _op(kind, backward, _to_numpy(src, True), p, seed, offset, threads,
                      noise_shape)
            return _from_numpy(out, src.dtype)
        except (TypeError, ValueError):
            # the core (or one of its kernels) has no 16-bit path: float32 below; an error
            # of the arguments themselves is raised again there
            out = _op(kind, backward, _to_numpy(src, False), p, seed, offset, threads,
                      noise_shape)
            _unsupported.add(key)
            return _from_numpy(out, src.dtype)
    out = _op(kind, backward, _to_numpy(src, False), p, seed, offset, threads, noise_shape)
    return _from_numpy(out, src.dtype)


def run(kind, backward, t, p, seed, offset, threads, perm=None):
    """The op ``kind`` (forward, or ``backward``) on ``t``: a new tensor laid out in memory
    order ``perm`` (default: ``t``'s own, :func:`memory_order`), values by logical index.

    ``t`` is a strided CPU tensor of at least 2 dimensions for the channel kinds, whose mask
    is one decision per (dim 0, dim 1).
    """
    perm = memory_order(t) if perm is None else tuple(perm)
    shape = tuple(t.shape)
    if kind in _CHANNEL_KINDS:
        # one mask value per (n, c): the reduced mask in memory order is in logical order
        # as long as n comes before c in memory (size-1 axes do not count)
        order = [d for d in perm if d in (0, 1) and shape[d] != 1]
        if order in ([0, 1], [0], [1], []):
            src = t.permute(perm).contiguous()
            noise = tuple(shape[d] if d in (0, 1) else 1 for d in perm)
            res = _compute(kind, backward, src, p, seed, offset, threads, noise)
            return res.permute(_inverse(perm))
        noise = tuple(shape[:2]) + (1,) * (len(shape) - 2)
    else:
        noise = None
        if perm == tuple(range(len(shape))):
            return _compute(kind, backward, t.contiguous(), p, seed, offset, threads, noise)
    # logical order: compute on a row-major copy, then lay it out as asked
    res = _compute(kind, backward, t.contiguous(), p, seed, offset, threads, noise)
    if perm == tuple(range(len(shape))):
        return res
    out = _empty(shape, perm, res)
    out.copy_(res)
    return out


def out_like(t, perm=None):
    """An empty tensor shaped and laid out as :func:`run` would return for ``t`` (for fake
    tensors under ``torch.compile``)."""
    perm = memory_order(t) if perm is None else tuple(perm)
    return _empty(tuple(t.shape), perm, t)
