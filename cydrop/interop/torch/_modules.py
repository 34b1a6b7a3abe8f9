"""The modules: each a subclass of its torch peer (``isinstance`` checks keep working) with a
reproducible mask stream, kept in an int64 buffer so that ``torch.compile`` can advance it."""

import torch
import torch.nn.functional as F

from cydrop import _validation
from cydrop._seeds import resolve_seed
from cydrop.interop.torch import _depth, _ops
from cydrop.interop.torch import _functional as _f

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
           "FeatureAlphaDropout", "ModuleStream", "StochasticDepth"]


class ModuleStream:
    """A module's mask stream: the :class:`cydrop.SeedStream` interface over the module's
    ``[seed, offset]`` buffer (``seed``, ``offset``, ``next``, ``get_state``, ``set_state``).

    Each training call takes the next ``numel`` mask indices, rounded up to whole 4096-element
    blocks, exactly as ``SeedStream.next`` does; eager and compiled calls advance it alike.

    Parameters
    ----------
    module : torch.nn.Module
        The cydrop module whose int64 buffer ``cydrop_state`` holds ``[seed, offset]`` (two's
        complement bits); its ``stream`` property makes one.
    """

    __slots__ = ("_module",)

    def __init__(self, module):
        self._module = module

    @property
    def _buffer(self):
        return self._module.cydrop_state

    def _write(self, seed, offset):
        buf = self._module.cydrop_state
        with torch.no_grad():
            if buf.is_inference() and not torch.is_inference_mode_enabled():
                # a module made under torch.inference_mode, used outside it: a normal buffer
                self._module.cydrop_state = _ops.pack_state(seed, offset).to(buf.device)
            else:
                buf.copy_(_ops.pack_state(seed, offset))

    @property
    def seed(self):
        """The stream's seed (an int in [0, 2**64))."""
        return _ops.unpack_state(self._buffer)[0]

    @property
    def offset(self):
        """The global mask index the next call starts at."""
        return _ops.unpack_state(self._buffer)[1]

    def next(self, size):
        """Reserve ``size`` indices; return ``(seed, offset)`` for them (as SeedStream.next).

        Parameters
        ----------
        size : int
            Mask elements the call uses, ``size >= 0``.

        Returns
        -------
        seed, offset : int
        """
        size = _validation.check_uint64(size, "size")
        seed, offset = _ops.unpack_state(self._buffer)
        _ops.check_index_room(seed, offset, size)
        self._write(seed, (offset + _ops.step_of(size)) % (1 << 64))
        return seed, offset

    def get_state(self):
        """The stream's state, ``{'seed': int, 'offset': int}``."""
        seed, offset = _ops.unpack_state(self._buffer)
        return {"seed": seed, "offset": offset}

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`.

        Parameters
        ----------
        state : dict
            ``{'seed': int, 'offset': int}``.
        """
        if not isinstance(state, dict) or set(state) != {"seed", "offset"}:
            raise ValueError(
                f"state must be a dict with keys 'seed' and 'offset', got {state!r}")
        seed = _validation.check_uint64(state["seed"], "state['seed']")
        offset = _validation.check_uint64(state["offset"], "state['offset']")
        self._write(seed, offset)

    def __repr__(self):
        s = self.get_state()
        return f"ModuleStream(seed={s['seed']}, offset={s['offset']})"


_FORWARD_DOC = """{} in training mode, the identity in evaluation mode.

        Parameters
        ----------
        input : torch.Tensor
            Tensors :func:`uses_cydrop` accepts run cydrop's kernels; any other goes to torch.

        Returns
        -------
        torch.Tensor
        """


def _forward(owner, summary):
    """The one forward of every cydrop module, as the method of the class ``owner`` with its
    own docstring (``summary``: what it does in training mode). What differs between modules
    is read from the class: the op ``_kind``, and ``_torch``, the name of torch's functional
    form that takes the tensors cydrop does not (for the channel kinds also the name whose
    shape rules and warnings :func:`channel_call` applies first)."""
    def forward(self, input):
        self._check_input(input)
        kind = self._kind
        if kind == "channel":
            return _f.channel_call(self._torch, input, self.p, self.training, self.inplace,
                                   self.n_threads, None, 0, module=self)
        inplace = self.inplace if kind == "element" else False   # the alpha kinds ignore it
        if not _f.uses_cydrop(input):
            return getattr(F, self._torch)(input, self.p, self.training, inplace)
        if kind == "feature_alpha":
            return _f._feature_call(kind, input, self.p, self.training, False, self.n_threads,
                                    None, 0, self)
        if not self.training or self.p == 0.0:
            return input
        return _f.apply(input, self.p, inplace, kind, self.n_threads, module=self)

    forward.__qualname__ = f"{owner}.forward"
    forward.__doc__ = _FORWARD_DOC.format(summary)
    return forward


class _CydropDropout:
    """What every cydrop module adds to its torch peer: the seed stream and the threads.

    :class:`StochasticDepth`, which has no torch peer, takes the stream from here too and
    replaces the rest (``__init__``, ``forward``, ``extra_repr``, ``__setstate__``)."""

    _kind = "element"
    _torch = "dropout"

    def __init__(self, p=0.5, inplace=False, *, seed=None, n_threads=None):
        p = _f.check_p(p)
        inplace = _validation.check_bool(inplace, "inplace")
        super().__init__(p, inplace)
        self._init_stream(seed, n_threads)

    def _init_stream(self, seed, n_threads):
        # not in state_dict: a patched model loads and saves the same checkpoints as before
        self.register_buffer("cydrop_state", _ops.pack_state(resolve_seed(seed), 0),
                             persistent=False)
        self.n_threads = _validation.check_n_threads(n_threads)   # int (any size) or None

    @property
    def stream(self):
        """The module's :class:`ModuleStream` (its ``[seed, offset]`` buffer)."""
        return ModuleStream(self)

    def _cydrop_take(self, numel):
        # under torch.compile: the call's state as a tensor, and the buffer REPLACED by the
        # advanced one (not written in place: a recomputation in the backward, as in a
        # checkpointed region, reads the graph's input buffer and must find the old state)
        state = self.cydrop_state
        new = state.clone()
        new[1:] += _ops.step_of(numel)
        self.cydrop_state = new
        return state

    def _check_input(self, input):
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")

    def _check_unpickled_state(self):
        self.n_threads = _validation.check_n_threads(getattr(self, "n_threads", None))
        buf = self._buffers.get("cydrop_state")
        if not (isinstance(buf, torch.Tensor) and buf.dtype == torch.int64
                and tuple(buf.shape) == (2,)):
            raise ValueError("a pickled cydrop module must hold its [seed, offset] int64 buffer "
                             "'cydrop_state'")

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}, seed={self.stream.seed}"

    def __setstate__(self, state):
        state = dict(state)
        legacy = state.pop("stream", None)   # cydrop 0.1 pickled the stream's state dict
        super().__setstate__(state)
        if "cydrop_state" not in self._buffers and isinstance(legacy, dict):
            self.register_buffer("cydrop_state", _ops.pack_state(0, 0), persistent=False)
            ModuleStream(self).set_state(legacy)
        # a pickle is data from outside: the same checks as __init__
        self.p = _f.check_p(self.p)
        self.inplace = _validation.check_bool(self.inplace, "inplace")
        self._check_unpickled_state()


_STREAM_DOC = """
    seed : int or None, default=None
        Seed of the module's mask stream. Each training call takes the next mask indices
        (whole 4096-element blocks), so a module built with the same seed replays the same
        masks, eager or compiled. ``None`` draws the seed from the operating system's
        entropy; torch's RNG is never read or advanced on the cydrop path.
    n_threads : int or None, default=None
        Threads for the kernel (any nonzero int, capped at the usable cores); never changes
        the result.

    Notes
    -----
    The module's ``stream`` (a :class:`ModuleStream`) saves and restores the position with
    ``stream.get_state()`` / ``stream.set_state(state)``; it lives in the non-persistent
    buffer ``cydrop_state`` (copied by ``copy.deepcopy`` and pickle, not in ``state_dict``).
"""


class Dropout(_CydropDropout, torch.nn.Dropout):
    __doc__ = """Dropout(p=0.5, inplace=False, *, seed=None, n_threads=None)

    ``torch.nn.Dropout`` running cydrop's kernels (see :func:`dropout`).

    During training, zeroes each element with probability ``p`` and scales the others by
    ``1 / (1 - p)`` (up to 2**-16); in eval mode it is the identity. Tensors cydrop does not
    take (other devices, sparse, quantized, integer) go to ``torch.nn.functional.dropout``.

    Parameters
    ----------
    p : float, default=0.5
        Probability of ZEROING an element, ``0 <= p <= 1``.
    inplace : bool, default=False
        Do the operation in place.""" + _STREAM_DOC + """
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

    forward = _forward("Dropout", "Dropout of ``input``")


def _channel_class(name, peer, fname, shapes):
    doc = f"""{name}(p=0.5, inplace=False, *, seed=None, n_threads=None)

    ``torch.nn.{name}`` running cydrop's kernels: zeroes whole channels of {shapes} inputs
    (one decision per (sample, channel), see :func:`{fname}`), with torch's shape rules and
    warnings.

    Parameters
    ----------
    p : float, default=0.5
        Probability of zeroing a channel, ``0 <= p <= 1``.
    inplace : bool, default=False
        Do the operation in place.""" + _STREAM_DOC
    return type(name, (_CydropDropout, peer), {"__doc__": doc, "__module__": __name__,
                                                "_kind": "channel", "_torch": fname,
                                                "forward": _forward(name, "Channel dropout")})


Dropout1d = _channel_class("Dropout1d", torch.nn.Dropout1d, "dropout1d", "(N, C, L) or (C, L)")
Dropout2d = _channel_class("Dropout2d", torch.nn.Dropout2d, "dropout2d", "(N, C, H, W)")
Dropout3d = _channel_class("Dropout3d", torch.nn.Dropout3d, "dropout3d",
                           "(N, C, D, H, W) or (C, D, H, W)")


class AlphaDropout(_CydropDropout, torch.nn.AlphaDropout):
    __doc__ = """AlphaDropout(p=0.5, inplace=False, *, seed=None, n_threads=None)

    ``torch.nn.AlphaDropout`` running cydrop's kernels (see :func:`alpha_dropout`). As in
    torch, ``inplace`` is kept but not used: the output is a new tensor.

    Parameters
    ----------
    p : float, default=0.5
        Drop probability, ``0 <= p <= 1``.
    inplace : bool, default=False
        Ignored by the forward, as in torch.""" + _STREAM_DOC

    _kind = "alpha"
    _torch = "alpha_dropout"

    forward = _forward("AlphaDropout", "Alpha dropout")


class FeatureAlphaDropout(_CydropDropout, torch.nn.FeatureAlphaDropout):
    __doc__ = """FeatureAlphaDropout(p=0.5, inplace=False, *, seed=None, n_threads=None)

    ``torch.nn.FeatureAlphaDropout`` running cydrop's kernels (see
    :func:`feature_alpha_dropout`): alpha dropout of whole channels of an ``(N, C, *)`` input.
    As in torch, ``inplace`` is kept but not used.

    Parameters
    ----------
    p : float, default=0.5
        Probability of dropping a channel, ``0 <= p <= 1``.
    inplace : bool, default=False
        Ignored by the forward, as in torch.""" + _STREAM_DOC

    _kind = "feature_alpha"
    _torch = "feature_alpha_dropout"

    forward = _forward("FeatureAlphaDropout", "Channel-wise alpha dropout")


class StochasticDepth(_CydropDropout, torch.nn.Module):
    __doc__ = """StochasticDepth(p, mode, *, seed=None, n_threads=None)

    Stochastic depth as a module, the interface of the torch ecosystem's
    ``StochasticDepth(p, mode)`` running cydrop's kernels (see :func:`stochastic_depth`).

    During training, zeroes each sample of dim 0 (mode ``'row'``) or the whole input (mode
    ``'batch'``) with probability ``p`` and scales what is kept by ``1 / keep``, where
    ``keep`` is within 2**-16 of ``1 - p`` (cydrop's realised keep probability, see
    :func:`stochastic_depth`); in eval mode it is the identity. Tensors cydrop does not take
    go to the plain torch computation. It is a plain ``torch.nn.Module`` (torch has no peer
    class to subclass).

    Parameters
    ----------
    p : float
        Probability of DROPPING a sample (or the batch), ``0 <= p <= 1``.
    mode : {'batch', 'row'}
        One decision for the whole input, or one per sample of dim 0.""" + _STREAM_DOC + """
    ``p`` and ``mode`` are checked when the module is built (a ValueError, with the
    messages of :func:`stochastic_depth`) and again at each call. A call in mode ``'row'``
    takes ``N`` indices of the stream (rounded up to whole blocks), in mode ``'batch'`` one.

    Examples
    --------
    >>> import torch, cydrop.torch
    >>> m = cydrop.torch.StochasticDepth(0.2, "row", seed=7)
    >>> m
    StochasticDepth(p=0.2, mode=row, seed=7)
    >>> y = m(torch.ones(6, 4))
    >>> bool((y == y[:, :1]).all())
    True
    >>> m.eval()(torch.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p, mode, *, seed=None, n_threads=None):
        torch.nn.Module.__init__(self)          # not the dropout __init__ of _CydropDropout
        self.p = _depth.check_depth_p(p)
        self.mode = _depth.check_mode(mode)
        self._init_stream(seed, n_threads)

    def forward(self, input):
        """Stochastic depth of ``input`` in training mode, the identity in evaluation mode.

        Parameters
        ----------
        input : torch.Tensor
            Tensors :func:`uses_cydrop` accepts run cydrop's kernels; any other goes to the
            plain torch computation.

        Returns
        -------
        torch.Tensor
        """
        self._check_input(input)
        p, mode = _depth.check_depth_p(self.p), _depth.check_mode(self.mode)
        return _depth.depth_call(input, p, mode, self.training, self.n_threads, None, 0,
                                 module=self)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}, seed={self.stream.seed}"

    def __setstate__(self, state):
        torch.nn.Module.__setstate__(self, state)
        # a pickle is data from outside: the same checks as __init__
        self.p = _depth.check_depth_p(self.p)
        self.mode = _depth.check_mode(self.mode)
        self._check_unpickled_state()
