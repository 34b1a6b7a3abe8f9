"""The chunk runner's load feedback (src/cydrop_adapt.h).

Two parallel regions in a row slower than their serial estimates send calls serial for a backoff
that doubles while regions keep losing; a winning region resets it (one loss alone is a cold
start's wake-up, not load). The feedback decides where tasks run, never what they compute.

The state machine is driven here with synthetic timings (``_record``, ``_serial_now``), so these
tests assert its rules, not the speed of this machine.
"""
import numpy as np
import pytest

import cydrop
from cydrop import _parallel

from helpers import bits_of

SECOND = 1_000_000_000


@pytest.fixture
def feedback():
    """The feedback on and reset to its initial state; off again afterwards (see conftest)."""
    _parallel.load_feedback(False)          # clears any backoff
    _parallel.load_feedback(True)
    yield _parallel
    _parallel.load_feedback(False)


def test_a_winning_region_keeps_the_team(feedback):
    now = 10 * SECOND
    assert not feedback._record(500, 1000.0, now)           # half the serial estimate: a win
    assert not feedback._serial_now(now + 1)
    assert feedback.load_feedback()["backoff_ns"] == feedback.BACKOFF_MIN_NS


def _lose_twice(feedback, now, region=2000):
    """Two losing regions in a row (the first only raises a suspicion); True if backed off."""
    assert not feedback._record(region, 1000.0, now)
    return feedback._record(region, 1000.0, now)


def test_the_loss_threshold_is_a_ratio_of_the_serial_estimate(feedback):
    now = 10 * SECOND
    edge = int(feedback.LOSS * 1000)
    losses = feedback.load_feedback()["losses"]
    assert not feedback._record(edge, 1000.0, now)          # at the threshold: not a loss
    assert feedback.load_feedback()["losses"] == losses
    assert not feedback._record(edge + 1, 1000.0, now)      # above it: a loss, a suspicion
    assert feedback.load_feedback()["losses"] == losses + 1
    assert feedback._record(edge + 1, 1000.0, now)          # a second in a row: back off


def test_one_loss_between_wins_never_backs_off(feedback):
    # a cold start: the first region after the workers slept pays their wake-up
    now = 10 * SECOND
    for _ in range(5):
        assert not feedback._record(5000, 1000.0, now)       # a loss (suspicion)
        assert not feedback._record(500, 1000.0, now)        # a win clears it
        assert not feedback._serial_now(now)


def test_a_loss_goes_serial_for_the_backoff_then_probes_again(feedback):
    now = 10 * SECOND
    assert _lose_twice(feedback, now)                        # twice the serial estimate
    first = feedback.BACKOFF_MIN_NS
    assert feedback._serial_now(now)
    assert feedback._serial_now(now + first - 1)
    assert not feedback._serial_now(now + first)             # the backoff is over: probe
    assert feedback.load_feedback()["backoff_ns"] == 2 * first


def test_the_backoff_doubles_up_to_its_maximum_and_a_win_resets_it(feedback):
    now = 10 * SECOND
    expected = feedback.BACKOFF_MIN_NS
    for _ in range(12):
        assert _lose_twice(feedback, now, 10_000)
        assert feedback._serial_now(now + expected - 1)
        assert not feedback._serial_now(now + expected)
        now += expected
        expected = min(2 * expected, feedback.BACKOFF_MAX_NS)
    assert expected == feedback.BACKOFF_MAX_NS
    assert feedback.load_feedback()["backoff_ns"] == feedback.BACKOFF_MAX_NS
    assert not feedback._record(100, 1000.0, now)            # a win
    assert feedback.load_feedback()["backoff_ns"] == feedback.BACKOFF_MIN_NS


def test_counters_and_switching_off_ends_a_backoff(feedback):
    before = feedback.load_feedback()
    now = feedback._now_ns()
    assert _lose_twice(feedback, now, 10_000)
    state = feedback.load_feedback()
    assert state["regions"] == before["regions"] + 2
    assert state["losses"] == before["losses"] + 2
    assert 0 < state["serial_for_ns"] <= feedback.BACKOFF_MIN_NS
    assert feedback._serial_now(now)
    assert feedback.load_feedback()["serial_calls"] == state["serial_calls"] + 1
    off = feedback.load_feedback(False)
    assert not off["enabled"] and off["serial_for_ns"] == 0
    assert not feedback._serial_now(now)                     # off: never serial by feedback


def test_the_clock_is_monotonic():
    a = _parallel._now_ns()
    b = _parallel._now_ns()
    assert isinstance(a, int) and b >= a


@pytest.mark.parametrize("bad", [1, "yes", 1.0])
def test_load_feedback_takes_a_bool(bad):
    with pytest.raises(TypeError, match=r"enabled must be a bool or None, got "):
        _parallel.load_feedback(bad)


@pytest.mark.parametrize("mask", ["recompute", "bits", "bytes"])
def test_results_do_not_depend_on_the_feedback(feedback, dtype, mask):
    # A call sent serial by a backoff gives the bits a team gives.
    x = np.random.default_rng(0).standard_normal(300_001).astype(dtype)
    team, cache = cydrop.dropout(x, 0.3, seed=9, offset=5, mask=mask, n_threads=2)
    # a loss stamped 10 s ahead: serial from now until the fixture switches the feedback off
    feedback._record(10 * SECOND, 1.0, feedback._now_ns() + 10 * SECOND)
    feedback._record(10 * SECOND, 1.0, feedback._now_ns() + 10 * SECOND)
    state = feedback.load_feedback()
    assert state["serial_for_ns"] > 10 * SECOND
    serial, cache2 = cydrop.dropout(x, 0.3, seed=9, offset=5, mask=mask, n_threads=2)
    assert feedback.load_feedback()["serial_calls"] == state["serial_calls"] + 1
    np.testing.assert_array_equal(bits_of(serial), bits_of(team))
    np.testing.assert_array_equal(cache2.keep_mask(), cache.keep_mask())
    g = np.ones_like(x)
    np.testing.assert_array_equal(bits_of(cydrop.dropout_backward(g, cache2, n_threads=2)),
                                  bits_of(cydrop.dropout_backward(g, cache, n_threads=2)))
