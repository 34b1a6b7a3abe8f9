"""``patch(model, seed=...)``: every torch dropout layer of a model swapped for cydrop's."""

import torch

from cydrop import _validation
from cydrop._seeds import derive_seed
from cydrop.interop.torch import _modules as _m

__all__ = ["patch", "unpatch"]

#: torch's dropout classes (exact types) and their cydrop replacements
REPLACEMENTS = {
    torch.nn.Dropout: _m.Dropout,
    torch.nn.Dropout1d: _m.Dropout1d,
    torch.nn.Dropout2d: _m.Dropout2d,
    torch.nn.Dropout3d: _m.Dropout3d,
    torch.nn.AlphaDropout: _m.AlphaDropout,
    torch.nn.FeatureAlphaDropout: _m.FeatureAlphaDropout,
}
_ATTR = "_cydrop_patch"        # on the model: {qualified name: (original, replacement)}


def _check_model(model):
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def patch(model, *, seed, n_threads=None):
    """Replace every torch dropout layer of ``model``, in place, by its cydrop module.

    Each ``torch.nn.Dropout``, ``Dropout1d``, ``Dropout2d``, ``Dropout3d``, ``AlphaDropout``
    and ``FeatureAlphaDropout`` (exactly those classes: a subclass may override ``forward``
    and is left alone) becomes the cydrop module of the same name with the same ``p``,
    ``inplace`` and training mode. Layer ``name`` gets the seed
    ``cydrop.derive_seed(seed, name)``, so adding or removing a layer elsewhere does not
    change its masks, and each layer's successive calls draw fresh masks from its own stream.

    Parameters
    ----------
    model : torch.nn.Module
        Changed in place. It cannot itself be a dropout layer (it has no parent to hold the
        replacement); use the cydrop module directly.
    seed : int
        The base seed, ``0 <= seed < 2**64``.
    n_threads : int or None, default=None
        Threads of every new module (see :class:`Dropout`).

    Returns
    -------
    dict
        ``{qualified name: original module}`` of what was replaced (empty if nothing was).

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module`` or ``seed`` is not an int.
    ValueError
        If ``seed`` is outside [0, 2**64), or ``model`` is itself a dropout layer.
    RuntimeError
        If ``model`` is already patched (call :func:`unpatch` first). Nothing is changed when
        an error is raised.

    See Also
    --------
    unpatch : puts the originals back.

    Examples
    --------
    >>> import torch, cydrop.torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.1))
    >>> replaced = cydrop.torch.patch(model, seed=7)
    >>> sorted(replaced), type(model[1]).__module__.startswith("cydrop")
    (['1'], True)
    >>> cydrop.torch.unpatch(model)["1"] is not replaced["1"]
    True
    >>> model[1] is replaced["1"]
    True
    """
    _check_model(model)
    seed = _validation.check_uint64(seed, "seed")
    n_threads = _validation.check_n_threads(n_threads)
    if type(model) in REPLACEMENTS:
        raise ValueError(f"model is itself a {type(model).__name__} layer, which patch cannot "
                         f"replace in place: use cydrop.torch.{type(model).__name__} directly")
    if getattr(model, _ATTR, None):
        raise RuntimeError("model is already patched by cydrop.torch.patch: call "
                           "cydrop.torch.unpatch(model) first to patch it again")
    targets = [(name, mod) for name, mod in model.named_modules(remove_duplicate=False)
               if type(mod) in REPLACEMENTS and name]
    made, record = {}, {}
    for name, mod in targets:
        if id(mod) not in made:    # one module reached by two names stays one module
            new = REPLACEMENTS[type(mod)](mod.p, mod.inplace, seed=derive_seed(seed, name),
                                          n_threads=n_threads)
            new.train(mod.training)
            made[id(mod)] = new
        record[name] = (mod, made[id(mod)])
    for name, (_, new) in record.items():
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, attr, new)
    if record:
        model.__dict__[_ATTR] = record
    return {name: orig for name, (orig, _) in record.items()}


def unpatch(model):
    """Put back the modules :func:`patch` replaced.

    Each original gets the current ``p``, ``inplace`` and training mode of its replacement
    (``model.eval()`` after patching reached only the replacements).

    Parameters
    ----------
    model : torch.nn.Module
        A model :func:`patch` changed (anything else is left as it is).

    Returns
    -------
    dict
        ``{qualified name: cydrop module}`` of what was removed (empty if the model was not
        patched).

    Raises
    ------
    TypeError
        If ``model`` is not a ``torch.nn.Module``.
    """
    _check_model(model)
    record = model.__dict__.pop(_ATTR, None) or {}
    removed = {}
    for name, (orig, new) in record.items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if getattr(parent, attr, None) is not new:
            continue               # replaced again since: not ours to undo
        orig.p, orig.inplace = new.p, new.inplace
        orig.train(new.training)
        setattr(parent, attr, orig)
        removed[name] = new
    return removed
