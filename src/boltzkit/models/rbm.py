"""Restricted Boltzmann machine with any pairing of unit families.

Energy of a joint state (v of shape ``(n, n_visible)``, h of shape ``(n, n_hidden)``)::

    E(v, h) = base_v(v) + base_h(h) - v·a - h·b - v W h

with ``W = weight`` ``(n_visible, n_hidden)``, ``a = visible_bias``, ``b = hidden_bias`` and the
``base`` terms of the unit families (zero for discrete units, s²/2 for Gaussian units; see
:mod:`boltzkit.units`). Because the layers are conditionally independent given each other,
each conditional is a product of unit conditionals with fields ``b + v W`` and ``a + h Wᵀ``, and
either layer can be summed out in closed form::

    F(v)  = base_v(v) - v·a - logpart_h(b + v W)        (free energy, p(v) = exp(-F(v)) / Z)
    F'(h) = base_h(h) - h·b - logpart_v(a + h Wᵀ)       (hidden free energy)

This module holds parameters and energies only: no loops, no optimisers. Sampling chains live in
:mod:`boltzkit.samplers`, learning in :mod:`boltzkit.training`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..units import Units, get_units

__all__ = ["RBM"]


class RBM(nn.Module):
    """Restricted Boltzmann machine.

    Parameters
    ----------
    n_visible, n_hidden : int
        Layer sizes.
    visible, hidden : str or Units
        Unit families: ``"bernoulli"``, ``"spin"``, ``"gaussian"``, ``"softmax"`` or
        ``"softmax:K"`` (see :func:`boltzkit.units.get_units`).
    init_std : float
        Weights start as N(0, init_std²) (0.01 in Hinton's practical guide); biases start at 0
        (use :meth:`init_visible_bias` to start them at the data's base rates).
    generator : torch.Generator, optional
        Source of the initial weights (equal generators give equal models).
    device, dtype
        Where the parameters live (float32 by default).

    Attributes
    ----------
    weight : Parameter ``(n_visible, n_hidden)``
    visible_bias : Parameter ``(n_visible,)``
    hidden_bias : Parameter ``(n_hidden,)``
    """

    def __init__(self, n_visible: int, n_hidden: int, visible="bernoulli", hidden="bernoulli", *,
                 init_std: float = 0.01, generator: Optional[torch.Generator] = None,
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        self.visible: Units = get_units(visible)
        self.hidden: Units = get_units(hidden)
        self.visible.check_size(n_visible, "n_visible")
        self.hidden.check_size(n_hidden, "n_hidden")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        dtype = dtype or torch.float32
        w = torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype) * init_std
        self.weight = nn.Parameter(w.to(device))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, dtype=dtype, device=device))

    # -- configuration (what a model file stores next to the tensors) --------------------------
    def config(self) -> dict:
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "visible": self.visible.spec(), "hidden": self.hidden.spec()}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "RBM":
        return cls(int(config["n_visible"]), int(config["n_hidden"]),
                   visible=config.get("visible", "bernoulli"),
                   hidden=config.get("hidden", "bernoulli"), **kwargs)

    def extra_repr(self) -> str:
        return (f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, "
                f"visible={self.visible.spec()!r}, hidden={self.hidden.spec()!r}")

    # -- input checks ---------------------------------------------------------------------------
    def check_visible(self, v, name: str = "v", relaxed: bool = False) -> torch.Tensor:
        """Check a batch of visible states: shape ``(n, n_visible)``, finite, in the support
        (``relaxed``: in its convex hull, see :meth:`boltzkit.units.Units.check`).
        Returns it as a tensor of this model's dtype and device."""
        return self._check(v, self.visible, self.n_visible, name, relaxed)

    def check_hidden(self, h, name: str = "h", relaxed: bool = False) -> torch.Tensor:
        """Check a batch of hidden states: shape ``(n, n_hidden)``, finite, in the support."""
        return self._check(h, self.hidden, self.n_hidden, name, relaxed)

    def _check(self, x, units, width, name, relaxed):
        if not torch.is_tensor(x):
            raise ValueError(f"{name}: expected a tensor of shape (n, {width}), "
                             f"got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != width:
            raise ValueError(f"{name}: expected shape (n, {width}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one row, got an empty batch")
        x = x.to(device=self.weight.device, dtype=self.weight.dtype)
        units.check(x, name, relaxed)
        return x

    # -- fields and conditionals ---------------------------------------------------------------
    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """``b + v W``, shape ``(n, n_hidden)``."""
        return torch.addmm(self.hidden_bias, v, self.weight)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """``a + h Wᵀ``, shape ``(n, n_visible)``."""
        return torch.addmm(self.visible_bias, h, self.weight.t())

    def hidden_mean(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """E[h | v], shape ``(n, n_hidden)``."""
        return self.hidden.mean(self.hidden_field(v), beta)

    def visible_mean(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """E[v | h], shape ``(n, n_visible)``."""
        return self.visible.mean(self.visible_field(h), beta)

    def sample_hidden(self, v: torch.Tensor, generator: Optional[torch.Generator] = None,
                      beta: float = 1.0) -> torch.Tensor:
        """A draw of h ~ p(h | v), shape ``(n, n_hidden)``."""
        return self.hidden.sample(self.hidden_field(v), generator, beta)

    def sample_visible(self, h: torch.Tensor, generator: Optional[torch.Generator] = None,
                       beta: float = 1.0) -> torch.Tensor:
        """A draw of v ~ p(v | h), shape ``(n, n_visible)``."""
        return self.visible.sample(self.visible_field(h), generator, beta)

    def gibbs_vhv(self, v: torch.Tensor, generator: Optional[torch.Generator] = None,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs step v -> h -> v'. Returns ``(h, v')``, each ``(n, units)``."""
        h = self.sample_hidden(v, generator, beta)
        return h, self.sample_visible(h, generator, beta)

    def gibbs_hvh(self, h: torch.Tensor, generator: Optional[torch.Generator] = None,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs step h -> v -> h'. Returns ``(v, h')``."""
        v = self.sample_visible(h, generator, beta)
        return v, self.sample_hidden(v, generator, beta)

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction E[v | E[h | v]], shape ``(n, n_visible)``."""
        return self.visible_mean(self.hidden_mean(v))

    # -- energies -------------------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """E(v, h), shape ``(n,)``."""
        return (self.visible.base(v) + self.hidden.base(h) - v @ self.visible_bias
                - h @ self.hidden_bias - ((v @ self.weight) * h).sum(-1))

    def free_energy(self, v: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), shape ``(n,)``.

        With ``beta`` != 1 this is the free energy of the tempered model whose interaction and
        biases are scaled by ``beta`` (the base measures are not): ``base_v(v) - beta v·a -
        logpart_h(beta (b + v W))``.
        """
        return (self.visible.base(v) - beta * (v @ self.visible_bias)
                - self.hidden.log_partition(self.hidden_field(v), beta))

    def free_energy_hidden(self, h: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """F'(h) = -log sum_v exp(-E(v, h)) (an integral for Gaussian v), shape ``(n,)``."""
        return (self.hidden.base(h) - beta * (h @ self.hidden_bias)
                - self.visible.log_partition(self.visible_field(h), beta))

    def init_visible_bias(self, data: torch.Tensor) -> None:
        """Set the visible biases so that, with zero weights, the model reproduces the data's
        per-feature mean (log p/(1-p) for binary units; Hinton's practical guide, section 8)."""
        mean = data.to(self.weight.device, self.weight.dtype).mean(0)
        with torch.no_grad():
            self.visible_bias.copy_(self.visible.init_bias(mean))
