"""``python -m cydrop bench``: cydrop against NumPy (and PyTorch), side by side in one run.

Every implementation is timed round-robin in the same process (best of ``--repeat``), so the
ratios compare like with like on a noisy machine; absolute times are only this run's.

Before each sample an implementation runs for at least ``WARM`` seconds. A core that idled
through a long single-threaded call (the NumPy forms take milliseconds) needs a few milliseconds
of work before it runs at full speed again; on the 2-core development VM the first 2-thread 1M
call after 8 ms of idling took 685 us against 145 us in steady state. Without the warm-up a
multi-threaded implementation would be timed on a cold second core and a single-threaded one
would not, which is not a like-for-like comparison.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np

from cydrop import __version__, _core, _floor, _kernels, _openmp, _parallel
from cydrop._floor import stream_scale

from .report import write_record

WARM = 0.005   # seconds of calls before every sample (see the module docstring)

SIZES = {"1K": 1 << 10, "64K": 1 << 16, "256K": 1 << 18, "1M": 1 << 20, "4M": 1 << 22,
         "16M": 1 << 24, "64M": 1 << 26}


def _parse_sizes(text):
    sizes = []
    for tok in text.split(","):
        tok = tok.strip().upper()
        if tok in SIZES:
            sizes.append((tok, SIZES[tok]))
        elif tok.isdigit() and int(tok) > 0:
            sizes.append((tok, int(tok)))
        else:
            raise argparse.ArgumentTypeError(
                f"--sizes takes comma-separated sizes from {list(SIZES)} or positive "
                f"integers, got {tok!r}")
    return sizes


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch(threads):
    if os.environ.get("CYDROP_BENCH_NO_TORCH"):
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def implementations(n, dtype, threads, torch=None):
    """(name, callable) pairs for one size; each callable runs one forward or backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(dtype)
    y = np.empty_like(x)
    keep = 0.5
    s = dtype.type(1 / keep)
    legacy = np.random.RandomState(0)
    _, c_rec = _core.dropout(x, 0.5, seed=1)
    _, c_bits = _core.dropout(x, 0.5, seed=1, mask="bits")
    _, c_bytes = _core.dropout(x, 0.5, seed=1, mask="bytes")
    m_bits = np.empty((n + 7) // 8, dtype=np.uint8)
    m_bytes = np.empty(n, dtype=np.uint8)
    impls = [
        ("cydrop forward", lambda: _core.dropout(x, 0.5, seed=1, n_threads=threads)),
        ("cydrop forward out=", lambda: _core.dropout(x, 0.5, seed=1, out=y,
                                                        n_threads=threads)),
        # the mask modes write their stored mask into preallocated buffers too (mask_out=),
        # as the floor writes into a preallocated y
        ("cydrop forward bits", lambda: _core.dropout(x, 0.5, seed=1, out=y, mask="bits",
                                                        mask_out=m_bits, n_threads=threads)),
        ("cydrop forward bytes", lambda: _core.dropout(x, 0.5, seed=1, out=y, mask="bytes",
                                                         mask_out=m_bytes, n_threads=threads)),
        ("cydrop backward recompute", lambda: _core.dropout_backward(x, c_rec, out=y,
                                                                      n_threads=threads)),
        ("cydrop backward bits", lambda: _core.dropout_backward(x, c_bits, out=y,
                                                                 n_threads=threads)),
        ("cydrop backward bytes", lambda: _core.dropout_backward(x, c_bytes, out=y,
                                                                  n_threads=threads)),
        ("floor np.multiply(out=)", lambda: np.multiply(x, s, out=y)),
        ("numpy Generator form", lambda: x * ((rng.random(n, dtype=dtype) < keep) / keep)),
        ("CS231n form", lambda: x * ((legacy.rand(n) < keep) / keep)),
        ("nnfs form", lambda: x * (legacy.binomial(1, keep, n) / keep)),
    ]
    if torch is not None:
        tx = torch.from_numpy(x)
        impls.append(("torch F.dropout", lambda: torch.nn.functional.dropout(tx, 0.5, True)))
    return impls


def _sample(fn, inner):
    """Seconds per call of ``fn`` over ``inner`` calls, after ``WARM`` seconds of warm-up calls
    (caches, pages and idle cores)."""
    fn()
    warm_until = time.perf_counter() + WARM
    while time.perf_counter() < warm_until:
        fn()
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def _round_robin(impls, n, repeat, budget):
    """Best time per call of every (name, callable), sampled round-robin."""
    best = {name: float("inf") for name, _ in impls}
    inner = max(1, int(2e6 // max(n, 1)))           # several calls per sample for tiny sizes
    deadline = time.perf_counter() + budget * len(impls)
    for r in range(repeat):
        for name, fn in impls:                      # round-robin: same conditions for all
            best[name] = min(best[name], _sample(fn, inner))
        if r >= 2 and time.perf_counter() > deadline:
            break
    return best


def measure(sizes, dtype=np.float32, threads=None, repeat=5, budget=2.0, torch=None,
            stream=None):
    """Time every implementation at every size; returns {size_label: {name: seconds}}."""
    threads = _openmp.effective_n_threads(threads)
    results = {}
    for label, n in sizes:
        impls = implementations(n, np.dtype(dtype), threads, torch)
        results[label] = _round_robin(impls, n, repeat, budget)
        if stream is not None:
            print(f"  measured {label}", file=stream, flush=True)
    return results


def thread_scaling(n=1 << 22, threads=None, repeat=7, budget=2.0):
    """Speed-up from 1 to ``threads`` threads of cydrop's float32 forward and of the floor.

    The floor is a STREAM-style scale ``y = x * s`` chunked and threaded like cydrop (same
    memory traffic, no generator): its speed-up is what the memory system allows. Returns
    ``(threads, cydrop_speedup, floor_speedup, {name: seconds})``.
    """
    threads = _openmp.effective_n_threads(threads)
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    s = np.float32(2)
    impls = [
        ("cydrop forward, 1 thread",
         lambda: _core.dropout(x, 0.5, seed=1, out=y, n_threads=1)),
        (f"cydrop forward, {threads} threads",
         lambda: _core.dropout(x, 0.5, seed=1, out=y, n_threads=threads)),
        ("floor: scale, 1 thread", lambda: stream_scale(x, y, s, 1)),
        (f"floor: scale, {threads} threads", lambda: stream_scale(x, y, s, threads)),
    ]
    best = _round_robin(impls, n, repeat, budget)
    t = list(best.values())
    return threads, t[0] / t[1], t[2] / t[3], best


def scaling_text(n, result):
    """Markdown lines for a :func:`thread_scaling` result."""
    threads, ours, floor, best = result
    lines = [f"Thread scaling, {n:,} float32 elements, 1 -> {threads} threads: cydrop forward "
             f"{ours:.2f}x faster; STREAM-style scale floor (same chunks and threads, no "
             f"generator) {floor:.2f}x.", ""]
    lines += [f"- {name}: {sec * 1e6:,.1f} us" for name, sec in best.items()]
    return "\n".join(lines)


# The dropout modes and the floor of each (src/cydrop_floor.h): a scale y = x * s with the
# mode's memory traffic, chunked and threaded like cydrop; float32, out= and mask_out= given.
FLOOR_SIZES = [("64K", 1 << 16), ("256K", 1 << 18), ("1M", 1 << 20), ("4M", 1 << 22),
               ("16M", 1 << 24), ("64M", 1 << 26)]
MODES = ["forward recompute", "forward bits", "forward bytes", "backward recompute",
         "backward bits", "backward bytes"]
FLOOR_OF = {"forward recompute": "read x, write y", "forward bits": "+ write n/8 bytes",
            "forward bytes": "+ write n bytes", "backward recompute": "read x, write y",
            "backward bits": "+ read n/8 bytes", "backward bytes": "+ read n bytes"}


def mode_pairs(n, threads, isa=None):
    """(mode, cydrop callable, floor callable) for every mode at one size and thread count.

    Both write into the same preallocated ``y`` (and mask buffer), so they meet the same cache
    and page state; the floor of a backward reads the very mask the backward reads.
    """
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    s = np.float32(2)
    m_bits = np.empty((n + 7) // 8, dtype=np.uint8)
    m_bytes = np.empty(n, dtype=np.uint8)
    _, c_rec = _core.dropout(x, 0.5, seed=1)
    _, c_bits = _core.dropout(x, 0.5, seed=1, mask="bits")
    _, c_bytes = _core.dropout(x, 0.5, seed=1, mask="bytes")
    r_bits, r_bytes = c_bits.stored_mask.reshape(-1), c_bytes.stored_mask.reshape(-1)
    fisa = isa if isa in _floor.isas() else None
    return [
        ("forward recompute",
         lambda: _core.dropout(x, 0.5, seed=1, out=y, n_threads=threads),
         lambda: stream_scale(x, y, s, threads, isa=fisa)),
        ("forward bits",
         lambda: _core.dropout(x, 0.5, seed=1, out=y, mask="bits", mask_out=m_bits,
                               n_threads=threads),
         lambda: stream_scale(x, y, s, threads, mask_bits=m_bits, isa=fisa)),
        ("forward bytes",
         lambda: _core.dropout(x, 0.5, seed=1, out=y, mask="bytes", mask_out=m_bytes,
                               n_threads=threads),
         lambda: stream_scale(x, y, s, threads, mask_bytes=m_bytes, isa=fisa)),
        ("backward recompute",
         lambda: _core.dropout_backward(x, c_rec, out=y, n_threads=threads),
         lambda: stream_scale(x, y, s, threads, isa=fisa)),
        ("backward bits",
         lambda: _core.dropout_backward(x, c_bits, out=y, n_threads=threads),
         lambda: stream_scale(x, y, s, threads, read_bits=r_bits, isa=fisa)),
        ("backward bytes",
         lambda: _core.dropout_backward(x, c_bytes, out=y, n_threads=threads),
         lambda: stream_scale(x, y, s, threads, read_bytes=r_bytes, isa=fisa)),
    ]


def floor_ratios(sizes=FLOOR_SIZES, thread_counts=(1, 2), isas=(None,), repeat=7, budget=1.0,
                 stream=None):
    """Every mode against its matched floor, interleaved; best time per call of each.

    For every size, the (ISA, thread count, mode) pairs are sampled round-robin -- a mode's
    call, then its floor's, then the next pair -- ``repeat`` times (fewer once ``budget``
    seconds per pair are spent, but at least 3). An ISA of None is the active one; the cydrop
    kernels are switched with :func:`cydrop._kernels.set_isa` before each ISA's turn, and the
    floor of the same vector width runs beside them (the baseline floor for the baseline).
    Returns ``{(isa_name, threads, mode, size_label): (cydrop_s, floor_s, n)}``.
    """
    results = {}
    active = _kernels.current_isa()
    for label, n in sizes:
        groups = []
        for isa in isas:
            name = isa or active
            for threads in thread_counts:
                for mode, ours, floor in mode_pairs(n, threads, name):
                    groups.append((name, (name, threads, mode, label), ours, floor))
        best = {key: [float("inf"), float("inf")] for _, key, _, _ in groups}
        inner = max(1, int(2e6 // n))
        deadline = time.perf_counter() + budget * len(groups)
        try:
            for r in range(repeat):
                for name, key, ours, floor in groups:
                    if _kernels.current_isa() != name:
                        _kernels.set_isa(name)
                    best[key][0] = min(best[key][0], _sample(ours, inner))
                    best[key][1] = min(best[key][1], _sample(floor, inner))
                if r >= 2 and time.perf_counter() > deadline:
                    break
        finally:
            _kernels.set_isa(active)
        results.update({key: (v[0], v[1], n) for key, v in best.items()})
        if stream is not None:
            print(f"  floors measured {label}", file=stream, flush=True)
    return results


def _grid(results, rows, cols, cell, note):
    """Markdown: leading ``cols`` (title, alignment, text of a row key) and, per size label,
    ``cell(cydrop_s, floor_s, n)`` for every (isa, threads, mode) key of ``rows``."""
    labels = list(dict.fromkeys(key[3] for key in results))
    lines = ["| " + " | ".join([title for title, _, _ in cols] + labels) + " |",
             "| " + " | ".join([align for _, align, _ in cols] + ["---:"] * len(labels)) + " |"]
    for row in rows:
        cells = [text(row) for _, _, text in cols]
        cells += [cell(*results[(*row, label)]) for label in labels]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", note])


def floor_table(results):
    """Markdown: per (ISA, threads, mode) a row, per size cydrop's time over its floor's."""
    cols = [("ISA", "---", lambda r: r[0]), ("threads", "---:", lambda r: str(r[1])),
            ("mode", "---", lambda r: r[2]), ("floor traffic", "---", lambda r: FLOOR_OF[r[2]])]
    return _grid(results, dict.fromkeys(key[:3] for key in results), cols,
                 lambda ours, floor, n: f"{ours / floor:.2f}",
                 "Each cell: cydrop's best time per call divided by its matched floor's (a scale "
                 "y = x * s moving the same bytes, same chunks and threads, no generator), "
                 "float32, out= and mask_out= preallocated; 1.00 is the floor.")


def ns_table(results, threads=1):
    """Markdown: ns per element of each ISA's modes and floors at ``threads`` threads."""
    rows = [key for key in dict.fromkeys(k[:3] for k in results) if key[1] == threads]
    cols = [("ISA", "---", lambda r: r[0]), ("mode", "---", lambda r: r[2])]
    return _grid(results, rows, cols,
                 lambda ours, floor, n: f"{ours / n * 1e9:.3f} / {floor / n * 1e9:.3f}",
                 f"Each cell: ns per element at {threads} thread(s), cydrop / its matched floor.")


def header(threads):
    return (f"cydrop {__version__} | CPU: {_cpu_model()} | cores: {os.cpu_count()} | "
            f"threads: {threads} | ISA: {_kernels.current_isa()} | "
            f"OpenMP: {_openmp.openmp_enabled()} | numpy {np.__version__}")


def table(results, reference="cydrop forward out="):
    """Markdown: one row per implementation, per size the time and its ratio to cydrop."""
    labels = list(results)
    names = list(next(iter(results.values())))
    lines = ["| implementation | " + " | ".join(labels) + " |",
             "| --- | " + " | ".join("---:" for _ in labels) + " |"]
    for name in names:
        cells = []
        for label in labels:
            t, ref = results[label][name], results[label][reference]
            cells.append(f"{t * 1e6:,.1f} us ({t / ref:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Each cell: best time per call, and (in brackets) that time divided by "
                 f"'{reference}' at the same size: above 1 means slower than cydrop.")
    return "\n".join(lines)


def plot(results, sizes, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 5))
    ns = [n for _, n in sizes]
    for name in next(iter(results.values())):
        ax.plot(ns, [n / results[label][name] for label, n in sizes], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("elements")
    ax.set_ylabel("elements / s")
    ax.set_title("dropout throughput (higher is better)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None, prog="python -m cydrop bench"):
    """Entry point of ``cydrop bench``; returns a process exit code. ``prog`` is the name shown
    in usage lines (the command as it was invoked)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Time cydrop's dropout against NumPy forms (and torch) in one run.")
    parser.add_argument("--sizes", type=_parse_sizes, default=_parse_sizes("1K,64K,1M,16M"),
                        help="comma-separated sizes, e.g. 1K,1M,64M (default: 1K,64K,1M,16M)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for cydrop and torch (default: all usable cores)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="samples per implementation (default: 7)")
    parser.add_argument("--floors", type=_parse_sizes, default=None, metavar="SIZES",
                        help="sizes of the matched-floor table (default: 64K,256K,1M,4M,16M,64M "
                             "with --report, none otherwise)")
    parser.add_argument("--half", type=_parse_sizes, default=None, metavar="SIZES",
                        help="sizes of the float16/bfloat16 table (against float32 and a "
                             "same-bytes floor; default: 16M with --report, none otherwise)")
    parser.add_argument("--report", metavar="DIR",
                        help="also write DIR/bench.md, DIR/bench.json (with the machine) and, "
                             "with matplotlib, DIR/bench.png")
    parser.add_argument("--contention", action="store_true",
                        help="instead: default threads against one thread while 0 .. cores "
                             "busy processes load the machine (median of --repeat calls, "
                             "40 if not given), 64K-64M; with --report, DIR/contention.md and "
                             ".json")
    args = parser.parse_args(argv)
    if args.contention:
        return _contention(args, parser)
    args.repeat = 7 if args.repeat is None else args.repeat
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    try:
        threads = _openmp.effective_n_threads(args.threads)
    except ValueError as exc:
        parser.error(f"--threads: {exc}")
    torch = _torch(threads)
    head = header(threads)
    print(head)
    print(f"dtype {args.dtype}, rate 0.5; torch: "
          f"{torch.__version__ if torch is not None else 'not installed'}")
    results = measure(args.sizes, np.dtype(args.dtype), threads, args.repeat, torch=torch,
                      stream=sys.stderr)
    text = table(results)
    # What follows measures the OpenMP team itself (1 against n threads, each mode against its
    # floor on the same team): the runner's load feedback, which may send calls serial on a busy
    # machine, is off for it and restored afterwards.
    feedback_was = _parallel.load_feedback(False)["enabled"]
    data = {"dtype": args.dtype, "rate": 0.5, "threads": threads, "repeat": args.repeat,
            "reference": "cydrop forward out=", "times": results}
    try:
        text += _team_tables(args, threads, data)
    finally:
        _parallel.load_feedback(feedback_was)
    half_sizes = args.half if args.half is not None else (
        [("16M", SIZES["16M"])] if args.report else [])
    if half_sizes:
        from . import bench_half
        half = bench_half.measure(half_sizes, threads, args.repeat, _round_robin, torch)
        data["half"] = {"threads": threads, "reference": bench_half.F32,
                        "floor": bench_half.FLOOR, "times": half}
        text += "\n\n" + bench_half.table(half, threads)
    print(text)
    if args.report:
        os.makedirs(args.report, exist_ok=True)
        with open(os.path.join(args.report, "bench.md"), "w") as fh:
            fh.write(f"# cydrop benchmark\n\n{head}\n\n{text}\n")
        try:
            plot(results, args.sizes, os.path.join(args.report, "bench.png"))
        except ImportError:
            print("matplotlib is not installed: wrote bench.md only "
                  "(pip install 'cydrop[plot]' for the PNG)", file=sys.stderr)
        # the same run as JSON, with the machine: the documentation quotes it (docs/_data)
        write_record(os.path.join(args.report, "bench.json"), "bench",
                     " ".join([prog, *(sys.argv[1:] if argv is None else argv)]), data,
                     threads, torch)
    return 0


def _team_tables(args, threads, data=None):
    """The thread-scaling lines and the matched-floor tables of a bench run, as markdown; their
    measurements go into ``data`` (a dict) when given."""
    data = {} if data is None else data
    text = ""
    if threads > 1 and _openmp.openmp_enabled():
        n_scale = SIZES["4M"]
        scaling = thread_scaling(n_scale, threads, args.repeat)
        data["scaling"] = {"n": n_scale, "threads": scaling[0], "cydrop": scaling[1],
                           "floor": scaling[2], "times": scaling[3]}
        text += "\n\n" + scaling_text(n_scale, scaling)
    floor_sizes = args.floors if args.floors is not None else (
        FLOOR_SIZES if args.report else [])
    if floor_sizes:
        isas = [i for i in ("baseline", "avx2") if i in _kernels.isas()]
        if _kernels.current_isa() not in isas:
            isas.append(_kernels.current_isa())
        counts = sorted({1, threads})
        res = floor_ratios(floor_sizes, counts, isas, args.repeat, stream=sys.stderr)
        data["floors"] = [{"isa": isa, "threads": t, "mode": mode, "size": label, "n": n,
                           "cydrop": ours, "floor": floor}
                          for (isa, t, mode, label), (ours, floor, n) in res.items()]
        text += ("\n\n## Every mode against its matched floor\n\n" + floor_table(res)
                 + "\n\n## Per ISA, 1 thread\n\n" + ns_table(res, 1))
    return text


def _contention(args, parser):
    """``cydrop bench --contention``: see :mod:`cydrop.apps.contention`."""
    from . import contention

    repeat = 40 if args.repeat is None else args.repeat
    if repeat < 1:
        parser.error(f"--repeat must be >= 1, got {repeat}")
    try:
        threads = _openmp.effective_n_threads(args.threads)
    except ValueError as exc:
        parser.error(f"--threads: {exc}")
    print(header(threads))
    contention.run(repeat=repeat, threads=threads, torch=_torch(threads), report=args.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
