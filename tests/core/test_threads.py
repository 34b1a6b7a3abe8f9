"""Concurrent Python threads on shared inputs give exactly the serial results."""

import threading

import numpy as np

import cydrop

from helpers import bits_of


def run_threaded(fn, n_workers=8):
    results, errors = [None] * n_workers, []
    barrier = threading.Barrier(n_workers)

    def target(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_eight_threads_forward_backward_on_shared_inputs(dtype):
    x = np.random.default_rng(0).standard_normal(200_003).astype(dtype)
    x.flags.writeable = False
    dout = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    modes = ["recompute", "bits", "bytes"]

    def serial(i):
        y, c = cydrop.dropout(x, 0.3, seed=i, offset=i * 7, mask=modes[i % 3], n_threads=2)
        return bits_of(y), bits_of(cydrop.dropout_backward(dout, c, n_threads=2))

    expected = [serial(i) for i in range(8)]
    for _ in range(3):
        got = run_threaded(serial)
        for (y, dx), (ey, edx) in zip(got, expected):
            np.testing.assert_array_equal(y, ey)
            np.testing.assert_array_equal(dx, edx)
