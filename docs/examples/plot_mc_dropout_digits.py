"""
MC dropout: prediction uncertainty on digits
============================================

Monte Carlo dropout keeps dropout on at prediction time and averages many stochastic passes;
the spread of the passes is a measure of the model's uncertainty. A ``64 -> 128 -> 10`` MLP
with ``Dropout(0.5)`` (:func:`cydrop.nn.mlp`) is trained on 75% of scikit-learn's digits, then
:func:`cydrop.nn.mc_predict` runs 50 passes over the held-out quarter. Each pass ``s`` uses the
seed ``mc_sample_seed(seed, s)``, so every sample can be replayed on its own.

Wrong predictions come with a lower mean probability and a larger spread than right ones.
"""

import matplotlib.pyplot as plt
import numpy as np

from cydrop.apps.data import load_digits, train_val_split
from cydrop.nn import Adam, Solver, mc_predict, mlp

X, y = load_digits(dtype=np.float32)
X_tr, y_tr, X_te, y_te = train_val_split(X, y, 0.25, seed=0)
model = mlp(64, [128], 10, rates=0.5, dtype=np.float32, seed=0)
solver = Solver(model, {"X_train": X_tr, "y_train": y_tr, "X_val": X_te, "y_val": y_te},
                update_rule=Adam(learning_rate=1e-3), batch_size=64, num_epochs=30,
                num_train_samples=None, seed=0, verbose=False)
solver.train()

mean, std, _ = mc_predict(model, X_te, 50, seed=0, transform="softmax")
pred = mean.argmax(axis=1)
confidence = mean[np.arange(len(pred)), pred]
spread = std[np.arange(len(pred)), pred]
right = pred == y_te
print(f"MC-dropout test accuracy: {right.mean():.3f} ({(~right).sum()} of {len(y_te)} wrong)")
print(f"mean spread of the predicted class: right {spread[right].mean():.3f}, "
      f"wrong {spread[~right].mean():.3f}")

# %%
# Confidence against spread for every test image, and the eight least certain images.
fig = plt.figure(figsize=(11, 4.8))
ax = fig.add_subplot(1, 2, 1)
ax.scatter(confidence[right], spread[right], s=8, alpha=0.5, label="right")
ax.scatter(confidence[~right], spread[~right], s=20, color="C3", marker="x", label="wrong")
ax.set(xlabel="mean probability of the predicted class",
       ylabel="std over 50 passes", title="MC dropout on held-out digits")
ax.legend()
order = np.argsort(confidence)[:8]
for k, i in enumerate(order):
    sub = fig.add_subplot(4, 4, 4 * (k // 2) + 3 + k % 2)
    sub.imshow(X_te[i].reshape(8, 8), cmap="gray_r")
    sub.set_title(f"{pred[i]} ({confidence[i]:.2f}), true {y_te[i]}", fontsize=8)
    sub.axis("off")
fig.tight_layout()
