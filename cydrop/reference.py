"""Alias of :mod:`cydrop.testing.reference`, the pure-NumPy oracle of cydrop's masks.

``import cydrop.reference`` keeps working: this module IS :mod:`cydrop.testing.reference`
(the same module object), so its functions take ``rate``, the drop probability, as
:func:`cydrop.dropout` does.
"""

import sys

from cydrop.testing import reference as _target

sys.modules[__name__] = _target
