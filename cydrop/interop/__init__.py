"""Adapters that run cydrop's ops under other array libraries.

* :mod:`cydrop.interop.torch`: ``torch.nn.Dropout`` on cydrop's kernels (needs ``torch``).
* :mod:`cydrop.interop.dask`: dropout of a ``dask.array``, bit-identical to the NumPy call
  (needs ``dask[array]``).

Each is imported on its own (``import cydrop.torch`` and ``import cydrop.dask`` are aliases);
they use the op layer only.
"""

__all__ = ["dask", "torch"]
