"""cydrop.dropout_forward / dropout_backward as a drop-in for CS231n assignment 2.

The first tests are the notebook's own checks ("Dropout: forward" and "Dropout: backward"),
run against cydrop.
"""

import numpy as np
import pytest

import cydrop
from cydrop.nn.gradcheck import eval_numerical_gradient_array, rel_error


@pytest.mark.parametrize("p", [0.25, 0.4, 0.7])
def test_notebook_forward_check(p):
    x = np.random.default_rng(231).standard_normal((500, 500)) + 10
    out, _ = cydrop.dropout_forward(x, {"mode": "train", "p": p, "seed": 123})
    out_test, _ = cydrop.dropout_forward(x, {"mode": "test", "p": p})
    assert abs(out.mean() - 10) < 0.05                       # "Mean of train-time output"
    assert abs((out == 0).mean() - (1 - p)) < 0.005          # "Fraction ... set to zero"
    assert out_test is x                                     # test mode: x exactly
    assert (out_test == x).all()


def test_notebook_backward_gradient_check():
    rng = np.random.default_rng(231)
    x = rng.standard_normal((10, 10)) + 10
    dout = rng.standard_normal(x.shape)
    param = {"mode": "train", "p": 0.2, "seed": 123}
    _, cache = cydrop.dropout_forward(x, param)
    dx = cydrop.dropout_backward(dout, cache)
    dx_num = eval_numerical_gradient_array(lambda xx: cydrop.dropout_forward(xx, param)[0],
                                           x, dout)
    assert rel_error(dx, dx_num) < 1e-8
    assert (dx == 0).any()


def test_test_mode_backward_returns_dout():
    x = np.ones((3, 4))
    _, cache = cydrop.dropout_forward(x, {"mode": "test", "p": 0.5})
    dout = np.arange(12.0).reshape(3, 4)
    assert cydrop.dropout_backward(dout, cache) is dout


def test_p_is_the_keep_probability_and_matches_rate():
    x = np.ones(200_000, dtype=np.float32)
    out, cache = cydrop.dropout_forward(x, {"mode": "train", "p": 0.8, "seed": 5})
    assert abs((out != 0).mean() - 0.8) < 0.005
    assert cache.rate == pytest.approx(0.2)
    same, _ = cydrop.dropout(x, 0.2, seed=5)
    np.testing.assert_array_equal(out, same)


def test_same_seed_same_mask_without_seed_fresh_masks():
    x = np.ones(10_000)
    a, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})
    b, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1})
    c, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5})
    d, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(a, b)
    assert (c != d).any()


def test_cydrop_extension_keys():
    x = np.ones(9000)
    out, cache = cydrop.dropout_forward(
        x, {"mode": "train", "p": 0.5, "seed": 1, "offset": 7, "mask": "bytes", "n_threads": 1})
    assert cache.mask_mode == "bytes" and cache.offset == 7
    np.testing.assert_array_equal(out, cydrop.dropout(x, 0.5, seed=1, offset=7)[0])


@pytest.mark.parametrize("param, exc, match", [
    ({"mode": "train", "p": 0.5, "keep": 0.5}, ValueError,
     r"dropout_param has unknown keys \['keep'\]; allowed keys are \['mode', 'p', 'seed'"),
    ({"mode": "eval", "p": 0.5}, ValueError,
     r"Invalid forward dropout mode 'eval'; dropout_param\['mode'\] must be 'train' or 'test'"),
    ({"p": 0.5}, ValueError, r"dropout_param must have a 'mode' key"),
    ({"mode": "train"}, ValueError, r"must have a 'p' key \(the KEEP probability\)"),
    ({"mode": "train", "p": 1.2}, ValueError,
     r"dropout_param\['p'\] must satisfy 0 <= dropout_param\['p'\] <= 1, got 1\.2"),
    ({"mode": "train", "p": -0.2}, ValueError, r"got -0\.2"),
    ({"mode": "train", "p": float("nan")}, ValueError, r"got nan"),
    ({"mode": "train", "p": 0.5, "seed": -4}, ValueError, r"seed must satisfy .* got -4"),
    ({"mode": "train", "p": 0.5, "seed": "x"}, TypeError, r"seed must be an int"),
    ([("mode", "train")], TypeError, r"dropout_param must be a dict, got list"),
])
def test_bad_dropout_param(param, exc, match):
    x = np.arange(6.0)
    with pytest.raises(exc, match=match):
        cydrop.dropout_forward(x, param)
    np.testing.assert_array_equal(x, np.arange(6.0))
