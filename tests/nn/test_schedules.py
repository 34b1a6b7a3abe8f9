"""Rate schedules (cydrop.nn.schedules), their stepping by Sequential and Solver, the CLI flag,
and the modern layers of cydrop.nn.modern."""

import math

import numpy as np
import pytest

from cydrop import nn
from cydrop.nn import schedules as S


def test_schedule_values():
    assert S.ConstantRate(0.3)(0) == S.ConstantRate(0.3)(10**6) == 0.3
    lin = S.LinearRate(0.5, 0.0, 10)
    assert [lin(t) for t in (0, 5, 10, 20)] == [0.5, 0.25, 0.0, 0.0]
    cos = S.CosineRate(0.5, 0.1, 100)
    assert cos(0) == 0.5 and math.isclose(cos(50), 0.3) and math.isclose(cos(100), 0.1)
    early = S.EarlyDropout(0.2, 3)
    assert [early(t) for t in range(5)] == [0.2, 0.2, 0.2, 0.0, 0.0]


@pytest.mark.parametrize("text, expected", [
    ("constant:0.5", S.ConstantRate(0.5)), ("linear:0.5,0,100", S.LinearRate(0.5, 0.0, 100)),
    ("cosine:0.5,0.1,10", S.CosineRate(0.5, 0.1, 10)), ("early:0.1,200", S.EarlyDropout(0.1, 200)),
])
def test_parse_schedule(text, expected):
    assert S.parse_schedule(text) == expected


@pytest.mark.parametrize("text, exc", [("nope:1", ValueError), ("linear:0.5", ValueError),
                                       ("constant:x", ValueError), ("constant:2", ValueError),
                                       ("early:0.1,0", ValueError), (3, TypeError)])
def test_bad_schedules(text, exc):
    with pytest.raises(exc):
        S.parse_schedule(text)


def test_bad_step_and_arguments():
    with pytest.raises(ValueError, match="step"):
        S.ConstantRate(0.1)(-1)
    with pytest.raises(TypeError, match="n_steps"):
        S.LinearRate(0.1, 0.2, 1.5)
    with pytest.raises(ValueError, match="start"):
        S.CosineRate(1.5, 0.2, 3)


def _net(seed):
    return nn.Sequential(nn.Dense(4, 16, seed=seed), nn.ReLU(), nn.Dropout(0.5, seed=seed + 1),
                         nn.Dense(16, 3, seed=seed + 2))


def _run(schedule, steps=6):
    net = _net(0).set_rate_schedule(schedule)
    X = np.random.default_rng(0).standard_normal((8, 4))
    outs, rates = [], []
    for _ in range(steps):
        outs.append(net.forward(X))
        rates.append(net.layers[2].rate)
        net.step_schedule()
    return outs, rates


def test_sequential_steps_the_schedule_and_replays_masks():
    outs, rates = _run(S.EarlyDropout(0.5, 3))
    assert rates == [0.5, 0.5, 0.5, 0.0, 0.0, 0.0]
    again, _ = _run(S.EarlyDropout(0.5, 3))
    for a, b in zip(outs, again):
        np.testing.assert_array_equal(a, b)          # a schedule plus a seed replays the masks
    other, _ = _run(S.ConstantRate(0.5))
    assert not np.array_equal(outs[4], other[4])


def test_solver_advances_once_per_update():
    rng = np.random.default_rng(1)
    data = {"X_train": rng.standard_normal((40, 4)), "y_train": rng.integers(0, 3, 40),
            "X_val": rng.standard_normal((10, 4)), "y_val": rng.integers(0, 3, 10)}
    net = _net(3).set_rate_schedule(S.LinearRate(0.5, 0.0, 4))
    solver = nn.Solver(net, data, num_epochs=2, batch_size=10, verbose=False)
    solver.train()
    assert net.schedule_step == 8 and net.layers[2].rate == 0.0


def test_cli_rate_schedule(capsys):
    from cydrop.apps.cli import main
    assert main(["train", "--epochs", "1", "--quiet", "--rate-schedule", "early:0.2,3"]) == 0
    assert main(["train", "--rate-schedule", "bogus"]) != 0
    assert "rate schedule must be one of" in capsys.readouterr().err


# ------------------------------------------------------------------ the modern layers

def test_drop_path_rates():
    assert nn.drop_path_rates(0.3, 4) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert nn.drop_path_rates(0.3, 1) == [0.0]
    with pytest.raises(ValueError, match="n_blocks"):
        nn.drop_path_rates(0.3, 0)
    with pytest.raises(ValueError, match="max_rate"):
        nn.drop_path_rates(1.3, 2)


def test_layers_forward_backward_and_streams():
    import cydrop
    x = np.random.default_rng(2).standard_normal((6, 10))
    r = np.random.default_rng(3).standard_normal((6, 10))
    layer = nn.DropoutAdd(0.3, seed=5)
    y = layer.forward(x, r)
    dx, dres, db = layer.backward(np.ones_like(x))
    seed, offset = cydrop.SeedStream(5).next(x.size)
    np.testing.assert_array_equal(y, cydrop.dropout_add(x, r, 0.3, seed=seed, offset=offset)[0])
    assert db is None and dres.shape == x.shape
    dp = nn.DropPath(0.5, seed=1)
    y = dp.forward(x)
    assert np.all((y == 0).all(1) | (y != 0).all(1))
    np.testing.assert_array_equal(dp.backward(np.ones_like(x)) != 0, y != 0)
    assert dp.eval().forward(x) is x
    sm = nn.SoftmaxDropout(0.2, seed=0)
    p = sm.eval().forward(x)
    np.testing.assert_allclose(p.sum(-1), 1.0)
    assert sm.backward(np.ones_like(x)).shape == x.shape
    db2 = nn.DropBlock2d(0.2, block_size=3, seed=0)
    img = np.ones((2, 3, 8, 8))
    assert db2.forward(img).shape == img.shape and db2.backward(img).shape == img.shape
    with pytest.raises(ValueError, match="5-D"):
        nn.DropBlock3d(0.2, block_size=3, seed=0).forward(img)
