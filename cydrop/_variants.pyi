"""Type stubs for cydrop._variants (cydrop/_variants.pyx): the dropout-variant kernels.

Everything here is cydrop-internal: callers (cydrop/variants.py) validate and allocate first. The
buffers are contiguous 1-D arrays; the two float buffers of one call share a dtype (float32 or
float64), and ``y`` may be ``x`` (in place).
"""

from typing import TypeVar

import numpy as np
import numpy.typing as npt

_Float = TypeVar("_Float", np.float32, np.float64)

CHUNK: int
"""Elements per unit of parallel work (a task)."""

def threshold(keep: float) -> int: ...
def draws(seed: int, p0: int, count: int) -> npt.NDArray[np.uint16]: ...
def normal(w: int) -> float: ...
def keep_mask(
    n: int,
    seed: int,
    offset: int,
    thr: int,
    keep: npt.NDArray[np.uint8],
    n_threads: int = 1,
) -> None: ...
def dropout(
    x: npt.NDArray[_Float],
    y: npt.NDArray[_Float],
    seed: int,
    offset: int,
    thr: int,
    scale: float,
    n_threads: int = 1,
) -> None: ...
def bcast_half(
    x: npt.NDArray[np.uint16],
    y: npt.NDArray[np.uint16],
    keep: npt.NDArray[np.uint8],
    shape: npt.NDArray[np.int64],
    mstride: npt.NDArray[np.int64],
    scale: float,
    n_threads: int = 1,
    bf16: bool = False,
) -> None: ...
def bcast(
    x: npt.NDArray[_Float],
    y: npt.NDArray[_Float],
    keep: npt.NDArray[np.uint8],
    shape: npt.NDArray[np.int64],
    mstride: npt.NDArray[np.int64],
    scale: float,
    n_threads: int = 1,
) -> None: ...
def exactk_mask(
    rows: int,
    n: int,
    k: int,
    seed: int,
    offset: int,
    keep: npt.NDArray[np.uint8],
    scratch: npt.NDArray[np.uint64],
    n_threads: int = 1,
) -> None: ...
def alpha(
    x: npt.NDArray[_Float],
    y: npt.NDArray[_Float],
    seed: int,
    offset: int,
    thr: int,
    a: float,
    b: float,
    c: float,
    n_threads: int = 1,
) -> None: ...
def gauss(
    x: npt.NDArray[_Float],
    y: npt.NDArray[_Float],
    seed: int,
    offset: int,
    sigma: float,
    n_threads: int = 1,
) -> None: ...
