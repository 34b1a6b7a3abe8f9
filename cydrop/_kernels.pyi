"""Type stubs for cydrop._kernels (cydrop/_kernels.pyx): the boundary of the C dropout kernels.

Everything here is cydrop-internal: callers (cydrop/_core.py) validate and allocate first. The
buffer arguments are contiguous 1-D (or 2-D C-contiguous) float32/float64 arrays; the two float
buffers of one call share a dtype.
"""

from typing import Any, Dict, Iterator, Literal, NoReturn, Optional, Tuple, TypeVar, Union

import numpy as np
import numpy.typing as npt

_Float = TypeVar("_Float", np.float32, np.float64)
_FloatArray = npt.NDArray[Union[np.float32, np.float64]]
_MaskMode = Literal["identity", "recompute", "bits", "bytes"]

BLOCK: int
"""Elements per generator block (4096): blocks are seeded from (seed, block index)."""
CHUNK: int
"""Elements per unit of parallel work."""

def isas() -> list[str]: ...
def current_isa() -> str: ...
def set_isa(name: Optional[str] = None) -> Optional[str]: ...
def seed_key(seed: int) -> int: ...
def threshold(keep: float) -> int: ...
def mix64(z: int) -> int: ...
def scale(thr: int) -> float: ...
def forward(
    x: npt.NDArray[_Float],
    y: npt.NDArray[_Float],
    seed: int,
    offset: int,
    thr: int,
    scale: float,
    bits: Optional[npt.NDArray[np.uint8]] = None,
    bytes_: Optional[npt.NDArray[np.uint8]] = None,
    n_threads: int = 1,
) -> None: ...
def backward(
    dy: npt.NDArray[_Float],
    dx: npt.NDArray[_Float],
    mask: npt.NDArray[np.uint8],
    is_bits: bool,
    scale: float,
    n_threads: int = 1,
) -> None: ...
def mask(
    n: int,
    seed: int,
    offset: int,
    thr: int,
    bits: Optional[npt.NDArray[np.uint8]] = None,
    bytes_: Optional[npt.NDArray[np.uint8]] = None,
    n_threads: int = 1,
) -> None: ...
def bias_relu_dropout(
    z: npt.NDArray[_Float],
    b: npt.NDArray[_Float],
    a: npt.NDArray[_Float],
    seed: int,
    offset: int,
    thr: int,
    scale: float,
    n_threads: int = 1,
) -> None: ...
def forward_half(
    x: npt.NDArray[np.uint16],
    y: npt.NDArray[np.uint16],
    seed: int,
    offset: int,
    thr: int,
    scale: float,
    bits: Optional[npt.NDArray[np.uint8]] = None,
    bytes_: Optional[npt.NDArray[np.uint8]] = None,
    n_threads: int = 1,
    bf16: bool = False,
) -> None: ...
def backward_half(
    dy: npt.NDArray[np.uint16],
    dx: npt.NDArray[np.uint16],
    mask: npt.NDArray[np.uint8],
    is_bits: bool,
    scale: float,
    n_threads: int = 1,
    bf16: bool = False,
) -> None: ...
def bias_relu_dropout_half(
    z: npt.NDArray[np.uint16],
    b: npt.NDArray[np.float32],
    a: npt.NDArray[np.uint16],
    seed: int,
    offset: int,
    thr: int,
    scale: float,
    n_threads: int = 1,
    bf16: bool = False,
) -> None: ...
def bias_relu_dropout_backward(
    da: npt.NDArray[_Float],
    a: npt.NDArray[_Float],
    dz: npt.NDArray[_Float],
    db: npt.NDArray[_Float],
    scale: float,
) -> None: ...
def bias_relu_dropout_backward_half(
    da: npt.NDArray[np.uint16],
    a: npt.NDArray[np.uint16],
    dz: npt.NDArray[np.uint16],
    db: npt.NDArray[np.float32],
    scale: float,
    bf16: bool = False,
) -> None: ...

class DropoutCache:
    """What cydrop.dropout_backward needs from a forward call; made only by cydrop."""

    def __init__(self, *args: object, **kwargs: object) -> NoReturn: ...

    @property
    def rate(self) -> float: ...
    @property
    def seed(self) -> Optional[int]: ...
    @property
    def offset(self) -> Optional[int]: ...
    @property
    def threshold(self) -> int: ...
    @property
    def scale(self) -> float: ...
    @property
    def shape(self) -> Tuple[int, ...]: ...
    @property
    def dtype(self) -> np.dtype: ...
    @property
    def mask_mode(self) -> _MaskMode: ...
    @property
    def stored_mask(self) -> Optional[npt.NDArray[np.uint8]]: ...
    @property
    def dropout_param(self) -> Optional[Dict[str, Any]]: ...
    @property
    def nbytes(self) -> int: ...
    def keep_mask(self) -> npt.NDArray[np.uint8]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]:
        """CS231n's unpacking: ``dropout_param, mask = cache`` (mask built on demand)."""
    def __getitem__(self, index: int) -> Any: ...

def make_cache(
    rate: float,
    seed: Optional[int],
    offset: Optional[int],
    threshold: int,
    scale: float,
    shape: Tuple[int, ...],
    dtype: np.dtype,
    mask_mode: str,
    stored_mask: Optional[npt.NDArray[np.uint8]],
) -> DropoutCache: ...
def restore_cache(
    rate: object,
    seed: object,
    offset: object,
    threshold: object,
    scale: object,
    shape: object,
    dtype: object,
    mask_mode: object,
    stored_mask: object,
    dropout_param: object = None,
) -> DropoutCache: ...
def with_dropout_param(
    cache: DropoutCache, dropout_param: Optional[Dict[str, Any]]
) -> DropoutCache: ...
def fast_forward(
    x: object,
    rate: object,
    seed: object,
    offset: object,
    out: object,
    mask: object,
    n_threads: object,
    mask_out: object = None,
) -> Optional[Tuple[_FloatArray, DropoutCache]]: ...
def fast_backward(
    dout: object, cache: object, out: object, n_threads: object
) -> Optional[_FloatArray]: ...
