"""Regression tests for defects found by hostile use of the core API (dropout, backward, mask).

Each test names the defect it pins. Calls that once killed the interpreter (a libgomp abort, a
segfault) run in a child interpreter, so a regression fails one test instead of the whole run.
"""

import json
import os
import pickle
import textwrap
from fractions import Fraction

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import cydrop
from cydrop.testing import reference

from helpers import TESTS_DIR, bits_of, python_env, run_python

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _child_json(code, timeout=120, **env):
    """Run ``code`` in a child interpreter; it prints one JSON line, which is returned."""
    res = run_python(["-c", textwrap.dedent(code)], env=python_env(**env), timeout=timeout)
    assert res.returncode == 0, f"child died (exit {res.returncode}): {res.stderr[-2000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- 1. huge n_threads

def test_any_int_n_threads_is_capped_and_never_aborts():
    out = _child_json("""
        import json, numpy as np, cydrop
        x = np.ones(200_000, np.float32)
        ref, c_ref = cydrop.dropout(x, 0.5, seed=1, n_threads=1)
        res = {}
        for k in (2**31 - 1, 2**31, 2**63, 2**100, -2**31, -2**100, 7):
            y, c = cydrop.dropout(x, 0.5, seed=1, n_threads=k)
            dx = cydrop.dropout_backward(x, c, n_threads=k)
            m = cydrop.dropout_mask(x.shape, 0.5, seed=1, n_threads=k)
            f, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 1,
                                              "n_threads": k})
            res[str(k)] = [bool((y == ref).all()), bool((dx == ref).all()),
                           bool((m == c_ref.keep_mask()).all()), bool((f == ref).all()),
                           cydrop.effective_n_threads(k)]
        print(json.dumps(res))
    """)
    for k, (fwd, bwd, mask, cs231n, threads) in out.items():
        assert fwd and bwd and mask and cs231n, k
        assert 1 <= threads <= CORES, (k, threads)
        if int(k) > 0 and cydrop.openmp_enabled():
            assert threads == min(int(k), CORES)


def test_effective_n_threads_caps_at_usable_cores(monkeypatch):
    monkeypatch.delenv("CYDROP_NUM_THREADS", raising=False)
    expected = min(CORES, 10**6) if cydrop.openmp_enabled() else 1
    assert cydrop.effective_n_threads(10**6) == expected
    assert cydrop.effective_n_threads(2**200) == expected
    assert cydrop.effective_n_threads(-2**200) == 1
    with pytest.raises(ValueError, match="n_threads must be a nonzero int or None, got 0"):
        cydrop.effective_n_threads(0)


# ---------------------------------------------------------------- 2. caches from pickle

def _cache(mode="bits", n=5000, dtype=np.float32, seed=3):
    x = np.linspace(-1, 1, n, dtype=dtype)
    y, c = cydrop.dropout(x, 0.3, seed=seed, offset=11, mask=mode)
    return x, y, c


def _tampered(cache, **changes):
    """The cache's pickle state with fields replaced, rebuilt the way unpickling does."""
    fn, args = cache.__reduce__()[:2]
    names = ("rate", "seed", "offset", "threshold", "scale", "shape", "dtype", "mask_mode",
             "stored_mask")
    state = dict(zip(names, args))
    state.update(changes)
    return fn(*(state[k] for k in names))


@pytest.mark.parametrize("mode", ["recompute", "bits", "bytes"])
def test_pickled_caches_round_trip(mode):
    x, y, c = _cache(mode)
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        c2 = pickle.loads(pickle.dumps(c, protocol=protocol))
        assert repr(c2) == repr(c)
        assert (c2.keep_mask() == c.keep_mask()).all()
        dout = np.ones_like(x)
        assert (bits_of(cydrop.dropout_backward(dout, c2))
                == bits_of(cydrop.dropout_backward(dout, c))).all()
        if c.stored_mask is not None:
            assert not c2.stored_mask.flags.writeable


