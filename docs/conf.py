"""Sphinx configuration of cydrop's documentation site.

Build (from the repository root, with the ``docs`` extra installed):

    sphinx-build -W --keep-going -b html docs docs/_build/html

cydrop is imported as installed (or from ``PYTHONPATH``); nothing here adds the source tree to
``sys.path``, because an unbuilt checkout has no compiled extensions.
"""

import os

# The gallery's networks are small: BLAS threads would only contend with the dropout kernels'
# OpenMP team on a small build machine (set before NumPy loads; a user's setting wins).
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import importlib.util  # noqa: E402
import sys  # noqa: E402

import cydrop  # noqa: E402

# docs/_ext: the benchnum extension renders the benchmark records of docs/_data (written by
# python -m cydrop.apps.docdata) into the pages, so no figure is typed by hand.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

# The API reference documents the PyTorch and Dask adapters from their code, so both libraries
# must be importable here (they stay optional for cydrop itself).
for _dep, _extra in (("torch", "torch"), ("dask", "dask")):
    if importlib.util.find_spec(_dep) is None:
        raise RuntimeError(f"the documentation documents cydrop.interop.{_dep}: install {_dep} "
                           f"(pip install \".[docs,{_extra}]\")")

project = "cydrop"
author = "the cydrop developers"
copyright = "the cydrop developers, BSD-3-Clause"  # noqa: A001
version = release = cydrop.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "benchnum",
]
benchdata_dir = "_data"      # the benchmark records, relative to this file

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_data", "_ext", "examples/GALLERY_HEADER.rst",
                    "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip",
                    "auto_examples/*.md5", "auto_examples/*.codeobj.json"]

# ---- checks: every cross-reference must resolve ----------------------------------------------
nitpicky = True
# Types named in signatures and docstrings that live outside cydrop (no network at build time,
# so no inventories of other projects are fetched): rendered as text, not links.
nitpick_ignore_regex = [
    ("py:(class|func|meth|mod|obj)", r"(numpy|np|torch|dask|collections\.abc|typing|math)(\..*)?"),
    # private base classes named by "Bases:" lines (the public protocol is documented instead)
    ("py:class", r"cydrop\.(.+\.)?_\w+(\..*)?"),
    ("py:class", r"cydrop\.nn\.fc_net\.FullyConnectedNetBase"),
    ("py:class", r"(int|float|bool|str|bytes|tuple|list|dict|object|type|slice|callable)"),
    ("py:class", r"(ndarray|array_like|array-like|optional|None|sequence|iterable|file-like)"),
    ("py:exc", r"(ValueError|TypeError|ImportError|RuntimeError|OverflowError|IndexError)"),
    ("py:(obj|class|exc)", r"(Exception|ArithmeticError|ValueError|TypeError)"),
]

# ---- MyST: the Markdown pages of docs/ and the README sections included in the guide ----------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = []

# ---- API reference: autosummary pages from each public module's __all__ ----------------------
autosummary_generate = True
autosummary_ignore_module_all = False     # a module's public names are its __all__, nothing else
autosummary_imported_members = False
autodoc_typehints = "none"                # numpydoc's Parameters sections carry the types
autodoc_default_options = {"member-order": "bysource"}
add_module_names = False

numpydoc_show_class_members = False       # the class template lists the public members
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = True
# Checked on every documented object; a failure is a build warning, so -W makes it an error.
#   GL08: no docstring (an undocumented public name)
#   GL06/GL07: unknown or misordered section   SS01: no summary line
#   PR01: a parameter left out                 PR02: a documented parameter that does not exist
#   PR10: "name: type" without the space       RT01: no Returns section on a function that returns
numpydoc_validation_checks = {"GL06", "GL07", "GL08", "SS01", "PR01", "PR02", "PR10"}
# A docstring that says its parameters are another function's is not asked to repeat them, nor
# is the class docstring of a cache that only cydrop constructs.
numpydoc_validation_overrides = {
    "PR01": [r"Parameters (and returns )?as :func:", r"Same as\s+``dropout_nd\(",
             r"made\s+only by cydrop"],
}
# PR01 (every parameter documented) is not asked of the test oracles, whose arguments are
# those of the op each one mirrors, nor of the nnfs.io classes, whose arguments are the book's.
RELAXED_PR01 = (os.sep + os.path.join("cydrop", "testing") + os.sep,
                os.sep + os.path.join("cydrop", "compat", "nnfs") + os.sep)
