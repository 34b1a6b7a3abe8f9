"""CS231n assignment 2's ``cs231n`` package on cydrop's kernels.

Change ``from cs231n.X import Y`` to ``from cydrop.compat.cs231n.X import Y``; everything else in
the notebooks stays as it is. Modules: :mod:`~cydrop.compat.cs231n.layers`,
:mod:`~cydrop.compat.cs231n.layer_utils`, :mod:`~cydrop.compat.cs231n.classifiers.fc_net`,
:mod:`~cydrop.compat.cs231n.solver`, :mod:`~cydrop.compat.cs231n.optim` and
:mod:`~cydrop.compat.cs231n.gradient_check`. The dataset loaders (``data_utils``) and the
convolution layers are not part of it; see docs/courses.md.
"""
