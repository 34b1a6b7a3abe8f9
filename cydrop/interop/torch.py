"""PyTorch adapter: cydrop's dropout kernels behind ``torch.nn.Dropout``'s interface.

Optional: needs ``torch`` (``pip install cydrop[torch]``). Import it as ``cydrop.torch`` (an
alias of ``cydrop.interop.torch``); the rest of cydrop never imports torch.

* :class:`Dropout` is a ``torch.nn.Dropout`` (``isinstance`` checks keep working) whose forward
  runs cydrop's OpenMP kernels on CPU float32/float64 tensors, reading and writing the tensors'
  memory through NumPy views (``Tensor.numpy()`` / ``torch.from_numpy``): no copies.
* :class:`DropoutFunction` is the ``torch.autograd.Function`` behind it. Its backward
  regenerates the mask from ``(seed, offset)``; nothing of the input's size is kept.
* :func:`dropout` is the functional form, like ``torch.nn.functional.dropout``.

As in PyTorch, ``p`` is the probability of ZEROING an element (cydrop calls it ``rate``
everywhere else). Tensors on other devices (CUDA, MPS, meta, ...), of other dtypes (float16,
bfloat16, complex, ...) or with a non-strided layout go to ``torch.nn.functional.dropout``
unchanged.

Randomness
----------
On the cydrop path the mask is a pure function of ``(seed, offset + C-order element index)``,
exactly as in :func:`cydrop.dropout`; torch's random number generators, global or per device,
are never read or advanced. A :class:`Dropout` module owns a :class:`cydrop.SeedStream`: the
same ``seed`` replays the same sequence of masks, whatever the thread count. The deferred path
is torch's own dropout and draws from torch's generator, as ``torch.nn.Dropout`` would.
"""

import torch
import torch.nn.functional as F

from cydrop import _validation
from cydrop._core import dropout as _dropout
from cydrop._openmp import effective_n_threads
from cydrop._seeds import SeedStream, resolve_seed

__all__ = ["Dropout", "DropoutFunction", "dropout", "uses_cydrop"]

_FLOAT_DTYPES = (torch.float32, torch.float64)


def _check_p(p):
    """``p`` as a float in [0, 1] (a one-element floating tensor is read as its value): the
    shared probability check, its ValueError worded as torch's own."""
    if isinstance(p, torch.Tensor) and p.numel() == 1 and p.is_floating_point():
        p = p.item()
    return _validation.check_probability(p, "p", what="dropout probability")


def uses_cydrop(input):
    """Whether :func:`dropout` runs cydrop's kernels on ``input`` (else torch's dropout).

    Parameters
    ----------
    input : torch.Tensor

    Returns
    -------
    bool
        ``True`` for a strided CPU tensor of dtype float32 or float64.
    """
    return (input.device.type == "cpu" and input.dtype in _FLOAT_DTYPES
            and input.layout == torch.strided)


def _resolve_threads(n_threads):
    """``n_threads`` for the kernels: by default torch's intra-op thread count, capped by
    cydrop's; any other int is capped at the usable cores by :func:`cydrop.effective_n_threads`."""
    if n_threads is None:
        return max(1, min(torch.get_num_threads(), effective_n_threads(None)))
    return effective_n_threads(n_threads)


def _numpy_view(t):
    """A NumPy array sharing ``t``'s memory (``t`` on the CPU, strided, float32/float64)."""
    return t.detach().resolve_neg().resolve_conj().numpy()


class DropoutFunction(torch.autograd.Function):
    """Autograd function: cydrop's inverted dropout on a CPU float32/float64 tensor.

    ``DropoutFunction.apply(input, p, seed, offset, inplace, n_threads)``; all arguments are
    positional and are NOT validated here (use :func:`dropout`, which checks them once).

    Parameters
    ----------
    input : torch.Tensor
        Strided CPU tensor of dtype float32 or float64, any shape.
    p : float
        Drop probability, ``0 < p <= 1``.
    seed : int
        ``0 <= seed < 2**64``.
    offset : int
        Global index of ``input``'s first element.
    inplace : bool
        Write the result into ``input`` (marked dirty for autograd).
    n_threads : int
        Threads for the kernel (>= 1, at most the usable cores: :func:`dropout` resolves it).

    Notes
    -----
    Backward recomputes the mask from ``(seed, offset)`` and applies it to the incoming
    gradient by calling this function again, so double backward works too (dropout is linear).
    The context keeps four scalars, never a mask.
    """

    @staticmethod
    def forward(ctx, input, p, seed, offset, inplace, n_threads):
        """Drop elements of ``input`` with probability ``p``; see the class for the arguments."""
        x = _numpy_view(input)
        if inplace:
            _dropout(x, p, seed=seed, offset=offset, inplace=True, n_threads=n_threads)
            ctx.mark_dirty(input)
            result = input
        else:
            result = torch.empty(input.shape, dtype=input.dtype)
            _dropout(x, p, seed=seed, offset=offset, out=result.numpy(),
                           n_threads=n_threads)
        ctx.p, ctx.seed, ctx.offset, ctx.n_threads = p, seed, offset, n_threads
        return result

    @staticmethod
    def backward(ctx, grad_output):
        """The forward's mask, regenerated from ``(seed, offset)``, applied to ``grad_output``."""
        grad_input = DropoutFunction.apply(grad_output, ctx.p, ctx.seed, ctx.offset, False,
                                           ctx.n_threads)
        return grad_input, None, None, None, None, None


