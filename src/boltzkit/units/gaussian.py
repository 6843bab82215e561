"""Real-valued units of unit variance: base(s) = s²/2, so p(s | t) = N(beta t, 1)."""

from __future__ import annotations

import math

import torch

from .base import Units, _scale

__all__ = ["Gaussian"]


class Gaussian(Units):
    """Real-valued units of unit variance: base(s) = s²/2, so p(s | t) = N(beta t, 1).

    log-partition: ``(beta t)²/2 + log(2π)/2`` per unit, so that likelihoods are densities in
    nats.
    Data should be standardised (zero mean, unit variance per feature) before training.

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``mean`` and draws have the field's shape, ``log_partition`` and ``base`` are
    ``(n,)``. Owns no parameters (``params`` is ignored).
    """

    name = "gaussian"
    discrete = False
    _HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

    def mean(self, field, beta=1.0, *, params=None):
        x = _scale(field, beta)
        return x.clone() if x is field else x

    def sample_from_mean(self, mean, generator=None, *, params=None):
        return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                                  device=mean.device)

    def log_partition(self, field, beta=1.0, *, params=None):
        x = _scale(field, beta)
        return (0.5 * x * x).sum(-1) + self._HALF_LOG_2PI * field.shape[-1]

    def base(self, s, *, params=None):
        return 0.5 * (s * s).sum(-1)

    def n_states(self, n_units):
        return math.inf

    def init_bias(self, data_mean):
        return data_mean.clone()
