"""Sequential's fused Dense -> ReLU -> Dropout path trains exactly like the layer-by-layer one."""

import numpy as np
import pytest

from cydrop.nn import SGD, Adam, Dense, Dropout, FusedDenseReLUDropout, ReLU, Sequential


def _model(fuse, dtype, seed=0):
    return Sequential(Dense(20, 32, dtype=dtype, seed=seed), ReLU(), Dropout(0.3, seed=seed + 1),
                      Dense(32, 16, dtype=dtype, seed=seed + 2), ReLU(),
                      Dense(16, 16, dtype=dtype, seed=seed + 3), ReLU(),
                      Dropout(0.5, seed=seed + 4),
                      Dense(16, 4, dtype=dtype, seed=seed + 5), fuse=fuse)


@pytest.mark.parametrize("opt_cls", [SGD, Adam])
def test_fused_and_unfused_training_runs_are_identical(dtype, opt_cls):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 20)).astype(dtype)
    y = rng.integers(0, 4, 64)
    runs = []
    for fuse in (True, False):
        model = _model(fuse, dtype)
        assert len(model.steps()) == (4 if fuse else 9)
        opt = opt_cls(learning_rate=0.05)
        losses = []
        for step in range(6):
            loss, grads = model.loss(X[step * 8:step * 8 + 32], y[step * 8:step * 8 + 32])
            opt.step(model.params, grads)
            losses.append(loss)
        runs.append((losses, {k: v.copy() for k, v in model.params.items()},
                     model.eval().forward(X)))
    (l1, p1, s1), (l2, p2, s2) = runs
    assert l1 == l2
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k], err_msg=k)
    np.testing.assert_array_equal(s1, s2)


def test_backward_input_grad_false_skips_only_the_input_gradient():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 20))
    model = _model(True, np.float64).eval()
    dout = rng.standard_normal((8, 4))
    model.forward(X)
    dx = model.backward(dout)
    full = {k: v.copy() for k, v in model.grads.items()}
    model.forward(X)
    assert model.backward(dout, input_grad=False) is None
    for k, v in model.grads.items():
        np.testing.assert_array_equal(v, full[k])
    assert dx.shape == X.shape


def test_float64_input_into_a_float32_model_matches_unfused():
    X = np.random.default_rng(2).standard_normal((5, 20))
    fused = _model(True, np.float32).eval().forward(X)
    plain = _model(False, np.float32).eval().forward(X)
    assert fused.dtype == plain.dtype
    np.testing.assert_array_equal(fused, plain)


def test_reseed_reaches_variant_layers():
    from cydrop.nn import GaussianDropout
    net = Sequential(Dense(4, 4, seed=0), GaussianDropout(0.3, seed=1), Dense(4, 2, seed=2))
    X = np.ones((3, 4))
    net.reseed(5)
    a = net.forward(X)
    net.reseed(5)
    b = net.forward(X)
    net.reseed(6)
    c = net.forward(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_predict_with_mc_samples_is_reproducible_and_spreads():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((10, 20))
    model = _model(True, np.float64)
    a = model.predict(X, mc_samples=8, seed=11)
    b = model.predict(X, mc_samples=8, seed=11)
    np.testing.assert_array_equal(a.mean, b.mean)
    assert a.mean.shape == (10, 4) and a.std.shape == (10, 4)
    np.testing.assert_allclose(a.mean.sum(axis=1), 1.0)
    assert (a.std > 0).any()                              # dropout was active
    assert model.training                                 # mode restored
    assert model.predict(X).shape == (10,)


def test_steps_are_fused_modules_over_the_layers():
    model = _model(True, np.float64)
    steps = model.steps()
    assert [type(s).__name__ for s in steps] == ["FusedDenseReLUDropout", "FusedDenseReLUDropout",
                                                 "FusedDenseReLUDropout", "Dense"]
    assert steps[0].children() == tuple(model.layers[:3])
    assert steps[1].children() == tuple(model.layers[3:5])


class _PlainDense(Dense):
    """Keeps Dense's forward and backward: fuses."""


class _ScaledReLU(ReLU):
    """Computes something else: must not fuse."""

    def forward(self, x):
        return 2.0 * super().forward(x)

    def backward(self, dout):
        return 2.0 * super().backward(dout)


def test_fusion_roles_follow_forward_and_backward():
    assert (Dense.fusion, ReLU.fusion, Dropout.fusion) == ("dense", "relu", "dropout")
    assert _PlainDense.fusion == "dense" and _ScaledReLU.fusion is None

    class OwnMask(Dropout):
        def _apply(self, x, seed, offset, fixed_mask):      # another mask: must not fuse
            return super()._apply(x, seed, offset, fixed_mask)

    class Declared(OwnMask):
        fusion = "dropout"                                   # declared again: fuses
    assert OwnMask.fusion is None and Declared.fusion == "dropout"
    from cydrop.nn import DropConnectDense
    assert DropConnectDense.fusion is None
    X = np.random.default_rng(5).standard_normal((4, 3))
    net = Sequential(_PlainDense(3, 5, seed=0), _ScaledReLU(), Dense(5, 2, seed=1))
    assert len(net.steps()) == 3                       # nothing fused: the ReLU opted out
    plain = Sequential(_PlainDense(3, 5, seed=0), _ScaledReLU(), Dense(5, 2, seed=1), fuse=False)
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    net = Sequential(_PlainDense(3, 5, seed=0), ReLU(), Dense(5, 2, seed=1))
    assert isinstance(net.steps()[0], FusedDenseReLUDropout)


def test_fused_module_refuses_layers_without_the_role():
    with pytest.raises(TypeError, match=r"relu must be a cydrop.nn layer with fusion == 'relu', "
                                        r"got _ScaledReLU \(fusion == None\)"):
        FusedDenseReLUDropout(Dense(2, 2), _ScaledReLU())
    with pytest.raises(RuntimeError, match="backward called before forward"):
        FusedDenseReLUDropout(Dense(2, 2), ReLU()).backward(np.ones((1, 2)))


def test_fused_masks_advance_the_dropout_stream_as_unfused():
    X = np.random.default_rng(6).standard_normal((8, 20))
    fused_model, plain_model = _model(True, np.float64), _model(False, np.float64)
    for _ in range(3):
        fused_model.forward(X)
        plain_model.forward(X)
    for a, b in zip(fused_model.dropout_layers(), plain_model.dropout_layers()):
        assert a._stream.get_state() == b._stream.get_state()
