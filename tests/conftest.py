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


@pytest.fixture(autouse=True, scope="session")
def _team_path_always():
    """The suite exercises the OpenMP team path whenever the work policy chooses it: the load
    feedback (which sends calls serial on a busy machine, and a CI machine running this suite is
    one) is off, except in tests/core/test_load_feedback.py, which turns it on itself."""
    from cydrop import _parallel
    was = _parallel.load_feedback(False)["enabled"]
    yield
    _parallel.load_feedback(was)
