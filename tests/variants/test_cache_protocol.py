"""One cache protocol: every cache cydrop makes is a cydrop._cache.Cache with the same surface,
and keep_mask() means the same thing for all of them."""

import pickle

import numpy as np
import pytest

import cydrop
import cydrop.variants as V
from cydrop import _cache, fused

SHAPE = (6, 50)


def _ones(shape=SHAPE):
    return np.ones(shape, np.float32)


def _cases():
    """(name, output, cache, where the output shows a drop) for every op that makes a cache."""
    x = _ones()
    W, b = _ones((50, 7)), np.zeros(7, np.float32)
    yield ("dropout", *cydrop.dropout(x, 0.4, seed=3, offset=5), lambda y: y == 0)
    yield ("dropout-bits", *cydrop.dropout(x, 0.4, seed=3, mask="bits"), lambda y: y == 0)
    yield ("dropout-identity", *cydrop.dropout(x, 0.4, training=False), lambda y: y == 0)
    yield ("cs231n", *cydrop.dropout_forward(x, {"mode": "train", "p": 0.6, "seed": 3}),
           lambda y: y == 0)
    yield ("fused", *fused.bias_relu_dropout(x, np.zeros(50, np.float32), 0.4, seed=3,
                                             offset=2), lambda y: y == 0)
    yield ("fused-identity", *fused.bias_relu_dropout(x, np.zeros(50, np.float32), 0.4,
                                                      training=False), lambda y: y == 0)
    yield ("nd", *V.dropout_nd(x, 0.4, broadcast_axes=0, seed=3, offset=1),
           lambda y: (y == 0)[:1])
    yield ("exact_k", *V.exact_k_dropout(x, 0.4, seed=3), lambda y: y == 0)
    alpha_y, alpha_c = V.alpha_dropout(x, 0.4, seed=3, offset=9)
    dropped_value = alpha_y.min()
    yield ("alpha", alpha_y, alpha_c, lambda y: y == dropped_value)
    yield ("gaussian", *V.gaussian_dropout(x, 0.4, seed=3), lambda y: np.zeros(y.shape, bool))
    yield ("identity", *V.alpha_dropout(x, 0.4, training=False), lambda y: y == 0)
    # DropConnect masks the weights: with x = ones and b = 0, output column m sums the kept,
    # scaled weights of column m, so compare against the mask through the matrix product
    y, c = V.dropconnect_forward(x, W, b, 0.4, seed=3, offset=4)
    yield ("dropconnect", y, c, None)


CASES = list(_cases())


@pytest.mark.parametrize("name, y, cache, dropped", CASES, ids=[c[0] for c in CASES])
def test_every_cache_has_the_common_surface(name, y, cache, dropped):
    assert isinstance(cache, _cache.Cache)
    assert isinstance(cache.rate, float) and 0.0 <= cache.rate <= 1.0
    assert (cache.seed is None) == (cache.offset is None)
    assert tuple(cache.shape) == SHAPE and np.dtype(cache.dtype) == np.float32
    assert isinstance(cache.nbytes, int) and cache.nbytes >= 0
    mshape = _cache.mask_shape(cache)
    keep = cache.keep_mask()
    assert type(keep) is np.ndarray and keep.dtype == np.uint8 and keep.shape == mshape
    assert set(np.unique(keep).tolist()) <= {0, 1}
    keep[...] = 7                                      # a new array every call
    assert set(np.unique(cache.keep_mask()).tolist()) <= {0, 1}
    keep = cache.keep_mask()
    if cache.seed is None:
        assert keep.all()
    if dropped is not None:
        assert np.array_equal(keep == 0, dropped(np.asarray(y))), name
    else:
        W_eff = cache.W_eff
        assert np.array_equal(keep == 0, W_eff == 0)


@pytest.mark.parametrize("name, y, cache, dropped", CASES, ids=[c[0] for c in CASES])
def test_every_cache_pickles_through_a_validating_restorer(name, y, cache, dropped):
    c2 = pickle.loads(pickle.dumps(cache))
    assert type(c2) is type(cache) and repr(c2) == repr(cache)
    assert np.array_equal(c2.keep_mask(), cache.keep_mask())
    if not isinstance(cache, cydrop.DropoutCache):
        restorer, args = cache.__reduce__()
        assert restorer is _cache.restore
        with pytest.raises(TypeError, match="fields"):
            _cache.restore(args[0], args[1][:-1])
    with pytest.raises(TypeError, match="cannot restore"):
        _cache.restore(dict, ())


def test_check_cache_names_the_types_and_the_forward_call():
    with pytest.raises(TypeError, match=r"cache must be the FusedCache or VariantCache returned "
                                        r"by somewhere, got list"):
        _cache.check_cache([], (_cache.FusedCache, _cache.VariantCache), "somewhere")
    _, c = cydrop.dropout(_ones(), 0.5, seed=1)
    st = _cache.check_cache(c, (cydrop.DropoutCache,), "cydrop.dropout")
    assert (st.thr, st.scale) == (c.threshold, c.scale)


def test_cache_type_is_checked_before_its_state():
    _, c = V.alpha_dropout(_ones(), 0.3, seed=1)
    with pytest.raises(TypeError, match="cache must be the FusedCache"):
        fused.bias_relu_dropout_backward(_ones(), c)
    with pytest.raises(TypeError, match="cache must be the DropoutCache"):
        cydrop.dropout_backward(_ones(), c)


@pytest.mark.parametrize("name", ["mc_predict", "mc_sample_seed", "MCPrediction",
                                  "SequentialMC"])
def test_mc_dropout_left_the_op_layer_with_a_pointer(name):
    with pytest.raises(AttributeError, match=rf"moved to cydrop\.nn\.{name}"):
        getattr(V, name)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = V.nothing


def test_restorers_of_cydrop_0_1_pickles_still_validate():
    # pickles written by 0.1 name cydrop.fused._restore_fused_cache and
    # cydrop.dask._restore_cache: they load through the same validation
    x = _ones()
    a, c = fused.bias_relu_dropout(x, np.zeros(50, np.float32), 0.4, seed=3)
    c2 = fused._restore_fused_cache(c.out, c.scale, c.rate, c.seed, c.offset)
    assert repr(c2) == repr(c)
    with pytest.raises(ValueError, match="cache scale must follow"):
        fused._restore_fused_cache(c.out, 3.0, c.rate, c.seed, c.offset)
    cd = pytest.importorskip("cydrop.dask")
    c3 = cd._restore_cache(0.5, 1, 0, (4, 4), np.dtype(np.float32), "recompute")
    assert isinstance(c3, _cache.Cache) and c3.keep_mask().shape == (4, 4)
    with pytest.raises(ValueError, match="cache seed"):
        cd._restore_cache(0.5, -1, 0, (4, 4), np.dtype(np.float32), "recompute")


def test_the_oracles_load_on_first_use_only():
    import cydrop.reference
    import cydrop.testing.reference as ref
    assert cydrop.reference is ref and cydrop.reference.dropout is ref.dropout
