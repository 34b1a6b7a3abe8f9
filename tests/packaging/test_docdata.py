"""The documentation's numbers come from the committed benchmark records (docs/_data).

Checked here, without measuring anything slow: every figure, table and machine line the pages
ask for exists in the records; every record names the machine it was measured on; the README's
generated speed section is what the generator writes from the records; the Sphinx extension
stops the build on a key the records do not hold; and the bench commands write the records.
"""

import json
import pathlib
import re

import pytest

from cydrop.apps import benchdata, docdata

from helpers import run_python

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
DATA = DOCS / "_data"

# The records and pages live in the checkout (and in CI's docs stage); a copy of tests/ run
# against an installed wheel, outside any checkout, has neither.
pytestmark = pytest.mark.skipif(not (DATA / "bench.json").is_file(),
                                reason=f"needs the checkout's benchmark records ({DATA})")

ROLE = re.compile(r"\{benchnum\}`([^`]+)`")
DIRECTIVE = re.compile(r"^```\{(benchtable|benchmachine)\}\s+(\S+)\s*$", re.M)


def _pages():
    return sorted(DOCS.glob("*.md"))


@pytest.fixture(scope="module")
def records():
    found = benchdata.load_records(str(DATA))
    assert set(found) == set(benchdata.RECORDS), "docs/_data misses a record"
    return found


def test_the_pages_use_the_records():
    used = {page.name for page in _pages()
            if ROLE.search(page.read_text(encoding="utf-8"))
            or DIRECTIVE.search(page.read_text(encoding="utf-8"))}
    assert {"performance.md", "training.md", "courses.md", "threads.md", "variants.md"} <= used


def test_every_key_the_pages_use_exists(records):
    figures, tables = benchdata.figures(records), benchdata.tables(records)
    missing = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for key in ROLE.findall(text):
            if key not in figures:
                missing.append(f"{page.name}: {{benchnum}}`{key}`")
            elif not benchdata.figure(figures, key).strip():
                missing.append(f"{page.name}: {key} renders empty")
        for kind, name in DIRECTIVE.findall(text):
            if kind == "benchmachine":
                ok = name in records
            elif ":" in name:
                ok = name in tables
            else:
                ok = any(k.startswith(name + ":") for k in tables)
            if not ok:
                missing.append(f"{page.name}: {kind} {name}")
    assert not missing, "\n".join(missing)


def test_the_records_name_a_machine(records):
    for name, record in records.items():
        assert record["record"] == name
        assert record["command"].strip()
        machine = record["machine"]
        assert machine["cpu"].strip(), name
        assert isinstance(machine["cores"], int) and machine["cores"] > 0
        for field in ("isa", "numpy", "cydrop", "python", "date"):
            assert str(machine[field]).strip(), (name, field)
        line = benchdata.machine_line(record)
        assert machine["cpu"] in line and machine["isa"] in line and record["command"] in line


def test_the_readme_block_is_current():
    assert docdata.readme_is_current(str(DATA), str(ROOT / "README.md")), (
        "README's speed section differs from the records: run "
        "python -m cydrop.apps.docdata --readme-only")


def test_the_readme_block_is_rewritten_between_its_markers(records, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{benchdata.README_START}\nstale 9.99x\n{benchdata.README_END}\n"
                      "after\n", encoding="utf-8")
    assert not docdata.readme_is_current(str(DATA), str(readme))
    assert docdata.write_readme(str(DATA), str(readme))
    text = readme.read_text(encoding="utf-8")
    assert "stale" not in text and text.endswith(f"{benchdata.README_END}\nafter\n")
    ratio = benchdata.figure(benchdata.figures(records), "bench:ratio.1M.cs231n_form")
    assert f" {ratio.rstrip('x')} |" in text           # the README's table of ratios
    assert docdata.readme_is_current(str(DATA), str(readme))
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bench:start"):
        docdata.write_readme(str(DATA), str(readme))


