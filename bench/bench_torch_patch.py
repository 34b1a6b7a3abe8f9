"""pytest-benchmark: a model patched by ``cydrop.torch.patch`` against the same model with
torch's own dropout layers, in the same run.

Run with ``pytest bench/bench_torch_patch.py --benchmark-only`` (skipped when torch is absent).
Two models, each timed as one forward+backward step in float32 and bfloat16:

* ``mlp``: Linear-ReLU-Dropout, three times, then a Linear head;
* ``transformer``: one pre-norm transformer block (``nn.TransformerEncoderLayer``). Its three
  ``nn.Dropout`` layers (after attention, in the MLP, after the MLP) are patched; the dropout
  of the attention weights is a float inside ``nn.MultiheadAttention``, not a module, and
  stays torch's in both rows.

Rows come in pairs within a group, ``torch`` and ``cydrop``: the same weights, input and thread
count; only the dropout layers differ (``patch`` swaps them, with per-layer seeds). torch's own
rows draw from torch's global generator inside ``torch.random.fork_rng``. cydrop's bfloat16 rows
compute in float32 and round back until cydrop's core takes 16-bit floats directly.
"""

import pytest

torch = pytest.importorskip("torch")

import cydrop.torch as ct  # noqa: E402

P = 0.1
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
KINDS = ["torch", "cydrop"]


def _mlp(dtype):
    layers = []
    for d_in, d_out in ((512, 1024), (1024, 1024), (1024, 1024)):
        layers += [torch.nn.Linear(d_in, d_out), torch.nn.ReLU(), torch.nn.Dropout(P)]
    layers.append(torch.nn.Linear(1024, 10))
    return torch.nn.Sequential(*layers).to(dtype), (256, 512)


def _transformer(dtype):
    block = torch.nn.TransformerEncoderLayer(d_model=256, nhead=4, dim_feedforward=1024,
                                             dropout=P, batch_first=True, norm_first=True)
    return block.to(dtype), (16, 128, 256)


MODELS = {"mlp": _mlp, "transformer": _transformer}


@pytest.fixture
def torch_rng_restored():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("kind", KINDS)
def test_patched_step(benchmark, torch_rng_restored, kind, model_name, dtype):
    """One forward + backward step of the model, torch's dropout or cydrop's (patched)."""
    benchmark.group = f"patched fwd+bwd {model_name} {dtype}"
    model, in_shape = MODELS[model_name](DTYPES[dtype])   # same weights: seeded above
    model.train()
    if kind == "cydrop":
        replaced = ct.patch(model, seed=0)
        assert replaced
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(in_shape, generator=gen).to(DTYPES[dtype])

    def step():
        model.zero_grad(set_to_none=True)
        loss = model(x).float().square().mean()
        loss.backward()
        return loss

    loss = benchmark(step)
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