def test_identity_cache_round_trips():
    _, c = cydrop.dropout(np.ones(3), 0.5, training=False)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.mask_mode == "identity" and c2.shape == (3,)
    d = np.arange(3.0)
    assert cydrop.dropout_backward(d, c2) is d


BAD_STATES = [
    ("mask-list", "bits", dict(stored_mask=[0] * 625), TypeError, "stored_mask"),
    ("mask-none", "bits", dict(stored_mask=None), TypeError, "stored_mask"),
    ("mask-float32", "bytes", dict(stored_mask=np.ones(5000, np.float32)), ValueError,
     "uint8"),
    ("mask-too-short", "bits", dict(stored_mask=np.zeros(10, np.uint8)), ValueError, "shape"),
    ("mask-2-in-bytes", "bytes", dict(stored_mask=np.full(5000, 2, np.uint8)), ValueError,
     "0/1"),
    ("mask-in-recompute", "recompute", dict(stored_mask=np.zeros(625, np.uint8)), ValueError,
     "stores no mask"),
    ("mode-bogus", "bits", dict(mask_mode="bogus"), ValueError, "mask_mode"),
    ("mode-not-str", "bits", dict(mask_mode=3), ValueError, "mask_mode"),
    ("seed-negative", "recompute", dict(seed=-1), ValueError, "cache seed"),
    ("seed-2**64", "recompute", dict(seed=2**64), ValueError, "cache seed"),
    ("seed-float", "recompute", dict(seed=1.5), TypeError, "cache seed"),
    ("offset-past-2**64", "recompute", dict(offset=2**64 - 10), ValueError, "cache offset"),
    ("threshold-inconsistent", "recompute", dict(threshold=1), ValueError, "threshold"),
    ("scale-inconsistent", "bits", dict(scale=1e30), ValueError, "scale"),
    ("rate-too-big", "recompute", dict(rate=1.5), ValueError, "cache rate"),
    ("rate-zero", "recompute", dict(rate=0.0), ValueError, "rate=0"),
    ("shape-negative", "recompute", dict(shape=(-1,)), ValueError, "cache shape"),
    ("shape-list", "recompute", dict(shape=[5000]), TypeError, "cache shape"),
    ("dtype-int", "recompute", dict(dtype=np.dtype(np.int32)), TypeError, "cache dtype"),
    ("dtype-bogus", "recompute", dict(dtype="nope"), TypeError, "cache dtype"),
    ("identity-with-seed", "identity", dict(seed=3), ValueError, "identity"),
]


@pytest.mark.parametrize("name, mode, change, exc, words", BAD_STATES,
                         ids=[b[0] for b in BAD_STATES])
def test_bad_pickled_state_is_refused(name, mode, change, exc, words):
    if mode == "identity":
        _, c = cydrop.dropout(np.ones(5000, np.float32), 0.5, training=False)
    else:
        _, _, c = _cache(mode)
    with pytest.raises(exc, match=words):
        _tampered(c, **change)


def test_tampered_masks_never_crash_backward():
    # Once a segfault (a list as the mask), an out-of-bounds read (a negative-stride view) and a
    # misaligned access (None): now every rebuilt state is checked, and a negative-stride mask
    # is copied into a fresh contiguous one.
    out = _child_json("""
        import json, numpy as np, cydrop
        from cydrop import _kernels
        x = np.linspace(-1, 1, 5000, dtype=np.float32)
        res = {}
        for mode in ("bits", "bytes"):
            y, c = cydrop.dropout(x, 0.3, seed=3, mask=mode)
            fn, args = c.__reduce__()[:2]
            m = c.stored_mask
            for name, bad in (("list", m.tolist()), ("none", None),
                              ("reversed", np.ascontiguousarray(m[::-1])[::-1]),
                              ("float", m.astype(np.float32))):
                a = list(args); a[8] = bad
                try:
                    c2 = fn(*a)
                except (TypeError, ValueError) as e:
                    res[mode + "-" + name] = type(e).__name__
                    continue
                dx = cydrop.dropout_backward(np.ones_like(x), c2)
                ref = cydrop.dropout_backward(np.ones_like(x), c)
                res[mode + "-" + name] = bool((dx == ref).all())
        print(json.dumps(res))
    """)
    assert out["bits-list"] == "TypeError" and out["bits-none"] == "TypeError"
    assert out["bits-reversed"] is True and out["bytes-reversed"] is True  # copied, same mask
    assert out["bits-float"] == "ValueError" and out["bytes-float"] == "ValueError"


