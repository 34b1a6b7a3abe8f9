"""
CS231n: dropout as a regularizer
================================

CS231n assignment 2 trains the same two-layer network on a small training set with and without
dropout and compares train and validation accuracy per epoch. Here the experiment runs on
scikit-learn's bundled 8x8 digits (offline) with
``cydrop.apps.experiments.cs231n_regularization``, which builds
:class:`cydrop.nn.FullyConnectedNet` with CS231n's ``dropout_keep_ratio`` (``p``, the KEEP
probability, at this boundary only) and trains it with :class:`cydrop.nn.Solver`.

Without dropout the network fits its 500 training images almost perfectly; with a keep ratio
of 0.25 the gap between training and validation accuracy shrinks.
"""

import matplotlib.pyplot as plt

from cydrop.apps.experiments import cs231n_regularization

results = cs231n_regularization(keep_ratios=(1.0, 0.25), num_train=500, hidden=500, epochs=25,
                                seed=0)

# %%
# Accuracy per epoch, as in the assignment's notebook.
fig, (ax_train, ax_val) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for r in results:
    label = f"keep {r['keep']:g}" + (" (no dropout)" if r["keep"] == 1 else "")
    ax_train.plot(r["train_acc_history"], "o-", label=label)
    ax_val.plot(r["val_acc_history"], "o-", label=label)
ax_train.set(title="training accuracy", xlabel="epoch", ylabel="accuracy")
ax_val.set(title="validation accuracy", xlabel="epoch")
ax_val.legend()
fig.tight_layout()

for r in results:
    print(f"keep {r['keep']:g}: train {r['train_acc']:.3f}, val {r['val_acc']:.3f}, "
          f"gap {r['gap']:.3f}")
