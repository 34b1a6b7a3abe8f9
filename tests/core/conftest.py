"""Fixtures of the core tests; the machinery behind them lives in tests/helpers.py."""
import pytest

from helpers import GuardedWorker


@pytest.fixture(scope="module")
def worker():
    """A child interpreter that runs a test module's cases (see helpers.GuardedWorker)."""
    w = GuardedWorker()
    yield w
    w.close()
