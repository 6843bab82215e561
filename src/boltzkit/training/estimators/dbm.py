"""The gradient estimator of deep Boltzmann machines (Salakhutdinov & Hinton 2009): a
mean-field positive phase and persistent odd/even Gibbs chains for the negative phase.

The mean log-likelihood of data under a DBM has the gradient

    d/dW_l = E_data[x_lᵀ x_{l+1}] - E_model[x_lᵀ x_{l+1}],   d/db_l = E_data[x_l] - E_model[x_l]

where ``E_data`` takes each row's posterior over the hidden layers. :func:`dbm_gradient` turns
two sets of such statistics (:class:`~boltzkit.exact.dbm.DBMStatistics`) into the loss gradient
(its negative) keyed ``weight_l`` / ``bias_l``; :func:`layer_statistics` makes them from layers
of product form (states, or means of a factorised distribution).

:class:`MeanFieldPCD` approximates the posterior by mean field (the fixed point of
:func:`boltzkit.samplers.dbm.mean_field`), so that ``E_data[x_lᵀ x_{l+1}] ≈ mu_lᵀ mu_{l+1}``,
and the model statistics by persistent chains (Tieleman 2008), ``k`` odd/even sweeps per
update. After the sweep the odd layers' statistics use their conditional means given the even
layers (exact conditional expectations: each pair of neighbouring layers holds one even and one
odd layer, and the odd layers are independent given the even ones), which lowers the variance
at no cost in bias.
"""

from __future__ import annotations

from typing import List, Optional

import torch

from ... import _validation as check
from ...exact.dbm import DBMStatistics
from ...samplers import dbm as dbm_sampler
from .base import Estimator

__all__ = ["MeanFieldPCD", "dbm_gradient", "layer_statistics"]


def layer_statistics(layers: List[torch.Tensor]) -> DBMStatistics:
    """Statistics of a batch of layers of product form: ``pairs[l] = x_lᵀ x_{l+1} / n``,
    ``means[l] = mean(x_l)``, for ``layers`` a list of ``L + 1`` tensors ``(n, n_l)``."""
    n = layers[0].shape[0]
    pairs = [torch.mm(a.t(), b).div_(n) for a, b in zip(layers[:-1], layers[1:])]
    return DBMStatistics(pairs, [x.mean(0) for x in layers])


def dbm_gradient(pos: DBMStatistics, neg: DBMStatistics) -> dict:
    """The loss gradient ``{"weight_l": neg.pairs[l] - pos.pairs[l], "bias_l": neg.means[l] -
    pos.means[l]}`` (shapes of the parameters)."""
    out = {f"weight_{l}": n - p for l, (p, n) in enumerate(zip(pos.pairs, neg.pairs))}
    out.update({f"bias_{l}": n - p for l, (p, n) in enumerate(zip(pos.means, neg.means))})
    return out


class MeanFieldPCD(Estimator):
    """Mean-field positive phase, persistent-chain negative phase.

    Parameters
    ----------
    k : int
        Odd/even Gibbs sweeps of the chains per update.
    n_chains : int, optional
        Persistent chains (default ``min(100, n_samples)``).
    mf_steps : int
        Mean-field sweeps per batch (from the doubled bottom-up pass).
    damping : float in [0, 1)
        Damping of the mean-field updates.
    """

    state_type = dbm_sampler.DBMGibbsState

    def __init__(self, k: int = 1, n_chains: Optional[int] = None, mf_steps: int = 10,
                 damping: float = 0.0):
        self.k = check.integer(k, "k", 1)
        self.n_chains = None if n_chains is None else check.integer(n_chains, "n_chains", 1)
        self.mf_steps = check.integer(mf_steps, "mf_steps", 0)
        self.damping = check.real(damping, "damping", 0.0, 1.0, strict_maximum=True)

    def check_model(self, model) -> None:
        from ...models.dbm import DBM

        if not isinstance(model, DBM):
            raise ValueError(f"model: {self!r} trains a DBM, got a {type(model).__name__}")

    def check_data(self, model, data):
        return model.check_visible(data, "data", relaxed=True)

    def init_state(self, model, data: torch.Tensor, generator=None):
        """Chains start at rows of ``data`` drawn at random (grey values drawn as 0/1)."""
        n = self.n_chains or min(100, data.shape[0])
        check.memory(4 * 4 * n * sum(model.sizes), f"n_chains {n}: the persistent chains",
                     data.device)
        where = generator.device if generator is not None else "cpu"
        idx = torch.randint(0, data.shape[0], (n,), generator=generator, device=where)
        v0 = model.units.sample_from_mean(data[idx.to(data.device)], generator)
        return dbm_sampler.init(model, v0, generator, check=False)

    def negative_layers(self, model, state) -> List[torch.Tensor]:
        """The chains' layers with the odd ones replaced by their conditional means given the
        even ones (see the module docstring)."""
        xs = dbm_sampler.layers(model, state)
        for l in range(1, model.n_layers, 2):
            xs[l] = torch.sigmoid(model.layer_field(l, xs))
        return xs

    @torch.no_grad()
    def __call__(self, model, v, state=None, generator=None):
        if state is None:
            state = self.init_state(model, v, generator)
        mu = dbm_sampler.mean_field(model, v, self.mf_steps, self.damping, check=False)
        for _ in range(self.k):
            state = dbm_sampler.step(model, state, generator)
        grads = dbm_gradient(layer_statistics(mu),
                             layer_statistics(self.negative_layers(model, state)))
        return grads, state

    def __repr__(self):
        return (f"MeanFieldPCD(k={self.k}, n_chains={self.n_chains}, mf_steps={self.mf_steps}, "
                f"damping={self.damping})")
