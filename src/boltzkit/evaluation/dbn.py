"""The variational lower bound on a deep belief net's log-likelihood (Hinton, Osindero & Teh
2006; estimated with AIS as Salakhutdinov & Murray 2008, section 5).

For a two-layer DBN (bottom RBM ``v - h_1``, top RBM ``h_1 - h_2``) and the recognition
distribution ``q(h_1 | v)`` (the bottom RBM's hidden conditional), Jensen gives

    log p(v) >= sum_{h_1} q(h_1 | v) [ -F_top(h_1) + log p(v | h_1) ] + H(q(. | v)) - log Z_top

with ``F_top`` the top RBM's free energy of its visible layer ``h_1`` and ``p(v | h_1)`` the
bottom RBM's visible conditional. :func:`variational_bound` estimates the sum by ``n_samples``
draws of ``h_1 ~ q`` per row (unbiased for the bound with a given ``log Z_top``) or, with
``n_samples=None``, computes it exactly by enumerating ``h_1`` (small models). ``log Z_top``
comes from AIS on the top RBM (:func:`boltzkit.evaluation.ais`) or, for small models, exact
enumeration. With AIS's estimate the result estimates the bound; AIS's tendency to
under-estimate log Z pushes it up by about AIS's error, which is why the bracket of the top RBM's
log Z should be reported with it.
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import _validation

__all__ = ["variational_bound"]


def _dbn(model):
    from ..models.dbn import DBN

    if not isinstance(model, DBN):
        raise ValueError(f"model: expected a DBN, got {type(model).__name__}")
    if model.n_rbms != 2:
        raise ValueError(f"model: the bound is for a two-layer DBN (two RBMs), got "
                         f"{model.n_rbms} RBMs")
    return model


def _inner(bottom, top, v, h):
    """``-F_top(h) + log p(v | h)`` per row, float64; ``v``, ``h`` rows paired."""
    log_pv = -(bottom.energy(v, h, check=False)) - (-bottom.free_energy_hidden(h, check=False))
    # log p(v | h) = -E(v, h) + F'(h) (+ the hidden base, zero for binary h)
    return -top.free_energy(h, check=False) + log_pv


@torch.no_grad()
def variational_bound(model, v: torch.Tensor, log_z_top: float, *,
                      n_samples: Optional[int] = 100,
                      generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """The lower bound on ``log p(v)`` of a two-layer DBN per row of ``v`` ``(n, n_visible)``:
    ``(n,)`` float64 (see the module docstring). ``n_samples``: draws of ``h_1`` per row, or
    None for the exact sum over ``h_1`` (at most 20 units)."""
    _dbn(model)
    log_z_top = _validation.real(log_z_top, "log_z_top")
    _validation.generator(generator)
    v = model.check_visible(v, "v").double()
    bottom, top = model.rbm(0).double(), model.rbm(1).double()
    q = bottom.hidden_mean(v, check=False)
    ent = -(torch.special.xlogy(q, q) + torch.special.xlogy(1 - q, 1 - q)).sum(-1)
    n, k = v.shape[0], bottom.n_hidden
    if n_samples is None:
        if k > 20:
            raise ValueError(f"n_samples: the exact sum enumerates 2^{k} hidden states; give a "
                             f"number of samples instead")
        hs = bottom.hidden.states(k, dtype=torch.float64, device=v.device)
        total = torch.zeros(n, dtype=torch.float64, device=v.device)
        for h in hs:
            hb = h.expand(n, -1)
            log_q = (torch.special.xlogy(hb, q) + torch.special.xlogy(1 - hb, 1 - q)).sum(-1)
            total += torch.exp(log_q) * _inner(bottom, top, v, hb)
    else:
        n_samples = _validation.integer(n_samples, "n_samples", 1)
        vr = v.repeat_interleave(n_samples, 0)
        h = torch.bernoulli(q.repeat_interleave(n_samples, 0), generator=generator)
        total = _inner(bottom, top, vr, h).reshape(n, n_samples).mean(1)
    return total + ent - log_z_top
