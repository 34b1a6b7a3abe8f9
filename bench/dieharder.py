"""Stream cydrop's packed dropout masks into the dieharder test battery.

At rate 0.5 every mask bit should be indistinguishable from a fair coin flip. This script writes
the keep masks of consecutive global elements (seed fixed, offset advancing) packed 1 bit per
element, little bit order -- exactly the bytes ``dropout(..., mask='bits')`` stores -- to stdout
or straight into ``dieharder -g 200`` (raw binary on stdin), and summarises the result.

Usage
-----
::

    python bench/dieharder.py --stream | dieharder -g 200 -a      # by hand
    python bench/dieharder.py -a                                  # the whole battery
    python bench/dieharder.py -d 0 -d 1 -d 15 -t 20000            # a few tests, small samples
    python bench/dieharder.py -a --log docs/dieharder-run.txt     # keep the raw report

``--source`` chooses how the bits are made: ``kernel`` (default; the packed-bit output of the
mask kernel, the fastest), ``dropout`` (``cydrop.dropout(ones, 0.5, mask='bits')`` and its
stored mask) or ``packbits`` (``np.packbits(cydrop.dropout_mask(...), bitorder='little')``).
All three give the same bytes for the same seed (tests/core/test_randomness.py checks).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np

import cydrop
from cydrop import _kernels

CHUNK_ELEMENTS = 1 << 23          # 1 MiB of packed bits per write
RESULT_LINE = re.compile(
    r"^\s*(?P<name>[\w.]+)\|\s*(?P<ntup>\d+)\|\s*(?P<tsamples>\d+)\|\s*(?P<psamples>\d+)\|"
    r"\s*(?P<p>[\d.eE+-]+)\|\s*(?P<assessment>PASSED|WEAK|FAILED)\s*$")


def packed_chunks(seed, source="kernel", rate=0.5, chunk=CHUNK_ELEMENTS, start=0,
                  n_threads=None):
    """Yield the packed mask bits of elements start, start + 1, ... in `chunk`-sized pieces."""
    thr = _kernels.threshold(1.0 - rate)
    threads = cydrop.effective_n_threads(n_threads)
    offset = start
    ones = np.ones(chunk, dtype=np.float32) if source == "dropout" else None
    while True:
        if source == "kernel":
            bits = np.empty(chunk // 8, dtype=np.uint8)
            _kernels.mask(chunk, seed, offset, thr, bits, None, threads)
        elif source == "dropout":
            _, cache = cydrop.dropout(ones, rate, seed=seed, offset=offset, mask="bits",
                                      n_threads=threads)
            bits = cache.stored_mask
        elif source == "packbits":
            bits = np.packbits(cydrop.dropout_mask(chunk, rate, seed=seed, offset=offset,
                                                   n_threads=threads), bitorder="little")
        else:
            raise ValueError(f"source must be 'kernel', 'dropout' or 'packbits', got {source!r}")
        yield bits.tobytes()
        offset += chunk


def stream_to(fileobj, seed, source="kernel", limit_bytes=None):
    """Write packed bits to a binary file object until it closes (or `limit_bytes`)."""
    written = 0
    try:
        for block in packed_chunks(seed, source):
            if limit_bytes is not None and written + len(block) > limit_bytes:
                block = block[:limit_bytes - written]
            fileobj.write(block)
            written += len(block)
            if limit_bytes is not None and written >= limit_bytes:
                break
    except (BrokenPipeError, ValueError, OSError):
        pass                       # dieharder has read all it wants and closed the pipe
    return written


def parse_report(text):
    """The result rows of a dieharder report: dicts with name, ntup, tsamples, psamples, p,
    assessment."""
    rows = []
    for line in text.splitlines():
        m = RESULT_LINE.match(line)
        if m:
            row = m.groupdict()
            for k in ("ntup", "tsamples", "psamples"):
                row[k] = int(row[k])
            row["p"] = float(row["p"])
            rows.append(row)
    return rows


def run_dieharder(args, seed, source="kernel", log=None, echo=True):
    """Run ``dieharder -g 200 <args>`` fed by cydrop's bits; return (rows, text, bytes_fed)."""
    exe = shutil.which("dieharder")
    if exe is None:
        raise FileNotFoundError("dieharder is not on PATH (Debian: apt-get install dieharder)")
    proc = subprocess.Popen([exe, "-g", "200", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    fed = [0]

    def feed():
        fed[0] = stream_to(proc.stdin, seed, source)
        try:
            proc.stdin.close()
        except OSError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    lines = []
    for raw in proc.stdout:
        line = raw.decode("utf-8", "replace")
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
        if log is not None:
            log.write(line)
            log.flush()
    proc.wait()
    proc.stdout.close()
    try:
        proc.stdin.close()         # ends the feeder if dieharder exited without closing
    except OSError:
        pass
    feeder.join(timeout=30)
    text = "".join(lines)
    return parse_report(text), text, fed[0]


def summary(rows):
    counts = {k: sum(r["assessment"] == k for r in rows) for k in ("PASSED", "WEAK", "FAILED")}
    lines = [f"{len(rows)} results: " + ", ".join(f"{v} {k}" for k, v in counts.items())]
    for r in rows:
        if r["assessment"] != "PASSED":
            lines.append(f"  {r['assessment']}: {r['name']} ntup={r['ntup']} p={r['p']:.8f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Feed cydrop's rate-0.5 dropout masks (packed bits) to dieharder.",
        epilog="Arguments after the known ones go to dieharder unchanged (e.g. -a, -d 15, "
               "-t 10000, -p 100, -k 2).")
    parser.add_argument("--seed", type=int, default=20240531,
                        help="mask seed (default: %(default)s)")
    parser.add_argument("--source", choices=["kernel", "dropout", "packbits"], default="kernel")
    parser.add_argument("--stream", action="store_true",
                        help="write the bits to stdout forever instead of running dieharder")
    parser.add_argument("--log", help="also write dieharder's report to this file")
    args, rest = parser.parse_known_args(argv)
    if args.stream:
        stream_to(sys.stdout.buffer, args.seed, args.source)
        return 0
    if not rest:
        rest = ["-a"]
    log = open(args.log, "w") if args.log else None
    try:
        if log is not None:
            log.write(f"# cydrop {cydrop.__version__} seed={args.seed} source={args.source} "
                      f"dieharder -g 200 {' '.join(rest)}\n")
        rows, _, fed = run_dieharder(rest, args.seed, args.source, log=log)
    finally:
        if log is not None:
            log.close()
    print(f"# fed {fed / 2**30:.2f} GiB of mask bits")
    print(summary(rows))
    return 1 if any(r["assessment"] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
