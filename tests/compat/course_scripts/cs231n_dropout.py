# CS231n assignment 2, Dropout.ipynb: the notebook's code cells, re-typed. Changes from the
# notebook: the `cs231n.` imports read `cydrop.compat.cs231n.`; CIFAR-10 is replaced by small
# synthetic data of the same shapes (get_CIFAR10_data below); the regularization experiment's
# hidden layer has HIDDEN units (500 in the notebook) so the run takes seconds; the plotting
# cell is left out (no matplotlib). Everything else is the notebook's.

# --- Setup cell
import time
import numpy as np
from cydrop.compat.cs231n.classifiers.fc_net import *
from cydrop.compat.cs231n.gradient_check import eval_numerical_gradient, eval_numerical_gradient_array
from cydrop.compat.cs231n.solver import Solver

HIDDEN = globals().get("HIDDEN", 500)


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000):
    """Stand-in for the dataset: separable synthetic 'images' of CIFAR-10's shape."""
    rng = np.random.default_rng(0)
    protos = rng.standard_normal((10, 3, 32, 32))
    def split(n):
        y = rng.integers(10, size=n)
        X = protos[y] + 2.0 * rng.standard_normal((n, 3, 32, 32))
        return X.astype(np.float32), y
    X_train, y_train = split(num_training)
    X_val, y_val = split(num_validation)
    X_test, y_test = split(num_test)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val,
            "X_test": X_test, "y_test": y_test}


def rel_error(x, y):
    """Returns relative error."""
    return np.max(np.abs(x - y) / (np.maximum(1e-8, np.abs(x) + np.abs(y))))


# --- Load the (preprocessed) data cell
data = get_CIFAR10_data(num_training=500, num_validation=100, num_test=10)
for k, v in list(data.items()):
    print(f"{k}: {v.shape}")

# --- Dropout: forward cell
np.random.seed(231)
x = np.random.randn(500, 500) + 10

forward_stats = []
for p in [0.25, 0.4, 0.7]:
    out, _ = dropout_forward(x, {'mode': 'train', 'p': p})
    out_test, _ = dropout_forward(x, {'mode': 'test', 'p': p})

    print('Running tests with p = ', p)
    print('Mean of input: ', x.mean())
    print('Mean of train-time output: ', out.mean())
    print('Mean of test-time output: ', out_test.mean())
    print('Fraction of train-time output set to zero: ', (out == 0).mean())
    print('Fraction of test-time output set to zero: ', (out_test == 0).mean())
    print()
    forward_stats.append((p, out.mean(), out_test.mean(), (out == 0).mean(), (out_test == 0).mean()))

# --- Dropout: backward cell
np.random.seed(231)
x = np.random.randn(10, 10) + 10
dout = np.random.randn(*x.shape)

dropout_param = {'mode': 'train', 'p': 0.2, 'seed': 123}
out, cache = dropout_forward(x, dropout_param)
dx = dropout_backward(dout, cache)
dx_num = eval_numerical_gradient_array(lambda xx: dropout_forward(xx, dropout_param)[0], x, dout)

# Error should be around e-10 or less.
print('dx relative error: ', rel_error(dx, dx_num))
backward_error = rel_error(dx, dx_num)

# --- Fully connected nets with dropout cell
np.random.seed(231)
N, D, H1, H2, C = 2, 15, 20, 30, 10
X = np.random.randn(N, D)
y = np.random.randint(C, size=(N,))

gradcheck = {}
for dropout_keep_ratio in [1, 0.75, 0.5]:
    print('Running check with dropout = ', dropout_keep_ratio)
    model = FullyConnectedNet(
        [H1, H2],
        input_dim=D,
        num_classes=C,
        weight_scale=5e-2,
        dtype=np.float64,
        dropout_keep_ratio=dropout_keep_ratio,
        seed=123
    )

    loss, grads = model.loss(X, y)
    print('Initial loss: ', loss)

    # Relative errors should be around e-6 or less.
    # Note that it's fine if for dropout_keep_ratio=1 you have W2 error be on the order of e-5.
    for name in sorted(grads):
        f = lambda _: model.loss(X, y)[0]
        grad_num = eval_numerical_gradient(f, model.params[name], verbose=False, h=1e-5)
        print('%s relative error: %.2e' % (name, rel_error(grad_num, grads[name])))
        gradcheck[(dropout_keep_ratio, name)] = rel_error(grad_num, grads[name])
    gradcheck[(dropout_keep_ratio, 'loss')] = loss
    print()

# --- Regularization experiment cell
# Train two identical nets, one with dropout and one without.
np.random.seed(231)
num_train = 500
small_data = {
    'X_train': data['X_train'][:num_train],
    'y_train': data['y_train'][:num_train],
    'X_val': data['X_val'],
    'y_val': data['y_val'],
}

solvers = {}
dropout_choices = [1, 0.25]
for dropout_keep_ratio in dropout_choices:
    model = FullyConnectedNet(
        [HIDDEN],
        dropout_keep_ratio=dropout_keep_ratio
    )
    print(dropout_keep_ratio)

    solver = Solver(
        model,
        small_data,
        num_epochs=25,
        batch_size=100,
        update_rule='adam',
        optim_config={'learning_rate': 5e-4,},
        verbose=True,
        print_every=100
    )
    solver.train()
    solvers[dropout_keep_ratio] = solver
    print()

# --- The plotting cell's data (the plots themselves need matplotlib)
train_accs = []
val_accs = []
for dropout_keep_ratio in dropout_choices:
    solver = solvers[dropout_keep_ratio]
    train_accs.append(solver.train_acc_history[-1])
    val_accs.append(solver.val_acc_history[-1])
