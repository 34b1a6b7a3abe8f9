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

Every case runs in a child interpreter (:class:`GuardedWorker`), so a kernel that segfaults or
aborts (a misaligned pointer, a thread count the OpenMP runtime cannot allocate) fails one test
instead of killing the pytest run. test_fast_general_agreement.py uses the same worker.
"""

import math
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cydrop
from cydrop.testing import reference

from helpers import TESTS_DIR, python_env

TWO64 = 2**64
BLOCK = 4096
THREADED_MIN = 31 * BLOCK + 1          # 32 chunks: the smallest call that runs multi-threaded


# ------------------------------------------------------------------------ the guarded worker

_WORKER_SRC = r"""
import importlib, importlib.util, os, pickle, struct, sys, traceback
sys.path.insert(0, sys.argv[1])
requests = sys.stdin.buffer
replies = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)                 # prints go to stderr, never into the reply stream
sys.stdout = sys.stderr

def load(modname, path):
    if modname in sys.modules:
        return sys.modules[modname]
    # by path, with its folder on sys.path (tests/ is there already, for helpers)
    if os.path.dirname(path) not in sys.path:
        sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod
    spec.loader.exec_module(mod)
    return mod

while True:
    head = requests.read(8)
    if len(head) < 8:
        break
    (size,) = struct.unpack("<Q", head)
    modname, path, func, args = pickle.loads(requests.read(size))
    if os.environ.get("CYDROP_FUZZ_TRACE"):          # debugging: which case hung or crashed
        with open(os.environ["CYDROP_FUZZ_TRACE"], "a") as trace:
            trace.write(f"{func}{args!r}\n")
    try:
        reply = ("ok", getattr(load(modname, path), func)(*args))
    except BaseException as exc:
        reply = ("error", type(exc).__name__, traceback.format_exc())
    try:
        data = pickle.dumps(reply)
    except Exception:
        data = pickle.dumps(("error", "PicklingError", traceback.format_exc()))
    replies.write(struct.pack("<Q", len(data)) + data)
    replies.flush()
