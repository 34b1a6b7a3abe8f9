"""``cydrop bench --half``: float16 and bfloat16 dropout against float32 and a copy floor.

Every row is timed round-robin in one run with :mod:`cydrop.apps.bench`'s sampler, so the
ratios compare like with like: each 16-bit forward and backward against float32's forward at
the same size and thread count, and against a matched floor with the same bytes (the STREAM
scale of :func:`cydrop._floor.stream_scale` over half as many float32 elements, on the same
threads). ``torch.nn.functional.dropout`` on float16 and bfloat16 CPU tensors runs beside them
when torch is installed; bfloat16 rows need ml_dtypes (``pip install 'cydrop[bf16]'``).
"""

import numpy as np

from cydrop import _core
from cydrop._floor import stream_scale

FLOOR = "16-bit floor (same bytes)"
F32 = "float32 forward out="


def _bfloat16():
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def implementations(n, threads, torch=None):
    """(name, callable) pairs for one size: float32, float16 and bfloat16 forward and backward,
    the 16-bit floor and torch's 16-bit dropout."""
    x32 = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y32 = np.empty_like(x32)
    xf, yf = x32[: max(1, n // 2)].copy(), np.empty(max(1, n // 2), np.float32)
    impls = [(F32, lambda: _core.dropout(x32, 0.5, seed=1, out=y32, n_threads=threads)),
             (FLOOR, lambda: stream_scale(xf, yf, 2.0, threads))]
    formats = [("float16", np.dtype(np.float16), "float16")]
    bf16 = _bfloat16()
    if bf16 is not None:
        formats.append(("bfloat16", bf16, "bfloat16"))
    for name, dt, tname in formats:
        x = x32.astype(dt)
        y = np.empty_like(x)
        _, c_rec = _core.dropout(x, 0.5, seed=1)
        _, c_bits = _core.dropout(x, 0.5, seed=1, mask="bits")
        impls += [
            (f"{name} forward out=",
             lambda x=x, y=y: _core.dropout(x, 0.5, seed=1, out=y, n_threads=threads)),
            (f"{name} backward recompute",
             lambda x=x, y=y, c=c_rec: _core.dropout_backward(x, c, out=y, n_threads=threads)),
            (f"{name} backward bits",
             lambda x=x, y=y, c=c_bits: _core.dropout_backward(x, c, out=y,
                                                               n_threads=threads)),
        ]
        if torch is not None:
            tx = torch.from_numpy(x32).to(getattr(torch, tname))
            impls.append((f"torch F.dropout {name}",
                          lambda tx=tx: torch.nn.functional.dropout(tx, 0.5, True)))
    return impls


def measure(sizes, threads, repeat, round_robin, torch=None):
    """{size_label: {name: seconds}} over ``sizes`` ((label, n) pairs), each size timed by
    ``round_robin(impls, n, repeat, budget)`` (:mod:`cydrop.apps.bench`'s sampler)."""
    return {label: round_robin(implementations(n, threads, torch), n, repeat, 2.0)
            for label, n in sizes}


def table(results, threads):
    """Markdown: per size and row, the time, its ratio to float32's forward and to the floor."""
    lines = [f"## float16 and bfloat16, {threads} thread(s)", "",
             "| size | implementation | time | / float32 forward | / 16-bit floor |",
             "| --- | --- | ---: | ---: | ---: |"]
    for label, res in results.items():
        for name, t in res.items():
            lines.append(f"| {label} | {name} | {t * 1e6:,.1f} us | {t / res[F32]:.2f}x | "
                         f"{t / res[FLOOR]:.2f}x |")
    lines += ["", "The floor is a STREAM scale over the same bytes on the same threads; the "
              "targets are <= 0.55x of float32 and <= 1.05x of the floor for the "
              "cydrop 16-bit rows."]
    return "\n".join(lines)
