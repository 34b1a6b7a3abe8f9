"""The autograd and compiler boundary: one autograd Function for eager mode, the same op as
PyTorch custom operators for ``torch.compile``, and the per-call (seed, offset) of a module.

Eager calls run :class:`DropoutFunction` (a ``torch.autograd.Function``: little overhead, the
context keeps scalars only). Under ``torch.compile`` the same computation is the custom
operator ``torch.ops.cydrop.dropout`` (backward ``torch.ops.cydrop.dropout_backward``), with a
fake (meta) implementation and an autograd formula, so Dynamo traces it without a graph break.
Both run :func:`cydrop.interop.torch._run.run`: the same masks, compiled or not.

The seed and offset of a call are an INPUT of the custom operator: an int64 tensor
``[seed, offset]`` (the uint64 values' two's complement bits), never state read inside it, so
a compiled graph cannot bake them in.
"""

import weakref

import torch

from cydrop._contract import BLOCK, INDEX_LIMIT
from cydrop._openmp import effective_n_threads
from cydrop.interop.torch._run import memory_order, out_like, run

__all__ = ["DropoutFunction", "GradFunction", "compiled_call", "pack_state", "step_of",
           "unpack_state"]

_MASK64 = (1 << 64) - 1
_REAL = (torch.float32, torch.float64)


def pack_state(seed, offset):
    """``[seed, offset]`` as an int64 tensor (the uint64 values' bits)."""
    def signed(v):
        return v - (1 << 64) if v >= (1 << 63) else v
    return torch.tensor([signed(seed), signed(offset)], dtype=torch.int64)


def unpack_state(state):
    """``(seed, offset)`` as Python ints in [0, 2**64) from a state tensor."""
    seed, offset = state.tolist()
    return seed & _MASK64, offset & _MASK64


def step_of(numel):
    """Indices a call of ``numel`` mask elements takes: a whole number of 4096-element blocks,
    as :meth:`cydrop.SeedStream.next` takes them."""
    return -(-numel // BLOCK) * BLOCK


class DropoutFunction(torch.autograd.Function):
    """Autograd function: a cydrop dropout op on a strided CPU tensor.

    ``DropoutFunction.apply(input, p, seed, offset, inplace, n_threads[, kind])``; all
    arguments are positional and are NOT validated here (the functional forms check them).

    Parameters
    ----------
    input : torch.Tensor
        Strided CPU tensor of dtype float32, float64, float16 or bfloat16.
    p : float
        Drop probability, ``0 < p <= 1``.
    seed : int
        ``0 <= seed < 2**64``.
    offset : int
        Global index of the first mask element.
    inplace : bool
        Write the result into ``input`` (marked dirty for autograd).
    n_threads : int
        Threads for the kernel (>= 1, capped at the usable cores).
    kind : {'element', 'channel', 'alpha', 'feature_alpha', 'row', 'batch'}, default='element'
        ``torch.nn.Dropout``, ``Dropout1d/2d/3d`` (one decision per (dim 0, dim 1)),
        ``AlphaDropout``, ``FeatureAlphaDropout``, or stochastic depth (one decision per
        sample of dim 0, or one for the whole tensor; ``offset`` then counts samples).

    Notes
    -----
    The output (and the gradient) is laid out like ``input`` (its stride order, made dense);
    masks follow the elements' logical indices. Backward regenerates the mask from
    ``(seed, offset)`` through ``GradFunction``, whose own backward is itself, so double
    backward works (every op here is linear in the gradient). The context keeps scalars only.
    """

    @staticmethod
    def forward(ctx, input, p, seed, offset, inplace, n_threads, kind="element"):
        """Run the op; see the class for the arguments."""
        perm = memory_order(input)
        if (inplace and kind == "element" and input.dtype in _REAL and input.is_contiguous()
                and not input.is_neg()):
            from cydrop._core import dropout as _dropout  # the zero-copy in-place kernel
            _dropout(input.detach().numpy(), p, seed=seed, offset=offset, inplace=True,
                     n_threads=n_threads)
            result = input
        else:
            result = run(kind, False, input, p, seed, offset, n_threads, perm)
            if inplace:
                input.copy_(result)
                result = input
        if inplace:
            ctx.mark_dirty(input)
        ctx.p, ctx.seed, ctx.offset, ctx.n_threads = p, seed, offset, n_threads
        ctx.kind, ctx.perm = kind, perm
        return result

    @staticmethod
    def backward(ctx, grad_output):
        """The forward's mask, regenerated from ``(seed, offset)``, applied to the gradient."""
        grad = GradFunction.apply(grad_output, ctx.p, ctx.seed, ctx.offset, ctx.n_threads,
                                  ctx.kind, ctx.perm)
        return grad, None, None, None, None, None, None


class GradFunction(torch.autograd.Function):
    """The gradient of :class:`DropoutFunction`: ``GradFunction.apply(grad, p, seed, offset,
    n_threads, kind, perm)``, laid out in memory order ``perm`` (the forward input's); linear
    and diagonal, so its backward is itself."""

    @staticmethod
    def forward(ctx, grad, p, seed, offset, n_threads, kind, perm):
        """Apply the forward call's mask (and scale) to ``grad``."""
        ctx.args = (p, seed, offset, n_threads, kind, perm)
        return run(kind, True, grad, p, seed, offset, n_threads, perm)

    @staticmethod
    def backward(ctx, gg):
        """The same map applied to ``gg``."""
        return (GradFunction.apply(gg, *ctx.args),) + (None,) * 6


# ------------------------------------------------------------------------------------------
# custom operators, for torch.compile
# ------------------------------------------------------------------------------------------

def _threads(n_threads):
    """The op's ``n_threads`` argument: 0 is the default (torch's intra-op thread count,
    capped by cydrop's), resolved at run time; any other int is capped at the usable cores."""
    if n_threads == 0:
        return max(1, min(torch.get_num_threads(), effective_n_threads(None)))
    return effective_n_threads(n_threads)


@torch.library.custom_op("cydrop::dropout", mutates_args=())
def _dropout_op(x: torch.Tensor, state: torch.Tensor, p: float, kind: str,
                n_threads: int) -> tuple[torch.Tensor, torch.Tensor]:
    seed, offset = unpack_state(state)
    # the state is returned (a copy, made here) for the backward to save: a tensor the
    # compiler cannot alias with the module's buffer, which the graph advances after the call
    # (saving the input itself, inductor's backward read the advanced buffer)
    return run(kind, False, x, p, seed, offset, _threads(n_threads)), state.clone()


@_dropout_op.register_fake
def _(x, state, p, kind, n_threads):
    return out_like(x), torch.empty_like(state)


@torch.library.custom_op("cydrop::dropout_backward", mutates_args=())
def _dropout_backward_op(grad: torch.Tensor, state: torch.Tensor, p: float, kind: str,
                         n_threads: int, perm: list[int]) -> torch.Tensor:
    seed, offset = unpack_state(state)
    return run(kind, True, grad, p, seed, offset, _threads(n_threads), perm)


@_dropout_backward_op.register_fake
def _(grad, state, p, kind, n_threads, perm):
    return out_like(grad, perm)


def _setup(ctx, inputs, output):
    x, _, p, kind, n_threads = inputs
    ctx.save_for_backward(output[1])
    ctx.args = (p, kind, n_threads, list(memory_order(x)))


def _backward(ctx, grad, _):
    (state,) = ctx.saved_tensors
    return _dropout_backward_op(grad, state, *ctx.args), None, None, None, None


def _setup_grad(ctx, inputs, output):
    grad, state, p, kind, n_threads, perm = inputs
    ctx.save_for_backward(state)
    ctx.args = (p, kind, n_threads, perm)


def _backward_grad(ctx, gg):
    (state,) = ctx.saved_tensors
    return _dropout_backward_op(gg, state, *ctx.args), None, None, None, None, None


_dropout_op.register_autograd(_backward, setup_context=_setup)
_dropout_backward_op.register_autograd(_backward_grad, setup_context=_setup_grad)


def compiled_call(input, p, state, inplace, n_threads, kind):
    """The op as the custom operator (what ``torch.compile`` traces); ``state`` is the
    ``[seed, offset]`` tensor. In place is a functional op and a ``copy_`` into ``input``."""
    n_threads = max(-(1 << 31), min(int(n_threads), 1 << 31))   # any int fits the op's int64
    out, _ = torch.ops.cydrop.dropout(input, state, float(p), kind, n_threads)
    return input.copy_(out) if inplace else out


# ------------------------------------------------------------------------------------------
# checkpoint replay
# ------------------------------------------------------------------------------------------

_RECORDS = weakref.WeakKeyDictionary()     # checkpoint frame -> {module id: [(seed, offset)]}
_CURSORS = weakref.WeakKeyDictionary()     # recomputation pack hook -> {module id: next index}


def _closure(fn):
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None) or ()
    if code is None:
        return getattr(fn, "__qualname__", ""), {}
    return fn.__qualname__, {n: c.cell_contents for n, c in zip(code.co_freevars, cells)}


