"""Multi-process training with ``torch.distributed`` (gloo on loopback, 2 spawned processes)
whose dropout is cydrop: sharded masks (``global_shape=``/``start=``) for tensor parallelism,
``cydrop.derive_seed(seed, 'dp', rank)`` for data parallelism.

What is bit-exact, and why
--------------------------
* The dropout itself, always: given the same input block and upstream gradient block, a rank's
  dropout output and backward equal the matching blocks of the single-process call bit for
  bit, for any data (no reduction is involved; the mask is a pure function of the global
  index). Checked here on float64 Gaussian data.
* A whole training step (output, loss, every gradient) is bit-exact only when the arithmetic
  around the dropout does not depend on how it is split: the first matrix product rounds
  differently when split by columns (BLAS blocks an (8, 6) @ (6, 8) product differently from
  (8, 6) @ (6, 16)), so on Gaussian data the dropout's INPUT already differs in the last bit;
  and the all-reduce adds the partial products of the second one in another order than one
  matrix product. The step is checked bit for bit on float64 data of small multiples of 1/8
  (every product and sum is then exact, so no order can show), and to 1e-12 on Gaussian data.
"""
import os
import queue as queue_module
import socket
import time
import traceback
from datetime import timedelta

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

import cydrop  # noqa: E402

pytestmark = pytest.mark.slow

B, IN, HID, OUT = 8, 6, 16, 4          # batch, input features, hidden units, outputs
RATE, SEED, WORLD = 0.5, 2026, 2
TIMEOUT = 120                          # seconds for the whole run; no step can hang past it


class CydropDropout(torch.autograd.Function):
    """Dropout of a CPU float tensor by cydrop, on its NumPy view; ``global_shape``/``start``
    place it in a global array (a tensor-parallel shard), None for an ordinary call."""

    @staticmethod
    def forward(ctx, x, rate, seed, global_shape, start):
        xn = x.detach().contiguous().numpy()
        y, ctx.cache = cydrop.dropout(xn, rate, seed=seed, global_shape=global_shape,
                                      start=start)
        return torch.from_numpy(y.copy() if y is xn else y)

    @staticmethod
    def backward(ctx, grad):
        dx = cydrop.dropout_backward(grad.detach().contiguous().numpy(), ctx.cache)
        return torch.from_numpy(dx), None, None, None, None


class _AllReduceSum(torch.autograd.Function):
    """The row-parallel layer's all-reduce: sum over ranks forward, identity backward."""

    @staticmethod
    def forward(ctx, x):
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad


def _data(dyadic):
    """The same tensors in every process: small multiples of 1/8, or Gaussian."""
    rng = np.random.default_rng(1 if dyadic else 2)

    def draw(*shape):
        return rng.integers(-16, 17, shape) / 8.0 if dyadic else rng.standard_normal(shape)
    return {"x": draw(B, IN), "W1": draw(IN, HID), "b1": draw(HID), "W2": draw(HID, OUT),
            "b2": draw(OUT), "T": draw(B, OUT), "H": draw(B, HID), "G": draw(B, HID)}


def _leaf(a):
    return torch.from_numpy(np.ascontiguousarray(a)).requires_grad_()


