"""Deprecated: the dropout variants' layers are in :mod:`cydrop.nn` (:mod:`cydrop.nn.dropout`,
``DropConnectDense`` in :mod:`cydrop.nn.linear`)."""

import warnings

from cydrop.nn import (
    AlphaDropout,
    BroadcastDropout,
    DropConnectDense,
    ExactKDropout,
    GaussianDropout,
    LockedDropout,
    SpatialDropout,
)

__all__ = ["AlphaDropout", "BroadcastDropout", "DropConnectDense", "ExactKDropout",
           "GaussianDropout", "LockedDropout", "SpatialDropout"]

warnings.warn("cydrop.variants_layers is deprecated: import the layers from cydrop.nn",
              DeprecationWarning, stacklevel=2)
