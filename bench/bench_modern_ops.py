"""The modern dropout ops against the NumPy a user would write and against torch, in one run.

Each op runs at one memory-bound float32 size: ``drop_path`` (stochastic depth, one decision
per sample), ``softmax_dropout`` and its backward (attention dropout over a row softmax),
``drop_block`` (DropBlock over 2-D feature maps), ``feature_alpha_dropout`` (one alpha-dropout
decision per channel) and channels-last ``spatial_dropout`` (``cydrop.variants.spatial_dropout``
with ``channel_axis=-1``). The implementations of each op:

* ``cydrop``: the op on the default team, writing into a preallocated ``out=`` where it takes
  one;
* ``numpy``: the same formulation in NumPy, a ``np.random.default_rng`` mask, the scale and the
  multiply (the softmax first for ``softmax_dropout``; the seed grid, pad, max-pool, invert and
  rescale of torchvision's ``drop_block2d`` for ``drop_block``, the pool as one running maximum
  per spatial axis; for the backward, ``gp = g * P; gp - P * gp.sum(-1)`` with ``g`` the
  dropped upstream gradient);
* ``torch`` (when torch imports, on the same thread count): ``F.dropout`` after ``F.softmax``
  and autograd's backward of the pair, ``F.feature_alpha_dropout``, ``F.dropout2d`` on a
  channels-last tensor, and, where torch has no core op, the torch form of timm's
  ``drop_path`` (a per-sample ``bernoulli_`` mask divided by the keep probability) and of
  torchvision's ``drop_block2d`` (``F.max_pool2d`` over the ``bernoulli_`` seed grid).

Every row's output is checked once before timing (shape, dtype, the dropped fraction within a
loose bound, the backward against the formula on a few rows), so a broken row cannot time.
Every row is then timed round-robin in one run with the sampler of ``cydrop bench`` (best of
``--repeat`` samples, each after a warm-up). The JSON (``--json PATH``) is the ``ops`` part of
the docs' ``modern`` record (``python -m cydrop.apps.docdata``); ``--quick`` takes small shapes
(a trial of the pipeline, not a measurement).

Run with ``python bench/bench_modern_ops.py [--json PATH] [--repeat N] [--threads N]``, or
``pytest bench/bench_modern_ops.py --benchmark-only`` (each op's rows at the small shapes).
"""

import argparse
import math
import sys

import numpy as np
import pytest

import cydrop
from cydrop import variants

RATE = 0.1
BLOCK = 7                  # drop_block's block size (timm's default for DropBlock)
EPS = 1e-6                 # drop_block's eps, torchvision's
ALPHA_PRIME = -1.7580993408473766    # alpha' of SELU, torch's feature alpha dropout constant
IMPLS = ("cydrop", "numpy", "torch")

# op: (shape, what the shape is); spatial shapes are NCHW except spatial_dropout's NHWC
SHAPES = {"drop_path": (256, 50_000),
          "softmax_dropout": (8192, 1024),
          "softmax_dropout_backward": (8192, 1024),
          "drop_block": (64, 64, 56, 56),
          "feature_alpha_dropout": (64, 64, 56, 56),
          "spatial_dropout_nhwc": (64, 56, 56, 64)}
QUICK_SHAPES = {"drop_path": (64, 1024),
                "softmax_dropout": (256, 256),
                "softmax_dropout_backward": (256, 256),
                "drop_block": (8, 8, 28, 28),
                "feature_alpha_dropout": (8, 8, 28, 28),
                "spatial_dropout_nhwc": (8, 28, 28, 8)}


def _torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    return torch


# ------------------------------------------------------------------------------- checks

def _fraction(dropped):
    dropped = np.asarray(dropped, dtype=bool)
    return dropped.mean(), dropped.size


def _zero_units(out, axes):
    """The fraction of units (``out`` reduced over ``axes``) that are all zero, and the count."""
    return _fraction(np.all(out == 0, axis=axes))


def _const_channels(out):
    """The fraction of (sample, channel) maps of an NCHW ``out`` that are one constant."""
    ch = out.reshape(out.shape[0] * out.shape[1], -1)
    return _fraction(np.all(ch == ch[:, :1], axis=1))


