"""Deprecated: moved to :mod:`cydrop.apps.data`."""

import warnings

from cydrop.apps.data import *  # noqa: F401,F403
from cydrop.apps.data import __all__  # noqa: F401

warnings.warn("cydrop.data is deprecated: use cydrop.apps.data", DeprecationWarning, stacklevel=2)
