"""Fully connected Boltzmann machine: visible and hidden units, every pair may interact.

Units ``0 .. n_visible-1`` are visible, ``n_visible .. n-1`` hidden (``n = n_visible + n_hidden``).
A joint state ``s`` of shape ``(m, n)`` has the energy

    E(s) = -1/2 sᵀ W s - b·s

with ``W = weight`` ``(n, n)`` symmetric with a zero diagonal, and ``b = bias`` ``(n,)``. At
temperature ``T`` the machine's distribution is ``p(s) = exp(-E(s)/T) / Z``. The total input
("local field") of unit i is ``b_i + sum_j w_ij s_j``; it is the energy gap ``ΔE_i`` between the
unit off and on, so a 0/1 unit is on with probability ``σ(ΔE_i / T)`` given all the others, and a
±1 unit is +1 with probability ``σ(2 ΔE_i / T)`` (the :class:`boltzkit.units.Spin` family, whose
gap between -1 and +1 is twice the field).

Connections come in three groups that can each be switched off: visible-visible, hidden-hidden,
visible-hidden (an RBM is the machine with only the last). Any other pattern is given as a
boolean ``connectivity`` matrix. The pattern lives in the ``mask`` buffer (saved with the model),
and :meth:`BoltzmannMachine.constrain_` puts the weights back on it (symmetric, zero diagonal,
zero where there is no connection): learning rules call it after every update.

A stack: ``n_machines=R`` makes R independent machines of the same structure in one module
(weights ``(R, n, n)``, biases ``(R, n)``, one shared mask): states ``(R, m, n)`` hold m chains
of each machine, and samplers, the two-phase rule and the update rules treat every machine
separately. The encoder experiment trains hundreds of small machines at once this way.

This module holds parameters and energies only. Sampling (sequential Gibbs sweeps, annealing)
lives in :mod:`boltzkit.samplers.sequential`, learning in
:mod:`boltzkit.training.estimators.boltzmann` (the two-phase rule),
exact enumeration for tiny machines in :mod:`boltzkit.exact.boltzmann`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _validation as _v
from .._validation import integer, real
from ..units import Units, get_units
from ._validation import ConfigChecked, as_states, check_symmetric, check_values, config_bool, \
    config_int, config_keys, config_positive_number, config_spec, first_bad

__all__ = ["BoltzmannMachine", "BINARY_UNITS"]

BINARY_UNITS = ("bernoulli", "spin")


def _temperature(value, name: str = "temperature") -> float:
    return real(value, name, 0.0, strict_minimum=True)


class BoltzmannMachine(ConfigChecked):
    """Fully connected Boltzmann machine with binary (0/1 or ±1) units.

    Parameters
    ----------
    n_visible : int
        Number of visible units (at least 1).
    n_hidden : int
        Number of hidden units (0 for a fully visible machine).
    units : ``"bernoulli"`` (0/1) or ``"spin"`` (±1)
        Unit family of every unit.
    visible_visible, hidden_hidden, visible_hidden : bool
        Which groups of connections exist (all by default).
    connectivity : bool tensor ``(n, n)``, optional
        Explicit connection pattern (symmetric; the diagonal is ignored); overrides the three
        flags. Used for machines with more structure, such as the encoder's two visible groups.
    temperature : float
        T of ``p(s) ∝ exp(-E(s)/T)``; samplers use it unless given another.
    init_std : float
        Weights start as N(0, init_std²) on the allowed connections (symmetrised); 0 starts
        them at zero (as Ackley, Hinton & Sejnowski 1985 do). Biases start at 0.
    n_machines : int, optional
        Make a stack of this many independent machines (see the module docstring).
    generator : torch.Generator, optional
        Source of the initial weights.
    device, dtype
        Where the parameters live (float32 by default).

    Attributes
    ----------
    weight : Parameter ``(n, n)`` (``(R, n, n)`` for a stack), symmetric, zero diagonal, zero
        off the mask
    bias : Parameter ``(n,)`` (``(R, n)``)
    mask : buffer ``(n, n)``, 1.0 where two units are connected, else 0.0
    """

    def __init__(self, n_visible: int, n_hidden: int = 0, units="bernoulli", *,
                 visible_visible: bool = True, hidden_hidden: bool = True,
                 visible_hidden: bool = True, connectivity: Optional[torch.Tensor] = None,
                 temperature: float = 1.0, init_std: float = 0.0,
                 n_machines: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, device=None, dtype=None):
        super().__init__()
        n_visible = integer(n_visible, "n_visible", 1)
        n_hidden = integer(n_hidden, "n_hidden", 0)
        self.units: Units = get_units(units)
        if self.units.name not in BINARY_UNITS:
            raise ValueError(f"units: a BoltzmannMachine takes binary units, expected one of "
                             f"{BINARY_UNITS}, got {self.units.spec()!r}")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.n_units = n = n_visible + n_hidden
        self.visible_visible = _v.boolean(visible_visible, "visible_visible")
        self.hidden_hidden = _v.boolean(hidden_hidden, "hidden_hidden")
        self.visible_hidden = _v.boolean(visible_hidden, "visible_hidden")
        self.temperature = _temperature(temperature)
        self.n_machines = None if n_machines is None else integer(n_machines, "n_machines", 1)
        lead = () if self.n_machines is None else (self.n_machines,)
        init_std = real(init_std, "init_std", 0.0)
        if _v.generator(generator) is None:  # deterministic by default: the same machine
            generator = torch.Generator().manual_seed(0)
        device, dtype = _v.device(device), _v.float_dtype(dtype)
        units_total = n_visible + n_hidden
        _v.memory(6 * 4 * (self.n_machines or 1) * units_total * units_total,
                  f"BoltzmannMachine({n_visible}, {n_hidden}): its weights", device)
        if connectivity is None:
            mask = torch.zeros(n, n, dtype=dtype)
            v, h = slice(0, n_visible), slice(n_visible, n)
            mask[v, v] = float(self.visible_visible)
            mask[h, h] = float(self.hidden_hidden)
            mask[v, h] = float(self.visible_hidden)
            mask[h, v] = float(self.visible_hidden)
            self.custom_connectivity = False
        else:
            if not torch.is_tensor(connectivity) or connectivity.shape != (n, n):
                shape = tuple(connectivity.shape) if torch.is_tensor(connectivity) else \
                    type(connectivity).__name__
                raise ValueError(f"connectivity: expected a tensor of shape ({n}, {n}), got "
                                 f"{shape}")
            c = connectivity.detach().to("cpu")
            if c.dtype != torch.bool:
                if not torch.isfinite(c.double()).all() or not ((c == 0) | (c == 1)).all():
                    raise ValueError("connectivity: expected booleans (or 0/1 values)")
                c = c != 0
            if not torch.equal(c, c.t()):
                raise ValueError("connectivity: expected a symmetric matrix (connections are "
                                 "undirected), got an asymmetric one")
            mask = c.to(dtype)
            self.custom_connectivity = True
        mask.fill_diagonal_(0.0)
        self.register_buffer("mask", mask.to(device))
        if init_std:
            w = torch.randn(*lead, n, n, generator=generator, dtype=dtype,
                            device=generator.device)
            # symmetric, each entry still N(0, init_std²)
            w = (w + w.transpose(-1, -2)).mul_(init_std * 0.5 ** 0.5).to(device) * self.mask
        else:
            w = torch.zeros(*lead, n, n, dtype=dtype, device=device)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(*lead, n, dtype=dtype, device=device))

    # -- configuration ----------------------------------------------------------------------
    def config(self) -> dict:
        """What a model file stores next to the tensors (the mask itself is a saved buffer, so
        a custom connection pattern round-trips too)."""
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "units": self.units.spec(), "visible_visible": self.visible_visible,
                "hidden_hidden": self.hidden_hidden, "visible_hidden": self.visible_hidden,
                "temperature": self.temperature,
                **({} if self.n_machines is None else {"n_machines": self.n_machines})}

    _CONFIG_KEYS = ("n_visible", "n_hidden", "units", "visible_visible", "hidden_hidden",
                    "visible_hidden", "temperature", "n_machines")

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        """The constructor's arguments from a configuration, checked strictly (see
        :mod:`boltzkit.models._validation`); nothing is allocated."""
        config_keys(config, cls._CONFIG_KEYS, "BoltzmannMachine")
        args = {"n_visible": config_int(config, "n_visible", 1),
                "n_hidden": config_int(config, "n_hidden", 0),
                "units": config_spec(config, "units", "bernoulli"),
                "visible_visible": config_bool(config, "visible_visible", True),
                "hidden_hidden": config_bool(config, "hidden_hidden", True),
                "visible_hidden": config_bool(config, "visible_hidden", True),
                "temperature": config_positive_number(config, "temperature", 1.0),
                "n_machines": config_int(config, "n_machines", 1, None)}
        if get_units(args["units"]).name not in BINARY_UNITS:
            raise ValueError(f"config['units']: a BoltzmannMachine takes binary units, expected "
                             f"one of {BINARY_UNITS}, got {args['units']!r}")
        return args

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the tensors (parameters and the ``mask`` buffer) a machine of
        ``config`` holds, from the configuration alone (nothing is allocated;
        :func:`boltzkit.load` compares a file's tensors with them before it builds the model)."""
        a = cls._config_args(config)
        n = a["n_visible"] + a["n_hidden"]
        lead = () if a["n_machines"] is None else (a["n_machines"],)
        return {"weight": (*lead, n, n), "bias": (*lead, n), "mask": (n, n)}

    @staticmethod
    def check_tensors(tensors: dict) -> None:
        """Raise ``ValueError`` naming the tensor if a state dict (of shapes that fit) breaks a
        machine's structure: ``mask`` must hold only 0 and 1, symmetric, with a zero diagonal;
        ``weight`` (every machine of a stack) must be symmetric with a zero diagonal, and zero
        wherever the mask is 0."""
        mask, weight = tensors["mask"], tensors["weight"]
        check_values(mask, "mask", (0.0, 1.0), "values 0 and 1 (1 where two units connect)")
        if not torch.equal(mask, mask.t()):
            raise ValueError("tensor 'mask': expected a symmetric matrix (connections are "
                             "undirected), got an asymmetric one")
        if bool((torch.diagonal(mask) != 0).any()):
            raise ValueError("tensor 'mask': expected a zero diagonal (no unit connects to "
                             "itself)")
        check_symmetric(weight, "weight")
        off = (weight != 0) & (mask == 0).to(weight.device)
        if bool(off.any()):
            raise ValueError(f"tensor 'weight': expected zero where the mask has no "
                             f"connection, found {first_bad(weight, off)}")

    def extra_repr(self) -> str:
        groups = "custom" if self.custom_connectivity else ", ".join(
            name for name, on in (("visible-visible", self.visible_visible),
                                  ("hidden-hidden", self.hidden_hidden),
                                  ("visible-hidden", self.visible_hidden)) if on) or "none"
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"units={self.units.spec()!r}, connections={groups}, "
                f"temperature={self.temperature:g}" +
                ("" if self.n_machines is None else f", n_machines={self.n_machines}"))

    # -- structure ----------------------------------------------------------------------------
    @property
    def values(self) -> tuple[float, float]:
        """(off, on) values of a unit: (0, 1) for Bernoulli, (-1, 1) for spins."""
        return (0.0, 1.0) if self.units.name == "bernoulli" else (-1.0, 1.0)

    @property
    def visible_units(self) -> slice:
        return slice(0, self.n_visible)

    @property
    def hidden_units(self) -> slice:
        return slice(self.n_visible, self.n_units)

    def visible_mask(self) -> torch.Tensor:
        """Bool ``(n,)``: True for the visible units (the usual clamp of the positive phase)."""
        m = torch.zeros(self.n_units, dtype=torch.bool, device=self.weight.device)
        m[: self.n_visible] = True
        return m

    @torch.no_grad()
    def constrain_(self) -> "BoltzmannMachine":
        """Put the weights back on the model's structure, in place: ``W ← ½(W + Wᵀ) ⊙ mask``
        (symmetric, zero diagonal, zero where units are not connected). Returns ``self``."""
        w = self.weight
        w.copy_((w + w.transpose(-1, -2)).mul_(0.5).mul_(self.mask))
        return self

    # -- input checks -------------------------------------------------------------------------
    def check_states(self, s, name: str = "states", relaxed: bool = False) -> torch.Tensor:
        """Check joint states: shape ``(m, n)`` (or ``(..., m, n)``), finite, in the units'
        support (``relaxed``: its convex hull); returned in the model's dtype and device."""
        return as_states(s, units=self.units, width=self.n_units, name=name, relaxed=relaxed,
                         like=self.weight, stacked=True)

    def check_visible(self, v, name: str = "v", relaxed: bool = False) -> torch.Tensor:
        """Check visible states: shape ``(m, n_visible)``, at least one row, on the support."""
        return as_states(v, units=self.units, width=self.n_visible, name=name,
                         relaxed=relaxed, like=self.weight, stacked=True)

    # -- fields and energies ------------------------------------------------------------------
    def field(self, s: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Local fields ``b + s W`` (each unit's energy gap ΔE_i), shape of ``s`` ``(m, n)``
        (``(R, m, n)`` for a stack). ``s`` is checked (shape, finite, within the units' values
        or between them) unless ``check=False``, as in :meth:`energy`."""
        if check:
            s = self.check_states(s, "s", relaxed=True)
        return torch.matmul(s, self.weight) + self.bias.unsqueeze(-2)

    def conditional_mean(self, s: torch.Tensor, temperature: Optional[float] = None, *,
                         check: bool = True) -> torch.Tensor:
        """E[s_i | all other units] for every unit i, shape ``(m, n)``."""
        t = self.temperature if temperature is None else _temperature(temperature)
        return self.units.mean(self.field(s, check=check), 1.0 / t)

    def energy(self, s: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """``E(s) = -½ sᵀWs - b·s``, shape ``(m,)`` (``(R, m)`` for a stack; temperature does
        not enter the energy). ``s`` is checked (states on the units' support) unless
        ``check=False`` (what samplers and the exact sums, which pass the machine's own states,
        use)."""
        if check:
            s = self.check_states(s, "s")
        return -(0.5 * (torch.matmul(s, self.weight) * s).sum(-1)
                 + (s * self.bias.unsqueeze(-2)).sum(-1))

    @torch.no_grad()
    def init_visible_bias(self, data: torch.Tensor) -> None:
        """Set the visible biases so that the visible units alone (zero weights) reproduce the
        data's per-unit means at the model's temperature: ``T log p/(1-p)`` for 0/1 units,
        ``T atanh(m)`` for spins. ``data``: ``(m, n_visible)``."""
        mean = self.check_visible(data, "data", relaxed=True).mean(0)
        self.bias[..., : self.n_visible] = self.units.init_bias(mean) * self.temperature
