"""The contention benchmark (cydrop/apps/contention.py): its load, its bookkeeping and its
table. Timings are printed by the benchmark, never asserted here."""
import numpy as np
import pytest

from cydrop import _parallel
from cydrop.apps import contention


def test_busy_processes_run_inside_the_block_and_are_gone_after():
    with contention.BusyProcesses(2) as busy:
        procs = list(busy.procs)
        assert len(procs) == 2
        assert all(p.poll() is None for p in procs)        # spinning
    assert all(p.poll() is not None for p in procs)        # killed and reaped
    with contention.BusyProcesses(0) as none:
        assert none.procs == []


def test_measure_returns_medians_for_every_load_size_and_implementation():
    states = []
    was = _parallel.load_feedback()["enabled"]
    sizes = (("1K", 1 << 10), ("200K", 200_000))
    results = contention.measure(sizes, busy=[0, 1], repeat=3, threads=2,
                                 progress=states.append)
    assert list(results) == [0, 1]
    for by_size in results.values():
        assert list(by_size) == ["1K", "200K"]
        for cells in by_size.values():
            assert set(cells) == {"cydrop forward", "cydrop forward, no load feedback"}
            for default, one in cells.values():
                assert default > 0 and one > 0
    assert len(states) == 4
    assert _parallel.load_feedback()["enabled"] == was     # the caller's setting is back


def test_table_is_default_over_one_thread_per_load():
    results = {0: {"64K": {"cydrop forward": (1e-5, 2e-5)}},
               1: {"64K": {"cydrop forward": (3e-5, 2e-5)}}}
    text = contention.table(results, sizes=(("64K", 1 << 16),))
    assert "0 busy process(es)" in text and "1 busy process(es)" in text
    assert "| cydrop forward | 0.50x (20 us) |" in text
    assert "| cydrop forward | 1.50x (20 us) |" in text


def test_run_writes_the_report(tmp_path, capsys):
    contention.run(sizes=(("1K", 1 << 10),), busy=[0], repeat=2, report=str(tmp_path))
    printed = capsys.readouterr().out
    written = (tmp_path / "contention.md").read_text()
    assert "| implementation | 1K |" in written
    assert written.strip() in printed


def test_torch_anchors_run_at_both_thread_counts():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    results = contention.measure((("4K", 4096),), busy=[0], repeat=2, threads=2, torch=torch)
    cells = results[0]["4K"]
    assert {"torch F.dropout", "torch.mul(out=)"} <= set(cells)
    assert all(np.isfinite(v).all() for v in cells.values())
    assert torch.get_num_threads() == before


def test_cydrop_bench_contention_runs_the_contention_table(monkeypatch, tmp_path, capsys):
    from cydrop.apps import bench, cli

    seen = {}
    monkeypatch.setattr(contention, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(bench, "_torch", lambda threads: None)
    assert cli.main(["bench", "--contention", "--threads", "1", "--report", str(tmp_path)]) == 0
    assert seen == {"repeat": 40, "threads": 1, "torch": None, "report": str(tmp_path)}
    assert cli.main(["bench", "--contention", "--repeat", "5"]) == 0
    assert seen["repeat"] == 5
    with pytest.raises(SystemExit):
        cli.main(["bench", "--contention", "--repeat", "0"])
    assert "--repeat must be >= 1, got 0" in capsys.readouterr().err
