"""Gradient estimators for RBMs: contrastive divergence and persistent contrastive divergence.

The mean log-likelihood of data under an RBM has the gradient

    d/dW  = E_data[v E[h|v]ᵀ] - E_model[v hᵀ]
    d/da  = E_data[v]         - E_model[v]
    d/db  = E_data[E[h|v]]    - E_model[h]

for every pairing of unit families (the energy is linear in each parameter), with ``phi(v)``
in place of ``v`` for a visible family that couples through a statistic (learned variances:
``v / σ²``). The parameters a unit family owns (``visible_log_variance``, say) get
``E_data[dE/dθ] - E_model[dE/dθ]`` at the same samples, by autograd of the mean energies (see
:func:`statistics_gradient`). The estimators differ only in how they get the model statistics:

- :class:`CD` (contrastive divergence, Hinton 2002): k Gibbs steps from the data;
- :class:`PCD` (persistent CD, Tieleman 2008): k Gibbs steps from chains kept across updates.

Both return the loss gradient (the negative of the above) keyed ``weight``, ``visible_bias``,
``hidden_bias``, and also offer ``statistics(model, v, state, generator)``, which returns the
samples themselves (:class:`Statistics`) instead of the gradient they make: the SGD update uses
them to fold the weight update into the two gradient products (see
:mod:`boltzkit.training.updates`). A subclass that changes the gradient (centering, say) sets
``dense_statistics = False`` so that the fused path is not offered.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch

from ... import _products as products
from ... import _validation as check
from ...samplers import gibbs
from .base import Estimator

__all__ = ["Statistics", "statistics_gradient", "energy_gradient", "CD", "PCD", "Sparsity"]


class Statistics(NamedTuple):
    """Positive and negative samples whose statistics make the loss gradient (rows are samples;
    hidden entries may be conditional means). See :func:`statistics_gradient`.

    v_pos : ``(n_pos, n_visible)``;  h_pos : ``(n_pos, n_hidden)``
    v_neg : ``(n_neg, n_visible)``;  h_neg : ``(n_neg, n_hidden)``
    """

    v_pos: torch.Tensor
    h_pos: torch.Tensor
    v_neg: torch.Tensor
    h_neg: torch.Tensor


def statistics_gradient(v_pos, h_pos, v_neg, h_neg, model=None) -> dict:
    """Loss gradient ``{"weight", "visible_bias", "hidden_bias"}`` from positive samples
    ``(v_pos, h_pos)`` and negative samples ``(v_neg, h_neg)`` (rows are samples; h may be
    conditional means). Two matrix products.

    ``model`` (the RBM the samples come from) is needed only when its unit families own
    parameters or its visible family couples through ``phi(v) != v``: then ``v`` reads
    ``phi(v)`` in the three statistics above, and each owned parameter θ (e.g.
    ``visible_log_variance``) gets ``mean_pos dE/dθ - mean_neg dE/dθ`` by autograd of the mean
    energies at the samples. Where ``h`` holds conditional means this is the exact conditional
    expectation for every parameter whose ``dE/dθ`` is linear in ``h``: all of a visible
    family's (the energy is linear in ``h`` for fixed ``v``) and those of hidden families whose
    base measure is linear (binary units)."""
    if model is not None and model.weight.dim() != 2:  # e.g. a ConvRBM's filters
        return energy_gradient(model, v_pos, h_pos, v_neg, h_neg)
    if model is not None and (model.visible_params is not None or model.hidden_params
                              is not None or not model.visible.identity_statistic):
        return _owned_gradient(model, v_pos, h_pos, v_neg, h_neg)
    n_pos, n_neg = v_pos.shape[0], v_neg.shape[0]
    # the 1/n scalings ride on the products (beta=0: the uninitialised buffer is ignored)
    gw = products.add_outer_(v_pos.new_empty(v_pos.shape[1], h_pos.shape[1]),
                             [(v_neg, h_neg), (v_pos, h_pos)], [1.0 / n_neg, -1.0 / n_pos],
                             beta=0.0)
    return {"weight": gw, "visible_bias": v_neg.mean(0) - v_pos.mean(0),
            "hidden_bias": h_neg.mean(0) - h_pos.mean(0)}


def energy_gradient(model, v_pos, h_pos, v_neg, h_neg) -> dict:
    """Loss gradient of every parameter, ``mean_pos dE/dθ - mean_neg dE/dθ``, by autograd of
    the mean energies at the samples (any shapes the model's :meth:`energy` takes, e.g. a
    ConvRBM's images ``(n, C, H, W)`` and maps ``(n, K, H', W')``). For a model whose energy is
    linear in every parameter given the states (an RBM, a ConvRBM) and hidden entries that are
    conditional means E[h | v], this is the exact conditional expectation of each statistic:
    what :func:`statistics_gradient` computes with matrix products for the dense RBM. A model
    that offers the same in closed form (``model.energy_gradient``, as a ConvRBM does) is
    asked for it instead."""
    closed = getattr(model, "energy_gradient", None)
    if closed is not None:
        with torch.no_grad():
            return closed(*(t.detach() for t in (v_pos, h_pos, v_neg, h_neg)))
    names, params = zip(*model.named_parameters())
    v_pos, h_pos, v_neg, h_neg = (t.detach() for t in (v_pos, h_pos, v_neg, h_neg))
    with torch.enable_grad():
        e = (model.energy(v_pos, h_pos, check=False).mean()
             - model.energy(v_neg, h_neg, check=False).mean())
        grads = torch.autograd.grad(e, params, allow_unused=True)
    return {n: (torch.zeros_like(p) if g is None else g.detach())
            for n, p, g in zip(names, params, grads)}


def _owned_gradient(model, v_pos, h_pos, v_neg, h_neg) -> dict:
    names = [("visible_" + n) for n in (model._visible_param_names or ())] + \
        [("hidden_" + n) for n in (model._hidden_param_names or ())]
    params = [getattr(model, n) for n in names]
    # the samples are data here: a chain run outside no_grad would carry their graph
    v_pos, h_pos, v_neg, h_neg = (t.detach() for t in (v_pos, h_pos, v_neg, h_neg))
    with torch.enable_grad():
        e = (model.energy(v_pos, h_pos, check=False).mean()
             - model.energy(v_neg, h_neg, check=False).mean())
        owned = torch.autograd.grad(e, params) if params else ()
    with torch.no_grad():
        out = statistics_gradient(model.visible_statistic(v_pos), h_pos,
                                  model.visible_statistic(v_neg), h_neg)
    out.update({n: g.detach() for n, g in zip(names, owned)})
    return out


class CD(Estimator):
    """Contrastive divergence CD-k: negative statistics after ``k`` block-Gibbs steps started at
    the data. Hidden statistics use E[h | v] (Hinton's practical guide, section 3)."""

    dense_statistics = True

    def __init__(self, k: int = 1):
        self.k = check.integer(k, "k", 1)

    def check_model(self, model):
        if not (hasattr(model, "hidden_field") and hasattr(model, "visible_field")):
            raise ValueError(f"model: {self!r} trains bipartite models (an RBM), got a "
                             f"{type(model).__name__}")

    def check_data(self, model, data):
        return model.check_visible(data, "data", relaxed=True)

    def statistics(self, model, v: torch.Tensor, state: Any = None,
                   generator: Optional[torch.Generator] = None):
        """Returns ``(Statistics, state)`` for a batch ``v`` ``(batch, n_visible)``: the data
        with E[h | v], and the chains after ``k`` steps with E[h | v_k]."""
        neg = gibbs.init(model, v, generator, check=False)
        h_pos = neg.hidden_mean
        for _ in range(self.k - 1):
            neg = gibbs.step(model, neg, generator)
        # the last sweep stops at E[h | v_k]: the statistics use the mean, so the hidden draw
        # that gibbs.step would make there would never be used
        v_neg = gibbs.sample_visible(model, neg.hidden, generator)
        return Statistics(v, h_pos, v_neg, model.hidden_mean(v_neg, check=False)), state

    def __call__(self, model, v, state=None, generator=None):
        stats, state = self.statistics(model, v, state, generator)
        return statistics_gradient(*stats, model=model), state

    def __repr__(self):
        return f"CD(k={self.k})"


class PCD(CD):
    """Persistent contrastive divergence: the negative chains continue from where the last
    update left them (``n_chains`` of them, default ``min(100, n_samples)``), ``k`` steps per
    update."""

    state_type = gibbs.GibbsState

    def __init__(self, k: int = 1, n_chains: Optional[int] = None):
        super().__init__(k)
        self.n_chains = None if n_chains is None else check.integer(n_chains, "n_chains", 1)

    def init_state(self, model, data: torch.Tensor, generator=None) -> gibbs.GibbsState:
        """Chains start at rows of ``data`` drawn at random."""
        n = self.n_chains or min(100, data.shape[0])
        # the chains: visible and hidden states, hidden means, and a draw's uniforms
        check.memory(4 * 4 * n * (model.n_visible + model.n_hidden),
                     f"n_chains {n}: the persistent chains", data.device)
        where = generator.device if generator is not None else "cpu"  # a CUDA generator works too
        idx = torch.randint(0, data.shape[0], (n,), generator=generator, device=where)
        v0 = data[idx.to(data.device)]
        # binary units need states on the support: sample mean-field (grey) data once
        v0 = model.visible.sample_from_mean(v0, generator) if model.visible.discrete else v0
        return gibbs.init(model, v0, generator)

    def statistics(self, model, v, state=None, generator=None):
        """Returns ``(Statistics, state)``: the data with E[h | v], and the persistent chains
        after ``k`` more steps with their E[h | v]; ``state`` is the chains' new state."""
        if state is None:
            state = self.init_state(model, v, generator)
        h_pos = model.hidden_mean(v, check=False)
        for _ in range(self.k):
            state = gibbs.step(model, state, generator)
        return Statistics(v, h_pos, state.visible, state.hidden_mean), state

    def __repr__(self):
        return f"PCD(k={self.k}, n_chains={self.n_chains})"


class Sparsity(Estimator):
    """Lee, Ekanadham & Ng's sparsity regulariser (2008; used for convolutional RBMs by Lee et
    al. 2009) around an RBM estimator: every update also pulls each hidden unit's mean
    activation on the batch, ``q = mean E[h | v]`` (per filter for a ConvRBM: over the batch
    and the map's positions), towards ``target``.

    Lee et al.'s regulariser is ``cost * Σ_j (target - q_j)²``; following them, only the
    hidden biases receive its gradient, in its simplified form: ``cost * (q - target)`` is
    added to the loss gradient of ``hidden_bias`` (a gradient step moves each bias by
    ``lr * cost * (target - q)``). Everything else is ``inner``'s: its state, its data check,
    its gradient (an estimator with ``statistics()``, CD or PCD, hands over the data's E[h | v]
    it computed; otherwise E[h | v] is computed once more). The fused dense update is not
    offered.

    Parameters
    ----------
    inner : Estimator
        CD, PCD or any RBM estimator.
    target : float in (0, 1)
        The mean activation aimed at (Lee et al. use 0.01 - 0.1; 0.003 for pooled maps).
    cost : float >= 0
        The regulariser's weight, relative to the likelihood gradient.
    """

    dense_statistics = False

    def __init__(self, inner, target: float = 0.05, cost: float = 1.0):
        if not callable(inner) or not callable(getattr(inner, "init_state", None)):
            raise ValueError(f"inner: expected an RBM estimator (CD, PCD, ...), got "
                             f"{type(inner).__name__}")
        self.inner = inner
        self.target = check.real(target, "target", 0.0, 1.0, strict_minimum=True,
                                 strict_maximum=True)
        self.cost = check.real(cost, "cost", 0.0)
        self.state_type = getattr(inner, "state_type", None)

    def init_state(self, model, data, generator=None):
        return self.inner.init_state(model, data, generator)

    def check_model(self, model):
        getattr(self.inner, "check_model", lambda m: None)(model)

    def check_data(self, model, data):
        return self.inner.check_data(model, data)

    def __call__(self, model, v, state=None, generator=None):
        if callable(getattr(self.inner, "statistics", None)):
            stats, state = self.inner.statistics(model, v, state, generator)
            grads, h_pos = statistics_gradient(*stats, model=model), stats.h_pos
        else:
            grads, state = self.inner(model, v, state, generator)
            h_pos = model.hidden_mean(v, check=False)
        q = h_pos.mean((0, 2, 3)) if h_pos.dim() == 4 else h_pos.mean(0)
        grads = dict(grads)
        grads["hidden_bias"] = grads["hidden_bias"] + self.cost * (q - self.target)
        return grads, state

    def __repr__(self):
        return f"Sparsity({self.inner!r}, target={self.target!r}, cost={self.cost!r})"
