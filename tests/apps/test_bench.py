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


@pytest.mark.parametrize("n", [1, 7, 33, 4095, 4096, 4097, 300_001])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("isa", _floor.isas())
def test_stream_scale_writes_the_mask_traffic_of_the_forward(n, n_threads, isa):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    x[::7] = -0.0                                    # a sign bit without a negative value
    y = np.full_like(x, np.nan)
    bits = np.full((n + 7) // 8, 0xAA, np.uint8)     # every byte is written, the last too
    keep = np.full(n, 7, np.uint8)
    assert _floor.stream_scale(x, y, np.float32(1.5), n_threads, mask_bits=bits,
                               mask_bytes=keep, isa=isa) == 0
    np.testing.assert_array_equal(y, x * np.float32(1.5))
    sign = np.signbit(x).astype(np.uint8)
    np.testing.assert_array_equal(keep, sign)                        # n bytes, 0/1
    np.testing.assert_array_equal(bits, np.packbits(sign, bitorder="little"))   # n / 8 bytes


@pytest.mark.parametrize("n", [1, 9, 4096, 300_001])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("isa", _floor.isas())
def test_stream_scale_reads_the_mask_of_the_backward(n, n_threads, isa):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    mask = np.random.default_rng(n + 1).integers(0, 256, n, dtype=np.uint8)
    # every byte read is folded into the result: the XOR of all of them
    assert (_floor.stream_scale(x, y, 2.0, n_threads, read_bytes=mask, isa=isa)
            == np.bitwise_xor.reduce(mask))
    np.testing.assert_array_equal(y, x * np.float32(2))
    packed = mask[:(n + 7) // 8]
    assert (_floor.stream_scale(x, y, 2.0, n_threads, read_bits=packed, isa=isa)
            == np.bitwise_xor.reduce(packed))


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
    y = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match=r"mask_bits: must have 2 bytes, got 10"):
        _floor.stream_scale(x, y, 1.0, 1, mask_bits=np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match=r"mask_bytes: must have 10 bytes, got 2"):
        _floor.stream_scale(x, y, 1.0, 1, mask_bytes=np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match=r"read_bits: must have 2 bytes, got 3"):
        _floor.stream_scale(x, y, 1.0, 1, read_bits=np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=r"read_bytes: must have 10 bytes, got 9"):
        _floor.stream_scale(x, y, 1.0, 1, read_bytes=np.zeros(9, np.uint8))
    with pytest.raises(ValueError, match=r"read_bits, read_bytes: give at most one"):
        _floor.stream_scale(x, y, 1.0, 1, read_bits=np.zeros(2, np.uint8),
                            read_bytes=np.zeros(10, np.uint8))
    with pytest.raises(ValueError, match=r"isa: must be one of"):
        _floor.stream_scale(x, y, 1.0, 1, isa="avx9")


def test_mode_pairs_compute_what_their_mode_computes():
    n = 5000
    pairs = _bench.mode_pairs(n, 1)
    assert [mode for mode, _, _ in pairs] == _bench.MODES
    for mode, ours, floor in pairs:
        assert mode in _bench.FLOOR_OF
        ours()
        floor()                              # runs: same buffers, same arguments as timed


def test_floor_ratios_cover_every_isa_thread_count_and_mode():
    isas = _kernels.isas()
    before = _kernels.current_isa()
    res = _bench.floor_ratios([("1K", 1024), ("5000", 5000)], (1, 2), [*isas, None], repeat=1,
                              budget=0)
    assert _kernels.current_isa() == before                 # the active ISA is restored
    names = [*isas, before]
    assert set(res) == {(i, t, m, label) for i in names for t in (1, 2) for m in _bench.MODES
                        for label in ("1K", "5000")}
    for (_, _, _, label), (ours, floor, n) in res.items():
        assert n == {"1K": 1024, "5000": 5000}[label]
        assert np.isfinite(ours) and ours > 0 and np.isfinite(floor) and floor > 0
    text = _bench.floor_table(res)
    assert text.startswith("| ISA | threads | mode | floor traffic | 1K | 5000 |")
    for i in isas:
        for m in _bench.MODES:
            ours, floor, _ = res[(i, 2, m, "1K")]
            assert f"| {i} | 2 | {m} | {_bench.FLOOR_OF[m]} | {ours / floor:.2f} |" in text
    ns = _bench.ns_table(res, 1)
    ours, floor, n = res[(isas[0], 1, "backward bits", "5000")]
    assert f"| {isas[0]} | backward bits | " in ns
    assert f"{ours / n * 1e9:.3f} / {floor / n * 1e9:.3f} |" in ns
    assert "| 2 |" not in ns


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
    assert _bench.main(["--sizes", "1K", "--repeat", "1", "--floors", "1K",
                        "--report", str(tmp_path)]) == 0
    text = (tmp_path / "bench.md").read_text()
    printed_header = capsys.readouterr().out.split("\n", 1)[0]
    assert text.startswith(f"# cydrop benchmark\n\n{printed_header}\n\n")
    for field in ("CPU: ", "cores: ", "ISA: " + _kernels.current_isa(), "OpenMP: "):
        assert field in text
    names = [name for name, _ in _bench.implementations(8, np.dtype(np.float32), 1)]
    for name in names:
        assert f"| {name} | " in text
    assert "| cydrop forward out= | " in text and "(1.00x)" in text
    assert "## Every mode against its matched floor" in text and "## Per ISA, 1 thread" in text
    for isa in ("baseline", "avx2"):
        if isa in _kernels.isas():
            assert f"| {isa} | 1 | forward bits | + write n/8 bytes | " in text
            assert f"| {isa} | backward bytes | " in text
    scaled = cydrop.effective_n_threads(None) > 1 and cydrop.openmp_enabled()
    assert ("Thread scaling, 4,194,304 float32 elements" in text) == scaled
    if importlib.util.find_spec("matplotlib") is not None:
        png = tmp_path / "bench.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 1000
