"""The package's layering: who may import whom, no import cycles, no oversized modules.

Every Python module under cydrop/ is parsed (function bodies included: an import inside a
function is an import) and put in a group by where it lives, so modules added later are covered
without being listed here:

    extensions < contract < op < face < nn < interop < compat < apps

* extensions: the compiled ``_kernels``, ``_openmp``, ``_variants``;
* contract: ``_contract``, ``_validation``, ``_seeds``;
* op: the op layer, ``_cache``, ``_common``, ``_core``, ``_cs231n``, ``_shard``,
  ``_variant_params``, ``_variants_*``, ``fused``, ``variants``, ``residual``, ``attention``,
  ``blocks``,
  ``_feature_alpha``;
* face: the package ``cydrop`` itself (``cydrop/__init__.py``);
* nn: ``cydrop/nn/``;
* interop: ``cydrop/interop/``, which imports the op layer only;
* compat: ``cydrop/compat/``;
* apps: ``cydrop/apps/``, ``cydrop/__main__.py``.

A module may import its own group and the groups below it. The test oracles
(``cydrop/testing/``) import the op layer and below, and nothing in cydrop imports them except
the alias ``cydrop.reference*`` modules; each alias module (``cydrop.torch``, ``cydrop.dask``,
``cydrop.reference``, ``cydrop.reference_variants``, and the deprecated ``cydrop.variants_layers``,
``cydrop.cli``, ``cydrop.experiments``, ``cydrop.data``) imports its target only.
"""

import ast
import json
import pathlib

import pytest

import cydrop

from helpers import run_python

PKG_DIR = pathlib.Path(cydrop.__file__).resolve().parent
MAX_LINES = 500

EXTENSIONS = {"cydrop._kernels", "cydrop._openmp", "cydrop._variants", "cydrop._modern"}
CONTRACT = {"cydrop._contract", "cydrop._validation", "cydrop._seeds"}
OP = {"cydrop._cache", "cydrop._common", "cydrop._core", "cydrop._cs231n", "cydrop._shard",
      "cydrop._variant_params", "cydrop._variants_misc", "cydrop._variants_nd",
      "cydrop._variants_noise", "cydrop._variants_out", "cydrop.fused", "cydrop.variants",
      "cydrop.residual", "cydrop.attention", "cydrop.blocks",
      "cydrop._feature_alpha"}
ALIASES = {"cydrop.torch": "cydrop.interop.torch", "cydrop.dask": "cydrop.interop.dask",
           "cydrop.reference": "cydrop.testing.reference",
           "cydrop.reference_variants": "cydrop.testing.reference_variants",
           # deprecated aliases of modules that moved in 0.2
           "cydrop.variants_layers": "cydrop.nn", "cydrop.cli": "cydrop.apps.cli",
           "cydrop.experiments": "cydrop.apps.experiments", "cydrop.data": "cydrop.apps.data"}
RANK = {"extensions": 0, "contract": 1, "op": 2, "face": 3, "nn": 4, "interop": 5,
        "compat": 6, "apps": 7}
# The one lazy import of the package face: the attribute cydrop.reference (bound by
# `import cydrop` in 0.1) imports the alias module on first access.
LAZY_COMPAT_IMPORTS = {("cydrop", "cydrop.reference")}


def _in(module, package):
    return module == package or module.startswith(package + ".")


def group(module):
    """The layer a cydrop module belongs to (None: unclassified)."""
    if module in EXTENSIONS:
        return "extensions"
    if module in CONTRACT:
        return "contract"
    if module in OP:
        return "op"
    if module == "cydrop":
        return "face"
    if module in ALIASES:
        return "alias"
    if _in(module, "cydrop.testing"):
        return "testing"
    if _in(module, "cydrop.nn"):
        return "nn"
    if _in(module, "cydrop.interop"):
        return "interop"
    if _in(module, "cydrop.compat"):
        return "compat"
    if _in(module, "cydrop.apps") or module == "cydrop.__main__":
        return "apps"
    return None


