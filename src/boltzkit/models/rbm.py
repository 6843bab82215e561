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

Inverse temperature: every conditional and free energy takes ``beta``, a number or a tensor of
shape ``(n,)`` (one per row of the batch, e.g. one per chain of parallel tempering); it scales
the fields (biases and interaction) and not the base measures, see :mod:`boltzkit.units`.

Parameters owned by a unit family (:meth:`boltzkit.units.Units.init_parameters`) are registered
as ``visible_<name>`` / ``hidden_<name>`` and passed back to the family, keyed by ``<name>``;
:meth:`RBM.constrain_` hands them to the family's ``constrain_`` (the training driver calls it
after every update).

A visible family may couple its states through a statistic ``phi(v)`` (linear in v,
:meth:`boltzkit.units.Units.statistic`; ``v`` itself for every family but one): the energy is
then ``base_v(v) + base_h(h) - phi(v)·a - h·b - phi(v) W h`` and the hidden field ``b + phi(v) W``.
The learned-variance Gaussian (``"gaussian:learned"``, tensor ``visible_log_variance`` ``z``,
``σ² = exp(z)``) has ``phi(v) = v / σ²`` and ``base_v(v) = Σ v²/(2σ²)``, which makes

    E(v, h) = Σ_i (v_i - a_i)²/(2σ_i²) - Σ_j b_j h_j - Σ_ij (v_i/σ_i²) W_ij h_j - Σ_i a_i²/(2σ_i²)

(Cho, Ilin & Raiko 2011, less a constant that cancels in every probability): p(v | h) =
N(a + W h, σ²), p_beta(v | h) = N(beta (a + W h), σ²). Only the visible layer may have such a
statistic.

This module holds parameters and energies only: no loops, no optimisers. Sampling chains live in
:mod:`boltzkit.samplers`, learning in :mod:`boltzkit.training`.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .. import _products as products
from .. import _validation as _v
from .._validation import integer, real
from ..units import Beta, Units, get_units, row_beta
from ._validation import ConfigChecked, as_states, config_int, config_keys, config_spec

__all__ = ["RBM"]


