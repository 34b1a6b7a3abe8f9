"""
Reproducibility: the same mask from any number of threads and from Dask chunks
==============================================================================

A cydrop mask is a pure function of ``(seed, offset + element index)``. This page checks it on
the build machine: the output of :func:`cydrop.dropout` is bit-identical for 1, 2 and 4 threads
(the thread count is capped at the usable cores, and the arrays are large enough for the
threaded path), a slice computed on its own with ``offset=`` equals the same slice of the whole
call, and :func:`cydrop.interop.dask.dropout` gives the same array for any chunking.
"""

import matplotlib.pyplot as plt
import numpy as np

import cydrop

x = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)
outs = {t: cydrop.dropout(x, 0.5, seed=2024, n_threads=t)[0] for t in (1, 2, 4)}
for t in (2, 4):
    same = np.array_equal(outs[1].view(np.uint32), outs[t].view(np.uint32))
    print(f"n_threads=1 vs n_threads={t} "
          f"(runs on {cydrop.effective_n_threads(t)}): bit-identical = {same}")
    assert same

flat = x.ravel()
a, b = 100_000, 300_000
part, _ = cydrop.dropout(flat[a:b], 0.5, seed=2024, offset=a)
print(f"slice [{a}:{b}] with offset={a}: equal to the whole call's slice = "
      f"{np.array_equal(part, outs[1].ravel()[a:b])}")

# %%
# Dask: each chunk is computed with its global offset, so the chunking does not matter.
try:
    import dask.array as da

    import cydrop.dask
except ImportError:
    da = None
    print("dask is not installed: the chunked comparison is skipped")
else:
    for chunks in ((512, 1024), (128, 1024), (100, 300)):
        lazy, _ = cydrop.dask.dropout(da.from_array(x, chunks=chunks), 0.5, seed=2024)
        same = np.array_equal(lazy.compute(scheduler="threads"), outs[1])
        print(f"dask chunks {chunks}: equal to the NumPy call = {same}")
        assert same

# %%
# The first 64 x 64 elements of the keep mask, and the mask of a different seed.
keep = cydrop.dropout_mask(x.shape, 0.5, seed=2024)
other = cydrop.dropout_mask(x.shape, 0.5, seed=2025)
fig, axes = plt.subplots(1, 2, figsize=(8, 4))
axes[0].imshow(keep[:64, :64], cmap="gray", interpolation="nearest")
axes[0].set_title("seed 2024 (any threads, any chunks)")
axes[1].imshow(other[:64, :64], cmap="gray", interpolation="nearest")
axes[1].set_title("seed 2025")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
print(f"kept fraction: {keep.mean():.4f} (1 - rate = 0.5)")