def python_modules():
    """{module name: (path, is_package)} for every .py file under cydrop/."""
    found = {}
    for path in sorted(PKG_DIR.rglob("*.py")):
        parts = list(path.relative_to(PKG_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _resolve(name, known):
    """The cydrop module a dotted import target names: itself or its longest known prefix."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _literal_import(call):
    """The module of ``importlib.import_module("x")`` / ``__import__("x")`` with a literal."""
    f = call.func
    named = (isinstance(f, ast.Attribute) and f.attr == "import_module") or (
        isinstance(f, ast.Name) and f.id in ("import_module", "__import__"))
    if named and call.args and isinstance(call.args[0], ast.Constant) \
            and isinstance(call.args[0].value, str):
        return call.args[0].value
    return None


def imports_of(module, path, is_package, known):
    """The cydrop modules ``module`` imports anywhere in its source (parent packages of a
    target included, except the top-level package every submodule import loads)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    base = module if is_package else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                source = f"{anchor}.{node.module}" if node.module else anchor
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                     for alias in node.names]
        elif isinstance(node, ast.Call):
            literal = _literal_import(node)
            names = [literal] if literal else []
        for name in names:
            if not _in(name, "cydrop"):
                continue
            target = _resolve(name, known)
            if target and target != "cydrop":
                targets.add(target)                   # the module named ...
            parent = target.rpartition(".")[0] if target else ""
            while parent and parent != "cydrop":
                # ... and the packages it loads first, except the importer's own ancestors:
                # they are loaded before the importer runs (a sibling import is no cycle)
                if not _in(module, parent):
                    targets.add(parent)
                parent = parent.rpartition(".")[0]
            if name == "cydrop" or _resolve(name, known) == "cydrop":
                targets.add("cydrop")
    targets.discard(module)
    return targets


@pytest.fixture(scope="module")
def graph():
    modules = python_modules()
    known = set(modules) | EXTENSIONS
    return {m: imports_of(m, path, is_pkg, known) for m, (path, is_pkg) in modules.items()}


def test_every_module_is_in_a_layer(graph):
    unclassified = sorted(m for m in graph if group(m) is None)
    assert not unclassified, (f"modules in no layer (add them to a group in this test): "
                              f"{unclassified}")


def _allowed(importer, target):
    gi, gt = group(importer), group(target)
    if (importer, target) in LAZY_COMPAT_IMPORTS:
        return True
    if gi == "alias":
        goal = ALIASES[importer]
        home = goal if goal.count(".") == 1 else goal.rpartition(".")[0]
        # its target, the target's parent packages, and modules beside the target
        return _in(goal, target) or _in(target, home)
    if gt == "testing":
        return gi == "testing"                # only the aliases (above) and the oracles
    if gt == "alias":
        return False                          # the aliases are for users, not for cydrop
    if gi == "testing":
        return RANK[gt] <= RANK["op"]
    if gi == "interop":
        return gt == "interop" or RANK[gt] <= RANK["op"]
    if gt is None or gi is None:
        return False
    return RANK[gt] <= RANK[gi]


def test_imports_go_down_the_layers(graph):
    wrong = sorted(f"{m} ({group(m)}) imports {t} ({group(t)})"
                   for m, targets in graph.items() for t in targets if not _allowed(m, t))
    assert not wrong, "imports against the layering:\n" + "\n".join(wrong)


def test_no_import_cycles(graph):
    # Tarjan's strongly connected components over the import graph
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue                      # an extension module: imports nothing of ours
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_op_layer_imports_only_downward(graph):
    # The op layer is the root every other layer stands on: it never imports the package face,
    # the trainer, the adapters, the oracles or the apps, not even inside a function.
    for m in sorted(CONTRACT | OP):
        above = sorted(t for t in graph.get(m, ()) if group(t) not in ("extensions", "contract",
                                                                          "op"))
        assert not above, f"{m} imports {above}"


def test_no_module_is_longer_than_500_lines():
    long = {str(path.relative_to(PKG_DIR.parent)): n
            for path in PKG_DIR.rglob("*.py")
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_import_cydrop_loads_no_oracle():
    code = ("import json, sys, cydrop; print(json.dumps(sorted(m for m in sys.modules if "
            "m.startswith(('cydrop.testing', 'cydrop.reference', 'cydrop.nn', "
            "'cydrop.interop')))))")
    proc = run_python(["-c", code])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_the_layering_test_sees_imports_inside_functions(tmp_path):
    # the checker itself: a function-level import is an import
    src = tmp_path / "m.py"
    src.write_text("def f():\n    import cydrop.nn\n    from cydrop import variants\n"
                   "    return __import__('cydrop.testing')\n")
    known = {"cydrop", "cydrop.nn", "cydrop.variants", "cydrop.testing"}
    assert imports_of("cydrop.fused", src, False, known) == {"cydrop.nn", "cydrop.variants",
                                                               "cydrop.testing"}
