"""The text forms shared by the benchmark records' renderers (:mod:`cydrop.apps.benchdata` and
:mod:`cydrop.apps.benchdata_modern`): a row's key form, ratios and seconds. Imports nothing of
cydrop, so both renderers import it without importing each other in a cycle."""

import math
import re

__all__ = ["slug"]


def slug(name):
    """``'cydrop forward out='`` -> ``'cydrop_forward_out'``: the key form of a row's name."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).lower()).strip("_")


def _sig3(v):
    """Three significant digits, thousands separated: 0.0123, 1.23, 12.3, 123, 1,234."""
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    decimals = max(0, 2 - math.floor(math.log10(abs(v))))
    return f"{v:,.{decimals}f}"


def _ratio(v):
    """Two decimals under 10, one under 100, none above: 0.96, 8.56, 37.4, 231."""
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}" if abs(v) < 100 else f"{v:,.0f}"


def _seconds(v):
    for scale, unit in ((1e-6, "us"), (1e-3, "ms")):
        if abs(v) < scale * 1000:
            return f"{_sig3(v / scale)} {unit}"
    return f"{_sig3(v)} s"
