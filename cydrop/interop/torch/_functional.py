"""The functional forms, like ``torch.nn.functional``'s: argument checks, torch's shape rules
and warnings, deferral, then one call of :func:`apply`."""

import warnings

import torch
import torch.nn.functional as F

from cydrop import _validation
from cydrop._openmp import effective_n_threads
from cydrop._seeds import resolve_seed
from cydrop.interop.torch import _ops

__all__ = ["alpha_dropout", "apply", "check_p", "check_tensor", "dropout", "dropout1d",
           "dropout2d", "dropout3d", "feature_alpha_dropout", "resolve_threads", "uses_cydrop"]

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_FEATURE_DIMS_MSG = "Feature dropout requires at least 2 dimensions in the input"


def check_p(p):
    """``p`` as a float in [0, 1] (a one-element floating tensor is read as its value): the
    shared probability check, its ValueError worded as torch's own."""
    if isinstance(p, torch.Tensor) and p.numel() == 1 and p.is_floating_point():
        p = p.item()
    return _validation.check_probability(p, "p", what="dropout probability")


def uses_cydrop(input):
    """Whether the functions of ``cydrop.torch`` run cydrop's kernels on ``input``.

    Parameters
    ----------
    input : torch.Tensor

    Returns
    -------
    bool
        ``True`` for a strided (dense, not sparse), non-quantized CPU tensor of dtype float32,
        float64, float16 or bfloat16. Anything else goes to torch's own dropout.
    """
    return (input.device.type == "cpu" and input.dtype in _DTYPES
            and input.layout == torch.strided and not input.is_quantized)


def resolve_threads(n_threads):
    """``n_threads`` for the kernels: by default torch's intra-op thread count, capped by
    cydrop's; any other int is capped at the usable cores by :func:`cydrop.effective_n_threads`."""
    if n_threads is None:
        return max(1, min(torch.get_num_threads(), effective_n_threads(None)))
    return effective_n_threads(n_threads)


