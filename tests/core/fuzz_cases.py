"""Fuzz cases as plain data, shared by test_fuzz_differential.py and
test_fast_general_agreement.py.

A case travels to the child interpreter that runs it (helpers.GuardedWorker) as plain data: an
array is a layout spec (dtype, shape, steps, transposition, misalignment, fill and special
values) that :func:`build_layout` turns into the array there. Here are the layout builders, the
hypothesis strategies both modules draw shapes, layouts and rates from, their thread counts and
their settings.
"""

import math

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

TWO64 = 2**64
BLOCK = 4096
THREADED_MIN = 31 * BLOCK + 1          # 32 chunks: the smallest call that runs multi-threaded

SAFE_THREADS = [None, 1, 2, 3, -1]
# Thread counts far beyond the cores: valid (any int is accepted and never changes the result),
# but a count that reaches the OpenMP runtime unchecked aborts the process (libgomp cannot
# allocate the team: 2**31 - 1 -> "Out of memory"; 2**20, 10**5 -> SIGSEGV on thread creation).
HUGE_THREADS = [2**40, 2**31 - 1, 2**31, 2**20, 10**5, 2**63, 2**64 + 5, -2**40]


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
