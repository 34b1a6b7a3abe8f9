"""The documentation's numbers: named figures and tables computed from the benchmark records.

The records are the JSON files of ``docs/_data/`` (``bench.json``, ``contention.json``,
``courses.json``, ``training.json``, ``modern.json``), written by :mod:`cydrop.apps.docdata`.
This module only reads them (the ``modern`` record's figures and tables are in
:mod:`cydrop.apps.benchdata_modern`): the Sphinx extension of ``docs/_ext/`` renders
:func:`figures` and :func:`tables` into the pages, and :func:`readme_block` is the README's
speed section, so the site, the README and the tests all take a number from the same place. No
figure is typed by hand.

A figure is ``(value, unit)``; :func:`format_value` renders it (``x``: a ratio, ``s``: seconds
shown in us, ms or s, ``ns``, ``%``, ``+%``: a signed percentage, ``int``, ``str``; a ``range``
value is a ``(low, high, unit)`` triple). A key is ``record:path``, e.g.
``bench:ratio.1M.numpy_generator_form``.
"""

import json
import os
import re
import textwrap

from .benchdata_modern import modern_figures, modern_tables
from .benchfmt import _ratio, _seconds, slug

__all__ = ["RECORDS", "slug", "load_records", "format_value", "figures", "tables",
           "machine_line", "markdown_table", "readme_block", "replace_readme_block",
           "BenchDataError"]

RECORDS = ("bench", "contention", "courses", "training", "modern")
CACHE_SIZES = ("64K", "256K", "1M")             # the matched floor is core-bound here
MEMORY_SIZES = ("4M", "16M", "64M")             # ... and bound by memory here
MODE_GROUPS = {
    "forward": ("forward recompute", "forward bits", "forward bytes"),
    "forward_recompute": ("forward recompute",),
    "forward_mask": ("forward bits", "forward bytes"),
    "backward_recompute": ("backward recompute",),
    "backward_mask": ("backward bits", "backward bytes"),
    "generating": ("forward recompute", "forward bits", "forward bytes", "backward recompute"),
    "storing_or_recomputing": ("forward bits", "forward bytes", "backward recompute"),
}
SIZE_GROUPS = {"cache": CACHE_SIZES, "memory": MEMORY_SIZES}


class BenchDataError(KeyError):
    """A figure, table or record that the benchmark records do not hold."""

    def __str__(self):
        return str(self.args[0]) if self.args else "benchmark data error"


