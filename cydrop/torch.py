"""Alias of :mod:`cydrop.interop.torch`: ``import cydrop.torch`` keeps working.

This module IS :mod:`cydrop.interop.torch` (the same module object).
"""

import sys

from cydrop.interop import torch as _target

sys.modules[__name__] = _target
