"""cydrop: fast, reproducible inverted dropout for NumPy on the CPU.

Cython + OpenMP kernels under a NumPy-style API. Masks are a pure function of
(seed, offset + element index): the same bits for any thread count, chunking or run.

In cydrop's own API the argument is ``rate``, the probability of DROPPING an element. The one
exception is :func:`dropout_forward`, a drop-in for CS231n, whose ``dropout_param['p']`` is the
probability of KEEPING one.

``import cydrop`` loads the op layer only. The NumPy test oracles are :mod:`cydrop.testing`
(``import cydrop.reference`` still works), the trainer is :mod:`cydrop.nn`, and the PyTorch and
dask adapters are :mod:`cydrop.interop` (``import cydrop.torch`` / ``import cydrop.dask``).
"""

import importlib as _importlib
import os as _os


def _load_openmp_runtime():
    """Import the extensions, letting their OpenMP workers spin only briefly when idle.

    GNU libgomp reads its settings once, when it is loaded (here, with the first extension).
    Its default keeps idle workers spinning for up to 300,000 iterations after every parallel
    region, which takes the cores from NumPy's BLAS threads in a training step that alternates
    matrix products and dropout (measured: a 500-epoch nnfs run went from 7.3 s to 3.4 s on
    two cores). Unless the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT, cydrop loads libgomp
    with GOMP_SPINCOUNT=10000 and removes the variable again at once, so nothing else in the
    process sees it (a libgomp already loaded by another package keeps its own settings).
    """
    user_set = "OMP_WAIT_POLICY" in _os.environ or "GOMP_SPINCOUNT" in _os.environ
    if not user_set:
        _os.environ["GOMP_SPINCOUNT"] = "10000"
    try:
        import cydrop._openmp  # noqa: F401
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("cydrop."):
            raise
        raise ImportError(
            f"cydrop's compiled extensions are missing in {_os.path.dirname(__file__)}: this "
            f"looks like an unbuilt source tree. Install cydrop (pip install .) and run from "
            f"another directory (or use the `cydrop` command), or build in place with "
            f"`python setup.py build_ext --inplace`.") from None
    finally:
        if not user_set:
            del _os.environ["GOMP_SPINCOUNT"]


_load_openmp_runtime()

# The rest of the package imports only now, after the runtime above is loaded (hence E402).
# fused and variants are bound as public submodules: documented as cydrop.fused.* and
# cydrop.variants.*, imported for that alone (the redundant alias marks them re-exported).
from cydrop import fused as fused  # noqa: E402
from cydrop import variants as variants  # noqa: E402
from cydrop._core import DropoutCache, dropout, dropout_backward, dropout_mask  # noqa: E402
from cydrop._cs231n import dropout_forward  # noqa: E402
from cydrop._feature_alpha import (  # noqa: E402
    FeatureAlphaCache,
    feature_alpha_dropout,
    feature_alpha_dropout_backward,
)
from cydrop._kernels import current_isa  # noqa: E402
from cydrop._openmp import effective_n_threads, openmp_enabled  # noqa: E402
from cydrop._seeds import SeedStream, derive_seed  # noqa: E402
from cydrop.attention import (  # noqa: E402
    SoftmaxDropoutCache,
    softmax_dropout,
    softmax_dropout_backward,
)
from cydrop.blocks import BlockCache, drop_block, drop_block_backward  # noqa: E402
from cydrop.residual import (  # noqa: E402
    ResidualCache,
    drop_path,
    drop_path_backward,
    dropout_add,
    dropout_add_backward,
)

__version__ = "0.1.0"

__all__ = [
    "DropoutCache",
    "FeatureAlphaCache",
    "SeedStream",
    "derive_seed",
    "dropout",
    "dropout_backward",
    "dropout_forward",
    "dropout_mask",
    "dropout_add",
    "dropout_add_backward",
    "drop_path",
    "drop_path_backward",
    "softmax_dropout",
    "softmax_dropout_backward",
    "drop_block",
    "drop_block_backward",
    "ResidualCache",
    "SoftmaxDropoutCache",
    "BlockCache",
    "feature_alpha_dropout",
    "feature_alpha_dropout_backward",
    "current_isa",
    "effective_n_threads",
    "openmp_enabled",
]


def __getattr__(name):
    # Deprecated names, kept importable for one release with a warning.
    if name == "isa_variant":
        import warnings
        warnings.warn("cydrop.isa_variant is deprecated: use cydrop.current_isa (the kernels' "
                      "instruction set is an 'isa'; 'variant' names dropout variants)",
                      DeprecationWarning, stacklevel=2)
        return current_isa
    if name == "reference":
        # bound by `import cydrop` in 0.1: now the oracle loads on first use (this attribute,
        # `from cydrop import reference`, or `import cydrop.reference`), never with cydrop
        return _importlib.import_module("cydrop.reference")
    raise AttributeError(f"module 'cydrop' has no attribute {name!r}")
