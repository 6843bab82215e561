"""Autoencoders: deterministic encoder-decoder networks trained by backpropagation.

One class, :class:`Autoencoder`, covers the three classic kinds:

- the one-hidden-layer autoencoder with tied weights (``Autoencoder([784, 1000])``): code
  ``h = sigmoid(b + x W)``, reconstruction ``x̂ = sigmoid(a + h Wᵀ)``;
- the denoising autoencoder of Vincent, Larochelle, Bengio & Manzagol (2008): the same network
  with ``corruption=ν``, trained to reconstruct each input from a copy in which a random
  fraction ν of the components was set to 0 ("masking noise");
- the deep autoencoder of Hinton & Salakhutdinov (2006), ``Autoencoder([784, 1000, 500, 250,
  30], code="linear", tied=False)``: an encoder of sigmoid layers ending in a linear code layer,
  and a decoder that mirrors it, made by :meth:`Autoencoder.unroll` from a greedily trained
  stack of RBMs (see :mod:`boltzkit.training.autoencoders`) or started at random.

Layers and parameters
---------------------
Sizes ``[n_0, n_1, ..., n_L]`` (``n_0`` the visible layer, ``n_L`` the code). Layer ``l``
(``0 <= l < L``) holds, with the names and shapes of the RBM between ``x_l`` and ``x_{l+1}``:

- ``weight_l`` ``(n_l, n_{l+1})``, ``hidden_bias_l`` ``(n_{l+1},)``: the encoder,
  ``x_{l+1} = f_{l+1}(hidden_bias_l + x_l W_l)``;
- ``visible_bias_l`` ``(n_l,)`` and, unless ``tied``, ``decoder_weight_l`` ``(n_l, n_{l+1})``:
  the decoder, ``y_l = g_l(visible_bias_l + y_{l+1} D_lᵀ)`` with ``D_l = decoder_weight_l``
  (``tied``: ``D_l = W_l``, the same tensor, so the network has no ``decoder_weight_l``).

``f`` is the logistic sigmoid for the hidden layers and ``code`` ("sigmoid" or "linear") for the
code layer ``x_L``; ``g`` is the sigmoid for the hidden layers and, for the output ``y_0 = x̂``,
the mean of the ``visible`` family: ``"bernoulli"`` (sigmoid; data in [0, 1]) or ``"gaussian"``
(identity; real data). These are exactly the RBMs' conditional means, which is why a stack of
RBMs unrolls into the network without change (:meth:`Autoencoder.unroll`): the encoder is the
stack's up-pass of means, the decoder its down-pass.

Loss (per row, summed over the visible units, averaged over rows by :meth:`Autoencoder.loss`)
-----------------------------------------------------------------------------------------------
``bernoulli``: the cross-entropy ``Σ_i softplus(t_i) - x_i t_i`` of the output field ``t``
(``x̂ = sigmoid(t)``), formed from ``t`` so that it never overflows; ``gaussian``: ``½ Σ_i
(x_i - t_i)²``. Both are the negative log-likelihood of ``x`` under the visible family with mean
``x̂`` (up to a constant). :meth:`Autoencoder.reconstruction_error` is the plain squared error
``Σ_i (x_i - x̂_i)²`` per row, Hinton & Salakhutdinov's measure.

Initial weights (``generator``): each weight matrix is uniform in ``±s √(6 / (n_in + n_out))``
(Glorot & Bengio 2010) with ``s = sigmoid_scale`` where the layer it feeds is a sigmoid and
``s = 1`` where it is linear; biases start at 0. ``sigmoid_scale = 1`` (the default) is plain
Glorot initialisation; ``4`` makes up for the logistic sigmoid's slope of 1/4 at 0, which a
deep sigmoid network trained from random weights needs: on MNIST, 784-1000-500-250-30 trained by
Adam from plain Glorot weights stays near blurred average digits for tens of epochs, from 4x
weights it learns (see BENCHMARKS.md).

This module holds parameters and the forward computation only: training is
:func:`boltzkit.training.autoencoders.fit_autoencoder` (``torch.optim``), greedy pre-training
:func:`boltzkit.training.autoencoders.pretrain_rbms`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import _validation as _v
from ..units import get_units
from ._validation import (ConfigChecked, as_states, clip, config_bool, config_choice,
                          config_keys, layer_sizes)

__all__ = ["Autoencoder", "VISIBLE", "CODES"]

#: the visible families an autoencoder reconstructs (output mean, loss)
VISIBLE = ("bernoulli", "gaussian")
#: the code layer's activations
CODES = ("sigmoid", "linear")


def _choice(value, name: str, choices) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {', '.join(repr(c) for c in choices)}, got "
                         f"{clip(value)}")
    return value


def _corruption(value, name: str = "corruption") -> float:
    return _v.real(value, name, 0.0, 1.0, strict_maximum=True)


class Autoencoder(ConfigChecked):
    """An autoencoder of sigmoid layers (see the module docstring).

    Parameters
    ----------
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_code]``, at least two.
    visible : "bernoulli" or "gaussian"
        What the output reconstructs: probabilities in [0, 1] (sigmoid output, cross-entropy
        loss) or real values (linear output, squared-error loss).
    code : "sigmoid" or "linear"
        The code layer's activation (Hinton & Salakhutdinov's deep autoencoder: linear).
    tied : bool
        Decoder weights are the encoder's, transposed (the same tensors); otherwise each layer
        has its own ``decoder_weight_l``.
    corruption : float in [0, 1)
        Masking noise of a denoising autoencoder: the fraction of input components that
        :meth:`loss` sets to 0 (each independently) before encoding; 0 for a plain autoencoder.
    sigmoid_scale : float > 0
        Multiplier of the Glorot bound of the weights that feed sigmoid units (see the module
        docstring): 1 is plain Glorot, 4 the scale for deep sigmoid networks.
    generator : torch.Generator, optional
        Source of the initial weights (default: seeded 0, so equal calls give equal models).
    device, dtype
        Where the parameters live (float32 by default).

    Inputs: :meth:`encode`, :meth:`forward`, :meth:`loss` and :meth:`reconstruction_error`
    check their ``x`` (a tensor or NumPy array ``(n, n_visible)``, finite, in [0, 1] for
    bernoulli units) unless ``check=False``, raising one ``ValueError`` naming it.
    ``model(x)`` is the reconstruction ``x̂`` ``(n, n_visible)``.
    """

    def __init__(self, sizes: Sequence[int], visible: str = "bernoulli", code: str = "sigmoid",
                 *, tied: bool = True, corruption: float = 0.0, sigmoid_scale: float = 1.0,
                 generator: Optional[torch.Generator] = None, device=None, dtype=None):
        super().__init__()
        sizes = layer_sizes(sizes, "sizes", "code")
        self.visible = _choice(visible, "visible", VISIBLE)
        self.code = _choice(code, "code", CODES)
        self.tied = _v.boolean(tied, "tied")
        self.corruption = _corruption(corruption)
        sigmoid_scale = _v.real(sigmoid_scale, "sigmoid_scale", 0.0, strict_minimum=True)
        if _v.generator(generator) is None:
            generator = torch.Generator().manual_seed(0)
        device, dtype = _v.device(device), _v.float_dtype(dtype)
        n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:])) * (1 if self.tied else 2)
        # weights, their gradients and the optimiser's two moment buffers (Adam)
        _v.memory(4 * 4 * n_weights, f"Autoencoder({list(sizes)}): its weights", device)
        self.sizes = sizes
        self.n_visible, self.n_code = sizes[0], sizes[-1]
        self._units = get_units(self.visible)
        top = len(sizes) - 2
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            enc_scale = 1.0 if (l == top and self.code == "linear") else sigmoid_scale
            self.register_parameter(f"weight_{l}", nn.Parameter(
                _glorot(a, b, enc_scale, generator, dtype, device)))
            self.register_parameter(f"hidden_bias_{l}", nn.Parameter(
                torch.zeros(b, dtype=dtype, device=device)))
            self.register_parameter(f"visible_bias_{l}", nn.Parameter(
                torch.zeros(a, dtype=dtype, device=device)))
            if not self.tied:
                dec_scale = 1.0 if (l == 0 and self.visible == "gaussian") else sigmoid_scale
                self.register_parameter(f"decoder_weight_{l}", nn.Parameter(
                    _glorot(a, b, dec_scale, generator, dtype, device)))

    @property
    def n_layers(self) -> int:
        """Weight layers of the encoder (``L``; the decoder has as many)."""
        return len(self.sizes) - 1

    def decoder_weight(self, l: int) -> torch.Tensor:
        """``D_l`` ``(n_l, n_{l+1})``: ``decoder_weight_l``, or ``weight_l`` itself when tied."""
        return getattr(self, f"weight_{l}" if self.tied else f"decoder_weight_{l}")

    # -- configuration ---------------------------------------------------------------------------
    def config(self) -> dict:
        return {"sizes": list(self.sizes), "visible": self.visible, "code": self.code,
                "tied": self.tied, "corruption": self.corruption}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        config_keys(config, ("sizes", "visible", "code", "tied", "corruption"), "Autoencoder")
        sizes = config.get("sizes")
        if not isinstance(sizes, list) or len(sizes) < 2 or len(sizes) > 64 or any(
                isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise ValueError(f"config['sizes']: expected a list of 2 to 64 integers >= 1, got "
                             f"{clip(sizes)}")
        corruption = config.get("corruption", 0.0)
        if isinstance(corruption, bool) or not isinstance(corruption, (int, float)) or \
                not 0.0 <= corruption < 1.0:
            raise ValueError(f"config['corruption']: expected a number in [0, 1), got "
                             f"{clip(corruption)}")
        return {"sizes": sizes, "visible": config_choice(config, "visible", VISIBLE, "bernoulli"),
                "code": config_choice(config, "code", CODES, "sigmoid"),
                "tied": config_bool(config, "tied", True), "corruption": float(corruption)}

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the tensors a model of ``config`` holds (nothing allocated)."""
        args = cls._config_args(config)
        sizes, out = args["sizes"], {}
        for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            out.update({f"weight_{l}": (a, b), f"hidden_bias_{l}": (b,),
                        f"visible_bias_{l}": (a,)})
            if not args["tied"]:
                out[f"decoder_weight_{l}"] = (a, b)
        return out

    def extra_repr(self) -> str:
        return (f"sizes={list(self.sizes)}, visible={self.visible!r}, code={self.code!r}, "
                f"tied={self.tied}, corruption={self.corruption:g}")

    # -- from a stack of RBMs ------------------------------------------------------------------
    @classmethod
    def unroll(cls, rbms, *, corruption: float = 0.0) -> "Autoencoder":
        """The untied autoencoder whose encoder is a stack of RBMs' up-pass of conditional means
        and whose decoder is its down-pass (Hinton & Salakhutdinov 2006): layer ``l`` gets
        ``weight_l = decoder_weight_l = rbms[l].weight``, ``hidden_bias_l =
        rbms[l].hidden_bias``, ``visible_bias_l = rbms[l].visible_bias`` (copies).

        ``rbms``: a sequence of :class:`~boltzkit.models.RBM` (or a :class:`DBN`, read through
        its ``rbm(l)``), sizes chaining (``rbms[l].n_hidden == rbms[l + 1].n_visible``); the
        bottom one of bernoulli or gaussian visible units, every hidden layer bernoulli but the
        top one's, which is bernoulli (code "sigmoid") or gaussian (code "linear": its mean is
        the field itself), and the visible layers above the bottom bernoulli (they take the
        means of the layer below). On the bottom RBM's device and dtype.
        """
        from .dbn import DBN
        from .rbm import RBM

        if isinstance(rbms, DBN):
            rbms = [rbms.rbm(l) for l in range(rbms.n_rbms)]
        if isinstance(rbms, RBM) or not isinstance(rbms, (list, tuple)) or not rbms:
            raise ValueError(f"rbms: expected a non-empty list of RBMs (or a DBN), got "
                             f"{type(rbms).__name__}")
        for l, r in enumerate(rbms):
            if not isinstance(r, RBM):
                raise ValueError(f"rbms[{l}]: expected an RBM, got {type(r).__name__}")
            if l > 0 and r.n_visible != rbms[l - 1].n_hidden:
                raise ValueError(f"rbms[{l}]: expected {rbms[l - 1].n_hidden} visible units "
                                 f"(the hidden layer below), got {r.n_visible}")
            want_v = VISIBLE if l == 0 else ("bernoulli",)
            if r.visible.spec() not in want_v:
                raise ValueError(f"rbms[{l}]: expected {' or '.join(want_v)} visible units, got "
                                 f"{r.visible.spec()}")
            top = l == len(rbms) - 1
            want_h = ("bernoulli", "gaussian") if top else ("bernoulli",)
            if r.hidden.spec() not in want_h:
                raise ValueError(f"rbms[{l}]: expected {' or '.join(want_h)} hidden units, got "
                                 f"{r.hidden.spec()}")
        w0 = rbms[0].weight
        sizes = [rbms[0].n_visible] + [r.n_hidden for r in rbms]
        code = "linear" if rbms[-1].hidden.spec() == "gaussian" else "sigmoid"
        model = cls(sizes, rbms[0].visible.spec(), code, tied=False, corruption=corruption,
                    device=w0.device, dtype=w0.dtype)
        with torch.no_grad():
            for l, r in enumerate(rbms):
                getattr(model, f"weight_{l}").copy_(r.weight)
                getattr(model, f"decoder_weight_{l}").copy_(r.weight)
                getattr(model, f"hidden_bias_{l}").copy_(r.hidden_bias)
                getattr(model, f"visible_bias_{l}").copy_(r.visible_bias)
        return model

    # -- inputs ----------------------------------------------------------------------------------
    def check_visible(self, x, name: str = "x") -> torch.Tensor:
        """``x`` checked: ``(n, n_visible)``, finite, in [0, 1] for bernoulli units; returned in
        the model's dtype and device."""
        return as_states(x, units=self._units, width=self.n_visible, name=name, relaxed=True,
                         like=self.weight_0)

    def check_code(self, z, name: str = "z") -> torch.Tensor:
        """A batch of codes ``(n, n_code)``, finite (in [0, 1] for a sigmoid code)."""
        units = get_units("bernoulli" if self.code == "sigmoid" else "gaussian")
        return as_states(z, units=units, width=self.n_code, name=name, relaxed=True,
                         like=self.weight_0)

    # -- the two passes -------------------------------------------------------------------------
    def encode(self, x, *, layer: Optional[int] = None, check: bool = True) -> torch.Tensor:
        """The code ``x_L`` ``(n, n_code)`` of ``x`` ``(n, n_visible)``; with ``layer`` the
        activations of that layer instead (``x_layer`` ``(n, n_layer)``, 0 < layer <= L)."""
        if check:
            x = self.check_visible(x)
        top = self.n_layers
        stop = top if layer is None else _v.integer(layer, "layer", 1)
        if stop > top:
            raise ValueError(f"layer: expected at most {top}, got {stop}")
        for l in range(stop):
            t = torch.addmm(getattr(self, f"hidden_bias_{l}"), x, getattr(self, f"weight_{l}"))
            x = t if (l == top - 1 and self.code == "linear") else torch.sigmoid(t)
        return x

    def decode_field(self, z, *, check: bool = True) -> torch.Tensor:
        """The output layer's field ``t`` ``(n, n_visible)`` for codes ``z`` ``(n, n_code)``
        (``x̂ = sigmoid(t)`` for bernoulli units, ``t`` itself for gaussian)."""
        y = self.check_code(z) if check else z
        for l in range(self.n_layers - 1, -1, -1):
            t = torch.addmm(getattr(self, f"visible_bias_{l}"), y, self.decoder_weight(l).t())
            y = t if l == 0 else torch.sigmoid(t)
        return y

    def decode(self, z, *, check: bool = True) -> torch.Tensor:
        """The reconstruction ``x̂`` ``(n, n_visible)`` of codes ``z`` ``(n, n_code)``."""
        t = self.decode_field(z, check=check)
        return torch.sigmoid(t) if self.visible == "bernoulli" else t

    def forward(self, x, *, check: bool = True) -> torch.Tensor:
        """The reconstruction ``x̂ = decode(encode(x))`` ``(n, n_visible)`` (no corruption)."""
        return self.decode(self.encode(x, check=check), check=False)

    # -- training criterion ----------------------------------------------------------------------
    def corrupt(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``x`` ``(n, n_visible)`` with each component set to 0 with probability
        ``corruption`` (masking noise), independently, drawn from ``generator``; ``x`` itself
        when ``corruption`` is 0."""
        if self.corruption == 0.0:
            return x
        if not isinstance(generator, torch.Generator):
            raise ValueError(f"generator: a denoising autoencoder (corruption "
                             f"{self.corruption:g}) draws its masking noise from a "
                             f"torch.Generator, got {type(generator).__name__}")
        keep = torch.rand(x.shape, generator=generator, dtype=x.dtype,
                          device=generator.device).to(x.device) >= self.corruption
        return x * keep

    def row_loss(self, x, generator: Optional[torch.Generator] = None, *,
                 check: bool = True) -> torch.Tensor:
        """The loss of each row ``(n,)``: cross-entropy (bernoulli) or half the squared error
        (gaussian) summed over the visible units, of the reconstruction of ``x`` from its
        corrupted copy (``corruption`` > 0: masking noise drawn from ``generator``, which is
        then required) against ``x`` itself."""
        if check:
            x = self.check_visible(x)
        t = self.decode_field(self.encode(self.corrupt(x, generator), check=False), check=False)
        if self.visible == "bernoulli":
            return (F.softplus(t) - x * t).sum(-1)
        return 0.5 * (x - t).pow(2).sum(-1)

    def loss(self, x, generator: Optional[torch.Generator] = None, *,
             check: bool = True) -> torch.Tensor:
        """The mean of :meth:`row_loss` over the rows of ``x`` ``(n, n_visible)``: a scalar
        tensor to differentiate."""
        return self.row_loss(x, generator, check=check).mean()

    @torch.no_grad()
    def reconstruction_error(self, x, *, chunk_rows: int = 4096, check: bool = True
                             ) -> torch.Tensor:
        """``Σ_i (x_i - x̂_i)²`` per row ``(n,)`` (no corruption), ``chunk_rows`` rows at a
        time."""
        if check:
            x = self.check_visible(x)
        chunk_rows = _v.integer(chunk_rows, "chunk_rows", 1)
        return torch.cat([(part - self.forward(part, check=False)).pow(2).sum(-1)
                          for part in x.split(chunk_rows)])


def _glorot(n_in: int, n_out: int, scale: float, generator, dtype, device) -> torch.Tensor:
    bound = scale * math.sqrt(6.0 / (n_in + n_out))
    w = torch.rand(n_in, n_out, generator=generator, dtype=dtype, device=generator.device)
    w = (2.0 * w - 1.0) * bound
    return w if device is None else w.to(device)
