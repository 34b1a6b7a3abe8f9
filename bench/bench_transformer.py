"""A pre-norm transformer block's training-mode forward: cydrop's fused dropouts vs unfused NumPy
dropout vs PyTorch CPU with its own dropout, in the same run.

The block, NumPy only for the first two (the matrix products are the same BLAS calls)::

    a = LayerNorm(h)
    p = softmax_dropout(q k^T / sqrt(d_head))        cydrop.softmax_dropout | softmax, then mask
    h = h + dropout(p v W_o + b_o)                   cydrop.dropout_add     | mask, scale, add
    a = LayerNorm(h)
    m = dropout(relu(a W_1 + b_1))                   cydrop.fused.bias_relu_dropout | unfused
    h = h + dropout(m W_2 + b_2)                     cydrop.dropout_add     | unfused

Each implementation is timed in training mode and with dropout off (cydrop's ops with
``training=False``, NumPy without the masks, torch in ``eval()`` form): the dropout share of the
block is ``(train - off) / train``. The default shape (batch 8, sequence 512, width 256, 8 heads,
MLP 4x) puts every activation past the caches (4 MB for the residual stream, 16 MB for the MLP's
hidden layer, 64 MB of attention scores), where dropout's extra passes over memory are what it
costs, while the width keeps the matrix products from swamping them (their work grows with the
width squared, the element-wise passes with the width). ``CYDROP_BENCH_TRANSFORMER=B,T,D,H``
changes the shape.

Run ``pytest bench/bench_transformer.py --benchmark-only`` (six rows: three implementations,
two modes), or ``python bench/bench_transformer.py [--rounds N] [--shape B,T,D,H] [--json PATH]``
for the table of shares from one run (each implementation in turn, its two modes alternating
within each round, median of the rounds after one warm-up call each); the JSON is the
``transformer`` part of the docs' ``modern`` record (``python -m cydrop.apps.docdata``).
"""

import os
import sys
import time

import numpy as np
import pytest

import cydrop
from cydrop import fused

RATE = 0.1


def shape():
    """(batch, sequence, width, heads) from CYDROP_BENCH_TRANSFORMER, default 8,512,256,8."""
    text = os.environ.get("CYDROP_BENCH_TRANSFORMER", "8,512,256,8")
    B, T, D, H = (int(v) for v in text.split(","))
    if D % H:
        raise ValueError(f"CYDROP_BENCH_TRANSFORMER: width {D} must be a multiple of heads {H}")
    return B, T, D, H


def weights(D, seed=0):
    """The block's float32 parameters."""
    rng = np.random.default_rng(seed)

    def mat(n, m):
        return (rng.standard_normal((n, m)) / np.sqrt(n)).astype(np.float32)

    return {"Wq": mat(D, D), "Wk": mat(D, D), "Wv": mat(D, D), "Wo": mat(D, D),
            "bo": np.zeros(D, np.float32), "W1": mat(D, 4 * D),
            "b1": np.full(4 * D, 0.01, np.float32), "W2": mat(4 * D, D),
            "b2": np.zeros(D, np.float32)}


def layer_norm(h, eps=1e-5):
    mu = h.mean(-1, keepdims=True)
    var = h.var(-1, keepdims=True)
    return (h - mu) / np.sqrt(var + eps)


def _attention_scores(a, w, B, T, H):
    D = a.shape[-1]
    dh = D // H

    def heads(m):
        return (a @ m).reshape(B, T, H, dh).transpose(0, 2, 1, 3)

    q, k, v = heads(w["Wq"]), heads(w["Wk"]), heads(w["Wv"])
    return (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / np.sqrt(dh)), v


def _merge(o, B, T):
    return o.transpose(0, 2, 1, 3).reshape(B * T, -1)


def block_cydrop(h, w, B, T, H, training, seed=0):
    """The block on cydrop's fused ops; ``h`` has shape (B * T, D)."""
    s, v = _attention_scores(layer_norm(h).reshape(B, T, -1), w, B, T, H)
    p, _ = cydrop.softmax_dropout(s, RATE, training=training, seed=seed)
    o = _merge(p @ v, B, T) @ w["Wo"]
    h, _ = cydrop.dropout_add(o, h, RATE, bias=w["bo"], training=training, seed=seed + 1)
    z = layer_norm(h) @ w["W1"]
    m, _ = fused.bias_relu_dropout(z, w["b1"], RATE, training=training, seed=seed + 2, out=z)
    h, _ = cydrop.dropout_add(m @ w["W2"], h, RATE, bias=w["b2"], training=training,
                              seed=seed + 3)
    return h


def _np_dropout(a, rng, training):
    if not training:
        return a
    keep = np.float32(1.0 - RATE)
    return a * (rng.random(a.shape, dtype=np.float32) < keep) / keep


def block_numpy(h, w, B, T, H, training, rng):
    """The same block with NumPy's softmax and CS231n-style unfused dropout."""
    s, v = _attention_scores(layer_norm(h).reshape(B, T, -1), w, B, T, H)
    e = np.exp(s - s.max(-1, keepdims=True))
    p = _np_dropout(e / e.sum(-1, keepdims=True), rng, training)
    o = _merge(p @ v, B, T) @ w["Wo"]
    h = h + _np_dropout(o + w["bo"], rng, training)
    m = _np_dropout(np.maximum(layer_norm(h) @ w["W1"] + w["b1"], 0), rng, training)
    return h + _np_dropout(m @ w["W2"] + w["b2"], rng, training)


