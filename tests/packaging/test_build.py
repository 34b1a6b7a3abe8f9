import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import cydrop
from cydrop import _kernels

from helpers import REPO_ROOT, python_env, run_python


@pytest.mark.skipif(os.environ.get("CYDROP_SKIP_OPENMP_TEST", "") not in ("", "0"),
                    reason="CYDROP_SKIP_OPENMP_TEST is set (serial build expected)")
def test_openmp_parallelism_enabled():
    assert cydrop.openmp_enabled(), (
        "cydrop was built without OpenMP; set CYDROP_SKIP_OPENMP_TEST=1 if that is intended")


def test_isas_list_baseline_first_and_current_is_supported():
    names = _kernels.isas()
    assert names[0] == "baseline"
    assert _kernels.current_isa() in names


def test_version_and_public_names():
    assert cydrop.__version__.count(".") == 2
    for name in cydrop.__all__:
        assert getattr(cydrop, name).__doc__, name


def _run(code, **env):
    return run_python(["-c", code], env=python_env(**env))


def test_cydrop_isa_pins_an_isa():
    res = _run("import cydrop; print(cydrop.current_isa())", CYDROP_ISA="baseline")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "baseline"


def test_cydrop_isa_rejects_unknown_isas():
    res = _run("import cydrop", CYDROP_ISA="sse9")
    assert res.returncode != 0
    assert "CYDROP_ISA='sse9': isa must be one of" in res.stderr


def test_openmp_spin_setting_does_not_leak_into_the_environment():
    code = "import os, cydrop; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    res = run_python(["-c", code], env=python_env(env))
    assert res.returncode == 0 and res.stdout.strip() == "None", res.stderr
    res = _run(code, GOMP_SPINCOUNT="123")
    assert res.stdout.strip() == "123"


# ------------------------------------------------- the C kernels without Python, three ways

_SRC = os.path.join(REPO_ROOT, "src")
_DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "kernels_dump.c")
_DUMP_N, _DUMP_SEED = 3 * 4096 + 77, 12345
_DUMP_OFFSETS = (0, 5 * 4096, 123)
_DUMP_THRESHOLDS = (0, 1, 100, 32768, 52429, 65535, 65536)


def _expected_dump():
    """What tests/packaging/c/kernels_dump.c must write, computed through cydrop's Python API."""
    i = np.arange(_DUMP_N)
    x32 = (((i % 1000) - 500).astype(np.float32) * np.float32(0.25))
    x64 = x32.astype(np.float64) * 1.5
    x32[5] = x64[5] = np.nan
    x32[6] = x64[6] = -np.inf
    parts = []
    for offset in _DUMP_OFFSETS:
        for thr in _DUMP_THRESHOLDS:
            # rate 1e-9 rounds to the threshold 65536 and still runs the kernel (scale 1)
            rate = 1e-9 if thr == 65536 else 1.0 - thr / 65536
            y32, c_bits = cydrop.dropout(x32, rate, seed=_DUMP_SEED, offset=offset, mask="bits")
            _, c_bytes = cydrop.dropout(x32, rate, seed=_DUMP_SEED, offset=offset, mask="bytes")
            y64, _ = cydrop.dropout(x64, rate, seed=_DUMP_SEED, offset=offset)
            bits = c_bits.stored_mask.tobytes()
            parts += [y32.tobytes(), bits, c_bytes.stored_mask.tobytes(), y64.tobytes(), bits]
    return b"".join(parts)


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_compiler() is None, reason="no C compiler on PATH")
@pytest.mark.skipif(not os.path.exists(os.path.join(_SRC, "cydrop_kernels.c")),
                    reason="needs the C sources (src/) of a checkout or an unpacked sdist")
@pytest.mark.parametrize("config", [[], ["-DCYDROP_NO_INTRINSICS"], ["-DCYDROP_NO_VEC"]],
                         ids=["default", "no-intrinsics", "no-vectors"])
def test_c_kernels_without_python_match_the_api(tmp_path, config):
    """Portable C (no x86 intrinsics, or no vectors at all) gives the same bits as the build."""
    exe = str(tmp_path / "kernels_dump")
    cmd = [_compiler(), "-O2", "-std=c99", "-ffp-contract=off", *config, "-I", _SRC, _DUMP,
           os.path.join(_SRC, "cydrop_kernels.c"), "-lm", "-o", exe]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    expected = _expected_dump()
    for isa in _kernels.isas():
        out = subprocess.run([exe, isa], capture_output=True)
        assert out.returncode == 0, (isa, out.stderr)
        assert out.stdout == expected, f"{isa} {config}"


# ------------------------------------------ the ISA kernel table (Cython 3.0.x miscompiled it)

_KERNELS_PYX = os.path.join(REPO_ROOT, "cydrop", "_kernels.pyx")


def test_an_isa_kernel_table_is_active_after_import():
    # _kernels refuses to import (ImportError) when no table is active; a build by Cython 3.0.x
    # dropped the table's initialiser and crashed on the first dropout() call instead
    assert _kernels.current_isa() in _kernels.isas()
    y, _ = cydrop.dropout(np.ones(10, np.float32), 0.5, seed=1)
    assert set(np.unique(y)) <= {0.0, 2.0}


@pytest.mark.skipif(not os.path.exists(_KERNELS_PYX),
                    reason="needs cydrop/_kernels.pyx of a checkout or an unpacked sdist")
def test_kernel_table_is_assigned_apart_from_its_declaration():
    with open(_KERNELS_PYX, encoding="utf-8") as fh:
        src = fh.read()
    # `cdef const T * const *table = f()`: the initialiser Cython 3.0.x dropped
    assert not re.search(r"cdef[^\n=#]*\*\s*const\s*\*\s*\w+\s*=", src)
    assert "no ISA kernel table is active" in src  # _init_isa's ImportError
