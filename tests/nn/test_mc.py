"""Monte Carlo dropout (cydrop.nn.mc): reproducible samples, fixed masks, every dropout layer."""

import numpy as np
import pytest

from cydrop import nn, variants
from cydrop.nn import AlphaDropout, DropConnectDense, GaussianDropout
from cydrop.nn.mc import MCPrediction, SequentialMC, mc_predict, mc_sample_seed

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _mlp():
    return nn.Sequential(nn.Dense(5, 16, seed=0), nn.ReLU(), nn.Dropout(0.5, seed=1),
                         nn.Dense(16, 3, seed=2))


def test_mc_predict_reproducible_per_sample():
    model = _mlp()
    X = np.random.default_rng(0).standard_normal((6, 5))
    a = mc_predict(model, X, 5, seed=42, return_samples=True)
    b = mc_predict(model, X, 5, seed=42, return_samples=True)
    assert np.array_equal(a.samples, b.samples) and a.samples.shape == (5, 6, 3)
    f = SequentialMC(model)
    for s in range(5):
        assert np.array_equal(f(X, mc_sample_seed(42, s)), a.samples[s])
    assert np.allclose(a.mean, a.samples.mean(0)) and np.allclose(a.std, a.samples.std(0))
    assert model.training                        # the model's mode is restored


def test_mc_fixed_mask_shares_mask_across_inputs():
    model = _mlp()
    X = np.repeat(np.random.default_rng(0).standard_normal((1, 5)), 4, axis=0)
    res = mc_predict(model, X, 6, seed=1, fixed_mask=True, return_samples=True)
    assert (res.samples == res.samples[:, :1]).all()          # identical rows, identical outputs
    free = mc_predict(model, X, 6, seed=1, return_samples=True)
    assert not (free.samples == free.samples[:, :1]).all()


def test_mc_fixed_mask_native_equals_generic_rowwise():
    model = _mlp()
    X = np.random.default_rng(4).standard_normal((5, 5))
    f = SequentialMC(model)
    native = mc_predict(f, X, 4, seed=7, fixed_mask=True, return_samples=True)
    generic = mc_predict(lambda X_, s, o: f(X_, s, o), X, 4, seed=7, fixed_mask=True,
                           return_samples=True)
    # the same masks; values agree up to BLAS rounding (gemm on a batch vs one row)
    assert np.allclose(native.samples, generic.samples, rtol=1e-12, atol=1e-12)


def test_mc_with_variant_layers():
    model = nn.Sequential(DropConnectDense(5, 8, 0.3, seed=0), nn.ReLU(), AlphaDropout(0.2),
                          GaussianDropout(0.2), nn.Dense(8, 3, seed=1))
    X = np.random.default_rng(0).standard_normal((4, 5))
    a = mc_predict(model, X, 3, seed=3, return_samples=True)
    b = mc_predict(model, X, 3, seed=3, return_samples=True)
    assert np.array_equal(a.samples, b.samples) and (a.std > 0).all()
    Xr = np.repeat(X[:1], 3, axis=0)
    c = mc_predict(model, Xr, 3, seed=3, fixed_mask=True, return_samples=True)
    assert (c.samples == c.samples[:, :1]).all()


def test_mc_generic_callable():
    W = np.random.default_rng(0).standard_normal((4, 2))

    def f(X, seed, offset):
        h, _ = variants.dropout_nd(X, 0.5, seed=seed, offset=offset)
        return h @ W

    X = np.ones((3, 4))
    res = mc_predict(f, X, 50, seed=0)
    assert res.mean.shape == (3, 2) and (res.std > 0).all() and res.samples is None


def test_mc_spread_larger_on_misclassified_digits():
    """On scikit-learn's digits, MC-dropout spread is larger where the MLP is wrong."""
    sklearn = pytest.importorskip("sklearn.datasets")
    if threadpool_limits is None:  # pragma: no cover
        pytest.skip("threadpoolctl missing")
    X, y = sklearn.load_digits(return_X_y=True)
    X = X / 16.0
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:1000], idx[1000:]
    model = nn.mlp(64, [64], 10, rates=0.5, seed=0)
    opt = nn.Adam(learning_rate=3e-3)
    # small matrices: BLAS threads only add contention
    with threadpool_limits(1, user_api="blas"):
        for epoch in range(15):
            perm = np.random.default_rng(epoch).permutation(tr)
            for i in range(0, len(perm), 50):
                b = perm[i:i + 50]
                _, grads = model.loss(X[b], y[b])
                opt.step(model.params, grads)
        res = mc_predict(model, X[te], 30, seed=1, transform="softmax")
    pred = res.mean.argmax(axis=1)
    wrong = pred != y[te]
    assert 0.9 < 1 - wrong.mean() < 1 and wrong.sum() >= 5
    spread = res.std.sum(axis=1)                 # total predictive spread per example
    sw, sc = spread[wrong], spread[~wrong]
    assert sw.mean() > 1.3 * sc.mean()
    # Mann-Whitney: AUC = P(spread of a wrong > spread of a right); under "no difference" it is
    # 1/2 with sd sqrt((n1 + n2 + 1) / (12 n1 n2)). Demand z > 4 (one-sided p < 4e-5).
    auc = (sw[:, None] > sc[None, :]).mean()
    n1, n2 = len(sw), len(sc)
    z = (auc - 0.5) / np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert auc > 0.8 and z > 4


# copied from tests/variants/test_variants.py (its mc_predict entry of the error-message table)
def test_mc_samples_below_one_is_refused():
    with pytest.raises(ValueError, match=r"mc_samples must be an integer >= 1, got 0"):
        mc_predict(lambda X, s, o: X, np.ones(3), 0)


def test_mc_sample_seed_follows_the_contract():
    from cydrop._contract import GOLDEN, mix64
    for seed, sample in ((0, 0), (42, 3), (2**64 - 1, 7)):
        expected = mix64(mix64(seed + GOLDEN) ^ (((sample + 1) * GOLDEN) % 2**64))
        assert mc_sample_seed(seed, sample) == expected


def test_mc_prediction_fields():
    res = MCPrediction(np.zeros(2), np.ones(2))
    assert res.samples is None and res.mean is res[0] and res.std is res[1]
