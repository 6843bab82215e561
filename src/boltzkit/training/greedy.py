"""Greedy layer-wise training: deep belief nets (a stack of RBMs) and the pre-training of deep
Boltzmann machines. Every RBM is trained by :func:`boltzkit.training.fit`, unchanged; the plans
(:func:`dbn_stages`, :class:`DBMPretraining`) yield the modules one at a time, so that a caller
(the command line's resumable runs) can train, checkpoint and resume each itself.

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

import dataclasses
from typing import Iterator, Optional, Sequence

import torch

from .. import _validation as check
from ..models._validation import layer_sizes
from ..models.dbm import DBM
from ..models.dbn import DBN
from ..models.rbm import RBM

__all__ = ["train_dbn", "pretrain_dbm", "dbn_stages", "DBMPretraining", "GreedyStage"]


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


@dataclasses.dataclass
class GreedyStage:
    """One module of a greedy plan, to be trained by :func:`boltzkit.training.fit` in place.

    index : the module's position (0: the bottom one); name : ``"layer-1"``, ``"layer-2"``, ...;
    model : the RBM to train (for a DBM's bottom or top module, an RBM with two tied copies of
    one layer, which the driver keeps tied); data : its training rows ``(n, model.n_visible)``;
    init_visible_bias : whether fit should start its visible biases at the data's base rates
    (False for a module started at the transpose of the one below).

    The plan that yielded it reads the trained ``model`` when it is asked for the next stage
    (the next module's data are this one's hidden activations), so train it, or load its
    trained parameters into it, before iterating on.
    """

    index: int
    name: str
    model: RBM
    data: torch.Tensor
    init_visible_bias: bool = True


def _generators(generator):
    """``generator`` as a plan's per-module source: a callable ``l -> torch.Generator``
    (a Generator: the same one for every module; None: one seeded 0)."""
    if callable(generator) and not isinstance(generator, torch.Generator):
        return generator
    if check.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    return lambda l: generator


def dbn_stages(dbn: DBN, data, *, features: str = "mean", n_samples: int = 1,
               init_transpose: bool = False, generator=None,
               start: int = 0) -> Iterator[GreedyStage]:
    """The greedy plan of a DBN: yields one :class:`GreedyStage` per RBM from ``start`` up,
    and writes each trained RBM back into ``dbn`` when the next stage is asked for (or the
    iteration ends). The layers below ``start`` only pass their activations up.

    ``generator``: a torch.Generator for everything, or a callable ``l -> Generator`` giving
    the source of layer ``l``'s next-layer draws (``features="sample"``), so that a plan can
    be taken up again at any layer (the command line's resumable runs); see
    :func:`train_dbn` for the other arguments."""
    n_samples = _check_features(features, n_samples)
    gens = _generators(generator)
    start = check.integer(start, "start", 0)
    if start >= dbn.n_rbms:
        raise ValueError(f"start: expected a layer index below {dbn.n_rbms}, got {start}")
    x = dbn.check_visible(data, "data", relaxed=True)
    below = None
    for l in range(dbn.n_rbms):
        rbm = dbn.rbm(l)
        if l >= start:
            fresh = True
            if init_transpose and below is not None and below.n_visible == rbm.n_hidden and \
                    below.visible == rbm.hidden:
                with torch.no_grad():
                    rbm.weight.copy_(below.weight.t())
                    rbm.visible_bias.copy_(below.hidden_bias)
                    rbm.hidden_bias.copy_(below.visible_bias)
                fresh = False  # keep the transposed biases
            yield GreedyStage(l, f"layer-{l + 1}", rbm, x, fresh)
            dbn.set_rbm(l, rbm)
        if l + 1 < dbn.n_rbms:
            with torch.no_grad():
                x = _next_data(rbm.hidden_mean(x, check=False), features, n_samples, gens(l))
        below = rbm


def train_dbn(data, sizes: Sequence[int], *, visible="bernoulli", epochs: int = 10,
              batch_size: int = 100, lr: float = 0.05, estimator=None, update=None,
              features: str = "mean", n_samples: int = 1, init_transpose: bool = False,
              generator: Optional[torch.Generator] = None, fit_kwargs: Optional[dict] = None,
              dbn: Optional[DBN] = None, start: int = 0) -> DBN:
    """Train a DBN greedily, one RBM at a time (see the module docstring and
    :func:`dbn_stages`, the plan it follows).

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
    _check_features(features, n_samples)
    if check.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    model = DBN(sizes, visible, generator=generator) if dbn is None else dbn
    if model.sizes != sizes:
        raise ValueError(f"dbn: expected a DBN of sizes {list(sizes)}, got {list(model.sizes)}")
    kwargs = _fit_kwargs(epochs, batch_size, lr, estimator, update, fit_kwargs)
    for stage in dbn_stages(model, data, features=features, n_samples=n_samples,
                            init_transpose=init_transpose, generator=generator, start=start):
        _fit(stage.model, stage.data, dict(kwargs, init_visible_bias=False)
             if not stage.init_visible_bias else kwargs, generator)
    return model


class DBMPretraining:
    """The greedy pre-training plan of a DBM (Salakhutdinov & Hinton's doubled inputs, see the
    module docstring). Iterating yields one :class:`GreedyStage` per module, bottom first;
    when the iteration ends, :attr:`model` holds the composed DBM.

    Parameters
    ----------
    data : ``(n, sizes[0])``, values in [0, 1]
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_L]``.
    features : "mean" or "sample"
        What the next module is trained on: the module's (doubled) hidden conditional means,
        or one binary draw of them per row.
    generator : torch.Generator, or callable ``l -> Generator``
        The source of module ``l``'s initial weights and of its next-module draws (one
        Generator: the same for all; default seeded 0).
    """

    def __init__(self, data, sizes: Sequence[int], *, features: str = "mean", generator=None):
        self.sizes = layer_sizes(sizes, "sizes")
        _check_features(features, 1)
        self.features, self._gens = features, _generators(generator)
        self.model = DBM(self.sizes, generator=self._gens(0))
        self.data = self.model.check_visible(data, "data", relaxed=True)
        self.model = self.model.to(self.data.device)

    def __iter__(self) -> Iterator[GreedyStage]:
        sizes, x, out, dev = self.sizes, self.data, self.model, self.data.device
        L = len(sizes) - 1
        if L == 1:  # a DBM of one hidden layer is an RBM: nothing to double
            rbm = RBM(sizes[0], sizes[1], generator=self._gens(0), device=dev)
            yield GreedyStage(0, "layer-1", rbm, x)
            with torch.no_grad():
                out.weight_0.copy_(rbm.weight)
                out.bias_0.copy_(rbm.visible_bias)
                out.bias_1.copy_(rbm.hidden_bias)
            return
        up_bias = [None] * (L + 1)    # bias_l from the module below (its hidden bias)
        down_bias = [None] * (L + 1)  # bias_l from the module above (its visible bias)
        for l in range(L):
            a, b, g = sizes[l], sizes[l + 1], self._gens(l)
            if l == 0:
                m = _TiedCopies(a, b, "visible", generator=g, device=dev)
                yield GreedyStage(l, f"layer-{l + 1}", m, torch.cat([x, x], 1))
                w, vb, hb = m.weight[:a], m.visible_bias[:a], m.hidden_bias
                with torch.no_grad():
                    mean = m.hidden_mean(torch.cat([x, x], 1), check=False)
            elif l == L - 1:
                m = _TiedCopies(a, b, "hidden", generator=g, device=dev)
                yield GreedyStage(l, f"layer-{l + 1}", m, x)
                w, vb, hb = m.weight[:, :b], m.visible_bias, m.hidden_bias[:b]
                mean = None
            else:
                m = RBM(a, b, generator=g, device=dev)
                yield GreedyStage(l, f"layer-{l + 1}", m, x)
                w, vb, hb = m.weight * 0.5, m.visible_bias, m.hidden_bias
                with torch.no_grad():
                    mean = m.hidden_mean(x, check=False)
            with torch.no_grad():
                getattr(out, f"weight_{l}").copy_(w)
            down_bias[l], up_bias[l + 1] = vb.detach().clone(), hb.detach().clone()
            if mean is not None:
                x = _next_data(mean, self.features, 1, g)
        with torch.no_grad():
            out.bias_0.copy_(down_bias[0])
            getattr(out, f"bias_{L}").copy_(up_bias[L])
            for l in range(1, L):
                getattr(out, f"bias_{l}").copy_((up_bias[l] + down_bias[l]) * 0.5)


def pretrain_dbm(data, sizes: Sequence[int], *, epochs: int = 10, batch_size: int = 100,
                 lr: float = 0.05, estimator=None, update=None, features: str = "mean",
                 generator: Optional[torch.Generator] = None,
                 fit_kwargs: Optional[dict] = None) -> DBM:
    """Greedy pre-training of a DBM with Salakhutdinov & Hinton's doubled inputs (see the
    module docstring and :class:`DBMPretraining`, the plan it follows).

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
    if check.generator(generator) is None:
        generator = torch.Generator().manual_seed(0)
    plan = DBMPretraining(data, sizes, features=features, generator=generator)
    kwargs = _fit_kwargs(epochs, batch_size, lr, estimator, update, fit_kwargs)
    for stage in plan:
        _fit(stage.model, stage.data, kwargs, generator)
    return plan.model
