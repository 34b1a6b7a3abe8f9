"""The examples in cydrop's docstrings run and print what they say.

Every module of the package whose source holds a ``>>>`` example is found and run with doctest,
so an example added anywhere (the API reference shows them all) is checked without a list to
keep up to date. Modules of an optional dependency that is not installed are skipped.
"""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import cydrop

OPTIONAL = {"cydrop.interop.torch": "torch", "cydrop.torch": "torch",
            "cydrop.interop.dask": "dask", "cydrop.dask": "dask"}
# deprecated aliases of other modules (the same module object): their examples run under the
# module they alias
ALIASES = {"cydrop.torch", "cydrop.dask", "cydrop.reference", "cydrop.reference_variants",
           "cydrop.cli", "cydrop.experiments", "cydrop.data", "cydrop.variants_layers"}


def _modules_with_examples():
    root = Path(cydrop.__file__).parent
    found = []
    for info in pkgutil.walk_packages([str(root)], prefix="cydrop."):
        if info.name in ALIASES or info.name == "cydrop.__main__":
            continue
        stem = info.name.split(".")[1:]
        source = root.joinpath(*stem)
        source = source / "__init__.py" if info.ispkg else source.with_suffix(".py")
        if source.is_file() and ">>>" in source.read_text(encoding="utf-8"):
            found.append(info.name)
    return sorted(found)


MODULES = _modules_with_examples()


def test_examples_are_found():
    # the op layer, the trainer and the adapters all carry examples
    for name in ("cydrop._core", "cydrop.fused", "cydrop.variants", "cydrop.nn.mc",
                 "cydrop.interop.dask", "cydrop.interop.torch"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name in OPTIONAL:
        pytest.importorskip(OPTIONAL[name])
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