def check(op, impl, out, shape, fraction):
    """Raise AssertionError unless ``out`` is a float32 array of ``shape`` whose dropped
    fraction (``fraction(out)``: the fraction and the number of decisions) is near RATE."""
    out = np.asarray(out)
    assert out.shape == tuple(shape), (op, impl, out.shape, shape)
    assert out.dtype == np.float32, (op, impl, out.dtype)
    assert np.isfinite(out).all(), (op, impl)
    frac, units = fraction(out)
    tol = max(0.04, 5 * math.sqrt(RATE * (1 - RATE) / units))
    assert abs(frac - RATE) <= tol, (op, impl, frac, units)


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def check_backward(impl, dz, z, y, dout, rows=8):
    """``dz`` against ``gp - P * gp.sum(-1)``, ``gp = dout * (y != 0) / keep * P``, on a few
    rows (``y`` the forward output the backward belongs to), and ``y``'s dropped fraction."""
    check("softmax_dropout_backward", impl, y, z.shape, lambda o: _fraction(o == 0))
    dz = np.asarray(dz)
    assert dz.shape == z.shape and dz.dtype == np.float32, (impl, dz.shape, dz.dtype)
    p = _softmax(z[:rows].astype(np.float64))
    gp = dout[:rows] * (y[:rows] != 0) / (1 - RATE) * p
    np.testing.assert_allclose(dz[:rows], gp - p * gp.sum(-1, keepdims=True), rtol=1e-3,
                               atol=1e-6, err_msg=impl)


# ------------------------------------------------------------------------------- the rows

def _numpy_drop_block(x, rng):
    """torchvision's drop_block2d in NumPy: seeds with probability gamma on the valid grid, pad,
    a block x block max-pool (a running maximum along each spatial axis), invert, rescale."""
    n, c, h, w = x.shape
    b = min(BLOCK, h, w)
    gamma = RATE * h * w / (b * b * (h - b + 1) * (w - b + 1))
    noise = (rng.random((n, c, h - b + 1, w - b + 1), dtype=np.float32) < gamma)
    noise = np.pad(noise, [(0, 0), (0, 0), (b - 1, b - 1), (b - 1, b - 1)])
    for ax in (2, 3):
        size = noise.shape[ax] - b + 1
        pooled = noise.take(range(0, size), axis=ax).copy()
        for k in range(1, b):
            pooled |= noise.take(range(k, k + size), axis=ax)
        noise = pooled
    keep = ~noise
    scale = np.float32(keep.size / (EPS + np.count_nonzero(keep)))
    return x * keep * scale


