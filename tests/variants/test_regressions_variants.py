"""Regression tests for the hardening of every entry point besides the core API: the variants
(cydrop.variants and their layers), the fused kernels, cydrop.nn, the torch and dask adapters
and the command line.

Each test names the defect it pins and says how it failed before the fix (each was checked
against a build of the parent commit). Calls that once killed the interpreter (a libgomp abort,
a segfault) run in a child interpreter, so a regression fails one test instead of the whole run.
"""

import json
import os
import pickle
import textwrap
from fractions import Fraction

import numpy as np
import pytest

import cydrop
import cydrop.nn as VL
import cydrop.nn as nn
import cydrop.variants as V
from cydrop import (
    _common,
    _kernels,
    _validation,
    _variants,
    _variants_misc,
    _variants_nd,
    _variants_noise,
    _variants_out,
    fused,
)

from helpers import bits_of, python_env, run_python

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
HUGE_THREADS = [2**31 - 1, 2**31, 2**63, 2**100, -2**31, -2**100]
HUGE_RATES = [10**400, -10**400, Fraction(10**400, 3), Fraction(-10**400, 7)]
HUGE_IDS = ["1e400", "-1e400", "frac", "-frac"]


def _child_json(code, timeout=180, **env):
    """Run ``code`` in a child interpreter; it prints one JSON line, which is returned."""
    res = run_python(["-c", textwrap.dedent(code)], env=python_env(**env), timeout=timeout)
    assert res.returncode == 0, f"child died (exit {res.returncode}): {res.stderr[-2000:]}"
    return json.loads(res.stdout.strip().splitlines()[-1])