numpydoc_validation_exclude = {
    # torch's hooks, documented by torch: the repr hook and autograd's Function(*args, **kwargs)
    r"\.extra_repr$",
    r"^cydrop\.interop\.torch\.DropoutFunction(\.forward|\.backward)?$",
    # overrides of the cache protocol's members: the page shows the protocol's docstring
    r"^cydrop\.(fused\.FusedCache|variants\.VariantCache|interop\.dask\.DaskDropoutCache)\."
    r"(keep_mask|mask_shape|nbytes)$",
    # Solver(model, data, **kwargs), the course's signature: every keyword is documented
    r"^cydrop\.nn\.Solver$",
    # the course's own signature, Solver(model, data, **kwargs): every keyword is documented
    r"^cydrop\.compat\.cs231n\.solver\.Solver$",
    r"\.__init__$",        # documented on the class
    r"\.__call__$",
    r"\.__repr__$",
}


def _def_line_or_none(fget):
    """numpydoc looks for a ``def`` or ``class`` line in an object's source to report where a
    docstring failed; a property made from a lambda or an itemgetter has none, and the lookup
    raises StopIteration instead of returning no line. Report no line for those."""
    def source_file_def_line(self):
        try:
            return fget(self)
        except StopIteration:
            return None
    return property(source_file_def_line)


def _relaxed(validate):
    def validate_with_relaxed_pr01(doc, *args, **kwargs):
        report = validate(doc, *args, **kwargs)
        if any(part in (report.get("file") or "") for part in RELAXED_PR01):
            report["errors"] = [e for e in report["errors"] if e[0] != "PR01"]
        return report
    return validate_with_relaxed_pr01


import numpydoc.numpydoc  # noqa: E402
import numpydoc.validate  # noqa: E402

numpydoc.validate.Validator.source_file_def_line = _def_line_or_none(
    numpydoc.validate.Validator.source_file_def_line.fget)
numpydoc.numpydoc.validate = _relaxed(numpydoc.numpydoc.validate)

# ---- examples gallery: every script runs at build time ----------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "min_reported_time": 0,
    "image_scrapers": ("matplotlib",),
    "matplotlib_animations": False,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
    "write_computation_times": True,
}
os.environ.setdefault("MPLBACKEND", "Agg")

# ---- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"cydrop {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": [],
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}


def _resolve_reexported(app, env, node, contnode):
    """Resolve a Python cross-reference written inside a submodule to the public name it is
    documented under: ``Sequential`` in :mod:`cydrop.nn.solver` is :class:`cydrop.nn.Sequential`,
    and ``cydrop.nn.mc.mc_predict`` is :func:`cydrop.nn.mc_predict`. Only a name documented in
    a parent package resolves; anything else stays a broken reference (a warning)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    module = node.get("py:module") or ""
    packages = []
    parts = module.split(".") if module else []
    while parts:
        packages.append(".".join(parts))
        parts.pop()
    candidates = [f"{package}.{target}" for package in packages]
    if target.startswith("cydrop."):
        head, _, name = target.rpartition(".")
        owner = head.split(".")
        while len(owner) > 1:
            owner.pop()
            candidates.append(".".join(owner) + "." + name)
    domain = env.get_domain("py")
    if not module:
        # a summary line quoted in a table outside any module: the one documented name that
        # ends in the target, taking the public spelling (fewest dots) when a class is
        # also known under its defining module
        matches = [name for name in domain.objects if name.endswith("." + target)]
        fewest = [m for m in matches if m.count(".") == min(n.count(".") for n in matches)]
        if len(fewest) == 1:
            candidates.append(fewest[0])
    for full in candidates:
        if full in domain.objects:
            return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], full,
                                       node, contnode)
    return None


def setup(app):
    app.connect("missing-reference", _resolve_reexported)

