import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import cydrop

# Where the cydrop under test was imported from (site-packages, or the source tree of an
# in-place build). Child interpreters get it first on PYTHONPATH and run in an empty directory,
# so `python -m cydrop` / `python -c` never pick up an unbuilt source checkout from the cwd.
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(cydrop.__file__)))
_NEUTRAL_CWD = tempfile.mkdtemp(prefix="cydrop-tests-")


def python_env(base=None, **overrides):
    """An environment for a child interpreter that imports the cydrop under test."""
    env = dict(os.environ if base is None else base)
    env.update(overrides)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (PKG_ROOT, env.get("PYTHONPATH", "")) if p)
    return env


def run_python(args, *, env=None, cwd=None, timeout=120, **kwargs):
    """Run ``python *args`` against the cydrop under test, from a neutral directory."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          env=python_env() if env is None else env,
                          cwd=cwd or _NEUTRAL_CWD, timeout=timeout, **kwargs)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


def bits_of(a):
    """The raw bits of a float array, for bit-exact comparisons (NaN == NaN, +0 != -0)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.fixture
def all_variants():
    """Every ISA variant the CPU runs; restores the default afterwards."""
    from cydrop import _kernels
    previous = _kernels.current_variant()
    yield _kernels.variants()
    _kernels.set_variant(previous)


def pytest_report_header(config):
    from cydrop import _kernels
    return (f"cydrop {cydrop.__version__}: openmp={cydrop.openmp_enabled()}, "
            f"threads={cydrop.effective_n_threads()}, isa={_kernels.current_variant()} "
            f"of {_kernels.variants()}")
