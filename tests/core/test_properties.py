"""Property-based tests (hypothesis): the kernels against cydrop.reference over generated
shapes (0-d, empty, up to ~20k elements), layouts (slices, negative strides, transposes), both
dtypes, rates, seeds and offsets (up to 2**64 - size)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import cydrop
from cydrop.testing import reference

from helpers import bits_of

SETTINGS = settings(deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

dtypes = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])
rates = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 2**-17, 1 - 2**-17]),
                  st.floats(0.0, 1.0, allow_nan=False))
seeds = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 1]),
                  st.integers(0, 2**64 - 1))
shapes = st.one_of(st.just(()), hnp.array_shapes(min_dims=1, max_dims=3, min_side=0,
                                                 max_side=40),
                   st.tuples(st.integers(0, 20_000)))
modes = st.sampled_from(["recompute", "bits", "bytes"])


@st.composite
def offsets(draw, size):
    kind = draw(st.sampled_from(["small", "block-edge", "2**32", "top"]))
    if kind == "small":
        return draw(st.integers(0, 10_000))
    if kind == "block-edge":
        return draw(st.integers(1, 2**40)) * 4096 + draw(st.integers(-33, 33)) % 4096
    if kind == "2**32":
        return 2**32 + draw(st.integers(-5000, 5000))
    return 2**64 - max(size, 1) - draw(st.integers(0, 5000))


@st.composite
def layouts(draw, dtype):
    """An array with the drawn shape, possibly a strided / reversed / transposed view."""
    shape = draw(shapes)
    view = draw(st.sampled_from(["contiguous", "reversed", "step", "transpose", "fortran"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if view == "step" and len(shape) >= 1:
        base = rng.standard_normal(shape[:-1] + (shape[-1] * 2,)).astype(dtype)
        return base[..., ::2]
    x = rng.standard_normal(shape).astype(dtype)
    if draw(st.booleans()) and x.size:
        x.flat[rng.integers(0, x.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -0.0]))
    if view == "reversed" and x.ndim:
        return x[::-1]
    if view == "transpose":
        return x.T
    if view == "fortran":
        return np.asfortranarray(x)
    return x


@SETTINGS
@given(data=st.data(), dtype=dtypes, rate=rates, seed=seeds, mode=modes)
def test_forward_and_backward_equal_the_reference(data, dtype, rate, seed, mode):
    x = data.draw(layouts(dtype))
    offset = data.draw(offsets(x.size))
    before = x.copy()
    y, c = cydrop.dropout(x, rate, seed=seed, offset=offset, mask=mode)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_array_equal(bits_of(x), bits_of(before))           # input untouched
    expected = reference.dropout(np.ascontiguousarray(x), rate, seed, offset)
    np.testing.assert_array_equal(bits_of(y), bits_of(expected))
    # backward is the forward's mask and scale applied to dout
    dout = np.random.default_rng(seed % 997).standard_normal(x.shape).astype(dtype)
    dx = cydrop.dropout_backward(dout, c)
    if rate == 0.0:
        assert dx is dout
    else:
        np.testing.assert_array_equal(
            bits_of(dx), bits_of(reference.dropout_backward(dout, rate, seed, offset)))
        keep = c.keep_mask().astype(bool)
        np.testing.assert_array_equal(
            keep.reshape(-1), reference.keep_mask(x.size, rate, seed, offset))


@SETTINGS
@given(dtype=dtypes, rate=st.floats(0.01, 1.0), seed=seeds, n=st.integers(0, 30_000),
       data=st.data())
def test_all_mask_modes_agree_and_masks_match_dropout_mask(dtype, rate, seed, n, data):
    offset = data.draw(offsets(n))
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    dout = np.random.default_rng(n + 1).standard_normal(n).astype(dtype)
    results = []
    for mode in ("recompute", "bits", "bytes"):
        y, c = cydrop.dropout(x, rate, seed=seed, offset=offset, mask=mode)
        results.append((bits_of(y), bits_of(cydrop.dropout_backward(dout, c)), c.keep_mask()))
    for got in results[1:]:
        for a, b in zip(got, results[0]):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][2],
                                  cydrop.dropout_mask(n, rate, seed=seed, offset=offset))


@SETTINGS
@given(dtype=dtypes, rate=st.floats(0.0, 1.0), seed=seeds,
       n=st.integers(1, 40_000), data=st.data())
def test_chunked_equals_whole(dtype, rate, seed, n, data):
    offset = data.draw(offsets(n))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, n), max_size=5))) | {0, n})
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    whole, _ = cydrop.dropout(x, rate, seed=seed, offset=offset)
    parts = [cydrop.dropout(x[a:b], rate, seed=seed, offset=offset + a)[0]
             for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(bits_of(np.concatenate(parts)), bits_of(whole))
    m = cydrop.dropout_mask(n, rate, seed=seed, offset=offset)
    mparts = [cydrop.dropout_mask(b - a, rate, seed=seed, offset=offset + a)
              for a, b in zip(cuts[:-1], cuts[1:])]
    np.testing.assert_array_equal(np.concatenate(mparts), m)


@SETTINGS
@given(dtype=dtypes, rate=st.floats(0.0, 1.0), seed=seeds, n=st.integers(0, 70_000),
       n_threads=st.sampled_from([1, 2, 3, -1]), inplace=st.booleans(), mode=modes)
def test_threads_out_and_inplace_do_not_change_bits(dtype, rate, seed, n, n_threads, inplace,
                                                    mode):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    ref, _ = cydrop.dropout(x, rate, seed=seed, n_threads=1)
    if inplace:
        work = x.copy()
        y, c = cydrop.dropout(work, rate, seed=seed, inplace=True, n_threads=n_threads,
                              mask=mode)
        assert y is work
    else:
        out = np.empty_like(x)
        y, c = cydrop.dropout(x, rate, seed=seed, out=out, n_threads=n_threads, mask=mode)
        assert y is out or (rate == 0.0 and np.array_equal(out, x))
    np.testing.assert_array_equal(bits_of(y), bits_of(ref))
    dout = x.copy()
    dx = cydrop.dropout_backward(dout, c, inplace=inplace, n_threads=n_threads)
    np.testing.assert_array_equal(bits_of(dx), bits_of(ref))


@SETTINGS
@given(keep=st.floats(0.0, 1.0), seed=seeds, shape=shapes, dtype=dtypes)
def test_cs231n_form_equals_rate_form(keep, seed, shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    a, ca = cydrop.dropout_forward(x, {"mode": "train", "p": keep, "seed": seed})
    b, cb = cydrop.dropout(x, 1.0 - keep, seed=seed)
    np.testing.assert_array_equal(bits_of(a), bits_of(b))
    t, _ = cydrop.dropout_forward(x, {"mode": "test", "p": keep})
    assert t is x
