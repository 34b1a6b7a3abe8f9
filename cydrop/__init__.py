"""cydrop: fast, reproducible inverted dropout for NumPy on the CPU.

Cython + OpenMP kernels under a NumPy-style API. Masks are a pure function of
(seed, offset + element index): the same bits for any thread count, chunking or run.

In cydrop's own API the argument is ``rate``, the probability of DROPPING an element. The one
exception is :func:`dropout_forward`, a drop-in for CS231n, whose ``dropout_param['p']`` is the
probability of KEEPING one.
"""

from cydrop._core import DropoutCache, dropout, dropout_backward, dropout_forward, dropout_mask
from cydrop._kernels import current_variant as isa_variant
from cydrop._openmp import effective_n_threads, openmp_enabled
from cydrop._seeds import SeedStream
from cydrop import fused, reference

__version__ = "0.1.0"

__all__ = [
    "DropoutCache",
    "SeedStream",
    "dropout",
    "dropout_backward",
    "dropout_forward",
    "dropout_mask",
    "effective_n_threads",
    "isa_variant",
    "openmp_enabled",
]
