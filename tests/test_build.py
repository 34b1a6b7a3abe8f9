import os

import pytest

import cydrop
from cydrop import _kernels

from conftest import python_env, run_python


@pytest.mark.skipif(os.environ.get("CYDROP_SKIP_OPENMP_TEST", "") not in ("", "0"),
                    reason="CYDROP_SKIP_OPENMP_TEST is set (serial build expected)")
def test_openmp_parallelism_enabled():
    assert cydrop.openmp_enabled(), (
        "cydrop was built without OpenMP; set CYDROP_SKIP_OPENMP_TEST=1 if that is intended")


def test_variants_list_baseline_first_and_current_is_supported():
    names = _kernels.variants()
    assert names[0] == "baseline"
    assert _kernels.current_variant() in names


def test_version_and_public_names():
    assert cydrop.__version__.count(".") == 2
    for name in cydrop.__all__:
        assert getattr(cydrop, name).__doc__, name


def _run(code, **env):
    return run_python(["-c", code], env=python_env(**env))


def test_cydrop_isa_pins_a_variant():
    res = _run("import cydrop; print(cydrop.isa_variant())", CYDROP_ISA="baseline")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "baseline"


def test_cydrop_isa_rejects_unknown_variants():
    res = _run("import cydrop", CYDROP_ISA="sse9")
    assert res.returncode != 0
    assert "CYDROP_ISA='sse9': variant must be one of" in res.stderr


def test_openmp_spin_setting_does_not_leak_into_the_environment():
    code = "import os, cydrop; print(os.environ.get('GOMP_SPINCOUNT'))"
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    res = run_python(["-c", code], env=python_env(env))
    assert res.returncode == 0 and res.stdout.strip() == "None", res.stderr
    res = _run(code, GOMP_SPINCOUNT="123")
    assert res.stdout.strip() == "123"