# ---------------------------------------------------------------- 3. out aliasing the mask

@pytest.mark.parametrize("mode, n", [("bytes", 4096), ("bits", 4096 * 3 + 5), ("bytes", 300_000)])
def test_backward_out_aliasing_the_stored_mask_is_refused(mode, n):
    x = np.ones(n, np.float32)
    dout = np.ones(n, np.float32)
    buf = np.zeros(8 * n + 64, np.uint8)
    need = n if mode == "bytes" else (n + 7) // 8
    y, c = cydrop.dropout(x, 0.5, seed=1, mask=mode, mask_out=buf[:need])
    before = c.keep_mask().copy()
    for out in (buf[:4 * n].view(np.float32), buf[need - 4:need - 4 + 4 * n].view(np.float32)):
        with pytest.raises(ValueError, match="out overlaps the cache's stored mask"):
            cydrop.dropout_backward(dout, c, out=out)
    # the general path (a strided dout) refuses it too, and nothing was written
    with pytest.raises(ValueError, match="overlaps the cache's stored mask"):
        cydrop.dropout_backward(np.ones(2 * n, np.float32)[::2], c,
                                out=buf[:4 * n].view(np.float32))
    assert (c.keep_mask() == before).all()
    # and the gradient from a separate out is right
    dx = cydrop.dropout_backward(dout, c, out=np.empty(n, np.float32))
    assert (dx == y).all()


