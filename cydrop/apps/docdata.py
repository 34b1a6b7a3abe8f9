"""``python -m cydrop.apps.docdata``: re-measure every number the documentation quotes.

One command, run from the source checkout, regenerates the benchmark records of ``docs/_data/``
and the README's speed section from them::

    python -m cydrop.apps.docdata            # all records, then the README block
    python -m cydrop.apps.docdata --only bench,courses
    python -m cydrop.apps.docdata --quick         # fewer samples: a trial run of the pipeline
    python -m cydrop.apps.docdata --readme-only   # rewrite the README block from the records
    python -m cydrop.apps.docdata --check         # exit 1 if the README block is stale

The records, each with the machine it was measured on (:func:`cydrop.apps.report.machine`):

* ``bench.json``: ``cydrop bench --sizes 1K,64K,1M,16M,64M --report DIR`` (the implementations,
  the thread scaling and every mode against its matched floor);
* ``contention.json``: ``cydrop bench --contention --report DIR``;
* ``courses.json``: ``python -m cydrop.compat.bench`` (each course's dropout experiment);
* ``training.json``: ``cydrop train --quiet``, ``bench/mlp_share.py`` at the default threads and
  at one thread everywhere, and ``bench/mlp_vs_torch.py``;
* ``modern.json``: ``bench/bench_residual.py --json`` (``dropout_add`` against its floor and
  unfused NumPy at 16M, one thread and the team), ``bench/bench_transformer.py --json`` (a
  transformer block's dropout share for cydrop, NumPy and torch) and
  ``bench/bench_modern_ops.py --json`` (drop_path, softmax_dropout and its backward,
  drop_block, feature_alpha_dropout and channels-last spatial_dropout against NumPy and torch).

Every measurement runs in a fresh process (so thread pools, environment variables such as
``OPENBLAS_NUM_THREADS`` and the load feedback start clean). Run it on a quiet machine: it takes
a while (the contention table times every size under every load). The docs render the records
with the ``benchnum`` extension of ``docs/_ext/``; the README's speed section is written here.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from . import benchdata
from .report import write_record

# the directory holding the cydrop package this runs from: the measuring processes import it too
PKG_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROOT = os.getcwd()                       # the source checkout (docs/, bench/, README.md)
DATA_DIR = os.path.join("docs", "_data")
README = "README.md"
BENCH_SIZES = "1K,64K,1M,16M,64M"


def _run(args, env=None, stdout=None):
    """Run ``python args...`` in a fresh process from the checkout's root; stop on failure."""
    cmd = [sys.executable, *args]
    print("$ " + " ".join(["python", *args]), file=sys.stderr, flush=True)
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (PKG_PARENT, os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(cmd, cwd=ROOT, env=full_env, stdout=stdout, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"docdata: {' '.join(args)} failed with status {result.returncode}")
    return result


def _copy_record(src, dest, tmp):
    """Copy a record, naming its report directory ``DIR`` rather than a temporary path."""
    with open(src, encoding="utf-8") as fh:
        record = json.load(fh)
    record["command"] = record["command"].replace(tmp, "DIR")
    with open(dest, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")


def regen_bench(out, tmp, quick=False):
    _run(["-m", "cydrop", "bench", "--sizes", BENCH_SIZES, "--report", tmp,
          *(["--repeat", "3"] if quick else [])], stdout=subprocess.DEVNULL)
    _copy_record(os.path.join(tmp, "bench.json"), os.path.join(out, "bench.json"), tmp)


def regen_contention(out, tmp, quick=False):
    _run(["-m", "cydrop", "bench", "--contention", "--report", tmp,
          *(["--repeat", "10"] if quick else [])], stdout=subprocess.DEVNULL)
    _copy_record(os.path.join(tmp, "contention.json"), os.path.join(out, "contention.json"), tmp)


def regen_courses(out, tmp, quick=False):
    path = os.path.join(tmp, "courses_raw.json")
    _run(["-m", "cydrop.compat.bench", "--json", path, *(["--repeat", "1"] if quick else [])])
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    write_record(os.path.join(out, "courses.json"), "courses",
                 f"python -m cydrop.compat.bench --repeat {data['repeat']}", data)


def regen_training(out, tmp, quick=False):
    data = {}
    res = _run(["-m", "cydrop", "train", "--quiet"], stdout=subprocess.PIPE)
    lines = res.stdout.splitlines()
    header, values = lines[0].split(), lines[2].split()
    data["train"] = {"output": "$ cydrop train --quiet\n" + res.stdout.rstrip("\n"),
                     "seconds": float(values[-1]), "threads": int(values[-2])}
    assert header[-2:] == ["threads", "seconds"], header
    data["share"] = {}
    for setting, args, env in (("default", [], None),
                               ("1thread", ["--threads", "1"], {"OPENBLAS_NUM_THREADS": "1"})):
        path = os.path.join(tmp, f"share_{setting}.json")
        _run(["bench/mlp_share.py", *args, "--json", path, *(["--epochs", "1"] if quick else [])],
             env=env)
        with open(path, encoding="utf-8") as fh:
            data["share"][setting] = json.load(fh)
    path = os.path.join(tmp, "vs_torch.json")
    _run(["bench/mlp_vs_torch.py", "--json", path, *(["--rounds", "1"] if quick else [])])
    with open(path, encoding="utf-8") as fh:
        data["vs_torch"] = json.load(fh)
    write_record(os.path.join(out, "training.json"), "training",
                 "cydrop train --quiet; python bench/mlp_share.py; OPENBLAS_NUM_THREADS=1 "
                 "python bench/mlp_share.py --threads 1; python bench/mlp_vs_torch.py"
                 + (" (--quick: one epoch or round each)" if quick else ""), data)


# --quick: a small size and shape, few samples (a trial of the pipeline, not a measurement)
MODERN_QUICK = {"residual": ["--size", "1M", "--repeat", "2"],
                "transformer": ["--rounds", "1", "--shape", "2,64,64,4"],
                "ops": ["--quick", "--repeat", "2"]}


def regen_modern(out, tmp, quick=False):
    data, commands = {}, []
    for part, script in (("residual", "bench/bench_residual.py"),
                         ("transformer", "bench/bench_transformer.py"),
                         ("ops", "bench/bench_modern_ops.py")):
        path = os.path.join(tmp, f"{part}.json")
        extra = MODERN_QUICK[part] if quick else []
        _run([script, "--json", path, *extra])
        with open(path, encoding="utf-8") as fh:
            data[part] = json.load(fh)
        commands.append(" ".join(["python", script, *extra]))
    write_record(os.path.join(out, "modern.json"), "modern",
                 "; ".join(commands) + (" (--quick: a small size and shape, few samples)"
                                        if quick else ""),
                 data, threads=max(data["residual"]["threads"]))


REGEN = {"bench": regen_bench, "contention": regen_contention, "courses": regen_courses,
         "training": regen_training, "modern": regen_modern}


def write_readme(data_dir=DATA_DIR, readme=README):
    """Rewrite the README's generated speed section from the records; True if it changed."""
    with open(readme, encoding="utf-8") as fh:
        text = fh.read()
    new = benchdata.replace_readme_block(
        text, benchdata.readme_block(benchdata.load_records(data_dir)))
    if new != text:
        with open(readme, "w", encoding="utf-8") as fh:
            fh.write(new)
    return new != text


def readme_is_current(data_dir=DATA_DIR, readme=README):
    """Whether the README's speed section is what :func:`write_readme` would write."""
    with open(readme, encoding="utf-8") as fh:
        text = fh.read()
    block = benchdata.readme_block(benchdata.load_records(data_dir))
    return benchdata.replace_readme_block(text, block) == text


def main(argv=None):
    """Entry point; returns a process exit code."""
    ap = argparse.ArgumentParser(prog="python -m cydrop.apps.docdata",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(REGEN),
                    help=f"comma-separated records to re-measure (default: {','.join(REGEN)})")
    ap.add_argument("--out", default=DATA_DIR, help="directory of the records (docs/_data)")
    ap.add_argument("--quick", action="store_true",
                    help="fewer samples, epochs and runs (a trial of the pipeline; the records "
                         "say so in their command)")
    ap.add_argument("--readme-only", action="store_true",
                    help="measure nothing; rewrite the README block from the records")
    ap.add_argument("--check", action="store_true",
                    help="measure nothing; exit 1 if the README block is not current")
    args = ap.parse_args(argv)
    if not os.path.isfile(README) or not os.path.isdir("docs"):
        ap.error("run it from the root of the source checkout (README.md and docs/ are needed)")
    if args.check:
        ok = readme_is_current(args.out)
        print("README speed section is current" if ok else
              "README speed section is stale: run python -m cydrop.apps.docdata --readme-only")
        return 0 if ok else 1
    if not args.readme_only:
        names = [n for n in re.split(r"[,\s]+", args.only) if n]
        unknown = sorted(set(names) - set(REGEN))
        if unknown:
            ap.error(f"--only: unknown record(s) {unknown}; choose from {list(REGEN)}")
        os.makedirs(args.out, exist_ok=True)
        for name in names:
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                REGEN[name](args.out, tmp, args.quick)
            print(f"docdata: {name}.json in {time.perf_counter() - t0:.0f} s", file=sys.stderr,
                  flush=True)
    changed = write_readme(args.out)
    print(f"docdata: README speed section {'rewritten' if changed else 'unchanged'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