"""


class ChildCrashed(AssertionError):
    """The child interpreter died (signal, abort, exit) or hung while running a case."""


class _Died(Exception):
    pass


_FAILURE_TYPES = {}


def child_failure(kind, tb):
    """An AssertionError subclass per failing place in the child (its exception type and the
    innermost test-file line of its traceback), so hypothesis reports distinct failures
    separately instead of stopping at the first one."""
    where = "?"
    for line in tb.splitlines():
        line = line.strip()
        if line.startswith("File ") and "test_" in line:
            where = line
    key = (kind, where)
    if key not in _FAILURE_TYPES:
        tag = re.sub(r"\W+", "_", f"{kind}_{where.rsplit('/', 1)[-1]}")[:80]
        _FAILURE_TYPES[key] = type(f"ChildFailure_{tag}", (AssertionError,), {})
    return _FAILURE_TYPES[key]


def _crash_type(how):
    key = ("crash", how)
    if key not in _FAILURE_TYPES:
        _FAILURE_TYPES[key] = type("ChildCrashed_" + re.sub(r"\W+", "_", how), (ChildCrashed,), {})
    return _FAILURE_TYPES[key]


class GuardedWorker:
    """A long-lived child interpreter that runs module-level test functions on plain data.

    ``call(func, *args)`` runs ``func(*args)`` in the child (``func`` must be a module-level
    function of an importable test module, ``args`` picklable) and returns its result. An
    exception in the child is re-raised here as an AssertionError carrying the child's
    traceback; a child that dies or exceeds ``timeout`` seconds raises :class:`ChildCrashed`
    naming the exit status, the call and the end of its stderr, and the next call starts a
    fresh child.
    """

    def __init__(self, timeout=120.0):
        self.timeout = timeout
        self.proc = None
        self.err = None
        self.cwd = tempfile.mkdtemp(prefix="cydrop-fuzz-")

    def _start(self):
        if self.err is not None:
            self.err.close()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER_SRC, TESTS_DIR],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, env=python_env(), cwd=self.cwd)

    def _drop(self):
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.proc = None

    def _read(self, n, deadline):
        fd = self.proc.stdout.fileno()
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, n - got)
            if not chunk:
                raise _Died
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _stderr_since(self, start):
        fd = self.err.fileno()
        end = os.fstat(fd).st_size
        text = os.pread(fd, end - start, start).decode("utf-8", "replace")
        return text[-3000:]

    def call(self, func, *args):
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        module = sys.modules[func.__module__]
        msg = pickle.dumps((func.__module__, module.__file__, func.__name__, args))
        err_start = os.fstat(self.err.fileno()).st_size
        what = f"{func.__name__}(*{args!r})"
        try:
            self.proc.stdin.write(struct.pack("<Q", len(msg)) + msg)
            self.proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            (size,) = struct.unpack("<Q", self._read(8, deadline))
            reply = pickle.loads(self._read(size, deadline))
        except (_Died, BrokenPipeError, ConnectionResetError):
            rc = self.proc.wait(timeout=30)
            self._drop()
            how = (f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited with {rc}")
            raise _crash_type(how)(f"the child interpreter {how} while running {what}\n"
                               f"--- its stderr ---\n{self._stderr_since(err_start)}") from None
        except TimeoutError:
            self.proc.kill()
            self.proc.wait(timeout=30)
            self._drop()
            raise ChildCrashed(f"the child interpreter hung (> {self.timeout} s) running "
                               f"{what}\n--- its stderr ---\n{self._stderr_since(err_start)}"
                               ) from None
        if reply[0] == "ok":
            return reply[1]
        raise child_failure(reply[1], reply[2])(
            f"{reply[1]} in the child interpreter running {what}:\n{reply[2]}")

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=30)
            self._drop()
        if self.err is not None:
            self.err.close()
            self.err = None


@pytest.fixture(scope="module")
def worker():
    w = GuardedWorker()
    yield w
    w.close()


def _settings(n):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --------------------------------------------------------------------- arrays from plain data

SPECIALS = {
    "nan": math.nan, "-nan": -math.nan, "inf": math.inf, "-inf": -math.inf, "-0.0": -0.0,
    "0.0": 0.0, "max": "max", "tiny": "tiny", "-subnormal": "-subnormal", "1e300": 1e300,
}


def _special_value(name, dtype):
    v = SPECIALS[name]
    info = np.finfo(dtype)
    if v == "max":
        return info.max
    if v == "tiny":
        return info.smallest_subnormal
    if v == "-subnormal":
        return -info.smallest_subnormal * 3
    return v


def uint_view(a):
    """The raw bits of a float array (any layout/byte order), as native uints, C order."""
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("=")) if not a.dtype.isnative else a
    return a.view(np.uint32 if a.dtype.itemsize == 4 else np.uint64)


def native(dtype):
    return np.dtype(dtype).newbyteorder("=")


def build_layout(L, slack=0):
    """(root, view) for a layout spec.

    ``root`` is a uint8 array over the whole allocation the view lives in (with ``slack`` spare
    bytes before and after); ``view`` the array the test passes, built by slicing (steps,
    negative steps) and transposing a contiguous base placed ``misalign`` bytes past an aligned
    address. Filled deterministically from ``L['fill']``, with ``L['special']`` values written
    at the given flat positions of the view.
    """
    dt = np.dtype(L["dtype"])
    pre = L["pre_shape"]
    base_shape = tuple(abs(s) * n + p for n, s, p in zip(pre, L["steps"], L["pads"]))
    count = int(np.prod(base_shape, dtype=np.int64))
    nbytes = count * dt.itemsize
    start = slack + L["misalign"]
    raw = np.empty(start + nbytes + slack + 64, dtype=np.uint8)
    shift = (-raw.ctypes.data) % 64                 # 64-byte aligned start, then misalign
    root = raw[shift:shift + start + nbytes + slack]
    rng = np.random.default_rng(L["fill"])
    root[...] = rng.integers(0, 256, root.size, dtype=np.uint8)
    base = np.ndarray((count,), dtype=dt, buffer=root, offset=start)
    base[...] = (rng.standard_normal(count) * 4).astype(dt)
    v = base.reshape(base_shape)
    idx = []
    for n, s, a, p in zip(pre, L["steps"], L["starts"], L["pads"]):
        size = abs(s) * n + p
        if n == 0:
            idx.append(slice(0, 0))
        elif s > 0:
            first = min(a, p)
            idx.append(slice(first, first + s * (n - 1) + 1, s))
        else:
            first = size - 1 - min(a, p)
            stop = first + s * n
            idx.append(slice(first, None if stop < 0 else stop, s))
    if idx:                                         # (a 0-d array indexed by () is a scalar)
        v = v[tuple(idx)]
    if L["perm"] is not None:
        v = v.transpose(L["perm"])
    assert v.shape == L["shape"], (v.shape, L)
    if v.size:
        with np.errstate(over="ignore"):
            for pos, name in L["special"]:
                v.flat[pos % v.size] = _special_value(name, dt)
    return root, v


def covered(view, root):
    """Boolean mask over ``root``'s bytes: the bytes ``view``'s elements occupy."""
    mask = np.zeros(root.size, dtype=bool)
    if view.size == 0:
        return mask
    start = view.__array_interface__["data"][0] - root.__array_interface__["data"][0]
    offs = np.full((), start, dtype=np.int64)
    for n, s in zip(view.shape, view.strides):
        offs = offs[..., None] + np.arange(n, dtype=np.int64) * s
    offs = offs.reshape(-1)[:, None] + np.arange(view.itemsize, dtype=np.int64)
    offs = offs.reshape(-1)
    inside = (offs >= 0) & (offs < root.size)
    assert inside.all(), "a view reaches outside its root"
    mask[offs] = True
    return mask


def assert_only_written(root, before, allowed, what):
    """Every byte of ``root`` outside ``allowed`` equals ``before``."""
    changed = root != before
    bad = changed & ~allowed
    assert not bad.any(), (f"{what}: {int(bad.sum())} bytes outside the call's targets changed "
                           f"(first at byte {int(np.flatnonzero(bad)[0])})")


def rng_state_equal(a, b):
    return a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2:] == b[2:]


# ------------------------------------------------------------------------------ strategies

def _prod(t):
    return int(np.prod(t, dtype=np.int64))


@st.composite
def shapes(draw):
    kind = draw(st.integers(0, 19))
    if kind <= 15:
        nd = draw(st.integers(0, 5))
        side = [7, 7, 6, 5, 4, 3][nd]
        return tuple(draw(st.integers(0, side)) for _ in range(nd)), "small"
    if kind <= 17:                      # more than one block (4096 elements)
        n = draw(st.integers(BLOCK + 1, 5 * BLOCK + 7))
        if draw(st.booleans()):
            return (n,), "block"
        a = draw(st.integers(2, 9))
        return (a, -(-n // a)), "block"
    n = draw(st.integers(THREADED_MIN, 32 * BLOCK + 3000))   # the multi-threaded loop
    return ((n,) if draw(st.booleans()) else (2, -(-n // 2))), "threaded"


@st.composite
def layouts(draw, shape, dtype=None, misalign=None, contiguous=False):
    """A layout spec with final shape ``shape``; dtype and misalignment drawn unless given."""
    if dtype is None:
        dtype = draw(st.sampled_from(["<f4", "<f8", ">f4", ">f8", "<f4", "<f8"]))
    itemsize = np.dtype(dtype).itemsize
    if misalign is None:
        misalign = draw(st.sampled_from([0, 0, 0, 0, 1, itemsize // 2, itemsize - 1]))
    nd = len(shape)
    big = _prod(shape) > 20_000
    perm = None
    if nd >= 2 and not contiguous and draw(st.integers(0, 3)) == 0:
        perm = tuple(draw(st.permutations(range(nd))))
    pre = list(shape)
    if perm is not None:
        for i, p in enumerate(perm):
            pre[p] = shape[i]
    step_choices = [1] if contiguous else ([1, -1, 2] if big else [1, 1, 1, -1, 2, -2, 3])
    steps = [draw(st.sampled_from(step_choices)) for _ in range(nd)]
    pads = [0 if contiguous else draw(st.integers(0, 2)) for _ in range(nd)]
    starts = [draw(st.integers(0, 2)) for _ in range(nd)]
    # keep the allocation small: fall back to unit steps when the base would be large
    if _prod([abs(s) * n + p for n, s, p in zip(pre, steps, pads)]) > 400_000:
        steps = [1 if s > 0 else -1 for s in steps]
    special = draw(st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(sorted(SPECIALS))),
                            max_size=4))
    return {"dtype": dtype, "shape": tuple(shape), "pre_shape": tuple(pre), "steps": tuple(steps),
            "pads": tuple(pads), "starts": tuple(starts), "perm": perm, "misalign": misalign,
            "fill": draw(st.integers(0, 2**32 - 1)), "special": tuple(special)}


@st.composite
def rates(draw):
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.sampled_from([0.0, 1.0, 0.5, 2**-17, 1 - 2**-17, 2**-16, 1 - 2**-16,
                                     5e-324, 1 - 2**-53, 0.1, 0.3]))
    if kind <= 3:      # around the threshold's rounding points: keep * 65536 = k + 1/2 or k
        k = draw(st.integers(0, 65535))
        keep = (k + draw(st.sampled_from([0.5, 0.0, 1.0]))) / 65536.0
        rate = 1.0 - keep
        for _ in range(draw(st.integers(0, 2))):
            rate = float(np.nextafter(rate, draw(st.sampled_from([0.0, 1.0]))))
        return min(max(rate, 0.0), 1.0)
    return draw(st.floats(0.0, 1.0, allow_nan=False))


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


SAFE_THREADS = [None, 1, 2, 3, -1]
# Thread counts far beyond the cores: valid (any int is accepted and never changes the result),
# but a count that reaches the OpenMP runtime unchecked aborts the process (libgomp cannot
# allocate the team: 2**31 - 1 -> "Out of memory"; 2**20, 10**5 -> SIGSEGV on thread creation).
HUGE_THREADS = [2**40, 2**31 - 1, 2**31, 2**20, 10**5, 2**63, 2**64 + 5, -2**40]
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
