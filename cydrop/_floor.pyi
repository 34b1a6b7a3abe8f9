"""Type stubs for cydrop._floor (cydrop/_floor.pyx): the benchmarks' memory floor."""

import numpy as np
import numpy.typing as npt

def stream_scale(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    s: float,
    n_threads: int = 1,
) -> None:
    """y := x * s chunked and threaded like cydrop._kernels.forward: the benchmarks' floor."""
    ...
