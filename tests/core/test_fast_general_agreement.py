"""The C fast path and the general Python path agree, on valid and invalid calls alike.

``cydrop.dropout`` and ``cydrop.dropout_backward`` first try ``_kernels.fast_forward`` /
``_kernels.fast_backward``, which return None for anything they do not handle; the general path
then validates everything. Hypothesis drives the fast functions directly with generated calls
(valid and invalid: wrong types, ints vs floats for rate, bools, NumPy scalars, out-of-range
values, read-only / overlapping / wrong-shape / wrong-dtype / non-contiguous / unaligned /
subclass ``out``, huge and zero ``n_threads``, bad ``mask_out``, a bad ``CYDROP_NUM_THREADS``,
caches rebuilt from forged pickles) and compares three runs of the same call, each on freshly
built, identical buffers:

* F: ``_kernels.fast_forward(...)`` / ``fast_backward(...)`` called directly;
* G: the public function with the fast path disabled (``_kernels.fast_*`` patched to return
  None: ``_core`` looks them up on the module at each call);
* P: the public function as shipped.

Agreement properties:

1. F returns a result => G and P return bit-identical outputs (the same object relation: out,
   the input, or a new array), equal caches (rate, seed, offset, threshold, scale, shape, dtype,
   mask_mode, keep_mask(), stored mask bytes and flags) and leave every buffer byte-identical
   (the same bytes written into out / mask_out, nothing else touched).
2. F raises => G raises the same exception type (the fast path may only decline, not fail).
3. G raises => P raises the same exception type; F returns None => P behaves exactly as G.

Contract properties of P (from the docstrings): a call whose every argument is documented as
valid succeeds, with the reference's bits, writing only its targets; an invalid one raises
TypeError or ValueError (one of the types its bad arguments call for) with a one-line message
stating the rule, and changes no buffer. Where the documentation leaves a case open (an
``np.matrix`` out, a bad ``CYDROP_NUM_THREADS`` on a call too small for threads, out aliasing a
stored mask) either a correct result or such an error is accepted.

Every case runs in a child interpreter (helpers.GuardedWorker, the ``worker`` fixture of
tests/core/conftest.py): a call that segfaults or aborts fails its test instead of the whole run.
"""

import contextlib
import decimal
import fractions
import os
import pickle

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import cydrop
from cydrop import _kernels
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

RULE_WORDS = ("must", "only", "invalid", "expected", "does not exist", "needs", "malformed",
              "unknown", "has no", "overlaps", "is missing", "made by")
CACHE_FIELDS = ("rate", "seed", "offset", "threshold", "scale", "shape", "dtype", "mask_mode")


class SubArray(np.ndarray):
    """A trivial ndarray subclass."""


# ------------------------------------------------------------------------ scenes (in the child)

class Scene:
    """The objects of one call, built from plain data; every buffer lives in a named root."""

    def __init__(self):
        self.roots = {}           # name -> uint8 array over a whole allocation
        self.where = {}           # id(array) -> root name, for arrays the scene made
        self.alive = []           # ... kept alive, so that no id is reused
        self.errs = set()         # exception type names an invalid argument calls for
        self.either = set()       # ... where a correct result is accepted too

    def root(self, name, nbytes, fill):
        raw = np.empty(nbytes + 256, dtype=np.uint8)
        shift = (-raw.ctypes.data) % 64
        r = raw[shift:shift + nbytes + 128]
        r[...] = np.random.default_rng(fill).integers(0, 256, r.size, dtype=np.uint8)
        self.roots[name] = r
        return r

    def array(self, name, shape, dtype, offset=64, fill=0, root=None):
        """A C-contiguous array of ``shape`` placed ``offset`` bytes into a new or given root."""
        dtype = np.dtype(dtype)
        nbytes = _prod(shape) * dtype.itemsize
        if root is None:
            root = name
            self.root(name, nbytes + offset, fill)
        a = np.ndarray(shape, dtype=dtype, buffer=self.roots[root], offset=offset)
        return self.register(a, root)

    def register(self, obj, root):
        self.where[id(obj)] = root
        self.alive.append(obj)
        return obj

    def snapshot(self):
        return {k: r.copy() for k, r in self.roots.items()}

    def bad(self, *types, either=False):
        (self.either if either else self.errs).update(types)


def _lowest_byte(view, root):
    """Offset in ``root`` of the lowest byte ``view`` occupies."""
    start = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    return start + sum((n - 1) * s for n, s in zip(view.shape, view.strides) if s < 0 and n)


def _make_scalar(kind, value):
    """Plain-data descriptions of argument values -> the objects."""
    return {
        "float": lambda: float(value), "int": lambda: int(value), "bool": lambda: bool(value),
        "np.float64": lambda: np.float64(value), "np.float32": lambda: np.float32(value),
        "np.int64": lambda: np.int64(value), "np.uint64": lambda: np.uint64(value),
        "np.bool_": lambda: np.bool_(value), "np.str_": lambda: np.str_(value),
        "fraction": lambda: fractions.Fraction(*value), "decimal": lambda: decimal.Decimal(value),
        "str": lambda: str(value), "none": lambda: None, "complex": lambda: complex(value),
        "0d": lambda: np.array(value), "list": lambda: [value],
    }[kind]()


def _rate(scene, spec):
    kind, value = spec
    obj = _make_scalar(kind, value)
    if kind in ("bool", "np.bool_", "str", "none", "complex", "list"):
        scene.bad("TypeError")
        return obj, None
    if kind == "decimal":                       # not a numbers.Real; the docs say "float"
        scene.bad("TypeError", either=True)
        return obj, float(value)
    if kind == "0d" and np.asarray(obj).dtype.kind != "f":
        scene.bad("TypeError", either=True)
    try:
        f = float(obj)
    except OverflowError:
        scene.bad("ValueError")
        return obj, None
    if not 0.0 <= f <= 1.0:                     # NaN included
        scene.bad("ValueError")
        return obj, None
    return obj, f


def _uint64(scene, spec, size=None):
    """A seed (size None) or an offset for ``size`` elements."""
    kind, value = spec
    if kind == "top":                           # offset = 2**64 - size + k
        obj = TWO64 - size + value
    else:
        obj = _make_scalar(kind, value)
    if kind in ("bool", "np.bool_", "float", "str", "none"):
        scene.bad("TypeError")
        return obj, None
    v = int(obj)
    if not 0 <= v < TWO64 or (size is not None and v + size > TWO64):
        scene.bad("ValueError")
        return obj, None
    return obj, v


def _n_threads(scene, spec):
    kind, value = spec
    obj = _make_scalar(kind, value)
    if kind in ("bool", "float", "str"):
        scene.bad("TypeError")
    elif obj is not None and int(obj) == 0:
        scene.bad("ValueError")
    return obj


