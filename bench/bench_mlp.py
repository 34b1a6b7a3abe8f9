"""One training epoch of a 784 -> 256 -> 256 -> 10 MLP: cydrop's dropout vs CS231n's NumPy dropout.

Dropout (0.2, 0.5) after the two hidden ReLUs, batch 256, 60,000 synthetic float32 samples,
plain SGD; the trainer is the same :class:`cydrop.nn.Sequential` in every case, only the
dropout layer changes. Run with ``pytest bench/bench_mlp.py --benchmark-only``; for dropout's
share of the epoch time run ``python bench/mlp_share.py``.
"""

import time

import numpy as np
import pytest

from cydrop.nn import SGD, Dense, Dropout, Module, ReLU, Sequential

N_SAMPLES, N_IN, HIDDEN, N_CLASSES, BATCH = 60_000, 784, 256, 10, 256
RATES = (0.2, 0.5)


class NumpyDropout(Module):
    """CS231n's dropout, ``x * ((rng.random(x.shape) < keep) / keep)``, in float32.

    The mask is drawn in float32 and divided by a float32 keep, so float32
    activations stay float32 (the literal float64 formula would upcast the
    rest of the epoch).

    Parameters
    ----------
    rate : float
        Drop probability; ``keep = 1 - rate``.
    seed : int
        Seed of the layer's own generator.
    """

    def __init__(self, rate, seed=0):
        super().__init__()
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.mask = None

    def forward(self, x):
        """Apply the mask in training mode, identity otherwise."""
        if not self.training or self.rate == 0:
            self.mask = None
            return x
        keep = np.float32(1.0 - self.rate)
        self.mask = (self.rng.random(x.shape, dtype=np.float32) < keep) / keep
        return x * self.mask

    def backward(self, dout):
        """Multiply by the stored mask."""
        return dout if self.mask is None else dout * self.mask


def synthetic_data(seed=0):
    """60,000 float32 samples of 784 features with learnable labels."""
    rng = np.random.default_rng(seed)
    X = rng.random((N_SAMPLES, N_IN), dtype=np.float32)
    w = rng.standard_normal((N_IN, N_CLASSES)).astype(np.float32)
    y = np.argmax((X - 0.5) @ w, axis=1)
    return X, y


def build_model(impl, seed=0, n_threads=None, fuse=False):
    """The benchmark MLP with dropout ``impl`` in {'cydrop', 'numpy', 'none'}.

    ``fuse=False`` (the default here) keeps every layer a separate call, so the dropout layer's
    own share of the epoch can be timed; ``fuse=True`` is the trainer's default fused path.
    """
    seeds = np.random.SeedSequence(seed).generate_state(6)

    def drop(rate, s):
        if impl == "cydrop":
            return [Dropout(rate, seed=int(s))]
        if impl == "numpy":
            return [NumpyDropout(rate, seed=int(s))]
        return []

    layers = [Dense(N_IN, HIDDEN, dtype=np.float32, seed=int(seeds[0])), ReLU(),
              *drop(RATES[0], seeds[3]),
              Dense(HIDDEN, HIDDEN, dtype=np.float32, seed=int(seeds[1])), ReLU(),
              *drop(RATES[1], seeds[4]),
              Dense(HIDDEN, N_CLASSES, dtype=np.float32, seed=int(seeds[2]))]
    return Sequential(*layers, n_threads=n_threads, fuse=fuse)


def train_epoch(model, X, y, opt, rng):
    """One shuffled epoch of minibatch SGD; returns the mean loss."""
    model.train()
    perm = rng.permutation(len(X))
    total = 0.0
    for i in range(0, len(X), BATCH):
        idx = perm[i:i + BATCH]
        loss, grads = model.loss(X[idx], y[idx])
        opt.step(model.params, grads)
        total += loss
    return total / -(-len(X) // BATCH)


class DropoutTimer:
    """Wrap the dropout layers of ``model`` to accumulate their forward+backward time."""

    def __init__(self, model):
        self.seconds = 0.0
        for layer in model.layers:
            if isinstance(layer, (Dropout, NumpyDropout)):
                layer.forward = self._timed(layer.forward)
                layer.backward = self._timed(layer.backward)

    def _timed(self, fn):
        def wrapper(x):
            t0 = time.perf_counter()
            out = fn(x)
            self.seconds += time.perf_counter() - t0
            return out
        return wrapper


@pytest.fixture(scope="module")
def data():
    return synthetic_data()


@pytest.mark.parametrize("impl", ["cydrop", "numpy", "none"])
def test_mlp_epoch(benchmark, data, impl):
    X, y = data
    model = build_model(impl)
    opt = SGD(learning_rate=0.1)
    rng = np.random.default_rng(0)
    benchmark.group = "mlp epoch 784-256-256-10, dropout 0.2/0.5, batch 256, float32"
    losses = benchmark.pedantic(train_epoch, args=(model, X, y, opt, rng), rounds=3, iterations=1,
                                warmup_rounds=0)
    assert np.isfinite(losses)
    assert all(v.dtype == np.float32 for v in model.params.values())
    # the epochs learnt something: training loss below the initial log(10)
    assert losses < np.log(N_CLASSES)