@pytest.mark.parametrize("value, unit, text", [
    (2.3141, "x", "2.31x"), (37.43, "x", "37.4x"), (231.4, "x", "231x"),
    (1.25e-5, "s", "12.5 us"), (0.00123, "s", "1.23 ms"), (6.84, "s", "6.84 s"),
    (0.1554, "ns", "0.155 ns"), (3.81, "%", "3.8%"), (0.8, "+%", "+0.8%"),
    (65536, "int", "65,536"), ("256K", "str", "256K"),
    ((0.96, 1.04, "x"), "range", "0.96-1.04x"), ((1.0, 1.0, "x"), "range", "1.00x"),
])
def test_format_value(value, unit, text):
    assert benchdata.format_value(value, unit) == text


def test_a_missing_key_is_an_error_naming_it(records):
    figures = benchdata.figures(records)
    with pytest.raises(benchdata.BenchDataError, match="bench:ratio.1M.no_such_impl"):
        benchdata.figure(figures, "bench:ratio.1M.no_such_impl")
    with pytest.raises(benchdata.BenchDataError, match="record 'nosuch' not found"):
        benchdata.figure(figures, "nosuch:key")


def _sphinx(tmp_path, body):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(DOCS / '_ext')!r})\n"
        "extensions = ['myst_parser', 'benchnum']\n"
        f"benchdata_dir = {str(DATA)!r}\n", encoding="utf-8")
    (src / "index.md").write_text(f"# t\n\n{body}\n", encoding="utf-8")
    # the cydrop under test (an installed one, or this checkout built in place), never an
    # unbuilt checkout that happens to be the working directory
    return run_python(["-m", "sphinx", "-W", "-q", "-b", "html", str(src), str(tmp_path / "out")],
                      timeout=300)


def test_the_extension_renders_the_records(tmp_path, records):
    pytest.importorskip("myst_parser")
    result = _sphinx(tmp_path, "Ratio {benchnum}`bench:ratio.1M.cs231n_form`.\n\n"
                               "```{benchmachine} bench\n```\n\n```{benchtable} courses\n```\n")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    figures = benchdata.figures(records)
    assert benchdata.figure(figures, "bench:ratio.1M.cs231n_form") in html
    assert records["bench"]["machine"]["cpu"] in html
    assert "dropout steps" in html


@pytest.mark.parametrize("body, message", [
    ("{benchnum}`bench:ratio.1M.no_such_impl`",
     "no benchmark figure 'bench:ratio.1M.no_such_impl'"),
    ("```{benchtable} bench:no_such_table\n```", "no benchmark table 'bench:no_such_table'"),
    ("```{benchmachine} nosuch\n```", "no benchmark record 'nosuch'"),
])
def test_the_extension_fails_the_build_on_a_missing_key(tmp_path, body, message):
    pytest.importorskip("myst_parser")
    result = _sphinx(tmp_path, body)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert "index.md" in result.stderr + result.stdout


