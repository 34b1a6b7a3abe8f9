"""Models: CS231n's ``FullyConnectedNet`` and a :class:`Sequential` MLP builder.

The network's forward and backward passes are written once, in :mod:`cydrop.nn.fc_net`;
:class:`FullyConnectedNet` here subclasses it and only decides where weights and masks come from
(as the course's class in ``cydrop.compat.cs231n.classifiers.fc_net`` does in its own way).

``FullyConnectedNet`` keeps CS231n's contract, including its
``dropout_keep_ratio`` (a KEEP probability). That keep ratio is converted
once, in ``__init__``, to cydrop's ``rate = 1 - dropout_keep_ratio`` (a DROP
probability); nothing else in the model speaks in keep terms.
"""

import numpy as np

from cydrop import _core, _validation
from cydrop._seeds import SeedStream

from .activation import ReLU
from .container import Sequential
from .dropout import Dropout
from .fc_net import FullyConnectedNetBase, check_keep_ratio
from .linear import Dense
from .module import child_seeds

__all__ = ["FullyConnectedNet", "mlp", "accuracy"]


def accuracy(scores_or_labels, y):
    """Fraction of correct predictions.

    Parameters
    ----------
    scores_or_labels : ndarray of shape (N, C) or (N,)
        Class scores (argmax taken) or predicted labels.
    y : ndarray of shape (N,)
        True labels.

    Returns
    -------
    acc : float
    """
    pred = scores_or_labels
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    return float(np.mean(pred == y)) if len(y) else 0.0


