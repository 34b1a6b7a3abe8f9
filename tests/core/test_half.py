"""float16 and bfloat16 dropout (issue 16): bit equality with cydrop.reference for every ISA,
thread count, chunking and offset; dtype kept; NaN, inf, subnormals and overflow; every op and
layer that takes 16-bit input, and the one TypeError of those that do not."""
import os
import pickle
import shutil
import subprocess

import numpy as np
import pytest

import cydrop
from cydrop import _kernels, fused, nn, variants
from cydrop import reference as R

from helpers import REPO_ROOT, run_python


def _dtype(name):
    if name == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(np.float16)


@pytest.fixture(params=["float16", "bfloat16"])
def hdtype(request):
    return _dtype(request.param)


def u16(a):
    return np.ascontiguousarray(a).view(np.uint16)


def every_bit_pattern(dt, repeat=3):
    """Every 16-bit pattern (NaNs, infs, subnormals, both zeros, the largest finite values),
    repeated so that the call spans many blocks and runs on the thread team."""
    return np.tile(np.arange(65536, dtype=np.uint16), repeat).view(dt)


def assert_bits_equal(a, b):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(u16(a), u16(b))


@pytest.mark.parametrize("rate", [0.1, 0.5, 1 / 3, 0.97])
@pytest.mark.parametrize("offset", [0, 4095, 2**40 + 3])
def test_every_bit_pattern_equals_the_reference_on_every_isa_and_thread_count(
        hdtype, rate, offset, all_isas):
    x = every_bit_pattern(hdtype)
    ref = R.dropout(x, rate, 11, offset)
    for isa in all_isas:
        _kernels.set_isa(isa)
        for n_threads in (1, 2):
            for mask in ("recompute", "bits", "bytes"):
                y, cache = cydrop.dropout(x, rate, seed=11, offset=offset, mask=mask,
                                          n_threads=n_threads)
                assert_bits_equal(y, ref)
                dx = cydrop.dropout_backward(x, cache, n_threads=n_threads)
                assert_bits_equal(dx, ref)


def test_equals_the_float32_route_rounded(hdtype):
    # kept: dtype(float32(x) * float32 scale); so dropout in float32, then rounding, is the same
    x = every_bit_pattern(hdtype, 1)
    y, _ = cydrop.dropout(x, 0.3, seed=5)
    y32, _ = cydrop.dropout(x.astype(np.float32), 0.3, seed=5)
    with np.errstate(over="ignore", invalid="ignore"):
        assert_bits_equal(y, y32.astype(hdtype))


def test_keep_decisions_are_float32s_and_dropout_mask_is_unchanged(hdtype):
    x = np.ones(10_000, dtype=hdtype)
    y, cache = cydrop.dropout(x, 0.4, seed=3, offset=77, mask="bits")
    m = cydrop.dropout_mask(10_000, 0.4, seed=3, offset=77)
    np.testing.assert_array_equal((u16(y) != 0).astype(np.uint8), m)
    np.testing.assert_array_equal(cache.keep_mask(), m)
    y32, _ = cydrop.dropout(np.ones(10_000, np.float32), 0.4, seed=3, offset=77)
    np.testing.assert_array_equal(y32 != 0, u16(y) != 0)


@pytest.mark.parametrize("cut", [1, 31, 4096, 5000, 12_289])
def test_any_chunking_gives_the_same_bits(hdtype, cut):
    x = np.random.default_rng(0).standard_normal(20_000).astype(hdtype)
    whole, _ = cydrop.dropout(x, 0.5, seed=8, offset=9)
    a, _ = cydrop.dropout(x[:cut], 0.5, seed=8, offset=9)
    b, _ = cydrop.dropout(x[cut:], 0.5, seed=8, offset=9 + cut)
    assert_bits_equal(np.concatenate([a, b]), whole)