def _torch_drop_block(torch, xt):
    """torchvision's drop_block2d (inplace=False, training) in torch ops."""
    import torch.nn.functional as F

    n, c, h, w = xt.shape
    b = min(BLOCK, h, w)
    gamma = RATE * h * w / (b * b * (h - b + 1) * (w - b + 1))
    noise = torch.empty((n, c, h - b + 1, w - b + 1), dtype=xt.dtype).bernoulli_(gamma)
    noise = F.pad(noise, [b // 2] * 4, value=0)
    noise = F.max_pool2d(noise, stride=(1, 1), kernel_size=(b, b), padding=b // 2)
    noise = 1 - noise
    scale = noise.numel() / (EPS + noise.sum())
    return xt * noise * scale


def op_rows(op, shape, team, torch=None):
    """``{impl: (callable, check)}`` for one op: ``callable()`` runs one call and returns its
    output array; ``check(output)`` raises unless the output is sane."""
    rng = np.random.default_rng(1)
    keep = np.float32(1 - RATE)
    x = rng.standard_normal(shape).astype(np.float32)
    nprng = np.random.default_rng(0)
    F = None
    if torch is not None:
        import torch.nn.functional as F
    rows = {}

    def add(impl, fn, fraction):
        rows[impl] = (fn, lambda out: check(op, impl, out, shape, fraction))

    if op == "drop_path":
        out = np.empty_like(x)
        lead = (shape[0],) + (1,) * (len(shape) - 1)
        frac = lambda o: _zero_units(o, tuple(range(1, o.ndim)))  # noqa: E731
        add("cydrop", lambda: cydrop.drop_path(x, RATE, training=True, seed=1, out=out,
                                               n_threads=team)[0], frac)
        add("numpy", lambda: x * ((nprng.random(lead, dtype=np.float32) < keep) / keep), frac)
        if torch is not None:
            xt = torch.from_numpy(x)
            add("torch", lambda: (xt * xt.new_empty(lead).bernoulli_(float(keep))
                                  .div_(float(keep))).numpy(), frac)
    elif op == "softmax_dropout":
        out = np.empty_like(x)
        frac = lambda o: _fraction(o == 0)  # noqa: E731

        def numpy_fwd():
            mask = nprng.random(shape, dtype=np.float32) < keep
            return _softmax(x) * mask / keep

        add("cydrop", lambda: cydrop.softmax_dropout(x, RATE, training=True, seed=1, out=out,
                                                     n_threads=team)[0], frac)
        add("numpy", numpy_fwd, frac)
        if torch is not None:
            xt = torch.from_numpy(x)
            add("torch", lambda: F.dropout(F.softmax(xt, -1), RATE, training=True).numpy(), frac)
    elif op == "softmax_dropout_backward":
        dout = rng.standard_normal(shape).astype(np.float32)
        y, cache = cydrop.softmax_dropout(x, RATE, training=True, seed=1, n_threads=team)
        mask = nprng.random(shape, dtype=np.float32) < keep
        p = _softmax(x)
        ys = {"cydrop": y, "numpy": p * mask / keep}

        def numpy_bwd():
            gp = dout * mask / keep * p
            return gp - p * gp.sum(-1, keepdims=True)

        rows["cydrop"] = (lambda: cydrop.softmax_dropout_backward(dout, cache, n_threads=team),
                          None)
        rows["numpy"] = (numpy_bwd, None)
        if torch is not None:
            zt = torch.from_numpy(x.copy()).requires_grad_(True)
            yt = F.dropout(F.softmax(zt, -1), RATE, training=True)
            gt = torch.from_numpy(dout)
            ys["torch"] = yt.detach().numpy()
            rows["torch"] = (lambda: torch.autograd.grad(yt, zt, gt, retain_graph=True)[0]
                             .numpy(), None)
        for impl, (fn, _) in list(rows.items()):
            rows[impl] = (fn, lambda dz, impl=impl: check_backward(impl, dz, x, ys[impl], dout))
    elif op == "drop_block":
        out = np.empty_like(x)
        frac = lambda o: _fraction(o == 0)  # noqa: E731
        add("cydrop", lambda: cydrop.drop_block(x, RATE, block_size=BLOCK, training=True, seed=1,
                                                out=out, n_threads=team)[0], frac)
        add("numpy", lambda: _numpy_drop_block(x, nprng), frac)
        if torch is not None:
            xt = torch.from_numpy(x)
            add("torch", lambda: _torch_drop_block(torch, xt).numpy(), frac)
    elif op == "feature_alpha_dropout":
        q = float(keep)
        a = (q + ALPHA_PRIME ** 2 * q * (1 - q)) ** -0.5
        b = -a * (1 - q) * ALPHA_PRIME
        lead = shape[:2] + (1,) * (len(shape) - 2)

        def numpy_fad():
            m = nprng.random(lead, dtype=np.float32) < keep
            mul = np.where(m, a, 0).astype(np.float32)
            add_ = np.where(m, b, a * ALPHA_PRIME + b).astype(np.float32)
            return x * mul + add_

        add("cydrop", lambda: cydrop.feature_alpha_dropout(x, RATE, seed=1, n_threads=team)[0],
            _const_channels)
        add("numpy", numpy_fad, _const_channels)
        if torch is not None:
            xt = torch.from_numpy(x)
            add("torch", lambda: F.feature_alpha_dropout(xt, RATE, training=True).numpy(),
                _const_channels)
    elif op == "spatial_dropout_nhwc":
        out = np.empty_like(x)
        n, c = shape[0], shape[-1]
        frac = lambda o: _zero_units(o, (1, 2))  # noqa: E731
        add("cydrop", lambda: variants.spatial_dropout(x, RATE, channel_axis=-1, seed=1,
                                                       out=out, n_threads=team)[0], frac)
        add("numpy", lambda: x * ((nprng.random((n, 1, 1, c), dtype=np.float32) < keep)
                                  / keep), frac)
        if torch is not None:
            xt = torch.from_numpy(x).permute(0, 3, 1, 2)      # NCHW, channels_last strides
            assert xt.is_contiguous(memory_format=torch.channels_last)
            add("torch", lambda: F.dropout2d(xt, RATE, training=True).permute(0, 2, 3, 1)
                .numpy(), frac)
    else:
        raise ValueError(f"unknown op {op!r}")
    return rows


def measure(shapes, team, repeat, torch=None, budget=2.0):
    """Check every row once, then time them all round-robin in one run
    (``cydrop.apps.bench._round_robin``: best of ``repeat`` samples, each after a warm-up);
    returns the ``ops`` record part."""
    from cydrop import _parallel
    from cydrop.apps.bench import WARM, _round_robin

    impls = []
    for op, shape in shapes.items():
        for impl, (fn, chk) in op_rows(op, shape, team, torch).items():
            chk(fn())
            impls.append((f"{op}|{impl}", fn))
    n = min(math.prod(s) for s in shapes.values())
    # the team is measured as such: the chunk runner's load feedback is off during the run
    feedback_was = _parallel.load_feedback(False)["enabled"]
    try:
        best = _round_robin(impls, n, repeat, budget)
    finally:
        _parallel.load_feedback(feedback_was)
    ops = {op: {"shape": list(shape), "rate": RATE, "times": {}} for op, shape in shapes.items()}
    ops["drop_block"]["block_size"] = BLOCK
    for key, t in best.items():
        op, impl = key.split("|")
        ops[op]["times"][impl] = t
    return {"dtype": "float32", "repeat": repeat, "warm": WARM, "statistic": "best",
            "threads": team, "torch": torch.__version__ if torch is not None else None,
            "ops": ops}


# ------------------------------------------------------------------------- pytest-benchmark

@pytest.fixture(scope="module")
def torch_mod(n_threads):
    return _torch(n_threads)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", list(QUICK_SHAPES))
def test_modern_op(benchmark, n_threads, torch_mod, op, impl):
    rows = op_rows(op, QUICK_SHAPES[op], n_threads, torch_mod)
    if impl not in rows:
        pytest.skip("torch does not import")
    fn, chk = rows[impl]
    benchmark.group = f"{op} {QUICK_SHAPES[op]} float32"
    chk(benchmark(fn))


# --------------------------------------------------------------------------------- script

def main(argv=None):
    """Print the table of one run and, with ``--json``, write it; returns 0."""
    from cydrop.apps.report import format_table, write_run

    ap = argparse.ArgumentParser(description="the modern dropout ops against NumPy and torch, "
                                             "every row round-robin in one run")
    ap.add_argument("--repeat", type=int, default=7, help="samples per row (best of; default 7)")
    ap.add_argument("--threads", type=int, default=None,
                    help="the team's thread count, cydrop's and torch's (default: all usable "
                         "cores)")
    ap.add_argument("--quick", action="store_true",
                    help="small shapes: a trial of the pipeline, not a measurement")
    ap.add_argument("--json", metavar="PATH", help="also write the run as JSON")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    team = cydrop.effective_n_threads(args.threads)
    torch = _torch(team)
    data = measure(QUICK_SHAPES if args.quick else SHAPES, team, args.repeat, torch)
    data["quick"] = args.quick
    table = []
    for op, rec in data["ops"].items():
        base = rec["times"]["cydrop"]
        for impl, t in rec["times"].items():
            table.append([op, "x".join(map(str, rec["shape"])), impl, f"{t * 1e3:.3f}",
                          f"{t / base:.2f}x"])
    print(f"modern ops, float32, rate {RATE}, {team} thread(s), best of {args.repeat}, "
          f"round-robin; torch {data['torch']}")
    print(format_table(["op", "shape", "implementation", "ms", "/ cydrop's"], table))
    if args.json:
        write_run(args.json, data, team)
    return 0


if __name__ == "__main__":
    sys.exit(main())
