import threading

import numpy as np
import pytest

import cydrop


def test_stream_hands_out_disjoint_block_aligned_ranges():
    s = cydrop.SeedStream(7)
    assert s.next(10) == (7, 0)
    assert s.next(5000) == (7, 4096)
    assert s.next(0) == (7, 4096 + 8192)
    assert s.next(1) == (7, 4096 + 8192)
    assert s.offset == 4096 * 4


def test_same_stream_seed_replays_the_same_masks():
    x = np.ones((64, 100), dtype=np.float32)

    def run(seed):
        s = cydrop.SeedStream(seed)
        return [cydrop.dropout(x, 0.5, seed=sd, offset=o)[0]
                for sd, o in (s.next(x.size) for _ in range(3))]

    a, b = run(3), run(3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert (a[0] != a[1]).mean() > 0.3


def test_state_round_trip_and_validation():
    s = cydrop.SeedStream(1)
    s.next(100)
    state = s.get_state()
    t = cydrop.SeedStream(99)
    t.set_state(state)
    assert t.next(1) == s.next(1)
    with pytest.raises(ValueError, match=r"state must be a dict with keys 'seed' and 'offset'"):
        t.set_state({"seed": 1})
    with pytest.raises(ValueError, match=r"state\['offset'\] must satisfy"):
        t.set_state({"seed": 1, "offset": -1})
    assert repr(s) == f"SeedStream(seed=1, offset={s.offset})"


def test_fresh_seed_when_none_and_bad_seeds():
    assert cydrop.SeedStream().seed != cydrop.SeedStream().seed
    with pytest.raises(ValueError, match=r"seed must satisfy 0 <= seed < 2\*\*64, got -5"):
        cydrop.SeedStream(-5)
    with pytest.raises(TypeError, match=r"size must be an int"):
        cydrop.SeedStream(1).next(2.5)


def test_exhausted_stream_raises():
    s = cydrop.SeedStream(1)
    s.set_state({"seed": 1, "offset": 2**64 - 4096})
    assert s.next(4096) == (1, 2**64 - 4096)
    with pytest.raises(OverflowError, match=r"used all 2\*\*64 indices"):
        s.next(1)


def test_concurrent_next_calls_never_share_a_range():
    s = cydrop.SeedStream(5)
    got = []
    lock = threading.Lock()

    def worker():
        mine = [s.next(4096)[1] for _ in range(500)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 4000 and max(got) == 4096 * 3999
