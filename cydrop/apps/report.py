"""Helpers the apps share to report results: plain-text tables, optional plotting, and the
JSON benchmark records (with the machine they were measured on) that the docs quote."""

import datetime
import importlib.metadata
import json
import os
import platform

import numpy as np

__all__ = ["format_table", "require_matplotlib", "MissingExtraError", "cpu_model", "machine",
           "write_record"]


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


def cpu_model():
    """The CPU's model name from ``/proc/cpuinfo`` (or what :mod:`platform` knows)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads=None, torch=None):
    """The machine and software a benchmark ran on, as a JSON-ready dict.

    Parameters
    ----------
    threads : int or None
        The thread count the benchmark used (None: not recorded).
    torch : module or None
        PyTorch if the benchmark used it; otherwise its installed version is looked up without
        importing it.

    Returns
    -------
    record : dict
        CPU model, cores (all and usable), the ISA variant cydrop runs, OpenMP, thread count,
        cydrop, NumPy, PyTorch and Python versions, platform and the UTC date.
    """
    import cydrop

    usable = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count())
    if torch is not None:
        torch_version = torch.__version__
    else:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "isa": cydrop.current_isa(), "openmp": bool(cydrop.openmp_enabled()),
            "threads": threads, "cydrop": cydrop.__version__, "numpy": np.__version__,
            "torch": torch_version, "python": platform.python_version(),
            "platform": platform.platform(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def write_record(path, name, command, data, threads=None, torch=None):
    """Write a benchmark record: ``{"record", "command", "machine", "data"}`` as JSON.

    Parameters
    ----------
    path : str
        The JSON file to write (its directory must exist).
    name : str
        The record's name (``bench``, ``contention``, ...).
    command : str
        The command that measured it.
    data : dict
        The measurements (JSON-ready: str keys, numbers, lists).
    threads, torch
        As for :func:`machine`.

    Returns
    -------
    record : dict
        What was written.
    """
    record = {"record": name, "command": command, "machine": machine(threads, torch),
              "data": data}
    _write_json(path, record)
    return record


def write_run(path, data, threads=None, torch=None):
    """Write one benchmark script's run as JSON: ``data`` with its ``machine`` added.

    Parameters
    ----------
    path : str
        The JSON file to write.
    data : dict
        The run's measurements (JSON-ready); gains the key ``"machine"``.
    threads, torch
        As for :func:`machine`.
    """
    data["machine"] = machine(threads, torch)
    _write_json(path, data)


def _write_json(path, obj):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=1, sort_keys=False)
        fh.write("\n")
