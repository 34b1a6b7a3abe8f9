"""Tests of cydrop.apps.data: spiral data, digits wrapper, IDX / MNIST loader."""

import sys

import numpy as np
import pytest

from cydrop.apps import data

from helpers import mnist_dir, write_idx

# ---------------------------------------------------------------- spiral


def test_spiral_shape_labels_and_geometry():
    X, y = data.spiral_data(100, 3, seed=0)
    assert X.shape == (300, 2) and X.dtype == np.float64
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y), [100, 100, 100])
    r = np.hypot(X[:, 0], X[:, 1])
    # the radius is linspace(0, 1)
    np.testing.assert_allclose(r[:100], np.linspace(0, 1, 100), atol=1e-12)
    assert data.spiral_data(10, 2, seed=0, dtype=np.float32)[0].dtype == np.float32


def test_spiral_is_seeded_and_leaves_global_rng_alone():
    state = np.random.get_state()[1].copy()
    a = data.spiral_data(50, 4, seed=7)
    b = data.spiral_data(50, 4, seed=7)
    c = data.spiral_data(50, 4, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize("args, msg", [((0, 3), r"samples must be a positive integer, got 0"),
                                       ((10, 2.5), r"classes must be a positive integer, got 2.5")])
def test_spiral_rejects_bad_sizes(args, msg):
    with pytest.raises(ValueError, match=msg):
        data.spiral_data(*args)


def test_train_val_split():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10)
    Xt, yt, Xv, yv = data.train_val_split(X, y, 0.3, seed=0)
    assert len(Xv) == 3 and len(Xt) == 7
    np.testing.assert_array_equal(np.sort(np.concatenate([yt, yv])), y)
    np.testing.assert_array_equal(Xt[:, 0] // 2, yt)
    with pytest.raises(ValueError, match=r"val_fraction must satisfy 0 < val_fraction < 1, got 1"):
        data.train_val_split(X, y, 1)


# ---------------------------------------------------------------- digits


def test_load_digits():
    pytest.importorskip("sklearn")
    X, y = data.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    assert data.load_digits(dtype=np.float32)[0].dtype == np.float32


def test_load_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError,
                       match=r"needs scikit-learn; install it with pip install 'cydrop\[digits\]'"):
        data.load_digits()


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_roundtrip(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.load_idx(write_idx(tmp_path / "a.idx", a, gz=gz)), a)
    f = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    out = data.load_idx(write_idx(tmp_path / "f.idx", f, gz=gz, code=0x0D))
    assert out.dtype == np.float32 and out.dtype.isnative
    np.testing.assert_array_equal(out, f)


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist(tmp_path, gz):
    images, labels = mnist_dir(tmp_path, gz=gz)
    X, y = data.load_mnist(tmp_path)
    assert X.shape == (7, 784) and X.dtype == np.float32
    np.testing.assert_allclose(X, images.reshape(7, -1) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64
    X3, _ = data.load_mnist(tmp_path, flatten=False, dtype=np.float64)
    assert X3.shape == (7, 28, 28) and X3.dtype == np.float64


def test_load_mnist_test_kind(tmp_path):
    _, labels = mnist_dir(tmp_path, n=3, kind="test")
    np.testing.assert_array_equal(data.load_mnist(tmp_path, "test")[1], labels)
    with pytest.raises(FileNotFoundError,
                       match=r"has no train-images-idx3-ubyte or train-images-idx3-ubyte.gz"):
        data.load_mnist(tmp_path, "train")
    with pytest.raises(ValueError, match=r"kind must be one of \['test', 'train'\], got 'val'"):
        data.load_mnist(tmp_path, "val")


def test_missing_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST directory '.*nope' does not exist"):
        data.load_mnist(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"IDX file '.*x.idx' does not exist"):
        data.load_idx(tmp_path / "x.idx")


def test_malformed_idx_files(tmp_path):
    bad_magic = tmp_path / "magic"
    bad_magic.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError,
                       match=r"malformed: magic must start with two zero bytes, got 01020801"):
        data.load_idx(bad_magic)
    bad_code = tmp_path / "code"
    bad_code.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match=r"type code must be one of .* got 0x7"):
        data.load_idx(bad_code)
    short = write_idx(tmp_path / "short", np.zeros((4, 5), dtype=np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"shape \(4, 5\) needs 20 data bytes, got 17"):
        data.load_idx(short)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="got an empty file"):
        data.load_idx(empty)
    corrupt = tmp_path / "corrupt.gz"
    corrupt.write_bytes(b"\x1f\x8b" + b"garbage" * 3)
    with pytest.raises(ValueError, match="not readable as gzip or raw IDX"):
        data.load_idx(corrupt)


def test_mnist_count_mismatch_and_wrong_rank(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"has 5 images but .* has 4 labels"):
        data.load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 784), dtype=np.uint8))
    with pytest.raises(ValueError,
                       match=r"must hold 3-D images \(N, rows, cols\), got shape \(5, 784\)"):
        data.load_mnist(tmp_path)
