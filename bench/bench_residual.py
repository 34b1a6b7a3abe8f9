"""pytest-benchmark: ``cydrop.dropout_add`` against its memory floor and the unfused NumPy sequence.

The floor (``cydrop._floor.stream_add``: ``y := x + r``, chunked and threaded like the op) reads
``x`` and the residual and writes the output, the traffic of the fused op with no generator.
The targets (issue 17): ``dropout_add`` within 1.05x of the floor on the same thread count, and
at least 3x faster than the unfused NumPy sequence at 16M. The unfused sequence is what a NumPy
transformer writes: a fresh mask, the masked and scaled branch, then the residual add.

Run with ``pytest bench/bench_residual.py --benchmark-only`` (``--benchmark-group-by=group``
keeps each size's four rows together), or ``python bench/bench_residual.py [--json PATH]`` for
one run at one size (16M by default): ``dropout_add`` and its floor on one thread and on the team
(all usable cores), and the unfused NumPy sequence, every row timed round-robin in the same run
with the sampler of ``cydrop bench`` (best of ``--repeat`` samples, each after a warm-up). The
JSON is the ``residual`` part of the docs' ``modern`` record (``python -m cydrop.apps.docdata``).
"""

import argparse
import sys

import numpy as np
import pytest

import cydrop
from cydrop import _floor

RATE = 0.1
CYDROP, FLOOR, NUMPY = "cydrop dropout_add", "floor stream_add", "numpy unfused"


@pytest.fixture(scope="module")
def pair(size):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(size).astype(np.float32)
    r = rng.standard_normal(size).astype(np.float32)
    return x, r, np.empty_like(x)


def _group(benchmark, n, n_threads):
    benchmark.group = f"dropout_add {n:>10,} float32, {n_threads} thread(s)"


@pytest.mark.parametrize("threads", ["one", "all"])
def test_dropout_add(benchmark, pair, n_threads, threads):
    x, r, y = pair
    nt = 1 if threads == "one" else n_threads
    _group(benchmark, x.size, nt)
    out, _ = benchmark(cydrop.dropout_add, x, r, RATE, seed=1, out=y, n_threads=nt)
    assert out is y and abs((out == r).mean() - RATE) < 0.05


@pytest.mark.parametrize("threads", ["one", "all"])
def test_floor_stream_add(benchmark, pair, n_threads, threads):
    x, r, y = pair
    nt = 1 if threads == "one" else n_threads
    _group(benchmark, x.size, nt)
    benchmark(_floor.stream_add, x, r, y, nt)
    np.testing.assert_array_equal(y[:100], x[:100] + r[:100])


def test_numpy_unfused(benchmark, pair, n_threads):
    x, r, _ = pair
    _group(benchmark, x.size, 1)
    rng = np.random.default_rng(0)
    out = benchmark(unfused(x, r, rng))
    assert out.shape == x.shape


def unfused(x, r, rng):
    """The unfused NumPy sequence: a fresh mask, the masked and scaled branch, the residual add."""
    keep = np.float32(1.0 - RATE)

    def run():
        mask = rng.random(x.size, dtype=np.float32) < keep
        return r + x * mask / keep

    return run


def rows(n, thread_counts):
    """``[((name, threads), callable)]``: dropout_add and its floor on every thread count, then
    the unfused NumPy sequence (NumPy's own threads: one)."""
    x, r = (np.random.default_rng(s).standard_normal(n).astype(np.float32) for s in (1, 2))
    y = np.empty_like(x)
    out = []
    for nt in thread_counts:
        out += [((CYDROP, nt), lambda nt=nt: cydrop.dropout_add(x, r, RATE, seed=1, out=y,
                                                                 n_threads=nt)),
                ((FLOOR, nt), lambda nt=nt: _floor.stream_add(x, r, y, nt))]
    return out + [((NUMPY, 1), unfused(x, r, np.random.default_rng(0)))]


def measure(n, thread_counts, repeat, budget=2.0):
    """Every row timed round-robin in one run (``cydrop.apps.bench._round_robin``: best of
    ``repeat`` samples, each after a warm-up); returns the ``residual`` record part."""
    from cydrop import _parallel
    from cydrop.apps.bench import WARM, _round_robin

    impls = [(f"{name}|{nt}", fn) for (name, nt), fn in rows(n, thread_counts)]
    # the team is measured as such: the chunk runner's load feedback (which may send calls
    # serial on a busy machine) is off during the run, as for cydrop bench's team tables
    feedback_was = _parallel.load_feedback(False)["enabled"]
    try:
        best = _round_robin(impls, n, repeat, budget)
    finally:
        _parallel.load_feedback(feedback_was)
    times = {}
    for key, t in best.items():
        name, nt = key.rsplit("|", 1)
        if name != NUMPY:
            times.setdefault(str(nt), {})[name] = t
    return {"n": n, "dtype": "float32", "rate": RATE, "repeat": repeat, "warm": WARM,
            "statistic": "best", "threads": list(thread_counts), "times": times,
            "numpy": best[f"{NUMPY}|1"]}


def main(argv=None):
    """Print the table of one run and, with ``--json``, write it; returns 0."""
    from cydrop.apps.bench import _parse_sizes
    from cydrop.apps.report import format_table, write_run

    ap = argparse.ArgumentParser(description="dropout_add against its floor and unfused NumPy, "
                                             "on one thread and on the team, in one run")
    ap.add_argument("--size", type=_parse_sizes, default=_parse_sizes("16M"),
                    help="float32 elements, e.g. 16M or 1048576 (default 16M)")
    ap.add_argument("--repeat", type=int, default=7, help="samples per row (best of; default 7)")
    ap.add_argument("--threads", type=int, default=None,
                    help="the team's thread count (default: all usable cores)")
    ap.add_argument("--json", metavar="PATH", help="also write the run as JSON")
    args = ap.parse_args(argv)
    if len(args.size) != 1 or args.repeat < 1:
        ap.error("--size takes one size and --repeat must be >= 1")
    (label, n), team = args.size[0], cydrop.effective_n_threads(args.threads)
    data = measure(n, sorted({1, team}), args.repeat)
    data["size"] = label
    table = [[name, nt, f"{t * 1e3:.3f}", f"{t / row[FLOOR]:.2f}x", f"{data['numpy'] / t:.2f}x"]
             for nt, row in data["times"].items() for name, t in row.items()]
    table.append([NUMPY, "1", f"{data['numpy'] * 1e3:.3f}", "", "1.00x"])
    print(f"dropout_add, {n:,} float32, rate {RATE}, best of {args.repeat}, round-robin")
    print(format_table(["implementation", "threads", "ms", "/ floor", "numpy / this"], table))
    if args.json:
        write_run(args.json, data, team)
    return 0


if __name__ == "__main__":
    sys.exit(main())
