"""The examples in cydrop's docstrings run and print what they say."""

import doctest

import pytest

import cydrop._core
import cydrop._cs231n
import cydrop._seeds
import cydrop.fused


@pytest.mark.parametrize("module", [cydrop._core, cydrop._cs231n, cydrop._seeds, cydrop.fused],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
