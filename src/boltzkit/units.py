"""Unit families: the kinds of stochastic unit a Boltzmann machine is built from.

Every model in boltzkit writes its energy in one form,

    E(s) = sum_i base(s_i) - sum_i t_i s_i  (+ pairwise terms folded into the fields t),

so that, given the total input ("field") ``t`` of a unit (bias plus weighted sum of its
neighbours), the unit's conditional distribution is

    p(s | t) ∝ exp(beta * t * s - base(s))

over the unit's support. ``beta`` is an inverse temperature that scales the field and not the
base measure: that is the convention annealed importance sampling needs (the base measure is
shared by every intermediate distribution) and, for the discrete families (base = 0), it is the
same as dividing the whole energy by a temperature.

A family knows, for a field tensor of shape ``(n, n_units)``:

- ``mean(t, beta)``: E[s | t], shape ``(n, n_units)``;
- ``sample(t, generator, beta)``: one draw, shape ``(n, n_units)``;
- ``log_partition(t, beta)``: ``sum_units log sum_s exp(beta t s - base(s))``, shape ``(n,)``,
  computed in forms that never overflow (softplus, log 2cosh, logsumexp, t²/2);
- ``base(s)``: ``sum_units base(s_i)``, shape ``(n,)``;
- ``check(s, name)``: a ``ValueError`` naming ``name`` if ``s`` is not finite or leaves the support;
- ``states(n_units)``: every joint state of a layer (for exact enumeration), discrete families only.

The four families: :class:`Bernoulli` (0/1), :class:`Spin` (±1), :class:`Gaussian` (real,
unit variance: base = s²/2, so p(s|t) = N(beta t, 1)) and :class:`Softmax` (one-hot groups of
``group_size`` units; ``group_size=None`` makes the whole layer one group).
"""

from __future__ import annotations

import abc
import math
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = [
    "Units",
    "Bernoulli",
    "Spin",
    "Gaussian",
    "Softmax",
    "get_units",
    "uniform",
    "UNIT_NAMES",
]

UNIT_NAMES = ("bernoulli", "spin", "gaussian", "softmax")


def _check_finite(s: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(s):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(s).__name__}")
    # fast path, one reduction: a finite sum means every entry is finite (a NaN or inf entry
    # makes the sum NaN or inf); a sum that overflows falls through to the exact test
    if not s.numel() or not s.is_floating_point() or torch.isfinite(s.sum()):
        return
    if not torch.isfinite(s).all():
        bad = "NaN" if torch.isnan(s).any() else "inf"
        raise ValueError(f"{name}: expected finite values, found {bad}")


def _within(s: torch.Tensor, lo: float, hi: float) -> bool:
    """True if every entry of ``s`` lies in [lo, hi] (False for NaN): one pass over ``s``."""
    if not s.numel():
        return True
    smin, smax = torch.aminmax(s)
    return bool(smin >= lo) and bool(smax <= hi)


