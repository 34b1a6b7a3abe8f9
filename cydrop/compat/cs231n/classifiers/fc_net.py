"""CS231n assignment 2's ``FullyConnectedNet``, on cydrop's dropout kernels.

``from cydrop.compat.cs231n.classifiers.fc_net import *`` gives what the assignment's star
import gives: the network and the layer functions (``dropout_forward`` included).

The network is written once, in :mod:`cydrop.nn.fc_net`; this class and
:class:`cydrop.nn.FullyConnectedNet` subclass it and differ only in where weights and masks come
from (here NumPy's global state and the course's ``dropout_param``; there seeded generators and
a fresh mask per call from a :class:`cydrop.SeedStream`).
"""

import numpy as np

from cydrop import _validation
from cydrop.nn.fc_net import FullyConnectedNetBase, check_keep_ratio

from .. import layer_utils as _layer_utils
from ..layer_utils import *  # noqa: F401,F403
from ..layers import *  # noqa: F401,F403  (the assignment's fc_net star-imports the layers)
from ..layers import dropout_backward, dropout_forward

__all__ = ["FullyConnectedNet"] + list(_layer_utils.__all__)


class FullyConnectedNet(FullyConnectedNetBase):
    """Fully connected net, CS231n assignment 2's signature and behaviour.

    Architecture: ``{affine - [batch/layer norm] - relu - [dropout]} x (L - 1) - affine -
    softmax``.

    Parameters
    ----------
    hidden_dims : list of int
        Size of each hidden layer.
    input_dim : int, default=3*32*32
    num_classes : int, default=10
    dropout_keep_ratio : float, default=1
        Probability of KEEPING a unit, ``0 < keep <= 1``; 1 means no dropout.
    normalization : {None, 'batchnorm', 'layernorm'}, default=None
    reg : float, default=0.0
        L2 strength: the loss adds ``0.5 * reg * sum(W**2)`` per layer.
    weight_scale : float, default=1e-2
        Std of the weights, drawn with ``np.random.randn`` (NumPy's global state, as in the
        assignment: ``np.random.seed`` makes them repeat). Biases and ``beta`` are 0,
        ``gamma`` is 1.
    dtype : numpy.float32 or numpy.float64, default=numpy.float32
        float64 for numerical gradient checks.
    seed : int or None, default=None
        Dropout seed: with a seed EVERY ``loss()`` call uses the same masks (what makes a
        whole-net numerical gradient check possible); without one each call draws a fresh
        seed from NumPy's global state.

    Attributes
    ----------
    params : dict
        ``W1, b1, ..., WL, bL`` and, with normalisation, ``gamma1, beta1, ...``.
    dropout_param : dict
        ``{'mode', 'p', 'seed'}`` passed to :func:`dropout_forward` (empty without dropout).
    bn_params : list of dict
        One per normalisation layer.
    use_dropout : bool
    normalization, reg, num_layers, dtype

    Raises
    ------
    ValueError, TypeError
        For invalid sizes, keep ratio, normalisation, ``reg``, dtype or seed (messages name the
        argument, the rule and the value).

    Examples
    --------
    >>> import numpy as np
    >>> np.random.seed(0)
    >>> net = FullyConnectedNet([8], input_dim=4, num_classes=3, dropout_keep_ratio=0.5,
    ...                         dtype=np.float64, seed=1)
    >>> X, y = np.ones((2, 4)), np.array([0, 2])
    >>> net.loss(X, y)[0] == net.loss(X, y)[0]
    True
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10, dropout_keep_ratio=1,
                 normalization=None, reg=0.0, weight_scale=1e-2, dtype=np.float32, seed=None):
        keep = check_keep_ratio(dropout_keep_ratio)
        if seed is not None:
            seed = _validation.check_uint64(seed, "seed")
        self._setup(hidden_dims, input_dim, num_classes, keep, normalization, reg, weight_scale,
                    dtype, lambda shape: np.random.randn(*shape))
        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": keep}
            if seed is not None:
                self.dropout_param["seed"] = seed

    # where masks come from: the course's dropout_param
    def _dropout_forward(self, h):
        return dropout_forward(h, self.dropout_param)

    def _dropout_backward(self, dout, cache):
        return dropout_backward(dout, cache)

    def _set_mode(self, mode):
        if self.use_dropout and self.dropout_param:
            self.dropout_param["mode"] = mode
        if self.normalization == "batchnorm":
            for bn_param in self.bn_params:
                bn_param["mode"] = mode
