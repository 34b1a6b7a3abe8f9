"""Course drop-ins: course code runs on cydrop's kernels with one import line changed.

* :mod:`cydrop.compat.cs231n`: Stanford CS231n assignment 2's ``cs231n`` package (``layers``,
  ``layer_utils``, ``classifiers.fc_net``, ``solver``, ``optim``, ``gradient_check``).
* :mod:`cydrop.compat.nnfs`: the classes of *Neural Networks from Scratch* (nnfs.io) up to
  chapter 15 (``Layer_Dropout``), ``init()`` and ``datasets.spiral_data``.
* :mod:`cydrop.compat.d2l`: d2l.ai's ``dropout_layer(X, dropout)`` for torch tensors and NumPy
  arrays.

Randomness at this boundary follows the courses: an unseeded call draws its cydrop seed from the
course's global generator (NumPy's ``np.random`` for CS231n and nnfs, torch's for d2l tensors),
one draw per call, never reseeding it; weights and minibatches come from ``np.random`` as in the
course. cydrop's own API never reads global random state. See docs/courses.md.
"""
