"""Differential fuzzing: cydrop.dropout / dropout_forward / dropout_backward against the NumPy
twin ``cydrop.reference``, bit for bit.

Hypothesis draws every axis at once: dtype (float32/float64, either byte order), 0-d to 5-d
shapes (mostly small; now and then more than one 4096-element block, or >= 32 * 4096 elements so
the multi-threaded loop runs), layouts (slices with steps, negative steps, transposes, misaligned
data), seeds and offsets up to 2**64 - size, rates including 0, 1 and the threshold's rounding
edges, the three mask modes, ``out=``, ``inplace=True``, ``mask_out=``, thread counts (huge ones
included), and caches that went through pickle before ``dropout_backward``. For each case:

* the forward output is bit-equal to ``reference.dropout`` (NaN/inf inputs included; dropped
  elements are exactly +0.0), and its cache (attributes, ``keep_mask()``, stored mask) to the
  reference mask;
* backward is bit-equal to the reference mask and scale applied to ``dout``;
* nothing outside the documented targets changes, byte for byte (the whole buffer an input view
  lives in is compared, not just the view);
* NumPy's global random state is untouched.

Every case runs in a child interpreter (helpers.GuardedWorker, the ``worker`` fixture of
tests/core/conftest.py), so a kernel that segfaults or aborts (a misaligned pointer, a thread
count the OpenMP runtime cannot allocate) fails one test instead of killing the pytest run.
test_fast_general_agreement.py uses the same worker, and the layouts and strategies of
fuzz_cases.py.
"""

import pickle

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import cydrop
from cydrop.testing import reference

from fuzz_cases import (
    BLOCK,
    HUGE_THREADS,
    SAFE_THREADS,
    THREADED_MIN,
    TWO64,
    _prod,
    _settings,
    build_layout,
    covered,
    layouts,
    native,
    rates,
    shapes,
    uint_view,
)

# ----------------------------------------------------------------- buffer and state checks

def assert_only_written(root, before, allowed, what):
    """Every byte of ``root`` outside ``allowed`` equals ``before``."""
    changed = root != before
    bad = changed & ~allowed
    assert not bad.any(), (f"{what}: {int(bad.sum())} bytes outside the call's targets changed "
                           f"(first at byte {int(np.flatnonzero(bad)[0])})")


def rng_state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


# ------------------------------------------------------------------------------ strategies

seeds = st.one_of(st.sampled_from([0, 1, 2**32 - 1, 2**32, 2**63, 2**64 - 2, 2**64 - 1]),
                  st.integers(0, 2**64 - 1), st.none())


@st.composite
def offsets(draw, size):
    kind = draw(st.sampled_from(["small", "block-edge", "2**32", "2**63", "top", "top"]))
    if kind == "small":
        return draw(st.integers(0, 3 * BLOCK))
    if kind == "block-edge":
        return draw(st.integers(1, 2**40)) * BLOCK + draw(st.integers(-33, 33))
    if kind == "2**32":
        return 2**32 + draw(st.integers(-5000, 5000))
    if kind == "2**63":
        return 2**63 + draw(st.integers(-5000, 5000))
    # offset + size <= 2**64, up to the top (offset itself must stay below 2**64)
    return TWO64 - max(size, 1) - draw(st.integers(0, 5000))


threads = st.one_of(st.sampled_from(SAFE_THREADS), st.sampled_from(SAFE_THREADS),
                    st.sampled_from(HUGE_THREADS))


@st.composite
def cases(draw):
    shape, _ = draw(shapes())
    x = draw(layouts(shape))
    size = _prod(shape)
    entry = draw(st.sampled_from(["dropout"] * 5 + ["dropout_forward"]))
    forward_only = entry == "dropout_forward"
    inplace = False if forward_only else draw(st.booleans())
    mode = draw(st.sampled_from(["recompute", "bits", "bytes"]))
    dout_dtype = draw(st.sampled_from(["<", ">"])) + x["dtype"][1:]
    bw_inplace = draw(st.integers(0, 3)) == 0
    return {
        "x": x,
        "entry": entry,
        "rate": draw(rates()),
        "seed": draw(seeds),
        "offset": draw(offsets(size)),
        "mask": mode,
        "out": (not inplace and not forward_only) and draw(st.booleans()),
        "inplace": inplace,
        "mask_out": (not forward_only and mode != "recompute") and draw(st.booleans()),
        "n_threads": draw(threads),
        "pickle": draw(st.booleans()),
        "dout": draw(layouts(shape, dtype=dout_dtype)),
        "bw_out": (not bw_inplace) and draw(st.booleans()),
        "bw_inplace": bw_inplace,
        "bw_threads": draw(threads),
    }


# ------------------------------------------------------------------ the check (in the child)

def _expected_forward(xv, rate, seed, offset):
    """Reference output and mask for the forward input view ``xv``."""
    xn = np.ascontiguousarray(xv).astype(native(xv.dtype))
    y = reference.dropout(xn, rate, seed, offset)
    m = reference.keep_mask(xn.size, rate, seed, offset).reshape(xv.shape)
    return y, m