def _x(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _unaligned(shape, dtype, fill=None, seed=0):
    """A C-contiguous but unaligned array (np.ascontiguousarray keeps it unaligned)."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    a = np.ndarray(shape, dtype, buffer=bytearray(n * dtype.itemsize + 1), offset=1)
    a[...] = _x(shape, dtype, seed) if fill is None else fill
    assert not a.flags.aligned and a.flags.c_contiguous
    return a


# The variant forwards (name -> (forward(x, **kw) -> (out, cache), input shape)); DropConnect is
# handled apart, it takes W and b too.
VARIANTS = {
    "nd": (lambda x, **kw: V.dropout_nd(x, 0.4, broadcast_axes=1, seed=3, offset=5, **kw),
           (6, 7, 300)),
    "spatial": (lambda x, **kw: V.spatial_dropout(x, 0.4, seed=3, **kw), (4, 5, 30, 40)),
    "locked": (lambda x, **kw: V.locked_dropout(x, 0.4, time_axis=1, seed=3, **kw),
               (4, 9, 500)),
    "exact_k": (lambda x, **kw: V.exact_k_dropout(x, 0.4, seed=3, offset=2, **kw), (40, 700)),
    "alpha": (lambda x, **kw: V.alpha_dropout(x, 0.4, seed=3, offset=9, **kw), (50, 1000)),
    "gaussian": (lambda x, **kw: V.gaussian_dropout(x, 0.4, seed=3, offset=1, **kw),
                 (50, 1000)),
}


# ================================================================ 1. any int n_threads

def test_variants_and_fused_accept_any_int_n_threads():
    # Guards the cap for every variant entry point (each resolves n_threads through
    # effective_n_threads, which caps at the usable cores since the core's fix).
    out = _child_json("""
        import json, numpy as np, cydrop
        import cydrop.variants as V
        from cydrop import fused
        x = np.random.default_rng(0).standard_normal((64, 4100)).astype(np.float32)
        W = np.random.default_rng(1).standard_normal((4100, 8)).astype(np.float32)
        b = np.zeros(8, np.float32)
        calls = {
            "nd": lambda k: V.dropout_nd(x, .5, broadcast_axes=0, seed=1, n_threads=k),
            "exact_k": lambda k: V.exact_k_dropout(x, .5, seed=1, n_threads=k),
            "alpha": lambda k: V.alpha_dropout(x, .5, seed=1, n_threads=k),
            "gaussian": lambda k: V.gaussian_dropout(x, .5, seed=1, n_threads=k),
            "dropconnect": lambda k: V.dropconnect_forward(x, W, b, .5, seed=1, n_threads=k),
            "fused": lambda k: fused.bias_relu_dropout(x, np.zeros(4100, np.float32), .5,
                                                       seed=1, n_threads=k),
        }
        res = {}
        for name, call in calls.items():
            ref, cref = call(1)
            dref = (fused.bias_relu_dropout_backward(x, cref)[0] if name == "fused"
                    else V.backward(ref if name != "dropconnect" else np.ones_like(ref), cref,
                                    n_threads=1))
            for k in (2**31 - 1, 2**31, 2**63, 2**100, -2**31, -2**100):
                y, c = call(k)
                if name == "fused":
                    d = fused.bias_relu_dropout_backward(x, c)[0]
                else:
                    d = V.backward(y if name != "dropconnect" else np.ones_like(y), c,
                                   n_threads=k)
                same = bool((y == ref).all()) and all(
                    bool((a == b_).all()) for a, b_ in zip(
                        d if isinstance(d, tuple) else (d,),
                        dref if isinstance(dref, tuple) else (dref,)))
                res[name + str(k)] = same
        g = V.gaussian_noise((3, 5000), .3, seed=2, n_threads=2**100)
        res["noise"] = bool((g == V.gaussian_noise((3, 5000), .3, seed=2, n_threads=1)).all())
        print(json.dumps(res))
    """)
    assert all(out.values()), {k: v for k, v in out.items() if not v}


VARIANT_TWINS = """
    import json, numpy as np
    from cydrop import _variants as _v
    K = 2**31 - 1
    x = np.ones(4096 * 8, np.float32); y = np.empty_like(x)
    res = {}
    _v.dropout(x, y, 1, 0, 32768, 2.0, K); res["dropout"] = float(y.sum())
    _v.alpha(x, y, 1, 0, 32768, 1.5, 0.1, -1.0, K); res["alpha"] = float(y.sum())
    _v.gauss(x, y, 1, 0, 0.5, K); res["gauss"] = float(y.sum())
    keep = np.empty(x.size, np.uint8)
    _v.keep_mask(x.size, 1, 0, 32768, keep, K); res["keep"] = int(keep.sum())
    _v.bcast(x, y, keep, np.array([x.size], np.int64), np.ones(1, np.int64), 2.0, K)
    res["bcast"] = float(y.sum())
    scratch = np.empty(8 * 100, np.uint64); k8 = np.empty(800, np.uint8)
    _v.exactk_mask(8, 100, 30, 1, 0, k8, scratch, K); res["exactk"] = int(k8.sum())
    print(json.dumps(res))
"""


def test_variant_kernel_twins_never_ask_openmp_for_more_threads_than_tasks():
    # Before: _variants' loops passed n_threads straight to prange(num_threads=...), and a
    # direct call with 2**31 - 1 threads died in libgomp ("Out of memory allocating ...").
    # Now each loop asks for at most one thread per task (chunk or row), like the core's.
    got = _child_json(VARIANT_TWINS)
    assert got["dropout"] == got["bcast"] and got["keep"] == got["dropout"] / 2
    assert got["exactk"] == 8 * 70


@pytest.mark.parametrize("call, words", [
    (lambda: _variants.dropout(np.ones(10), np.empty(5), 1, 0, 1, 1.0, 1), "y must have"),
    (lambda: _variants.alpha(np.ones(10), np.empty(5), 1, 0, 1, 1.0, 0.0, 0.0, 1),
     "y must have"),
    (lambda: _variants.gauss(np.ones(10), np.empty(5), 1, 0, 0.5, 1), "y must have"),
    (lambda: _variants.keep_mask(10, 1, 0, 1, np.empty(5, np.uint8), 1), "keep must have"),
    (lambda: _variants.bcast(np.ones(10), np.empty(10), np.ones(1, np.uint8),
                             np.array([10], np.int64), np.array([10**12], np.int64), 2.0, 1),
     "keep must have"),
    (lambda: _variants.bcast(np.ones(10), np.empty(10), np.ones(10, np.uint8),    # 9 * stride
                             np.array([10], np.int64),                          # wraps to 2 in
                             np.array([(2**64 + 2) // 9], np.int64), 2.0, 1),   # int64
     "keep must have"),
    (lambda: _variants.bcast(np.ones(10), np.empty(10), np.ones(10, np.uint8),
                             np.array([5], np.int64), np.ones(1, np.int64), 2.0, 1),
     "shape must describe"),
    (lambda: _variants.exactk_mask(4, 10, 3, 1, 0, np.empty(40, np.uint8),
                                   np.empty(5, np.uint64), 1), "scratch must have"),
    (lambda: _variants.exactk_mask(4, 10, 11, 1, 0, np.empty(40, np.uint8),
                                   np.empty(10, np.uint64), 1), "0 <= k <= n"),
])
def test_variant_kernel_twins_check_buffer_lengths(call, words):
    # Before: a short output or mask (or mask strides pointing past it) was read or written out
    # of bounds; the twins now check lengths before releasing the GIL.
    with pytest.raises(ValueError, match=words):
        call()


def test_nn_and_variant_layers_accept_any_int_n_threads():
    x = _x((32, 20), np.float64)
    y = np.arange(32) % 3
    for k in HUGE_THREADS:
        layers = [nn.Dropout(0.3, seed=1, n_threads=k), VL.AlphaDropout(0.3, seed=1, n_threads=k),
                  VL.GaussianDropout(0.3, seed=1, n_threads=k),
                  VL.ExactKDropout(0.3, seed=1, n_threads=k),
                  VL.BroadcastDropout(0.3, 0, seed=1, n_threads=k),
                  VL.DropConnectDense(20, 20, 0.3, seed=1, mask_seed=2, n_threads=k)]
        for layer in layers:
            assert layer.n_threads == max(-(2**31 - 1), min(2**31 - 1, k))
            out = layer.forward(x)
            assert layer.backward(np.ones_like(out)).shape == x.shape
        net = nn.mlp(20, [16], 3, rates=0.5, seed=0, n_threads=k)
        loss, _ = net.loss(x, y)
        seq = nn.Sequential(nn.Dense(20, 8, seed=0), nn.ReLU(), nn.Dropout(0.5, seed=1),
                            nn.Dense(8, 3, seed=2), n_threads=k)
        assert np.isfinite(seq.loss(x, y)[0]) and np.isfinite(loss)
        fcn = nn.FullyConnectedNet([8], input_dim=20, num_classes=3, dropout_keep_ratio=0.5,
                                   dtype=np.float64, seed=0, n_threads=k)
        assert np.isfinite(fcn.loss(x, y)[0])


@pytest.mark.parametrize("make", [
    lambda: VL.AlphaDropout(0.5, n_threads=0),
    lambda: VL.GaussianDropout(0.5, n_threads=0),
    lambda: VL.BroadcastDropout(0.5, 0, n_threads=0),
    lambda: VL.SpatialDropout(0.5, n_threads=0),
    lambda: VL.DropConnectDense(2, 2, 0.5, n_threads=0),
    lambda: nn.FullyConnectedNet([3], input_dim=2, num_classes=2, n_threads=0),
    lambda: nn.Dropout(0.5, n_threads=0),
    lambda: nn.Sequential(nn.Dropout(0.5), n_threads=0),
])
def test_zero_threads_is_refused_when_the_layer_is_built(make):
    # Before: the variant layers and FullyConnectedNet stored n_threads=0 unchecked and failed
    # only at the first training step, far from the mistake.
    with pytest.raises(ValueError, match="n_threads must be a nonzero int or None, got 0"):
        make()
    with pytest.raises(TypeError, match="n_threads must be an int or None"):
        VL.AlphaDropout(0.5, n_threads=2.0)


def test_check_n_threads_clamps_without_changing_the_meaning():
    assert _validation.check_n_threads(None) is None
    assert _validation.check_n_threads(np.int64(3)) == 3
    assert _validation.check_n_threads(2**100) == 2**31 - 1
    assert _validation.check_n_threads(-2**100) == -(2**31 - 1)
    for k in (2**100, -2**100):
        assert (cydrop.effective_n_threads(_validation.check_n_threads(k))
                == cydrop.effective_n_threads(k))
    for bad in (True, 1.0, "2", np.bool_(True)):
        with pytest.raises(TypeError, match="n_threads must be an int or None"):
            _validation.check_n_threads(bad)


@pytest.mark.parametrize("threads", [str(2**100), str(-2**100), str(2**31)])
def test_cli_threads_accepts_any_int(threads):
    # Guards: --threads reaches effective_n_threads, which caps any int since the core's fix.
    res = run_python(["-m", "cydrop", "train", "--epochs", "1", "--quiet", "--threads", threads],
                     timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    row = [line for line in res.stdout.splitlines() if line.startswith("spiral")][0]
    assert 1 <= int(row.split()[-2]) <= CORES       # the threads column: capped


# ================================================================ 2. caches: validated state

def _variant_case(kind, dtype=np.float32):
    x = _x((6, 50, 40), dtype)
    if kind == "dropconnect":
        W, b = _x((2000, 7), dtype, 1), _x(7, dtype, 2)
        out, cache = V.dropconnect_forward(x, W, b, 0.3, seed=4, offset=3)
    elif kind == "identity":
        out, cache = V.alpha_dropout(x, 0.3, training=False)
    else:
        forward = {"nd": lambda: V.dropout_nd(x, 0.3, broadcast_axes=(0, 2), seed=4, offset=3),
                   "exact_k": lambda: V.exact_k_dropout(x, 0.3, seed=4, offset=3),
                   "alpha": lambda: V.alpha_dropout(x, 0.3, seed=4, offset=3),
                   "gaussian": lambda: V.gaussian_dropout(x, 0.3, seed=4, offset=3)}[kind]
        out, cache = forward()
    return x, out, cache


def _same(a, b):
    a = a if isinstance(a, tuple) else (a,)
    b = b if isinstance(b, tuple) else (b,)
    return all((bits_of(p) == bits_of(q)).all() for p, q in zip(a, b))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("kind", ["nd", "dropconnect", "exact_k", "alpha", "gaussian",
                                  "identity"])
def test_variant_caches_pickle_round_trip(kind, protocol):
    # Before: protocols 0 and 1 failed ("a class that defines __slots__ without defining
    # __getstate__ cannot be pickled"), and protocols 2-4 brought the stored mask back writable.
    _, out, cache = _variant_case(kind)
    dout = np.ones_like(out)
    c2 = pickle.loads(pickle.dumps(cache, protocol=protocol))
    assert type(c2) is V.VariantCache and repr(c2) == repr(cache)
    assert _same(V.backward(dout, c2), V.backward(dout, cache))
    if cache.keep is not None:
        assert (c2.keep == cache.keep).all() and not c2.keep.flags.writeable
        assert c2.keep.flags.c_contiguous


def _tamper_variant(cache, **changes):
    c = pickle.loads(pickle.dumps(cache))
    for k, v in changes.items():
        setattr(c, k, v)
    return c


BAD_VARIANT_STATES = [
    # (id, kind, changes, exception, words in the message)
    ("nd-keep-short", "nd", dict(keep=np.ones(1, np.uint8)), ValueError, "cache keep"),
    ("nd-keep-list", "nd", dict(keep=[1, 0, 1]), TypeError, "cache keep"),
    ("nd-keep-none", "nd", dict(keep=None), TypeError, "cache keep"),
    ("nd-keep-float", "nd", dict(keep=np.ones((1, 50, 1), np.float32)), ValueError, "uint8"),
    ("nd-keep-2", "nd", dict(keep=np.full((1, 50, 1), 2, np.uint8)), ValueError, "0/1"),
    ("nd-keep-wrong-axes", "nd", dict(keep=np.ones((1, 49, 1), np.uint8)), ValueError,
     "cache keep"),
    ("nd-rate-0", "nd", dict(rate=0.0), ValueError, "rate"),
    ("nd-offset-past-2**64", "nd", dict(offset=2**64 - 10), ValueError, "cache offset"),
    ("exact_k-keep-short", "exact_k", dict(keep=np.ones(3, np.uint8)), ValueError,
     "cache keep"),
    ("exact_k-keep-int8", "exact_k", dict(keep=np.ones((6, 50, 40), np.int8)), ValueError,
     "uint8"),
    ("exact_k-offset-units", "exact_k", dict(offset=2**63), ValueError, "cache offset"),
    ("alpha-seed-negative", "alpha", dict(seed=-1), ValueError, "cache seed"),
    ("alpha-seed-2**64", "alpha", dict(seed=2**64), ValueError, "cache seed"),
    ("alpha-seed-float", "alpha", dict(seed=1.5), TypeError, "cache seed"),
    ("alpha-offset-none", "alpha", dict(offset=None), TypeError, "cache offset"),
    ("alpha-with-mask", "alpha", dict(keep=np.ones((6, 50, 40), np.uint8)), ValueError,
     "stores no mask"),
    ("alpha-rate-huge", "alpha", dict(rate=10**400), ValueError, "cache rate"),
    ("alpha-rate-str", "alpha", dict(rate="0.3"), TypeError, "cache rate"),
    ("gaussian-rate-1", "gaussian", dict(rate=1.0), ValueError, "cache rate"),
    ("gaussian-offset-units", "gaussian", dict(offset=2**62), ValueError, "cache offset"),
    ("kind-bogus", "alpha", dict(kind="bogus"), ValueError, "cache kind"),
    ("kind-not-str", "alpha", dict(kind=3), ValueError, "cache kind"),
    ("shape-list", "alpha", dict(shape=[6, 50, 40]), TypeError, "cache shape"),
    ("shape-negative", "alpha", dict(shape=(6, -50, 40)), ValueError, "cache shape"),
    ("shape-bool", "alpha", dict(shape=(6, True, 40)), TypeError, "cache shape"),
    ("dtype-int", "alpha", dict(dtype=np.dtype(np.int32)), TypeError, "cache dtype"),
    ("dtype-none", "alpha", dict(dtype=None), TypeError, "cache dtype"),
    ("dtype-big-endian", "alpha", dict(dtype=np.dtype(">f4")), TypeError, "cache dtype"),
    ("identity-with-seed", "identity", dict(seed=3), ValueError, "identity"),
    ("identity-with-rate", "identity", dict(rate=0.5), ValueError, "identity"),
    ("dropconnect-x-shape", "dropconnect", dict(x=np.ones((6, 2000), np.float32)),
     ValueError, "cache x"),
    ("dropconnect-W-list", "dropconnect", dict(W_eff=[[1.0]]), TypeError, "cache W_eff"),
    ("dropconnect-W-rows", "dropconnect", dict(W_eff=np.ones((3, 7), np.float32)),
     ValueError, "cache W_eff"),
    ("dropconnect-W-dtype", "dropconnect", dict(W_eff=np.ones((2000, 7))), TypeError,
     "cache W_eff"),
    ("alpha-with-x", "alpha", dict(x=np.ones((6, 50, 40), np.float32)), ValueError,
     "stores no x"),
    ("nd-with-W_eff", "nd", dict(W_eff=np.ones((3, 7), np.float32)), ValueError,
     "stores no W_eff"),
    ("dropconnect-no-seed-rate", "dropconnect", dict(seed=None), ValueError, "without a seed"),
]


@pytest.mark.parametrize("name, kind, changes, exc, words", BAD_VARIANT_STATES,
                         ids=[b[0] for b in BAD_VARIANT_STATES])
def test_bad_variant_cache_state_is_refused_by_backward_and_unpickling(name, kind, changes, exc,
                                                                       words):
    # Before: a short or list mask was read out of bounds (or AttributeError), a negative seed an
    # OverflowError from the kernel signature, a bogus kind a KeyError, a wrong dtype or shape a
    # confusing dout error, and unpickling accepted all of it.
    _, out, cache = _variant_case(kind)
    bad = _tamper_variant(cache, **changes)
    dout = np.ones_like(out)
    with pytest.raises(exc, match=words):
        V.backward(dout, bad)
    if kind not in ("identity",) and changes.get("kind") is None:
        specific = {"nd": V.dropout_nd_backward, "exact_k": V.exact_k_dropout_backward,
                    "alpha": V.alpha_dropout_backward, "gaussian": V.gaussian_dropout_backward,
                    "dropconnect": V.dropconnect_backward}[kind]
        with pytest.raises(exc, match=words):
            specific(dout, bad)
    with pytest.raises(exc, match=words):
        pickle.loads(pickle.dumps(bad))


@pytest.mark.parametrize("kind, derived", [
    ("gaussian", {"sigma": float("nan"), "scale": 1e30}),
    ("alpha", {"a": -5.0, "thr": 0}),
    ("nd", {"mstride": np.array([10**12], np.int64), "cshape": np.array([10**9], np.int64)}),
])
def test_variant_cache_has_typed_fields_and_derived_fields_are_never_trusted(kind, derived):
    # Before: backward read the kernel parameters (scale, mask strides, sigma, the alpha
    # constants) from a string-keyed cache._aux: a NaN sigma gave a NaN gradient, silently.
    # Now a VariantCache has typed fields only; a derived parameter cannot even be stored, and
    # backward derives every one from the validated rate and shapes.
    _, out, cache = _variant_case(kind)
    dout = np.ones_like(out)
    ref = V.backward(dout, cache)
    bad = _tamper_variant(cache)
    assert not hasattr(bad, "_aux") and not hasattr(bad, "__dict__")
    for name, value in derived.items():
        with pytest.raises(AttributeError):
            setattr(bad, name, value)
    assert _same(V.backward(dout, bad), ref)


def test_variant_caches_of_cydrop_0_1_unpickle_validated():
    # A pickle of cydrop 0.1 names cydrop.variants._restore_variant_cache with DropConnect's
    # arrays in a dict: it still loads, and through the same validation.
    _, out, cache = _variant_case("dropconnect")
    state = (cache.kind, cache.rate, cache.seed, cache.offset, cache.shape, cache.dtype,
             cache.keep, {"x": cache.x, "W_eff": cache.W_eff})
    c2 = V._restore_variant_cache(*state)
    dout = np.ones_like(out)
    assert _same(V.backward(dout, c2), V.backward(dout, cache))
    with pytest.raises(TypeError, match="cache _aux must be a dict"):
        V._restore_variant_cache(*state[:-1], None)
    with pytest.raises(TypeError, match="cache W_eff"):
        V._restore_variant_cache(*state[:-1], {"x": cache.x, "W_eff": [[1.0]]})


def test_tampered_mask_strides_never_crash():
    # Before: dropout_nd_backward passed cache._aux['mstride'] to the kernel, and a huge stride
    # read far outside the mask: a segfault. Now the cache cannot hold a geometry at all (it is
    # derived from the validated shapes), a mask of another shape is refused, and the twin
    # checks the strides against the mask's length anyway.
    got = _child_json("""
        import json, numpy as np
        import cydrop.variants as V
        x = np.ones((64, 1000), np.float32)
        y, c = V.dropout_nd(x, .5, seed=1, broadcast_axes=0)
        for name, value in (("mstride", np.array([10**12], np.int64)),
                            ("cshape", np.array([10**9], np.int64)),
                            ("keep", np.ones((1, 10**6), np.uint8))):
            try:
                setattr(c, name, value)
            except AttributeError:
                pass
        try:
            V.backward(x, c)
        except ValueError:          # a mask of another geometry is refused, never read
            c.keep = V.dropout_nd(x, .5, seed=1, broadcast_axes=0)[1].keep
        print(json.dumps(bool((V.backward(x, c) == y).all())))
    """)
    assert got is True


def test_non_contiguous_stored_mask_is_copied_not_misread():
    x, out, cache = _variant_case("exact_k")
    wide = np.zeros(cache.keep.shape[:-1] + (2 * cache.keep.shape[-1],), np.uint8)
    wide[..., ::2] = cache.keep
    bad = _tamper_variant(cache, keep=wide[..., ::2])
    assert not bad.keep.flags.c_contiguous
    dout = np.ones_like(out)
    assert _same(V.backward(dout, bad), V.backward(dout, cache))


@pytest.mark.parametrize("backward, kind", [
    (V.dropout_nd_backward, "alpha"), (V.exact_k_dropout_backward, "nd"),
    (V.alpha_dropout_backward, "gaussian"), (V.gaussian_dropout_backward, "exact_k"),
    (V.dropconnect_backward, "alpha"),
])
def test_backward_of_another_kind_is_a_value_error(backward, kind):
    # Before: e.g. dropout_nd_backward on an alpha cache died with AttributeError ('NoneType'
    # object has no attribute 'reshape') or ran the wrong kernel.
    _, out, cache = _variant_case(kind)
    with pytest.raises(ValueError, match=f"needs a cache of kind .* got kind '{kind}'"):
        backward(np.ones_like(out), cache)


def _fused_case(dtype=np.float32, rate=0.4, **kw):
    z = _x((64, 300), dtype)
    b = _x(300, dtype, 1) * 0.1
    a, cache = fused.bias_relu_dropout(z, b, rate, seed=5, offset=7, **kw)
    return z, b, a, cache


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("training", [True, False])
def test_fused_cache_pickles_round_trip(protocol, training):
    # Before: protocols 0 and 1 failed (__slots__ without __getstate__).
    z = _x((64, 300))
    a, cache = fused.bias_relu_dropout(z, np.zeros(300, np.float32), 0.4, seed=5,
                                       training=training)
    c2 = pickle.loads(pickle.dumps(cache, protocol=protocol))
    assert repr(c2) == repr(cache)
    d = _x((64, 300), seed=3)
    for got, want in zip(fused.bias_relu_dropout_backward(d, c2),
                         fused.bias_relu_dropout_backward(d, cache)):
        assert (bits_of(got) == bits_of(want)).all()


class _Sub(np.ndarray):
    """An ndarray subclass (np.matrix warns at creation)."""


BAD_FUSED_STATES = [
    ("out-list", dict(out=[[1.0]]), TypeError, "cache out"),
    ("out-1d", dict(out=np.ones(64 * 300, np.float32)), ValueError, "cache out must be 2-D"),
    ("out-int32", dict(out=np.ones((64, 300), np.int32)), TypeError, "cache out"),
    ("out-subclass", dict(out=np.ones((64, 300), np.float32).view(_Sub)), TypeError,
     "cache out"),
    ("scale-str", dict(scale="x"), TypeError, "cache scale"),
    ("scale-nan", dict(scale=float("nan")), ValueError, "cache scale"),
    ("scale-negative", dict(scale=-1.0), ValueError, "cache scale"),
    ("scale-inconsistent", dict(scale=3.0), ValueError, "cache scale must follow"),
    ("rate-huge", dict(rate=10**400), ValueError, "cache rate"),
    ("rate-zero-with-seed", dict(rate=0.0), ValueError, "rate"),
    ("seed-negative", dict(seed=-1), ValueError, "cache seed"),
    ("seed-float", dict(seed=2.0), TypeError, "cache seed"),
    ("offset-none", dict(offset=None), TypeError, "cache offset"),
    ("offset-past-2**64", dict(offset=2**64 - 5), ValueError, "cache offset"),
    ("no-seed-but-rate", dict(seed=None), ValueError, "without a seed"),
]


@pytest.mark.parametrize("name, changes, exc, words", BAD_FUSED_STATES,
                         ids=[b[0] for b in BAD_FUSED_STATES])
def test_bad_fused_cache_state_is_refused(name, changes, exc, words):
    # Before: a string scale was a TypeError from the kernel signature ("must be real number"),
    # an inconsistent or negative scale a silently wrong gradient, a matrix or 1-D out a
    # confusing error from the memoryview, seed/offset/rate went unchecked.
    z, b, a, cache = _fused_case()
    bad = pickle.loads(pickle.dumps(cache))
    for k, v in changes.items():
        setattr(bad, k, v)
    with pytest.raises(exc, match=words):
        fused.bias_relu_dropout_backward(np.ones_like(a), bad)
    with pytest.raises(exc, match=words):
        pickle.loads(pickle.dumps(bad))


def test_fused_cache_with_non_contiguous_out_is_copied():
    z, b, a, cache = _fused_case()
    wide = np.zeros((64, 600), np.float32)
    wide[:, ::2] = a
    bad = pickle.loads(pickle.dumps(cache))
    bad.out = wide[:, ::2]
    d = _x(a.shape, seed=8)
    for got, want in zip(fused.bias_relu_dropout_backward(d, bad),
                         fused.bias_relu_dropout_backward(d, cache)):
        assert (bits_of(got) == bits_of(want)).all()


# ================================================================ 3. out= aliasing (fused)

def test_fused_backward_out_overlapping_the_forward_output_is_refused():
    # The core's defect shape: before, out= over the buffer the kernel reads (the forward output
    # kept in the cache) was accepted and gave a silently wrong gradient.
    n, m = 64, 300
    buf = np.zeros(2 * n * m + 16, np.float32)
    z = _x((n, m))
    b = np.zeros(m, np.float32)
    a, cache = fused.bias_relu_dropout(z, b, 0.5, seed=1, out=buf[:n * m].reshape(n, m))
    dout = _x((n, m), seed=2)
    ref_dz, ref_db = fused.bias_relu_dropout_backward(dout, cache)
    a_before = a.copy()
    for start in (0, 1, m, n * m - 1):
        with pytest.raises(ValueError, match=r"out overlaps the cache's forward output"):
            fused.bias_relu_dropout_backward(dout, cache,
                                             out=buf[start:start + n * m].reshape(n, m))
    # in place over the forward output itself (dout is the forward output's buffer)
    with pytest.raises(ValueError, match=r"out overlaps the cache's forward output"):
        fused.bias_relu_dropout_backward(a, cache, out=a)
    # nothing was written, and a separate out gives the right gradient
    assert (bits_of(a) == bits_of(a_before)).all()
    sep = np.empty((n, m), np.float32)
    dz, db = fused.bias_relu_dropout_backward(dout, cache, out=sep)
    assert dz is sep and (bits_of(dz) == bits_of(ref_dz)).all() and (db == ref_db).all()
    # dout itself stays allowed as out (in place)
    d2 = dout.copy()
    assert fused.bias_relu_dropout_backward(d2, cache, out=d2)[0] is d2
    assert (bits_of(d2) == bits_of(ref_dz)).all()


def test_fused_forward_out_overlapping_the_bias_is_refused():
    # Before: out= over b was accepted; the kernel read b while overwriting it.
    n, m = 64, 300
    buf = np.zeros(n * m + m, np.float32)
    b = buf[:m]
    b[:] = 0.25
    z = _x((n, m))
    for start in (0, m // 2, m - 1):
        with pytest.raises(ValueError, match=r"out overlaps b, which the call reads"):
            fused.bias_relu_dropout(z, b, 0.5, seed=1, out=buf[start:start + n * m].reshape(n, m))
        with pytest.raises(ValueError, match=r"out overlaps b"):
            fused.bias_relu_dropout(z, b, 0.5, training=False,
                                    out=buf[start:start + n * m].reshape(n, m))
    assert (b == 0.25).all()
    out = buf[m:].reshape(n, m)            # adjacent, not overlapping: fine
    a, _ = fused.bias_relu_dropout(z, b, 0.5, seed=1, out=out)
    ref, _ = cydrop.dropout(np.maximum(z + np.float32(0.25), 0), 0.5, seed=1)
    assert a is out and (bits_of(a) == bits_of(ref)).all()


def test_undecidable_overlap_in_fused_is_refused_not_raised(monkeypatch):
    # NumPy's overlap solver may give up (TooHardError) on strided views: cydrop then treats the
    # arrays as overlapping. Simulated here, since fused's arrays are at most 2-D.
    too_hard = (np.exceptions.TooHardError if hasattr(np, "exceptions") else np.TooHardError)

    def give_up(*args, **kwargs):
        raise too_hard("simulated")

    monkeypatch.setattr(np, "shares_memory", give_up)
    z = _x((8, 30))
    b = np.zeros(60, np.float32)[::2]          # strided: the exact-overlap fast path is skipped
    with pytest.raises(ValueError, match="out overlaps b"):
        fused.bias_relu_dropout(z, b, 0.5, seed=1, out=np.empty((8, 30), np.float32))
    a, cache = fused.bias_relu_dropout(z, np.ascontiguousarray(b), 0.5, seed=1)
    wide = np.zeros((8, 60), np.float32)
    wide[:, ::2] = a
    cache.out = wide[:, ::2]
    with pytest.raises(ValueError, match="out overlaps the cache's forward output"):
        fused.bias_relu_dropout_backward(np.ones_like(a), cache, out=np.empty_like(a))


# ================================================================ 4. unaligned buffers

# every module that calls the variant kernels (cydrop.variants re-exports them)
_KERNEL_CALLERS = (_common, _variants_misc, _variants_nd, _variants_noise, _variants_out)


class _AlignmentSpy:
    """Stands in for a kernel module: every call's array arguments must be aligned."""

    def __init__(self, module):
        self._module = module
        self.calls = 0

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if not callable(fn):
            return fn

        def checked(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, np.ndarray):
                    assert a.flags.aligned, f"{name} got an unaligned array"
            self.calls += 1
            return fn(*args, **kwargs)
        return checked


@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_unaligned_arrays_reach_the_variant_kernels_aligned(kind, dtype, monkeypatch):
    # Before: variants._contig used np.ascontiguousarray, which returns a contiguous but
    # unaligned array as is, so the kernels got unaligned float pointers (the spy fails).
    forward, shape = VARIANTS[kind]
    x = _unaligned(shape, dtype)
    xa = x.copy()
    ref, cref = forward(xa)
    dref = V.backward(np.ones(shape, dtype), cref)
    spy = _AlignmentSpy(_variants)
    for module in _KERNEL_CALLERS:              # the split variant modules and the op path
        monkeypatch.setattr(module, "_v", spy)
    y, c = forward(x)
    assert (bits_of(y) == bits_of(ref)).all() and (bits_of(x) == bits_of(xa)).all()
    assert (bits_of(V.backward(_unaligned(shape, dtype, 1), c)) == bits_of(dref)).all()
    assert spy.calls >= 2


def test_unaligned_dropconnect(dtype, monkeypatch):
    # Only W reaches a kernel (x and dout go to NumPy's matmul, whose unaligned loops may round
    # differently from BLAS, so they stay aligned here).
    x, W, b = _x((8, 30), dtype), _unaligned((30, 600), dtype, seed=1), _x(600, dtype, 2)
    ref, cref = V.dropconnect_forward(x, W.copy(), b, 0.5, seed=2)
    spy = _AlignmentSpy(_variants)
    for module in _KERNEL_CALLERS:
        monkeypatch.setattr(module, "_v", spy)
    y, c = V.dropconnect_forward(x, W, b, 0.5, seed=2)
    assert (bits_of(y) == bits_of(ref)).all()
    dout = _x((8, 600), dtype, 3)
    assert _same(V.backward(dout, c), V.backward(dout, cref))
    assert spy.calls >= 2


def test_unaligned_arrays_reach_the_fused_kernels_aligned(dtype, monkeypatch):
    # Before: fused used np.ascontiguousarray for z and b and wrote into an unaligned out.
    n, m = 64, 300
    z, b = _x((n, m), dtype), _x(m, dtype, 1) * 0.1
    ref, cref = fused.bias_relu_dropout(z, b, 0.4, seed=3)
    d = _x((n, m), dtype, 2)
    ref_dz, ref_db = fused.bias_relu_dropout_backward(d, cref)
    spy = _AlignmentSpy(_kernels)
    monkeypatch.setattr(fused, "_kernels", spy)
    zu, bu = _unaligned((n, m), dtype, z), _unaligned((m,), dtype, b)
    a, cache = fused.bias_relu_dropout(zu, bu, 0.4, seed=3)
    assert (bits_of(a) == bits_of(ref)).all()
    out = _unaligned((n, m), dtype, 0)
    a2, cache2 = fused.bias_relu_dropout(zu, bu, 0.4, seed=3, out=out)
    assert a2 is out and (bits_of(out) == bits_of(ref)).all()
    zi = _unaligned((n, m), dtype, z)
    fused.bias_relu_dropout(zi, bu, 0.4, seed=3, out=zi)          # in place, unaligned
    assert (bits_of(zi) == bits_of(ref)).all()
    du = _unaligned((n, m), dtype, d)
    for c in (cache, cache2):                 # cache2.out is the unaligned out
        dz, db = fused.bias_relu_dropout_backward(du, c)
        assert (bits_of(dz) == bits_of(ref_dz)).all() and (bits_of(db) == bits_of(ref_db)).all()
    dzo = _unaligned((n, m), dtype, 0)
    assert fused.bias_relu_dropout_backward(du, cache2, out=dzo)[0] is dzo
    assert (bits_of(dzo) == bits_of(ref_dz)).all()
    fused.bias_relu_dropout_backward(du, cache, out=du)
    assert (bits_of(du) == bits_of(ref_dz)).all()
    assert spy.calls >= 6


# ================================================================ 5. huge rates

@pytest.mark.parametrize("rate", HUGE_RATES, ids=HUGE_IDS)
def test_huge_rates_in_variants_and_fused(rate):
    x = np.ones((4, 6), np.float32)
    match = r"rate must satisfy 0 <= rate <= 1, got (Fraction\()?-?\d"
    for call in (lambda: V.dropout_nd(x, rate, seed=1), lambda: V.spatial_dropout(
            np.ones((2, 2, 3)), rate, seed=1), lambda: V.locked_dropout(x, rate, seed=1),
            lambda: V.exact_k_dropout(x, rate, seed=1), lambda: V.alpha_dropout(x, rate, seed=1),
            lambda: V.gaussian_dropout(x, rate, seed=1),
            lambda: V.gaussian_noise(3, rate, seed=1),
            lambda: V.dropconnect_forward(x, np.ones((6, 2), np.float32),
                                          np.ones(2, np.float32), rate, seed=1),
            lambda: fused.bias_relu_dropout(x, np.zeros(6, np.float32), rate, seed=1),
            lambda: V.exact_k_count(10, rate)):     # before: OverflowError
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("rate", HUGE_RATES, ids=HUGE_IDS)
def test_huge_rates_in_layers_name_the_argument(rate):
    match = r"rate must satisfy 0 <= rate <= 1, got"
    for make in (lambda: nn.Dropout(rate), lambda: VL.AlphaDropout(rate),
                 lambda: VL.GaussianDropout(rate), lambda: VL.ExactKDropout(rate),
                 lambda: VL.BroadcastDropout(rate), lambda: VL.SpatialDropout(rate),
                 lambda: VL.LockedDropout(rate), lambda: VL.DropConnectDense(2, 2, rate),
                 lambda: nn.mlp(2, [3], 2, rates=rate)):
        with pytest.raises(ValueError, match=match):
            make()
    with pytest.raises(ValueError, match=r"rates\[1\] must satisfy 0 <= rates\[1\] <= 1"):
        nn.mlp(2, [3, 3], 2, rates=[0.1, rate])
    with pytest.raises(ValueError, match=r"dropout_keep_ratio must satisfy 0 < "):
        nn.FullyConnectedNet([3], input_dim=2, num_classes=2, dropout_keep_ratio=rate)


@pytest.mark.parametrize("bad", ["0.5", None, True, [0.5], b"0.5"])
def test_non_number_rates_in_nn_are_type_errors(bad):
    # Before: cydrop.nn's _check_rate raised ValueError for a string; now a TypeError naming the
    # argument and the type, as in the core.
    for make in (lambda: nn.Dropout(bad), lambda: nn.mlp(2, [3], 2, rates=bad)
                 if not isinstance(bad, list) else nn.mlp(2, [3], 2, rates=[bad]),
                 lambda: nn.FullyConnectedNet([3], input_dim=2, num_classes=2,
                                              dropout_keep_ratio=bad)):
        with pytest.raises(TypeError, match=r"got .* of type"):
            make()
    with pytest.raises(TypeError, match="rate must be a real number"):
        VL.AlphaDropout(bad)


@pytest.mark.parametrize("value", [10**400, Fraction(10**400, 3)])
def test_huge_numbers_in_optimizers_solver_and_penalties(value):
    # Before: OverflowError ("int too large to convert to float") from float(value).
    with pytest.raises(ValueError, match="learning_rate must satisfy"):
        nn.SGD(learning_rate=value)
    with pytest.raises(ValueError, match="epsilon must satisfy"):
        nn.Adam(epsilon=value)
    with pytest.raises(ValueError, match="decay must satisfy"):
        nn.Adam(decay=value)
    with pytest.raises(ValueError, match=r"weight_l2 must satisfy 0.0 <= weight_l2, "
                                         r"got .*too large for a float"):
        nn.Dense(2, 2, weight_l2=value)
    with pytest.raises(ValueError, match="reg must be a real number >= 0"):
        nn.FullyConnectedNet([3], input_dim=2, num_classes=2, reg=value)
    net = nn.mlp(2, [3], 2, seed=0)
    data = {"X_train": np.ones((4, 2)), "y_train": np.zeros(4, int), "X_val": np.ones((2, 2)),
            "y_val": np.zeros(2, int)}
    with pytest.raises(ValueError, match="lr_decay must satisfy 0.0 < lr_decay"):
        nn.Solver(net, data, lr_decay=value)
    with pytest.raises(TypeError, match="lr_decay must be a real number"):
        nn.Solver(net, data, lr_decay="0.9")


# ================================================================ 6. ndarray subclasses

@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("kind", ["nd", "exact_k", "alpha", "gaussian"])
def test_matrix_in_variants_is_a_plain_ndarray(kind):
    # Guards: the variants take their inputs through as_float_array, which views subclasses as
    # plain ndarrays since the core's fix (a (1, n) matrix from reshape(-1) once met a 1-D
    # kernel signature: "No matching signature found").
    base = _x((20, 300), np.float64)
    forward = {"nd": lambda x: V.dropout_nd(x, 0.3, broadcast_axes=0, seed=2),
               "exact_k": lambda x: V.exact_k_dropout(x, 0.3, seed=2),
               "alpha": lambda x: V.alpha_dropout(x, 0.3, seed=2),
               "gaussian": lambda x: V.gaussian_dropout(x, 0.3, seed=2)}[kind]
    ref, cref = forward(base)
    y, c = forward(np.matrix(base))
    assert type(y) is np.ndarray and (bits_of(y) == bits_of(ref)).all()
    dx = V.backward(np.matrix(np.ones_like(base)), c)
    assert type(dx) is np.ndarray and (bits_of(dx) == bits_of(V.backward(np.ones_like(base),
                                                                         cref))).all()
    with pytest.raises(TypeError, match="masked array"):
        forward(np.ma.masked_array(base))


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_in_dropconnect_and_fused():
    x, W, b = _x((5, 6), np.float64), _x((6, 4), np.float64, 1), _x(4, np.float64, 2)
    ref, cref = V.dropconnect_forward(x, W, b, 0.5, seed=1)
    y, c = V.dropconnect_forward(np.matrix(x), np.matrix(W), b, 0.5, seed=1)
    assert type(y) is np.ndarray and (y == ref).all()
    assert _same(V.backward(np.matrix(np.ones((5, 4))), c), V.backward(np.ones((5, 4)), cref))
    z = _x((5, 6), np.float64)
    a_ref, fref = fused.bias_relu_dropout(z, np.zeros(6), 0.5, seed=1)
    a, fc = fused.bias_relu_dropout(np.matrix(z), np.zeros(6), 0.5, seed=1)
    assert type(a) is np.ndarray and (a == a_ref).all()
    dz, db = fused.bias_relu_dropout_backward(np.matrix(np.ones((5, 6))), fc)
    assert type(dz) is np.ndarray and (dz == fused.bias_relu_dropout_backward(
        np.ones((5, 6)), fref)[0]).all()
    # a matrix out= is written and returned as given; the cache keeps a plain view of it
    out = np.matrix(np.empty((5, 6)))
    a2, fc2 = fused.bias_relu_dropout(z, np.zeros(6), 0.5, seed=1, out=out)
    assert a2 is out and type(fc2.out) is np.ndarray and (np.asarray(out) == a_ref).all()
    assert (fused.bias_relu_dropout_backward(np.ones((5, 6)), fc2)[0] == dz).all()


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_variant_layers_take_lists_and_matrices():
    # Before: a list reached layer._draws(x) and died with "'list' object has no attribute
    # 'size'"; inputs are now converted before the stream advances, like nn.Dropout's.
    x = _x((4, 6), np.float64)
    for cls in (VL.AlphaDropout, VL.GaussianDropout, VL.ExactKDropout):
        ref = cls(0.5, seed=3).forward(x)
        assert (cls(0.5, seed=3).forward(x.tolist()) == ref).all()
        got = cls(0.5, seed=3).forward(np.matrix(x))
        assert type(got) is np.ndarray and (got == ref).all()
        layer = cls(0.5, seed=3)
        with pytest.raises(TypeError):
            layer.forward("not an array")
        assert layer._stream.get_state()["offset"] == 0     # the stream did not advance


# ================================================================ torch adapter

@pytest.mark.parametrize("p", HUGE_RATES, ids=HUGE_IDS)
def test_torch_huge_p_is_a_value_error_naming_p(p):
    torch = pytest.importorskip("torch")
    import cydrop.torch as ct
    # Before: OverflowError ("int too large to convert to float").
    words = (r"dropout probability has to be between 0 and 1, but got (Fraction\()?-?\d+.* "
             r"\(p must satisfy 0 <= p <= 1\)")
    with pytest.raises(ValueError, match=words):
        ct.Dropout(p)
    with pytest.raises(ValueError, match=r"\(p must satisfy 0 <= p <= 1\)"):
        ct.dropout(torch.ones(3), p)


def test_torch_any_int_n_threads():
    pytest.importorskip("torch")
    got = _child_json("""
        import json, torch, cydrop.torch as ct
        x = torch.ones(300_000)
        ref = ct.dropout(x, .5, seed=1, n_threads=1)
        res = {}
        for k in (2**31 - 1, 2**31, 2**63, 2**100, -2**31, -2**100):
            m = ct.Dropout(.5, seed=1, n_threads=k)
            a = ct.dropout(x, .5, seed=1, n_threads=k)
            xg = torch.ones(300_000, requires_grad=True)
            ct.dropout(xg, .5, seed=1, n_threads=k).sum().backward()
            res[str(k)] = [m.n_threads == max(-(2**31 - 1), min(2**31 - 1, k)),
                           bool((a == ref).all()), bool((xg.grad == ref).all()),
                           bool((m(x) == ref).all())]
        print(json.dumps(res))
    """)
    for k, flags in got.items():
        assert all(flags), (k, flags)


def test_torch_module_pickle_round_trip_validates_its_state():
    # Before: __setstate__ took p and n_threads as they came; a tampered p only failed (as an
    # OverflowError) at the first forward call.
    torch = pytest.importorskip("torch")
    import cydrop.torch as ct
    m = ct.Dropout(0.25, seed=3, n_threads=2**100)
    x = torch.ones(1000)
    m(x)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.n_threads == 2**31 - 1 and clone.p == 0.25
    assert torch.equal(clone(x), pickle.loads(pickle.dumps(m))(x))
    state = m.__getstate__()
    for key, value, exc in (("p", 10**400, ValueError), ("p", "x", TypeError),
                            ("n_threads", 0, ValueError), ("inplace", "yes", TypeError)):
        bad = dict(state, **{key: value})
        fresh = ct.Dropout.__new__(ct.Dropout)
        with pytest.raises(exc, match=key if key != "p" else r"\bp\b"):
            fresh.__setstate__(bad)


# ================================================================ dask adapter

def test_dask_any_int_n_threads_is_clamped_in_the_graph():
    pytest.importorskip("dask.array")
    got = _child_json("""
        import json, numpy as np, dask.array as da, cydrop, cydrop.dask as cd
        from cydrop import _validation
        x = np.random.default_rng(0).standard_normal((300, 1000)).astype(np.float32)
        arr = da.from_array(x, chunks=(100, 500))
        ref, _ = cydrop.dropout(x, .5, seed=4)
        res = {}
        for k in (2**31 - 1, 2**31, 2**63, 2**100, -2**31, -2**100):
            y, c = cd.dropout(arr, .5, seed=4, n_threads=k)
            d = cd.dropout_backward(arr, c, n_threads=k)
            res[str(k)] = [bool((y.compute(scheduler="threads") == ref).all()),
                           bool((d.compute(scheduler="synchronous") == cydrop.dropout_backward(
                               x, cydrop.dropout(x, .5, seed=4)[1])).all()),
                           _validation.check_n_threads(k)]
        print(json.dumps(res))
    """)
    for k, (fwd, bwd, passed) in got.items():
        assert fwd and bwd, k
        assert passed == max(-(2**31 - 1), min(2**31 - 1, int(k)))


@pytest.mark.parametrize("rate", HUGE_RATES, ids=HUGE_IDS)
def test_dask_huge_rate(rate):
    # Guards: dask.dropout checks rate with check_probability (fixed with the core).
    da = pytest.importorskip("dask.array")
    import cydrop.dask as cd
    with pytest.raises(ValueError, match=r"rate must satisfy 0 <= rate <= 1, got"):
        cd.dropout(da.ones(10, chunks=5), rate, seed=1)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_dask_cache_pickles_round_trip(protocol):
    # Before: protocols 0 and 1 failed (__slots__ without __getstate__).
    da = pytest.importorskip("dask.array")
    import cydrop.dask as cd
    x = np.arange(1.0, 61.0).reshape(6, 10)
    arr = da.from_array(x, chunks=(4, 3))
    for training in (True, False):
        _, c = cd.dropout(arr, 0.5, seed=7, offset=3, training=training)
        c2 = pickle.loads(pickle.dumps(c, protocol=protocol))
        assert repr(c2) == repr(c)
        got = cd.dropout_backward(arr, c2).compute(scheduler="synchronous")
        assert (got == cd.dropout_backward(arr, c).compute(scheduler="synchronous")).all()


BAD_DASK_STATES = [
    ("rate-big", dict(rate=5.0), ValueError, "cache rate"),
    ("rate-huge", dict(rate=10**400), ValueError, "cache rate"),
    ("rate-str", dict(rate="x"), TypeError, "cache rate"),
    ("rate-zero", dict(rate=0.0), ValueError, "rate"),
    ("seed-negative", dict(seed=-1), ValueError, "cache seed"),
    ("seed-2**70", dict(seed=2**70), ValueError, "cache seed"),
    ("offset-past-2**64", dict(offset=2**64 - 5), ValueError, "cache offset"),
    ("mask-mode-bits", dict(mask_mode="bits"), ValueError, "cache mask_mode"),
    ("shape-negative", dict(shape=(400, -1000)), ValueError, "cache shape"),
    ("shape-list", dict(shape=[400, 1000]), TypeError, "cache shape"),
    ("dtype-int", dict(dtype=np.dtype(np.int32)), TypeError, "cache dtype"),
    ("identity-with-seed", dict(mask_mode="identity"), ValueError, "identity"),
]


@pytest.mark.parametrize("name, changes, exc, words", BAD_DASK_STATES,
                         ids=[b[0] for b in BAD_DASK_STATES])
def test_bad_dask_cache_state_is_refused_at_the_call(name, changes, exc, words):
    # Before: nothing was checked when the graph was built: a bad rate or seed failed inside a
    # task at compute time with a message naming "rate"/"seed" (not the cache), and
    # mask_mode='bits' or rate=0 were silently accepted.
    da = pytest.importorskip("dask.array")
    import cydrop.dask as cd
    arr = da.ones((400, 1000), chunks=(100, 500), dtype=np.float32)
    _, c = cd.dropout(arr, 0.5, seed=1)
    bad = pickle.loads(pickle.dumps(c))
    for k, v in changes.items():
        setattr(bad, k, v)
    with pytest.raises(exc, match=words):
        cd.dropout_backward(arr, bad)           # raised here, not at compute time
    with pytest.raises(exc, match=words):
        pickle.loads(pickle.dumps(bad))
