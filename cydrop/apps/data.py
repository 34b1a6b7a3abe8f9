"""Offline datasets for the trainer and experiments.

* :func:`spiral_data` -- nnfs.io's spiral, seeded with its own generator;
* :func:`load_digits` -- scikit-learn's bundled 8x8 digits (optional extra
  ``cydrop[digits]``);
* :func:`load_idx` / :func:`load_mnist` -- MNIST or Fashion-MNIST IDX files
  (gzipped or raw) from a local path; nothing is downloaded.

No function here touches NumPy's global random state.
"""

import gzip
import os

import numpy as np

__all__ = ["spiral_data", "load_digits", "load_idx", "load_mnist", "train_val_split"]

# IDX type codes (http://yann.lecun.com/exdb/mnist/ format description)
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def spiral_data(samples, classes, *, seed=None, dtype=np.float64):
    """Interleaved spirals, one arm per class, in nnfs.io's form.

    Parameters
    ----------
    samples : int
        Points per class.
    classes : int
        Number of classes (arms).
    seed : int, numpy.random.Generator or None, default=None
        Seed of the angular noise (``np.random.default_rng(seed)``).
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64

    Returns
    -------
    X : ndarray of shape (samples * classes, 2)
    y : ndarray of shape (samples * classes,) of uint8
        Class of each point; points are grouped by class.

    Raises
    ------
    ValueError
        If ``samples`` or ``classes`` is not a positive integer.

    Examples
    --------
    >>> X, y = spiral_data(100, 3, seed=0)
    >>> X.shape, y.shape, int(y.max())
    ((300, 2), (300,), 2)
    """
    for name, v in (("samples", samples), ("classes", classes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if classes > 255:
        raise ValueError(f"classes must be <= 255 (uint8 labels), got {classes}")
    rng = np.random.default_rng(seed)
    X = np.zeros((samples * classes, 2), dtype=np.float64)
    y = np.zeros(samples * classes, dtype=np.uint8)
    r = np.linspace(0.0, 1.0, samples)
    for k in range(classes):
        ix = slice(samples * k, samples * (k + 1))
        t = np.linspace(k * 4, (k + 1) * 4, samples) + rng.standard_normal(samples) * 0.2
        X[ix, 0] = r * np.sin(t * 2.5)
        X[ix, 1] = r * np.cos(t * 2.5)
        y[ix] = k
    return X.astype(dtype, copy=False), y


def load_digits(*, dtype=np.float64):
    """scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1].

    1797 images of 64 pixels (values 0..16 divided by 16), 10 classes. The
    data ships inside the scikit-learn wheel, so this works offline.

    Parameters
    ----------
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64

    Returns
    -------
    X : ndarray of shape (1797, 64)
    y : ndarray of shape (1797,) of int64

    Raises
    ------
    ImportError
        If scikit-learn is not installed; the message names the extra
        ``cydrop[digits]``.
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ImportError(
            "the digits dataset needs scikit-learn; install it with "
            "pip install 'cydrop[digits]' (or pip install scikit-learn)"
        ) from exc
    bunch = _sk_load_digits()
    X = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(dtype, copy=False)
    return X, np.asarray(bunch.target, dtype=np.int64)


def train_val_split(X, y, val_fraction=0.25, *, seed=None):
    """Shuffle and split arrays into training and validation parts.

    Parameters
    ----------
    X : ndarray of shape (N, ...)
    y : ndarray of shape (N,)
    val_fraction : float, default=0.25
        ``0 < val_fraction < 1``.
    seed : int or None, default=None

    Returns
    -------
    X_train, y_train, X_val, y_val : ndarray

    Raises
    ------
    ValueError
        If the lengths differ or ``val_fraction`` is outside (0, 1).
    """
    if len(X) != len(y):
        raise ValueError(f"X and y must have the same length, got {len(X)} and {len(y)}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must satisfy 0 < val_fraction < 1, got {val_fraction!r}")
    perm = np.random.default_rng(seed).permutation(len(X))
    n_val = max(1, int(round(len(X) * val_fraction)))
    va, tr = perm[:n_val], perm[n_val:]
    return X[tr], y[tr], X[va], y[va]


def _open_maybe_gz(path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def load_idx(path):
    """Read one IDX file (MNIST's format), gzipped or raw.

    Parameters
    ----------
    path : str or os.PathLike
        File to read; gzip is detected from its first bytes, not its name.

    Returns
    -------
    array : ndarray
        With the shape and dtype the header declares (native byte order).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the header is not IDX (bad magic, unknown type code) or the data
        is shorter or longer than the header declares, or the gzip stream
        is corrupt.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file {path!r} does not exist")
    try:
        with _open_maybe_gz(path) as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"IDX file {path!r} is not readable as gzip or raw IDX: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"IDX file {path!r} is malformed: magic must start with two zero bytes, "
                         f"got {raw[:4].hex() or 'an empty file'}")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"IDX file {path!r} is malformed: type code must be one of "
                         f"{sorted(hex(c) for c in _IDX_DTYPES)}, got {hex(code)}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise ValueError(f"IDX file {path!r} is malformed: header declares {ndim} dimensions "
                         f"but the file has {len(raw)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"IDX file {path!r} is malformed: shape {shape} needs {expected} data "
                         f"bytes, got {len(raw) - header}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=True)


_MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory, stem):
    for name in (stem + ".gz", stem,
                 stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        p = os.path.join(directory, name)
        if os.path.isfile(p):
            return p
    return None


def load_mnist(path, kind="train", *, dtype=np.float32, flatten=True):
    """Load MNIST or Fashion-MNIST from a local directory of IDX files.

    The directory must hold ``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte`` (for ``kind='train'``) or the ``t10k-``
    pair (``kind='test'``), each optionally gzipped (``.gz``). Both datasets
    use the same file names.

    Parameters
    ----------
    path : str or os.PathLike
        Directory holding the files.
    kind : {'train', 'test'}, default='train'
    dtype : {numpy.float32, numpy.float64}, default=numpy.float32
        Images are scaled to [0, 1] in this dtype.
    flatten : bool, default=True
        Return images as (N, rows * cols) instead of (N, rows, cols).

    Returns
    -------
    X : ndarray of shape (N, 784) (or (N, 28, 28))
    y : ndarray of shape (N,) of int64

    Raises
    ------
    FileNotFoundError
        If the directory or one of the two files is missing.
    ValueError
        For a bad ``kind``, malformed files, or image/label counts that
        differ.
    """
    if kind not in _MNIST_NAMES:
        raise ValueError(f"kind must be one of {sorted(_MNIST_NAMES)}, got {kind!r}")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"MNIST directory {path!r} does not exist")
    files = []
    for stem in _MNIST_NAMES[kind]:
        found = _find(path, stem)
        if found is None:
            raise FileNotFoundError(f"MNIST directory {path!r} has no {stem} or {stem}.gz")
        files.append(found)
    images, labels = load_idx(files[0]), load_idx(files[1])
    if images.ndim != 3:
        raise ValueError(f"IDX file {files[0]!r} must hold 3-D images (N, rows, cols), "
                         f"got shape {images.shape}")
    if labels.ndim != 1:
        raise ValueError(f"IDX file {files[1]!r} must hold 1-D labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{files[0]!r} has {len(images)} images but {files[1]!r} has "
                         f"{len(labels)} labels")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    X = images.astype(dtype) / dtype.type(255)
    if flatten:
        X = X.reshape(len(X), -1)
    return X, labels.astype(np.int64)
