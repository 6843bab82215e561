"""Deep belief net (Hinton, Osindero & Teh 2006): a greedy stack of RBMs.

Sizes ``[n_0, n_1, ..., n_L]``, layer ``l`` an RBM between ``x_l`` and ``x_{l+1}`` with tensors
``weight_l`` ``(n_l, n_{l+1})``, ``visible_bias_l`` ``(n_l,)``, ``hidden_bias_l``
``(n_{l+1},)``. As a generative model the top RBM (layer ``L - 1``) is an undirected model of
``x_{L-1}, x_L`` and every layer below is a directed sigmoid belief layer,

    p(x_l | x_{l+1}) = prod_i p(x_li | visible_bias_l + x_{l+1} W_lᵀ)     (l < L - 1)

(the RBM's visible conditional), so ``p(v) = sum p_top(x_{L-1}) prod_l p(x_l | x_{l+1})``. The
hidden biases of the lower layers are not part of the generative model: with the weights they
make the recognition (up) pass ``q(x_{l+1} | x_l)``, the RBM's hidden conditional, that the
greedy training and the variational bound use. The visible layer may be of any unit family
(:mod:`boltzkit.units`); the hidden layers are binary.

Parameters and conditionals only; training is :func:`boltzkit.training.greedy.train_dbn`,
generation :mod:`boltzkit.samplers.dbn`, the bound :mod:`boltzkit.evaluation.dbn`.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from .. import _validation as _v
from ..units import get_units
from ._validation import ConfigChecked, as_states, clip, config_keys, config_spec
from .dbm import stack_arguments
from .rbm import RBM

__all__ = ["DBN"]


class DBN(ConfigChecked):
    """Deep belief net: a stack of RBMs (see the module docstring).

    Parameters
    ----------
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_L]``, at least two layers.
    visible : str or Units
        The visible layer's unit family (hidden layers are ``"bernoulli"``).
    init_std : float
        Weights start as N(0, init_std²); biases at 0.
    generator, device, dtype
        As for :class:`~boltzkit.models.RBM`.
    """

    def __init__(self, sizes: Sequence[int], visible="bernoulli", *, init_std: float = 0.01,
                 generator: Optional[torch.Generator] = None, device=None, dtype=None):
        super().__init__()
        sizes, init_std, generator, device, dtype = stack_arguments(
            "DBN", sizes, init_std, generator, device, dtype)
        self.visible = get_units(visible)
        self.visible.check_size(sizes[0], "sizes[0]")
        if self.visible.init_parameters(sizes[0]):
            raise ValueError(f"visible: a DBN takes unit families that own no parameters, got "
                             f"{self.visible.spec()!r}")
        self.hidden = get_units("bernoulli")
        self.sizes, self.n_visible = sizes, sizes[0]
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = torch.randn(a, b, generator=generator, dtype=dtype,
                            device=generator.device) * init_std
            self.register_parameter(f"weight_{l}", nn.Parameter(w.to(device)))
            self.register_parameter(f"visible_bias_{l}", nn.Parameter(
                torch.zeros(a, dtype=dtype, device=device)))
            self.register_parameter(f"hidden_bias_{l}", nn.Parameter(
                torch.zeros(b, dtype=dtype, device=device)))

    @property
    def n_rbms(self) -> int:
        """Number of RBMs in the stack (``L``)."""
        return len(self.sizes) - 1

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict:
        return {"sizes": list(self.sizes), "visible": self.visible.spec()}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        config_keys(config, ("sizes", "visible"), "DBN")
        sizes = config.get("sizes")
        if not isinstance(sizes, list) or len(sizes) < 2 or len(sizes) > 64 or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"config['sizes']: expected a list of 2 to 64 integers >= 1, got "
                             f"{clip(sizes)}")
        visible = config_spec(config, "visible", "bernoulli")
        get_units(visible).check_size(sizes[0], "config['sizes'][0]")
        return {"sizes": sizes, "visible": visible}

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        sizes = cls._config_args(config)["sizes"]
        out = {}
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            out.update({f"weight_{l}": (a, b), f"visible_bias_{l}": (a,),
                        f"hidden_bias_{l}": (b,)})
        return out

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}, visible={self.visible.spec()!r}"

    # -- the RBMs of the stack -------------------------------------------------------------------
    def _index(self, l) -> int:
        l = _v.integer(l, "l", 0)
        if l >= self.n_rbms:
            raise ValueError(f"l: expected a layer index below {self.n_rbms}, got {l}")
        return l

    def rbm(self, l: int) -> RBM:
        """Layer ``l``'s RBM ``(n_l, n_{l+1})``, a copy of its parameters (changing it leaves
        the DBN as it is; :meth:`set_rbm` writes one back)."""
        l = self._index(l)
        w = getattr(self, f"weight_{l}")
        m = RBM(self.sizes[l], self.sizes[l + 1], self.visible if l == 0 else "bernoulli",
                "bernoulli", init_std=0.0, device=w.device, dtype=w.dtype)
        with torch.no_grad():
            m.weight.copy_(w)
            m.visible_bias.copy_(getattr(self, f"visible_bias_{l}"))
            m.hidden_bias.copy_(getattr(self, f"hidden_bias_{l}"))
        return m

    def set_rbm(self, l: int, rbm: RBM) -> None:
        """Copy ``rbm``'s parameters into layer ``l`` (its sizes and units must match)."""
        l = self._index(l)
        want = (self.sizes[l], self.sizes[l + 1])
        if not isinstance(rbm, RBM) or (rbm.n_visible, rbm.n_hidden) != want:
            raise ValueError(f"rbm: expected an RBM{want}, got "
                             f"{rbm!r}" if isinstance(rbm, RBM) else
                             f"rbm: expected an RBM{want}, got {type(rbm).__name__}")
        units = self.visible if l == 0 else self.hidden
        if rbm.visible != units or rbm.hidden != self.hidden:
            raise ValueError(f"rbm: expected {units.spec()}-bernoulli units for layer {l}, got "
                             f"{rbm.visible.spec()}-{rbm.hidden.spec()}")
        with torch.no_grad():
            getattr(self, f"weight_{l}").copy_(rbm.weight)
            getattr(self, f"visible_bias_{l}").copy_(rbm.visible_bias)
            getattr(self, f"hidden_bias_{l}").copy_(rbm.hidden_bias)

    # -- input checks and the two passes ---------------------------------------------------------
    def check_visible(self, v, name: str = "v", relaxed: bool = False) -> torch.Tensor:
        """A batch ``(n, n_visible)`` on the visible family's support (its hull when
        ``relaxed``), in the model's dtype and device."""
        return as_states(v, units=self.visible, width=self.n_visible, name=name,
                         relaxed=relaxed, like=self.weight_0)

    def up_mean(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """Recognition ``q(x_{l+1} = 1 | x_l)`` = sigmoid(hidden_bias_l + x_l W_l), ``(n,
        n_{l+1})`` for ``x`` ``(n, n_l)`` (never checks)."""
        return torch.sigmoid(torch.addmm(getattr(self, f"hidden_bias_{l}"), x,
                                         getattr(self, f"weight_{l}")))

    def down_mean(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """Generative ``E[x_l | x_{l+1}]`` from layer ``l``'s visible conditional, ``(n, n_l)``
        for ``x`` ``(n, n_{l+1})`` (never checks)."""
        units = self.visible if l == 0 else self.hidden
        return units.mean(torch.addmm(getattr(self, f"visible_bias_{l}"), x,
                                      getattr(self, f"weight_{l}").t()))

    def transform(self, v, *, layer: Optional[int] = None, check: bool = True) -> torch.Tensor:
        """Features: the recognition means of layer ``layer`` (default the top, ``L``) by the
        up pass of means, ``(n, n_layer)`` for ``v`` ``(n, n_visible)``."""
        x = self.check_visible(v, "v", relaxed=True) if check else v
        top = self.n_rbms if layer is None else _v.integer(layer, "layer", 0)
        if top > self.n_rbms:
            raise ValueError(f"layer: expected at most {self.n_rbms}, got {top}")
        for l in range(top):
            x = self.up_mean(l, x)
        return x

    def init_visible_bias(self, data: torch.Tensor) -> None:
        """Set the bottom RBM's visible biases to the data's base rates."""
        mean = self.check_visible(data, "data", relaxed=True).mean(0)
        with torch.no_grad():
            self.visible_bias_0.copy_(self.visible.init_bias(mean))