def _checkpoint_context():
    """``(mode, frame, hook)``: mode 'forward' inside the first run of a non-reentrant
    ``torch.utils.checkpoint`` region, 'recompute' inside its recomputation, else None.

    Read from the innermost saved-tensor hooks that ``torch.utils.checkpoint`` installs; any
    other hooks (or a torch whose internals differ) read as None: no replay."""
    try:
        hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    except Exception:       # pragma: no cover - a torch without the hook stack
        return None, None, None
    if not hooks:
        return None, None, None
    pack = hooks[0]
    name, cells = _closure(pack)
    if name.startswith("_checkpoint_hook.") and "frame" in cells:
        return "forward", cells["frame"], None
    if name.startswith("_recomputation_hook.") and "target_frame_ref" in cells:
        return "recompute", cells["target_frame_ref"](), pack
    return None, None, None


def next_seed_offset(owner, draw, numel):
    """``(seed, offset)`` for an eager call of the module ``owner`` on ``numel`` mask
    elements: ``draw(numel)`` takes them from its stream, except in a checkpoint's
    recomputation, which gets the pair its first run took (so the masks, and the stream's
    position, are the same as without checkpointing)."""
    mode, frame, hook = _checkpoint_context()
    if frame is None:
        return draw(numel)
    if mode == "recompute":
        taken = _RECORDS.get(frame, {}).get(id(owner), [])
        cursor = _CURSORS.setdefault(hook, {})
        i = cursor.get(id(owner), 0)
        if i < len(taken):
            cursor[id(owner)] = i + 1
            return taken[i]
        return draw(numel)       # not seen in the first run: a fresh draw
    pair = draw(numel)
    _RECORDS.setdefault(frame, {}).setdefault(id(owner), []).append(pair)
    return pair


def check_index_room(seed, offset, numel):
    """OverflowError when a stream has no ``numel`` indices left (as SeedStream.next)."""
    if offset + numel > INDEX_LIMIT:
        raise OverflowError(f"the module's stream (seed={seed}) has used all 2**64 indices; "
                            f"set another seed")