def _mask_mode(scene, spec):
    obj = _make_scalar(*spec)
    ok = isinstance(obj, str) and obj in ("recompute", "bits", "bytes")
    if not ok:
        scene.bad("ValueError")
    return obj, (str(obj) if ok else None)


def _flag(scene, spec):
    obj = _make_scalar(*spec)
    if not isinstance(obj, (bool, np.bool_)):
        scene.bad("TypeError")
        return obj, None
    return obj, bool(obj)


def _env(scene, value):
    if value is not None:
        try:
            good = int(value) > 0
        except ValueError:
            good = False
        if not good:
            scene.bad("ValueError", either=True)
    return value


def _input(scene, spec, name):
    """The array argument (x or dout): (object, plain ndarray of it or None)."""
    kind = spec[0]
    if kind in ("array", "readonly", "matrix", "subclass", "list"):
        L = spec[1]
        itemsize = np.dtype(L["dtype"]).itemsize
        slack = _prod(L["shape"]) * itemsize * 3 + 64
        root, v = build_layout(L, slack=slack)
        scene.roots[name] = root
        scene.register(v, name)
        if kind == "readonly":
            v.flags.writeable = False
        if kind == "list":
            obj = v.tolist()
            return obj, np.asarray(obj)
        obj = v.view(np.matrix) if kind == "matrix" else v.view(SubArray) if kind == "subclass" \
            else v
        if obj is not v:
            scene.register(obj, name)
        return obj, v
    shape = spec[1]
    if kind == "pyfloat":
        return float(shape), np.asarray(float(shape))
    if kind == "np.float32":
        return np.float32(shape), np.asarray(np.float32(shape))
    scene.bad("TypeError")
    if kind == "int":
        return np.arange(_prod(shape), dtype=np.int64).reshape(shape), None
    if kind == "longdouble":       # (float16 is supported since issue 16)
        return np.ones(shape, np.longdouble), None
    return np.ones(shape, np.complex128), None


def _is_plain_writable_native(a):
    return (isinstance(a, np.ndarray) and a.flags.writeable and a.dtype.isnative
            and a.dtype.kind == "f")


def _out(scene, kind, arg, like, shift, inplace):
    """An out= argument for the input ``arg`` (as passed; ``like`` is its plain ndarray form)."""
    shape, dt = like.shape, native(like.dtype)
    n = like.size
    fresh = lambda off=64: scene.array("out", shape, dt, offset=off, fill=7)
    if kind == "none":
        return None
    if kind in ("overlap", "same-ptr", "x", "view") and not (isinstance(arg, np.ndarray)
                                                     and id(arg) in scene.where):
        kind = "fresh"
    if kind == "overlap":
        root = scene.where[id(arg)]
        view = arg.view(np.ndarray)
        off = _lowest_byte(view, scene.roots[root]) + shift * dt.itemsize
        if off < 0 or off + n * dt.itemsize > scene.roots[root].size:
            kind = "fresh"
        else:
            out = scene.array("out-overlap", shape, dt, offset=off, root=root)
            cov_out, cov_x = covered(out, scene.roots[root]), covered(view, scene.roots[root])
            lo_x, hi_x = np.flatnonzero(cov_x)[[0, -1]] if cov_x.any() else (0, -1)
            lo_o, hi_o = np.flatnonzero(cov_out)[[0, -1]] if cov_out.any() else (0, -1)
            if (cov_out & cov_x).any():
                scene.bad("ValueError")
            elif lo_o <= hi_x and lo_x <= hi_o and not view.flags.c_contiguous:
                scene.bad("ValueError", either=True)   # interleaved: NumPy may give up
            if inplace:
                scene.bad("ValueError")
            return _check_out_like(scene, out, like, arg, inplace)
    if kind == "same-ptr":
        a = arg
        ones = [i for i, d in enumerate(a.shape) if d == 1]
        if (type(a) is np.ndarray and a.flags.c_contiguous and ones):
            strides = list(a.strides)
            for i in ones:
                strides[i] += a.itemsize * 3        # never the stride x has there
            out = np.lib.stride_tricks.as_strided(a, strides=strides,
                                                  writeable=a.flags.writeable)
            scene.register(out, scene.where[id(a)])
            # the very elements of x, in the same order, through another view object
            scene.bad("ValueError", either=True)
            _check_out_like(scene, out, like, arg, inplace, same=True)
            return out
        kind = "x"
    if kind == "view" and isinstance(arg, np.ndarray) and id(arg) in scene.where:
        # a new view object of exactly x's elements and layout: "x itself" or not?
        out = scene.register(arg.view(), scene.where[id(arg)])
        scene.bad("ValueError", either=True)
        if inplace:
            return out
        return _check_out_like(scene, out, like, arg, inplace, same=True)
    if kind == "view":
        kind = "x"
    if kind == "x":
        if inplace:         # "out must be None or x itself": the inplace rules judge x
            return arg
        return _check_out_like(scene, arg, like, arg, inplace, same=True)
    if kind == "list":
        scene.bad("TypeError")
        return np.zeros(shape).tolist()
    if kind == "fresh":
        out = fresh()
    elif kind == "fresh-unaligned":
        out = fresh(65)
    elif kind == "matrix" and len(shape) == 2:
        out = fresh().view(np.matrix)
        scene.register(out, "out")
        scene.bad("TypeError", "ValueError", either=True)
    elif kind == "subclass":
        out = fresh().view(SubArray)
        scene.register(out, "out")
    elif kind == "readonly":
        out = fresh()
        out.flags.writeable = False
    elif kind == "shape":
        out = scene.array("out", shape + (1,) if n % 2 else (n + 1,), dt, fill=7)
    elif kind == "dtype":
        out = scene.array("out", shape, np.float32 if dt == np.float64 else np.float64, fill=7)
    elif kind == "int-dtype":
        out = scene.array("out", shape, np.int32 if dt == np.float32 else np.int64, fill=7)
    elif kind == "byteorder":
        out = scene.array("out", shape, dt.newbyteorder("S"), fill=7)
    elif kind == "strided" and len(shape) >= 1:
        base = scene.array("out", shape[:-1] + (shape[-1] * 2,), dt, fill=7)
        out = base[..., ::2]
        scene.register(out, "out")
    elif kind == "fortran" and len(shape) >= 2:
        base = scene.array("out", shape[::-1], dt, fill=7)
        out = base.T
        scene.register(out, "out")
    else:
        out = fresh()
    if inplace:
        scene.bad("ValueError")        # inplace=True: out must be None or x itself
    return _check_out_like(scene, out, like, arg, inplace)


