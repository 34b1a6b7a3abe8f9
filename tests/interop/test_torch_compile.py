"""cydrop.torch under torch.compile (custom operators, no graph break, the eager masks) and
under torch.utils.checkpoint (the recomputation replays the first run's masks)."""

import copy

import pytest

torch = pytest.importorskip("torch")

from torch.utils.checkpoint import checkpoint  # noqa: E402

import cydrop.torch as ct  # noqa: E402

nn = torch.nn


class Block(nn.Module):
    """Every kind of cydrop dropout, in float32 or float64."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, dtype=dtype)
        self.drop2d = nn.Dropout2d(0.3)
        self.fc = nn.Linear(4 * 5 * 5, 16, dtype=dtype)
        self.drop = nn.Dropout(0.4)
        self.alpha = nn.AlphaDropout(0.2)
        self.feature = nn.FeatureAlphaDropout(0.25)
        self.out = nn.Linear(16, 4, dtype=dtype)

    def forward(self, x):
        h = self.drop2d(torch.relu(self.conv(x)))
        h = self.drop(torch.relu(self.fc(h.flatten(1))))
        h = self.feature(self.alpha(h).reshape(-1, 4, 4)).flatten(1)
        return self.out(h)


def _pair(dtype=torch.float32, seed=7):
    torch.manual_seed(0)
    eager = Block(dtype)
    ct.patch(eager, seed=seed)
    return eager, copy.deepcopy(eager)


def _input(dtype=torch.float32):
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, 5, 5, generator=g, dtype=dtype).contiguous(
        memory_format=torch.channels_last)


def _step(model, x, call=None):
    x = x.detach().clone().requires_grad_()
    y = (model if call is None else call)(x)
    y.pow(2).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return y.detach(), x.grad, grads


def _assert_same(a, b):
    (ya, gxa, pa), (yb, gxb, pb) = a, b
    assert torch.equal(ya, yb) and torch.equal(gxa, gxb)
    assert all(torch.equal(u, v) for u, v in zip(pa, pb))


def test_no_graph_break():
    eager, _ = _pair()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(eager)(_input())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_equals_eager_over_steps(dtype):
    eager, other = _pair(dtype)
    torch._dynamo.reset()
    compiled = torch.compile(other, backend="aot_eager")
    x = _input(dtype)
    for _ in range(3):              # the streams advance alike: fresh masks every step
        _assert_same(_step(eager, x), _step(compiled, x))
        for name in ("drop", "drop2d", "alpha", "feature"):
            assert (getattr(eager, name).stream.get_state()
                    == getattr(other, name).stream.get_state())
    eager.eval()
    other.eval()
    with torch.no_grad():
        assert torch.equal(eager(x), compiled(x))


def test_compiled_functional_with_explicit_seed():
    def f(t):
        return ct.dropout(t, 0.5, seed=3, offset=4096) * 2

    torch._dynamo.reset()
    x = torch.randn(40, 30)
    assert torch.equal(torch.compile(f, backend="aot_eager")(x), f(x))


def test_custom_ops_are_registered_and_pass_opcheck():
    x = torch.randn(3, 4, 5, dtype=torch.float64).permute(2, 0, 1)
    state = torch.tensor([5, 4096], dtype=torch.int64)
    for kind in ("element", "channel", "alpha", "feature_alpha"):
        torch.library.opcheck(torch.ops.cydrop.dropout.default,
                              (x.requires_grad_(), state, 0.3, kind, 1))
        torch.library.opcheck(torch.ops.cydrop.dropout_backward.default,
                              (x, state, 0.3, kind, 1, [1, 2, 0]))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # torch's own, from inductor
def test_inductor_compiled_equals_eager():
    eager, other = _pair()
    torch._dynamo.reset()
    compiled = torch.compile(other)          # inductor: needs a C++ compiler
    x = _input()
    for _ in range(2):
        # inductor reorders sums (a bias gradient): equal up to rounding; a mask that
        # differed would change whole entries
        (ya, gxa, pa), (yb, gxb, pb) = _step(eager, x), _step(compiled, x)
        torch.testing.assert_close(yb, ya)
        torch.testing.assert_close(gxb, gxa)
        for u, v in zip(pb, pa):
            torch.testing.assert_close(u, v)
    assert eager.drop.stream.get_state() == other.drop.stream.get_state()


# ------------------------------------------------------------------------ checkpoint

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_checkpointed_gradients_equal_plain_ones(dtype):
    plain, ckpt = _pair(dtype)
    x = _input(dtype)
    for _ in range(2):
        a = _step(plain, x)
        b = _step(ckpt, x, lambda t: checkpoint(ckpt, t, use_reentrant=False))
        _assert_same(a, b)
        assert plain.drop.stream.get_state() == ckpt.drop.stream.get_state()


def test_checkpoint_of_a_module_used_twice_and_nested_segments():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(8, 8, dtype=torch.float64), nn.Dropout(0.5),
                          nn.Linear(8, 8, dtype=torch.float64), nn.AlphaDropout(0.3))
    ct.patch(block, seed=4)
    twin = copy.deepcopy(block)
    x = torch.randn(5, 8, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = block(block(xa))
    yb = checkpoint(twin, checkpoint(twin, xb, use_reentrant=False), use_reentrant=False)
    ya.pow(2).sum().backward()
    yb.pow(2).sum().backward()
    assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(block.parameters(),
                                                            twin.parameters()))
    assert block[1].stream.get_state() == twin[1].stream.get_state()


def test_without_the_replay_the_recomputation_would_draw_other_masks(monkeypatch):
    # the check above is not vacuous: a recomputation that draws anew changes the gradients
    from cydrop.interop.torch import _ops
    monkeypatch.setattr(_ops, "_checkpoint_context", lambda: (None, None, None))
    plain, ckpt = _pair(torch.float64)
    x = _input(torch.float64)
    a = _step(plain, x)
    b = _step(ckpt, x, lambda t: checkpoint(ckpt, t, use_reentrant=False))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_compiled_checkpointed_block_gives_the_plain_gradients():
    # the compiled forward replaces the state buffer instead of writing it in place, so a
    # recomputation never reads an advanced offset (Dynamo runs this region eagerly, where the
    # replay takes over; in-place writing gave wrong gradients here)
    plain, ckpt = _pair(torch.float64)

    class Wrapped(nn.Module):
        def __init__(self, block):
            super().__init__()
            self.block = block

        def forward(self, t):
            return checkpoint(self.block, t, use_reentrant=False)

    torch._dynamo.reset()
    compiled = torch.compile(Wrapped(ckpt), backend="aot_eager")
    x = _input(torch.float64)
    for _ in range(2):
        _assert_same(_step(plain, x), _step(ckpt, x, compiled))
        assert plain.drop.stream.get_state() == ckpt.drop.stream.get_state()
