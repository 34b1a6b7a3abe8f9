"""cydrop.dask: bit-identical to cydrop.dropout on the whole array, for any chunking and
scheduler."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import cydrop  # noqa: E402
import cydrop.dask as cd  # noqa: E402

CASES = [
    # (shape, chunks)
    ((1000,), 1000),
    ((1000,), 7),
    ((10007,), 4096),
    ((10007,), ((5000, 1, 5006),)),
    ((37, 53), (37, 53)),
    ((37, 53), (5, 53)),                       # full rows: one run per chunk
    ((37, 53), (37, 5)),                       # column blocks: one run per row
    ((9, 13), (1, 1)),                         # single elements
    ((37, 53), ((30, 7), (1, 50, 2))),         # irregular
    ((300, 301), (128, 64)),
    ((37, 53, 11), (5, 7, 3)),
    ((37, 53, 11), (37, 53, 11)),
    ((37, 53, 11), (4, 53, 11)),
    ((37, 53, 11), (2, 53, 4)),
    ((7, 9, 11), (7, 1, 1)),
    ((37, 53, 11), ((20, 17), (1, 2, 50), (10, 1))),
    ((4, 3, 5, 700), (3, 2, 4, 300)),
]


def _ids(case):
    return f"{case[0]}-{case[1]}"


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bit_identical_to_numpy_for_any_chunking(case, dtype):
    shape, chunks = case
    x = _x(shape, dtype)
    expected, _ = cydrop.dropout(x, 0.3, seed=1234)
    out, cache = cd.dropout(da.from_array(x, chunks=chunks), 0.3, seed=1234)
    assert out.chunks == da.from_array(x, chunks=chunks).chunks
    got = out.compute(scheduler="threads")
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    assert (cache.seed, cache.offset, cache.rate) == (1234, 0, 0.3)


@pytest.mark.parametrize("case", CASES[::3], ids=[_ids(c) for c in CASES[::3]])
def test_offset_and_rate_match_numpy(case):
    shape, chunks = case
    x = _x(shape, np.float32, seed=3)
    for rate, offset in [(0.9, 5), (0.05, 4096 * 3 + 17), (1.0, 1)]:
        expected, _ = cydrop.dropout(x, rate, seed=99, offset=offset)
        out, _ = cd.dropout(da.from_array(x, chunks=chunks), rate, seed=99, offset=offset)
        np.testing.assert_array_equal(_bits(out.compute()), _bits(expected))


@pytest.mark.parametrize("n_threads", [1, 2, None])
def test_thread_count_and_scheduler_do_not_matter(n_threads):
    x = _x((64, 5000), np.float64)
    expected, _ = cydrop.dropout(x, 0.5, seed=8)
    out, _ = cd.dropout(da.from_array(x, chunks=(16, 2500)), 0.5, seed=8, n_threads=n_threads)
    for scheduler in ("threads", "synchronous"):
        np.testing.assert_array_equal(out.compute(scheduler=scheduler), expected)


def test_zero_dim_and_empty_arrays():
    x0 = np.array(3.0)
    expected, _ = cydrop.dropout(x0, 0.5, seed=2, offset=5)
    out, _ = cd.dropout(da.from_array(x0), 0.5, seed=2, offset=5)
    np.testing.assert_array_equal(out.compute(), expected)
    empty = da.zeros((0, 4), chunks=(1, 2))
    out, _ = cd.dropout(empty, 0.5, seed=1)
    assert out.compute().shape == (0, 4)


def test_transposed_input_uses_logical_c_order():
    x = _x((40, 30), np.float32)
    arr = da.from_array(x, chunks=(7, 11)).T                 # chunks of a transposed array
    expected, _ = cydrop.dropout(x.T, 0.4, seed=10)
    out, _ = cd.dropout(arr, 0.4, seed=10)
    np.testing.assert_array_equal(out.compute(), expected)


@pytest.mark.parametrize("case", CASES[::2], ids=[_ids(c) for c in CASES[::2]])
def test_backward_matches_numpy_with_other_chunking(case):
    shape, chunks = case
    x, g = _x(shape, np.float64), _x(shape, np.float64, seed=1)
    _, np_cache = cydrop.dropout(x, 0.25, seed=5, offset=11)
    expected = cydrop.dropout_backward(g, np_cache)
    _, cache = cd.dropout(da.from_array(x, chunks=chunks), 0.25, seed=5, offset=11)
    dx = cd.dropout_backward(da.from_array(g, chunks=max(1, g.size // 3) if g.ndim == 1
                                           else -1), cache)
    np.testing.assert_array_equal(_bits(dx.compute()), _bits(expected))
    # a NumPy cache drives the dask backward too, whatever mask it stored
    for mask in ("recompute", "bits", "bytes"):
        _, np_cache = cydrop.dropout(x, 0.25, seed=5, offset=11, mask=mask)
        dx = cd.dropout_backward(da.from_array(g, chunks=chunks), np_cache)
        np.testing.assert_array_equal(_bits(dx.compute()), _bits(expected))


def test_identity_calls_return_input():
    arr = da.ones((10, 10), chunks=5)
    out, cache = cd.dropout(arr, 0.5, training=False)
    assert out is arr and cache.mask_mode == "identity"
    assert cd.dropout_backward(arr, cache) is arr
    out, _ = cd.dropout(arr, 0.0, seed=1)
    assert out is arr


def test_fresh_seed_is_kept_and_numpy_rng_untouched():
    state = np.random.get_state()[1].copy()
    x = _x((50, 60), np.float32)
    out, cache = cd.dropout(da.from_array(x, chunks=(7, 9)), 0.5)
    assert isinstance(cache.seed, int)
    np.testing.assert_array_equal(out.compute(), cydrop.dropout(x, 0.5, seed=cache.seed)[0])
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_run_starts_describes_c_order():
    shape = (4, 5, 6)
    index = np.arange(np.prod(shape)).reshape(shape)
    for loc in ([(1, 3), (2, 4), (1, 5)], [(0, 4), (0, 5), (0, 6)], [(2, 3), (0, 5), (0, 6)],
                [(0, 4), (3, 4), (0, 6)], [(1, 2), (1, 2), (5, 6)]):
        starts, n = cd.run_starts(loc, shape)
        block = index[tuple(slice(a, b) for a, b in loc)].reshape(-1)
        expected = (starts[:, None] + np.arange(n)).reshape(-1)
        np.testing.assert_array_equal(block, expected)


def test_both_block_paths_are_used(monkeypatch):
    calls = {"mask": 0, "dropout": 0}
    real_mask, real_dropout = cydrop.dropout_mask, cydrop.dropout

    def counting_mask(*args, **kwargs):
        calls["mask"] += 1
        return real_mask(*args, **kwargs)

    def counting_dropout(*args, **kwargs):
        calls["dropout"] += 1
        return real_dropout(*args, **kwargs)

    # the adapter calls the op layer's functions (cydrop._core), bound in its own namespace
    monkeypatch.setattr(cd, "_dropout_mask", counting_mask)
    monkeypatch.setattr(cd, "_dropout", counting_dropout)
    x = _x((64, 64), np.float64)
    expected, _ = real_dropout(x, 0.5, seed=3)
    gathered, _ = cd.dropout(da.from_array(x, chunks=(64, 32)), 0.5, seed=3)
    np.testing.assert_array_equal(gathered.compute(scheduler="synchronous"), expected)
    assert calls["mask"] == 2
    y = np.random.default_rng(0).standard_normal((8, 10000))
    looped, _ = cd.dropout(da.from_array(y, chunks=(8, 5000)), 0.5, seed=3)
    before = calls["dropout"]
    np.testing.assert_array_equal(looped.compute(scheduler="synchronous"),
                                  real_dropout(y, 0.5, seed=3)[0])
    assert calls["dropout"] - before == 8 * 2          # one kernel call per row run


def test_errors_name_the_argument():
    arr = da.ones((4, 4), chunks=2)
    with pytest.raises(TypeError, match="arr must be a dask.array.Array"):
        cd.dropout(np.ones((4, 4)), 0.5, seed=1)
    with pytest.raises(TypeError, match="arr has dtype int64"):
        cd.dropout(da.ones((4, 4), dtype=np.int64, chunks=2), 0.5, seed=1)
    with pytest.raises(ValueError, match="rate must satisfy 0 <= rate <= 1, got 1.5"):
        cd.dropout(arr, 1.5, seed=1)
    with pytest.raises(ValueError, match="seed"):
        cd.dropout(arr, 0.5, seed=-3)
    with pytest.raises(ValueError, match="n_threads"):
        cd.dropout(arr, 0.5, seed=1, n_threads=0)
    unknown = da.ones(10, chunks=5)
    unknown = unknown[unknown > 0]
    with pytest.raises(ValueError, match="known chunk sizes"):
        cd.dropout(unknown, 0.5, seed=1)
    _, cache = cd.dropout(arr, 0.5, seed=1)
    with pytest.raises(ValueError, match=r"dout must have the forward input's shape \(4, 4\)"):
        cd.dropout_backward(da.ones((4, 5), chunks=2), cache)
    with pytest.raises(TypeError, match="dout must have the forward input's dtype float64"):
        cd.dropout_backward(da.ones((4, 4), dtype=np.float32, chunks=2), cache)
    with pytest.raises(TypeError, match="cache must be the DaskDropoutCache"):
        cd.dropout_backward(arr, {"seed": 1})


def _cluster_roundtrip(processes):
    distributed = pytest.importorskip("distributed")
    x = _x((120, 90), np.float32)
    expected, np_cache = cydrop.dropout(x, 0.5, seed=77, offset=4)
    g = _x((120, 90), np.float32, seed=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                  host="127.0.0.1", protocol="tcp://", dashboard_address=None
                                  ) as cluster, \
            distributed.Client(cluster) as client:
        out, cache = cd.dropout(da.from_array(x, chunks=(25, 40)), 0.5, seed=77, offset=4)
        dx = cd.dropout_backward(da.from_array(g, chunks=(60, 13)), cache)
        got, got_dx = client.compute([out, dx], sync=True)
    np.testing.assert_array_equal(_bits(got), _bits(expected))
    np.testing.assert_array_equal(_bits(got_dx), _bits(cydrop.dropout_backward(g, np_cache)))


def test_distributed_local_cluster_threads():
    _cluster_roundtrip(processes=False)


def test_distributed_local_cluster_processes():
    _cluster_roundtrip(processes=True)
