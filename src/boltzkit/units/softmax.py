"""One-hot groups of units: in each group exactly one unit is on, chosen by softmax(beta t)."""

from __future__ import annotations

from typing import Optional

import torch

from .base import Units, _check_finite, _scale, count_states

__all__ = ["Softmax"]


class Softmax(Units):
    """One-hot groups: the layer is cut into consecutive groups of ``group_size`` units, and in
    each group exactly one unit is on (value 1), chosen with probability softmax(beta t) over the
    group. ``group_size=None`` makes the whole layer one group (a "one of K" layer).

    log-partition: ``sum_groups logsumexp(beta t_group)``.

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``mean`` and draws have the field's shape, ``log_partition`` is ``(n,)``.
    Owns no parameters (``params`` is ignored).
    """

    name = "softmax"

    def __init__(self, group_size: Optional[int] = None):
        if group_size is not None and int(group_size) < 1:
            raise ValueError(f"group_size: expected a positive integer, got {group_size}")
        self.group_size = None if group_size is None else int(group_size)

    def _k(self, n_units: int) -> int:
        return n_units if self.group_size is None else self.group_size

    def _grouped(self, x: torch.Tensor) -> torch.Tensor:
        k = self._k(x.shape[-1])
        return x.reshape(*x.shape[:-1], x.shape[-1] // k, k)

    def check_size(self, n_units, name="layer"):
        super().check_size(n_units, name)
        if n_units % self._k(n_units):
            raise ValueError(f"{name}: softmax groups of {self.group_size} units need a layer whose "
                             f"size is a multiple of {self.group_size}, got {n_units}")

    def mean(self, field, beta=1.0, *, params=None):
        x = self._grouped(_scale(field, beta))
        return torch.softmax(x, dim=-1).reshape(field.shape)

    def sample_from_mean(self, mean, generator=None, *, params=None):
        p = self._grouped(mean)
        # inverse CDF: the chosen unit is the number of cumulative probabilities below u
        u = torch.rand((*p.shape[:-1], 1), generator=generator, dtype=p.dtype, device=p.device)
        idx = (p.cumsum(-1) < u).sum(-1, keepdim=True).clamp_max(p.shape[-1] - 1)
        return torch.zeros_like(p).scatter_(-1, idx, 1.0).reshape(mean.shape)

    def log_partition(self, field, beta=1.0, *, params=None):
        x = self._grouped(_scale(field, beta))
        return torch.logsumexp(x, dim=-1).sum(-1)

    def check(self, s, name="input", relaxed=False):
        _check_finite(s, name)
        if not s.numel():
            return
        bad = ((s < 0) | (s > 1)) if relaxed else ((s != 0) & (s != 1))
        if bad.any():
            want = "[0, 1]" if relaxed else "{0, 1}"
            raise ValueError(f"{name}: softmax units take values in {want}, found "
                             f"{s[bad].flatten()[0].item():g}")
        k = self._k(s.shape[-1])
        if s.shape[-1] % k:
            raise ValueError(f"{name}: expected a width that is a multiple of the softmax group "
                             f"size {k}, got {s.shape[-1]}")
        sums = self._grouped(s).sum(-1)
        if not ((sums - 1).abs() <= 1e-4).all():
            raise ValueError(f"{name}: softmax units need exactly one unit on in each group of "
                             f"{k}, found a group summing to {sums[(sums - 1).abs() > 1e-4].flatten()[0].item():g}")

    def n_states(self, n_units):
        k = self._k(n_units)
        return count_states(k, n_units // k)

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        k = self._k(n_units)
        n_groups = n_units // k
        stop = int(self.n_states(n_units)) if stop is None else stop
        idx = torch.arange(start, stop, device=device, dtype=torch.int64)
        powers = k ** torch.arange(n_groups, device=device, dtype=torch.int64)
        digits = (idx.unsqueeze(1) // powers) % k  # (n, n_groups), group 0 varies fastest
        out = torch.zeros(idx.shape[0], n_groups, k, dtype=dtype, device=device)
        out.scatter_(-1, digits.unsqueeze(-1), 1.0)
        return out.reshape(idx.shape[0], n_units)

    def init_bias(self, data_mean):
        x = self._grouped(data_mean.clamp_min(1e-3))
        return torch.log(x / x.sum(-1, keepdim=True)).reshape(data_mean.shape)

    def spec(self):
        return "softmax" if self.group_size is None else f"softmax:{self.group_size}"

    def __repr__(self):
        return f"Softmax(group_size={self.group_size})"
