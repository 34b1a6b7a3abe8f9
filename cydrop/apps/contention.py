"""``cydrop bench --contention``: cydrop's default thread count against one thread on a busy
machine.

Machines that train models are rarely quiet: a data loader, a second process or BLAS threads
keep some cores busy. This starts ``k`` CPU-bound busy-loop processes (``k = 0 .. cores``), and
with them running times, at every size, the median of ``repeat`` calls of

* cydrop's forward with the default thread count and with ``n_threads=1`` (``out=`` given,
  rate 0.5), with the runner's load feedback on (as shipped) and off (the bare OpenMP team, in
  a pass of its own);
* the anchors under the same load: ``torch.nn.functional.dropout`` and a threaded
  ``torch.mul(x, 2.0, out=y)``, each at the default threads and at one thread.

Each cell is that implementation's default-threads median divided by its own one-thread
median: above 1 means the threads cost time. Medians, not best times, because a busy machine's
cost is in the typical call. cydrop's calls are interleaved (default, one thread, default, ...)
so both see the same load; torch's thread count is process-wide, so its calls alternate in
blocks. torch runs after cydrop at every size, since its own OpenMP threads keep spinning for a
while after its calls.
"""

import os
import subprocess
import sys
import time

import numpy as np

from cydrop import _core, _openmp, _parallel

from .report import write_record

SIZES = (("64K", 1 << 16), ("256K", 1 << 18), ("1M", 1 << 20), ("4M", 1 << 22),
         ("16M", 1 << 24), ("64M", 1 << 26))
BUSY_LOOP = "while True:\n    pass\n"


class BusyProcesses:
    """``k`` CPU-bound Python processes spinning until the block ends (a context manager)."""

    def __init__(self, k):
        self.k = k
        self.procs = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for _ in range(self.k)]
        time.sleep(0.3 if self.k else 0.0)          # let them start spinning
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def _interleaved_medians(pairs, repeat):
    """Median seconds per call of every callable of ``pairs`` ({name: (default, one)}), the calls
    interleaved so every implementation sees the same load."""
    times = {name: ([], []) for name in pairs}
    for default, one in pairs.values():            # warm: pages, caches, thread pools
        default()
        one()
    for _ in range(repeat):
        for name, fns in pairs.items():
            for i, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn()
                times[name][i].append(time.perf_counter() - t0)
    return {name: (float(np.median(d)), float(np.median(o))) for name, (d, o) in times.items()}


def _operands(n):
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    return x, np.empty_like(x)


def _cydrop_pair(n, threads):
    """cydrop's forward (``out=`` given) at the default threads and at one thread."""
    x, y = _operands(n)
    return (lambda: _core.dropout(x, 0.5, seed=1, out=y, n_threads=threads),
            lambda: _core.dropout(x, 0.5, seed=1, out=y, n_threads=1))


def _torch_medians(torch, fn, threads, repeat, rounds=4):
    """Median seconds per call of ``fn`` at ``threads`` and at one torch thread.

    torch's thread count is process-wide and changing it is not free, so the calls run in
    blocks (``repeat / rounds`` calls at each count, alternating, ``rounds`` times) rather than
    one by one: every block pays one switch and the alternation spreads the load's drift over
    both counts.
    """
    times = ([], [])
    per_block = max(1, repeat // rounds)
    for count in (threads, 1):                     # warm both thread pools
        torch.set_num_threads(count)
        fn()
    for _ in range(rounds):
        for i, count in enumerate((threads, 1)):
            torch.set_num_threads(count)
            fn()
            for _ in range(per_block):
                t0 = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - t0)
    return float(np.median(times[0])), float(np.median(times[1]))


def _anchors(n, threads, torch, repeat):
    """{name: (default_s, one_thread_s)} of torch's dropout and a threaded torch.mul."""
    x, y = _operands(n)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    return {"torch F.dropout": _torch_medians(
                torch, lambda: torch.nn.functional.dropout(tx, 0.5, True), threads, repeat),
            "torch.mul(out=)": _torch_medians(
                torch, lambda: torch.mul(tx, 2.0, out=ty), threads, repeat)}