def block_torch(torch, h, w, B, T, H, training):
    """The same block in PyTorch CPU with ``torch.nn.functional.dropout``."""
    F = torch.nn.functional
    D = h.shape[-1]
    dh = D // H

    def heads(a, m):
        return (a @ m).reshape(B, T, H, dh).transpose(1, 2)

    with torch.no_grad():
        a = F.layer_norm(h, (D,)).reshape(B, T, D)
        q, k, v = heads(a, w["Wq"]), heads(a, w["Wk"]), heads(a, w["Wv"])
        p = F.dropout(torch.softmax((q @ k.transpose(-1, -2)) * (1.0 / dh ** 0.5), -1), RATE,
                      training)
        o = (p @ v).transpose(1, 2).reshape(B * T, D) @ w["Wo"]
        h = h + F.dropout(o + w["bo"], RATE, training)
        m = F.dropout(F.relu(F.layer_norm(h, (D,)) @ w["W1"] + w["b1"]), RATE, training)
        return h + F.dropout(m @ w["W2"] + w["b2"], RATE, training)


class Block:
    """One implementation's block, callable with no arguments."""

    def __init__(self, impl, training, n_threads):
        B, T, D, H = shape()
        self.shape = (B, T, D, H)
        rng = np.random.default_rng(1)
        h = rng.standard_normal((B * T, D)).astype(np.float32)
        w = weights(D)
        if impl == "torch":
            import torch
            torch.set_num_threads(n_threads)
            th = torch.from_numpy(h)
            tw = {k: torch.from_numpy(v) for k, v in w.items()}
            self.run = lambda: block_torch(torch, th, tw, B, T, H, training)
        elif impl == "numpy":
            gen = np.random.default_rng(0)
            self.run = lambda: block_numpy(h, w, B, T, H, training, gen)
        else:
            self.run = lambda: block_cydrop(h, w, B, T, H, training)


IMPLS = ["cydrop", "numpy", "torch"]


@pytest.mark.parametrize("mode", ["train", "dropout-off"])
@pytest.mark.parametrize("impl", IMPLS)
def test_transformer_block(benchmark, n_threads, impl, mode):
    if impl == "torch":
        pytest.importorskip("torch")
    block = Block(impl, mode == "train", n_threads)
    B, T, D, H = block.shape
    benchmark.group = (f"transformer block forward B={B} T={T} D={D} H={H} float32, "
                       f"dropout {RATE}")
    out = benchmark.pedantic(block.run, rounds=3, iterations=1, warmup_rounds=1)
    out = np.asarray(out)
    assert out.shape == (B * T, D) and np.isfinite(out).all()


def shares(rounds=7, n_threads=None):
    """{impl: (train seconds, dropout-off seconds, dropout share)}: the median of ``rounds``."""
    n_threads = cydrop.effective_n_threads(n_threads)
    result = {}
    for impl in IMPLS:
        if impl == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                continue
        # the two modes alternate within each round, so that a drift of the machine's speed
        # during the run falls on both and not on the share
        runs = {mode: Block(impl, mode, n_threads).run for mode in (True, False)}
        samples = {True: [], False: []}
        for run in runs.values():
            run()
        for _ in range(rounds):
            for mode, run in runs.items():
                t0 = time.perf_counter()
                run()
                samples[mode].append(time.perf_counter() - t0)
        times = {mode: float(np.median(v)) for mode, v in samples.items()}
        result[impl] = (times[True], times[False], (times[True] - times[False]) / times[True])
    return result


def main(argv=None):
    """Print the table of shares from one run and, with ``--json``, write it; returns 0."""
    import argparse

    from cydrop.apps.report import format_table, write_run

    ap = argparse.ArgumentParser(description="a transformer block's dropout share: cydrop, "
                                             "NumPy and torch, train and dropout off")
    ap.add_argument("rounds", nargs="?", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", dest="rounds_opt", type=int, default=7,
                    help="timed calls per implementation and mode, the modes alternating "
                         "(median of; default 7)")
    ap.add_argument("--shape", metavar="B,T,D,H",
                    help="batch, sequence, width, heads (default: CYDROP_BENCH_TRANSFORMER "
                         "or 8,512,256,8)")
    ap.add_argument("--threads", type=int, default=None,
                    help="cydrop's and torch's threads (default: all usable cores)")
    ap.add_argument("--json", metavar="PATH", help="also write the run as JSON")
    args = ap.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else args.rounds_opt
    if rounds < 1:
        ap.error("rounds must be >= 1")
    if args.shape:
        os.environ["CYDROP_BENCH_TRANSFORMER"] = args.shape   # what shape() and Block read
    try:
        B, T, D, H = shape()
    except ValueError as exc:
        ap.error(str(exc))
    threads = cydrop.effective_n_threads(args.threads)
    res = shares(rounds, threads)
    rows = [[impl, f"{t * 1e3:.1f}", f"{off * 1e3:.1f}", f"{share:.1%}"]
            for impl, (t, off, share) in res.items()]
    print(f"transformer block forward, B={B} T={T} D={D} H={H}, float32, dropout {RATE}, "
          f"{threads} thread(s), median of {rounds}")
    print(format_table(["impl", "train ms", "dropout off ms", "dropout share"], rows))
    if args.json:
        torch = sys.modules.get("torch")
        data = {"shape": {"batch": B, "sequence": T, "width": D, "heads": H}, "rate": RATE,
                "rounds": rounds, "statistic": "median", "threads": threads,
                "torch": torch.__version__ if torch is not None and "torch" in res else None,
                "results": {impl: {"train": t, "off": off, "share": share}
                            for impl, (t, off, share) in res.items()}}
        write_run(args.json, data, threads, torch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
