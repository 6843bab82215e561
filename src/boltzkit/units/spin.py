"""±1 units: p(s=1 | t) = sigmoid(2 beta t), mean tanh(beta t); log-partition log 2cosh(beta t)."""

from __future__ import annotations

import torch

from .base import Units, _binary_states, _check_finite, _scale, count_states, uniform

__all__ = ["Spin"]


class Spin(Units):
    """±1 units: p(s=1 | t) = sigmoid(2 beta t), mean tanh(beta t); log-partition
    log 2cosh(beta t), formed from |beta t| so that it never overflows.

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``mean`` and draws have the field's shape, ``log_partition`` is ``(n,)``.
    Owns no parameters (``params`` is ignored).
    """

    name = "spin"

    def mean(self, field, beta=1.0, *, params=None):
        return torch.tanh(_scale(field, beta))

    def sample_from_mean(self, mean, generator=None, *, params=None):
        u = uniform(mean.shape, generator, mean.dtype, mean.device)
        return ((u < 0.5 * (1.0 + mean)).to(mean.dtype) * 2.0 - 1.0)

    def log_partition(self, field, beta=1.0, *, params=None):
        x = _scale(field, beta).abs()
        # log(e^x + e^-x) = |x| + log(1 + e^{-2|x|})
        return (x + torch.log1p(torch.exp(-2.0 * x))).sum(-1)

    def check(self, s, name="input", relaxed=False):
        _check_finite(s, name)
        if relaxed:
            bad = (s < -1) | (s > 1)
            if s.numel() and bad.any():
                raise ValueError(f"{name}: spin units take values in [-1, 1] (means) or "
                                 f"{{-1, +1}}, found {s[bad].flatten()[0].item():g}")
        elif s.numel() and not ((s == 1) | (s == -1)).all():
            raise ValueError(f"{name}: spin units take values in {{-1, +1}}, found "
                             f"{s[(s != 1) & (s != -1)].flatten()[0].item():g}")

    def n_states(self, n_units):
        return count_states(2, n_units)

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        stop = int(self.n_states(n_units)) if stop is None else stop
        return _binary_states(n_units, start, stop, (-1.0, 1.0), dtype, device)

    def init_bias(self, data_mean):
        m = data_mean.clamp(-1 + 2e-3, 1 - 2e-3)
        return torch.atanh(m)
