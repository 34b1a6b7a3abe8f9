"""cydrop's test oracles: pure-NumPy twins of every kernel, bit for bit.

* :mod:`cydrop.testing.reference`: the core mask and dropout (``keep_mask``, ``dropout``,
  ``dropout_backward``, ``threshold_and_scale``).
* :mod:`cydrop.testing.reference_variants`: the dropout variants.
* :mod:`cydrop.testing.reference_modern`: ``dropout_add``, ``drop_path``, ``softmax_dropout``
  and ``drop_block``.
* :mod:`cydrop.testing.reference_feature_alpha`: ``feature_alpha_dropout``.

All take ``rate``, the drop probability, as :func:`cydrop.dropout` does. They are slow and meant
for tests and for anyone who wants to check a mask without trusting the C. ``import cydrop`` does
not load them; nothing in cydrop imports them (``cydrop.reference`` is an alias of
:mod:`cydrop.testing.reference`).
"""

__all__ = ["reference", "reference_variants", "reference_modern", "reference_feature_alpha"]
