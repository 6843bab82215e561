"""Deep Boltzmann machine (Salakhutdinov & Hinton 2009) with binary units.

Layers ``x_0 = v`` (visible), ``x_1, ..., x_L`` (hidden), sizes ``sizes = [n_0, n_1, ..., n_L]``;
each layer connects to its neighbours only. Energy of a joint state (a list of ``L + 1``
tensors, layer ``l`` of shape ``(n, n_l)``)::

    E(x) = - sum_{l=0}^{L} x_l · b_l - sum_{l=0}^{L-1} x_l W_l x_{l+1}

with ``W_l = weight_l`` ``(n_l, n_{l+1})`` and ``b_l = bias_l`` ``(n_l,)``. Given its two
neighbours, a layer's units are independent Bernoulli units with field

    t_l = b_l + x_{l-1} W_{l-1} + x_{l+1} W_lᵀ        (the missing neighbour of 0 or L omitted)

so the even layers (0, 2, ...) are independent of each other given the odd layers and the
other way round: block Gibbs alternates the two classes (:mod:`boltzkit.samplers.dbm`), and
either class can be summed out in closed form (softplus of its fields), which is what exact
enumeration (:mod:`boltzkit.exact.dbm`) and AIS (:mod:`boltzkit.evaluation.dbm`) use.

``L = 1`` is an RBM with binary units (``weight_0`` its weight, ``bias_0`` / ``bias_1`` its
visible and hidden biases).

This module holds parameters and energies only: no loops, no optimisers.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from .. import _validation as _v
from .._validation import real
from ..units import Beta, Bernoulli, row_beta
from ._validation import ConfigChecked, as_states, clip, config_keys, layer_sizes

__all__ = ["DBM"]

_BERNOULLI = Bernoulli()


def stack_arguments(kind: str, sizes, init_std, generator, device, dtype) -> tuple:
    """The checked constructor arguments of a stack of layers (DBM, DBN): ``(sizes, init_std,
    generator, device, dtype)``, the generator a fixed-seed one when none is given, after a
    check that the weights of ``sizes`` fit in memory (one line naming ``kind`` otherwise)."""
    sizes = layer_sizes(sizes, "sizes")
    init_std = real(init_std, "init_std", 0.0)
    if _v.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    device, dtype = _v.device(device), _v.float_dtype(dtype)
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    _v.memory(5 * 4 * n_weights, f"{kind}({list(sizes)}): its weights", device)
    return sizes, init_std, generator, device, dtype


class DBM(ConfigChecked):
    """Deep Boltzmann machine with binary (Bernoulli) units in every layer.

    Parameters
    ----------
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_L]``, at least two layers.
    init_std : float
        Weights start as N(0, init_std²); biases at 0.
    generator : torch.Generator, optional
        Source of the initial weights (default: seeded 0, so equal calls give equal models).
    device, dtype
        Where the parameters live (float32 by default).

    Attributes
    ----------
    weight_l : Parameter ``(n_l, n_{l+1})`` for ``l = 0 .. L-1``
    bias_l : Parameter ``(n_l,)`` for ``l = 0 .. L``
    sizes : tuple of int
    n_visible : int
        ``sizes[0]``.

    Layer states are passed as a list (or tuple) of ``L + 1`` tensors, layer ``l`` of shape
    ``(n, n_l)``; the public methods check them (``ValueError`` naming the argument) unless
    ``check=False``. ``beta`` (a number or a tensor ``(n,)``) scales every field.
    """

    def __init__(self, sizes: Sequence[int], *, init_std: float = 0.01,
                 generator: Optional[torch.Generator] = None, device=None, dtype=None):
        super().__init__()
        sizes, init_std, generator, device, dtype = stack_arguments(
            "DBM", sizes, init_std, generator, device, dtype)
        self.sizes = sizes
        self.n_visible = sizes[0]
        self.units = _BERNOULLI
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = torch.randn(a, b, generator=generator, dtype=dtype,
                            device=generator.device) * init_std
            self.register_parameter(f"weight_{l}", nn.Parameter(w.to(device)))
        for l, n in enumerate(sizes):
            self.register_parameter(f"bias_{l}", nn.Parameter(torch.zeros(n, dtype=dtype,
                                                                          device=device)))

    @property
    def n_layers(self) -> int:
        """Number of layers, visible included (``L + 1``)."""
        return len(self.sizes)

    @property
    def weights(self) -> List[torch.Tensor]:
        """``[weight_0, ..., weight_{L-1}]``."""
        return [getattr(self, f"weight_{l}") for l in range(self.n_layers - 1)]

    @property
    def biases(self) -> List[torch.Tensor]:
        """``[bias_0, ..., bias_L]``."""
        return [getattr(self, f"bias_{l}") for l in range(self.n_layers)]

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict:
        return {"sizes": list(self.sizes)}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        config_keys(config, ("sizes",), "DBM")
        if "sizes" not in config:
            raise ValueError("config['sizes']: missing")
        sizes = config["sizes"]
        if not isinstance(sizes, list) or len(sizes) < 2 or len(sizes) > 64 or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"config['sizes']: expected a list of 2 to 64 integers >= 1, got "
                             f"{clip(sizes)}")
        return {"sizes": sizes}

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the tensors of a model of ``config`` (nothing is allocated)."""
        sizes = cls._config_args(config)["sizes"]
        out = {f"weight_{l}": (a, b) for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))}
        out.update({f"bias_{l}": (n,) for l, n in enumerate(sizes)})
        return out

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}"

    # -- input checks ----------------------------------------------------------------------------
    def check_visible(self, v, name: str = "v", relaxed: bool = False) -> torch.Tensor:
        """A batch of visible states ``(n, n_visible)``: finite, 0/1 (``relaxed``: in [0, 1]).
        Returns it in this model's dtype and device."""
        return as_states(v, units=self.units, width=self.n_visible, name=name, relaxed=relaxed,
                         like=self.bias_0)

    def check_layers(self, layers, name: str = "layers", relaxed: bool = False
                     ) -> List[torch.Tensor]:
        """A list of ``L + 1`` layer states (layer ``l`` ``(n, n_l)``, the same ``n``), each
        checked as :meth:`check_visible` checks ``v``."""
        if isinstance(layers, torch.Tensor) or not isinstance(layers, (list, tuple)):
            raise ValueError(f"{name}: expected a list of {self.n_layers} tensors (one per "
                             f"layer), got {type(layers).__name__}")
        if len(layers) != self.n_layers:
            raise ValueError(f"{name}: expected {self.n_layers} layers, got {len(layers)}")
        out = [as_states(x, units=self.units, width=n, name=f"{name}[{l}]", relaxed=relaxed,
                         like=self.bias_0) for l, (x, n) in enumerate(zip(layers, self.sizes))]
        rows = out[0].shape[0]
        for l, x in enumerate(out):
            if x.shape[0] != rows:
                raise ValueError(f"{name}[{l}]: expected {rows} rows like {name}[0], got "
                                 f"{x.shape[0]}")
        return out

    # -- fields and conditionals -----------------------------------------------------------------
    def field(self, l: int, below: Optional[torch.Tensor], above: Optional[torch.Tensor]
              ) -> torch.Tensor:
        """``b_l + below W_{l-1} + above W_lᵀ``, shape ``(n, n_l)``; ``below`` (layer l-1,
        ``(n, n_{l-1})``) and ``above`` (layer l+1) may be None (a missing neighbour, or one
        left out on purpose). Never checks."""
        b = getattr(self, f"bias_{l}")
        out = None
        if below is not None and l > 0:
            out = torch.addmm(b, below, getattr(self, f"weight_{l - 1}"))
        if above is not None and l < self.n_layers - 1:
            wt = getattr(self, f"weight_{l}").t()
            out = torch.addmm(b, above, wt) if out is None else out.addmm_(above, wt)
        if out is None:
            n = (below if below is not None else above)
            out = b.expand(n.shape[0], -1) if n is not None else b.unsqueeze(0)
        return out

    def layer_field(self, l: int, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """The field of layer ``l`` given its neighbours in ``layers`` (a list of ``L + 1``
        tensors; only ``layers[l - 1]`` and ``layers[l + 1]`` are read), ``(n, n_l)``."""
        below = layers[l - 1] if l > 0 else None
        above = layers[l + 1] if l < self.n_layers - 1 else None
        return self.field(l, below, above)

    def layer_mean(self, l: int, layers: Sequence[torch.Tensor], beta: Beta = 1.0, *,
                   check: bool = True) -> torch.Tensor:
        """``E_beta[x_l | neighbours] = sigmoid(beta t_l)``, ``(n, n_l)``."""
        l = self._layer_index(l)
        if check:
            layers = self.check_layers(layers, relaxed=True)
        return self.units.mean(self.layer_field(l, layers),
                               row_beta(beta, layers[0].shape[0]))

    def sample_layer(self, l: int, layers: Sequence[torch.Tensor],
                     generator: Optional[torch.Generator] = None, beta: Beta = 1.0, *,
                     check: bool = True) -> torch.Tensor:
        """A draw of ``x_l ~ p_beta(x_l | neighbours)``, ``(n, n_l)``."""
        return self.units.sample_from_mean(self.layer_mean(l, layers, beta, check=check),
                                           generator)

    def _layer_index(self, l) -> int:
        l = _v.integer(l, "l", 0)
        if l >= self.n_layers:
            raise ValueError(f"l: expected a layer index below {self.n_layers}, got {l}")
        return l

    # -- energies --------------------------------------------------------------------------------
    def energy(self, layers: Sequence[torch.Tensor], *, check: bool = True) -> torch.Tensor:
        """E(x), shape ``(n,)`` for ``layers`` a list of ``L + 1`` tensors ``(n, n_l)`` (0/1
        states; with ``check=False`` any values, e.g. mean-field means, for which this is
        ``E_q[E]`` under the factorised q of those means)."""
        if check:
            layers = self.check_layers(layers)
        out = None
        for l, x in enumerate(layers):
            t = -(x @ getattr(self, f"bias_{l}"))
            out = t if out is None else out + t
        for l in range(self.n_layers - 1):
            out = out - ((layers[l] @ getattr(self, f"weight_{l}")) * layers[l + 1]).sum(-1)
        return out

    def forward(self, layers: Sequence[torch.Tensor]) -> torch.Tensor:
        """The energy (see :meth:`energy`)."""
        return self.energy(layers)

    def init_visible_bias(self, data: torch.Tensor) -> None:
        """Set ``bias_0`` to the data's log-odds (rates clipped to [1e-3, 1 - 1e-3])."""
        mean = self.check_visible(data, "data", relaxed=True).mean(0)
        with torch.no_grad():
            self.bias_0.copy_(self.units.init_bias(mean))