@pytest.mark.parametrize("n", [1, 4097, 200_000])
def test_fast_and_general_paths_agree(hdtype, n):
    # an exact int n_threads takes the C fast path; a NumPy integer takes the validated path
    x = np.random.default_rng(9).standard_normal(n).astype(hdtype)
    for mask in ("recompute", "bits", "bytes"):
        yf, cf = cydrop.dropout(x, 0.25, seed=3, offset=7, mask=mask, n_threads=2)
        yg, cg = cydrop.dropout(x, 0.25, seed=3, offset=7, mask=mask, n_threads=np.int64(2))
        assert_bits_equal(yf, yg)
        assert repr(cf) == repr(cg) and cf.dtype == hdtype
        assert_bits_equal(cydrop.dropout_backward(x, cf, n_threads=2),
                          cydrop.dropout_backward(x, cg, n_threads=np.int64(2)))
        assert_bits_equal(yf, R.dropout(x, 0.25, 3, 7))


def test_special_values(hdtype):
    info = (np.finfo(np.float16) if hdtype == np.float16
            else __import__("ml_dtypes").finfo(hdtype))
    tiny_sub = np.array(info.smallest_subnormal, dtype=hdtype)
    vals = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.5], dtype=hdtype)
    vals = np.concatenate([vals, np.array([info.max, -info.max, info.tiny], dtype=hdtype),
                           np.full(3, tiny_sub)])
    x = np.tile(vals, 400)
    y, _ = cydrop.dropout(x, 0.5, seed=2)                     # scale 2
    keep = cydrop.dropout_mask(x.size, 0.5, seed=2).astype(bool)
    assert_bits_equal(y, R.dropout(x, 0.5, 2))
    y32 = y.astype(np.float32)
    x32 = x.astype(np.float32)
    kept_nan = keep & np.isnan(x32)
    assert kept_nan.any() and np.isnan(y32[kept_nan]).all()
    # a kept NaN is a quiet NaN: the top mantissa bit is set
    quiet = 0x0200 if hdtype == np.float16 else 0x0040
    assert (u16(y)[kept_nan] & quiet).all()
    kept_inf = keep & np.isinf(x32)
    assert (y32[kept_inf] == x32[kept_inf]).all()
    big = keep & (np.abs(x32) == np.float32(info.max))
    assert big.any() and np.isinf(y32[big]).all()             # overflow rounds to inf
    sub = keep & (x32 == np.float32(tiny_sub))
    assert sub.any() and (y32[sub] == 2 * np.float32(tiny_sub)).all()   # never flushed
    dropped = u16(y)[~keep]
    assert (dropped == 0).all()                               # +0.0, NaN and inf included


def test_bfloat16_rounds_to_nearest_even_like_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bf = np.dtype(ml_dtypes.bfloat16)
    # halfway cases and values just either side, with scale 1 / 0.75 (rate 0.25: thr 49152)
    rng = np.random.default_rng(4)
    x = rng.integers(0, 65536, 50_000, dtype=np.uint16).view(bf)
    for rate in (0.25, 0.5, 0.2):
        assert_bits_equal(cydrop.dropout(x, rate, seed=6)[0], R.dropout(x, rate, 6))


