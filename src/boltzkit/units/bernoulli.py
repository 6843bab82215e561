"""Binary 0/1 units: p(s=1 | t) = sigmoid(beta t); log-partition softplus(beta t)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Units, _binary_states, _check_finite, _scale, _within, count_states, uniform

__all__ = ["Bernoulli"]


class Bernoulli(Units):
    """Binary 0/1 units: p(s=1 | t) = sigmoid(beta t); log-partition softplus(beta t).

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``mean`` and draws have the field's shape, ``log_partition`` is ``(n,)``.
    Owns no parameters (``params`` is ignored).
    """

    name = "bernoulli"

    def mean(self, field, beta=1.0, *, params=None):
        return torch.sigmoid(_scale(field, beta))

    def sample_from_mean(self, mean, generator=None, *, params=None):
        u = uniform(mean.shape, generator, mean.dtype, mean.device)
        # the comparison is written over the uniforms: one buffer, no bool tensor, no cast
        # (a sample is not differentiable: ``detach`` only lets ``out=`` accept a graph input)
        return torch.lt(u, mean.detach(), out=u)

    def log_partition(self, field, beta=1.0, *, params=None):
        return F.softplus(_scale(field, beta)).sum(-1)

    def check(self, s, name="input", relaxed=False):
        # fast path (a single min/max pass, which also rejects NaN and inf): training data is
        # checked on every fit, and the elementwise masks below took about a third as long as
        # an epoch's matrix products on 10000 MNIST rows (784x500); they now only run to name
        # the bad value
        if torch.is_tensor(s) and s.is_floating_point() and _within(s, 0.0, 1.0) and (
                relaxed or not s.numel() or torch.equal(s, s.round())):
            return
        _check_finite(s, name)
        if relaxed:
            bad = (s < 0) | (s > 1)
            if s.numel() and bad.any():
                raise ValueError(f"{name}: bernoulli units take values in [0, 1] (probabilities) "
                                 f"or {{0, 1}}, found {s[bad].flatten()[0].item():g}")
        elif s.numel() and not ((s == 0) | (s == 1)).all():
            raise ValueError(f"{name}: bernoulli units take values in {{0, 1}}, found "
                             f"{s[(s != 0) & (s != 1)].flatten()[0].item():g}")

    def n_states(self, n_units):
        return count_states(2, n_units)

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        stop = int(self.n_states(n_units)) if stop is None else stop
        return _binary_states(n_units, start, stop, (0.0, 1.0), dtype, device)

    def init_bias(self, data_mean):
        p = data_mean.clamp(1e-3, 1 - 1e-3)
        return torch.log(p) - torch.log1p(-p)
