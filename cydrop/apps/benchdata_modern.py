"""The figures and tables of the ``modern`` record (:mod:`cydrop.apps.benchdata` renders them).

The record (``docs/_data/modern.json``, written by ``python -m cydrop.apps.docdata --only
modern``) has three parts (a record may lack any of them; older ones have no ``ops``):

* ``residual``: ``python bench/bench_residual.py --json``, ``cydrop.dropout_add`` against its
  floor ``cydrop._floor.stream_add`` on one thread and on the team, and the unfused NumPy
  sequence, round-robin in one run (best of ``repeat``);
* ``transformer``: ``python bench/bench_transformer.py --json``, a pre-norm transformer block's
  forward in training mode and with dropout off, for cydrop, NumPy and torch (medians);
* ``ops``: ``python bench/bench_modern_ops.py --json``, each modern op (``drop_path``,
  ``softmax_dropout`` and ``softmax_dropout_backward``, ``drop_block``,
  ``feature_alpha_dropout``, channels-last ``spatial_dropout_nhwc``) at one float32 shape: cydrop
  on the team, the NumPy formulation and torch's, round-robin in one run (best of ``repeat``).

Figures (``modern:`` keys; ``<t>`` is a thread count, or ``team`` for the largest one when it is
above 1, as for the ``bench`` record's floors):

* ``add.<t>.vs_floor``: dropout_add's time / the floor's (1.00 is the floor; target <= 1.05x);
* ``add.<t>.vs_numpy``: the unfused NumPy sequence's time / dropout_add's (above 1: cydrop is
  faster; target >= 3x); ``add.<t>.cydrop``, ``add.<t>.floor`` and ``add.numpy`` the times,
  ``add.elements`` the size, ``add.repeat`` the samples;
* ``transformer.<impl>.share``: the dropout share of the block, ``(train - off) / train``;
  ``transformer.<impl>.train`` and ``.off`` the times;
* ``transformer.cydrop.vs_numpy`` and ``.vs_torch``: NumPy's (torch's) train time / cydrop's
  (above 1: cydrop's block is faster); ``transformer.shape``, ``transformer.threads``;
* ``ops.<op>.vs_numpy`` and ``ops.<op>.vs_torch``: the NumPy (torch) time / cydrop's (above 1:
  cydrop is faster; ``vs_torch`` only when the record has a torch row), ``ops.<op>.cydrop``
  cydrop's time, ``ops.<op>.shape`` the shape; ``ops.threads`` and ``ops.repeat``.

Tables: ``modern:residual``, ``modern:transformer`` and ``modern:ops``. This module reads
records only; it imports no compiled part of cydrop (nor :mod:`cydrop.apps.benchdata`, which
imports it).
"""

from .benchfmt import _ratio, _seconds, slug

__all__ = ["modern_figures", "modern_tables"]


def _thread_names(counts):
    """``{count: [names]}``: every count by its number, the largest (above 1) also as team."""
    top = max(counts)
    return {t: [str(t), "team"] if t == top and t > 1 else [str(t)] for t in counts}


def _shape_text(sh):
    return f"B={sh['batch']} T={sh['sequence']} D={sh['width']} H={sh['heads']}"


def _ops_shape(shape):
    return " x ".join(str(v) for v in shape)


def _ops_rate(ops):
    rates = sorted({rec["rate"] for rec in ops["ops"].values()})
    return ", ".join(str(r) for r in rates)


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
    ops = data.get("ops")
    if ops:
        out["ops.threads"] = (ops["threads"], "int")
        out["ops.repeat"] = (ops["repeat"], "int")
        for op, rec in ops["ops"].items():
            t = rec["times"]
            out[f"ops.{slug(op)}.shape"] = (_ops_shape(rec["shape"]), "str")
            out[f"ops.{slug(op)}.cydrop"] = (t["cydrop"], "s")
            for other in ("numpy", "torch"):
                if other in t:
                    out[f"ops.{slug(op)}.vs_{other}"] = (t[other] / t["cydrop"], "x")


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
    ops = data.get("ops")
    if ops:
        rows = []
        for op, rec in ops["ops"].items():
            t = rec["times"]
            cy = t["cydrop"]
            rows.append([op, _ops_shape(rec["shape"]), _seconds(cy)]
                        + [_seconds(t[o]) if o in t else "" for o in ("numpy", "torch")]
                        + [f"{_ratio(t[o] / cy)}x" if o in t else "" for o in ("numpy", "torch")])
        torch = (f"torch {ops['torch']} on the same threads" if ops.get("torch")
                 else "torch did not import")
        out["ops"] = (["op", "shape", "cydrop", "NumPy", "torch", "NumPy / cydrop",
                       "torch / cydrop"], "llrrrrr", rows,
                      f"Each op at one float32 shape, rate {_ops_rate(ops)}; best time per call "
                      f"of {ops['repeat']} samples after a warm-up, every row timed round-robin "
                      f"in one run; cydrop on {ops['threads']} thread(s), writing into a "
                      f"preallocated out= where the op takes one; NumPy: a default_rng mask, "
                      f"the scale and the multiply (the softmax first; for drop_block the seed "
                      f"grid, pad, max-pool, invert and rescale of torchvision's drop_block2d; "
                      f"for the backward gp - P * sum(gp)); {torch} (F.dropout after F.softmax "
                      f"and autograd's backward, F.feature_alpha_dropout, F.dropout2d on a "
                      f"channels_last tensor, and the torch forms of drop_path and of "
                      f"drop_block2d). spatial_dropout_nhwc is "
                      f"cydrop.variants.spatial_dropout(x, channel_axis=-1) on NHWC; drop_block "
                      f"uses block_size {ops['ops'].get('drop_block', {}).get('block_size', '')}. "
                      f"Every row's output was checked before timing.")
