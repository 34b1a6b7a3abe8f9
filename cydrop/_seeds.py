"""Seeds and offsets: where every mask's randomness comes from.

Nothing in cydrop reads or advances NumPy's global random state. A missing seed is drawn from
the operating system's entropy source; a :class:`SeedStream` hands out reproducible
(seed, offset) pairs whose masks never overlap.
"""

import hashlib
import operator
import secrets
import threading

from cydrop import _validation
from cydrop._contract import BLOCK, INDEX_LIMIT

__all__ = ["SeedStream", "derive_seed", "fresh_seed"]


def fresh_seed():
    """A new 64-bit seed from the operating system's entropy (``secrets.randbits``)."""
    return secrets.randbits(64)


def resolve_seed(seed, name="seed"):
    """``seed`` checked as a uint64, or a fresh one when it is None."""
    return fresh_seed() if seed is None else _validation.check_uint64(seed, name)


def _key_bytes(key, name):
    """One key of :func:`derive_seed` as tagged, length-prefixed bytes (so no two keys collide)."""
    if isinstance(key, str):
        tag, data = b"s", key.encode("utf-8")
    elif isinstance(key, bytes):
        tag, data = b"b", key
    else:
        if isinstance(key, bool) or not hasattr(key, "__index__"):
            raise TypeError(f"{name} must be a str, bytes or int, got {key!r} of type "
                            f"{type(key).__name__}")
        key = operator.index(key)
        tag, data = b"i", key.to_bytes(key.bit_length() // 8 + 1, "little", signed=True)
    return tag + len(data).to_bytes(8, "little") + data


def derive_seed(seed, *keys):
    """The seed named by ``keys`` under ``seed``: a stable 64-bit hash of both.

    Use it to give each layer, module, rank or process its own seed from one base seed, by
    name rather than by order: a seed derived from ``(seed, "encoder.3.dropout")`` does not
    change when a layer is added elsewhere. The result depends only on the arguments
    (BLAKE2b with an 8-byte digest over a tagged, length-prefixed encoding), so it is the same
    on every machine, Python version and run, and ``("ab",)``, ``("a", "b")``, ``(1,)`` and
    ``("1",)`` all name different seeds.

    Parameters
    ----------
    seed : int
        The base seed, ``0 <= seed < 2**64``.
    *keys : str, bytes or int
        The name of the derived seed, e.g. a module's qualified name, ``"dp"`` and a rank.
        No keys gives a seed that still differs from ``seed`` itself.

    Returns
    -------
    int
        The derived seed, ``0 <= result < 2**64``.

    Raises
    ------
    TypeError
        If ``seed`` is not an int, or a key is not a str, bytes or int (bools are refused).
    ValueError
        If ``seed`` is outside [0, 2**64).

    See Also
    --------
    SeedStream : successive non-overlapping (seed, offset) pairs from one seed.

    Examples
    --------
    >>> import cydrop
    >>> a = cydrop.derive_seed(42, "dp", 0)
    >>> b = cydrop.derive_seed(42, "dp", 1)
    >>> a != b and a == cydrop.derive_seed(42, "dp", 0)
    True
    """
    seed = _validation.check_uint64(seed, "seed")
    h = hashlib.blake2b(digest_size=8, person=b"cydrop.seed")
    h.update(seed.to_bytes(8, "little"))
    for i, key in enumerate(keys):
        h.update(_key_bytes(key, f"keys[{i}]"))
    return int.from_bytes(h.digest(), "little")


class SeedStream:
    """SeedStream(seed=None)

    A reproducible source of (seed, offset) pairs for successive dropout calls.

    Every mask in cydrop is a pure function of (seed, global element index). A stream keeps one
    seed and hands out disjoint ranges of global indices, so each call gets a fresh mask, and the
    same stream seed replays the same sequence of masks. Ranges start on a 4096-element block
    boundary, the fastest place for a mask to start.

    Parameters
    ----------
    seed : int or None, default=None
        ``0 <= seed < 2**64``. ``None`` draws one from the operating system's entropy; read it
        back from ``stream.seed`` to replay the stream.

    Attributes
    ----------
    seed : int
        The stream's seed.
    offset : int
        The global index the next call starts at.

    See Also
    --------
    cydrop.dropout : takes the ``seed`` and ``offset`` a stream returns.

    Examples
    --------
    >>> import numpy as np, cydrop
    >>> stream = cydrop.SeedStream(42)
    >>> x = np.ones(10, dtype=np.float32)
    >>> seed, offset = stream.next(x.size)
    >>> (seed, offset)
    (42, 0)
    >>> stream.next(x.size)
    (42, 4096)
    """

    __slots__ = ("_seed", "_offset", "_lock")

    def __init__(self, seed=None):
        self._seed = resolve_seed(seed)
        self._offset = 0
        self._lock = threading.Lock()

    @property
    def seed(self):
        return self._seed

    @property
    def offset(self):
        return self._offset

    def next(self, size):
        """Reserve ``size`` elements of the mask field; return ``(seed, offset)`` for them.

        Parameters
        ----------
        size : int
            Number of elements the call will use (``x.size``), ``size >= 0``.

        Returns
        -------
        seed, offset : int
            Pass both to :func:`cydrop.dropout`.

        Raises
        ------
        OverflowError
            If the stream's 2**64 indices are used up.
        """
        size = _validation.check_uint64(size, "size")
        step = -(-size // BLOCK) * BLOCK
        with self._lock:
            offset = self._offset
            if offset + size > INDEX_LIMIT:
                raise OverflowError(
                    f"SeedStream(seed={self._seed}) has used all 2**64 indices; start a new "
                    f"stream with another seed")
            self._offset = offset + step
        return self._seed, offset

    def get_state(self):
        """The stream's state as a dict ``{'seed': int, 'offset': int}``."""
        with self._lock:
            return {"seed": self._seed, "offset": self._offset}

    def set_state(self, state):
        """Restore a state returned by :meth:`get_state`.

        Parameters
        ----------
        state : dict
            ``{'seed': int, 'offset': int}``, as :meth:`get_state` returns it.
        """
        if not isinstance(state, dict) or set(state) != {"seed", "offset"}:
            raise ValueError(
                f"state must be a dict with keys 'seed' and 'offset', got {state!r}")
        seed = _validation.check_uint64(state["seed"], "state['seed']")
        offset = _validation.check_uint64(state["offset"], "state['offset']")
        with self._lock:
            self._seed, self._offset = seed, offset

    def __repr__(self):
        return f"SeedStream(seed={self._seed}, offset={self._offset})"