def load_records(directory):
    """``{name: record}`` of every record file in ``directory`` (missing ones are left out)."""
    records = {}
    for name in RECORDS:
        path = os.path.join(directory, f"{name}.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                records[name] = json.load(fh)
    return records


def format_value(value, unit):
    """Text of a figure; see the module docstring for the units."""
    if unit == "range":
        low, high, inner = value
        a, b = format_value(low, inner), format_value(high, inner)
        if a == b:
            return a
        (num_a, unit_a), (num_b, unit_b) = (re.match(r"^(.*?\d)(\D*)$", t).groups()
                                            for t in (a, b))
        return f"{num_a}-{b}" if unit_a == unit_b else f"{a} - {b}"
    if unit == "x":
        return _ratio(value) + "x"
    if unit == "s":
        return _seconds(value)
    if unit == "ns":
        return f"{value:.3f} ns"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "+%":
        return f"{value:+.1f}%"
    if unit == "int":
        return f"{int(value):,}"
    if unit == "str":
        return str(value)
    raise ValueError(f"unknown unit {unit!r}")


def _range(values, unit):
    values = list(values)
    return (min(values), max(values), unit), "range"


# ---------------------------------------------------------------------------- figures


def _bench_figures(data, out):
    ref = data["reference"]
    out["threads"] = (data["threads"], "int")
    out["repeat"] = (data["repeat"], "int")
    for label, row in data["times"].items():
        for name, t in row.items():
            out[f"time.{label}.{slug(name)}"] = (t, "s")
            out[f"ratio.{label}.{slug(name)}"] = (t / row[ref], "x")
    half = data.get("half", {})
    for label, row in half.get("times", {}).items():
        for name, t in row.items():
            out[f"half.{label}.{slug(name)}.vs_f32"] = (t / row[half["reference"]], "x")
            out[f"half.{label}.{slug(name)}.vs_floor"] = (t / row[half["floor"]], "x")
    if "scaling" in data:
        sc = data["scaling"]
        out["scaling.cydrop"] = (sc["cydrop"], "x")
        out["scaling.floor"] = (sc["floor"], "x")
        out["scaling.threads"] = (sc["threads"], "int")
        out["scaling.elements"] = (sc["n"], "int")
        out["scaling.vs_floor"] = (sc["cydrop"] / sc["floor"], "x")
    floors = data.get("floors", [])
    counts = sorted({f["threads"] for f in floors})
    # "team" names the largest thread count of the run (when above 1), so the pages need not
    # know how many cores the measuring machine had
    names = lambda t: [str(t), "team"] if t == counts[-1] and t > 1 else [str(t)]
    for f in floors:
        for t in names(f["threads"]):
            key = f"{f['isa']}.{t}.{slug(f['mode'])}.{f['size']}"
            out[f"floor.{key}"] = (f["cydrop"] / f["floor"], "x")
            out[f"floor_time.{key}"] = (f["floor"], "s")
            out[f"cydrop_time.{key}"] = (f["cydrop"], "s")
            out[f"ns.{key}.cydrop"] = (f["cydrop"] / f["n"] * 1e9, "ns")
            out[f"ns.{key}.floor"] = (f["floor"] / f["n"] * 1e9, "ns")
    isas = dict.fromkeys(f["isa"] for f in floors)
    for isa in isas:
        for group, modes in MODE_GROUPS.items():
            for sizes_name, sizes in SIZE_GROUPS.items():
                for t in [None, *counts]:
                    sel = [f for f in floors if f["isa"] == isa and f["mode"] in modes
                           and f["size"] in sizes and (t is None or f["threads"] == t)]
                    if not sel:
                        continue
                    for tn in [None] if t is None else names(t):
                        where = f"{isa}.{group}.{sizes_name}" if tn is None else \
                            f"{isa}.{tn}.{group}.{sizes_name}"
                        out[f"floor_range.{where}"] = _range((f["cydrop"] / f["floor"]
                                                              for f in sel), "x")
                        for side in ("cydrop", "floor"):
                            out[f"ns_range.{where}.{side}"] = _range(
                                (f[side] / f["n"] * 1e9 for f in sel), "ns")
        if len(counts) > 1:
            for f1 in floors:
                if f1["isa"] == isa and f1["threads"] == 1 and f1["mode"] == "forward recompute":
                    fn = [f for f in floors if f["isa"] == isa and f["threads"] == counts[-1]
                          and f["mode"] == "forward recompute" and f["size"] == f1["size"]][0]
                    out[f"floor_speedup.{isa}.{f1['size']}"] = (f1["floor"] / fn["floor"], "x")


def _contention_figures(data, out):
    out["repeat"] = (data["repeat"], "int")
    out["threads"] = (data["threads"], "int")
    results = data["results"]
    out["busy_max"] = (max(int(k) for k in results), "int")
    names = dict.fromkeys(n for by_size in results.values() for row in by_size.values()
                          for n in row)
    for k, by_size in results.items():
        for label, row in by_size.items():
            for name, cell in row.items():
                out[f"ratio.busy{k}.{label}.{slug(name)}"] = (cell["default"] / cell["one"], "x")
                out[f"one_thread.busy{k}.{label}.{slug(name)}"] = (cell["one"], "s")
                out[f"default.busy{k}.{label}.{slug(name)}"] = (cell["default"], "s")
        for name in names:
            ratios = {label: row[name]["default"] / row[name]["one"]
                      for label, row in by_size.items() if name in row}
            if not ratios:
                continue
            worst = max(ratios, key=ratios.get)
            out[f"worst.busy{k}.{slug(name)}"] = (ratios[worst], "x")
            out[f"worst_size.busy{k}.{slug(name)}"] = (worst, "str")
            out[f"range.busy{k}.{slug(name)}"] = _range(ratios.values(), "x")
    for name in names:
        loaded = [row[name]["default"] / row[name]["one"] for k, by_size in results.items()
                  if int(k) > 0 for row in by_size.values() if name in row]
        if loaded:
            out[f"range.loaded.{slug(name)}"] = _range(loaded, "x")


def _courses_figures(data, out):
    out["repeat"] = (data["repeat"], "int")
    for course, r in data["results"].items():
        for part in ("whole", "dropout"):
            out[f"{course}.{part}"] = (r["course"][part] / r["cydrop"][part], "x")
            out[f"{course}.{part}_course"] = (r["course"][part], "s")
            out[f"{course}.{part}_cydrop"] = (r["cydrop"][part], "s")


def _training_figures(data, out):
    if "train" in data:
        out["train.seconds"] = (data["train"]["seconds"], "s")
        out["train.threads"] = (data["train"]["threads"], "int")
    for setting, share in data.get("share", {}).items():
        res = share["results"]
        base = res["none"]["epoch"]
        out[f"share.{setting}.threads"] = (share["threads"], "int")
        for impl, r in res.items():
            out[f"share.{setting}.{impl}.epoch"] = (r["epoch"], "s")
            out[f"share.{setting}.{impl}.dropout"] = (r["dropout"], "s")
            out[f"share.{setting}.{impl}.share"] = (100 * r["dropout"] / r["epoch"], "%")
            out[f"share.{setting}.{impl}.vs_none"] = (100 * (r["epoch"] - base) / base, "+%")
        out[f"share.{setting}.numpy_vs_cydrop"] = (
            res["numpy"]["dropout"] / res["cydrop"]["dropout"], "x")
    if "vs_torch" in data:
        vt = data["vs_torch"]["results"]
        out["vs_torch.ratio"] = (vt["cydrop"] / vt["torch"], "x")
        out["vs_torch.cydrop"] = (vt["cydrop"], "s")
        out["vs_torch.torch"] = (vt["torch"], "s")


_FIGURES = {"bench": _bench_figures, "contention": _contention_figures,
            "courses": _courses_figures, "training": _training_figures,
            "modern": modern_figures}


def figures(records):
    """``{"record:path": (value, unit)}`` of every named figure of ``records``."""
    out = {}
    for name, record in records.items():
        found = {}
        _FIGURES[name](record["data"], found)
        m = record["machine"]
        found.update({"machine.cpu": (m["cpu"], "str"), "machine.cores": (m["cores"], "int"),
                      "machine.isa": (m["isa"], "str"), "machine.date": (m["date"], "str"),
                      "command": (record["command"], "str")})
        out.update({f"{name}:{key}": value for key, value in found.items()})
    return out


def figure(records_or_figures, key):
    """The text of one figure; :class:`BenchDataError` names the key and what is near it."""
    figs = records_or_figures
    if key not in figs:
        record = key.split(":", 1)[0]
        near = sorted(k for k in figs if k.startswith(key.rsplit(".", 1)[0]))[:8]
        have = sorted({k.split(":", 1)[0] for k in figs})
        raise BenchDataError(
            f"no benchmark figure {key!r} (records: {', '.join(have) or 'none'}"
            + (f"; record {record!r} not found" if record not in have else "")
            + (f"; similar keys: {', '.join(near)}" if near else "") + ")")
    return format_value(*figs[key])


# ---------------------------------------------------------------------------- tables
# A table is (headers, aligns, rows, note); aligns are "l" or "r", cells are text.


def _bench_tables(data, out):
    ref = data["reference"]
    labels = list(data["times"])
    names = list(next(iter(data["times"].values())))
    cells = lambda name, fmt: [fmt(data["times"][lb][name], data["times"][lb][ref])
                               for lb in labels]
    out["times"] = (["implementation", *labels], "l" + "r" * len(labels),
                    [[name, *cells(name, lambda t, r: f"{_seconds(t)} ({_ratio(t / r)}x)")]
                     for name in names],
                    f"Each cell: best time per call, and in brackets that time divided by "
                    f"'{ref}' at the same size: above 1 means slower than cydrop.")
    out["ratios"] = (["implementation", *labels], "l" + "r" * len(labels),
                     [[name, *cells(name, lambda t, r: _ratio(t / r))] for name in names],
                     f"Each cell: best time per call divided by '{ref}' at the same size "
                     f"(above 1: slower than cydrop).")
    if "scaling" in data:
        sc = data["scaling"]
        out["scaling"] = (["implementation", "best time per call"], "lr",
                          [[name, _seconds(t)] for name, t in sc["times"].items()],
                          f"{sc['n']:,} float32 elements: cydrop's forward runs "
                          f"{_ratio(sc['cydrop'])}x faster on {sc['threads']} threads than on "
                          f"one, the floor {_ratio(sc['floor'])}x.")
    if "half" in data:
        ref, floor = data["half"]["reference"], data["half"]["floor"]
        out["half"] = (["size", "implementation", "best time per call", "/ float32 forward",
                        "/ 16-bit floor"], "llrrr",
                       [[label, name, _seconds(t), f"{_ratio(t / row[ref])}x",
                         f"{_ratio(t / row[floor])}x"]
                        for label, row in data["half"]["times"].items()
                        for name, t in row.items()],
                       f"float16 and bfloat16 on {data['half']['threads']} thread(s), out= "
                       f"preallocated: each time divided by float32's forward at the same size "
                       f"and by a STREAM-style scale moving the same bytes on the same threads "
                       f"(targets for the cydrop rows: <= 0.55x and <= 1.05x).")
    floors = data.get("floors", [])
    if floors:
        sizes = list(dict.fromkeys(f["size"] for f in floors))
        rows = list(dict.fromkeys((f["isa"], f["threads"], f["mode"]) for f in floors))
        by = {(f["isa"], f["threads"], f["mode"], f["size"]): f for f in floors}
        from .bench import FLOOR_OF
        ratio = lambda f: f["cydrop"] / f["floor"]
        out["floors"] = (["ISA", "threads", "mode", "floor traffic", *sizes],
                         "lrll" + "r" * len(sizes),
                         [[isa, str(t), mode, FLOOR_OF.get(mode, ""),
                           *(f"{ratio(by[(isa, t, mode, s)]):.2f}" for s in sizes)]
                          for isa, t, mode in rows],
                         "Each cell: cydrop's best time per call divided by its matched floor's "
                         "(a scale y = x * s moving the same bytes, same chunks and threads, no "
                         "generator), float32, out= and mask_out= preallocated; 1.00 is the "
                         "floor.")
        ns = lambda f, side: f"{f[side] / f['n'] * 1e9:.3f}"
        out["ns_1thread"] = (["ISA", "mode", *sizes], "ll" + "r" * len(sizes),
                             [[isa, mode, *(f"{ns(by[(isa, t, mode, s)], 'cydrop')} / "
                                            f"{ns(by[(isa, t, mode, s)], 'floor')}"
                                            for s in sizes)]
                              for isa, t, mode in rows if t == 1],
                             "Each cell: ns per element at one thread, cydrop / its matched "
                             "floor.")


def _contention_tables(data, out):
    results = data["results"]
    for k, by_size in results.items():
        labels = list(by_size)
        names = list(dict.fromkeys(n for row in by_size.values() for n in row))
        rows = [[name, *(f"{_ratio(by_size[lb][name]['default'] / by_size[lb][name]['one'])}x "
                         f"({_seconds(by_size[lb][name]['one'])})" for lb in labels)]
                for name in names]
        out[f"busy{k}"] = (["implementation", *labels], "l" + "r" * len(labels), rows,
                           f"{k} busy process(es): default threads / one thread, median of "
                           f"{data['repeat']} calls; one thread's median in brackets.")


def _courses_tables(data, out):
    rows = []
    for course, r in data["results"].items():
        c, y = r["course"], r["cydrop"]
        rows.append([course, f"{_ratio(c['whole'] / y['whole'])}x ({_seconds(c['whole'])} / "
                             f"{_seconds(y['whole'])})",
                     f"{_ratio(c['dropout'] / y['dropout'])}x ({_seconds(c['dropout'])} / "
                     f"{_seconds(y['dropout'])})"])
    out["speed"] = (["course", "whole run", "dropout steps"], "lrr", rows,
                    f"Course time / cydrop time, best of {data['repeat']} run(s) each (above 1: "
                    f"cydrop is faster); in brackets the course's and cydrop's times.")


def _training_tables(data, out):
    for setting, share in data.get("share", {}).items():
        res = share["results"]
        base = res["none"]["epoch"]
        rows = [[impl, _seconds(r["epoch"]), _seconds(r["dropout"]) if r["dropout"] else "0",
                 f"{100 * r['dropout'] / r['epoch']:.1f}%",
                 f"{100 * (r['epoch'] - base) / base:+.1f}%" if impl != "none" else "0"]
                for impl, r in res.items()]
        out[f"share_{setting}"] = (["dropout", "epoch", "in dropout", "dropout share",
                                    "epoch vs no dropout"], "lrrrr", rows,
                                   f"Median of {share['epochs']} epochs; dropout threads "
                                   f"{share['threads']}, OpenBLAS threads "
                                   f"{share['openblas_threads'] or 'default'}.")
    if "vs_torch" in data:
        vt = data["vs_torch"]
        med = vt["results"]
        out["vs_torch"] = (["trainer", "epoch", "ratio to torch"], "lrr",
                           [[k, _seconds(med[k]), f"{_ratio(med[k] / med['torch'])}x"]
                            for k in ("cydrop", "torch")],
                           f"Median of {vt['rounds']} epochs each, alternating; "
                           f"{vt['threads']} threads; torch {vt['torch']}.")
    if "train" in data:
        out["train_output"] = data["train"]["output"]


_TABLES = {"bench": _bench_tables, "contention": _contention_tables,
           "courses": _courses_tables, "training": _training_tables, "modern": modern_tables}


def tables(records):
    """``{"record:name": table}``; a table is ``(headers, aligns, rows, note)``, or a str
    (captured console output)."""
    out = {}
    for name, record in records.items():
        found = {}
        _TABLES[name](record["data"], found)
        out.update({f"{name}:{key}": value for key, value in found.items()})
    return out


def machine_line(record):
    """One sentence naming the machine and software of a record."""
    m = record["machine"]
    torch = f", torch {m['torch']}" if m.get("torch") else ""
    return (f"Measured on {m['cpu']} ({m['cores']} cores, {m['usable_cores']} usable), cydrop "
            f"{m['cydrop']} running its {m['isa']} kernels{' with OpenMP' if m['openmp'] else ''}"
            f", {m['threads'] or 'default'} threads, NumPy {m['numpy']}{torch}, Python "
            f"{m['python']}, on {m['date']}, by `{record['command']}`.")


def markdown_table(table):
    """A table as GitHub Markdown (its note as a paragraph below)."""
    headers, aligns, rows, note = table
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if a == "r" else "---" for a in aligns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + ["", note])


