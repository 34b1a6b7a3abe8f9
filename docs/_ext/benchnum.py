"""Sphinx extension: the documentation's numbers come from the benchmark records.

The records are the JSON files of ``docs/_data/`` (``python -m cydrop.apps.docdata`` writes
them); :mod:`cydrop.apps.benchdata` turns them into named figures and tables. In MyST pages:

* ``{benchnum}`bench:ratio.1M.numpy_generator_form``` renders one figure inside prose
  (``37.4x``, ``1.23 ms``, ``0.96-1.04x``);
* a ``benchtable`` directive with ``contention`` renders every table of a record, with
  ``bench:floors`` one table;
* a ``benchmachine`` directive with ``bench`` prints the sentence naming the machine, software,
  date and command of a record.

A key, table or record that the records do not hold stops the build with an error naming it and
the page (never an empty string). ``benchdata_dir`` (default: ``_data`` beside ``conf.py``)
says where the records are.
"""

import os

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective, SphinxRole

from cydrop.apps import benchdata


class BenchDataMissing(ExtensionError):
    """A figure, table or record the benchmark records do not hold."""

    category = "Benchmark data error"


def _data(env):
    """(records, figures, tables, paths) of the build, loaded once per build."""
    app = env.app
    cached = getattr(app, "_benchnum_data", None)
    if cached is None:
        directory = os.path.join(app.confdir, app.config.benchdata_dir)
        records = benchdata.load_records(directory)
        paths = [os.path.join(directory, f"{name}.json") for name in records]
        cached = (records, benchdata.figures(records), benchdata.tables(records), paths)
        app._benchnum_data = cached
    return cached


def _missing(env, lineno, what):
    where = f"{env.doc2path(env.docname)}:{lineno}" if lineno else env.docname
    directory = os.path.join(env.app.confdir, env.app.config.benchdata_dir)
    raise BenchDataMissing(f"{where}: {what} (records read from {directory}; regenerate them "
                           f"with python -m cydrop.apps.docdata)")


def _depend(env):
    for path in _data(env)[3]:
        env.note_dependency(path)


class BenchNumRole(SphinxRole):
    """``{benchnum}`record:key``` -> the figure's text."""

    def run(self):
        key = self.text.strip()
        _, figures, _, _ = _data(self.env)
        try:
            text = benchdata.figure(figures, key)
        except benchdata.BenchDataError as exc:
            _missing(self.env, self.lineno, str(exc))
        if not text:
            _missing(self.env, self.lineno, f"benchmark figure {key!r} renders empty")
        _depend(self.env)
        return [nodes.inline(self.rawtext, text, classes=["benchnum"])], []


def _table_node(table):
    headers, aligns, rows, note = table
    tnode = nodes.table(classes=["benchtable"])
    group = nodes.tgroup(cols=len(headers))
    tnode += group
    for _ in headers:
        group += nodes.colspec(colwidth=1)

    def row_node(cells):
        row = nodes.row()
        for cell, align in zip(cells, aligns):
            entry = nodes.entry(classes=["text-right", "text-end"] if align == "r" else [])
            entry += nodes.paragraph(text=str(cell))
            row += entry
        return row

    thead = nodes.thead()
    thead += row_node(headers)
    tbody = nodes.tbody()
    for cells in rows:
        tbody += row_node(cells)
    group += thead
    group += tbody
    return [tnode, nodes.paragraph(text=note, classes=["benchtable-note"])]


class BenchTableDirective(SphinxDirective):
    """A ``benchtable`` directive with ``record:table``, or ``record`` for all its tables."""

    required_arguments = 1
    option_spec = {"class": directives.class_option}

    def run(self):
        name = self.arguments[0].strip()
        records, _, tables, _ = _data(self.env)
        if ":" in name:
            keys = [name] if name in tables else []
        else:
            keys = [k for k in tables if k.split(":", 1)[0] == name]
        if not keys:
            have = ", ".join(sorted(tables)) or "none"
            _missing(self.env, self.lineno, f"no benchmark table {name!r} (tables: {have})")
        _depend(self.env)
        out = []
        for key in keys:
            table = tables[key]
            if isinstance(table, str):
                out.append(nodes.literal_block(table, table, language="console"))
            else:
                out.extend(_table_node(table))
        return out


class BenchMachineDirective(SphinxDirective):
    """A ``benchmachine`` directive with a record's name: the machine, software and command."""

    required_arguments = 1

    def run(self):
        name = self.arguments[0].strip()
        records = _data(self.env)[0]
        if name not in records:
            _missing(self.env, self.lineno, f"no benchmark record {name!r} "
                                            f"(records: {', '.join(sorted(records)) or 'none'})")
        _depend(self.env)
        para = nodes.paragraph(classes=["benchmachine"])
        for i, part in enumerate(benchdata.machine_line(records[name]).split("`")):
            para += nodes.literal(part, part) if i % 2 else nodes.Text(part)
        return [para]


def setup(app):
    app.add_config_value("benchdata_dir", "_data", "env")
    app.add_role("benchnum", BenchNumRole())
    app.add_directive("benchtable", BenchTableDirective)
    app.add_directive("benchmachine", BenchMachineDirective)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
