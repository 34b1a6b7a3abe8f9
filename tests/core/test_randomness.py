"""Randomness of the masks: our own checks beyond tests/core/test_stats.py, and a small dieharder
run.

Every check is a z or chi-square statistic with a threshold a fair generator exceeds with
probability < 1e-6, at fixed seeds: a failure is a defect, not bad luck. The full dieharder
battery is run by bench/dieharder.py; its results are in docs/randomness.md.
"""

import importlib.util
import math
import os
import shutil

import numpy as np
import pytest

import cydrop
from cydrop import _kernels

from helpers import REPO_ROOT

Z_MAX = 5.0
# bench/ beside tests/ in a checkout or an unpacked sdist; absent when the tests run against an
# installed cydrop from a copy of tests/ alone, and then the tests that need it skip.
BENCH = os.path.join(REPO_ROOT, "bench")


def _chi2_ok(chi2, df):
    """Wilson-Hilferty: chi2/df is ~normal(1 - 2/(9df), sqrt(2/(9df)))."""
    z = ((chi2 / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return abs(z) < Z_MAX, z


def test_kept_fraction_by_lane_and_chunk_at_several_rates():
    # test_stats covers rate 0.5 by position; here every (lane, 16-bit chunk) slot at skewed
    # rates, where a biased bit of one lane's output would show in the threshold comparison.
    n_blocks = 256
    for rate in (0.1, 0.37, 0.9):
        m = cydrop.dropout_mask(n_blocks * 4096, rate, seed=31, offset=4096 * 1000)
        p = _kernels.threshold(1 - rate) / 65536
        slots = m.reshape(-1, 8, 4).mean(axis=0)          # lane j, chunk k
        sd = math.sqrt(p * (1 - p) / (n_blocks * 128))
        assert np.all(np.abs(slots - p) < Z_MAX * sd), (rate, slots)


def test_every_bit_of_the_16_bit_draw_is_fair():
    # keep(u < thr) only tests the top bits at rate 0.5; thresholds 2**k isolate bit 15 - k..
    # P(u < 2**k) = 2**(k-16): check each realised fraction against it.
    n = 1 << 22
    for k in range(8, 16):
        thr = 1 << k
        out = np.empty(n, dtype=np.uint8)
        _kernels.mask(n, 77, 0, thr, None, out, 1)
        p = thr / 65536
        z = (out.sum() - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < Z_MAX, (k, z)


def test_pairs_within_a_step_and_across_lanes_are_independent():
    # 2x2 contingency of neighbouring elements (same lane, next chunk) and of elements 4 apart
    # (next lane, same chunk), at rate 0.5: chi-square with 1 df each.
    m = cydrop.dropout_mask(1 << 22, 0.5, seed=5).astype(np.int64)
    for lag in (1, 4, 31, 32, 4096):
        a, b = m[:-lag], m[lag:]
        table = np.bincount(2 * a + b, minlength=4).reshape(2, 2)
        exp = np.outer(table.sum(1), table.sum(0)) / table.sum()
        chi2 = ((table - exp) ** 2 / exp).sum()
        assert chi2 < 30, (lag, chi2)          # P(chi2_1 > 30) = 4e-8


def test_neighbouring_blocks_are_independent_at_the_same_positions():
    # Block b and b + 1 seeded from (key, b): the XOR of their masks at rate 0.5 is fair, for
    # many block pairs, also across the 2**32 block boundary.
    for first in (0, 2**32 - 64, 2**50):
        m = cydrop.dropout_mask(4096 * 128, 0.5, seed=11, offset=4096 * first)
        blocks = m.reshape(128, 4096)
        x = blocks[:-1] ^ blocks[1:]
        n = x.size
        z = (x.sum() - n / 2) / math.sqrt(n / 4)
        assert abs(z) < Z_MAX, (first, z)
        # per-position agreement across all pairs: chi-square over 4096 positions
        agree = (1 - x).sum(axis=0)
        chi2 = ((agree - 127 / 2) ** 2 / (127 / 4)).sum()
        ok, zc = _chi2_ok(chi2, 4096)
        assert ok, (first, zc)


def test_seeds_s_and_s_plus_1_and_bit_flips_give_independent_masks():
    n = 1 << 20
    base = cydrop.dropout_mask(n, 0.5, seed=1 << 40)
    for other in ((1 << 40) + 1, (1 << 40) ^ (1 << 63), (1 << 40) ^ 1 << 41, 0, 2**64 - 1):
        m = cydrop.dropout_mask(n, 0.5, seed=other)
        agree = int((m == base).sum())
        z = (agree - n / 2) / math.sqrt(n / 4)
        assert abs(z) < Z_MAX, (other, z)
    # many consecutive seeds, same position: the column means are fair (no seed-order effect)
    rows = np.stack([cydrop.dropout_mask(4096, 0.5, seed=s) for s in range(1000, 1512)])
    cols = rows.mean(axis=0)
    sd = math.sqrt(0.25 / 512)
    assert np.all(np.abs(cols - 0.5) < (Z_MAX + 0.5) * sd)
    counts = rows.sum(axis=0)
    ok, z = _chi2_ok(((counts - 256) ** 2 / 128).sum(), 4096)
    assert ok, z


@pytest.mark.parametrize("rate", [0.5, 0.2])
def test_run_lengths_are_geometric(rate):
    # Lengths of runs of kept elements: P(L = k) = p**(k-1) (1 - p), chi-square over k.
    n = 1 << 22
    m = cydrop.dropout_mask(n, rate, seed=2024).astype(np.int8)
    p = _kernels.threshold(1 - rate) / 65536
    edges = np.flatnonzero(np.diff(np.concatenate(([0], m, [0]))))
    lengths = edges[1::2] - edges[::2]
    lengths = lengths[1:-1]                    # drop runs cut by the array ends
    kmax = int(np.ceil(np.log(5 / len(lengths)) / np.log(p)))  # expected count >= 5
    kmax = max(2, kmax)
    obs = np.bincount(np.minimum(lengths, kmax), minlength=kmax + 1)[1:]
    probs = np.array([p ** (k - 1) * (1 - p) for k in range(1, kmax)] + [p ** (kmax - 1)])
    exp = probs * len(lengths)
    chi2 = ((obs - exp) ** 2 / exp).sum()
    ok, z = _chi2_ok(chi2, kmax - 1)
    assert ok, (chi2, kmax, z)
    # and runs of dropped elements, rate ** (k-1) (1 - rate)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], 1 - m, [0]))))
    lengths = (edges[1::2] - edges[::2])[1:-1]
    q = 1 - p
    kmax = max(2, int(np.ceil(np.log(5 / len(lengths)) / np.log(q))))
    obs = np.bincount(np.minimum(lengths, kmax), minlength=kmax + 1)[1:]
    probs = np.array([q ** (k - 1) * (1 - q) for k in range(1, kmax)] + [q ** (kmax - 1)])
    chi2 = ((obs - probs * len(lengths)) ** 2 / (probs * len(lengths))).sum()
    ok, z = _chi2_ok(chi2, kmax - 1)
    assert ok, (chi2, kmax, z)


def test_byte_values_of_packed_bits_are_uniform():
    # What dieharder reads: the packed bits as bytes. 256-cell chi-square, and 65536-cell for
    # consecutive byte pairs.
    bits = np.packbits(cydrop.dropout_mask(1 << 24, 0.5, seed=3), bitorder="little")
    counts = np.bincount(bits, minlength=256)
    exp = bits.size / 256
    ok, z = _chi2_ok(((counts - exp) ** 2 / exp).sum(), 255)
    assert ok, z
    pairs = bits[0::2].astype(np.int64) * 256 + bits[1::2]
    counts = np.bincount(pairs, minlength=65536)
    exp = pairs.size / 65536
    ok, z = _chi2_ok(((counts - exp) ** 2 / exp).sum(), 65535)
    assert ok, z


def _load_bench_dieharder():
    if not os.path.exists(os.path.join(BENCH, "dieharder.py")):
        pytest.skip(f"needs bench/dieharder.py from the source tree ({BENCH} is absent)")
    spec = importlib.util.spec_from_file_location("cydrop_bench_dieharder",
                                                  os.path.join(BENCH, "dieharder.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dieharder_feeder_sources_give_the_same_bytes():
    dh = _load_bench_dieharder()
    gens = [dh.packed_chunks(99, src, chunk=1 << 15, start=4096 * 7)
            for src in ("kernel", "dropout", "packbits")]
    for _ in range(3):
        a, b, c = (next(g) for g in gens)
        assert a == b == c and len(a) == (1 << 15) // 8
    row = "   diehard_birthdays|   0|       100|     100|0.39905114|  PASSED  "
    (parsed,) = dh.parse_report(row)
    assert parsed["name"] == "diehard_birthdays" and parsed["p"] == 0.39905114


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dieharder") is None, reason="dieharder not on PATH "
                    "(Debian: apt-get install dieharder)")
@pytest.mark.parametrize("args", [
    ["-d", "100", "-p", "20"],                      # sts_monobit
    ["-d", "101", "-p", "20"],                      # sts_runs
    ["-d", "2", "-p", "20"],                        # diehard_rank_32x32
    ["-d", "200", "-n", "4", "-p", "20"],           # rgb_bitdist, 4-bit tuples
    ["-d", "206", "-p", "5"],                       # dab_bytedistrib (slow: few p-samples)
], ids=["sts_monobit", "sts_runs", "rank_32x32", "rgb_bitdist4", "dab_bytedistrib"])
def test_dieharder_subset_passes(args):
    dh = _load_bench_dieharder()
    rows, text, fed = dh.run_dieharder(args, seed=20240531, echo=False)
    assert rows, text
    failed = [r for r in rows if r["assessment"] == "FAILED"]
    assert not failed, dh.summary(rows)
