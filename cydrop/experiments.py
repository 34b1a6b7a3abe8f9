"""Deprecated: moved to :mod:`cydrop.apps.experiments` (the table and plotting helpers to
:mod:`cydrop.apps.report`)."""

import warnings

from cydrop.apps import experiments as _experiments
from cydrop.apps.experiments import *  # noqa: F401,F403
from cydrop.apps.report import MissingExtraError, format_table, require_matplotlib  # noqa: F401

__all__ = [*_experiments.__all__, "format_table", "require_matplotlib", "MissingExtraError"]

warnings.warn("cydrop.experiments is deprecated: use cydrop.apps.experiments",
              DeprecationWarning, stacklevel=2)
