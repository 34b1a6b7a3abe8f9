"""
Speed against the NumPy forms and PyTorch, measured on the build machine
========================================================================

The numbers on this page are measured while the documentation is built, on the machine that
builds it (named below), with ``cydrop.apps.bench.measure``, the function behind
``cydrop bench``: every implementation is timed round-robin at each size, best of a few samples.
Each bar is an implementation's time divided by cydrop's ``dropout(x, 0.5, out=y)`` at the same
size (above 1: slower than cydrop). The sizes are small so the page builds in seconds; run
``cydrop bench`` for the full table on your machine.
"""

import os
import platform

import matplotlib.pyplot as plt
import numpy as np

import cydrop
from cydrop.apps import bench

try:
    import torch
except ImportError:          # the torch bar is left out without the optional dependency
    torch = None
else:
    torch.set_num_threads(cydrop.effective_n_threads())

cpu = "unknown CPU"
if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh
                    if line.startswith("model name")), cpu)
print(f"build machine: {cpu} ({platform.machine()}), {os.cpu_count()} logical CPUs")
print(f"cydrop {cydrop.__version__}: ISA {cydrop.current_isa()}, "
      f"OpenMP {cydrop.openmp_enabled()}, {cydrop.effective_n_threads()} threads; "
      f"torch {torch.__version__ if torch is not None else 'not installed'}")

sizes = [("64K", 1 << 16), ("1M", 1 << 20)]
results = bench.measure(sizes, np.float32, repeat=3, budget=0.15, torch=torch)

names = {
    "cydrop forward out=": "cydrop dropout(out=)",
    "cydrop forward bits": 'cydrop mask="bits"',
    "cydrop backward recompute": "cydrop backward",
    "floor np.multiply(out=)": "np.multiply(x, s, out=y)",
    "numpy Generator form": "NumPy Generator form",
    "CS231n form": "CS231n form (np.random.rand)",
    "nnfs form": "nnfs form (np.random.binomial)",
    "torch F.dropout": "torch F.dropout",
}
rows = [n for n in names if n in results[sizes[0][0]]]
print(f"\n{'implementation':32s}" + "".join(f"{label:>12s}" for label, _ in sizes))
for n in rows:
    print(f"{names[n]:32s}" + "".join(
        f"{results[label][n] / results[label]['cydrop forward out='] :12.2f}"
        for label, _ in sizes))

# %%
# Time relative to cydrop's ``dropout(x, 0.5, out=y)``, float32, rate 0.5 (log scale).
fig, ax = plt.subplots(figsize=(9, 4.8))
width = 0.8 / len(sizes)
ys = np.arange(len(rows))
for k, (label, _) in enumerate(sizes):
    ratio = [results[label][n] / results[label]["cydrop forward out="] for n in rows]
    ax.barh(ys + k * width, ratio, width, label=f"{label} elements")
ax.set_yticks(ys + width * (len(sizes) - 1) / 2, [names[n] for n in rows])
ax.invert_yaxis()
ax.set_xscale("log")
ax.axvline(1, color="gray", lw=1)
ax.set_xlabel("time / cydrop dropout(out=)  (above 1: slower)")
ax.set_title(f"measured on the build machine: {cpu}", fontsize=9)
ax.legend()
fig.tight_layout()
