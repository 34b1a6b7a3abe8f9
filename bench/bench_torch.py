"""pytest-benchmark: cydrop.torch.Dropout against torch.nn.Dropout, alone and inside a small model.

Run with ``pytest bench/bench_torch.py --benchmark-only`` (skipped when torch is absent). Rows
come in pairs within a group, ``torch`` and ``cydrop``, timed in the same run with the same
thread count (torch's intra-op threads; cydrop's adapter uses the same by default). Each test
times one forward+backward step and checks its result afterwards. torch's own dropout draws
from torch's global generator, so those rows run inside ``torch.random.fork_rng``: the state
is restored afterwards.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import cydrop.torch as ct  # noqa: E402

P = 0.5
# (batch, d_in, hidden, d_out) of Linear-ReLU-Dropout-Linear
MODELS = {"mlp-256x512x1024x10": (256, 512, 1024, 10),
          "mlp-512x784x4096x10": (512, 784, 4096, 10)}
SIZES = {"1M": 1 << 20, "8M": 1 << 23}
KINDS = ["torch", "cydrop"]


@pytest.fixture
def torch_rng_restored():
    with torch.random.fork_rng(devices=[]):
        yield


def _dropout_layer(kind):
    return torch.nn.Dropout(P) if kind == "torch" else ct.Dropout(P, seed=0)


def _make_model(kind, dims, dtype):
    _, d_in, hidden, d_out = dims
    gen = torch.Generator().manual_seed(0)          # a private generator for the weights
    first = torch.nn.Linear(d_in, hidden, dtype=dtype)
    last = torch.nn.Linear(hidden, d_out, dtype=dtype)
    with torch.no_grad():
        for layer in (first, last):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen, dtype=dtype)
                               / layer.weight.shape[1] ** 0.5)
            layer.bias.zero_()
    return torch.nn.Sequential(first, torch.nn.ReLU(), _dropout_layer(kind), last)


@pytest.mark.parametrize("dtype", [torch.float32], ids=["float32"])
@pytest.mark.parametrize("dims", list(MODELS.values()), ids=list(MODELS))
@pytest.mark.parametrize("kind", KINDS)
def test_model_step(benchmark, torch_rng_restored, kind, dims, dtype):
    """One forward + backward of Linear-ReLU-Dropout-Linear (the dropout layer is the variable)."""
    benchmark.group = f"model fwd+bwd {dims} {str(dtype)[6:]}"
    model = _make_model(kind, dims, dtype).train()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(dims[0], dims[1], generator=gen, dtype=dtype)

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(x).square().mean()
        loss.backward()
        return loss

    loss = benchmark(step)
    assert torch.isfinite(loss)
    grad = model[0].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_step(benchmark, torch_rng_restored, kind, size):
    """Dropout alone, forward + backward, float32."""
    benchmark.group = f"dropout fwd+bwd {size:,} float32"
    layer = _dropout_layer(kind)
    # nonzero everywhere, so a zero in the output marks a dropped element
    x = torch.from_numpy(np.random.default_rng(0).uniform(0.5, 1.5, size).astype(np.float32))
    x.requires_grad_()
    g = torch.ones(size)

    def step():
        x.grad = None
        y = layer(x)
        y.backward(g)
        return y

    y = benchmark(step)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - P) < 0.01
    assert torch.equal(x.grad == 0, y.detach() == 0)