def measure(sizes=SIZES, busy=None, repeat=40, threads=None, torch=None, progress=None):
    """The contention table: ``{k: {size_label: {name: (default_s, one_thread_s)}}}``.

    Parameters
    ----------
    sizes : sequence of (label, n)
    busy : sequence of int or None
        Numbers of busy processes to run beside the measurement; None means ``0 .. cores``.
    repeat : int
        Calls per implementation and thread count; the median is reported.
    threads : int or None
        The default thread count (None: all usable cores).
    torch : module or None
        PyTorch, for the anchors.
    progress : callable or None
        Called with a line of text after every (k, size).
    """
    threads = _openmp.effective_n_threads(threads)
    busy = list(range(threads + 1)) if busy is None else list(busy)
    was = _parallel.load_feedback()["enabled"]
    torch_threads = torch.get_num_threads() if torch is not None else None
    results = {}
    try:
        for k in busy:
            results[k] = {}
            with BusyProcesses(k):
                for label, n in sizes:
                    # cydrop as shipped (feedback on, from no backoff), then the bare OpenMP
                    # team (feedback off): two passes, since one variant's calls would reset the
                    # other's backoff if they were interleaved. torch's anchors come last: its
                    # own OpenMP threads spin for a while after its calls, loading the cores.
                    row = {}
                    for name, feedback in (("cydrop forward", True),
                                           ("cydrop forward, no load feedback", False)):
                        _parallel.load_feedback(False)
                        _parallel.load_feedback(feedback)
                        row.update(_interleaved_medians({name: _cydrop_pair(n, threads)},
                                                        repeat))
                    if torch is not None:
                        row.update(_anchors(n, threads, torch, repeat))
                        time.sleep(0.05)                  # let torch's threads go idle
                    results[k][label] = row
                    if progress is not None:
                        progress(f"  measured {label} with {k} busy process(es)")
    finally:
        _parallel.load_feedback(was)
        if torch is not None:
            torch.set_num_threads(torch_threads)
    return results


def table(results, sizes=SIZES):
    """Markdown: one table per number of busy processes, a row per implementation, each cell
    the default-threads median over the one-thread median (one thread's median in brackets)."""
    labels = [label for label, _ in sizes]
    blocks = []
    for k, by_size in results.items():
        names = list(next(iter(by_size.values())))
        lines = [f"{k} busy process(es): default threads / one thread (median of calls; one "
                 f"thread's median in brackets)", "",
                 "| implementation | " + " | ".join(labels) + " |",
                 "| --- | " + " | ".join("---:" for _ in labels) + " |"]
        for name in names:
            cells = []
            for label in labels:
                default, one = by_size[label][name]
                cells.append(f"{default / one:.2f}x ({one * 1e6:,.0f} us)")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def record_data(results, repeat, threads):
    """The JSON-ready form of :func:`measure`'s results (``busy`` keys become strings)."""
    return {"dtype": "float32", "rate": 0.5, "threads": threads, "repeat": repeat,
            "statistic": "median",
            "results": {str(k): {label: {name: {"default": d, "one": o}
                                         for name, (d, o) in row.items()}
                                 for label, row in by_size.items()}
                        for k, by_size in results.items()}}


def run(out=None, sizes=SIZES, busy=None, repeat=40, threads=None, torch=None,
        report=None, command=None):
    """Measure and print the contention table to ``out`` (default: standard output), and
    write it to ``report/contention.md`` and, with the machine and ``command``, to
    ``report/contention.json`` when ``report`` (a directory) is given (``command`` defaults to
    the ``cydrop bench --contention`` line of these settings)."""
    out = sys.stdout if out is None else out
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = _openmp.effective_n_threads(threads)
    print(f"contention: {cores} usable cores, cydrop default threads {threads}, "
          f"{repeat} calls per cell, float32, rate 0.5, out= given", file=out)
    results = measure(sizes, busy, repeat, threads, torch,
                      progress=lambda line: print(line, file=out, flush=True))
    text = table(results, sizes)
    print(text, file=out)
    if report:
        os.makedirs(report, exist_ok=True)
        with open(os.path.join(report, "contention.md"), "w") as fh:
            fh.write(text + "\n")
        if command is None:
            command = f"cydrop bench --contention --repeat {repeat} --threads {threads}"
        write_record(os.path.join(report, "contention.json"), "contention", command,
                     record_data(results, repeat, threads), threads, torch)
    return results
