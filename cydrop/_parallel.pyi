"""Type stubs for cydrop._parallel (cydrop/_parallel.pyx): the chunk runner's policy."""

MIN_WORK: int
"""Work (in dropout-forward elements) below which a kernel call runs on the calling thread."""

def uses_threads(work: int, n_threads: int) -> bool: ...
