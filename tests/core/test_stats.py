"""Statistical properties of the masks, with tolerances derived from the binomial law."""

import numpy as np
import pytest

import cydrop

# |z| > 5 happens with probability 6e-7 per check for a fair generator: a failure is a defect.
Z_MAX = 5.0


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
def test_kept_fraction_z_test(rate):
    n = 2_000_000
    m = cydrop.dropout_mask(n, rate, seed=12345)
    keep = cydrop._kernels.threshold(1 - rate) / 65536
    z = (m.sum() - n * keep) / np.sqrt(n * keep * (1 - keep))
    assert abs(z) < Z_MAX, z


def test_expected_output_equals_input():
    x = np.full(4_000_000, 3.0)
    y, _ = cydrop.dropout(x, 0.3, seed=2)
    sd = 3.0 * np.sqrt(0.3 / 0.7) / np.sqrt(x.size)
    assert abs(y.mean() - 3.0) < Z_MAX * sd


def test_no_bias_by_position_within_a_block():
    # 512 blocks x 4096 positions: the kept fraction at each position over blocks, and at each
    # position within a step (lane and 16-bit chunk), must look binomial.
    n_blocks = 512
    m = cydrop.dropout_mask(n_blocks * 4096, 0.5, seed=77).reshape(n_blocks, 4096)
    by_pos_in_step = m.reshape(n_blocks, 128, 32).mean(axis=(0, 1))
    sd = np.sqrt(0.25 / (n_blocks * 128))
    assert np.all(np.abs(by_pos_in_step - 0.5) < Z_MAX * sd)
    by_step = m.reshape(n_blocks, 128, 32).mean(axis=(0, 2))
    sd = np.sqrt(0.25 / (n_blocks * 32))
    assert np.all(np.abs(by_step - 0.5) < Z_MAX * sd)
    # chi-square over all 4096 positions
    counts = m.sum(axis=0)
    chi2 = np.sum((counts - n_blocks * 0.5) ** 2 / (n_blocks * 0.25))
    df = 4096
    assert abs(chi2 - df) < Z_MAX * np.sqrt(2 * df)


def test_neighbouring_blocks_and_seeds_are_uncorrelated():
    n = 4096 * 256
    a = cydrop.dropout_mask(n, 0.5, seed=1000).astype(np.float64) - 0.5
    b = cydrop.dropout_mask(n, 0.5, seed=1001).astype(np.float64) - 0.5
    sd = 1 / np.sqrt(n)
    assert abs(np.corrcoef(a, b)[0, 1]) < Z_MAX * sd
    blocks = a.reshape(256, 4096)
    corr = np.mean(blocks[:-1] * blocks[1:]) / 0.25
    assert abs(corr) < Z_MAX / np.sqrt(255 * 4096)
    lag1 = np.mean(a[:-1] * a[1:]) / 0.25
    assert abs(lag1) < Z_MAX / np.sqrt(n)
