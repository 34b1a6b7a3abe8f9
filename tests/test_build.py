import os

import pytest

import cydrop
from cydrop import _kernels


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
