"""The contract every unit family follows, and the helpers the families share.

Every model in boltzkit writes its energy in one form,

    E(s) = sum_i base(s_i) - sum_i t_i s_i  (+ pairwise terms folded into the fields t),

so that, given the total input ("field") ``t`` of a unit (bias plus weighted sum of its
neighbours), the unit's conditional distribution is

    p(s | t) ∝ exp(beta * t * s - base(s))

over the unit's support. ``beta`` is an inverse temperature that scales the field and not the
base measure: that is the convention annealed importance sampling needs (the base measure is
shared by every intermediate distribution) and, for the discrete families (base = 0), it is the
same as dividing the whole energy by a temperature.

A family knows, for a field tensor of shape ``(n, n_units)`` (or ``(..., n, n_units)``, e.g. a
stack ``(R, n, n_units)``):

- ``mean(t, beta)``: E[s | t], the shape of ``t``;
- ``sample(t, generator, beta)``: one draw, the shape of ``t``;
- ``log_partition(t, beta)``: ``sum_units log sum_s exp(beta t s - base(s))``, shape
  ``t.shape[:-1]`` (``(n,)``), computed in forms that never overflow (softplus, log 2cosh,
  logsumexp, t²/2);
- ``base(s)``: ``sum_units base(s_i)``, shape ``s.shape[:-1]``;
- ``check(s, name)``: a ``ValueError`` naming ``name`` if ``s`` is not finite or leaves the support;
- ``states(n_units)``: every joint state of a layer (for exact enumeration), discrete families only.

``beta`` is a Python number or a tensor that broadcasts against the field without changing its
shape: ``(n, 1)`` gives one inverse temperature per row (chain), ``(R, 1, 1)`` one per machine of
a stack ``(R, n, n_units)``. The plain number 1.0 costs nothing (no multiplication); a tensor is
brought to the field's dtype and device. With a per-row beta ``log_partition`` still returns the
per-row sums ``(n,)``.

Parameters owned by a family
----------------------------
A family may own parameters (a learned variance, say): :meth:`Units.init_parameters` returns
their initial values, ``{name: tensor}`` (empty for the four built-in families). A model
registers them (an :class:`~boltzkit.models.RBM` as ``visible_<name>`` / ``hidden_<name>``) and
hands them back, keyed by ``name``, through the keyword ``params`` of :meth:`Units.mean`,
:meth:`Units.sample_from_mean`, :meth:`Units.sample`, :meth:`Units.log_partition` and
:meth:`Units.base`. Families without parameters ignore ``params`` (the models pass ``None``).
The support (:meth:`Units.check`, :meth:`Units.states`) never depends on parameters.
:meth:`Units.constrain_` (a no-op by default) keeps them in range; a model calls it after every
update (e.g. a floor on a learned variance).

The statistic a state presents to its neighbours
------------------------------------------------
In general the energy couples a unit through a statistic ``phi(s)`` linear in ``s``
(:meth:`Units.statistic`), ``E(s) = sum_i base(s_i) - sum_i t_i phi(s_i)``, so that
``p(s | t) ∝ exp(beta t phi(s) - base(s))``. For every family but the learned-variance Gaussian
``phi(s) = s`` (``identity_statistic = True``: models then skip the call); that one has
``phi(s) = s / σ²`` (Cho, Ilin & Raiko 2011, see :class:`~boltzkit.units.LearnedGaussian`). A
model uses ``phi(v)`` wherever ``v`` meets a weight or a bias: the hidden field
``b + phi(v) W``, the energy, the gradient statistics. Since ``phi`` is linear,
``E[phi(s) | t] = phi(mean)``.
"""

from __future__ import annotations

import abc
import math
import numbers
from typing import Mapping, Optional, Union

import torch

__all__ = ["Units", "uniform", "enumerate_states", "row_beta", "Beta", "Params"]

#: An inverse temperature: a number, or a tensor that broadcasts against the field.
Beta = Union[float, torch.Tensor]
#: A family's parameters as a model hands them over: ``{name: tensor}``, or None when it owns none.
Params = Optional[Mapping[str, torch.Tensor]]


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


def _beta_tensor(beta: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """``beta`` in the field's dtype and device; ``ValueError`` unless it broadcasts against
    ``field`` without changing the field's shape."""
    try:
        ok = torch.broadcast_shapes(beta.shape, field.shape) == field.shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"beta: expected a number or a tensor that broadcasts against the field "
                         f"of shape {tuple(field.shape)} (e.g. ({field.shape[0]}, 1), one per "
                         f"row), got shape {tuple(beta.shape)}")
    return beta.to(device=field.device, dtype=field.dtype)


def _scale(field: torch.Tensor, beta: Beta) -> torch.Tensor:
    """``beta * field``, the shape of ``field``: ``field`` itself (no copy, no multiply) for the
    number 1.0; a tensor ``beta`` must broadcast against ``field`` (see :func:`_beta_tensor`)."""
    if isinstance(beta, torch.Tensor):
        return field * _beta_tensor(beta, field)
    return field if beta == 1.0 else field * beta


