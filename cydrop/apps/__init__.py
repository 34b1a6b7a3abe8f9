"""Applications on top of the library: the ``cydrop`` command and what it runs.

* :mod:`cydrop.apps.cli`: ``cydrop`` / ``python -m cydrop`` (``train``, ``experiment``,
  ``bench``): parses the arguments and calls one of the jobs below;
* :mod:`cydrop.apps.train`: the training job of ``cydrop train``;
* :mod:`cydrop.apps.experiments`: the classroom dropout experiments (nnfs, CS231n, d2l);
* :mod:`cydrop.apps.data`: offline datasets (spiral, digits, MNIST IDX files);
* :mod:`cydrop.apps.report`: plain-text tables and optional plotting;
* :mod:`cydrop.apps.bench`: the dropout kernel benchmarks.

The library (:mod:`cydrop.nn`, the ops, the adapters) never imports these modules.
"""
