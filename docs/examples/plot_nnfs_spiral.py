"""
nnfs.io chapter 15: the spiral classifier and its decision regions
==================================================================

The book's chapter-15 script with one change: its classes come from
:mod:`cydrop.compat.nnfs` (``Layer_Dropout`` runs on cydrop's kernels) instead of being defined
in the script. A ``Dense(2, 64)`` layer with L2 regularization, ReLU, ``Layer_Dropout(0.1)`` and
``Dense(64, 3)`` are trained full-batch with Adam on three interleaved spirals. The book runs
10,001 epochs; this page runs 2,001 to stay within seconds.
"""

import matplotlib.pyplot as plt
import numpy as np

from cydrop.compat import nnfs
from cydrop.compat.nnfs import (
    Activation_ReLU,
    Activation_Softmax,
    Activation_Softmax_Loss_CategoricalCrossentropy,
    Layer_Dense,
    Layer_Dropout,
    Optimizer_Adam,
)
from cydrop.compat.nnfs.datasets import spiral_data

nnfs.init()

X, y = spiral_data(samples=1000, classes=3)
dense1 = Layer_Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)
activation1 = Activation_ReLU()
dropout1 = Layer_Dropout(0.1)
dense2 = Layer_Dense(64, 3)
loss_activation = Activation_Softmax_Loss_CategoricalCrossentropy()
optimizer = Optimizer_Adam(learning_rate=0.05, decay=5e-5)

history = []
for epoch in range(2001):
    dense1.forward(X)
    activation1.forward(dense1.output)
    dropout1.forward(activation1.output)
    dense2.forward(dropout1.output)
    data_loss = loss_activation.forward(dense2.output, y)
    regularization_loss = (loss_activation.loss.regularization_loss(dense1)
                           + loss_activation.loss.regularization_loss(dense2))
    loss = data_loss + regularization_loss
    accuracy = np.mean(np.argmax(loss_activation.output, axis=1) == y)
    if epoch % 100 == 0:
        history.append((epoch, accuracy, loss))
    if epoch % 1000 == 0:
        print(f"epoch: {epoch}, acc: {accuracy:.3f}, loss: {loss:.3f}")
    loss_activation.backward(loss_activation.output, y)
    dense2.backward(loss_activation.dinputs)
    dropout1.backward(dense2.dinputs)
    activation1.backward(dropout1.dinputs)
    dense1.backward(activation1.dinputs)
    optimizer.pre_update_params()
    optimizer.update_params(dense1)
    optimizer.update_params(dense2)
    optimizer.post_update_params()


def predict(points):
    """The trained network without dropout (the book's validation pass)."""
    dense1.forward(points)
    activation1.forward(dense1.output)
    dense2.forward(activation1.output)
    softmax = Activation_Softmax()
    softmax.forward(dense2.output)
    return softmax.output


X_test, y_test = spiral_data(samples=100, classes=3)
print(f"validation, acc: {np.mean(predict(X_test).argmax(axis=1) == y_test):.3f}")

# %%
# Decision regions of the trained network, with the training points on top.
grid = np.linspace(-1.1, 1.1, 300)
gx, gy = np.meshgrid(grid, grid)
points = np.column_stack([gx.ravel(), gy.ravel()]).astype(X.dtype)
regions = predict(points).argmax(axis=1).reshape(gx.shape)

fig, (ax, ax_hist) = plt.subplots(1, 2, figsize=(11, 4.8))
ax.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5, 2.5], cmap="brg", alpha=0.25)
ax.scatter(X[:, 0], X[:, 1], c=y, cmap="brg", s=4)
ax.set(title="decision regions (dropout 0.1)", xlabel="x0", ylabel="x1", aspect="equal")
epochs, accs, losses = zip(*history)
ax_hist.plot(epochs, accs, label="accuracy (training pass, dropout on)")
ax_hist.plot(epochs, losses, label="loss")
ax_hist.set(xlabel="epoch", title="training")
ax_hist.legend()
fig.tight_layout()