def row_beta(beta: Beta, n: int) -> Beta:
    """The form in which a model hands a per-row inverse temperature to its unit families.

    ``beta`` is a number or a 0-d tensor (returned as they are) or a tensor of shape ``(n,)``,
    one per row (chain), returned as a view of shape ``(n, 1)`` so that it broadcasts against
    fields ``(n, n_units)`` (the families bring it to the field's dtype and device). Anything
    else raises ``ValueError`` naming ``beta``."""
    if type(beta) is float and (beta == 1.0 or 0.0 <= beta < math.inf):
        return beta
    if not isinstance(beta, torch.Tensor):
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise ValueError(f"beta: expected a number or a tensor of shape ({n},), got "
                             f"{type(beta).__name__}")
        if not 0.0 <= float(beta) < math.inf:
            raise ValueError(f"beta: expected a finite inverse temperature >= 0, got {beta}")
        return beta
    if beta.dim() not in (0, 1) or (beta.dim() == 1 and beta.shape != (n,)):
        raise ValueError(f"beta: expected a number or a tensor of shape ({n},) (one per row), "
                         f"got shape {tuple(beta.shape)}")
    if beta.numel() and not _within(beta.detach().double(), 0.0, math.inf) or \
            not torch.isfinite(beta).all():
        raise ValueError("beta: expected finite inverse temperatures >= 0, found "
                         f"{beta[~(torch.isfinite(beta) & (beta >= 0))].flatten()[0].item():g}")
    return beta if beta.dim() == 0 else beta.reshape(n, 1)


def count_states(per_unit: float, n_groups: int) -> float:
    """``per_unit ** n_groups`` as a float, ``inf`` where it overflows one (a layer of 1024 or
    more binary units): the number of joint states of a discrete layer."""
    try:
        return float(per_unit) ** n_groups
    except OverflowError:
        return math.inf


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
    """Base class of a unit family (see the module docstring for the contract).

    Shapes: ``field``, ``mean`` and ``s`` are ``(n, n_units)`` (or with leading stack axes);
    per-row results (``log_partition``, ``base``) are ``(n,)``; ``beta`` is a number or a tensor
    broadcasting against the field (``(n, 1)``: one per row); ``params`` is ``{name: tensor}``
    as :meth:`init_parameters` made them (``None`` for a family that owns none).
    """

    name: str = "units"
    discrete: bool = True
    #: True when :meth:`statistic` is the identity (every family but the learned Gaussian)
    identity_statistic: bool = True

    # -- parameters owned by the family --------------------------------------------------------
    def init_parameters(self, n_units: int, dtype=torch.float32, device=None
                        ) -> dict[str, torch.Tensor]:
        """Initial values of the parameters this family owns for a layer of ``n_units``:
        ``{name: tensor}`` (e.g. ``{"log_variance": (n_units,)}``). A model registers each as a
        learnable parameter and passes them back through ``params``. Default: none (``{}``)."""
        return {}

    def constrain_(self, params: Params) -> None:
        """Bring the family's parameters back into their allowed range, in place (a model calls
        it after every update). Default: nothing to do."""

    def statistic(self, s: torch.Tensor, *, params: Params = None) -> torch.Tensor:
        """``phi(s)``, how a state enters the weights and biases of the energy (linear in
        ``s``), shape of ``s``. Default: ``s`` itself (see the module docstring)."""
        return s

    # -- conditionals ---------------------------------------------------------------------------
    @abc.abstractmethod
    def mean(self, field: torch.Tensor, beta: Beta = 1.0, *, params: Params = None
             ) -> torch.Tensor:
        """E[s | field], shape of ``field``."""

    @abc.abstractmethod
    def sample_from_mean(self, mean: torch.Tensor, generator: Optional[torch.Generator] = None,
                         *, params: Params = None) -> torch.Tensor:
        """One draw of s from the conditional whose mean is ``mean`` (what :meth:`mean` gave),
        shape of ``mean``. For every family the mean (with ``params``) fixes the conditional, so
        samplers that need both compute the mean once."""

    def sample(self, field: torch.Tensor, generator: Optional[torch.Generator] = None,
               beta: Beta = 1.0, *, params: Params = None) -> torch.Tensor:
        """One draw of s given the field, shape of ``field``."""
        return self.sample_from_mean(self.mean(field, beta, params=params), generator,
                                     params=params)

    @abc.abstractmethod
    def log_partition(self, field: torch.Tensor, beta: Beta = 1.0, *, params: Params = None
                      ) -> torch.Tensor:
        """``sum_units log sum_s exp(beta t s - base(s))`` per row, shape ``field.shape[:-1]``
        (``(n,)``)."""

    def base(self, s: torch.Tensor, *, params: Params = None) -> torch.Tensor:
        """``sum_i base(s_i)`` per row, shape ``s.shape[:-1]`` (``(n,)``); zero for the discrete
        families."""
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


def enumerate_states(units: Units, n_units: int, chunk_size: int, dtype=torch.float32, device=None):
    """Yield every joint state of a layer in chunks of at most ``chunk_size`` rows."""
    total = units.n_states(n_units)
    if not math.isfinite(total):
        raise ValueError(f"{units.name} units are continuous: their states cannot be enumerated")
    total = int(total)
    for start in range(0, total, chunk_size):
        yield units.states(n_units, start, min(start + chunk_size, total), dtype=dtype, device=device)
