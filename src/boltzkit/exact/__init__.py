"""Exact computation by enumeration: the reference every statistical test in boltzkit compares
against (samplers against the exact distribution, AIS against the exact log Z, gradient
estimators against the exact gradient).

One module per model family:

- :mod:`boltzkit.exact.rbm`: RBMs whose smaller discrete layer can be enumerated (log Z, free
  energies, model expectations);
- :mod:`boltzkit.exact.boltzmann`: fully connected Boltzmann machines of up to about 20 units
  (log Z, the distribution, pair expectations free and clamped, log-likelihood).
"""

from . import boltzmann, dbm, rbm

__all__ = ["rbm", "boltzmann", "dbm"]