class RBM(ConfigChecked):
    """Restricted Boltzmann machine.

    Parameters
    ----------
    n_visible, n_hidden : int
        Layer sizes.
    visible, hidden : str or Units
        Unit families: ``"bernoulli"``, ``"spin"``, ``"gaussian"``, ``"gaussian:learned"``
        (visible only: a learned variance per unit), ``"softmax"``, ``"softmax:K"`` or a
        registered family (see :func:`boltzkit.units.get_units`).
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
    visible_<name>, hidden_<name> : Parameter
        The parameters a layer's family owns, as its ``init_parameters(n_units)`` made them
        (none for the built-in families). :attr:`visible_params` / :attr:`hidden_params` give
        them keyed by ``<name>``, as the family's methods take them.

    ``beta`` (methods below): a number or a tensor ``(n,)``, one inverse temperature per row.

    Inputs: the methods below check what they are given (a tensor or NumPy array of shape
    ``(n, units)``, finite, within the layer's support or its convex hull, e.g. [0, 1] for
    bernoulli units) and bring it to the model's dtype and device, raising one ``ValueError``
    naming the argument otherwise. Samplers and estimators, which pass the model's own states,
    skip that with ``check=False``; :meth:`hidden_field` / :meth:`visible_field` never check.
    ``model(v)`` is :meth:`free_energy` (the natural forward of an energy model).
    """

    def __init__(self, n_visible: int, n_hidden: int, visible="bernoulli", hidden="bernoulli", *,
                 init_std: float = 0.01, generator: Optional[torch.Generator] = None,
                 device=None, dtype=None):
        super().__init__()
        n_visible = integer(n_visible, "n_visible", 1)
        n_hidden = integer(n_hidden, "n_hidden", 1)
        init_std = real(init_std, "init_std", 0.0)
        if _v.generator(generator) is None:  # deterministic by default: the same model always
            generator = torch.Generator().manual_seed(0)
        device, dtype = _v.device(device), _v.float_dtype(dtype)
        # weights, biases, and the gradients, momentum and file copies training makes of them
        _v.memory(5 * 4 * n_visible * n_hidden, f"RBM({n_visible}, {n_hidden}): its weights",
                  device)
        self.visible: Units = get_units(visible)
        self.hidden: Units = get_units(hidden)
        self.visible.check_size(n_visible, "n_visible")
        self.hidden.check_size(n_hidden, "n_hidden")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        w = torch.randn(n_visible, n_hidden, generator=generator, dtype=dtype,
                        device=generator.device) * init_std
        self.weight = nn.Parameter(w.to(device))
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, dtype=dtype, device=device))
        self._visible_param_names = self._register_family("visible", self.visible, n_visible,
                                                          dtype, device)
        self._hidden_param_names = self._register_family("hidden", self.hidden, n_hidden,
                                                         dtype, device)
        if not self.hidden.identity_statistic:
            raise ValueError(f"hidden: {self.hidden.spec()} units couple through a statistic "
                             f"other than the state itself, which only the visible layer "
                             f"supports")

    def _register_family(self, layer, units, n_units, dtype, device) -> tuple:
        """Register the parameters ``units`` owns for ``layer`` as ``<layer>_<name>``."""
        owned = units.init_parameters(n_units, dtype=dtype, device=device)
        if not isinstance(owned, dict):
            raise ValueError(f"{layer}: {units!r}.init_parameters must return a dict of tensors, "
                             f"got {type(owned).__name__}")
        names = []
        for name, value in owned.items():
            full = f"{layer}_{name}"
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"{layer}: {units!r} names a parameter {name!r}, expected an "
                                 f"identifier")
            if not torch.is_tensor(value) or not value.is_floating_point():
                raise ValueError(f"{layer}: {units!r} parameter {name!r}: expected a floating "
                                 f"tensor, got {type(value).__name__}")
            if hasattr(self, full):
                raise ValueError(f"{layer}: {units!r} parameter {name!r} would be registered as "
                                 f"{full!r}, a name the RBM already uses")
            self.register_parameter(full, nn.Parameter(value.detach().to(device=device,
                                                                         dtype=dtype)))
            names.append(name)
        return tuple(names)

    @property
    def visible_params(self) -> Optional[dict]:
        """The visible family's parameters, ``{name: tensor}`` (``None`` when it owns none)."""
        names = self._visible_param_names
        return {n: getattr(self, "visible_" + n) for n in names} if names else None

    @property
    def hidden_params(self) -> Optional[dict]:
        """The hidden family's parameters, ``{name: tensor}`` (``None`` when it owns none)."""
        names = self._hidden_param_names
        return {n: getattr(self, "hidden_" + n) for n in names} if names else None

    # -- configuration (what a model file stores next to the tensors) --------------------------
    def config(self) -> dict:
        return {"n_visible": self.n_visible, "n_hidden": self.n_hidden,
                "visible": self.visible.spec(), "hidden": self.hidden.spec()}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        """The constructor's arguments from a configuration, checked strictly (see
        :mod:`boltzkit.models._validation`); nothing is allocated."""
        config_keys(config, ("n_visible", "n_hidden", "visible", "hidden"), "RBM")
        args = {"n_visible": config_int(config, "n_visible", 1),
                "n_hidden": config_int(config, "n_hidden", 1),
                "visible": config_spec(config, "visible", "bernoulli"),
                "hidden": config_spec(config, "hidden", "bernoulli")}
        for layer in ("visible", "hidden"):
            get_units(args[layer]).check_size(args["n_" + layer], f"config['n_{layer}']")
        return args

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the tensors a model of ``config`` holds, from the configuration
        alone (nothing is allocated; :func:`boltzkit.load` compares a file's tensors with them
        before it builds the model). The parameters a unit family owns are not included: their
        shapes are the family's to say."""
        a = cls._config_args(config)
        return {"weight": (a["n_visible"], a["n_hidden"]), "visible_bias": (a["n_visible"],),
                "hidden_bias": (a["n_hidden"],)}

    @staticmethod
    def check_tensors(tensors: dict) -> None:
        """Structural check of a state dict whose shapes fit the model: an RBM's parameters may
        take any finite values (which :func:`boltzkit.load` checks), except a learned
        log-variance (``visible_log_variance``), which must lie within ±30 (``ValueError``
        naming it otherwise)."""
        if "visible_log_variance" in tensors:
            from ..units.gaussian import LearnedGaussian

            LearnedGaussian.check_parameters({"log_variance": tensors["visible_log_variance"]})

    def constrain_(self) -> None:
        """Bring the unit families' parameters back into range, in place (e.g. the floor of a
        learned variance); nothing for families that own none. The training driver calls it
        after every update."""
        if self._visible_param_names:
            self.visible.constrain_(self.visible_params)
        if self._hidden_param_names:
            self.hidden.constrain_(self.hidden_params)

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
        return as_states(x, units=units, width=width, name=name, relaxed=relaxed,
                         like=self.weight)

    def _visible_in(self, v, check: bool, name: str = "v"):
        return self.check_visible(v, name, relaxed=True) if check else v

    def _hidden_in(self, h, check: bool, name: str = "h"):
        return self.check_hidden(h, name, relaxed=True) if check else h

    # -- fields and conditionals ---------------------------------------------------------------
    def visible_statistic(self, v: torch.Tensor) -> torch.Tensor:
        """``phi(v)``, how visible states meet the weights and visible biases, shape of ``v``
        ``(n, n_visible)``: ``v`` itself (the same tensor) for every family but
        ``gaussian:learned``, whose ``phi(v) = v / σ²``."""
        if self.visible.identity_statistic:
            return v
        return self.visible.statistic(v, params=self.visible_params)

    def hidden_field(self, v: torch.Tensor) -> torch.Tensor:
        """``b + phi(v) W`` (``b + v W`` but for ``gaussian:learned`` visible units, see
        :meth:`visible_statistic`), shape ``(n, n_hidden)``."""
        return products.addmm(self.hidden_bias, self.visible_statistic(v), self.weight)

    def visible_field(self, h: torch.Tensor) -> torch.Tensor:
        """``a + h Wᵀ``, shape ``(n, n_visible)``."""
        return products.addmm(self.visible_bias, h, self.weight.t())

    def hidden_mean(self, v: torch.Tensor, beta: Beta = 1.0, *, check: bool = True
                    ) -> torch.Tensor:
        """E_beta[h | v], shape ``(n, n_hidden)`` for ``v`` ``(n, n_visible)``; ``beta`` a number
        or ``(n,)``."""
        v = self._visible_in(v, check)
        return self.hidden.mean(self.hidden_field(v), row_beta(beta, v.shape[0]),
                                params=self.hidden_params)

    def visible_mean(self, h: torch.Tensor, beta: Beta = 1.0, *, check: bool = True
                     ) -> torch.Tensor:
        """E_beta[v | h], shape ``(n, n_visible)`` for ``h`` ``(n, n_hidden)``; ``beta`` a number
        or ``(n,)``."""
        h = self._hidden_in(h, check)
        return self.visible.mean(self.visible_field(h), row_beta(beta, h.shape[0]),
                                 params=self.visible_params)

    def sample_hidden(self, v: torch.Tensor, generator: Optional[torch.Generator] = None,
                      beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """A draw of h ~ p_beta(h | v), shape ``(n, n_hidden)``; ``beta`` a number or ``(n,)``."""
        v = self._visible_in(v, check)
        return self.hidden.sample(self.hidden_field(v), generator, row_beta(beta, v.shape[0]),
                                  params=self.hidden_params)

    def sample_visible(self, h: torch.Tensor, generator: Optional[torch.Generator] = None,
                       beta: Beta = 1.0, *, check: bool = True) -> torch.Tensor:
        """A draw of v ~ p_beta(v | h), shape ``(n, n_visible)``; ``beta`` a number or ``(n,)``."""
        h = self._hidden_in(h, check)
        return self.visible.sample(self.visible_field(h), generator, row_beta(beta, h.shape[0]),
                                   params=self.visible_params)

    def gibbs_vhv(self, v: torch.Tensor, generator: Optional[torch.Generator] = None,
                  beta: Beta = 1.0, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs step v -> h -> v' at ``beta`` (a number or ``(n,)``). Returns
        ``(h, v')``, each ``(n, units)``."""
        h = self.sample_hidden(v, generator, beta, check=check)
        return h, self.sample_visible(h, generator, beta, check=False)

    def gibbs_hvh(self, h: torch.Tensor, generator: Optional[torch.Generator] = None,
                  beta: Beta = 1.0, *, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs step h -> v -> h' at ``beta`` (a number or ``(n,)``). Returns
        ``(v, h')``."""
        v = self.sample_visible(h, generator, beta, check=check)
        return v, self.sample_hidden(v, generator, beta, check=False)

    def reconstruct(self, v: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """Mean-field reconstruction E[v | E[h | v]], shape ``(n, n_visible)``."""
        return self.visible_mean(self.hidden_mean(v, check=check), check=False)

    # -- energies -------------------------------------------------------------------------------
    def energy(self, v: torch.Tensor, h: torch.Tensor, *, check: bool = True) -> torch.Tensor:
        """E(v, h), shape ``(n,)`` for ``v`` ``(n, n_visible)`` and ``h`` ``(n, n_hidden)``."""
        if check:  # a joint state: on the support itself (the energy of states, not of means)
            v, h = self.check_visible(v, "v"), self.check_hidden(h, "h")
        if check and v.shape[0] != h.shape[0]:
            raise ValueError(f"h: expected {v.shape[0]} rows like v, got {h.shape[0]}")
        x = self.visible_statistic(v)
        return (self.visible.base(v, params=self.visible_params)
                + self.hidden.base(h, params=self.hidden_params) - x @ self.visible_bias
                - h @ self.hidden_bias - ((x @ self.weight) * h).sum(-1))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """The free energy F(v) ``(n,)`` (see :meth:`free_energy`): ``rbm(v)``, and what
        ``torch.func.functional_call`` differentiates."""
        return self.free_energy(v)

    def free_energy(self, v: torch.Tensor, beta: Beta = 1.0, *, check: bool = True
                    ) -> torch.Tensor:
        """F(v) = -log sum_h exp(-E(v, h)), shape ``(n,)`` for ``v`` ``(n, n_visible)``.

        With ``beta`` != 1 this is the free energy of the tempered model whose interaction and
        biases are scaled by ``beta`` (the base measures are not): ``base_v(v) - beta phi(v)·a -
        logpart_h(beta (b + phi(v) W))`` (``phi(v) = v`` but for learned variances, which beta
        leaves alone); ``beta`` a number or ``(n,)`` (row i at ``beta[i]``).
        """
        v = self._visible_in(v, check)
        b = row_beta(beta, v.shape[0])
        return (self.visible.base(v, params=self.visible_params)
                - _times(b, self.visible_statistic(v) @ self.visible_bias)
                - self.hidden.log_partition(self.hidden_field(v), b, params=self.hidden_params))

    def free_energy_hidden(self, h: torch.Tensor, beta: Beta = 1.0, *, check: bool = True
                           ) -> torch.Tensor:
        """F'(h) = -log sum_v exp(-E(v, h)) (an integral for Gaussian v), shape ``(n,)`` for
        ``h`` ``(n, n_hidden)``; ``beta`` a number or ``(n,)``."""
        h = self._hidden_in(h, check)
        b = row_beta(beta, h.shape[0])
        return (self.hidden.base(h, params=self.hidden_params)
                - _times(b, h @ self.hidden_bias)
                - self.visible.log_partition(self.visible_field(h), b, params=self.visible_params))

    def init_visible_bias(self, data: torch.Tensor) -> None:
        """Set the visible biases so that, with zero weights, the model reproduces the data's
        per-feature mean (log p/(1-p) for binary units; Hinton's practical guide, section 8)."""
        mean = self.check_visible(data, "data", relaxed=True).mean(0)
        with torch.no_grad():
            self.visible_bias.copy_(self.visible.init_bias(mean))


def _times(beta: Beta, x: torch.Tensor) -> torch.Tensor:
    """``beta * x`` for per-row ``x`` ``(n,)`` and ``beta`` as :func:`~boltzkit.units.row_beta`
    gives it (a number, a 0-d tensor or ``(n, 1)``), shape ``(n,)``."""
    if isinstance(beta, torch.Tensor):
        return beta.reshape(-1).to(device=x.device, dtype=x.dtype) * x
    return beta * x
