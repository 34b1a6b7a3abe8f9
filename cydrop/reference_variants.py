"""Alias of :mod:`cydrop.testing.reference_variants`, the NumPy twins of cydrop's variants.

``import cydrop.reference_variants`` keeps working: this module IS
:mod:`cydrop.testing.reference_variants` (the same module object).
"""

import sys

from cydrop.testing import reference_variants as _target

sys.modules[__name__] = _target