def test_bench_report_writes_the_json_record(tmp_path, monkeypatch):
    from cydrop.apps import bench

    monkeypatch.setenv("CYDROP_BENCH_NO_TORCH", "1")
    assert bench.main(["--sizes", "1K", "--floors", "64K", "--repeat", "1", "--threads", "1",
                       "--report", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert record["record"] == "bench" and "--report" in record["command"]
    assert record["machine"]["threads"] == 1
    figures = benchdata.figures({"bench": record})
    assert figures["bench:ratio.1K.cydrop_forward_out"] == (1.0, "x")
    assert "bench:floor.baseline.1.forward_recompute.64K" in figures
    assert "bench:floors" in benchdata.tables({"bench": record})


def test_contention_report_writes_the_json_record(tmp_path, capsys):
    from cydrop.apps import contention

    contention.run(sizes=(("1K", 1 << 10),), busy=[0], repeat=2, threads=1,
                   report=str(tmp_path))
    record = json.loads((tmp_path / "contention.json").read_text(encoding="utf-8"))
    assert record["record"] == "contention" and record["data"]["repeat"] == 2
    figures = benchdata.figures({"contention": record})
    assert figures["contention:busy_max"] == (0, "int")
    assert "contention:ratio.busy0.1K.cydrop_forward" in figures
    assert "contention:busy0" in benchdata.tables({"contention": record})


def test_docdata_check_and_its_usage_errors(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert docdata.main(["--check"]) == 0
    assert "current" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        docdata.main(["--only", "bench,nosuch"])
    assert "unknown record(s) ['nosuch']" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the modern record

MODERN_FIGURES = ["add.1.vs_floor", "add.1.vs_numpy", "add.team.vs_floor", "add.team.vs_numpy",
                  "transformer.cydrop.share", "transformer.numpy.share",
                  "transformer.torch.share", "transformer.cydrop.vs_numpy",
                  "transformer.cydrop.vs_torch"]
MODERN_OPS = ["drop_path", "softmax_dropout", "softmax_dropout_backward", "drop_block",
              "feature_alpha_dropout", "spatial_dropout_nhwc"]


def test_the_modern_record_has_its_figures_and_tables(records):
    data = records["modern"]["data"]
    figures, tables = benchdata.figures(records), benchdata.tables(records)
    for key in MODERN_FIGURES:
        assert f"modern:{key}" in figures, key
    res, tr = data["residual"], data["transformer"]
    team = str(max(res["threads"]))
    assert figures["modern:add.team.vs_floor"] == figures[f"modern:add.{team}.vs_floor"]
    row = res["times"]["1"]
    assert figures["modern:add.1.vs_floor"] == (
        row["cydrop dropout_add"] / row["floor stream_add"], "x")
    assert figures["modern:add.1.vs_numpy"] == (res["numpy"] / row["cydrop dropout_add"], "x")
    r = tr["results"]
    assert figures["modern:transformer.cydrop.vs_numpy"] == (
        r["numpy"]["train"] / r["cydrop"]["train"], "x")
    assert figures["modern:transformer.numpy.share"] == (100 * r["numpy"]["share"], "%")
    headers, _, rows, note = tables["modern:residual"]
    assert len(rows) == 2 * len(res["times"]) + 1 and f"{res['n']:,}" in note
    headers, _, rows, note = tables["modern:transformer"]
    assert [row[0] for row in rows] == list(r) and "dropout share" in headers
    assert all(str(v) in note for v in tr["shape"].values())
    ops = data["ops"]
    assert sorted(ops["ops"]) == sorted(MODERN_OPS)
    for op, rec in ops["ops"].items():
        t = rec["times"]
        assert figures[f"modern:ops.{op}.cydrop"] == (t["cydrop"], "s")
        assert figures[f"modern:ops.{op}.vs_numpy"] == (t["numpy"] / t["cydrop"], "x")
        assert (f"modern:ops.{op}.vs_torch" in figures) == ("torch" in t)
    headers, _, rows, note = tables["modern:ops"]
    assert headers[0] == "op" and [row[0] for row in rows] == list(ops["ops"])
    assert f"{ops['repeat']} samples" in note and "round-robin" in note


def test_the_committed_modern_record_says_how_it_was_run(records):
    command = records["modern"]["command"]
    assert "bench/bench_residual.py" in command and "bench/bench_transformer.py" in command
    assert "bench/bench_modern_ops.py" in command
    # a --quick trial run says so; a real one names neither a small size nor --quick
    assert ("--quick" in command) == ("--size" in command or "--shape" in command)


def test_modern_figures_alias_team_only_above_one_thread():
    from cydrop.apps import benchdata_modern

    res = {"n": 8, "size": "8", "repeat": 1, "numpy": 4.0, "rate": 0.1,
           "times": {"1": {"cydrop dropout_add": 2.0, "floor stream_add": 1.0}}}
    out = {}
    benchdata_modern.modern_figures({"residual": res}, out)
    assert out["add.1.vs_floor"] == (2.0, "x") and out["add.1.vs_numpy"] == (2.0, "x")
    assert not any(k.startswith("add.team.") for k in out)
    res["times"]["4"] = {"cydrop dropout_add": 0.5, "floor stream_add": 0.5}
    benchdata_modern.modern_figures({"residual": res}, out)
    assert out["add.team.threads"] == (4, "int") and out["add.team.vs_numpy"] == (8.0, "x")


def test_modern_ops_figures_and_table_from_a_synthetic_record():
    from cydrop.apps import benchdata_modern

    ops = {"repeat": 2, "threads": 4, "torch": None, "ops": {
        "drop_path": {"shape": [8, 16], "rate": 0.1, "times": {"cydrop": 1.0, "numpy": 3.0}},
        "drop_block": {"shape": [2, 2, 8, 8], "rate": 0.1, "block_size": 3,
                       "times": {"cydrop": 2.0, "numpy": 4.0, "torch": 8.0}}}}
    out, tables = {}, {}
    benchdata_modern.modern_figures({"ops": ops}, out)
    benchdata_modern.modern_tables({"ops": ops}, tables)
    assert out["ops.drop_path.vs_numpy"] == (3.0, "x") and out["ops.drop_path.cydrop"] == (1.0, "s")
    assert "ops.drop_path.vs_torch" not in out              # no torch row, no figure
    assert out["ops.drop_block.vs_torch"] == (4.0, "x") and out["ops.threads"] == (4, "int")
    headers, _, rows, note = tables["ops"]
    assert headers == ["op", "shape", "cydrop", "NumPy", "torch", "NumPy / cydrop",
                       "torch / cydrop"]
    assert rows[0][0] == "drop_path" and rows[0][4] == "" and rows[0][5] == "3.00x"
    assert rows[1][1] == "2 x 2 x 8 x 8" and rows[1][6] == "4.00x"
    assert "torch did not import" in note and "block_size 3" in note
    # an older record, without the ops part, renders what it has
    out, tables = {}, {}
    res = {"n": 8, "size": "8", "repeat": 1, "numpy": 4.0, "rate": 0.1,
           "times": {"1": {"cydrop dropout_add": 2.0, "floor stream_add": 1.0}}}
    benchdata_modern.modern_figures({"residual": res}, out)
    benchdata_modern.modern_tables({"residual": res}, tables)
    assert not any(k.startswith("ops.") for k in out) and set(tables) == {"residual"}


def test_docdata_only_modern_writes_the_record(tmp_path, monkeypatch):
    """``python -m cydrop.apps.docdata --only modern --quick`` runs both bench scripts (here at
    an even smaller size and shape) and writes modern.json; the README block is untouched."""
    import shutil

    (tmp_path / "docs" / "_data").mkdir(parents=True)
    for name in benchdata.RECORDS:
        if name != "modern":
            shutil.copy(DATA / f"{name}.json", tmp_path / "docs" / "_data")
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(docdata, "ROOT", str(ROOT))        # where bench/ is
    monkeypatch.setattr(docdata, "MODERN_QUICK", {
        "residual": ["--size", "64K", "--repeat", "1", "--threads", "2"],
        "transformer": ["--rounds", "1", "--shape", "1,16,16,2", "--threads", "1"],
        "ops": ["--quick", "--repeat", "1", "--threads", "1"]})
    assert docdata.main(["--only", "modern", "--quick"]) == 0
    record = json.loads((tmp_path / "docs" / "_data" / "modern.json").read_text("utf-8"))
    assert record["record"] == "modern" and "--quick" in record["command"]
    assert "--size 64K" in record["command"] and record["machine"]["cpu"].strip()
    data = record["data"]
    assert data["residual"]["n"] == 1 << 16 and data["residual"]["threads"] == [1, 2]
    assert data["transformer"]["shape"] == {"batch": 1, "sequence": 16, "width": 16,
                                            "heads": 2}
    assert "machine" in data["residual"] and "machine" in data["transformer"]
    assert data["ops"]["threads"] == 1 and data["ops"]["repeat"] == 1
    assert sorted(data["ops"]["ops"]) == sorted(MODERN_OPS) and "machine" in data["ops"]
    figures = benchdata.figures({"modern": record})
    for key in MODERN_FIGURES:
        if "torch" not in key or "torch" in data["transformer"]["results"]:
            assert f"modern:{key}" in figures, key
    for op in MODERN_OPS:
        assert f"modern:ops.{op}.vs_numpy" in figures, op
    assert {"modern:residual", "modern:transformer", "modern:ops"} <= set(
        benchdata.tables({"modern": record}))
    assert (tmp_path / "README.md").read_text("utf-8") == (ROOT / "README.md").read_text("utf-8")