def tensor_parallel_step(p, rank, world):
    """One step of a 2-layer MLP whose hidden layer is split by columns over ``world`` ranks
    (W1 by columns, W2 by rows, Megatron style); ``world == 1`` is the single-process run."""
    lo, hi = rank * HID // world, (rank + 1) * HID // world
    where = {} if world == 1 else {"global_shape": (B, HID), "start": (0, lo)}
    x = torch.from_numpy(p["x"])
    W1, b1, W2 = _leaf(p["W1"][:, lo:hi]), _leaf(p["b1"][lo:hi]), _leaf(p["W2"][lo:hi])
    b2 = _leaf(p["b2"])
    h = torch.relu(x @ W1 + b1)
    d = CydropDropout.apply(h, RATE, SEED, where.get("global_shape"), where.get("start"))
    partial = d @ W2
    out = (partial if world == 1 else _AllReduceSum.apply(partial)) + b2
    loss = (out * torch.from_numpy(p["T"])).sum()
    loss.backward()
    # the dropout alone, on a fixed input block, backward from a fixed upstream gradient block
    h0 = _leaf(p["H"][:, lo:hi])
    d0 = CydropDropout.apply(h0, RATE, SEED, where.get("global_shape"), where.get("start"))
    (dh,) = torch.autograd.grad(d0, h0, torch.from_numpy(np.ascontiguousarray(p["G"][:, lo:hi])))
    return {"dropout": d.detach().numpy(), "dropout_alone": d0.detach().numpy(),
            "dropout_grad": dh.numpy(),
            "out": out.detach().numpy(), "loss": loss.detach().numpy(),
            "W1": W1.grad.numpy(), "b1": b1.grad.numpy(), "W2": W2.grad.numpy(),
            "b2": b2.grad.numpy()}


