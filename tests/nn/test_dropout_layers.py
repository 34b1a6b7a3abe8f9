"""The dropout layers of cydrop.nn.dropout (and DropConnectDense) in Sequential."""

import numpy as np
import pytest

import cydrop
import cydrop.variants as V
from cydrop import nn
from cydrop.nn import (
    AlphaDropout,
    BroadcastDropout,
    DropConnectDense,
    ExactKDropout,
    GaussianDropout,
    LockedDropout,
    SpatialDropout,
)
from cydrop.nn.gradcheck import eval_numerical_gradient, rel_error

from helpers import bits_of

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


def test_variants_layers_module_is_a_deprecated_alias():
    import importlib
    import sys

    sys.modules.pop("cydrop.variants_layers", None)
    with pytest.deprecated_call(match="cydrop.variants_layers is deprecated"):
        old = importlib.import_module("cydrop.variants_layers")
    for name in old.__all__:
        assert getattr(old, name) is getattr(nn, name)
    assert issubclass(GaussianDropout, nn.DropoutBase) and issubclass(nn.Dropout, nn.DropoutBase)
    assert issubclass(DropConnectDense, nn.Dense)
