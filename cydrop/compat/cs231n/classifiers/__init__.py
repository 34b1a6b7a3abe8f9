"""CS231n's ``classifiers`` package: :mod:`~cydrop.compat.cs231n.classifiers.fc_net`."""
