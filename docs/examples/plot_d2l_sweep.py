"""
d2l.ai: sweeping the two dropout rates
======================================

d2l.ai's dropout chapter trains an ``in -> 256 -> 256 -> out`` MLP with ``Dropout(rate1)`` and
``Dropout(rate2)`` after the hidden ReLUs and compares pairs of rates, including rate 1, which
drops every activation and leaves the network at chance. This page runs the sweep with
``cydrop.apps.experiments.d2l_sweep`` on scikit-learn's digits (the chapter uses
Fashion-MNIST), 40 epochs of plain SGD per pair, and plots final train and test accuracy.
"""

import matplotlib.pyplot as plt
import numpy as np

from cydrop.apps.experiments import D2L_PAIRS, d2l_sweep

results = d2l_sweep(D2L_PAIRS, dataset="digits", epochs=40, seed=0)

# %%
# Final accuracy per pair of rates; the dotted line is chance.
fig, ax = plt.subplots(figsize=(9, 4.5))
xs = np.arange(len(results))
ax.bar(xs - 0.2, [r["train_acc"] for r in results], 0.4, label="train")
ax.bar(xs + 0.2, [r["test_acc"] for r in results], 0.4, label="test")
ax.axhline(results[0]["chance"], color="gray", ls=":", label="chance")
ax.set_xticks(xs, [f"({a:g}, {b:g})" for a, b in (r["rates"] for r in results)])
ax.set(xlabel="(rate1, rate2)", ylabel="accuracy", title="d2l.ai dropout sweep on digits")
ax.legend(loc="lower left")
fig.tight_layout()
