import numpy as np
import pytest

import cydrop

SIZES = {"1K": 1 << 10, "64K": 1 << 16, "1M": 1 << 20, "16M": 1 << 24, "64M": 1 << 26}


@pytest.fixture(scope="session")
def n_threads():
    return cydrop.effective_n_threads()


@pytest.fixture(scope="session", params=list(SIZES), ids=list(SIZES))
def size(request):
    return SIZES[request.param]


@pytest.fixture(scope="session")
def arrays(size):
    x = np.random.default_rng(0).standard_normal(size).astype(np.float32)
    return x, np.empty_like(x)
