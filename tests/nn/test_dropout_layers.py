"""Variant layers in cydrop.nn's Sequential, and Monte Carlo dropout (digits)."""

import numpy as np
import pytest

import cydrop
import cydrop.variants as V
from cydrop import nn
from cydrop.nn.gradcheck import eval_numerical_gradient, rel_error
from cydrop.variants_layers import (
    AlphaDropout, BroadcastDropout, DropConnectDense, ExactKDropout, GaussianDropout,
    LockedDropout, SpatialDropout,
)

from helpers import bits_of

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

STOCHASTIC = [
    lambda: BroadcastDropout(0.4, broadcast_axes=0, seed=1),
    lambda: SpatialDropout(0.4, seed=1),
    lambda: LockedDropout(0.4, time_axis=1, seed=1),
    lambda: ExactKDropout(0.4, seed=1),
    lambda: AlphaDropout(0.4, seed=1),
    lambda: GaussianDropout(0.4, seed=1),
]
IDS = ["broadcast", "spatial", "locked", "exact_k", "alpha", "gaussian"]


@pytest.mark.parametrize("make", STOCHASTIC, ids=IDS)
def test_layer_interface(make, dtype):
    layer = make()
    assert isinstance(layer, nn.Module) and layer.params == {} and layer.grads == {}
    assert layer.eval() is layer and not layer.training
    x = np.random.default_rng(0).standard_normal((4, 3, 6)).astype(dtype)
    assert layer.forward(x) is x and layer.backward(x) is x
    assert layer.train() is layer and layer.training
    y1 = layer.forward(x)
    assert y1.dtype == dtype and y1.shape == x.shape and not np.array_equal(y1, x)
    dx = layer.backward(np.ones_like(x))
    assert dx.dtype == dtype and dx.shape == x.shape
    y2 = layer.forward(x)
    assert not np.array_equal(y1, y2)            # a fresh mask every step
    layer.reseed(1)
    assert np.array_equal(bits_of(layer.forward(x)), bits_of(y1))   # one seed replays the run
    assert "rate=0.4" in repr(layer)


def test_layer_uses_stream_like_functional():
    x = np.random.default_rng(0).standard_normal((4, 3, 6))
    layer = SpatialDropout(0.5, seed=9)
    stream = cydrop.SeedStream(9)
    for _ in range(3):
        s, o = stream.next(12)
        assert np.array_equal(layer.forward(x), V.spatial_dropout(x, 0.5, seed=s, offset=o)[0])


def test_gaussian_layer_rejects_rate_one():
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate < 1"):
        GaussianDropout(1.0)
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1, got -0\.1"):
        AlphaDropout(-0.1)


def test_dropconnect_dense_masks_weights():
    layer = DropConnectDense(6, 4, 0.5, seed=0, mask_seed=3)
    assert sorted(layer.params) == ["W", "b"]
    x = np.random.default_rng(1).standard_normal((5, 6))
    s, o = cydrop.SeedStream(3).next(24)
    out = layer.forward(x)
    want, _ = V.dropconnect_forward(x, layer.params["W"], layer.params["b"], 0.5, seed=s, offset=o)
    assert np.array_equal(out, want)
    layer.backward(np.ones((5, 4)))
    assert layer.grads["W"].shape == (6, 4) and layer.grads["b"].shape == (4,)
    layer.eval()
    assert np.allclose(layer.forward(x), x @ layer.params["W"] + layer.params["b"])


def _model(seed=0):
    return nn.Sequential(
        DropConnectDense(6, 10, 0.3, seed=seed, mask_seed=seed + 1, weight_l2=0.01),
        nn.ReLU(),
        ExactKDropout(0.2, seed=seed + 2),
        AlphaDropout(0.2, seed=seed + 3),
        GaussianDropout(0.2, seed=seed + 4),
        BroadcastDropout(0.2, broadcast_axes=(), seed=seed + 5),
        nn.Dense(10, 3, seed=seed + 6),
    )


def _reseed_all(model, seed):
    for i, layer in enumerate(model.layers):
        if hasattr(layer, "mask_seed"):
            layer.reseed(seed + i)
        elif hasattr(layer, "reseed"):
            layer.reseed(seed + i)


