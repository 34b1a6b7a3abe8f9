"""Alias of :mod:`cydrop.interop.dask`: ``import cydrop.dask`` keeps working.

This module IS :mod:`cydrop.interop.dask` (the same module object).
"""

import sys

from cydrop.interop import dask as _target

sys.modules[__name__] = _target
