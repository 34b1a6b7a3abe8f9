"""The published mask contract, in Python: the one place outside C that defines it.

Its C twin is ``src/cydrop_rng.h`` (``cydrop_mix64``, ``cydrop_seed_key``, ``cydrop_threshold``,
``cydrop_scale``); tests/core/test_contract.py checks the two agree. Everything in cydrop's Python
code that needs a threshold, a scale, the splitmix64 mix or a 64-bit bound takes it from here:
the ops, the caches' validators, the adapters and the NumPy reference twins.

The contract
------------
* A drop probability ``rate`` in [0, 1] keeps an element when its 16 random bits are below
  ``threshold = round((1 - rate) * 65536)`` (an integer in [0, 65536], computed in double);
  kept elements are multiplied by ``scale = 65536 / threshold``, the exact inverse of the
  realised keep probability (0 when nothing is kept).
* Seeds are integers in [0, 2**64); element indices are 64-bit, so ``offset + size <= 2**64``
  (``per * (offset + size) <= 2**64`` for an op that reads ``per`` draws per element).
* Keys derive from splitmix64's output function ``mix64`` and its increment ``GOLDEN``.
"""

__all__ = [
    "BLOCK",
    "GOLDEN",
    "INDEX_LIMIT",
    "THRESHOLD_ONE",
    "UINT64_MAX",
    "mix64",
    "seed_key",
    "threshold",
    "threshold_and_scale",
]

BLOCK = 4096                     # elements per independently seeded block (CYDROP_BLOCK)
GOLDEN = 0x9E3779B97F4A7C15      # splitmix64's increment (CYDROP_GOLDEN)
THRESHOLD_ONE = 65536            # the threshold that keeps everything: 16 random bits per element
INDEX_LIMIT = 2**64              # seeds lie in [0, INDEX_LIMIT); offset + size <= INDEX_LIMIT
UINT64_MAX = INDEX_LIMIT - 1
_MASK64 = UINT64_MAX


def mix64(z):
    """splitmix64's output function, a bijection of uint64 (``cydrop_mix64``)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def seed_key(seed):
    """The key every block of ``seed`` derives from: ``mix64(seed + GOLDEN)``."""
    return mix64(seed + GOLDEN)


def threshold(keep):
    """``round(keep * 65536)`` in double, for a keep probability in [0, 1]
    (``cydrop_threshold``)."""
    return int(float(keep) * 65536.0 + 0.5)


def threshold_and_scale(rate):
    """``(threshold, scale)`` of the drop probability ``rate`` in [0, 1].

    ``threshold = round((1 - rate) * 65536)`` and ``scale = 65536 / threshold`` (0.0 when the
    threshold is 0), as Python int and float. The caller has validated ``rate``.
    """
    thr = threshold(1.0 - float(rate))
    return thr, (65536.0 / thr if thr else 0.0)