README_START = "<!-- bench:start: generated by python -m cydrop.apps.docdata from docs/_data; " \
               "do not edit by hand -->"
README_END = "<!-- bench:end -->"


def readme_block(records):
    """The README's generated speed section (between :data:`README_START` and
    :data:`README_END`, both included), from the committed records."""
    figs = figures(records)
    f = lambda key: figure(figs, key)
    bench = records["bench"]
    m = bench["machine"]
    parts = [README_START, "",
             f"`{bench['command']}` on {m['cpu']} ({m['cores']} cores, {m['isa']} kernels, "
             f"{f('bench:threads')} threads, NumPy {m['numpy']}, torch {m['torch']}), "
             f"{m['date']}: float32, rate 0.5, every implementation timed in the same run, "
             f"round-robin, best of {f('bench:repeat')} samples after 5 ms of warm-up calls. "
             f"Each cell is that implementation's time divided by cydrop's "
             f"`dropout(x, 0.5, out=y)` at the same size (above 1: slower than cydrop).", "",
             # the table without its note: the paragraph above says what a cell is
             *markdown_table(tables(records)["bench:ratios"]).split("\n\n")[0].split("\n")]
    if "bench:scaling.cydrop" in figs:
        parts += ["", f"Speed-up from 1 to {f('bench:scaling.threads')} threads at "
                      f"{f('bench:scaling.elements')} elements: {f('bench:scaling.cydrop')} for "
                      f"cydrop's forward, {f('bench:scaling.floor')} for a STREAM-style floor "
                      f"with the same memory traffic and no generator."]
    if "bench:half" in tables(records):
        half = tables(records)["bench:half"]
        parts += ["", f"float16 and bfloat16 (`ml_dtypes.bfloat16`) move half the bytes of "
                      f"float32. Each cell: the time divided by float32's forward at the same "
                      f"size and by a STREAM-style scale moving the same bytes on the same "
                      f"{records['bench']['data']['half']['threads']} thread(s):", "",
                  *markdown_table(half).split("\n\n")[0].split("\n")]
    if "contention" in records:
        parts += ["", f"With 1 to {f('contention:busy_max')} CPU-bound processes busy beside "
                      f"it (`{records['contention']['command']}`), cydrop's default thread "
                      f"count took {f('contention:range.loaded.cydrop_forward')} the time of "
                      f"one thread at every size from 64K to 64M elements; without the chunk "
                      f"runner's load feedback, "
                      f"{f('contention:range.loaded.cydrop_forward_no_load_feedback')}."]
    if "training" in records and "training:vs_torch.ratio" in figs:
        parts += ["", f"A training epoch of 784-256-256-10 with dropout 0.2/0.5 (batch 256, "
                      f"60,000 samples) took {f('training:vs_torch.ratio')} the time of the "
                      f"same network, weights and batch order in PyTorch "
                      f"{records['training']['data']['vs_torch']['torch']} "
                      f"(`python bench/mlp_vs_torch.py`)."]
    parts += ["", "Times move between runs on a shared machine, so compare ratios taken in one "
                  "run. "
                  "[docs/performance.md](docs/performance.md) has the matched floors of every "
                  "mode, the busy-machine tables and the instruction budget of the hot loop.",
              "", README_END]
    # prose wrapped at 100 columns like the rest of the README; tables and markers as they are
    wrap = lambda p: p if p.startswith(("|", "<!--")) or not p else textwrap.fill(
        p, 100, break_long_words=False, break_on_hyphens=False)
    return "\n".join(wrap(p) for p in parts)


def replace_readme_block(text, block):
    """``text`` with its generated block replaced by ``block``; ValueError without markers."""
    start, end = text.find("<!-- bench:start"), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {README_START!r} ... {README_END!r} block")
    return text[:start] + block + text[end + len(README_END):]
