"""Speed of each course's dropout experiment: the course's own dropout vs cydrop's, same run.

``python -m cydrop.compat.bench [--repeat N]`` prints, for each course, the wall time of the
whole run and of the dropout steps alone (forward + backward), with the course's mask
(``np.random.rand`` for CS231n, ``np.random.binomial`` for nnfs, ``torch.rand`` for d2l) and with
cydrop's compat layer, and their ratios (course / cydrop; > 1 means cydrop is faster). The
baselines below are the courses' mask formulas, written out here only to time them.
"""

import argparse
import json
import sys
import time

import numpy as np

from cydrop.compat import nnfs as _nnfs
from cydrop.compat.cs231n.classifiers.fc_net import FullyConnectedNet
from cydrop.compat.cs231n.solver import Solver


class _Timed:
    def __init__(self):
        self.seconds = 0.0

    def __call__(self, fn, *args):
        t = time.perf_counter()
        r = fn(*args)
        self.seconds += time.perf_counter() - t
        return r


# ------------------------------------------------------------------ CS231n


class _CourseMaskNet(FullyConnectedNet):
    """The assignment's network with the assignment's mask: (rand < p) / p."""

    def _dropout_forward(self, h):
        p = self.dropout_param["p"]
        mask = (np.random.rand(*h.shape) < p) / p
        return (h * mask).astype(h.dtype, copy=False), mask

    def _dropout_backward(self, dout, mask):
        return dout * mask


def _timed_net(cls, timer, **kw):
    net = cls(**kw)
    fwd, bwd = net._dropout_forward, net._dropout_backward
    net._dropout_forward = lambda h: timer(fwd, h)
    net._dropout_backward = lambda d, c: timer(bwd, d, c)
    return net


def cs231n_run(course, epochs=25, hidden=500):
    """The notebook's regularization run, keep 0.25 (500 examples, batch 100, adam 5e-4)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 3 * 32 * 32)).astype(np.float32)
    y = rng.integers(10, size=600)
    data = {"X_train": X[:500], "y_train": y[:500], "X_val": X[500:], "y_val": y[500:]}
    np.random.seed(231)
    timer = _Timed()
    model = _timed_net(_CourseMaskNet if course else FullyConnectedNet, timer,
                       hidden_dims=[hidden], dropout_keep_ratio=0.25)
    solver = Solver(model, data, num_epochs=epochs, batch_size=100, update_rule="adam",
                    optim_config={"learning_rate": 5e-4}, verbose=False)
    t = time.perf_counter()
    solver.train()
    return time.perf_counter() - t, timer.seconds


# ------------------------------------------------------------------ nnfs


class _BookDropout(_nnfs.Layer_Dropout):
    """The book's mask: binomial(1, keep) / keep."""

    def forward(self, inputs, training=True):
        self.inputs = inputs
        self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) / self.rate
        self.output = inputs * self.binary_mask

    def backward(self, dvalues):
        self.dinputs = dvalues * self.binary_mask


