"""Deprecated: moved to :mod:`cydrop.apps.cli`."""

import warnings

from cydrop.apps.cli import *  # noqa: F401,F403
from cydrop.apps.cli import __all__  # noqa: F401

# stacklevel 1: a console script installed before the move imports this module from __main__,
# where a DeprecationWarning attributed to the caller would be printed before every command.
warnings.warn("cydrop.cli is deprecated: use cydrop.apps.cli", DeprecationWarning, stacklevel=1)
