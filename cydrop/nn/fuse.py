"""Fusion of ``Dense -> ReLU [-> Dropout]`` runs into one kernel pass.

:class:`FusedDenseReLUDropout` is a module built from such a run: its forward is one matrix
product (:meth:`cydrop.nn.Dense.forward_unbiased`) and one fused kernel
(:func:`cydrop.fused.bias_relu_dropout`: bias add, ReLU and dropout mask in a single pass); its
backward one mask-free kernel (:func:`cydrop.fused.bias_relu_dropout_backward`) and the Dense's own
:meth:`~cydrop.nn.Dense.backward`. The run's layers keep their parameters; the fused module
borrows the Dropout's mask stream through :meth:`cydrop.nn.Dropout.next_mask_seed`, so masks and
stream offsets are those of the unfused run, and the output is the same bit for bit.

Which layers fuse is decided by the fusion protocol of :mod:`cydrop.nn.module`: a layer's class
attribute ``fusion`` is ``'dense'``, ``'relu'`` or ``'dropout'``, and a subclass that changes what
its parent computes (overrides ``forward``, ``backward`` or their hooks) loses the role and runs
unfused unless it declares one itself.
``fusion_plan`` groups a list of layers into the steps :class:`cydrop.nn.Sequential` runs.
"""

from cydrop import _validation, fused

from .module import Module

__all__ = ["FusedDenseReLUDropout", "fusion_plan"]


class FusedDenseReLUDropout(Module):
    """``Dense -> ReLU [-> Dropout]`` as one fused pass, over the given layers.

    Parameters
    ----------
    dense : Module
        A layer with ``fusion == 'dense'`` (:class:`cydrop.nn.Dense`): its ``params`` ``W``
        and ``b``, :meth:`~cydrop.nn.Dense.forward_unbiased` and ``backward(dout, need_dx=)``.
    relu : Module
        A layer with ``fusion == 'relu'`` (:class:`cydrop.nn.ReLU`).
    dropout : Module or None, default=None
        A layer with ``fusion == 'dropout'`` (:class:`cydrop.nn.Dropout`): its ``rate``,
        ``training`` and :meth:`~cydrop.nn.Dropout.next_mask_seed`.
    n_threads : int or None, default=None
        Threads for the fused kernels: any nonzero int, capped at the usable cores.

    Raises
    ------
    TypeError
        If a layer does not declare the role its position needs.

    Notes
    -----
    The layers' own ``forward`` / ``backward`` caches are not used, except the Dense's (its
    backward computes ``dW``, ``db`` and ``dx``). The module is rebuilt by
    :class:`cydrop.nn.Sequential` for every forward pass, so a changed ``rate`` or mode of the
    Dropout takes effect at once.

    Examples
    --------
    >>> import numpy as np
    >>> from cydrop.nn import Dense, Dropout, ReLU
    >>> layers = Dense(3, 4, seed=0), ReLU(), Dropout(0.5, seed=1)
    >>> fused_run = FusedDenseReLUDropout(*layers)
    >>> fused_run
    FusedDenseReLUDropout(Dense(3, 4, init='he'), ReLU(), Dropout(rate=0.5))
    >>> fused_run.forward(np.ones((2, 3))).shape
    (2, 4)
    """

    def __init__(self, dense, relu, dropout=None, *, n_threads=None):
        super().__init__()
        for name, layer, role in (("dense", dense, "dense"), ("relu", relu, "relu"),
                                  ("dropout", dropout, "dropout")):
            if layer is not None and getattr(layer, "fusion", None) != role:
                raise TypeError(f"{name} must be a cydrop.nn layer with fusion == {role!r}, got "
                                f"{type(layer).__name__} (fusion == "
                                f"{getattr(layer, 'fusion', None)!r})")
        self.dense, self.relu, self.dropout = dense, relu, dropout
        self.n_threads = _validation.check_n_threads(n_threads)
        self._cache = None

    def children(self):
        """Return the fused layers.

        Returns
        -------
        children : tuple of Module
        """
        return tuple(layer for layer in (self.dense, self.relu, self.dropout) if layer is not None)

    def forward(self, x):
        """Compute ``dropout(relu(x @ W + b))`` in one matrix product and one fused kernel.

        Parameters
        ----------
        x : ndarray of shape (N, D)

        Returns
        -------
        out : ndarray of shape (N, M)
        """
        z = self.dense.forward_unbiased(x)
        b = self.dense.params["b"]
        drop = self.dropout
        rate, seed, offset = 0.0, None, 0
        if drop is not None and drop.training and drop.rate > 0.0:
            rate = drop.rate
            seed, offset = drop.next_mask_seed(z.size)
        if b.dtype != z.dtype:                          # e.g. float64 input, float32 layer
            b = b.astype(z.dtype)
        out, self._cache = fused.bias_relu_dropout(
            z, b, rate, seed=seed, offset=offset, out=z, n_threads=self.n_threads)
        return out

    def backward(self, dout, *, need_dx=True):
        """Back-propagate through the dropout and the ReLU (one kernel), then the Dense.

        Parameters
        ----------
        dout : ndarray of shape (N, M)
        need_dx : bool, default=True
            ``False`` skips the input gradient and returns None (for a first layer).

        Returns
        -------
        dx : ndarray of shape (N, D), or None

        Raises
        ------
        RuntimeError
            If called before :meth:`forward`.
        """
        cache = self._last_cache("FusedDenseReLUDropout")
        dout, _ = fused.bias_relu_dropout_backward(dout, cache)
        return self.dense.backward(dout, need_dx=need_dx)

    def extra_repr(self):
        return ", ".join(repr(layer) for layer in self.children())


def fusion_plan(layers, *, n_threads=None):
    """Group ``layers`` into the steps a forward pass runs.

    Every ``Dense, ReLU[, Dropout]`` run (by the layers' ``fusion`` roles) becomes one
    :class:`FusedDenseReLUDropout`; every other layer is a step of its own.

    Parameters
    ----------
    layers : sequence of Module
    n_threads : int or None, default=None
        Passed to the fused steps.

    Returns
    -------
    steps : list of Module
    """
    steps, i = [], 0
    while i < len(layers):
        run = [layers[i]]
        if (layers[i].fusion == "dense" and i + 1 < len(layers)
                and layers[i + 1].fusion == "relu"):
            run.append(layers[i + 1])
            if i + 2 < len(layers) and layers[i + 2].fusion == "dropout":
                run.append(layers[i + 2])
        steps.append(FusedDenseReLUDropout(*run, n_threads=n_threads) if len(run) > 1 else run[0])
        i += len(run)
    return steps