def nnfs_run(course, epochs=1000, samples=1000, hidden=64):
    """Chapter 15's run (spiral data, Dense(2, 64) - ReLU - Dropout(0.1) - Dense(64, 3), Adam)."""
    from cydrop.compat.nnfs import (
        Activation_ReLU,
        Activation_Softmax_Loss_CategoricalCrossentropy,
        Layer_Dense,
        Optimizer_Adam,
    )
    from cydrop.compat.nnfs.datasets import spiral_data
    _nnfs.init()
    X, y = spiral_data(samples=samples, classes=3)
    dense1 = Layer_Dense(2, hidden, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
    act = Activation_ReLU()
    drop = (_BookDropout if course else _nnfs.Layer_Dropout)(0.1)
    dense2 = Layer_Dense(hidden, 3)
    loss_act = Activation_Softmax_Loss_CategoricalCrossentropy()
    opt = Optimizer_Adam(learning_rate=0.05, decay=5e-5)
    timer = _Timed()
    t = time.perf_counter()
    for _ in range(epochs):
        dense1.forward(X)
        act.forward(dense1.output)
        timer(drop.forward, act.output)
        dense2.forward(drop.output)
        loss_act.forward(dense2.output, y)
        loss_act.backward(loss_act.output, y)
        dense2.backward(loss_act.dinputs)
        timer(drop.backward, dense2.dinputs)
        act.backward(drop.dinputs)
        dense1.backward(act.dinputs)
        opt.pre_update_params()
        opt.update_params(dense1)
        opt.update_params(dense2)
        opt.post_update_params()
    _nnfs._state["dtype"] = np.dtype(np.float64)
    return time.perf_counter() - t, timer.seconds


# ------------------------------------------------------------------ d2l


def d2l_run(course, epochs=3, n=4096):
    """The chapter's from-scratch MLP (784-256-256-10, dropout 0.2 / 0.5, SGD lr 0.5, batch 256)."""
    import torch
    from torch import nn

    from cydrop.compat.d2l import dropout_layer as cy_dropout_layer

    def course_dropout_layer(X, dropout):
        if dropout == 1:
            return torch.zeros_like(X)
        mask = (torch.rand(X.shape) > dropout).float()
        return mask * X / (1.0 - dropout)

    timer = _Timed()
    fn = course_dropout_layer if course else cy_dropout_layer
    drop = lambda X, d: timer(fn, X, d)
    torch.manual_seed(0)
    lin1, lin2, lin3 = nn.Linear(784, 256), nn.Linear(256, 256), nn.Linear(256, 10)
    params = [*lin1.parameters(), *lin2.parameters(), *lin3.parameters()]
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 784, generator=g)
    y = torch.randint(10, (n,), generator=g)
    opt = torch.optim.SGD(params, lr=0.5)
    loss = nn.CrossEntropyLoss(reduction="none")
    t = time.perf_counter()
    for _ in range(epochs):
        for i in range(0, n, 256):
            H1 = drop(torch.relu(lin1(X[i:i + 256])), 0.2)
            H2 = drop(torch.relu(lin2(H1)), 0.5)
            l = loss(lin3(H2), y[i:i + 256])
            opt.zero_grad()
            l.mean().backward()   # dropout's backward runs inside; counted in the whole run
            opt.step()
    return time.perf_counter() - t, timer.seconds


RUNS = {"cs231n": cs231n_run, "nnfs": nnfs_run, "d2l": d2l_run}


def measure(courses=tuple(RUNS), repeat=3, stream=None):
    """Best of ``repeat`` runs of each course's experiment with the course's dropout and with
    cydrop's, as ``{course: {"course": {"whole": s, "dropout": s}, "cydrop": {...}}}``; each
    course's line is printed to ``stream`` when given."""
    results = {}
    if stream is not None:
        print(f"{'course':8} {'whole run: course / cydrop':>34} "
              f"{'dropout steps: course / cydrop':>38}", file=stream)
    for name in courses:
        best = {}
        for course in (True, False):
            runs = [RUNS[name](course) for _ in range(repeat)]
            best["course" if course else "cydrop"] = {"whole": min(r[0] for r in runs),
                                                      "dropout": min(r[1] for r in runs)}
        results[name] = best
        if stream is not None:
            (tc, dc), (ty, dy) = best["course"].values(), best["cydrop"].values()
            print(f"{name:8} {tc:9.3f} s / {ty:7.3f} s = {tc / ty:5.2f}x "
                  f"{dc:10.3f} s / {dy:7.3f} s = {dc / dy:5.2f}x", file=stream, flush=True)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per variant (best is kept)")
    ap.add_argument("--courses", nargs="*", default=list(RUNS))
    ap.add_argument("--json", metavar="PATH",
                    help="also write the best times as JSON (python -m cydrop.apps.docdata "
                         "writes them with the machine into docs/_data/courses.json)")
    args = ap.parse_args(argv)
    results = measure(args.courses, args.repeat, stream=sys.stdout)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"repeat": args.repeat, "statistic": "best", "results": results}, fh,
                      indent=1)


if __name__ == "__main__":
    main()
