"""Dropout's share of one MLP training epoch, cydrop vs CS231n's NumPy dropout.

Usage: ``python bench/mlp_share.py [--epochs N] [--threads N]``. Prints one table: epoch time,
time inside the dropout layers (forward + backward), and their share, for cydrop's
:class:`~cydrop.nn.Dropout`, the NumPy formula, and no dropout at all. The model, data and
trainer are those of ``bench/bench_mlp.py``; each figure is the median over the epochs.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_mlp import DropoutTimer, build_model, synthetic_data, train_epoch  # noqa: E402

import cydrop  # noqa: E402
from cydrop.apps.report import format_table  # noqa: E402
from cydrop.nn import SGD  # noqa: E402


def measure(impl, X, y, epochs, n_threads):
    """Median epoch seconds and median dropout seconds over ``epochs`` epochs."""
    model = build_model(impl, n_threads=n_threads)
    timer = DropoutTimer(model)
    opt = SGD(learning_rate=0.1)
    rng = np.random.default_rng(0)
    epoch_s, drop_s = [], []
    for _ in range(epochs):
        timer.seconds = 0.0
        t0 = time.perf_counter()
        train_epoch(model, X, y, opt, rng)
        epoch_s.append(time.perf_counter() - t0)
        drop_s.append(timer.seconds)
    return float(np.median(epoch_s)), float(np.median(drop_s))


def main(argv=None):
    """Print the share table; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", metavar="PATH", help="also write the medians as JSON")
    args = ap.parse_args(argv)
    X, y = synthetic_data()
    rows = []
    results = {}
    for impl in ("cydrop", "numpy", "none"):
        results[impl] = measure(impl, X, y, args.epochs, args.threads)
    base = results["none"][0]
    for impl, (ep, dr) in results.items():
        rows.append([impl, f"{ep:.3f}", f"{dr:.3f}", f"{100 * dr / ep:.1f}%",
                     f"{100 * (ep - base) / base:+.1f}%"])
    print(f"MLP 784-256-256-10, dropout {0.2}/{0.5}, batch 256, 60,000 float32 samples, SGD; "
          f"median of {args.epochs} epochs; "
          f"dropout threads: {cydrop.effective_n_threads(args.threads)}")
    print(format_table(["dropout", "epoch s", "dropout s", "dropout share", "vs no dropout"], rows))
    if args.json:
        import json
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"epochs": args.epochs, "statistic": "median",
                       "threads": cydrop.effective_n_threads(args.threads),
                       "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
                       "results": {impl: {"epoch": ep, "dropout": dr}
                                   for impl, (ep, dr) in results.items()}}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
