"""Small, fast versions of the three experiments (the full nnfs run is marked slow)."""

import io

import numpy as np
import pytest

from cydrop.apps import experiments as E
from cydrop.apps.report import format_table

from helpers import mnist_dir


def test_nnfs_short_run_learns_and_reports():
    r = E.nnfs_ch15(epochs=300, hidden=32, samples=200, record_every=100, seed=0)
    assert r["history"]["epoch"] == [0, 100, 200, 300]
    assert r["history"]["acc"][0] < 0.45  # untrained: near chance (1/3)
    assert r["val_acc"] > 0.45 and r["train_acc"] > 0.45
    assert r["loss"] == pytest.approx(r["data_loss"] + r["reg_loss"])
    # as the book prints it: the rate the previous (299th) step used
    assert r["lr"] == pytest.approx(0.05 / (1 + 5e-5 * 299))
    again = E.nnfs_ch15(epochs=300, hidden=32, samples=200, record_every=100, seed=0)
    assert again["loss"] == r["loss"] and again["val_acc"] == r["val_acc"]  # bit-identical rerun


def test_run_nnfs_table_shows_book_figures():
    out = io.StringIO()
    E.run_nnfs(hidden_sizes=(16,), epochs=20, stream=out)
    text = out.getvalue()
    assert "book acc" in text and "Dense(2,16)" in text


@pytest.mark.slow
def test_nnfs_full_10000_epochs():
    out = io.StringIO()
    (r,) = E.run_nnfs(hidden_sizes=(64,), epochs=10000, stream=out, n_threads=1)
    # book: acc ~0.69, val ~0.76; different data draws move these by a few points
    assert 0.6 <= r["acc"] <= 0.85
    assert r["val_acc"] >= 0.65


def test_cs231n_small():
    pytest.importorskip("sklearn")
    out = io.StringIO()
    res = E.cs231n_regularization(epochs=4, num_train=200, hidden=100, stream=out)
    assert [r["keep"] for r in res] == [1.0, 0.25]
    assert [r["rate"] for r in res] == [0.0, 0.75]
    for r in res:
        assert len(r["train_acc_history"]) == len(r["val_acc_history"]) == 4
        assert r["val_acc"] > 0.5  # chance is 0.1
        assert r["gap"] == pytest.approx(r["train_acc"] - r["val_acc"])
    assert "train-val gap" in out.getvalue()


def test_d2l_rate_one_runs_and_gives_chance_accuracy():
    pytest.importorskip("sklearn")
    out = io.StringIO()
    # 1 thread: robust timing on a loaded CI box; masks are identical
    res = E.d2l_sweep(pairs=((0.0, 0.0), (0.5, 0.5), (1.0, 1.0)), epochs=40, stream=out,
                      n_threads=1)
    none, half, ones = res
    assert none["test_acc"] > 0.8 and half["test_acc"] > 0.7
    # rate 1: every hidden activation is zero in training; only the output bias learns
    assert np.isfinite(ones["train_loss"])
    assert ones["train_loss"] == pytest.approx(np.log(10), abs=0.02)
    assert ones["train_acc"] < 0.2 and ones["test_acc"] < 0.2  # chance is 0.1
    text = out.getvalue()
    assert "rate1" in text and "chance 0.10" in text


def test_d2l_on_idx_files(tmp_path):
    mnist_dir(tmp_path, n=60, kind="train")
    mnist_dir(tmp_path, n=20, kind="test")
    res = E.d2l_sweep(pairs=((0.2, 0.5),), dataset="fashion-mnist", data_path=tmp_path, epochs=1,
                      hidden=(16, 16), stream=io.StringIO())
    assert res[0]["rates"] == (0.2, 0.5) and 0 <= res[0]["test_acc"] <= 1
    with pytest.raises(ValueError, match=r"data_path must name a directory of IDX files"):
        E.d2l_sweep(dataset="mnist", stream=io.StringIO())


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    for name, fn in [("nnfs", lambda p: E.run_nnfs(hidden_sizes=(8,), epochs=200, plot=p,
                                                    stream=io.StringIO())),
                     ("cs231n", lambda p: E.cs231n_regularization(epochs=2, num_train=100,
                                                                  hidden=20, plot=p,
                                                                  stream=io.StringIO())),
                     ("d2l", lambda p: E.d2l_sweep(pairs=((0.0, 0.0), (1.0, 1.0)), epochs=1, plot=p,
                                                   stream=io.StringIO()))]:
        png = tmp_path / f"{name}.png"
        fn(str(png))
        assert png.read_bytes()[:4] == b"\x89PNG", name


def test_format_table():
    text = format_table(["a", "long name"], [[1.23456, None], ["xyz", 2]])
    assert text.splitlines() == ["a       long name", "------  ---------", "1.2346  -", "xyz     2"]
