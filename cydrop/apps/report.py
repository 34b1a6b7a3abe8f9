"""Helpers the apps share to report results: plain-text tables and optional plotting."""

import numpy as np

__all__ = ["format_table", "require_matplotlib", "MissingExtraError"]


class MissingExtraError(ImportError):
    """An optional dependency (an extra of cydrop) is not installed."""


def require_matplotlib():
    """Import matplotlib's object-oriented ``Figure`` or explain the extra.

    Returns
    -------
    Figure : type
        :class:`matplotlib.figure.Figure` (no pyplot, no GUI backend).

    Raises
    ------
    MissingExtraError
        If matplotlib is not installed; the message names ``cydrop[plot]``.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(
            "plotting needs matplotlib; install it with pip install 'cydrop[plot]' "
            "(or pip install matplotlib)"
        ) from exc
    return Figure


def format_table(headers, rows):
    """Format rows as a plain-text table with aligned columns.

    Parameters
    ----------
    headers : sequence of str
    rows : sequence of sequence
        Floats are shown with 4 decimals, None as ``-``.

    Returns
    -------
    text : str

    Examples
    --------
    >>> print(format_table(["a", "b"], [[1, 0.5], ["x", None]]))
    a  b
    -  ------
    1  0.5000
    x  -
    """
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, (float, np.floating)):
            return f"{v:.4f}"
        return str(v)

    text_rows = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in text_rows]
    return "\n".join(lines)
