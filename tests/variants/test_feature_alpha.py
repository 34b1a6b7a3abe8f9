"""cydrop.feature_alpha_dropout: channel-wise alpha dropout, bit for bit its NumPy twin."""

import pickle

import numpy as np
import pytest

import cydrop
from cydrop.testing import reference_feature_alpha as R
from cydrop.variants import alpha_dropout, dropout_nd


def _x(shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3), (3, 5, 7), (2, 4, 3, 5), (2, 2, 2, 3, 70), (0, 3, 2)])
@pytest.mark.parametrize("rate", [0.2, 0.5, 0.9, 1.0])
def test_matches_reference(dtype, shape, rate):
    x = _x(shape, dtype)
    y, cache = cydrop.feature_alpha_dropout(x, rate, seed=11, offset=7)
    yr, keep = R.feature_alpha_dropout(x, rate, 11, 7)
    assert y.dtype == dtype and y.tobytes() == yr.tobytes()
    assert np.array_equal(cache.keep_mask(), keep.astype(np.uint8))
    g = _x(shape, dtype, seed=1)
    dx = cydrop.feature_alpha_dropout_backward(g, cache, n_threads=2)
    assert dx.tobytes() == R.feature_alpha_dropout_backward(g, rate, 11, 7).tobytes()


def test_whole_channels_share_one_decision_and_the_nd_mask():
    x = _x((4, 6, 5, 5))
    y, cache = cydrop.feature_alpha_dropout(x, 0.5, seed=3)
    _, nd = dropout_nd(x, 0.5, broadcast_axes=(2, 3), seed=3)
    assert np.array_equal(cache.keep, nd.keep)          # the same mask as channel dropout
    dropped = cache.keep[..., 0, 0] == 0
    assert dropped.any() and (~dropped).any()
    assert np.all(y[dropped] == y[dropped][0, 0, 0])     # every dropped unit is c


def test_elementwise_noise_shape_equals_alpha_dropout():
    x = _x((3, 4, 9), np.float32)
    y, _ = cydrop.feature_alpha_dropout(x, 0.3, noise_shape=x.shape, seed=5, offset=4096)
    assert y.tobytes() == alpha_dropout(x, 0.3, seed=5, offset=4096)[0].tobytes()


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_threads_never_change_the_result(n_threads):
    x = _x((8, 64, 300), np.float32)
    ref, _ = cydrop.feature_alpha_dropout(x, 0.4, seed=9, n_threads=1)
    y, _ = cydrop.feature_alpha_dropout(x, 0.4, seed=9, n_threads=n_threads)
    assert y.tobytes() == ref.tobytes()


def test_identity_calls_and_cache():
    x = _x((2, 3, 4))
    for y, cache in (cydrop.feature_alpha_dropout(x, 0.5, training=False),
                     cydrop.feature_alpha_dropout(x, 0.0)):
        assert y is x and cache.seed is None and cache.nbytes == 0
        assert cydrop.feature_alpha_dropout_backward(x, cache) is x
        assert cache.keep_mask().shape == x.shape


def test_cache_pickles_and_is_checked():
    x = _x((3, 4, 2))
    _, cache = cydrop.feature_alpha_dropout(x, 0.5, seed=1)
    clone = pickle.loads(pickle.dumps(cache))
    g = np.ones_like(x)
    assert np.array_equal(cydrop.feature_alpha_dropout_backward(g, clone),
                          cydrop.feature_alpha_dropout_backward(g, cache))
    assert isinstance(cache, cydrop._cache.Cache) and cache.nbytes == 12
    with pytest.raises(TypeError, match="FeatureAlphaCache"):
        cydrop.feature_alpha_dropout_backward(g, cydrop.dropout(x, 0.5, seed=1)[1])
    with pytest.raises(ValueError, match="shape"):
        cydrop.feature_alpha_dropout_backward(g[:2], cache)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        cydrop.feature_alpha_dropout(np.ones(3), 0.5, seed=0)
    with pytest.raises(ValueError, match="rate"):
        cydrop.feature_alpha_dropout(np.ones((2, 2)), 1.5, seed=0)
    with pytest.raises(ValueError, match="noise_shape"):
        cydrop.feature_alpha_dropout(np.ones((2, 2)), 0.5, noise_shape=(2, 3), seed=0)
    with pytest.raises(TypeError):
        cydrop.feature_alpha_dropout(np.ones((2, 2), np.int32), 0.5, seed=0)