def check_tensor(input):
    """TypeError unless ``input`` is a tensor."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")


def apply(input, p, inplace, kind, n_threads, seed=None, offset=0, module=None):
    """One training-mode call of the op ``kind`` on a tensor cydrop takes (``p > 0``).

    The mask's (seed, offset) come from ``module`` (its stream, or its state tensor under
    ``torch.compile``) or else from ``seed`` and ``offset``. Returns the result tensor."""
    if input.numel() == 0:
        return input
    numel = _mask_numel(input, kind)
    if torch.compiler.is_compiling():
        # the thread count is resolved inside the op (0: the default), at run time
        if module is not None:
            state = module._cydrop_take(numel)
        else:
            state = _ops.pack_state(resolve_seed(seed), offset)
        return _ops.compiled_call(input, p, state, inplace, n_threads or 0, kind)
    threads = resolve_threads(n_threads)
    if module is not None:
        seed, offset = _ops.next_seed_offset(module, module.stream.next, numel)
    else:
        seed = resolve_seed(seed)
        offset = _validation.check_offset(offset, numel)
    return _ops.DropoutFunction.apply(input, p, seed, offset, inplace, threads, kind)


def _mask_numel(input, kind):
    if kind in ("channel", "feature_alpha"):
        return input.shape[0] * input.shape[1]
    if kind in ("row", "batch"):
        return input.shape[0] if kind == "row" else 1
    return input.numel()


def _common(input, p, training, inplace, n_threads):
    check_tensor(input)
    p = check_p(p)
    training = _validation.check_bool(training, "training")
    inplace = _validation.check_bool(inplace, "inplace")
    return p, training, inplace, _validation.check_n_threads(n_threads)


def dropout(input, p=0.5, training=True, inplace=False, *, seed=None, offset=0,
            n_threads=None):
    """Inverted dropout on a tensor, like ``torch.nn.functional.dropout``, with cydrop's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape. Tensors :func:`uses_cydrop` accepts run cydrop's kernels; anything else
        goes to ``torch.nn.functional.dropout(input, p, training, inplace)``.
    p : float, default=0.5
        Probability of ZEROING an element, ``0 <= p <= 1`` (PyTorch's meaning). Kept elements
        are scaled by ``1 / keep``, where ``keep`` is within 2**-16 of ``1 - p``.
    training : bool, default=True
        ``False`` returns ``input`` itself, as does ``p == 0`` or an empty input.
    inplace : bool, default=False
        Write the result into ``input`` and return it.
    seed : int or None, default=None
        ``0 <= seed < 2**64``. ``None`` draws a fresh seed from the operating system's entropy
        (``secrets``), never from torch's or NumPy's generators.
    offset : int, default=0
        Global index of ``input``'s first element in the mask field: ``dropout(x[a:b],
        offset=a * row_size)`` equals ``dropout(x)[a:b]`` for the same seed.
    n_threads : int or None, default=None
        Threads for the kernel; ``None`` uses ``torch.get_num_threads()`` capped by
        :func:`cydrop.effective_n_threads` (so ``threadpoolctl`` limits apply). Any other
        nonzero int is accepted and capped at the usable cores. Never changes the result.

    Returns
    -------
    torch.Tensor
        Same shape and dtype as ``input``, laid out like it (its stride order, made dense, as
        torch's own dropout does), or ``input`` itself when ``inplace=True``. Element ``i``
        (its LOGICAL, row-major index) is masked by ``(seed, offset + i)`` whatever the
        layout: the values equal ``cydrop.dropout(input.numpy(), p, seed=seed,
        offset=offset)``. Differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        If ``input`` is not a tensor, or ``p``, ``seed``, ``offset``, ``n_threads`` have the
        wrong type.
    ValueError
        If ``p`` is outside [0, 1] (however large), ``seed`` / ``offset`` outside [0, 2**64),
        or ``n_threads`` is 0.

    See Also
    --------
    Dropout : the module, with a reproducible seed stream.
    cydrop.dropout : the NumPy function this runs; same seed and offset, same output.

    Notes
    -----
    On the cydrop path dropped elements are ``+0.0`` even where ``input`` is NaN or inf (a
    select, not a multiply); torch's CPU dropout multiplies by zero and keeps NaN. float16 and
    bfloat16 tensors are computed in float32 with the same masks and rounded once, unless
    cydrop's core takes them directly.

    Examples
    --------
    >>> import torch, cydrop.torch
    >>> x = torch.ones(2, 4, requires_grad=True)
    >>> y = cydrop.torch.dropout(x, 0.5, seed=0)
    >>> sorted(set(y.flatten().tolist()))
    [0.0, 2.0]
    >>> y.sum().backward()
    >>> bool((x.grad == y.detach()).all())
    True
    """
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    if not uses_cydrop(input):
        return F.dropout(input, p, training, inplace)
    if not training or p == 0.0:
        return input
    return apply(input, p, inplace, "element", n_threads, seed, offset)


def channel_call(name, input, p, training, inplace, n_threads, seed, offset, module=None):
    """``dropout1d`` / ``dropout2d`` / ``dropout3d`` after the checks: torch's shape rules and
    warnings, then one decision per (N, C) channel."""
    dim = input.dim()
    batched = True
    if name == "dropout1d":
        if dim not in (2, 3):
            raise RuntimeError(
                f"dropout1d: Expected 2D or 3D input, but received a {dim}D input. Note that "
                f"dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
                f"dimension, a channel dimension, and an optional batch dimension (i.e. 2D or "
                f"3D inputs).")
        batched = dim == 3
    elif name == "dropout2d":
        if dim not in (3, 4):
            warnings.warn(
                f"dropout2d: Received a {dim}-D input to dropout2d, which is deprecated and will "
                f"result in an error in a future release. To retain the behavior and silence "
                f"this warning, please use dropout instead. Note that dropout2d exists to "
                f"provide channel-wise dropout on inputs with 2 spatial dimensions, a channel "
                f"dimension, and an optional batch dimension (i.e. 3D or 4D inputs).",
                stacklevel=3)
        if dim == 3:
            warnings.warn(
                "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
                "dropout behavior is desired - input is interpreted as shape (N, C, L), where C "
                "is the channel dim. This behavior will change in a future release to interpret "
                "the input as one without a batch dimension, i.e. shape (C, H, W). To maintain "
                "the 1D channel-wise dropout behavior, please switch to using dropout1d "
                "instead.", stacklevel=3)
    else:
        if dim not in (4, 5):
            warnings.warn(
                f"dropout3d: Received a {dim}-D input to dropout3d, which is deprecated and will "
                f"result in an error in a future release. To retain the behavior and silence "
                f"this warning, please use dropout instead. Note that dropout3d exists to "
                f"provide channel-wise dropout on inputs with 3 spatial dimensions, a channel "
                f"dimension, and an optional batch dimension (i.e. 4D or 5D inputs).",
                stacklevel=3)
        batched = dim == 5
    if not uses_cydrop(input):
        return getattr(F, name)(input, p, training, inplace)
    return _feature_call("channel", input, p, training, inplace, n_threads, seed, offset,
                         module, batched)


def _feature_call(kind, input, p, training, inplace, n_threads, seed, offset, module,
                  batched=True):
    if not training or p == 0.0 or input.numel() == 0:
        return input                # as torch: checked before the feature dimensions
    view = input if batched else input.unsqueeze(0)
    if view.dim() < 2:
        raise RuntimeError(_FEATURE_DIMS_MSG)
    out = apply(view, p, inplace, kind, n_threads, seed, offset, module)
    if inplace:
        return input
    return out if batched else out.squeeze(0)


def _channel_doc(name, spatial, shapes):
    return f"""Channel dropout, like ``torch.nn.functional.{name}``, with cydrop's kernels.

    Zeroes whole channels: one keep decision per (sample, channel) of an input of shape
    {shapes}, shared by the {spatial} spatial position(s); kept channels are scaled by
    ``1 / keep``. Mask element ``n * C + c`` is drawn from ``(seed, offset + n * C + c)``, as
    :func:`cydrop.variants.spatial_dropout` draws it, whatever the input's layout.

    Parameters
    ----------
    input : torch.Tensor
        See :func:`uses_cydrop`; other tensors go to torch's ``{name}``. Torch's shape rules
        and warnings apply unchanged.
    p : float, default=0.5
        Probability of zeroing a channel, ``0 <= p <= 1``.
    training : bool, default=True
        ``False`` (or ``p == 0``) returns ``input`` itself.
    inplace : bool, default=False
    seed : int or None, default=None
        ``0 <= seed < 2**64``; None draws one from the operating system.
    offset : int, default=0
        Global index of mask element 0 (mask elements, not input elements).
    n_threads : int or None, default=None
        Threads for the kernel; never changes the result.

    Returns
    -------
    torch.Tensor
        Same shape, dtype and layout as ``input``; differentiable.
    """


def dropout1d(input, p=0.5, training=True, inplace=False, *, seed=None, offset=0,
              n_threads=None):
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    return channel_call("dropout1d", input, p, training, inplace, n_threads, seed, offset)


def dropout2d(input, p=0.5, training=True, inplace=False, *, seed=None, offset=0,
              n_threads=None):
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    return channel_call("dropout2d", input, p, training, inplace, n_threads, seed, offset)


def dropout3d(input, p=0.5, training=True, inplace=False, *, seed=None, offset=0,
              n_threads=None):
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    return channel_call("dropout3d", input, p, training, inplace, n_threads, seed, offset)


dropout1d.__doc__ = _channel_doc("dropout1d", "1", "``(N, C, L)`` or ``(C, L)``")
dropout2d.__doc__ = _channel_doc("dropout2d", "2", "``(N, C, H, W)`` (a 3-D input is read "
                                 "as ``(N, C, L)``, with torch's warning)")
dropout3d.__doc__ = _channel_doc("dropout3d", "3", "``(N, C, D, H, W)`` or ``(C, D, H, W)``")


def alpha_dropout(input, p=0.5, training=False, inplace=False, *, seed=None, offset=0,
                  n_threads=None):
    """Alpha dropout for SELU networks, like ``torch.nn.functional.alpha_dropout``.

    Dropped elements become SELU's negative saturation, then ``a * x + b`` keeps the mean and
    variance (the constants of :func:`cydrop.variants.alpha_dropout`, which this runs).

    Parameters
    ----------
    input : torch.Tensor
        See :func:`uses_cydrop`; other tensors go to torch's ``alpha_dropout``.
    p : float, default=0.5
        Drop probability, ``0 <= p <= 1``; ``p == 1`` zeroes the output, as torch does.
    training : bool, default=False
        As in torch, the default is ``False``: the identity.
    inplace : bool, default=False
    seed : int or None, default=None
    offset : int, default=0
        Element ``i`` (logical index) is kept when ``draw(seed, offset + i)`` is below the
        threshold.
    n_threads : int or None, default=None

    Returns
    -------
    torch.Tensor
        Same shape, dtype and layout as ``input``; differentiable.
    """
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    if not uses_cydrop(input):
        return F.alpha_dropout(input, p, training, inplace)
    if not training or p == 0.0:
        return input
    return apply(input, p, inplace, "alpha", n_threads, seed, offset)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False, *, seed=None, offset=0,
                          n_threads=None):
    """Channel-wise alpha dropout, like ``torch.nn.functional.feature_alpha_dropout``.

    One keep decision per (sample, channel) of an ``(N, C, *)`` input, mask element
    ``n * C + c`` drawn from ``(seed, offset + n * C + c)``; runs
    :func:`cydrop.feature_alpha_dropout`.

    Parameters
    ----------
    input : torch.Tensor
        At least 2-D. See :func:`uses_cydrop`; other tensors go to torch's function.
    p : float, default=0.5
        Probability of dropping a channel; ``p == 1`` zeroes the output.
    training : bool, default=False
        As in torch, the default is ``False``: the identity.
    inplace : bool, default=False
    seed : int or None, default=None
    offset : int, default=0
    n_threads : int or None, default=None

    Returns
    -------
    torch.Tensor
        Same shape, dtype and layout as ``input``; differentiable.

    Raises
    ------
    RuntimeError
        For an input of fewer than 2 dimensions, as torch.
    """
    p, training, inplace, n_threads = _common(input, p, training, inplace, n_threads)
    if not uses_cydrop(input):
        return F.feature_alpha_dropout(input, p, training, inplace)
    return _feature_call("feature_alpha", input, p, training, inplace, n_threads, seed, offset,
                         None)