def data_parallel_step(p, rank, world):
    """One data-parallel step: rank ``rank`` runs the whole model on its slice of the batch with
    its own dropout seed ``derive_seed(SEED, 'dp', rank)``; returns its mask and gradients."""
    rows = slice(rank * B // world, (rank + 1) * B // world)
    seed = cydrop.derive_seed(SEED, "dp", rank)
    W1, b1, W2, b2 = (_leaf(p[k]) for k in ("W1", "b1", "W2", "b2"))
    h = torch.relu(torch.from_numpy(np.ascontiguousarray(p["x"][rows])) @ W1 + b1)
    d = CydropDropout.apply(h, RATE, seed, None, None)
    loss = ((d @ W2 + b2) * torch.from_numpy(np.ascontiguousarray(p["T"][rows]))).sum()
    loss.backward()
    return {"mask": cydrop.dropout_mask(tuple(h.shape), RATE, seed=seed),
            "kept": (d.detach().numpy() != 0).astype(np.uint8),
            "grads": {k: v.grad.numpy() for k, v in zip(("W1", "b1", "W2", "b2"),
                                                        (W1, b1, W2, b2))}}


def _gather(array):
    """All ranks' arrays (same shape), through the process group."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t)
    return [part.numpy() for part in parts]


def _worker(rank, world, port, results):
    try:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        torch.set_num_threads(1)
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=timedelta(seconds=TIMEOUT // 2))
        try:
            found = {}
            for dyadic in (True, False):
                tp = tensor_parallel_step(_data(dyadic), rank, world)
                tp["gathered_dropout"] = np.concatenate(_gather(tp["dropout_alone"]), axis=1)
                tp["gathered_W1"] = np.concatenate(_gather(tp["W1"]), axis=1)
                found["tp", dyadic] = tp
            dp = data_parallel_step(_data(True), rank, world)
            dp["all_masks"] = _gather(dp["mask"])
            for name, g in dp["grads"].items():
                t = torch.from_numpy(g.copy())
                dist.all_reduce(t, op=dist.ReduceOp.SUM)      # DDP's gradient all-reduce
                dp["grads"][name] = t.numpy()
            found["dp"] = dp
            dist.barrier()
        finally:
            dist.destroy_process_group()
        results.put((rank, None, found))
    except BaseException:
        results.put((rank, traceback.format_exc(), None))


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks():
    """Run the two ranks once (spawned processes, bounded in time); {rank: results}."""
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    ctx = torch.multiprocessing.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_worker, args=(r, WORLD, port, results), daemon=True)
             for r in range(WORLD)]
    deadline = time.monotonic() + TIMEOUT
    found, errors = {}, []
    try:
        for p in procs:
            p.start()
        while len(found) < len(procs):
            try:
                rank, error, value = results.get(timeout=1.0)
            except queue_module.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    pytest.fail(f"the ranks did not report (exit codes {dead}, "
                                f"{time.monotonic() - deadline + TIMEOUT:.0f} s)")
                continue
            if error:
                errors.append(f"rank {rank}:\n{error}")
            found[rank] = value
    finally:
        for p in procs:
            p.join(timeout=max(1.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(10)
    assert not errors, "\n".join(errors)
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
    return found


def _same_bits(a, b, what):
    a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype == np.float64, what
    np.testing.assert_array_equal(a.view(np.uint64), b.view(np.uint64), err_msg=what)


@pytest.mark.parametrize("dyadic", [True, False], ids=["exact-data", "gaussian-data"])
def test_tensor_parallel_dropout_blocks_are_the_single_process_dropout(ranks, dyadic):
    single = tensor_parallel_step(_data(dyadic), 0, 1)
    blocks = [ranks[r]["tp", dyadic] for r in range(WORLD)]
    # each rank's block and the all-gathered hidden layer: bit for bit, any data
    for r, block in enumerate(blocks):
        cols = slice(r * HID // WORLD, (r + 1) * HID // WORLD)
        _same_bits(block["dropout_alone"], single["dropout_alone"][:, cols],
                   f"rank {r} dropout block")
        _same_bits(block["dropout_grad"], single["dropout_grad"][:, cols],
                   f"rank {r} dropout backward")
        _same_bits(block["gathered_dropout"], single["dropout_alone"],
                   "all-gathered dropout output")


@pytest.mark.parametrize("dyadic", [True, False], ids=["exact-data", "gaussian-data"])
def test_tensor_parallel_step_matches_the_single_process_step(ranks, dyadic):
    single = tensor_parallel_step(_data(dyadic), 0, 1)
    blocks = [ranks[r]["tp", dyadic] for r in range(WORLD)]
    gathered = {"dropout": np.concatenate([b["dropout"] for b in blocks], axis=1),
                "out": blocks[0]["out"], "loss": blocks[0]["loss"], "b2": blocks[0]["b2"],
                "W1": blocks[0]["gathered_W1"],
                "b1": np.concatenate([b["b1"] for b in blocks]),
                "W2": np.concatenate([b["W2"] for b in blocks], axis=0)}
    for name, value in gathered.items():
        if dyadic:      # every sum exact: the reduction order cannot show
            _same_bits(value, single[name], name)
        else:           # the all-reduce adds the partial products in another order
            np.testing.assert_allclose(value, single[name], rtol=1e-12, atol=1e-12,
                                       err_msg=name)
    for r in range(1, WORLD):       # the all-reduced output is the same on every rank
        _same_bits(blocks[r]["out"], blocks[0]["out"], f"rank {r} output")


def test_data_parallel_ranks_draw_independent_masks(ranks):
    masks = ranks[0]["dp"]["all_masks"]
    assert len(masks) == WORLD
    for r in range(WORLD):
        seed = cydrop.derive_seed(SEED, "dp", r)
        expected = cydrop.dropout_mask(masks[r].shape, RATE, seed=seed)
        np.testing.assert_array_equal(masks[r], expected)
        np.testing.assert_array_equal(ranks[r]["dp"]["mask"], expected)
        # the mask the rank's training step applied (a kept element may still be 0: ReLU)
        assert not (ranks[r]["dp"]["kept"] & (1 - expected)).any()
        assert not np.array_equal(expected, cydrop.dropout_mask(masks[r].shape, RATE,
                                                                seed=SEED))
    assert not np.array_equal(masks[0], masks[1])


def test_data_parallel_gradients_match_the_single_process_sum(ranks):
    p = _data(True)
    per_rank = [data_parallel_step(p, r, WORLD)["grads"] for r in range(WORLD)]
    for name in ("W1", "b1", "W2", "b2"):
        expected = per_rank[0][name] + per_rank[1][name]
        for r in range(WORLD):
            _same_bits(ranks[r]["dp"]["grads"][name], expected, f"rank {r} {name}")
