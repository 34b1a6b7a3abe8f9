"""Helpers shared by cydrop's tests: import them with ``from helpers import ...``.

tests/conftest.py holds the fixtures; this module holds plain functions and paths, so a test
never imports a conftest.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

import cydrop

# tests/ and the checkout (or unpacked sdist) it belongs to; when the tests run from a copy of
# tests/ alone, REPO_ROOT holds no src/ or bench/ and the tests that need them skip.
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

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


def bits_of(a):
    """The raw bits of a float array, for bit-exact comparisons (NaN == NaN, +0 != -0)."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
