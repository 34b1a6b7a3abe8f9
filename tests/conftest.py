"""Fixtures shared by cydrop's tests; plain helpers live in tests/helpers.py."""
import numpy as np
import pytest

import cydrop


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def all_isas():
    """Every ISA variant the CPU runs; restores the default afterwards."""
    from cydrop import _kernels
    previous = _kernels.current_isa()
    yield _kernels.isas()
    _kernels.set_isa(previous)


def pytest_report_header(config):
    from cydrop import _kernels
    return (f"cydrop {cydrop.__version__}: openmp={cydrop.openmp_enabled()}, "
            f"threads={cydrop.effective_n_threads()}, isa={_kernels.current_isa()} "
            f"of {_kernels.isas()}")
