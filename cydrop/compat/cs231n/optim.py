"""CS231n's update rules, ``rule(w, dw, config=None) -> (next_w, config)``.

These are :mod:`cydrop.nn.optim`'s functions (one implementation), with the assignment's
defaults: ``sgd`` (learning_rate 1e-2), ``sgd_momentum`` (momentum 0.9), ``rmsprop``
(decay_rate 0.99, epsilon 1e-8) and ``adam`` (learning_rate 1e-3, beta1 0.9, beta2 0.999,
epsilon 1e-8, ``t`` incremented before use). Each fills the missing keys of ``config`` and
returns it with its state (``velocity``, ``cache``, ``m``, ``v``, ``t``) updated.
"""

from cydrop.nn.optim import adam, rmsprop, sgd, sgd_momentum

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam"]