def run_differential_case(spec):
    """One differential case; raises AssertionError naming the first broken property."""
    x_root, x = build_layout(spec["x"])
    dt = native(x.dtype)
    x_before_root = x_root.copy()
    x_values = np.ascontiguousarray(x).copy()
    size = x.size
    mode, seed, offset = spec["mask"], spec["seed"], spec["offset"]
    out = mask_out = None
    if spec["out"]:
        out = np.full(x.shape, 7.5, dtype=dt)
    if spec["mask_out"]:
        mshape = ((size + 7) // 8,) if mode == "bits" else x.shape
        mask_out = np.full(mshape, 0xA5, dtype=np.uint8)
    rng_before = np.random.get_state()

    if spec["entry"] == "dropout":
        rate = spec["rate"]
        call = lambda: cydrop.dropout(x, rate, seed=seed, offset=offset, out=out,
                                      inplace=spec["inplace"], mask=mode, mask_out=mask_out,
                                      n_threads=spec["n_threads"])
    else:
        p = 1.0 - spec["rate"]
        rate = 1.0 - p                      # what dropout_forward passes on as rate
        param = {"mode": "train", "p": p, "seed": seed, "offset": offset, "mask": mode,
                 "n_threads": spec["n_threads"]}
        call = lambda: cydrop.dropout_forward(x, param)
    identity = rate == 0.0

    if spec["inplace"] and not x.dtype.isnative:
        # documented: inplace=True needs a native-byte-order ndarray
        try:
            call()
        except ValueError:
            pass
        else:
            raise AssertionError("inplace=True on a non-native array did not raise ValueError")
        assert np.array_equal(x_root, x_before_root), "a refused in-place call changed x"
        assert rng_state_equal(rng_before, np.random.get_state()), "global RNG state moved"
        return "refused"

    y, c = call()
    if spec["entry"] == "dropout" or seed is not None:
        assert rng_state_equal(rng_before, np.random.get_state()), \
            "cydrop moved NumPy's global random state"

    # --- the cache
    assert type(c) is cydrop.DropoutCache
    assert c.shape == x.shape and c.dtype == dt, (c.shape, c.dtype)
    if identity:
        assert c.mask_mode == "identity", c.mask_mode
        used_seed = 0
    else:
        assert c.mask_mode == mode, c.mask_mode
        used_seed = c.seed if seed is None else seed
        assert c.seed == used_seed and c.offset == offset, (c.seed, c.offset)
        assert isinstance(used_seed, int) and 0 <= used_seed < TWO64, used_seed
        thr, scale = reference.threshold_and_scale(rate)
        assert c.threshold == thr and c.scale == float(scale), (c.threshold, c.scale, thr)
        assert c.rate == rate, (c.rate, rate)
    ref_y, ref_m = _expected_forward(x_values.reshape(x.shape), rate, used_seed, offset)

    # --- the output
    assert y.shape == x.shape and y.dtype == dt, (y.shape, y.dtype)
    np.testing.assert_array_equal(uint_view(y), uint_view(ref_y),
                                  err_msg="forward output differs from reference.dropout")
    if out is not None:
        assert y is out, "dropout(out=...) did not return out"
    if spec["inplace"]:
        assert y is x, "dropout(inplace=True) did not return x"
    elif identity and out is None and x.dtype.isnative:
        assert y is x, "an identity call did not return x itself"
    keep_mask = c.keep_mask()
    assert keep_mask.dtype == np.uint8 and keep_mask.shape == x.shape
    np.testing.assert_array_equal(keep_mask, ref_m.astype(np.uint8),
                                  err_msg="cache.keep_mask() differs from reference.keep_mask")
    if not identity and mode in ("bits", "bytes"):
        stored = c.stored_mask
        assert not stored.flags.writeable, "the stored mask is writable"
        if mode == "bits":
            assert stored.shape == ((size + 7) // 8,)
            got = np.unpackbits(stored, count=size, bitorder="little")
        else:
            assert stored.shape == x.shape
            got = stored.reshape(-1)
        np.testing.assert_array_equal(got, ref_m.reshape(-1).astype(np.uint8),
                                      err_msg=f"stored {mode} mask differs from the reference")
        if mask_out is not None and size:
            assert np.shares_memory(stored, mask_out), "the cache does not keep mask_out"
    elif mask_out is not None:
        assert np.all(mask_out == 0xA5), "an identity call wrote into mask_out"

    # --- what changed in x's buffer
    if spec["inplace"]:
        allowed = covered(x, x_root)
        assert_only_written(x_root, x_before_root, allowed, "dropout(inplace=True)")
    else:
        assert np.array_equal(x_root, x_before_root), "dropout changed its input"

    # --- backward
    cache = pickle.loads(pickle.dumps(c)) if spec["pickle"] else c
    if spec["pickle"]:
        for attr in ("rate", "seed", "offset", "threshold", "scale", "shape", "dtype",
                     "mask_mode"):
            assert getattr(cache, attr) == getattr(c, attr), f"unpickled cache.{attr} differs"
        np.testing.assert_array_equal(cache.keep_mask(), keep_mask,
                                      err_msg="unpickled cache's keep_mask() differs")
    d_root, dout = build_layout(spec["dout"])
    d_before_root = d_root.copy()
    dout_values = np.ascontiguousarray(dout).astype(dt)
    y_bits = uint_view(y).copy()
    stored_before = None if c.stored_mask is None else c.stored_mask.copy()
    bw_out = np.full(x.shape, -3.25, dtype=dt) if spec["bw_out"] else None
    rng_before = np.random.get_state()
    bw = lambda: cydrop.dropout_backward(dout, cache, out=bw_out, inplace=spec["bw_inplace"],
                                         n_threads=spec["bw_threads"])
    if spec["bw_inplace"] and not dout.dtype.isnative:
        try:
            bw()
        except ValueError:
            pass
        else:
            raise AssertionError("dropout_backward(inplace=True) on a non-native dout did not "
                                 "raise ValueError")
        assert np.array_equal(d_root, d_before_root), "a refused in-place backward changed dout"
        return "backward refused"
    dx = bw()
    assert rng_state_equal(rng_before, np.random.get_state()), \
        "dropout_backward moved NumPy's global random state"
    ref_dx = reference.dropout_backward(dout_values, rate, used_seed, offset)
    assert dx.shape == x.shape and dx.dtype == dt, (dx.shape, dx.dtype)
    np.testing.assert_array_equal(uint_view(dx), uint_view(ref_dx),
                                  err_msg="backward differs from the reference mask and scale "
                                          "applied to dout")
    if bw_out is not None:
        assert dx is bw_out, "dropout_backward(out=...) did not return out"
    if spec["bw_inplace"]:
        assert dx is dout, "dropout_backward(inplace=True) did not return dout"
        assert_only_written(d_root, d_before_root, covered(dout, d_root),
                            "dropout_backward(inplace=True)")
    else:
        assert np.array_equal(d_root, d_before_root), "dropout_backward changed dout"
        if identity and bw_out is None and dout.dtype.isnative:
            assert dx is dout, "an identity backward did not return dout itself"
    np.testing.assert_array_equal(uint_view(y), y_bits, err_msg="backward changed forward's y")
    if stored_before is not None:
        np.testing.assert_array_equal(c.stored_mask, stored_before,
                                      err_msg="backward changed the stored mask")
    return "ok"


def run_offset_overflow_case(layout, rate, over, entry):
    """offset + size > 2**64 (or offset >= 2**64) must be a ValueError that changes nothing."""
    root, x = build_layout(layout)
    before = root.copy()
    size = x.size
    offset = TWO64 - size + over
    try:
        if entry == "dropout":
            cydrop.dropout(x, rate, seed=1, offset=offset)
        elif entry == "dropout_forward":
            cydrop.dropout_forward(x, {"mode": "train", "p": 1.0 - rate, "seed": 1,
                                       "offset": offset})
        else:
            cydrop.dropout_mask(x.shape, rate, seed=1, offset=offset)
    except ValueError as exc:
        assert "offset" in str(exc), str(exc)
    else:
        raise AssertionError(f"{entry}(size={size}, offset=2**64 - size + {over}) did not raise "
                             f"ValueError")
    assert np.array_equal(root, before), "a refused call changed x"


# --------------------------------------------------------------------------------- the tests

def _check(worker, spec):
    size = _prod(spec["x"]["shape"])
    event("size > 32 * 4096 - 4096 (threaded)" if size >= THREADED_MIN else
          "size > 4096" if size > BLOCK else "size <= 4096")
    event(f"misaligned x: {spec['x']['misalign'] != 0}")
    event(f"huge n_threads: {spec['n_threads'] in HUGE_THREADS}")
    event(f"rate in (0, 1): {0.0 < spec['rate'] < 1.0}")
    result = worker.call(run_differential_case, spec)
    event(f"outcome: {result}")
    assert result in ("ok", "refused", "backward refused")


@_settings(500)
@given(spec=cases())
def test_dropout_forward_and_backward_equal_the_reference(worker, spec):
    _check(worker, spec)


@pytest.mark.slow
@_settings(5000)
@given(spec=cases())
def test_dropout_forward_and_backward_equal_the_reference_long(worker, spec):
    _check(worker, spec)


@st.composite
def overflow_cases(draw):
    shape, _ = draw(shapes())
    layout = draw(layouts(shape))
    over = draw(st.one_of(st.integers(1, 5000), st.sampled_from([1, 2**63, TWO64])))
    return layout, draw(rates()), over, draw(st.sampled_from(["dropout", "dropout_forward",
                                                              "dropout_mask"]))


@_settings(60)
@given(case=overflow_cases())
def test_offset_plus_size_beyond_2_64_is_a_value_error(worker, case):
    worker.call(run_offset_overflow_case, *case)