class FullyConnectedNet(FullyConnectedNetBase):
    """Fully connected net with ReLU, optional normalisation and dropout, CS231n's API.

    Architecture: ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine -
    softmax``. The network is the one of :mod:`cydrop.nn.fc_net`, as in the course's class
    (``cydrop.compat.cs231n.classifiers.fc_net``); only the randomness differs: weights and masks
    come from ``seed``, never from NumPy's global state, and every :meth:`loss` call draws a
    fresh mask.

    Parameters
    ----------
    hidden_dims : list of int
        Size of each hidden layer.
    input_dim : int, default=3072
        Input features.
    num_classes : int, default=10
    dropout_keep_ratio : float, default=1.0
        CS231n's KEEP probability, ``0 < keep <= 1``; 1 means no dropout.
        Stored as ``self.rate = 1 - dropout_keep_ratio`` (DROP probability).
    normalization : {None, 'batchnorm', 'layernorm'}, default=None
        As in CS231n (same position in the signature).
    reg : float, default=0.0
        L2 strength; the loss adds ``0.5 * reg * sum(W**2)`` per layer.
    weight_scale : float, default=1e-2
        Std of the normal weight initialisation.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        Use float64 for numerical gradient checks.
    seed : int or None, default=None
        One model seed: weights come from one child of
        ``SeedSequence(seed)``, dropout masks from another via
        :class:`cydrop.SeedStream`, so the same seed reproduces a run. (In CS231n's class,
        ``cydrop.compat.cs231n``, a seed instead fixes one mask for every call.)
    n_threads : int or None, default=None
        Threads for the dropout kernels: any nonzero int, capped at the usable cores.

    Attributes
    ----------
    params : dict
        ``W1, b1, ..., WL, bL`` (and ``gamma``/``beta`` with normalisation).
    use_dropout : bool
    rate : float
        Drop probability used by every dropout layer.
    bn_params : list of dict

    Raises
    ------
    ValueError
        For an invalid keep ratio (however large), sizes, normalisation, ``reg``, dtype or
        ``n_threads``.
    TypeError
        For a keep ratio that is not a real number (an exception that is also a ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> net = FullyConnectedNet([8], input_dim=4, num_classes=3, dtype=np.float64, seed=0)
    >>> net.loss(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None,
                 n_threads=None):
        keep = check_keep_ratio(dropout_keep_ratio)
        # the one keep -> rate conversion
        self.rate = _validation.check_probability(1.0 - keep, "rate")
        self.n_threads = _validation.check_n_threads(n_threads)
        weight_seed, dropout_seed = child_seeds(seed, 2)
        rng = np.random.default_rng(weight_seed)
        self._setup(hidden_dims, input_dim, num_classes, keep, normalization, reg, weight_scale,
                    dtype, rng.standard_normal)
        self.use_dropout = self.rate > 0.0
        self.reseed(dropout_seed)

    def reseed(self, seed):
        """Restart the dropout mask stream from ``seed``.

        Calling ``reseed(s)`` before each :meth:`loss` call freezes the
        masks, which numerical gradient checks need.

        Parameters
        ----------
        seed : int

        Returns
        -------
        self : FullyConnectedNet
        """
        self._dropout_seed = seed
        self._stream = SeedStream(seed)
        return self

    def _dropout_forward(self, h):
        seed, offset = self._stream.next(h.size)
        return _core.dropout(h, self.rate, training=True, seed=seed, offset=offset,
                               n_threads=self.n_threads)

    def _dropout_backward(self, dout, cache):
        return _core.dropout_backward(dout, cache, n_threads=self.n_threads)

    def _set_mode(self, mode):
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode




def mlp(input_dim, hidden_dims, num_classes, rates=0.0, *, init="he", weight_l1=0.0, weight_l2=0.0,
        bias_l1=0.0, bias_l2=0.0, dtype=np.float64, seed=None, n_threads=None):
    """Build ``Dense - ReLU - [Dropout]`` blocks and a final ``Dense``.

    Parameters
    ----------
    input_dim : int
    hidden_dims : sequence of int
    num_classes : int
    rates : float or sequence of float, default=0.0
        Drop probability after each hidden ReLU (one value for all, or one
        per hidden layer). A Dropout layer is added where the rate is > 0.
    init, weight_l1, weight_l2, bias_l1, bias_l2, dtype
        Passed to every :class:`~cydrop.nn.Dense`.
    seed : int or None, default=None
        Model seed; weight and mask seeds are derived from it with
        :class:`numpy.random.SeedSequence`.
    n_threads : int or None, default=None
        Threads for the dropout kernels: any nonzero int, capped at the usable cores.

    Returns
    -------
    model : Sequential

    Raises
    ------
    ValueError
        If the number of rates does not match the hidden layers, or a rate
        is outside ``[0, 1]`` (however large; the message names it).
    TypeError
        If a rate is not a real number (an exception that is also a ValueError).

    Examples
    --------
    >>> net = mlp(2, [16, 16], 3, rates=[0.2, 0.5], seed=0)
    >>> [type(layer).__name__ for layer in net.layers]
    ['Dense', 'ReLU', 'Dropout', 'Dense', 'ReLU', 'Dropout', 'Dense']
    """
    hidden_dims = list(hidden_dims)
    if (isinstance(rates, (str, bytes)) or not hasattr(rates, "__iter__")
            or (isinstance(rates, np.ndarray) and rates.ndim == 0)):
        rate = _validation.check_probability(rates, "rate")   # one rate for every hidden layer
        rates = [rate] * len(hidden_dims)
    else:
        rates = [_validation.check_probability(r, f"rates[{i}]") for i, r in enumerate(rates)]
    if len(rates) != len(hidden_dims):
        raise ValueError(
            f"rates must have one value per hidden layer ({len(hidden_dims)}), "
            f"got {len(rates)}: {rates}"
        )
    dims = [input_dim, *hidden_dims, num_classes]
    seeds = iter(child_seeds(seed, 2 * len(dims)))
    layers = []
    for i in range(len(dims) - 1):
        layers.append(Dense(dims[i], dims[i + 1], init=init, weight_l1=weight_l1,
                            weight_l2=weight_l2, bias_l1=bias_l1, bias_l2=bias_l2, dtype=dtype,
                            seed=next(seeds)))
        if i < len(hidden_dims):
            layers.append(ReLU())
            if rates[i] > 0:
                layers.append(Dropout(rates[i], seed=next(seeds)))
    return Sequential(*layers, n_threads=n_threads)