def test_sequential_numerical_gradient():
    model = _model()
    X = np.random.default_rng(2).standard_normal((7, 6))
    y = np.array([0, 1, 2, 0, 1, 2, 0])

    def loss_at(_):
        _reseed_all(model, 100)                  # the same masks at every evaluation
        return model.loss(X, y)[0]

    _reseed_all(model, 100)
    _, grads = model.loss(X, y)
    grads = {k: v.copy() for k, v in grads.items()}
    for name, p in model.params.items():
        num = eval_numerical_gradient(loss_at, p, h=1e-6)
        assert rel_error(grads[name], num) < 1e-6, name


def test_sequential_trains_with_variant_layers():
    model = _model()
    X = np.random.default_rng(3).standard_normal((64, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    opt = nn.Adam(learning_rate=1e-2)
    first = model.loss(X, y)[0]
    for _ in range(60):
        _, grads = model.loss(X, y)
        opt.step(model.params, grads)
    assert model.loss(X, y)[0] < first


# ------------------------------------------------------------------ MC dropout

def _mlp():
    return nn.Sequential(nn.Dense(5, 16, seed=0), nn.ReLU(), nn.Dropout(0.5, seed=1),
                         nn.Dense(16, 3, seed=2))


def test_mc_predict_reproducible_per_sample():
    model = _mlp()
    X = np.random.default_rng(0).standard_normal((6, 5))
    a = V.mc_predict(model, X, 5, seed=42, return_samples=True)
    b = V.mc_predict(model, X, 5, seed=42, return_samples=True)
    assert np.array_equal(a.samples, b.samples) and a.samples.shape == (5, 6, 3)
    f = V.SequentialMC(model)
    for s in range(5):
        assert np.array_equal(f(X, V.mc_sample_seed(42, s)), a.samples[s])
    assert np.allclose(a.mean, a.samples.mean(0)) and np.allclose(a.std, a.samples.std(0))
    assert model.training                        # the model's mode is restored


def test_mc_fixed_mask_shares_mask_across_inputs():
    model = _mlp()
    X = np.repeat(np.random.default_rng(0).standard_normal((1, 5)), 4, axis=0)
    res = V.mc_predict(model, X, 6, seed=1, fixed_mask=True, return_samples=True)
    assert (res.samples == res.samples[:, :1]).all()          # identical rows, identical outputs
    free = V.mc_predict(model, X, 6, seed=1, return_samples=True)
    assert not (free.samples == free.samples[:, :1]).all()


def test_mc_fixed_mask_native_equals_generic_rowwise():
    model = _mlp()
    X = np.random.default_rng(4).standard_normal((5, 5))
    f = V.SequentialMC(model)
    native = V.mc_predict(f, X, 4, seed=7, fixed_mask=True, return_samples=True)
    generic = V.mc_predict(lambda X_, s, o: f(X_, s, o), X, 4, seed=7, fixed_mask=True,
                           return_samples=True)
    # the same masks; values agree up to BLAS rounding (gemm on a batch vs one row)
    assert np.allclose(native.samples, generic.samples, rtol=1e-12, atol=1e-12)


def test_mc_with_variant_layers():
    model = nn.Sequential(DropConnectDense(5, 8, 0.3, seed=0), nn.ReLU(), AlphaDropout(0.2),
                          GaussianDropout(0.2), nn.Dense(8, 3, seed=1))
    X = np.random.default_rng(0).standard_normal((4, 5))
    a = V.mc_predict(model, X, 3, seed=3, return_samples=True)
    b = V.mc_predict(model, X, 3, seed=3, return_samples=True)
    assert np.array_equal(a.samples, b.samples) and (a.std > 0).all()
    Xr = np.repeat(X[:1], 3, axis=0)
    c = V.mc_predict(model, Xr, 3, seed=3, fixed_mask=True, return_samples=True)
    assert (c.samples == c.samples[:, :1]).all()


def test_mc_generic_callable():
    W = np.random.default_rng(0).standard_normal((4, 2))

    def f(X, seed, offset):
        h, _ = V.dropout_nd(X, 0.5, seed=seed, offset=offset)
        return h @ W

    X = np.ones((3, 4))
    res = V.mc_predict(f, X, 50, seed=0)
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
        res = V.mc_predict(model, X[te], 30, seed=1, transform="softmax")
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