def uniform(shape, generator: Optional[torch.Generator] = None, dtype=torch.float32,
            device=None) -> torch.Tensor:
    """Uniform draws on [0, 1), shape ``shape``: what ``torch.rand`` gives, faster on the CPU.

    For float32 on the CPU, ``torch.rand`` turns one 32-bit draw of the generator into one
    number with 24 random bits (the float32 grid k / 2^24). Here each 64-bit draw (uniform over
    [0, 2^63), ``Tensor.random_``) gives two such numbers, its bits 0-23 and 32-55: the same
    distribution on the same grid, with half the generator calls, which are the cost (about a
    fifth less time for a Bernoulli draw of a 100x784 layer). Other dtypes and devices use
    ``torch.rand``. Equal generator states give equal draws.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    if dtype != torch.float32 or device.type != "cpu":
        return torch.rand(shape, generator=generator, dtype=dtype, device=device)
    n = math.prod(shape)
    bits = torch.empty((n + 1) // 2, dtype=torch.int64, device=device)
    bits = bits.random_(generator=generator).view(torch.int32)[:n]
    return bits.bitwise_and_(0xFFFFFF).view(shape).to(dtype).mul_(2.0 ** -24)


class Units(abc.ABC):
    """Base class of a unit family (see the module docstring for the contract)."""

    name: str = "units"
    discrete: bool = True

    # -- conditionals ---------------------------------------------------------------------------
    @abc.abstractmethod
    def mean(self, field: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """E[s | field], shape of ``field``."""

    @abc.abstractmethod
    def sample_from_mean(self, mean: torch.Tensor,
                         generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """One draw of s from the conditional whose mean is ``mean`` (what :meth:`mean` gave).
        For every family the mean fixes the conditional, so samplers that need both compute the
        mean once."""

    def sample(self, field: torch.Tensor, generator: Optional[torch.Generator] = None,
               beta: float = 1.0) -> torch.Tensor:
        """One draw of s given the field, shape of ``field``."""
        return self.sample_from_mean(self.mean(field, beta), generator)

    @abc.abstractmethod
    def log_partition(self, field: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """``sum_units log sum_s exp(beta t s - base(s))`` per row, shape ``(n,)``."""

    def base(self, s: torch.Tensor) -> torch.Tensor:
        """``sum_i base(s_i)`` per row, shape ``(n,)``; zero for the discrete families."""
        return s.new_zeros(s.shape[:-1])

    # -- support --------------------------------------------------------------------------------
    def check(self, s: torch.Tensor, name: str = "input", relaxed: bool = False) -> None:
        """Raise ``ValueError`` naming ``name`` if ``s`` is not finite or outside the support.

        ``relaxed=True`` also accepts the convex hull of the support (probabilities in [0, 1] for
        Bernoulli, [-1, 1] for spins, distributions over each softmax group): training on such
        mean-field data is common practice (grey images as on-probabilities), while likelihoods
        are only defined on the support itself."""
        _check_finite(s, name)

    def check_size(self, n_units: int, name: str = "layer") -> None:
        """Raise ``ValueError`` if a layer of ``n_units`` cannot be made of this family."""
        if n_units < 1:
            raise ValueError(f"{name}: expected at least 1 unit, got {n_units}")

    def n_states(self, n_units: int) -> float:
        """Number of joint states of a layer of ``n_units`` (``inf`` for continuous units)."""
        return math.inf

    def states(self, n_units: int, start: int = 0, stop: Optional[int] = None,
               dtype=torch.float32, device=None) -> torch.Tensor:
        """Joint states number ``start`` to ``stop`` of a layer, shape ``(stop-start, n_units)``."""
        raise ValueError(f"{self.name} units are continuous: their states cannot be enumerated")

    def init_bias(self, data_mean: torch.Tensor) -> torch.Tensor:
        """Bias that makes a unit alone reproduce the data's mean (Hinton's practical guide)."""
        return torch.zeros_like(data_mean)

    def spec(self) -> str:
        """The string that :func:`get_units` turns back into this family."""
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return isinstance(other, Units) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.spec())


def _binary_states(n_units: int, start: int, stop: int, values, dtype, device) -> torch.Tensor:
    """Rows ``start..stop`` of the binary counting table, bit 0 = first unit, mapped to values."""
    idx = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = (idx.unsqueeze(1) >> torch.arange(n_units, device=device, dtype=torch.int64)) & 1
    lo, hi = values
    return (bits.to(dtype) * (hi - lo) + lo)


class Bernoulli(Units):
    """Binary 0/1 units: p(s=1 | t) = sigmoid(beta t); log-partition softplus(beta t)."""

    name = "bernoulli"

    def mean(self, field, beta=1.0):
        return torch.sigmoid(field * beta if beta != 1.0 else field)

    def sample_from_mean(self, mean, generator=None):
        u = uniform(mean.shape, generator, mean.dtype, mean.device)
        # the comparison is written over the uniforms: one buffer, no bool tensor, no cast
        # (a sample is not differentiable: ``detach`` only lets ``out=`` accept a graph input)
        return torch.lt(u, mean.detach(), out=u)

    def log_partition(self, field, beta=1.0):
        return F.softplus(field * beta if beta != 1.0 else field).sum(-1)

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
        return 2.0 ** n_units

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        stop = int(self.n_states(n_units)) if stop is None else stop
        return _binary_states(n_units, start, stop, (0.0, 1.0), dtype, device)

    def init_bias(self, data_mean):
        p = data_mean.clamp(1e-3, 1 - 1e-3)
        return torch.log(p) - torch.log1p(-p)


class Spin(Units):
    """±1 units: p(s=1 | t) = sigmoid(2 beta t), mean tanh(beta t); log-partition log 2cosh(beta t)."""

    name = "spin"

    def mean(self, field, beta=1.0):
        return torch.tanh(field * beta if beta != 1.0 else field)

    def sample_from_mean(self, mean, generator=None):
        u = uniform(mean.shape, generator, mean.dtype, mean.device)
        return ((u < 0.5 * (1.0 + mean)).to(mean.dtype) * 2.0 - 1.0)

    def log_partition(self, field, beta=1.0):
        x = (field * beta).abs()
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
        return 2.0 ** n_units

    def states(self, n_units, start=0, stop=None, dtype=torch.float32, device=None):
        stop = int(self.n_states(n_units)) if stop is None else stop
        return _binary_states(n_units, start, stop, (-1.0, 1.0), dtype, device)

    def init_bias(self, data_mean):
        m = data_mean.clamp(-1 + 2e-3, 1 - 2e-3)
        return torch.atanh(m)


class Gaussian(Units):
    """Real-valued units of unit variance: base(s) = s²/2, so p(s | t) = N(beta t, 1).

    log-partition: ``(beta t)²/2 + log(2π)/2`` per unit, so that likelihoods are densities in nats.
    Data should be standardised (zero mean, unit variance per feature) before training.
    """

    name = "gaussian"
    discrete = False
    _HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

    def mean(self, field, beta=1.0):
        return field * beta if beta != 1.0 else field.clone()

    def sample_from_mean(self, mean, generator=None):
        return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                                  device=mean.device)

    def log_partition(self, field, beta=1.0):
        x = field * beta
        return (0.5 * x * x).sum(-1) + self._HALF_LOG_2PI * field.shape[-1]

    def base(self, s):
        return 0.5 * (s * s).sum(-1)

    def n_states(self, n_units):
        return math.inf

    def init_bias(self, data_mean):
        return data_mean.clone()


class Softmax(Units):
    """One-hot groups: the layer is cut into consecutive groups of ``group_size`` units, and in
    each group exactly one unit is on (value 1), chosen with probability softmax(beta t) over the
    group. ``group_size=None`` makes the whole layer one group (a "one of K" layer).

    log-partition: ``sum_groups logsumexp(beta t_group)``.
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

    def mean(self, field, beta=1.0):
        x = self._grouped(field * beta if beta != 1.0 else field)
        return torch.softmax(x, dim=-1).reshape(field.shape)

    def sample_from_mean(self, mean, generator=None):
        p = self._grouped(mean)
        # inverse CDF: the chosen unit is the number of cumulative probabilities below u
        u = torch.rand((*p.shape[:-1], 1), generator=generator, dtype=p.dtype, device=p.device)
        idx = (p.cumsum(-1) < u).sum(-1, keepdim=True).clamp_max(p.shape[-1] - 1)
        return torch.zeros_like(p).scatter_(-1, idx, 1.0).reshape(mean.shape)

    def log_partition(self, field, beta=1.0):
        x = self._grouped(field * beta if beta != 1.0 else field)
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
        return float(k) ** (n_units // k)

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


def get_units(spec) -> Units:
    """Turn a name into a unit family.

    ``spec`` is a :class:`Units` instance (returned as is) or one of ``"bernoulli"`` (alias
    ``"binary"``), ``"spin"`` (alias ``"ising"``), ``"gaussian"``, ``"softmax"`` (the whole layer
    one group) or ``"softmax:K"`` (groups of K units).
    """
    if isinstance(spec, Units):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"units: expected one of {', '.join(UNIT_NAMES)} (or 'softmax:K'), "
                         f"got {spec!r}")
    name, _, arg = spec.strip().lower().partition(":")
    if name in ("bernoulli", "binary") and not arg:
        return Bernoulli()
    if name in ("spin", "ising") and not arg:
        return Spin()
    if name == "gaussian" and not arg:
        return Gaussian()
    if name == "softmax":
        if not arg:
            return Softmax()
        try:
            return Softmax(int(arg))
        except ValueError:
            pass
    raise ValueError(f"units: expected one of {', '.join(UNIT_NAMES)} (or 'softmax:K'), got {spec!r}")


def enumerate_states(units: Units, n_units: int, chunk_size: int, dtype=torch.float32, device=None):
    """Yield every joint state of a layer in chunks of at most ``chunk_size`` rows."""
    total = units.n_states(n_units)
    if not math.isfinite(total):
        raise ValueError(f"{units.name} units are continuous: their states cannot be enumerated")
    total = int(total)
    for start in range(0, total, chunk_size):
        yield units.states(n_units, start, min(start + chunk_size, total), dtype=dtype, device=device)