def dropout(input, p=0.5, training=True, inplace=False, *, seed=None, offset=0,
            n_threads=None):
    """Inverted dropout on a tensor, like ``torch.nn.functional.dropout``, with cydrop's kernels.

    Parameters
    ----------
    input : torch.Tensor
        Any shape. CPU float32/float64 tensors run cydrop's kernels; anything else goes to
        ``torch.nn.functional.dropout(input, p, training, inplace)``.
    p : float, default=0.5
        Probability of ZEROING an element, ``0 <= p <= 1`` (PyTorch's meaning). Kept elements
        are scaled by ``1 / keep``, where ``keep`` is within 2**-16 of ``1 - p``.
    training : bool, default=True
        ``False`` returns ``input`` itself, as does ``p == 0``.
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
        Same shape and dtype as ``input``; on the cydrop path a new C-contiguous tensor (or
        ``input`` when ``inplace=True``). Differentiable with respect to ``input``.

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
    select, not a multiply); torch's CPU dropout multiplies by zero and keeps NaN.

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
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    p = _check_p(p)
    training = _validation.check_bool(training, "training")
    inplace = _validation.check_bool(inplace, "inplace")
    n_threads = _validation.check_n_threads(n_threads)
    if not uses_cydrop(input):
        return F.dropout(input, p, training, inplace)
    if not training or p == 0.0:
        return input
    seed = resolve_seed(seed)
    offset = _validation.check_offset(offset, input.numel())
    return DropoutFunction.apply(input, p, seed, offset, inplace, _resolve_threads(n_threads))


class Dropout(torch.nn.Dropout):
    """Dropout(p=0.5, inplace=False, *, seed=None, n_threads=None)

    ``torch.nn.Dropout`` running cydrop's kernels on CPU float32/float64 tensors.

    During training, zeroes each element of the input with probability ``p`` and scales the
    others by ``1 / (1 - p)`` (up to 2**-16); in eval mode it is the identity. Other devices
    and dtypes go to ``torch.nn.functional.dropout``.

    Parameters
    ----------
    p : float, default=0.5
        Probability of ZEROING an element, ``0 <= p <= 1``.
    inplace : bool, default=False
        Do the operation in place.
    seed : int or None, default=None
        Seed of the module's :class:`cydrop.SeedStream`. Each forward call takes the next
        ``input.numel()`` indices of the stream, so a module built with the same seed replays
        the same masks. ``None`` draws the seed from the operating system's entropy; torch's
        global RNG is never touched (``torch.manual_seed`` does not affect this module on the
        cydrop path).
    n_threads : int or None, default=None
        Threads for the kernel, see :func:`dropout`: any nonzero int, capped at the usable
        cores.

    Attributes
    ----------
    stream : cydrop.SeedStream
        Where the masks' (seed, offset) pairs come from; ``stream.get_state()`` /
        ``stream.set_state(state)`` save and restore the position (copies of the module made
        with ``copy.deepcopy`` or pickle carry it too).

    See Also
    --------
    torch.nn.Dropout : same semantics, torch's RNG.
    dropout : the functional form.

    Examples
    --------
    >>> import torch, cydrop.torch
    >>> m = cydrop.torch.Dropout(0.25, seed=42)
    >>> m
    Dropout(p=0.25, inplace=False, seed=42)
    >>> y = m(torch.ones(1000))
    >>> bool(((y == 0) | (y > 1.3)).all())
    True
    >>> bool((m.eval()(torch.ones(3)) == 1).all())
    True
    """

    def __init__(self, p=0.5, inplace=False, *, seed=None, n_threads=None):
        p = _check_p(p)
        inplace = _validation.check_bool(inplace, "inplace")
        super().__init__(p, inplace)
        self.stream = SeedStream(seed)
        self.n_threads = _validation.check_n_threads(n_threads)   # int (any size) or None

    def forward(self, input):
        """Dropout of ``input`` in training mode, the identity in evaluation mode.

        Parameters
        ----------
        input : torch.Tensor
            A CPU float32/float64 tensor runs on cydrop's kernels; any other tensor on
            torch's own dropout.
        """
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
        if not uses_cydrop(input):
            return F.dropout(input, self.p, self.training, self.inplace)
        if not self.training or self.p == 0.0:
            return input
        seed, offset = self.stream.next(input.numel())
        return DropoutFunction.apply(input, self.p, seed, offset, self.inplace,
                                     _resolve_threads(self.n_threads))

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}, seed={self.stream.seed}"

    def __getstate__(self):
        state = self.__dict__.copy()
        state["stream"] = self.stream.get_state()   # a SeedStream holds a lock
        return state

    def __setstate__(self, state):
        state = dict(state)
        stream_state = state.pop("stream")
        super().__setstate__(state)
        # a pickle is data from outside: the same checks as __init__
        self.p = _check_p(self.p)
        self.inplace = _validation.check_bool(self.inplace, "inplace")
        self.n_threads = _validation.check_n_threads(getattr(self, "n_threads", None))
        self.stream = SeedStream(stream_state["seed"])
        self.stream.set_state(stream_state)

