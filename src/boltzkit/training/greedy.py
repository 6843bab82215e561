"""Greedy layer-wise training: deep belief nets (a stack of RBMs) and the pre-training of deep
Boltzmann machines. Every RBM is trained by :func:`boltzkit.training.fit`, unchanged.

Deep belief nets (Hinton, Osindero & Teh 2006)
----------------------------------------------
:func:`train_dbn` trains the bottom RBM on the data, then each next RBM on the previous RBM's
hidden activations: by default their conditional means ``q(h = 1 | x)`` (``features="mean"``,
the usual practice, which the RBM estimators accept as grey data), or ``n_samples`` binary
draws per row (``features="sample"``, what the variational-bound argument of Hinton et al.
assumes). With ``init_transpose=True`` an RBM whose sizes mirror the one below starts at the
transposed parameters of that one (weights transposed, biases swapped): the stacked DBN then
defines the same distribution of ``v`` as the RBM below and its variational bound equals that
RBM's log-likelihood, so any training of the new layer that raises ``E_q log p(h)`` raises the
bound (Hinton et al. 2006, section 4).

Deep Boltzmann machines (Salakhutdinov & Hinton 2009, section 3.1; 2012, section 4)
---------------------------------------------------------------------------------
In a DBM a hidden layer gets input from both neighbours, in the RBMs of a stack from one. So
that the composed model sees inputs of the right size, :func:`pretrain_dbm` trains:

- the bottom RBM with two tied copies of the visible layer: ``p(h_1 | v) = sigmoid(c + 2 v W)``,
  ``p(v | h_1) = sigmoid(b + h_1 Wᵀ)`` (visible-to-hidden input doubled);
- the top RBM with two tied copies of its hidden layer: ``p(h_{L-1} | h_L) = sigmoid(b + 2 h_L
  Wᵀ)``, ``p(h_L | h_{L-1}) = sigmoid(c + h_{L-1} W)`` (hidden-to-visible input doubled);
- every RBM in between as a plain RBM, whose weights are halved when composing (the DBM's
  ``W`` is half the RBM's, i.e. the RBM has both directions doubled).

Each copy trick is a genuine RBM with tied weights (visible ``[v, v]``, or hidden ``[h, h']``),
trained by the unchanged driver; its tied parameters are averaged after every update (the
update of the mean gradient of the copies; with SGD and momentum exactly so, the rule being
linear). Each module's input to the next is its own hidden conditional (doubled as above).
When composing, a hidden layer's bias is the mean of the bias the module below gives it
(hidden bias) and the one the module above gives it (visible bias): each module's conditional
accounts for both inputs with one doubled, the DBM's for each once. With two layers the DBM is
a plain RBM (no doubling).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from .. import _validation as check
from ..models._validation import layer_sizes
from ..models.dbm import DBM
from ..models.dbn import DBN
from ..models.rbm import RBM

__all__ = ["train_dbn", "pretrain_dbm"]


class _TiedCopies(RBM):
    """An RBM with two tied copies of one layer (``side`` "visible" or "hidden"): the two
    halves of that layer's weights and biases are made equal (their mean) after every
    update."""

    def __init__(self, n_visible, n_hidden, side, **kwargs):
        super().__init__(n_visible * (2 if side == "visible" else 1),
                         n_hidden * (2 if side == "hidden" else 1), **kwargs)
        self.side, self.half = side, n_visible if side == "visible" else n_hidden
        self.constrain_()

    def constrain_(self) -> None:
        n = self.half
        with torch.no_grad():
            if self.side == "visible":
                w = (self.weight[:n] + self.weight[n:]) * 0.5
                self.weight.copy_(torch.cat([w, w], 0))
                b = (self.visible_bias[:n] + self.visible_bias[n:]) * 0.5
                self.visible_bias.copy_(torch.cat([b, b]))
            else:
                w = (self.weight[:, :n] + self.weight[:, n:]) * 0.5
                self.weight.copy_(torch.cat([w, w], 1))
                b = (self.hidden_bias[:n] + self.hidden_bias[n:]) * 0.5
                self.hidden_bias.copy_(torch.cat([b, b]))


def _check_features(features, n_samples):
    if features not in ("mean", "sample"):
        raise ValueError(f"features: expected 'mean' or 'sample', got {features!r}")
    return check.integer(n_samples, "n_samples", 1)


def _next_data(mean: torch.Tensor, features: str, n_samples: int, generator) -> torch.Tensor:
    """The next module's training data from hidden means ``(n, n_h)``: the means, or
    ``n_samples`` draws per row ``(n * n_samples, n_h)``."""
    if features == "mean":
        return mean
    rep = mean.repeat_interleave(n_samples, 0) if n_samples > 1 else mean
    return torch.bernoulli(rep, generator=generator)


def _fit(model, data, fit_kwargs, generator):
    from .loop import fit

    kwargs = dict(fit_kwargs)
    kwargs.setdefault("monitors", [])
    return fit(model, data, generator=generator, **kwargs)


def _fit_kwargs(epochs, batch_size, lr, estimator, update, extra):
    out = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "estimator": estimator,
           "update": update}
    out.update(extra or {})
    return out


def train_dbn(data, sizes: Sequence[int], *, visible="bernoulli", epochs: int = 10,
              batch_size: int = 100, lr: float = 0.05, estimator=None, update=None,
              features: str = "mean", n_samples: int = 1, init_transpose: bool = False,
              generator: Optional[torch.Generator] = None, fit_kwargs: Optional[dict] = None,
              dbn: Optional[DBN] = None, start: int = 0) -> DBN:
    """Train a DBN greedily, one RBM at a time (see the module docstring).

    Parameters
    ----------
    data : ``(n, sizes[0])``
        Training rows (values in the visible family's support or, for binary units, [0, 1]).
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_L]``.
    visible : str
        The visible layer's unit family.
    epochs, batch_size, lr, estimator, update
        Passed to :func:`boltzkit.training.fit` for every RBM (``estimator`` default CD-1;
        one object serves every layer: it keeps no state of its own).
    features : "mean" or "sample"
        What the next RBM is trained on: the hidden conditional means, or ``n_samples`` binary
        draws per row.
    init_transpose : bool
        Start an RBM whose sizes mirror the one below at that one's transpose.
    generator : torch.Generator
        All randomness (default seeded 0).
    fit_kwargs : dict, optional
        More arguments for :func:`fit` (``monitors``, ``callbacks``, ...).
    dbn : DBN, optional
        Start from this DBN's parameters (trained in place); default a fresh DBN of ``sizes``
        and ``visible``.
    start : int
        The first layer to train: the layers below it are kept as they are and only pass
        their activations up (one greedy step on a stack that has them: ``start=1``).

    Returns
    -------
    DBN
    """
    sizes = layer_sizes(sizes, "sizes")
    n_samples = _check_features(features, n_samples)
    if check.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    model = DBN(sizes, visible, generator=generator) if dbn is None else dbn
    if model.sizes != sizes:
        raise ValueError(f"dbn: expected a DBN of sizes {list(sizes)}, got {list(model.sizes)}")
    start = check.integer(start, "start", 0)
    if start >= model.n_rbms:
        raise ValueError(f"start: expected a layer index below {model.n_rbms}, got {start}")
    x = model.check_visible(data, "data", relaxed=True)
    kwargs = _fit_kwargs(epochs, batch_size, lr, estimator, update, fit_kwargs)
    below = None
    for l in range(model.n_rbms):
        rbm = model.rbm(l)
        if l < start:  # kept: its activations feed the next layer
            with torch.no_grad():
                x = _next_data(rbm.hidden_mean(x, check=False), features, n_samples, generator)
            below = rbm
            continue
        layer_kwargs = kwargs
        if init_transpose and below is not None and below.n_visible == rbm.n_hidden and \
                below.visible == rbm.hidden:
            with torch.no_grad():
                rbm.weight.copy_(below.weight.t())
                rbm.visible_bias.copy_(below.hidden_bias)
                rbm.hidden_bias.copy_(below.visible_bias)
            layer_kwargs = dict(kwargs, init_visible_bias=False)  # keep the transposed biases
        _fit(rbm, x, layer_kwargs, generator)
        model.set_rbm(l, rbm)
        if l + 1 < model.n_rbms:
            with torch.no_grad():
                x = _next_data(rbm.hidden_mean(x, check=False), features, n_samples, generator)
        below = rbm
    return model


def pretrain_dbm(data, sizes: Sequence[int], *, epochs: int = 10, batch_size: int = 100,
                 lr: float = 0.05, estimator=None, update=None, features: str = "mean",
                 generator: Optional[torch.Generator] = None,
                 fit_kwargs: Optional[dict] = None) -> DBM:
    """Greedy pre-training of a DBM with Salakhutdinov & Hinton's doubled inputs (see the
    module docstring).

    Parameters
    ----------
    data : ``(n, sizes[0])``, values in [0, 1]
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_L]``.
    epochs, batch_size, lr, estimator, update, fit_kwargs
        Passed to :func:`boltzkit.training.fit` for every module (``estimator`` default CD-1).
    features : "mean" or "sample"
        What the next module is trained on: the module's (doubled) hidden conditional means,
        or one binary draw of them per row.
    generator : torch.Generator
        All randomness (default seeded 0).

    Returns
    -------
    DBM, in float32 on the data's device.
    """
    sizes = layer_sizes(sizes, "sizes")
    _check_features(features, 1)
    if check.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    out = DBM(sizes, generator=generator)
    x = out.check_visible(data, "data", relaxed=True)
    out = out.to(x.device)
    kwargs = _fit_kwargs(epochs, batch_size, lr, estimator, update, fit_kwargs)
    L = len(sizes) - 1
    if L == 1:  # a DBM of one hidden layer is an RBM: nothing to double
        rbm = RBM(sizes[0], sizes[1], generator=generator, device=x.device)
        _fit(rbm, x, kwargs, generator)
        with torch.no_grad():
            out.weight_0.copy_(rbm.weight)
            out.bias_0.copy_(rbm.visible_bias)
            out.bias_1.copy_(rbm.hidden_bias)
        return out
    up_bias = [None] * (L + 1)    # bias_l from the module below (its hidden bias)
    down_bias = [None] * (L + 1)  # bias_l from the module above (its visible bias)
    for l in range(L):
        a, b = sizes[l], sizes[l + 1]
        if l == 0:
            m = _TiedCopies(a, b, "visible", generator=generator, device=x.device)
            _fit(m, torch.cat([x, x], 1), kwargs, generator)
            w, vb, hb = m.weight[:a], m.visible_bias[:a], m.hidden_bias
            with torch.no_grad():
                mean = m.hidden_mean(torch.cat([x, x], 1), check=False)
        elif l == L - 1:
            m = _TiedCopies(a, b, "hidden", generator=generator, device=x.device)
            _fit(m, x, kwargs, generator)
            w, vb, hb = m.weight[:, :b], m.visible_bias, m.hidden_bias[:b]
            mean = None
        else:
            m = RBM(a, b, generator=generator, device=x.device)
            _fit(m, x, kwargs, generator)
            w, vb, hb = m.weight * 0.5, m.visible_bias, m.hidden_bias
            with torch.no_grad():
                mean = m.hidden_mean(x, check=False)
        with torch.no_grad():
            getattr(out, f"weight_{l}").copy_(w)
        down_bias[l], up_bias[l + 1] = vb.detach().clone(), hb.detach().clone()
        if mean is not None:
            x = _next_data(mean, features, 1, generator)
    with torch.no_grad():
        out.bias_0.copy_(down_bias[0])
        getattr(out, f"bias_{L}").copy_(up_bias[L])
        for l in range(1, L):
            getattr(out, f"bias_{l}").copy_((up_bias[l] + down_bias[l]) * 0.5)
    return out
