"""Type stubs for cydrop._modern (cydrop/_modern.pyx): the modern dropout kernels."""

from typing import Optional

import numpy as np
import numpy.typing as npt

def dropout_add(
    x: npt.NDArray[np.floating], res: Optional[npt.NDArray[np.floating]],
    bias: Optional[npt.NDArray[np.floating]], rowkeep: Optional[npt.NDArray[np.uint8]],
    rowlen: int, y: npt.NDArray[np.floating], seed: int, offset: int, thr: int, scale: float,
    n_threads: int = 1,
) -> None:
    """y := res + where(keep, (x + bias[i % m]) * scale, +0.0), flat C-contiguous buffers."""
    ...

def softmax_dropout(
    z: npt.NDArray[np.floating], y: npt.NDArray[np.floating],
    p: Optional[npt.NDArray[np.floating]], L: int, seed: int, offset: int, thr: int,
    scale: float, n_threads: int = 1,
) -> None:
    """p := softmax(z) along rows of L; y := where(keep, p * scale, +0.0)."""
    ...
def softmax_dropout_backward(
    dout: npt.NDArray[np.floating], p: npt.NDArray[np.floating],
    dz: npt.NDArray[np.floating], L: int, seed: int, offset: int, thr: int, scale: float,
    n_threads: int = 1,
) -> None:
    """gp := where(keep, dout * scale, +0.0) * p; dz := gp - p * rowsum(gp)."""
    ...
