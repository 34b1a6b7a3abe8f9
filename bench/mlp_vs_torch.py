"""One MLP training epoch, cydrop's trainer against the same network in PyTorch (CPU).

Usage: ``python bench/mlp_vs_torch.py [--rounds N] [--threads N]``.

784 -> 256 -> 256 -> 10, ReLU, dropout 0.2 / 0.5 after the hidden layers, batch 256, 60,000
synthetic float32 samples, plain SGD (lr 0.1). Both frameworks start from the same weights (the
cydrop model's initialisation is copied into torch) and see the same batches in the same order.
Epochs alternate between the two in one process, so the ratio compares like with like; the
figure is the median over ``--rounds`` epochs each. Needs ``pip install torch==2.13.0``.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_mlp import BATCH, N_CLASSES, RATES, build_model, synthetic_data  # noqa: E402

import cydrop  # noqa: E402
from cydrop.nn import SGD  # noqa: E402


def torch_model(torch, model):
    """The same network in torch, initialised with ``model``'s weights."""
    nn = torch.nn
    dense = [layer for layer in model.layers if "W" in layer.params]
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(RATES[0]),
                        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(RATES[1]),
                        nn.Linear(256, N_CLASSES))
    linears = [m for m in net if isinstance(m, nn.Linear)]
    with torch.no_grad():
        for lin, layer in zip(linears, dense):
            lin.weight.copy_(torch.from_numpy(layer.params["W"].T.copy()))
            lin.bias.copy_(torch.from_numpy(layer.params["b"].copy()))
    return net


def cydrop_epoch(model, opt, X, y, perm):
    model.train()
    for i in range(0, len(X), BATCH):
        idx = perm[i:i + BATCH]
        _, grads = model.loss(X[idx], y[idx])
        opt.step(model.params, grads)


def torch_epoch(torch, net, opt, X, y, perm):
    net.train()
    loss_fn = torch.nn.functional.cross_entropy
    for i in range(0, len(X), BATCH):
        idx = perm[i:i + BATCH]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net(X[idx]), y[idx])
        loss.backward()
        opt.step()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--unfused", action="store_true",
                    help="run cydrop's layers one by one instead of the fused default")
    ap.add_argument("--json", metavar="PATH", help="also write the medians as JSON")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("torch is not installed (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    threads = cydrop.effective_n_threads(args.threads)
    torch.set_num_threads(threads)
    X, y = synthetic_data()
    tX, ty = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    model = build_model("cydrop", n_threads=threads, fuse=not args.unfused)
    net = torch_model(torch, model)
    opt = SGD(learning_rate=0.1)
    topt = torch.optim.SGD(net.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    times = {"cydrop": [], "torch": []}
    for _ in range(args.rounds):
        perm = rng.permutation(len(X))
        t0 = time.perf_counter()
        cydrop_epoch(model, opt, X, y, perm)
        times["cydrop"].append(time.perf_counter() - t0)
        tperm = torch.from_numpy(perm)
        t0 = time.perf_counter()
        torch_epoch(torch, net, topt, tX, ty, tperm)
        times["torch"].append(time.perf_counter() - t0)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"MLP 784-256-256-10, dropout {RATES[0]}/{RATES[1]}, batch {BATCH}, 60,000 float32 "
          f"samples, SGD; threads {threads}; torch {torch.__version__}; median of "
          f"{args.rounds} epochs each, alternating; cydrop "
          f"{'unfused' if args.unfused else 'fused'} layers")
    print("| trainer | epoch s | ratio to torch |")
    print("| --- | ---: | ---: |")
    for k in ("cydrop", "torch"):
        print(f"| {k} | {med[k]:.3f} | {med[k] / med['torch']:.2f}x |")
    if args.json:
        import json
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rounds": args.rounds, "statistic": "median", "threads": threads,
                       "fused": not args.unfused, "torch": torch.__version__,
                       "results": med}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
