"""Type stubs for cydrop._floor (cydrop/_floor.pyx): the benchmarks' memory floors."""

from typing import Optional

import numpy as np
import numpy.typing as npt

def isas() -> list[str]:
    """The ISAs the floors are built for and this CPU runs ("baseline", maybe "avx2")."""
    ...

def stream_scale(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    s: float,
    n_threads: int = 1,
    *,
    mask_bits: Optional[npt.NDArray[np.uint8]] = None,
    mask_bytes: Optional[npt.NDArray[np.uint8]] = None,
    read_bits: Optional[npt.NDArray[np.uint8]] = None,
    read_bytes: Optional[npt.NDArray[np.uint8]] = None,
    isa: Optional[str] = None,
) -> int:
    """y := x * s chunked and threaded like cydrop._kernels.forward, with a dropout mode's
    mask traffic: the benchmarks' floors. Returns the XOR of the read mask's bytes (or 0)."""
    ...

def stream_add(
    x: npt.NDArray[np.float32],
    r: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    n_threads: int = 1,
    *,
    isa: Optional[str] = None,
) -> None:
    """y := x + r chunked and threaded like cydrop._modern.dropout_add: its floor."""
    ...
