"""Sharded masks: ``global_shape=`` / ``start=`` make a block of a global array get the bits of its
global indices, so any split of the array reproduces the whole call bit for bit."""
import itertools
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cydrop
from cydrop import _shard

from helpers import bits_of

MODES = ("recompute", "bits", "bytes")


def blocks(shape, cuts):
    """Every block of a split of ``shape``: ``cuts[k]`` are the inner cut points of axis k.
    Yields (start, index) pairs."""
    edges = [[0, *sorted(set(c)), n] for c, n in zip(cuts, shape)]
    spans = [list(zip(e[:-1], e[1:])) for e in edges]
    for combo in itertools.product(*spans):
        yield tuple(a for a, _ in combo), tuple(slice(a, b) for a, b in combo)


def _data(shape, dtype, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if x.size > 3:
        x.flat[[0, 1, 2]] = [np.nan, np.inf, -np.inf]     # a select, not a multiply
    return x


def check_split(shape, cuts, *, dtype=np.float64, rate=0.4, seed=11, offset=0, n_threads=1,
                modes=MODES):
    x = _data(shape, dtype)
    dout = _data(shape, dtype, seed=1)
    for mode in modes:
        y, cache = cydrop.dropout(x, rate, seed=seed, offset=offset, mask=mode,
                                  n_threads=n_threads)
        dx = cydrop.dropout_backward(dout, cache, n_threads=n_threads)
        keep = cache.keep_mask()
        for start, index in blocks(shape, cuts):
            xb = np.ascontiguousarray(x[index])
            yb, cb = cydrop.dropout(xb, rate, seed=seed, offset=offset, mask=mode,
                                    global_shape=shape, start=start, n_threads=n_threads)
            np.testing.assert_array_equal(bits_of(yb), bits_of(y[index]),
                                          err_msg=f"forward {mode} {start}")
            dxb = cydrop.dropout_backward(np.ascontiguousarray(dout[index]), cb,
                                          n_threads=n_threads)
            np.testing.assert_array_equal(bits_of(dxb), bits_of(dx[index]),
                                          err_msg=f"backward {mode} {start}")
            np.testing.assert_array_equal(cb.keep_mask(), keep[index])
            mb = cydrop.dropout_mask(xb.shape, rate, seed=seed, offset=offset,
                                     global_shape=shape, start=start, n_threads=n_threads)
            np.testing.assert_array_equal(mb, keep[index])


LAYOUTS = {
    "rows": ((12, 10), ([5],) + ([],)),
    "columns": ((12, 10), ([], [3, 7])),
    "uneven-2d": ((9, 13), ([2, 3, 8], [1, 6, 12])),
    "tiles-3d": ((5, 6, 7), ([2], [3], [1, 4])),
    "last-axis-3d": ((4, 5, 6), ([], [], [2])),
    "middle-axis-3d": ((4, 5, 6), ([], [1, 3], [])),
    "1d": ((50,), ([7, 30],)),
    "long-runs": ((6, 900), ([], [400])),      # runs over SHORT_RUN: one kernel call per run
    "wide-gaps": ((40, 3000), ([], [10])),     # short runs far apart: no gather
}


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_any_split_reproduces_the_whole_array(name, n_threads, dtype):
    shape, cuts = LAYOUTS[name]
    check_split(shape, cuts, dtype=dtype, n_threads=n_threads)


@pytest.mark.parametrize("offset", [0, 1, 4095, 2**40 + 3])
def test_offsets(offset):
    check_split((7, 11, 5), ([3], [4, 9], [2]), offset=offset, rate=0.25)


@pytest.mark.parametrize("rate", [1e-3, 0.5, 0.9, 1.0])
def test_rates(rate):
    check_split((10, 10), ([4], [5]), rate=rate)


def test_both_paths_and_the_fast_path_are_taken():
    def block(shape, start, g):
        return _shard.block_args(g, start, shape, 0)[0]
    assert block((3, 10), (2, 0), (8, 10)) is None                 # whole rows: one run
    assert block((1, 4), (2, 3), (8, 10)) is None                  # part of one row
    assert block((2, 1, 6), (0, 0, 0), (4, 1, 6)) is None          # full after a unit axis
    assert block((8, 4), (0, 3), (8, 10)).gathers()                # short runs close together
    assert not block((6, 400), (0, 0), (6, 900)).gathers()         # long runs: one call each
    assert not block((40, 10), (0, 0), (40, 3000)).gathers()       # far apart: one call each


def test_large_blocks_use_threads_and_agree():
    # big enough for the OpenMP team on the gather path's covering mask and apply step
    shape = (700, 400)
    check_split(shape, ([], [200]), dtype=np.float32, n_threads=2, modes=("recompute",))
    check_split(shape, ([350], [100]), dtype=np.float32, n_threads=2, modes=("bits",))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_random_splits(data):
    ndim = data.draw(st.integers(1, 4), label="ndim")
    shape = tuple(data.draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim),
                            label="shape"))
    cuts = [data.draw(st.lists(st.integers(1, n - 1), max_size=3), label=f"cuts{k}")
            if n > 1 else [] for k, n in enumerate(shape)]
    offset = data.draw(st.sampled_from([0, 5, 2**63]), label="offset")
    rate = data.draw(st.sampled_from([0.1, 0.5, 0.75]), label="rate")
    mode = data.draw(st.sampled_from(MODES), label="mode")
    threads = data.draw(st.sampled_from([1, 2]), label="n_threads")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    check_split(shape, cuts, dtype=dtype, rate=rate, offset=offset, n_threads=threads,
                modes=(mode,))