def test_inplace_backward_over_the_stored_mask_is_refused():
    n = 8192
    buf = np.zeros(4 * n, np.uint8)
    _, c = cydrop.dropout(np.ones(n, np.float32), 0.5, seed=2, mask="bytes", mask_out=buf[:n])
    dout = buf.view(np.float32)
    dout[n // 4:] = 1.0     # the part that does not overlap the mask
    with pytest.raises(ValueError, match="overlaps the cache's stored mask"):
        cydrop.dropout_backward(dout, c, inplace=True)


# ---------------------------------------------------------------- 4. unaligned buffers

def _unaligned(n, dtype, fill=None):
    dtype = np.dtype(dtype)
    a = np.ndarray((n,), dtype, buffer=bytearray(n * dtype.itemsize + 1), offset=1)
    a[...] = np.arange(n, dtype=dtype) - n / 3 if fill is None else fill
    assert not a.flags.aligned and a.flags.c_contiguous
    return a


@pytest.mark.parametrize("n", [1000, 200_000])
@pytest.mark.parametrize("mode", ["recompute", "bits", "bytes"])
def test_unaligned_arrays_give_correct_results(dtype, n, mode):
    x = _unaligned(n, dtype)
    xa = x.copy()
    expected, ce = cydrop.dropout(xa, 0.4, seed=9, offset=5, mask=mode)
    y, c = cydrop.dropout(x, 0.4, seed=9, offset=5, mask=mode)
    assert (bits_of(y) == bits_of(expected)).all() and (x == xa).all()
    out = _unaligned(n, dtype, 0)
    got = cydrop.dropout(x, 0.4, seed=9, offset=5, mask=mode, out=out)[0]
    assert got is out and (bits_of(out) == bits_of(expected)).all()
    x2 = _unaligned(n, dtype)
    cydrop.dropout(x2, 0.4, seed=9, offset=5, mask=mode, inplace=True)
    assert (bits_of(x2) == bits_of(expected)).all()
    dout = _unaligned(n, dtype, 1)
    dx_expected = cydrop.dropout_backward(np.ones(n, dtype), ce)
    assert (bits_of(cydrop.dropout_backward(dout, c)) == bits_of(dx_expected)).all()
    dxo = _unaligned(n, dtype, 0)
    assert cydrop.dropout_backward(dout, c, out=dxo) is dxo
    assert (bits_of(dxo) == bits_of(dx_expected)).all()
    cydrop.dropout_backward(dout, c, inplace=True)
    assert (bits_of(dout) == bits_of(dx_expected)).all()


def test_unaligned_input_matches_the_reference(dtype):
    x = _unaligned(5000, dtype)
    y, _ = cydrop.dropout(x, 0.25, seed=4)
    assert (bits_of(y) == bits_of(reference.dropout(x.copy(), 0.25, 4))).all()


# ---------------------------------------------------------------- 5. huge rates

HUGE_RATES = [10**400, -10**400, Fraction(10**400, 3), Fraction(-10**400, 7)]


@pytest.mark.parametrize("rate", HUGE_RATES, ids=["1e400", "-1e400", "frac", "-frac"])
def test_huge_rates_are_a_value_error_naming_rate(rate):
    x = np.ones(10, np.float32)
    with pytest.raises(ValueError,
                       match=r"rate must satisfy 0 <= rate <= 1, got (Fraction\()?-?\d"):
        cydrop.dropout(x, rate, seed=1)
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1"):
        cydrop.dropout_mask(10, rate, seed=1)
    with pytest.raises(ValueError, match=r"dropout_param\['p'\] must satisfy"):
        cydrop.dropout_forward(x, {"mode": "train", "p": rate, "seed": 1})


# ---------------------------------------------------------------- 6. TooHardError

def _too_hard_pair():
    # Found by search: NumPy's overlap solver gives up (max_work=10**6) on these strides.
    buf = np.zeros(16_000_000, np.float32)
    shape = (6, 6, 14, 13, 10)
    x = as_strided(buf, shape=shape, strides=(1157844, 1179164, 882340, 1032032, 1316804))
    out = buf[9041593:9041593 + x.size].reshape(shape)
    with pytest.raises(np.exceptions.TooHardError if hasattr(np, "exceptions")
                       else np.TooHardError):
        np.shares_memory(x, out, max_work=10**6)
    return buf, x, out


def test_undecidable_overlap_is_refused_not_raised_as_toohard():
    buf, x, out = _too_hard_pair()
    with pytest.raises(ValueError, match="out overlaps"):
        cydrop.dropout(x, 0.5, seed=1, out=out)
    with pytest.raises(ValueError, match="out overlaps"):
        cydrop.dropout(x, 0.5, training=False, out=out)
    mask_buf = buf[9041593:9041593 + x.size].view(np.uint8)[:x.size].reshape(x.shape)
    with pytest.raises(ValueError, match="mask_out overlaps"):
        cydrop.dropout(x, 0.5, seed=1, mask="bytes", mask_out=mask_buf)
    assert not buf.any()       # nothing written


# ---------------------------------------------------------------- 7. ndarray subclasses

@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_is_treated_as_a_plain_ndarray(dtype):
    base = np.arange(12, dtype=dtype).reshape(3, 4) + 1
    m = np.matrix(base)
    y, c = cydrop.dropout(m, 0.5, seed=2)
    expected, _ = cydrop.dropout(base, 0.5, seed=2)
    assert type(y) is np.ndarray and (bits_of(y) == bits_of(expected)).all()
    dx = cydrop.dropout_backward(np.matrix(np.ones_like(base)), c)
    assert type(dx) is np.ndarray and (dx == expected / base).all()
    out, _ = cydrop.dropout_forward(m, {"mode": "train", "p": 0.5, "seed": 2})
    assert (bits_of(out) == bits_of(expected)).all()
    cydrop.dropout(m, 0.5, seed=2, inplace=True)      # writes through the matrix's memory
    assert (bits_of(np.asarray(m)) == bits_of(expected)).all()


def test_memmap_and_masked_arrays(tmp_path):
    mm = np.memmap(tmp_path / "x.bin", dtype=np.float32, mode="w+", shape=(5000,))
    mm[:] = 1
    y, _ = cydrop.dropout(mm, 0.5, seed=1)
    assert type(y) is np.ndarray and (y == cydrop.dropout(np.ones(5000, np.float32), 0.5,
                                                         seed=1)[0]).all()
    with pytest.raises(TypeError, match="x must not be a masked array"):
        cydrop.dropout(np.ma.masked_array(np.ones(4), mask=[0, 1, 0, 0]), 0.5, seed=1)


# ---------------------------------------------------------------- 8. bools as dimensions

@pytest.mark.parametrize("shape", [(True, 2), True, [2, np.bool_(True)], np.array([1, 1], bool)])
def test_bool_dimensions_are_refused_like_bool_seeds(shape):
    with pytest.raises(TypeError, match="shape must be an int or a tuple of ints, got"):
        cydrop.dropout_mask(shape, 0.5, seed=1)
    assert cydrop.dropout_mask([2, np.int64(3)], 0.5, seed=1).shape == (2, 3)
    assert cydrop.dropout_mask(np.array([2, 3]), 0.5, seed=1).shape == (2, 3)


# ---------------------------------------------------------------- fork after OpenMP ran

FORK_CHILD = """
    import json, sys, numpy as np, cydrop
    from cydrop import _kernels, _openmp
    sys.path.insert(0, {tests_dir!r})
    from helpers import run_forked
    n = 1 << 20
    x = np.ones(n, np.float32)
    if {foreign}:
        # Another library's OpenMP region: the private kernel twin enters one with 2 threads
        # without going through cydrop's thread bookkeeping, as a BLAS or scikit-learn would.
        _kernels.forward(x, np.empty_like(x), 1, 0, 32768, 2.0, None, None, 2)
    if {own}:
        cydrop.dropout(x, 0.5, seed=1, n_threads=2)

    def child():
        y, _ = cydrop.dropout(x, 0.5, seed=5, n_threads=2)
        return [_openmp.forked_serial(), cydrop.effective_n_threads(2),
                cydrop.effective_n_threads(None), float(y.sum())]

    try:
        got = run_forked(child, timeout=30)
    except TimeoutError:
        got = "hung"
    else:
        got += [float(cydrop.dropout(x, 0.5, seed=5, n_threads=1)[0].sum()),
                _openmp.forked_serial()]
    print(json.dumps(got))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
@pytest.mark.parametrize("foreign, own, opt_in, serial", [
    (True, False, None, True),     # another library ran OpenMP: the child must not hang
    (False, False, None, True),    # by default every forked child is serial
    (False, True, None, True),     # ... after cydrop's own parallel kernels too
    (False, False, "1", False),    # CYDROP_FORK_THREADS=1: threads kept when nothing ran
    (False, True, "1", True),      # ... but never after cydrop's own parallel kernels
])
def test_forked_child_never_hangs(foreign, own, opt_in, serial):
    env = {} if opt_in is None else {"CYDROP_FORK_THREADS": opt_in}
    code = FORK_CHILD.format(foreign=foreign, own=own, tests_dir=TESTS_DIR)
    got = _child_json(code, timeout=90, **env)
    assert got != "hung", "forked child hung in an OpenMP region"
    child_serial, child_threads, child_default_threads, child_sum, serial_sum, parent_serial = got
    assert child_sum == serial_sum and not parent_serial
    if cydrop.openmp_enabled():
        assert child_serial is serial
        assert child_threads == (1 if serial else min(2, CORES))
        if serial:
            assert child_default_threads == 1
    else:                                           # the serial build: one thread everywhere
        assert not child_serial and child_threads == child_default_threads == 1
