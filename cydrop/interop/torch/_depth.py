"""Stochastic depth on tensors: the functional form of :class:`StochasticDepth`, its argument
checks, and the plain torch computation of the tensors cydrop does not take."""

import numbers

import torch

from cydrop import _validation
from cydrop.interop.torch import _functional as _f

__all__ = ["MODES", "check_depth_p", "check_mode", "depth_call", "stochastic_depth"]

#: "batch": one keep decision for the whole tensor; "row": one per sample (dim 0)
MODES = ("batch", "row")


def check_depth_p(p):
    """``p`` as a float in [0, 1] (a one-element floating tensor is read as its value); the
    ValueError is worded as the stochastic depth one of the torch ecosystem."""
    if isinstance(p, torch.Tensor) and p.numel() == 1 and p.is_floating_point():
        p = p.item()
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise TypeError(f"p must be a real number, got {type(p).__name__}")
    try:
        value = float(p)
    except OverflowError:       # an int too large for a float: out of range all the same
        value = float("inf")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    return value


def check_mode(mode):
    """``mode`` if it is ``'batch'`` or ``'row'``, else ValueError."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    return mode


def _torch_depth(input, p, mode):
    """Stochastic depth with torch's own RNG and ops, for the tensors cydrop does not take."""
    survival_rate = 1.0 - p
    if mode == "row":
        size = [input.shape[0]] + [1] * (input.ndim - 1)
    else:
        size = [1] * input.ndim
    noise = torch.empty(size, dtype=input.dtype, device=input.device)
    noise = noise.bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return input * noise


def depth_call(input, p, mode, training, n_threads, seed, offset, module=None):
    """Stochastic depth after the argument checks: the identity, torch's computation for a
    tensor cydrop does not take, or one call of the op ``mode`` (its seed and offset from
    ``module``'s stream when given)."""
    if not training or p == 0.0:
        return input
    if not _f.uses_cydrop(input) or (mode == "row" and input.dim() == 0):
        return _torch_depth(input, p, mode)       # a 0-d "row" input raises IndexError there
    return _f.apply(input, p, False, mode, n_threads, seed, offset, module)


def stochastic_depth(input, p, mode, training=True, *, seed=None, offset=0, n_threads=None):
    """Stochastic depth: drop whole samples (or the whole batch) of a residual branch.

    Runs :func:`cydrop.drop_path`: in mode ``'row'`` each sample (index along dim 0) is kept
    or zeroed as a whole, in mode ``'batch'`` the whole tensor is (``drop_path`` of its
    ``(1, input.numel())`` view: one sample, one decision). Kept values are scaled by
    ``1 / keep``.

    Parameters
    ----------
    input : torch.Tensor
        Shape ``(N, ...)`` (any shape in mode ``'batch'``). Tensors :func:`uses_cydrop`
        accepts run cydrop's kernels; any other (other devices, meta, sparse, quantized,
        integer) gets ``input * noise``, ``noise`` drawn with torch's ``bernoulli_`` and
        divided by ``1 - p``, with torch's RNG and errors.
    p : float
        Probability of DROPPING a sample (or the batch), ``0 <= p <= 1``. Kept values are
        scaled by ``1 / keep``, where ``keep`` is within 2**-16 of ``1 - p``.
    mode : {'batch', 'row'}
        ``'row'``: one keep decision per sample of dim 0, shared by its other elements;
        ``'batch'``: one decision for the whole tensor.
    training : bool, default=True
        ``False`` returns ``input`` itself, as does ``p == 0`` or an empty input.
    seed : int or None, default=None
        ``0 <= seed < 2**64``. ``None`` draws a fresh seed from the operating system's entropy
        (``secrets``), never from torch's or NumPy's generators.
    offset : int, default=0
        Global index of the first decision: sample ``r`` (mode ``'row'``) is kept when draw
        ``offset + r`` of ``seed`` is, so ``stochastic_depth(x[a:b], p, 'row', offset=a)``
        equals ``stochastic_depth(x, p, 'row')[a:b]`` for the same seed; mode ``'batch'``
        uses draw ``offset`` alone.
    n_threads : int or None, default=None
        Threads for the kernel; ``None`` uses ``torch.get_num_threads()`` capped by
        :func:`cydrop.effective_n_threads`. Never changes the result.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``input``, laid out like it (its stride order, made dense).
        In mode ``'row'`` the values equal ``cydrop.drop_path(input.numpy(), p,
        training=True, seed=seed, offset=offset)[0]`` whatever the layout. Differentiable
        with respect to ``input``; the backward regenerates the decisions from the seed
        (:func:`cydrop.drop_path_backward`).

    Raises
    ------
    TypeError
        If ``input`` is not a tensor, or ``p``, ``training``, ``seed``, ``offset``,
        ``n_threads`` have the wrong type.
    ValueError
        ``"drop probability has to be between 0 and 1, but got {p}"`` for ``p`` outside
        [0, 1]; ``"mode has to be either 'batch' or 'row', but got {mode}"``; ``seed`` /
        ``offset`` outside [0, 2**64), or ``n_threads`` 0.
    IndexError
        For a 0-d input in mode ``'row'`` (it has no sample axis).

    See Also
    --------
    StochasticDepth : the module, with a reproducible seed stream.
    cydrop.drop_path : the NumPy function this runs; same seed and offset, same output.

    Notes
    -----
    The scale of kept values is ``65536 / threshold``, the exact inverse of the realised keep
    probability ``keep = threshold / 65536`` with ``threshold = round((1 - p) * 65536)``
    (cydrop's published contract), not ``1 / (1 - p)``; ``keep`` is within 2**-16 of
    ``1 - p``. ``p == 1`` zeroes every value. On the cydrop path dropped values are ``+0.0``
    even where ``input`` is NaN or inf (a select, not a multiply). float16 and bfloat16
    tensors are computed in float32 with the same decisions and rounded once, unless cydrop's
    core takes them directly.

    Examples
    --------
    >>> import torch, cydrop.torch
    >>> x = torch.ones(8, 3, requires_grad=True)
    >>> y = cydrop.torch.stochastic_depth(x, 0.5, "row", seed=0)
    >>> bool((y == y[:, :1]).all()) and sorted(set(y.flatten().tolist())) <= [0.0, 2.0]
    True
    >>> y.sum().backward()
    >>> bool((x.grad == y.detach()).all())
    True
    """
    _f.check_tensor(input)
    p = check_depth_p(p)
    mode = check_mode(mode)
    training = _validation.check_bool(training, "training")
    n_threads = _validation.check_n_threads(n_threads)
    return depth_call(input, p, mode, training, n_threads, seed, offset)
