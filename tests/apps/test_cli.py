"""Tests of ``python -m cydrop`` (cydrop.apps.cli) and the progress display."""

import io
import re
import sys
import types

import pytest

from cydrop.apps import cli
from cydrop.nn import Progress

from helpers import mnist_dir, run_python


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_spiral_summary(capsys):
    code, out, err = run(["train", "--epochs", "3", "--hidden", "32", "--seed", "1"], capsys)
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("dataset"))
    cols = dict(zip(re.split(r"\s{2,}", lines[header]), re.split(r"\s{2,}", lines[header + 2])))
    assert cols["dataset"] == "spiral" and cols["model"] == "2 -> 32 -> 3" and cols["epochs"] == "3"
    # not a TTY: plain epoch lines, no carriage returns
    assert "\r" not in out
    assert sum(line.startswith("epoch ") for line in lines) == 3
    assert "rate 0.1" in lines[0]
    assert 1 / 3 < float(cols["val_acc"]) <= 1.0
    assert cols["rates"] == "0.1" and cols["optimizer"] == "adam lr 0.005"


def test_train_is_reproducible_and_quiet(capsys):
    argv = ["train", "--epochs", "2", "--hidden", "16,16", "--rates", "0.2,0.5",
            "--optimizer", "momentum", "--quiet", "--seed", "5"]
    code1, out1, _ = run(argv, capsys)
    code2, out2, _ = run(argv, capsys)
    assert code1 == code2 == 0
    assert not any(line.startswith("epoch ") for line in out1.splitlines())

    def strip_seconds(text):  # the last column is wall time
        return [line.rsplit(None, 1)[0] for line in text.splitlines()]

    assert strip_seconds(out1) == strip_seconds(out2)


@pytest.mark.parametrize("argv, needle", [
    (["train", "--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
    (["train", "--rates", "1.5"], "every rate must satisfy 0 <= rate <= 1, got '1.5'"),
    (["train", "--hidden", "8,x"], "argument --hidden: must be integers separated by commas"),
    (["train", "--threads", "0"], "must be a non-zero integer"),
    (["train", "--plot", "out.jpg"], "must be a .png file name, got 'out.jpg'"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["train", "--hidden", "8,8", "--rates", "0.1,0.2,0.3"],
     "--rates must give one rate or one per hidden"),
    (["train", "mnist"], "mnist needs PATH"),
    (["train", "spiral", "/tmp"], "PATH is only used with mnist"),
    (["experiment", "mnist"], "invalid choice: 'mnist'"),
    (["experiment", "cs231n", "--data", "x"], "--dataset and --data apply to d2l only"),
    (["experiment", "d2l", "--dataset", "mnist"], "needs --data PATH"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_usage_errors_are_one_line_exit_2(argv, needle, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


def test_missing_and_malformed_mnist_files(tmp_path, capsys):
    code, _, err = run(["train", "mnist", str(tmp_path / "absent")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "MNIST directory" in err and "does not exist" in err
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x00")
    code, _, err = run(["train", "mnist", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "is malformed" in err


def test_train_on_idx_files(tmp_path, capsys):
    mnist_dir(tmp_path, n=40, kind="train")
    mnist_dir(tmp_path, n=10, kind="test")
    code, out, err = run(["train", "mnist", str(tmp_path), "--epochs", "2", "--hidden", "16",
                          "--quiet"], capsys)
    assert code == 0, err
    assert "784 -> 16 -> 10" in out


def test_plot_without_matplotlib_is_a_clear_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, out, err = run(["train", "--epochs", "1", "--plot", "x.png"], capsys)
    assert code == 2
    assert err.strip() == ("python -m cydrop: error: plotting needs matplotlib; install it with "
                           "pip install 'cydrop[plot]' (or pip install matplotlib)")
    assert out == ""  # checked before any training


def test_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "curves.png"
    code, out, err = run(["train", "--epochs", "2", "--hidden", "8", "--quiet", "--plot", str(png)],
                         capsys)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_forwards_argv(monkeypatch):
    seen = []
    fake = types.ModuleType("cydrop.apps.bench")
    fake.main = lambda argv, prog: seen.append((argv, prog)) or 7
    monkeypatch.setitem(sys.modules, "cydrop.apps.bench", fake)
    import cydrop.apps

    monkeypatch.setattr(cydrop.apps, "bench", fake, raising=False)
    assert cli.main(["bench", "--sizes", "1e6", "-h"]) == 7
    assert seen == [(["--sizes", "1e6", "-h"], "python -m cydrop bench")]


def test_python_dash_m_entry_point(tmp_path):
    proc = run_python(["-m", "cydrop", "train", "--epochs", "1", "--hidden", "8"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "spiral" in proc.stdout and "final loss" in proc.stdout
    bad = run_python(["-m", "cydrop", "train", "--epochs", "-3"], cwd=tmp_path, timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


# ---------------------------------------------------------------- Progress


def test_progress_plain_mode_prints_every_n_epochs():
    out = io.StringIO()
    p = Progress(100, 5, label="rate 0.5", stream=out)
    for epoch in range(1, 101):
        for step in range(1, 6):
            p.step(epoch, step, 0.5)
        p.epoch_end(epoch, 0.5, 0.9, 0.8, 1e-3)
    p.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [1, *range(5, 101, 5)]
    assert lines[-1].endswith("rate 0.5")


def test_progress_tty_mode_redraws_one_line():
    out = io.StringIO()
    p = Progress(2, 4, label="rate 0.2", stream=out, tty=True, min_interval=0.0)
    for epoch in (1, 2):
        for step in range(1, 5):
            p.step(epoch, step, 1.0 / step)
        p.epoch_end(epoch, 0.3, 0.9, 0.85, 1e-3)
    p.close()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    frames = text.split("\r")[1:]
    assert len(frames) == 10
    assert frames[-1].startswith("[####################] 100.0%")
    assert "step 3/4" in frames[2] and "loss 0.3333" in frames[2] and "rate 0.2" in frames[2]
