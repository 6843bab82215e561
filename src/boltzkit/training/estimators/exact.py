"""The exact loss gradient by enumeration, for RBMs and Boltzmann machines small enough to
enumerate (about 20 units in the enumerated layer or machine): the reference the sampling
estimators are tested against."""

from __future__ import annotations

import torch

from ...exact import boltzmann as exact_bm
from ...exact import rbm as exact_rbm
from .base import Estimator
from .boltzmann import PhaseStatistics, phase_gradient

__all__ = ["ExactGradient"]


class ExactGradient(Estimator):
    """The exact loss gradient: model statistics by enumeration (the smaller layer of an RBM,
    every state of a Boltzmann machine), data statistics exactly given the batch."""

    def check_model(self, model):
        from ...models import RBM, BoltzmannMachine

        if not isinstance(model, (RBM, BoltzmannMachine)):
            raise ValueError(f"model: the exact gradient enumerates an RBM or a "
                             f"BoltzmannMachine, got a {type(model).__name__}")

    @torch.no_grad()
    def __call__(self, model, v, state=None, generator=None):
        from ...models import BoltzmannMachine

        if isinstance(model, BoltzmannMachine):
            pp, pm = exact_bm.clamped_pair_expectations(model, v)
            fp, fm = exact_bm.pair_expectations(model)
            dt = model.weight.dtype
            return phase_gradient(model, PhaseStatistics(pp.to(dt), pm.to(dt)),
                                  PhaseStatistics(fp.to(dt), fm.to(dt))), state
        vh, ev, eh = exact_rbm.expected_statistics(model)
        h_pos = model.hidden_mean(v, check=False)
        x = model.visible_statistic(v)
        grads = {"weight": vh - x.t() @ h_pos / v.shape[0], "visible_bias": ev - x.mean(0),
                 "hidden_bias": eh - h_pos.mean(0)}
        owned = [n for n, _ in model.named_parameters() if n not in grads]
        if owned:  # parameters a unit family owns: E_data[dF(v)/dθ] - E_model[dE/dθ]
            model_side = exact_rbm.expected_parameter_gradients(model, owned)
            params = [getattr(model, n) for n in owned]
            with torch.enable_grad():
                data_side = torch.autograd.grad(model.free_energy(v, check=False).mean(), params,
                                                allow_unused=True)
            for n, d, p in zip(owned, data_side, params):
                grads[n] = (torch.zeros_like(p) if d is None else d.detach()) - model_side[n]
        return grads, state

    def __repr__(self):
        return "ExactGradient()"