def test_zero_d_and_empty_blocks():
    x = np.array(3.0)
    y, _ = cydrop.dropout(x, 0.5, seed=2, global_shape=(), start=())
    np.testing.assert_array_equal(y, cydrop.dropout(x, 0.5, seed=2)[0])
    for shape, g, start in [((0, 4), (5, 8), (2, 1)), ((3, 0), (5, 8), (1, 8))]:
        for mode in MODES:
            yb, cb = cydrop.dropout(np.ones(shape), 0.5, seed=2, global_shape=g, start=start,
                                    mask=mode)
            assert yb.shape == shape
            assert cydrop.dropout_backward(np.ones(shape), cb).shape == shape
        assert cydrop.dropout_mask(shape, 0.5, seed=2, global_shape=g, start=start).shape == shape


def test_out_inplace_and_mask_out():
    g, start, index = (10, 12), (2, 3), (slice(2, 7), slice(3, 9))
    x = _data(g, np.float64)
    y, cache = cydrop.dropout(x, 0.5, seed=4, offset=9)
    expected = y[index]
    xb = np.ascontiguousarray(x[index])
    out = np.full(xb.shape, 7.0)
    got, _ = cydrop.dropout(xb, 0.5, seed=4, offset=9, global_shape=g, start=start, out=out)
    assert got is out
    np.testing.assert_array_equal(bits_of(out), bits_of(expected))
    inp = xb.copy()
    got, cb = cydrop.dropout(inp, 0.5, seed=4, offset=9, global_shape=g, start=start,
                             inplace=True)
    assert got is inp
    np.testing.assert_array_equal(bits_of(inp), bits_of(expected))
    # backward in place, out=
    dout = np.ones(xb.shape)
    dx = cydrop.dropout_backward(dout, cb, inplace=True)
    assert dx is dout
    np.testing.assert_array_equal(dout, cache.keep_mask()[index] * cache.scale)
    for mode, size in (("bits", (30 + 7) // 8), ("bytes", (5, 6))):
        mask_out = np.zeros(size, dtype=np.uint8)
        _, cb = cydrop.dropout(xb, 0.5, seed=4, offset=9, global_shape=g, start=start,
                               mask=mode, mask_out=mask_out)
        np.testing.assert_array_equal(cb.keep_mask(), cache.keep_mask()[index])
        assert np.shares_memory(cb.stored_mask, mask_out)


def test_identity_calls_still_validate_the_block():
    x = np.ones((2, 3))
    for kwargs in ({"training": False}, {}):
        rate = 0.5 if kwargs else 0.0
        out, cache = cydrop.dropout(x, rate, seed=1, global_shape=(4, 6), start=(2, 3),
                                    **kwargs)
        assert out is x and cache.mask_mode == "identity"
        with pytest.raises(ValueError, match="start"):
            cydrop.dropout(x, rate, seed=1, global_shape=(4, 6), start=(3, 3), **kwargs)


def test_contiguous_blocks_get_an_ordinary_cache():
    x = np.ones((3, 10))
    _, cache = cydrop.dropout(x, 0.5, seed=1, offset=5, global_shape=(8, 10), start=(2, 0))
    assert type(cache) is cydrop.DropoutCache and cache.offset == 5 + 20
    _, cache = cydrop.dropout(x[:, :4].copy(), 0.5, seed=1, offset=5, global_shape=(8, 10),
                              start=(2, 6))
    assert type(cache) is _shard.ShardCache
    assert cache.global_shape == (8, 10) and cache.start == (2, 6) and cache.offset == 5
    assert "global_shape=(8, 10)" in repr(cache)


@pytest.mark.parametrize("mode", MODES)
def test_shard_cache_pickles_and_is_validated(mode):
    g, start, index = (9, 8), (1, 2), (slice(1, 6), slice(2, 5))
    x = _data(g, np.float32)
    _, whole = cydrop.dropout(x, 0.3, seed=8, mask=mode)
    _, cache = cydrop.dropout(np.ascontiguousarray(x[index]), 0.3, seed=8, mask=mode,
                              global_shape=g, start=start)
    back = pickle.loads(pickle.dumps(cache))
    assert type(back) is _shard.ShardCache
    dout = np.ones((5, 3), dtype=np.float32)
    np.testing.assert_array_equal(cydrop.dropout_backward(dout, back),
                                  cydrop.dropout_backward(dout, cache))
    np.testing.assert_array_equal(back.keep_mask(), whole.keep_mask()[index])
    assert cache.nbytes == (0 if mode == "recompute" else cache.stored_mask.nbytes)
    fields = list(cache.__reduce__()[1][1])
    bad = {"start": ((5, 2), ValueError, "cache start"),
           "global_shape": ([9, 8], TypeError, "cache global_shape must be a tuple"),
           "offset": (2**64 - 10, ValueError, "cache offset"),
           "rate": (0.0, ValueError, "cache rate"),
           "mask_mode": ("identity", ValueError, "cache mask_mode")}
    for name, (value, exc, match) in bad.items():
        state = list(fields)
        state[_shard.ShardCache._FIELDS.index(name)] = value
        with pytest.raises(exc, match=match):
            pickle.loads(pickle.dumps(_shard.ShardCache(*state)))
        with pytest.raises(exc, match=match):
            cydrop.dropout_backward(dout, _shard.ShardCache(*state))


BAD = [
    ({"global_shape": (4, 6)}, TypeError,
     r"global_shape and start must be given together \(or neither\): got global_shape=\(4, 6\) "
     r"with start=None"),
    ({"start": (0, 0)}, TypeError,
     r"global_shape and start must be given together \(or neither\): got start=\(0, 0\) with "
     r"global_shape=None"),
    ({"global_shape": (4, 6, 1), "start": (0, 0)}, ValueError,
     r"global_shape must have one entry per axis of x.shape \(2\), got \(4, 6, 1\)"),
    ({"global_shape": (4, 6), "start": (1,)}, ValueError,
     r"start must have one entry per axis of x.shape \(2\), got \(1,\)"),
    ({"global_shape": (4, 6), "start": (3, 1)}, ValueError,
     r"start \+ x.shape must be <= global_shape on every axis \(the block must lie inside the "
     r"global array\), got start=\(3, 1\) \+ x.shape=\(2, 3\) > global_shape=\(4, 6\) on axis 0 "
     r"\(3 \+ 2 > 4\)"),
    ({"global_shape": (4, 6), "start": (0, 4)}, ValueError, r"on axis 1 \(4 \+ 3 > 6\)"),
    ({"global_shape": (4, 6), "start": (-1, 0)}, ValueError,
     r"start must satisfy 0 <= start < 2\*\*64, got -1"),
    ({"global_shape": (4, 6.0), "start": (0, 0)}, TypeError,
     r"global_shape must be an int or a tuple of ints, got \(4, 6.0\)"),
    ({"global_shape": "ab", "start": (0, 0)}, TypeError, r"global_shape must be an int or a tuple"),
    ({"global_shape": (2**40, 2**40), "start": (0, 0)}, ValueError,
     r"global_shape must have at most 2\*\*64 elements \(global indices are 64-bit\), got "
     r"\(1099511627776, 1099511627776\)"),
    ({"global_shape": (2**32, 2**32), "start": (0, 0), "offset": 1}, ValueError,
     r"offset \+ the size of global_shape must be <= 2\*\*64 \(global indices are 64-bit\), got "
     r"offset=1 with global_shape=\(4294967296, 4294967296\) of 18446744073709551616 elements"),
]


@pytest.mark.parametrize("kwargs, exc, match", BAD, ids=range(len(BAD)))
def test_bad_blocks_are_refused_and_nothing_is_written(kwargs, exc, match):
    x = np.ones((2, 3))
    kwargs = {"seed": 1, **kwargs}
    for mode in MODES:
        out = np.full((2, 3), 7.0)
        with pytest.raises(exc, match=match):
            cydrop.dropout(x, 0.5, out=out, mask=mode, **kwargs)
        np.testing.assert_array_equal(out, 7.0)
    inp = x.copy()
    with pytest.raises(exc, match=match):
        cydrop.dropout(inp, 0.5, inplace=True, **kwargs)
    np.testing.assert_array_equal(inp, 1.0)
    mask_out = np.full((2, 3), 9, dtype=np.uint8)
    with pytest.raises(exc, match=match):
        cydrop.dropout(x, 0.5, mask="bytes", mask_out=mask_out, **kwargs)
    np.testing.assert_array_equal(mask_out, 9)
    with pytest.raises(exc, match=match.replace("x.shape", "shape")):
        cydrop.dropout_mask((2, 3), 0.5, **kwargs)


def test_an_int_global_shape_names_one_axis():
    y, _ = cydrop.dropout(np.ones(4), 0.5, seed=3, global_shape=10, start=6)
    np.testing.assert_array_equal(y, cydrop.dropout(np.ones(10), 0.5, seed=3)[0][6:])
    with pytest.raises(ValueError, match=r"global_shape must have one entry per axis of x.shape "
                                         r"\(2\), got 10"):
        cydrop.dropout(np.ones((2, 2)), 0.5, seed=3, global_shape=10, start=(0, 0))


def test_dask_uses_the_shard_run_logic():
    da = pytest.importorskip("dask.array")
    import cydrop.dask as cd
    assert cd.run_starts is _shard.run_starts
    x = _data((30, 40), np.float64)
    out, _ = cd.dropout(da.from_array(x, chunks=(7, 9)), 0.5, seed=5, offset=3)
    np.testing.assert_array_equal(bits_of(out.compute(scheduler="synchronous")),
                                  bits_of(cydrop.dropout(x, 0.5, seed=5, offset=3)[0]))


@pytest.mark.parametrize("mode", MODES)
def test_views_of_the_global_array_and_in_place_runs(mode):
    # x passed as a (non-contiguous) view; in place on the per-run path (runs over SHORT_RUN)
    g = (6, 1000)
    x = _data(g, np.float32)
    y, cache = cydrop.dropout(x, 0.3, seed=21, offset=2, mask=mode)
    for start, index in blocks(g, ([], [300])):
        yb, _ = cydrop.dropout(x[index], 0.3, seed=21, offset=2, mask=mode, global_shape=g,
                               start=start)
        np.testing.assert_array_equal(bits_of(yb), bits_of(y[index]))
        xb = np.ascontiguousarray(x[index])
        got, cb = cydrop.dropout(xb, 0.3, seed=21, offset=2, mask=mode, global_shape=g,
                                 start=start, inplace=True)
        assert got is xb and not _shard.block_args(g, start, xb.shape, 2)[0].gathers()
        np.testing.assert_array_equal(bits_of(xb), bits_of(y[index]))
        np.testing.assert_array_equal(cb.keep_mask(), cache.keep_mask()[index])


HALF = ["float16", "bfloat16"]


@pytest.mark.parametrize("name", HALF)
@pytest.mark.parametrize("shape, cuts", [
    ((6, 40), [[], [13, 27]]),          # column blocks: short runs, the gather path
    ((4, 3, 600), [[1], [], [300]]),    # long runs, one kernel call per run
    ((9, 50), [[2, 7], []]),            # row blocks: one range, the ordinary call
])
def test_16_bit_blocks_reproduce_the_whole_array(name, shape, cuts):
    # float16/bfloat16 blocks take the same dtype-dispatching kernels as whole arrays
    if name == "bfloat16":
        dtype = pytest.importorskip("ml_dtypes").bfloat16
    else:
        dtype = np.float16
    check_split(shape, cuts, dtype=dtype, offset=4097, n_threads=2)
