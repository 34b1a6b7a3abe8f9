"""Deprecated: moved to :mod:`cydrop.apps.cli`."""

import warnings

from cydrop.apps.cli import *  # noqa: F401,F403
from cydrop.apps.cli import __all__  # noqa: F401

warnings.warn("cydrop.cli is deprecated: use cydrop.apps.cli", DeprecationWarning, stacklevel=2)
