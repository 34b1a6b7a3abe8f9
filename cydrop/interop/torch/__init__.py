"""PyTorch adapter: cydrop's dropout kernels behind ``torch.nn``'s dropout interfaces.

Optional: needs ``torch`` (``pip install cydrop[torch]``). Import it as ``cydrop.torch`` (an
alias of ``cydrop.interop.torch``); the rest of cydrop never imports torch.

* Modules, each a subclass of its torch peer (``isinstance`` checks keep working), with
  keyword-only ``seed`` and ``n_threads``: :class:`Dropout`, :class:`Dropout1d`,
  :class:`Dropout2d`, :class:`Dropout3d`, :class:`AlphaDropout`, :class:`FeatureAlphaDropout`;
  and :class:`StochasticDepth` (a ``torch.nn.Module`` with the ``(p, mode)`` interface of
  the torch ecosystem's stochastic depth, running :func:`cydrop.drop_path`).
* Functional forms, like ``torch.nn.functional``'s, with keyword-only ``seed``, ``offset`` and
  ``n_threads``: :func:`dropout`, :func:`dropout1d`, :func:`dropout2d`, :func:`dropout3d`,
  :func:`alpha_dropout`, :func:`feature_alpha_dropout`, and :func:`stochastic_depth`
  (``input, p, mode, training=True``).
* :func:`patch` / :func:`unpatch`: swap every torch dropout layer of a model for cydrop's, with
  per-layer seeds derived by name (:func:`cydrop.derive_seed`), and back.
* :class:`DropoutFunction`: the ``torch.autograd.Function`` of eager calls; under
  ``torch.compile`` the same computation is the custom operator ``torch.ops.cydrop.dropout``
  (with ``register_fake`` and ``register_autograd``), so a compiled model has no graph break
  and the eager masks.

As in PyTorch, ``p`` is the probability of DROPPING (cydrop calls it ``rate`` everywhere else).

Which tensors run on cydrop
---------------------------
Strided, non-quantized CPU tensors of dtype float32, float64, float16 and bfloat16
(:func:`uses_cydrop`). float16 and bfloat16 run natively when cydrop's core accepts them, and
otherwise are computed in float32 through cydrop with the same masks and rounded back once;
torch's RNG is never used for them. Every other tensor (CUDA, MPS, meta, sparse, quantized,
complex, integer) is passed to torch's own function unchanged, with torch's RNG and errors.

Layout and masks
----------------
Outputs and gradients are laid out like the input (its stride order, made dense: a
channels_last input gives a channels_last output), as torch's are. Masks follow LOGICAL
(row-major) indices, never memory positions: the values do not depend on the layout, and equal
those of :func:`cydrop.dropout` (or :mod:`cydrop.variants`) on ``t.numpy()`` with the same
``seed`` and ``offset``.

Randomness
----------
A module's masks come from its stream (``module.stream``), whose ``[seed, offset]`` is an
int64 buffer: each training call takes the next indices, in eager mode and under
``torch.compile`` alike, and a module built with the same seed replays the same masks for any
thread count. Inside a non-reentrant ``torch.utils.checkpoint`` region the recomputation
reuses the (seed, offset) of the first run, so checkpointed gradients equal plain ones.

Examples
--------
>>> import torch, cydrop.torch
>>> x = torch.ones(2, 3, 4, 4).to(memory_format=torch.channels_last)
>>> y = cydrop.torch.Dropout2d(0.5, seed=1)(x)
>>> y.is_contiguous(memory_format=torch.channels_last)
True
>>> bool(((y == 0) | (y == 2)).all()) and bool((y == y[:, :, :1, :1]).all())
True
"""

import torch as _torch  # noqa: F401  (a clear ImportError when torch is missing)

from cydrop.interop.torch._depth import stochastic_depth
from cydrop.interop.torch._functional import (
                                              alpha_dropout,
                                              dropout,
                                              dropout1d,
                                              dropout2d,
                                              dropout3d,
                                              feature_alpha_dropout,
                                              uses_cydrop,
)
from cydrop.interop.torch._modules import (
                                              AlphaDropout,
                                              Dropout,
                                              Dropout1d,
                                              Dropout2d,
                                              Dropout3d,
                                              FeatureAlphaDropout,
                                              ModuleStream,
                                              StochasticDepth,
)
from cydrop.interop.torch._ops import DropoutFunction
from cydrop.interop.torch._patch import patch, unpatch

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "DropoutFunction",
           "FeatureAlphaDropout", "ModuleStream", "StochasticDepth", "alpha_dropout", "dropout",
           "dropout1d", "dropout2d", "dropout3d", "feature_alpha_dropout", "patch",
           "stochastic_depth", "unpatch", "uses_cydrop"]
