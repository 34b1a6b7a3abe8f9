"""The benchmark harness behind ``python -m cydrop bench``: its floor kernel and its report.

Only what the harness computes and writes is checked here; timings are never asserted (speed
belongs in bench/).
"""

import importlib.util
import os

import numpy as np
import pytest

import cydrop
from cydrop import _floor, _kernels
from cydrop.apps import bench as _bench


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 300_001])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_stream_scale_is_x_times_s(n, n_threads):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = np.full_like(x, np.nan)
    _floor.stream_scale(x, y, np.float32(1.5), n_threads)
    np.testing.assert_array_equal(y, x * np.float32(1.5))


def test_stream_scale_errors_name_the_argument():
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match=r"y: must have x's 10 elements, got 9"):
        _floor.stream_scale(x, np.zeros(9, np.float32), 1.0, 1)
    with pytest.raises(ValueError, match=r"n_threads: must be >= 1, got 0"):
        _floor.stream_scale(x, np.zeros(10, np.float32), 1.0, 0)
    buf = np.arange(20, dtype=np.float32)
    with pytest.raises(ValueError, match=r"y: must not overlap x"):
        _floor.stream_scale(buf[:10], buf[5:15], 1.0, 1)
    np.testing.assert_array_equal(buf, np.arange(20, dtype=np.float32))   # untouched


def test_thread_scaling_reports_both_speedups():
    threads, ours, floor, best = _bench.thread_scaling(1 << 16, threads=2, repeat=1)
    assert threads == cydrop.effective_n_threads(2)
    assert list(best) == ["cydrop forward, 1 thread", f"cydrop forward, {threads} threads",
                          "floor: scale, 1 thread", f"floor: scale, {threads} threads"]
    times = list(best.values())
    assert all(np.isfinite(t) and t > 0 for t in times)
    assert ours == pytest.approx(times[0] / times[1])
    assert floor == pytest.approx(times[2] / times[3])
    text = _bench.scaling_text(1 << 16, (threads, ours, floor, best))
    assert f"1 -> {threads} threads: cydrop forward {ours:.2f}x" in text
    assert f"floor (same chunks and threads, no generator) {floor:.2f}x" in text


def test_report_has_header_rows_ratios_and_scaling(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CYDROP_BENCH_NO_TORCH", "1")
    assert _bench.main(["--sizes", "1K", "--repeat", "1", "--report", str(tmp_path)]) == 0
    text = (tmp_path / "bench.md").read_text()
    printed_header = capsys.readouterr().out.split("\n", 1)[0]
    assert text.startswith(f"# cydrop benchmark\n\n{printed_header}\n\n")
    for field in ("CPU: ", "cores: ", "ISA: " + _kernels.current_isa(), "OpenMP: "):
        assert field in text
    names = [name for name, _ in _bench.implementations(8, np.dtype(np.float32), 1)]
    for name in names:
        assert f"| {name} | " in text
    assert "| cydrop forward out= | " in text and "(1.00x)" in text
    scaled = cydrop.effective_n_threads(None) > 1 and cydrop.openmp_enabled()
    assert ("Thread scaling, 4,194,304 float32 elements" in text) == scaled
    if importlib.util.find_spec("matplotlib") is not None:
        png = tmp_path / "bench.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 1000
