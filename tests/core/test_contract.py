"""The rate contract has one definition per language: cydrop._contract (Python) and
src/cydrop_rng.h (C, reached through cydrop._kernels). They must agree everywhere, edges
included."""

import math

import numpy as np
import pytest

from cydrop import _contract, _kernels

# keep*65536 lands exactly on x.5 for these (ties round up in both definitions)
_HALVES = [(k + 0.5) / 65536 for k in (0, 1, 2, 100, 32767, 32768, 65534, 65535)]
KEEPS = sorted(set([0.0, 1.0, 1e-300, 5e-324, 0.5, 1 - 2**-17, 2**-17, 1 - 2**-16, 2**-16,
                    1e-9, 1 - 1e-9, 0.1, 0.3, 0.7, 0.9, 0.999, 1 / 3, 2 / 3,
                    math.nextafter(0.5, 0), math.nextafter(0.5, 1),
                    math.nextafter(1.0, 0)] + _HALVES
                   + [math.nextafter(h, 0) for h in _HALVES]
                   + [math.nextafter(h, 1) for h in _HALVES]
                   + list(np.random.default_rng(0).random(500))))
RATES = sorted(set([1.0 - k for k in KEEPS] + KEEPS))


def test_threshold_agrees_with_c():
    for keep in KEEPS:
        assert _contract.threshold(keep) == _kernels.threshold(keep), keep


def test_ties_round_up_in_both():
    for k in (0, 1, 100, 32768, 65535):
        keep = (k + 0.5) / 65536
        assert _contract.threshold(keep) == _kernels.threshold(keep) == k + 1


def test_scale_agrees_with_c():
    for thr in [0, 1, 2, 3, 7, 100, 32767, 32768, 52429, 65535, 65536]:
        py = 65536.0 / thr if thr else 0.0
        assert _kernels.scale(thr) == py
    for rate in RATES:
        thr, scale = _contract.threshold_and_scale(rate)
        assert thr == _kernels.threshold(1.0 - rate)
        assert scale == _kernels.scale(thr), rate      # bit-identical doubles
        assert 0 <= thr <= _contract.THRESHOLD_ONE


def test_threshold_and_scale_edges():
    assert _contract.threshold_and_scale(0.0) == (_contract.THRESHOLD_ONE, 1.0)
    assert _contract.threshold_and_scale(1.0) == (0, 0.0)
    assert _contract.threshold_and_scale(0.5) == (32768, 2.0)
    assert _contract.threshold_and_scale(1e-300) == (65536, 1.0)


SEEDS = sorted(set([0, 1, 2, 12345, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 2,
                    _contract.UINT64_MAX, _contract.GOLDEN, _contract.UINT64_MAX - _contract.GOLDEN,
                    _contract.UINT64_MAX - _contract.GOLDEN + 1]
                   + [int(s) for s in np.random.default_rng(1).integers(0, 2**64, 300,
                                                                        dtype=np.uint64)]))


def test_mix64_and_seed_key_agree_with_c():
    for seed in SEEDS:
        assert _contract.mix64(seed) == _kernels.mix64(seed), seed
        assert _contract.seed_key(seed) == _kernels.seed_key(seed), seed
        assert 0 <= _contract.seed_key(seed) <= _contract.UINT64_MAX


def test_constants_agree_with_c():
    assert _contract.BLOCK == _kernels.BLOCK
    assert _contract.GOLDEN == 0x9E3779B97F4A7C15
    assert _contract.UINT64_MAX == 2**64 - 1 == _contract.INDEX_LIMIT - 1
    # the C key wraps mod 2**64 exactly where the Python one masks
    assert _kernels.seed_key(_contract.UINT64_MAX - _contract.GOLDEN + 1) == _contract.mix64(0)


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_c_refuses_seeds_outside_uint64(bad):
    with pytest.raises(OverflowError):
        _kernels.seed_key(bad)
