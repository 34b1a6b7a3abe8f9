"""The figures and tables of the ``modern`` record (:mod:`cydrop.apps.benchdata` renders them).

The record (``docs/_data/modern.json``, written by ``python -m cydrop.apps.docdata --only
modern``) has two parts:

* ``residual``: ``python bench/bench_residual.py --json``, ``cydrop.dropout_add`` against its
  floor ``cydrop._floor.stream_add`` on one thread and on the team, and the unfused NumPy
  sequence, round-robin in one run (best of ``repeat``);
* ``transformer``: ``python bench/bench_transformer.py --json``, a pre-norm transformer block's
  forward in training mode and with dropout off, for cydrop, NumPy and torch (medians).

Figures (``modern:`` keys; ``<t>`` is a thread count, or ``team`` for the largest one when it is
above 1, as for the ``bench`` record's floors):

* ``add.<t>.vs_floor``: dropout_add's time / the floor's (1.00 is the floor; target <= 1.05x);
* ``add.<t>.vs_numpy``: the unfused NumPy sequence's time / dropout_add's (above 1: cydrop is
  faster; target >= 3x); ``add.<t>.cydrop``, ``add.<t>.floor`` and ``add.numpy`` the times,
  ``add.elements`` the size, ``add.repeat`` the samples;
* ``transformer.<impl>.share``: the dropout share of the block, ``(train - off) / train``;
  ``transformer.<impl>.train`` and ``.off`` the times;
* ``transformer.cydrop.vs_numpy`` and ``.vs_torch``: NumPy's (torch's) train time / cydrop's
  (above 1: cydrop's block is faster); ``transformer.shape``, ``transformer.threads``.

Tables: ``modern:residual`` and ``modern:transformer``. This module reads records only; it
imports no compiled part of cydrop (nor :mod:`cydrop.apps.benchdata`, which imports it).
"""

from .benchfmt import _ratio, _seconds, slug

__all__ = ["modern_figures", "modern_tables"]


def _thread_names(counts):
    """``{count: [names]}``: every count by its number, the largest (above 1) also as team."""
    top = max(counts)
    return {t: [str(t), "team"] if t == top and t > 1 else [str(t)] for t in counts}


def _shape_text(sh):
    return f"B={sh['batch']} T={sh['sequence']} D={sh['width']} H={sh['heads']}"


def modern_figures(data, out):
    """Add the ``modern`` record's figures (keys without the ``modern:`` prefix) to ``out``."""
    res = data.get("residual")
    if res:
        out["add.elements"] = (res["n"], "int")
        out["add.size"] = (res["size"], "str")
        out["add.repeat"] = (res["repeat"], "int")
        out["add.numpy"] = (res["numpy"], "s")
        counts = {int(t): row for t, row in res["times"].items()}
        for t, names in _thread_names(counts).items():
            row = counts[t]
            cy, fl = row["cydrop dropout_add"], row["floor stream_add"]
            for name in names:
                out[f"add.{name}.threads"] = (t, "int")
                out[f"add.{name}.cydrop"] = (cy, "s")
                out[f"add.{name}.floor"] = (fl, "s")
                out[f"add.{name}.vs_floor"] = (cy / fl, "x")
                out[f"add.{name}.vs_numpy"] = (res["numpy"] / cy, "x")
    tr = data.get("transformer")
    if tr:
        out["transformer.shape"] = (_shape_text(tr["shape"]), "str")
        out["transformer.threads"] = (tr["threads"], "int")
        out["transformer.rounds"] = (tr["rounds"], "int")
        r = tr["results"]
        for impl, v in r.items():
            out[f"transformer.{slug(impl)}.train"] = (v["train"], "s")
            out[f"transformer.{slug(impl)}.off"] = (v["off"], "s")
            out[f"transformer.{slug(impl)}.share"] = (100 * v["share"], "%")
        for other in ("numpy", "torch"):
            if other in r and "cydrop" in r:
                out[f"transformer.cydrop.vs_{other}"] = (r[other]["train"] / r["cydrop"]["train"],
                                                         "x")


def modern_tables(data, out):
    """Add the ``modern`` record's tables (names without the prefix) to ``out``."""
    res = data.get("residual")
    if res:
        counts = sorted(int(t) for t in res["times"])
        rows = []
        for t in counts:
            row = res["times"][str(t)]
            cy, fl = row["cydrop dropout_add"], row["floor stream_add"]
            rows.append(["cydrop.dropout_add", str(t), _seconds(cy), f"{_ratio(cy / fl)}x",
                         f"{_ratio(res['numpy'] / cy)}x"])
            rows.append(["floor (stream_add)", str(t), _seconds(fl), "1.00x",
                         f"{_ratio(res['numpy'] / fl)}x"])
        rows.append(["unfused NumPy", "1", _seconds(res["numpy"]), "", "1.00x"])
        out["residual"] = (["implementation", "threads", "best time per call", "/ floor",
                            "NumPy's time / this"], "lrrrr", rows,
                           f"residual + dropout(x), {res['n']:,} float32 elements, rate "
                           f"{res['rate']}, out= preallocated; every row timed round-robin in "
                           f"one run, best of {res['repeat']} samples after a warm-up. The floor "
                           f"reads x and the residual and writes the output on the same threads "
                           f"(targets: <= 1.05x of the floor, >= 3x faster than NumPy's "
                           f"mask, scale and add).")
    tr = data.get("transformer")
    if tr:
        r = tr["results"]
        base = r.get("cydrop", {}).get("train")
        rows = [[impl, _seconds(v["train"]), _seconds(v["off"]), f"{100 * v['share']:.1f}%",
                 f"{_ratio(v['train'] / base)}x" if base else ""]
                for impl, v in r.items()]
        torch = f"; torch {tr['torch']}" if tr.get("torch") else ""
        out["transformer"] = (["implementation", "train", "dropout off", "dropout share",
                               "train / cydrop's"], "lrrrr", rows,
                              f"One pre-norm transformer block's forward, "
                              f"{_shape_text(tr['shape'])}, float32, dropout {tr['rate']}; "
                              f"median of {tr['rounds']} call(s) per implementation and mode, "
                              f"{tr['threads']} thread(s){torch}. Dropout share: "
                              f"(train - dropout off) / train.")