def test_out_inplace_and_mask_out(hdtype):
    x = np.random.default_rng(1).standard_normal((33, 130)).astype(hdtype)
    ref = R.dropout(x, 0.3, 4, 5)
    out = np.empty_like(x)
    y, _ = cydrop.dropout(x, 0.3, seed=4, offset=5, out=out)
    assert y is out
    assert_bits_equal(out, ref)
    xc = x.copy()
    y, cache = cydrop.dropout(xc, 0.3, seed=4, offset=5, inplace=True)
    assert y is xc
    assert_bits_equal(xc, ref)
    buf = np.empty((x.size + 7) // 8, np.uint8)
    y, cache = cydrop.dropout(x, 0.3, seed=4, offset=5, mask="bits", mask_out=buf)
    dout = np.random.default_rng(2).standard_normal(x.shape).astype(hdtype)
    d = dout.copy()
    dx = cydrop.dropout_backward(d, cache, inplace=True)
    assert dx is d
    assert_bits_equal(d, R.dropout_backward(dout, 0.3, 4, 5))
    # a non-contiguous input
    xs = x[:, ::2]
    y, _ = cydrop.dropout(xs, 0.3, seed=4)
    assert_bits_equal(y, R.dropout(np.ascontiguousarray(xs), 0.3, 4))


def test_backward_dtype_mismatch_and_identity(hdtype):
    x = np.ones((4, 5), hdtype)
    _, cache = cydrop.dropout(x, 0.5, seed=1)
    with pytest.raises(TypeError, match=r"dout must have the forward input's dtype"):
        cydrop.dropout_backward(np.ones((4, 5), np.float32), cache)
    y, cache = cydrop.dropout(x, 0.5, training=False)
    assert y is x and cydrop.dropout_backward(x, cache) is x


def test_cs231n_boundary_and_pickled_caches(hdtype):
    x = np.random.default_rng(3).standard_normal((20, 30)).astype(hdtype)
    out, cache = cydrop.dropout_forward(x, {"mode": "train", "p": 0.8, "seed": 7})
    assert_bits_equal(out, R.dropout(x, 1 - 0.8, 7))
    _, mask = cache
    assert mask.dtype == hdtype
    for mode in ("recompute", "bits", "bytes"):
        _, c = cydrop.dropout(x, 0.2, seed=7, mask=mode)
        c2 = pickle.loads(pickle.dumps(c))
        assert c2.dtype == hdtype
        assert_bits_equal(cydrop.dropout_backward(x, c2), cydrop.dropout_backward(x, c))
    np.random.seed(0)
    out, _ = cydrop.dropout_forward(x, {"mode": "train", "p": 0.5})
    assert out.dtype == hdtype


def test_fused_bias_relu_dropout(hdtype, all_isas):
    rng = np.random.default_rng(5)
    z = rng.standard_normal((70, 300)).astype(hdtype)
    z[0, :3] = np.array([np.nan, np.inf, -np.inf], dtype=hdtype)
    b = rng.standard_normal(300).astype(np.float32)
    ref = R.bias_relu_dropout(z, b, 0.4, 9, 13)
    for isa in all_isas:
        _kernels.set_isa(isa)
        for n_threads in (1, 2):
            a, cache = fused.bias_relu_dropout(z, b, 0.4, seed=9, offset=13, n_threads=n_threads)
            assert_bits_equal(a, ref)
    a, _ = fused.bias_relu_dropout(z, b.astype(hdtype), 0.4, seed=9, offset=13)
    assert_bits_equal(a, R.bias_relu_dropout(z, b.astype(hdtype).astype(np.float32), 0.4, 9,
                                             13))
    a0, _ = fused.bias_relu_dropout(z, b, 0.0)
    assert_bits_equal(a0, R.bias_relu_dropout(z, b, 0.0, 0))
    a, cache = fused.bias_relu_dropout(z, b, 0.4, seed=9, offset=13)
    dout = rng.standard_normal(z.shape).astype(hdtype)
    dz, db = fused.bias_relu_dropout_backward(dout, cache)
    assert dz.dtype == hdtype and db.dtype == np.float32
    _, dcache = cydrop.dropout(z, 0.4, seed=9, offset=13)
    expected = np.where(a.astype(np.float32) > 0, cydrop.dropout_backward(dout, dcache),
                        np.zeros((), hdtype))
    assert_bits_equal(dz, expected)
    assert_bits_equal(db, _row_order_sum(dz))
    with pytest.raises(TypeError, match=r"b must have z's dtype .* or float32"):
        fused.bias_relu_dropout(z, b.astype(np.float64), 0.4, seed=1)


def _row_order_sum(dz):
    """db of the fused backward: float32(dz) added row by row from +0.0 (the float32 kernel's
    order), spelled out so that NumPy's own reduction order does not enter."""
    db = np.zeros(dz.shape[1], dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        for row in dz.astype(np.float32):
            db += row
    return db


@pytest.mark.parametrize("m", [1, 15, 16, 17, 300])
def test_fused_backward_kernel_every_bit_pattern(hdtype, all_isas, m):
    """The 16-bit fused backward in C against its rule on every 16-bit pattern, in da and in a
    (NaN, both zeros, negatives, subnormals and inf in the forward output all give +0.0; only
    1 <= bits(a) <= +inf pass the gradient), on every ISA, in place and not."""
    fmt_bf16 = hdtype.name == "bfloat16"
    pat = np.arange(65536, dtype=np.uint16)
    rows = -(-65536 // m)
    da = np.resize(pat, rows * m).reshape(rows, m).view(hdtype)
    a = np.resize(np.roll(pat, 12345), rows * m).reshape(rows, m).view(hdtype)
    scale = 1 / 0.6
    with np.errstate(over="ignore", invalid="ignore"):
        g = (da.astype(np.float32) * np.float32(scale)).astype(hdtype)
    want = np.where(a.astype(np.float32) > 0, g, np.zeros((), hdtype))
    want_db = _row_order_sum(want)
    for isa in all_isas:
        _kernels.set_isa(isa)
        dz = np.empty_like(da)
        db = np.full(m, np.nan, dtype=np.float32)          # overwritten, not added to
        _kernels.bias_relu_dropout_backward_half(u16(da), u16(a), dz.view(np.uint16), db,
                                                 scale, fmt_bf16)
        assert_bits_equal(dz, want)
        # bits equal, except that a NaN sum's payload is not specified (which NaN an IEEE
        # add of two NaNs returns is the compiler's choice of operand order)
        nan = np.isnan(want_db)
        assert nan.any() and (np.isnan(db) == nan).all()
        np.testing.assert_array_equal(db.view(np.uint32)[~nan], want_db.view(np.uint32)[~nan])
        inplace = da.copy()
        _kernels.bias_relu_dropout_backward_half(u16(inplace), u16(a), inplace.view(np.uint16),
                                                 db, scale, fmt_bf16)
        assert_bits_equal(inplace, want)


def test_fused_backward_out_and_dtype_kept(hdtype):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((9, 40)).astype(hdtype)
    b = rng.standard_normal(40).astype(np.float32)
    a, cache = fused.bias_relu_dropout(z, b, 0.3, seed=2)
    dout = rng.standard_normal(z.shape).astype(hdtype)
    dz, db = fused.bias_relu_dropout_backward(dout, cache)
    buf = np.empty_like(dout)
    dz2, db2 = fused.bias_relu_dropout_backward(dout, cache, out=buf)
    assert dz2 is buf
    assert_bits_equal(dz2, dz)
    d = dout.copy()
    dz3, db3 = fused.bias_relu_dropout_backward(d, cache, out=d)
    assert dz3 is d
    assert_bits_equal(dz3, dz)
    np.testing.assert_array_equal(db2, db)
    np.testing.assert_array_equal(db3, db)
    with pytest.raises(ValueError, match="dz must have da's shape"):
        _kernels.bias_relu_dropout_backward_half(u16(dout), u16(a), u16(dout)[:1], db, 1.0)


def test_dropout_nd_spatial_and_locked(hdtype, all_isas):
    x = np.random.default_rng(6).standard_normal((3, 4, 5, 70)).astype(hdtype)
    for isa in all_isas:
        _kernels.set_isa(isa)
        for kwargs in ({"broadcast_axes": (2, 3)}, {"noise_shape": (3, 1, 5, 70)}, {}):
            y, cache = variants.dropout_nd(x, 0.3, seed=2, offset=4, **kwargs)
            y32, _ = variants.dropout_nd(x.astype(np.float32), 0.3, seed=2, offset=4, **kwargs)
            assert_bits_equal(y, y32.astype(hdtype))
            dx = variants.dropout_nd_backward(x, cache, n_threads=2)
            assert_bits_equal(dx, y)
    y, _ = variants.spatial_dropout(x, 0.5, seed=1)
    assert y.dtype == hdtype and (u16(y) == u16(y)[:, :, :1, :1]).all() | (u16(y) != 0).any()
    y, _ = variants.locked_dropout(x, 0.5, seed=1)
    assert y.dtype == hdtype
    with np.errstate(invalid="ignore"):
        assert_bits_equal(variants.dropout_nd(x, 0.5, seed=1)[0], R.dropout(x, 0.5, 1))


@pytest.mark.parametrize("call", [
    lambda x: variants.alpha_dropout(x, 0.3, seed=1),
    lambda x: variants.gaussian_dropout(x, 0.3, seed=1),
    lambda x: variants.exact_k_dropout(x, 0.3, seed=1),
    lambda x: variants.dropconnect_forward(x, np.ones((4, 3), np.float32),
                                           np.zeros(3, np.float32), 0.3, seed=1),
], ids=["alpha", "gaussian", "exact_k", "dropconnect"])
def test_variants_without_a_16bit_kernel_name_the_supported_dtypes(hdtype, call):
    x = np.ones((2, 4), hdtype)
    with pytest.raises(TypeError, match=rf"x has dtype {hdtype}; only float32 and float64 are "
                                        r"supported here \(float16 and bfloat16 only by "):
        call(x)


def test_unsupported_dtypes_still_name_what_dropout_takes():
    with pytest.raises(TypeError, match=r"x has dtype int16; only float32 and float64 are "
                                        r"supported, and float16 and bfloat16"):
        cydrop.dropout(np.ones(3, np.int16), 0.5, seed=1)


def test_nn_layers_and_a_sequential_forward(hdtype):
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 5)).astype(hdtype)
    for layer in (nn.Dropout(0.5, seed=1), nn.BroadcastDropout(0.5, (2,), seed=1),
                  nn.SpatialDropout(0.5, seed=1), nn.LockedDropout(0.5, seed=1)):
        y = layer.forward(x)
        assert y.dtype == hdtype
        assert layer.backward(x).dtype == hdtype
        assert layer.mc_forward(x, cydrop.SeedStream(3)).dtype == hdtype
    for layer in (nn.AlphaDropout(0.5, seed=1), nn.GaussianDropout(0.5, seed=1)):
        with pytest.raises(TypeError, match="only float32 and float64"):
            layer.forward(x)
    model = nn.Sequential(nn.Dense(20, 30, dtype=np.float32, seed=0), nn.ReLU(),
                          nn.Dropout(0.3, seed=1), nn.Dense(30, 5, dtype=np.float32, seed=2))
    xb = x.reshape(6, 20)
    out = model.forward(xb)
    assert out.dtype == hdtype
    dx = model.backward(np.ones_like(out))
    assert dx.dtype == hdtype and dx.shape == xb.shape
    for layer in model.children() if hasattr(model, "children") else ():
        for p in getattr(layer, "params", {}).values():
            assert p.dtype == np.float32           # float32 master weights


def test_import_cydrop_does_not_import_ml_dtypes():
    code = "import sys, numpy, cydrop; print('ml_dtypes' in sys.modules)"
    proc = run_python(["-c", code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


_SRC = os.path.join(REPO_ROOT, "src")
_DUMP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "c", "half_dump.c")


def _compiler():
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_compiler() is None, reason="no C compiler on PATH")
@pytest.mark.skipif(not os.path.exists(os.path.join(_SRC, "cydrop_kernels.c")),
                    reason="needs the C sources (src/) of a checkout or an unpacked sdist")
@pytest.mark.parametrize("config", [[], ["-DCYDROP_NO_INTRINSICS"], ["-DCYDROP_NO_VEC"]],
                         ids=["default", "no-intrinsics", "no-vectors"])
def test_portable_c_builds_give_the_same_16bit_bits(tmp_path, config):
    """Without x86 intrinsics (no F16C: the portable float16 conversion) or without vectors,
    every ISA of the C build gives the bits of the Python API (tests/core/c/half_dump.c)."""
    exe = str(tmp_path / "half_dump")
    cmd = [_compiler(), "-O2", "-std=c99", "-ffp-contract=off", *config, "-I", _SRC, _DUMP,
           os.path.join(_SRC, "cydrop_kernels.c"), "-lm", "-o", exe]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    x = np.tile(np.arange(65536, dtype=np.uint16), 3)
    rate = 1.0 - 39322 / 65536
    parts = []
    for dt in (np.dtype(np.float16), _bf16_or_none()):
        if dt is None:
            continue
        y, cache = cydrop.dropout(x.view(dt), rate, seed=12345, offset=123, mask="bits")
        assert cache.threshold == 39322
        dx = cydrop.dropout_backward(x.view(dt), cache)
        parts.append(u16(y).tobytes() + cache.stored_mask.tobytes() + u16(dx).tobytes())
    for isa in _kernels.isas():
        out = subprocess.run([exe, isa], capture_output=True)
        assert out.returncode == 0, (isa, out.stderr)
        size = len(parts[0])
        assert out.stdout[:size] == parts[0], f"float16 {isa} {config}"
        if len(parts) > 1:
            assert out.stdout[size:] == parts[1], f"bfloat16 {isa} {config}"


def _bf16_or_none():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)