def _check_out_like(scene, out, like, arg, inplace, same=False):
    """Record what the documented rules say about ``out`` for an input ``like``."""
    if not isinstance(out, np.ndarray):
        scene.bad("TypeError")
        return out
    if out.shape != like.shape:
        scene.bad("ValueError")
    elif out.dtype != native(like.dtype):
        scene.bad("TypeError")
    elif not (out.flags.c_contiguous and out.flags.writeable):
        scene.bad("ValueError")
    elif same and type(arg) is not np.ndarray:
        scene.bad("TypeError", "ValueError", either=True)   # a subclass viewed as its base
    return out


def _mask_out(scene, kind, mode, like, out):
    n = like.size
    mode_shape = ((n + 7) // 8,) if mode == "bits" else like.shape
    if kind == "none":
        return None
    if mode not in ("bits", "bytes"):
        scene.bad("ValueError")         # mask_out with mask='recompute' (or a bad mode)
    shape = mode_shape
    if kind == "other-mode":
        shape = like.shape if mode == "bits" else ((n + 7) // 8,)
    if kind == "list":
        scene.bad("TypeError")
        return [0] * max(1, _prod(shape))
    if kind == "overlap-x" and id(like) in scene.where:
        root = scene.where[id(like)]
        off = _lowest_byte(like.view(np.ndarray), scene.roots[root])
        m = scene.array("mask_out", shape, np.uint8, offset=off, root=root)
        if (covered(m, scene.roots[root]) & covered(like, scene.roots[root])).any():
            scene.bad("ValueError")
    elif kind == "overlap-out" and isinstance(out, np.ndarray) and id(out) in scene.where:
        root = scene.where[id(out)]
        off = _lowest_byte(out.view(np.ndarray), scene.roots[root])
        m = scene.array("mask_out", shape, np.uint8, offset=off, root=root)
        if (covered(m, scene.roots[root]) & covered(out, scene.roots[root])).any():
            scene.bad("ValueError")
    elif kind == "dtype":
        m = scene.array("mask_out", shape, np.int8, fill=3)
        scene.bad("TypeError")
    elif kind == "bool":
        m = scene.array("mask_out", shape, np.bool_, fill=3)
        m[...] = False
        scene.bad("TypeError")
    elif kind == "strided" and _prod(shape) >= 2 and len(shape) >= 1:
        base = scene.array("mask_out", shape[:-1] + (shape[-1] * 2,), np.uint8, fill=3)
        m = base[..., ::2]
        scene.register(m, "mask_out")
    elif kind == "matrix":
        flat = scene.array("mask_out", (1, _prod(shape)) if len(shape) != 2 else shape,
                           np.uint8, fill=3)
        m = flat.view(np.matrix)
        scene.register(m, "mask_out")
        if m.shape == mode_shape:
            scene.bad("TypeError", "ValueError", either=True)
    else:
        m = scene.array("mask_out", shape, np.uint8, fill=3)
        if kind == "readonly":
            m.flags.writeable = False
    if m.shape != mode_shape:
        scene.bad("ValueError")
    elif not (m.flags.c_contiguous and m.flags.writeable):
        scene.bad("ValueError")
    return m


@contextlib.contextmanager
def _env_var(value):
    old = os.environ.get("CYDROP_NUM_THREADS")
    if value is None:
        os.environ.pop("CYDROP_NUM_THREADS", None)
    else:
        os.environ["CYDROP_NUM_THREADS"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("CYDROP_NUM_THREADS", None)
        else:
            os.environ["CYDROP_NUM_THREADS"] = old


@contextlib.contextmanager
def _fast_path_disabled():
    """The general path only: _core calls _kernels.fast_forward / fast_backward by attribute."""
    saved = _kernels.fast_forward, _kernels.fast_backward
    _kernels.fast_forward = lambda *args, **kwargs: None
    _kernels.fast_backward = lambda *args, **kwargs: None
    try:
        yield
    finally:
        _kernels.fast_forward, _kernels.fast_backward = saved


def _run(fn):
    try:
        return ("ok", fn())
    except Exception as exc:            # noqa: BLE001 - any escape is recorded and judged
        return ("raise", exc)


def _describe(res):
    if res[0] == "raise":
        return f"raised {type(res[1]).__name__}: {res[1]}"
    return "returned None (declined)" if res[1] is None else "returned a result"


# ------------------------------------------------------------------------- comparing outcomes

def _relation(obj, scene_objs):
    for name, o in scene_objs.items():
        if obj is o:
            return name
    return "new"


def _cache_state(c):
    if type(c) is not cydrop.DropoutCache:
        return ("not a DropoutCache", type(c).__name__)
    stored = c.stored_mask
    st_ = None if stored is None else (stored.dtype.str, stored.shape, stored.tobytes(),
                                       stored.flags.writeable, stored.flags.c_contiguous)
    return tuple(repr(getattr(c, f)) for f in CACHE_FIELDS) + (st_, _keep_bytes(c))


def _keep_bytes(c):
    res = _run(c.keep_mask)
    return res[1].tobytes() if res[0] == "ok" else type(res[1]).__name__


def _assert_same_results(label, a, b, what):
    """Two 'ok' results of the same call on identical scenes are the same."""
    (ya, sa, objs_a), (yb, sb, objs_b) = a, b
    assert _relation(ya, objs_a) == _relation(yb, objs_b), \
        f"{label}: {what} returned {_relation(ya, objs_a)} vs {_relation(yb, objs_b)}"
    assert type(ya) is type(yb), f"{label}: result types {type(ya)} vs {type(yb)}"
    assert ya.shape == yb.shape and ya.dtype == yb.dtype, \
        f"{label}: {ya.shape}/{ya.dtype} vs {yb.shape}/{yb.dtype}"
    assert np.array_equal(uint_view(ya), uint_view(yb)), f"{label}: output bits differ"
    for name in sa.roots:
        assert np.array_equal(sa.roots[name], sb.roots[name]), \
            f"{label}: buffer {name!r} ends up with different bytes"


def _check_exception(label, exc, scene):
    """An exception from the public call: documented type and a one-line rule message."""
    assert isinstance(exc, (TypeError, ValueError)), \
        f"{label}: raised {type(exc).__name__} ({exc}); only TypeError/ValueError are documented"
    msg = str(exc)
    assert msg and "\n" not in msg.strip(), f"{label}: message {msg!r} is not one line"
    assert any(w in msg for w in RULE_WORDS), \
        f"{label}: message {msg!r} states no rule (none of {RULE_WORDS})"
    allowed = scene.errs | scene.either
    classes = {"TypeError": TypeError, "ValueError": ValueError}
    assert any(isinstance(exc, classes[n]) for n in allowed), \
        (f"{label}: a call whose arguments call for {sorted(allowed) or 'no error'} raised "
         f"{type(exc).__name__}: {msg}")


def _agreement(kind, F, G, P, scenes, objs):
    """Properties 1-3 of the module docstring. F is None when the public call skips the fast
    path. Each of F, G, P is ('ok', result) or ('raise', exc) (F may also be ('ok', None))."""
    sF, sG, sP = scenes
    if F is not None and F[0] == "ok" and F[1] is not None:
        assert G[0] == "ok", (f"{kind}: the fast path returned a result but the general path "
                              f"{_describe(G)}")
        assert P[0] == "ok", f"{kind}: fast path returned a result but the public call " \
                             f"{_describe(P)}"
        fy, gy, py = (F[1], G[1], P[1]) if kind == "backward" else (F[1][0], G[1][0], P[1][0])
        _assert_same_results(f"{kind} fast vs general", (fy, sF, objs[0]), (gy, sG, objs[1]),
                             "the call")
        _assert_same_results(f"{kind} fast vs public", (fy, sF, objs[0]), (py, sP, objs[2]),
                             "the call")
        if kind == "forward":
            assert _cache_state(F[1][1]) == _cache_state(G[1][1]), \
                (f"forward: the caches differ:\n fast    {_cache_state(F[1][1])[:8]}\n "
                 f"general {_cache_state(G[1][1])[:8]}")
            assert _cache_state(P[1][1]) == _cache_state(G[1][1]), "forward: caches differ"
    if F is not None and F[0] == "raise":
        assert G[0] == "raise" and type(G[1]) is type(F[1]), \
            (f"{kind}: the fast path raised {type(F[1]).__name__}: {F[1]} where the general "
             f"path {_describe(G)}")
    if G[0] == "raise":
        assert P[0] == "raise" and type(P[1]) is type(G[1]), \
            (f"{kind}: the general path raised {type(G[1]).__name__}: {G[1]} but the public "
             f"call {_describe(P)}")
    if F is None or (F[0] == "ok" and F[1] is None):
        assert P[0] == G[0], f"{kind}: the fast path declined, yet the public call " \
                             f"{_describe(P)} while the general path {_describe(G)}"
        if P[0] == "ok":
            py, gy = (P[1], G[1]) if kind == "backward" else (P[1][0], G[1][0])
            _assert_same_results(f"{kind} public vs general", (py, sP, objs[2]),
                                 (gy, sG, objs[1]), "the call")
            if kind == "forward":
                assert _cache_state(P[1][1]) == _cache_state(G[1][1]), "forward: caches differ"


def _assert_unchanged(label, scene, before):
    for name, r in scene.roots.items():
        assert np.array_equal(r, before[name]), f"{label}: the call changed {name!r}"


def _assert_only(label, scene, before, targets):
    """Only the bytes of the ``targets`` arrays changed, in whichever roots they live."""
    allowed = {name: np.zeros(r.size, bool) for name, r in scene.roots.items()}
    for t in targets:
        root = scene.where.get(id(t))
        if root is not None:
            allowed[root] |= covered(t.view(np.ndarray), scene.roots[root])
    for name, r in scene.roots.items():
        bad = (r != before[name]) & ~allowed[name]
        assert not bad.any(), (f"{label}: {int(bad.sum())} bytes of {name!r} outside the "
                               f"call's targets changed")


# ------------------------------------------------------------------------------ forward cases

def build_forward(spec):
    s = Scene()
    x, xa = _input(s, spec["x"], "x")
    if xa is None:                              # an invalid x: other arguments against a stand-in
        xa = np.zeros(np.shape(x), np.float64)
    n = xa.size
    rate, rate_v = _rate(s, spec["rate"])
    seed, seed_v = _uint64(s, spec["seed"])
    offset, offset_v = _uint64(s, spec["offset"], n)
    mask, mode = _mask_mode(s, spec["mask"])
    inplace, inplace_v = _flag(s, spec["inplace"])
    if inplace_v and not (_is_plain_writable_native(x)):
        s.bad("ValueError")                     # inplace=True needs a writable native ndarray
    out = _out(s, spec["out"], x, xa, spec["shift"], bool(inplace_v))
    if inplace_v and out is not None and out is not x and spec["out"] not in ("view", "same-ptr"):
        s.bad("ValueError")             # (a view of exactly x's elements: either, see _out)
    mask_out = _mask_out(s, spec["mask_out"], mode, xa, out)
    n_threads = _n_threads(s, spec["n_threads"])
    env = _env(s, spec["env"])
    xa_values = np.ascontiguousarray(xa).astype(native(xa.dtype)) if xa.dtype.kind == "f" \
        else None
    args = dict(x=x, rate=rate, seed=seed, offset=offset, out=out, inplace=inplace, mask=mask,
                mask_out=mask_out, n_threads=n_threads)
    vals = dict(rate=rate_v, seed=seed_v, offset=offset_v, mode=mode, inplace=inplace_v,
                xa=xa, xa_values=xa_values)
    return s, args, vals, env


def _public_forward(a):
    return cydrop.dropout(a["x"], a["rate"], seed=a["seed"], offset=a["offset"], out=a["out"],
                          inplace=a["inplace"], mask=a["mask"], mask_out=a["mask_out"],
                          n_threads=a["n_threads"])


def _fast_forward_called(a):
    return a["inplace"] is False or (a["inplace"] is True and a["out"] is None)


def _forward_objs(a):
    return {"out": a["out"], "x": a["x"], "mask_out": a["mask_out"]}


def _check_forward_result(scene, before, a, v, y, c):
    """P succeeded: the documented result, bit for bit, and nothing else written."""
    xa = v["xa"]
    dt = native(xa.dtype)
    rate = v["rate"]
    assert y.shape == xa.shape and y.dtype == dt, f"forward: y is {y.shape}/{y.dtype}"
    if rate == 0.0:
        expected = v["xa_values"]
        assert c.mask_mode == "identity", c.mask_mode
        ref_mask = np.ones(xa.shape, np.uint8)
    else:
        expected = reference.dropout(v["xa_values"], rate, v["seed"], v["offset"])
        ref_mask = reference.keep_mask(xa.size, rate, v["seed"], v["offset"]).reshape(
            xa.shape).astype(np.uint8)
        thr, scale = reference.threshold_and_scale(rate)
        assert (c.mask_mode, c.seed, c.offset, c.threshold, c.scale) == \
            (v["mode"], v["seed"], v["offset"], thr, float(scale)), repr(c)
    assert np.array_equal(uint_view(y), uint_view(expected)), \
        "forward: the public call's output differs from cydrop.reference"
    assert c.shape == xa.shape and c.dtype == dt, repr(c)
    assert np.array_equal(c.keep_mask(), ref_mask), "forward: keep_mask() differs from reference"
    targets = []
    if a["out"] is not None:
        assert y is a["out"], "forward: dropout(out=...) did not return out"
        targets.append(a["out"])
    if v["inplace"]:
        if type(a["x"]) is np.ndarray:
            assert y is a["x"], "forward: dropout(inplace=True) did not return x"
        targets.append(a["x"])
    if a["mask_out"] is not None and rate != 0.0:
        m = np.asarray(a["mask_out"])
        got = (np.unpackbits(m.reshape(-1), count=xa.size, bitorder="little")
               if v["mode"] == "bits" else m.reshape(-1))
        assert np.array_equal(got, ref_mask.reshape(-1)), "forward: mask_out holds a wrong mask"
        targets.append(a["mask_out"])
    _assert_only("forward", scene, before, targets)


def run_forward_agreement(spec):
    sceneF, argsF, valsF, env = build_forward(spec)
    sceneG, argsG, _, _ = build_forward(spec)
    sceneP, argsP, valsP, _ = build_forward(spec)
    beforeF, beforeG, beforeP = sceneF.snapshot(), sceneG.snapshot(), sceneP.snapshot()
    with _env_var(env):
        # F: the fast path itself (only where the public call would try it)
        F = None
        if _fast_forward_called(argsF):
            a = argsF
            F = _run(lambda: _kernels.fast_forward(
                a["x"], a["rate"], a["seed"], a["offset"], a["x"] if a["inplace"] is True
                else a["out"], a["mask"], a["n_threads"], a["mask_out"]))
        # G: the general path
        with _fast_path_disabled():
            G = _run(lambda: _public_forward(argsG))
        # P: the public call
        P = _run(lambda: _public_forward(argsP))
    objs = (_forward_objs(argsF), _forward_objs(argsG), _forward_objs(argsP))
    if F is not None and F[0] == "ok" and F[1] is None:
        _assert_unchanged("forward: the fast path declined but", sceneF, beforeF)
    _agreement("forward", F, G, P, (sceneF, sceneG, sceneP), objs)
    # the contract
    label = "forward (public call)"
    if P[0] == "raise":
        _check_exception(label, P[1], sceneP)
        _assert_unchanged(label, sceneP, beforeP)
        if G[0] == "raise":
            _assert_unchanged("forward (general path)", sceneG, beforeG)
    else:
        assert not sceneP.errs, (f"{label}: a call with invalid arguments (calling for "
                                 f"{sorted(sceneP.errs)}) returned a result")
        _check_forward_result(sceneP, beforeP, argsP, valsP, *P[1])
    return ("fast: " + ("not tried" if F is None else _describe(F)
                        if F[0] == "raise" or F[1] is None else "handled"),
            "public: " + (P[0] if P[0] == "ok" else f"{type(P[1]).__name__}: {str(P[1])[:40]}"))


# ----------------------------------------------------------------------------- backward cases

def _forge(cache, changes):
    """A cache unpickled from a forged stream: the cache's own reduce value with the named
    fields replaced, whatever the pickle layout (fields are found by their values)."""
    red = cache.__reduce_ex__(2)
    func, args = red[0], red[1]
    state = red[2] if len(red) > 2 else None
    attrs = {f: getattr(cache, f) for f in CACHE_FIELDS + ("stored_mask",)}

    def field_of(v):
        hits = [f for f, a in attrs.items()
                if (v is a) or (type(v) is type(a) and not isinstance(v, np.ndarray)
                                and v == a)]
        return hits

    def patch(seq):
        if not isinstance(seq, tuple):
            return seq
        new = list(seq)
        for i, v in enumerate(seq):
            names = field_of(v)
            for f in names:
                if f in changes:
                    new[i] = changes[f]
        return tuple(new)

    # the tuple that holds the fields: the constructor's arguments or the state
    holder = max((seq for seq in (args, state) if isinstance(seq, tuple)),
                 key=lambda seq: sum(bool(field_of(v)) for v in seq))
    found = [f for f in changes if any(f in field_of(v) for v in holder)]
    assert sorted(found) == sorted(changes), \
        f"cannot find {sorted(set(changes) - set(found))} in the pickle layout {red!r}"
    new_args = patch(args) if holder is args else args
    new_state = patch(state) if holder is state else state

    class Forged:
        def __reduce__(self):
            return (func, new_args) + ((new_state,) if len(red) > 2 else ()) + tuple(red[3:])
    return pickle.loads(pickle.dumps(Forged()))


def _tamper_value(name, how, cache):
    m = cache.stored_mask
    table = {
        "stored_mask": {
            "None": None, "list": None if m is None else m.tolist(),
            "int8": None if m is None else m.view(np.int8),
            "short": None if m is None else m.reshape(-1)[:-1],
            "long": None if m is None else np.append(m, np.uint8(1)),
            "2d": None if m is None else m.reshape(1, -1),
            "threes": None if m is None else m * np.uint8(3),
            "mask": np.ones(4, np.uint8),
        },
        "mask_mode": {"bits": "bits", "bytes": "bytes", "recompute": "recompute",
                      "identity": "identity", "bogus": "bogus"},
        "seed": {"other": (cache.seed or 0) ^ 0x5A5A, "None": None, "neg": -1, "big": TWO64,
                 "str": "1"},
        "offset": {"other": (cache.offset or 0) + 4097, "None": None, "top": TWO64 - 1,
                   "neg": -5},
        "shape": {"other": tuple(cache.shape) + (1,), "empty": (), "neg": (-1,),
                  "huge": (2**40, 2**40)},
        "dtype": {"other": np.dtype(np.float32 if cache.dtype == np.float64 else np.float64),
                  "swapped": cache.dtype.newbyteorder("S"), "str": str(cache.dtype),
                  "int": np.dtype(np.int64)},
        "threshold": {"0": 0, "max": 2**32 - 1, "70000": 70000},
        "scale": {"nan": float("nan"), "0": 0.0, "2": 2.0},
        "rate": {"0": 0.0, "2": 2.0, "nan": float("nan")},
    }
    return table[name][how]


def build_backward(spec):
    s = Scene()
    fw = spec["fw"]
    root, x = build_layout(fw["x"])
    s.roots["x"] = root
    n = x.size
    dt = native(x.dtype)
    mode = fw["mask"]
    mask_out = None
    if fw["mask_out"] and mode != "recompute":
        mshape = ((n + 7) // 8,) if mode == "bits" else x.shape
        s.root("mask", n * dt.itemsize + 64, 11)          # room for an out= aliasing it
        mask_out = s.array("mask_out", mshape, np.uint8, root="mask")
    y, cache = cydrop.dropout(x, fw["rate"], seed=fw["seed"], offset=fw["offset"], mask=mode,
                              mask_out=mask_out)
    if y is not x:
        s.roots["y"] = y.reshape(-1).view(np.uint8)      # backward must not touch y ...
    if cache.stored_mask is not None and mask_out is None:
        s.roots["stored"] = cache.stored_mask.reshape(-1)  # ... nor the stored mask
    ck = spec["cache"]
    tampered = False
    if ck == "pickled":
        cache = pickle.loads(pickle.dumps(cache))
    elif isinstance(ck, tuple) and ck[0] == "tampered":
        tampered = True
        changes = {name: _tamper_value(name, how, cache) for name, how in ck[1]}
        try:
            cache = _forge(cache, changes)
        except AssertionError:
            raise
        except Exception as exc:                # noqa: BLE001
            return s, None, {"refused": exc}, None
    elif ck == "dict":
        cache = {"seed": fw["seed"], "rate": fw["rate"]}
        s.bad("TypeError")
    elif ck == "none":
        cache = None
        s.bad("TypeError")
    elif ck == "tuple":
        cache = ({"mode": "train", "p": 1 - fw["rate"]}, y)
        s.bad("TypeError")
    dkind = spec["dout"]
    if dkind[0] in ("array", "readonly", "matrix", "subclass", "list"):
        dout, da = _input(s, dkind, "dout")
    elif dkind[0] == "wrong-shape":
        dout = s.array("dout", x.shape + (2,), dt, fill=5)
        da = dout
    else:
        dout, da = _input(s, dkind, "dout")
        if da is None:
            da = np.zeros(np.shape(dout), dt)
    if not tampered and isinstance(cache, cydrop.DropoutCache):
        if dkind[0] in ("list", "pyfloat"):
            s.bad("TypeError", "ValueError", either=True)   # the docs ask for an ndarray
        if da.shape != cache.shape:
            s.bad("ValueError")
        elif native(da.dtype) != cache.dtype:
            s.bad("TypeError")
    inplace, inplace_v = _flag(s, spec["inplace"])
    if inplace_v and not _is_plain_writable_native(dout):
        s.bad("ValueError")
    okind = spec["out"]
    if okind == "alias-mask":
        if ("mask" in s.roots and cache is not None
                and 64 + da.size * native(da.dtype).itemsize <= s.roots["mask"].size):
            out = s.array("out-alias", da.shape, native(da.dtype), root="mask")
            stored = getattr(cache, "stored_mask", None)
            if isinstance(stored, np.ndarray) and stored.size and np.shares_memory(stored, out):
                s.bad("ValueError", either=True)      # documented nowhere: accept either
            _check_out_like(s, out, da, dout, inplace_v)
            if inplace_v:
                s.bad("ValueError")
        else:
            okind = "fresh"
    if okind != "alias-mask":
        out = _out(s, okind, dout, da, spec["shift"], bool(inplace_v))
        if (inplace_v and out is not None and out is not dout
                and okind not in ("view", "same-ptr")):
            s.bad("ValueError")
    n_threads = _n_threads(s, spec["n_threads"])
    env = _env(s, spec["env"])
    args = dict(dout=dout, cache=cache, out=out, inplace=inplace, n_threads=n_threads)
    vals = dict(fw=fw, da=da, tampered=tampered, inplace=inplace_v,
                da_values=(np.ascontiguousarray(da).astype(native(da.dtype))
                           if da.dtype.kind == "f" else None))
    return s, args, vals, env


def _public_backward(a):
    return cydrop.dropout_backward(a["dout"], a["cache"], out=a["out"], inplace=a["inplace"],
                                   n_threads=a["n_threads"])


def _check_backward_result(scene, before, a, v, dx):
    fw, da = v["fw"], v["da"]
    dt = native(da.dtype)
    assert dx.shape == da.shape and dx.dtype == dt, f"backward: dx is {dx.shape}/{dx.dtype}"
    if fw["rate"] == 0.0:
        expected = v["da_values"]
    else:
        expected = reference.dropout_backward(v["da_values"], fw["rate"], fw["seed"],
                                              fw["offset"])
    assert np.array_equal(uint_view(dx), uint_view(expected)), \
        "backward: dx differs from the reference mask and scale applied to dout (as it was " \
        "before the call)"
    targets = []
    if a["out"] is not None:
        assert dx is a["out"], "backward: dropout_backward(out=...) did not return out"
        targets.append(a["out"])
    if v["inplace"]:
        if type(a["dout"]) is np.ndarray:
            assert dx is a["dout"], "backward: inplace=True did not return dout"
        targets.append(a["dout"])
    _assert_only("backward", scene, before, targets)


def run_backward_agreement(spec):
    sceneF, argsF, valsF, env = build_backward(spec)
    if argsF is None:                            # a forged pickle refused at load time
        exc = valsF["refused"]
        assert isinstance(exc, (TypeError, ValueError, pickle.UnpicklingError)), \
            f"unpickling a forged cache raised {type(exc).__name__}: {exc}"
        return ("cache refused at load", type(exc).__name__)
    sceneG, argsG, _, _ = build_backward(spec)
    sceneP, argsP, valsP, _ = build_backward(spec)
    beforeF, beforeG, beforeP = sceneF.snapshot(), sceneG.snapshot(), sceneP.snapshot()
    with _env_var(env):
        F = None
        a = argsF
        if a["inplace"] is False or (a["inplace"] is True and a["out"] is None):
            F = _run(lambda: _kernels.fast_backward(
                a["dout"], a["cache"], a["dout"] if a["inplace"] is True else a["out"],
                a["n_threads"]))
        with _fast_path_disabled():
            G = _run(lambda: _public_backward(argsG))
        P = _run(lambda: _public_backward(argsP))
    objs = tuple({"out": a_["out"], "dout": a_["dout"]} for a_ in (argsF, argsG, argsP))
    if F is not None and F[0] == "ok" and F[1] is None:
        _assert_unchanged("backward: the fast path declined but", sceneF, beforeF)
    _agreement("backward", F, G, P, (sceneF, sceneG, sceneP), objs)
    label = "backward (public call)"
    if valsP["tampered"]:
        if P[0] == "raise":
            assert isinstance(P[1], (TypeError, ValueError)), \
                (f"{label} with a forged cache raised {type(P[1]).__name__}: {P[1]}; only "
                 f"TypeError/ValueError are documented")
    elif P[0] == "raise":
        _check_exception(label, P[1], sceneP)
        _assert_unchanged(label, sceneP, beforeP)
        if G[0] == "raise":
            _assert_unchanged("backward (general path)", sceneG, beforeG)
    else:
        assert not sceneP.errs, (f"{label}: a call with invalid arguments (calling for "
                                 f"{sorted(sceneP.errs)}) returned a result")
        _check_backward_result(sceneP, beforeP, argsP, valsP, P[1])
    return ("fast: " + ("not tried" if F is None else _describe(F)
                        if F[0] == "raise" or F[1] is None else "handled"),
            "public: " + (P[0] if P[0] == "ok" else f"{type(P[1]).__name__}: {str(P[1])[:40]}"))


# ------------------------------------------------------------------------------ strategies
#
# Each argument has a pool of documented-valid values (common and unusual ones) and a pool of
# invalid ones. A case first draws which arguments (none, one or two) come from their invalid
# pool, so that valid calls (which the fast path handles) and calls with one precise fault are
# both common; invalid combinations (inplace=True with a non-native x or with out=, mask_out=
# with mask='recompute', ...) still arise from valid parts.

def _w(*pairs):
    """Weighted choice: _w((3, strat_a), (1, strat_b))."""
    return st.one_of(*[s for k, s in pairs for _ in range(k)])


def _pick(bad, name, good, worse):
    return worse if name in bad else good


@st.composite
def faults(draw, names):
    k = draw(st.sampled_from([0, 0, 0, 0, 0, 0, 1, 1, 1, 2]))
    return set(draw(st.lists(st.sampled_from(names), min_size=k, max_size=k, unique=True)))


@st.composite
def array_inputs(draw, shape, bad=False):
    if bad:
        return (draw(st.sampled_from(["int", "longdouble", "complex"])), shape)
    kind = draw(st.sampled_from(["array"] * 24 + ["readonly", "matrix", "subclass", "list",
                                                  "pyfloat", "np.float32"]))
    if kind == "matrix" and len(shape) != 2:
        kind = "array"
    if kind == "list" and _prod(shape) > 5000:
        kind = "array"
    if kind in ("pyfloat", "np.float32"):
        return (kind, draw(st.sampled_from([0.5, -2.0, float("nan"), float("inf"), 0.0])))
    if draw(st.integers(0, 4)) > 0:      # the fast path's diet: C-contiguous, aligned, native
        L = draw(layouts(shape, dtype=draw(st.sampled_from(["<f4", "<f8"])), misalign=0,
                         contiguous=True))
    else:
        L = draw(layouts(shape))
    return (kind, L)


good_rates = _w(
    (14, rates().map(lambda r: ("float", r))),
    (1, st.sampled_from([("float", -0.0), ("int", 0), ("int", 1), ("np.float64", 0.25),
                         ("np.float32", 0.3), ("np.float32", 1.0), ("np.int64", 1),
                         ("fraction", (1, 3)), ("0d", 0.5), ("decimal", "0.5"), ("0d", 1)])),
)
bad_rates = st.sampled_from([
    ("float", -1e-300), ("float", 1.0000000000000002), ("float", float("nan")),
    ("float", float("inf")), ("float", float("-inf")), ("float", 1.5), ("int", 2), ("int", -1),
    ("bool", True), ("bool", False), ("np.bool_", True), ("fraction", (10**400, 3)),
    ("int", 10**400), ("int", -10**400), ("str", "0.5"), ("none", None), ("complex", 0.5j),
    ("0d", 2.0), ("list", 0.5)])
good_seeds = _w(
    (12, st.integers(0, 2**64 - 1).map(lambda v: ("int", v))),
    (1, st.sampled_from([("int", 0), ("int", 2**64 - 1), ("np.uint64", 2**64 - 1),
                         ("np.int64", 5)])),
)
bad_seeds = st.sampled_from([("int", -1), ("int", 2**64), ("int", 2**70), ("np.int64", -5),
                             ("bool", True), ("np.bool_", False), ("float", 1.0), ("str", "1")])
# (seed=None draws a fresh OS seed: valid, but two runs of it cannot be compared)
good_offsets = _w(
    (8, st.integers(0, 3 * BLOCK).map(lambda v: ("int", v))),
    (4, st.integers(-5000, 0).map(lambda k: ("top", k))),
    (1, st.sampled_from([("np.uint64", 7), ("np.int64", 3)])),
)
bad_offsets = st.sampled_from([("top", 1), ("top", 2), ("top", 2**63), ("int", 2**64),
                               ("int", -1), ("np.int64", -1), ("bool", False), ("float", 3.0),
                               ("str", "0"), ("none", None)])
good_masks = _w((15, st.sampled_from([("str", "recompute"), ("str", "bits"), ("str", "bytes")])),
                (1, st.just(("np.str_", "bits"))))
bad_masks = st.sampled_from([("str", "BITS"), ("none", None), ("int", 1), ("str", "")])
good_flags = _w((12, st.just(("bool", False))), (5, st.just(("bool", True))),
                (1, st.sampled_from([("np.bool_", True), ("np.bool_", False)])))
bad_flags = st.sampled_from([("int", 1), ("int", 0), ("str", "yes"), ("none", None)])
good_threads = _w(
    (6, st.sampled_from([("none", None)] + [("int", t) for t in SAFE_THREADS if t])),
    (2, st.sampled_from([("int", t) for t in HUGE_THREADS] + [("np.int64", 2)])),
)
bad_threads = st.sampled_from([("int", 0), ("bool", True), ("bool", False), ("float", 2.0),
                               ("str", "2"), ("np.int64", 0)])
good_envs = _w((12, st.none()), (1, st.sampled_from(["1", "2"])))
bad_envs = st.sampled_from(["abc", "0", "-3"])
good_outs = _w((10, st.just("none")), (6, st.just("fresh")), (1, st.just("x")),
               (1, st.sampled_from(["fresh-unaligned", "subclass", "matrix", "same-ptr",
                                    "view"])))
bad_outs = st.sampled_from(["readonly", "shape", "dtype", "int-dtype", "byteorder", "strided",
                            "fortran", "overlap", "overlap", "list"])
good_mask_outs = _w((3, st.just("none")), (2, st.just("fresh")))
bad_mask_outs = st.sampled_from(["fresh", "other-mode", "list", "overlap-x", "overlap-out", "dtype",
                                 "bool", "strided", "matrix", "readonly"])
shifts = st.sampled_from(["1", "-1", "half", "n", "-n", "2n"])


def _shift_value(s, n):
    return {"1": 1, "-1": -1, "half": max(1, n // 2), "n": max(1, n), "-n": -max(1, n),
            "2n": 2 * max(1, n)}[s]


FORWARD_ARGS = ["x", "rate", "seed", "offset", "mask", "inplace", "out", "mask_out",
                "n_threads", "env"]


@st.composite
def forward_specs(draw):
    bad = draw(faults(FORWARD_ARGS))
    shape, _ = draw(shapes())
    spec = {"x": draw(array_inputs(shape, bad="x" in bad)),
            "rate": draw(_pick(bad, "rate", good_rates, bad_rates)),
            "seed": draw(_pick(bad, "seed", good_seeds, bad_seeds)),
            "offset": draw(_pick(bad, "offset", good_offsets, bad_offsets)),
            "mask": draw(_pick(bad, "mask", good_masks, bad_masks)),
            "inplace": draw(_pick(bad, "inplace", good_flags, bad_flags)),
            "out": draw(_pick(bad, "out", good_outs, bad_outs)),
            "shift": _shift_value(draw(shifts), _prod(shape)),
            "mask_out": draw(_pick(bad, "mask_out", good_mask_outs, bad_mask_outs)),  # (*)
            "n_threads": draw(_pick(bad, "n_threads", good_threads, bad_threads)),
            "env": draw(_pick(bad, "env", good_envs, bad_envs))}
    # (*) a valid mask_out needs mask='bits' or 'bytes'; with 'recompute' it is a fault
    if "mask_out" not in bad and spec["mask"] == ("str", "recompute"):
        spec["mask_out"] = "none"
    return spec


# (a pickled array always comes back C-contiguous, so no forged mask is strided)
TAMPERS = [("stored_mask", h) for h in ("None", "list", "int8", "short", "long", "2d", "threes",
                                        "mask")] + \
    [("mask_mode", h) for h in ("bits", "bytes", "recompute", "identity", "bogus")] + \
    [("seed", h) for h in ("other", "None", "neg", "big", "str")] + \
    [("offset", h) for h in ("other", "None", "top", "neg")] + \
    [("shape", h) for h in ("other", "empty", "neg", "huge")] + \
    [("dtype", h) for h in ("other", "swapped", "str", "int")] + \
    [("threshold", h) for h in ("0", "max", "70000")] + \
    [("scale", h) for h in ("nan", "0", "2")] + [("rate", h) for h in ("0", "2", "nan")]
BACKWARD_ARGS = ["cache", "dout", "out", "inplace", "n_threads", "env"]


@st.composite
def backward_specs(draw):
    bad = draw(faults(BACKWARD_ARGS))
    shape, _ = draw(shapes())
    n = _prod(shape)
    xl = draw(layouts(shape, contiguous=draw(st.booleans())))
    if "cache" in bad:
        cache_kind = draw(st.sampled_from(["dict", "none", "tuple"]))
    else:
        cache_kind = draw(st.sampled_from(["real", "real", "pickled", "tampered"]))
    rate = draw(rates())
    if cache_kind == "tampered":
        rate = rate if 0.0 < rate < 1.0 else 0.375    # distinct field values to find them by
        tampers = draw(st.lists(st.sampled_from(TAMPERS), min_size=1, max_size=3,
                                unique_by=lambda t: t[0]))
        cache_kind = ("tampered", tuple(tampers))
    seed = draw(st.integers(0, 2**64 - 1))
    offset = draw(st.one_of(st.integers(0, 3 * BLOCK),
                            st.integers(0, 5000).map(lambda k: TWO64 - max(n, 1) - k)))
    if isinstance(cache_kind, tuple):
        # a forged pickle's fields are found by their values: keep the int fields distinct
        thr = int((1.0 - rate) * 65536.0 + 0.5)
        step = -1 if offset > 10 else 1
        while offset in (seed, thr):
            offset += step
        while seed in (offset, thr):
            seed = (seed + 2**40) % TWO64
    fw = {"x": xl, "rate": rate, "seed": seed, "offset": offset,
          "mask": draw(st.sampled_from(["recompute", "bits", "bytes"])),
          "mask_out": draw(st.booleans())}
    dtype = xl["dtype"]
    if "dout" in bad:
        dkind = draw(st.sampled_from(["wrong-shape", "wrong-dtype", "int", "pyfloat"]))
    else:
        dkind = draw(st.sampled_from(["same"] * 8 + ["other-order", "readonly", "matrix",
                                                     "subclass", "list"]))
    if dkind in ("same", "readonly", "matrix", "subclass", "list", "other-order"):
        kind = {"same": "array", "other-order": "array"}.get(dkind, dkind)
        if kind == "matrix" and len(shape) != 2:
            kind = "array"
        if kind == "list" and n > 5000:
            kind = "array"
        dt = ("<" if draw(st.integers(0, 2)) else ">") + dtype[1:] if dkind == "other-order" \
            else "<" + dtype[1:]
        contiguous = dkind == "same" and draw(st.integers(0, 2)) > 0
        dout = (kind, draw(layouts(shape, dtype=dt, misalign=0 if contiguous else None,
                                   contiguous=contiguous)))
    elif dkind == "wrong-dtype":
        dout = ("array", draw(layouts(shape, dtype="<f8" if dtype[1:] == "f4" else "<f4")))
    elif dkind == "pyfloat":
        dout = ("pyfloat", 0.5)
    else:
        dout = (dkind, shape)
    out = draw(_pick(bad, "out", _w((8, good_outs), (1, st.just("alias-mask"))), bad_outs))
    return {"fw": fw, "cache": cache_kind, "dout": dout, "out": out,
            "shift": _shift_value(draw(shifts), n),
            "inplace": draw(_pick(bad, "inplace", good_flags, bad_flags)),
            "n_threads": draw(_pick(bad, "n_threads", good_threads, bad_threads)),
            "env": draw(_pick(bad, "env", good_envs, bad_envs))}


# --------------------------------------------------------------------------------- the tests

def _forward(worker, spec):
    x = spec["x"]
    if isinstance(x[1], dict):
        n = _prod(x[1]["shape"])
        size = "threaded" if n >= THREADED_MIN else "> 4096" if n > BLOCK else "small"
        event(f"x: {x[0]} ({size})")
    else:
        event(f"x: {x[0]}")
    fast, public = worker.call(run_forward_agreement, spec)
    event(fast)
    event(public)


def _backward(worker, spec):
    event(f"cache: {spec['cache'] if isinstance(spec['cache'], str) else 'tampered'}")
    for e in worker.call(run_backward_agreement, spec):
        event(e)


@_settings(400)
@given(spec=forward_specs())
def test_fast_forward_agrees_with_the_general_path(worker, spec):
    _forward(worker, spec)


@_settings(300)
@given(spec=backward_specs())
def test_fast_backward_agrees_with_the_general_path(worker, spec):
    _backward(worker, spec)


@pytest.mark.slow
@_settings(4000)
@given(spec=forward_specs())
def test_fast_forward_agrees_with_the_general_path_long(worker, spec):
    _forward(worker, spec)


@pytest.mark.slow
@_settings(3000)
@given(spec=backward_specs())
def test_fast_backward_agrees_with_the_general_path_long(worker, spec):
    _backward(worker, spec)
