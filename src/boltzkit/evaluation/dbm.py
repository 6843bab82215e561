"""Likelihoods of deep Boltzmann machines: AIS for log Z and the mean-field lower bound on each
row's log-likelihood (Salakhutdinov & Hinton 2009, sections 3.3 and 4).

AIS path
--------
The chains live on the odd layers ``o = (x_1, x_3, ...)``; the even layers (the visible one
included) are summed out in closed form. From a base model A (no weights, visible biases ``a0``:
the data's base rates or zero, every other bias zero) to the DBM B through inverse
temperatures ``0 = β_0 < ... < β_K = 1``, with energies ``E_β = (1 - β) E_A + β E_B``, the
unnormalised marginal of the odd layers is

    log f_β(o) = β sum_{odd l} x_l·b_l + sum_{even l} sum_j softplus(t_lj(β)),
    t_0(β) = (1 - β) a0 + β (b_0 + x_1 W_0ᵀ),   t_l(β) = β (b_l + x_{l-1} W_{l-1} + x_{l+1} W_lᵀ)

and ``log Z_A = sum_i softplus(a0_i) + (units in layers 1..L) log 2``. The transition at β is
one odd/even Gibbs sweep of the tempered DBM (even layers given odd, then odd given even), which
leaves f_β invariant. Forward AIS (Neal 2001; the scheme Salakhutdinov & Hinton use): o_0 from
the base (every odd unit a fair coin), ``log w += log f_k(o) - log f_{k-1}(o)`` and a transition
at β_k, k = 1..K. ``Ẑ = Z_A mean(w)`` is unbiased, so log Ẑ tends to under-estimate log Z
(over-estimate log-likelihoods) by Jensen. The increments are formed in float64.

Variational bound
-----------------
For any factorised q(h) with means ``mu`` (what :func:`boltzkit.samplers.dbm.mean_field`
gives), ``log p(v) >= -E(v, mu) + H(q) - log Z``: the energy is linear in each layer, so
``E_q[E(v, h)] = E(v, mu)``, and ``H(q)`` is the sum of the units' binary entropies. With an
estimated log Z (AIS) the bound is an estimate; with the exact one it is a bound.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import _validation
from ..samplers import dbm as dbm_sampler
from .ais import AISResult, _check_chains, _resolve_betas

__all__ = ["ais", "elbo", "variational_bound", "base_visible_bias"]


def _dbm(model):
    from ..models.dbm import DBM

    if not isinstance(model, DBM):
        raise ValueError(f"model: expected a DBM, got {type(model).__name__}")
    return model


def base_visible_bias(model, data: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Visible biases ``(n_visible,)`` (float64) of the base model: the data's log-odds
    (rates clipped to [1e-3, 1 - 1e-3]) or zeros when ``data`` is None."""
    if data is None:
        return torch.zeros(model.n_visible, dtype=torch.float64, device=model.bias_0.device)
    data = model.check_visible(data, "base", relaxed=True)
    return model.units.init_bias(data.double().mean(0))


def _log_f(ws, bs, a0, xs, beta: float) -> torch.Tensor:
    """``log f_β`` of odd-layer states ``xs`` (even entries ignored), ``(n,)`` float64."""
    n_layers = len(bs)
    out = torch.zeros(xs[1].shape[0], dtype=torch.float64, device=xs[1].device)
    for l in range(1, n_layers, 2):
        out += beta * (xs[l].double() @ bs[l])
    for l in range(0, n_layers, 2):
        t = bs[l].expand(xs[1].shape[0], -1).clone()
        if l > 0:
            t = t.addmm(xs[l - 1].double(), ws[l - 1])
        if l + 1 < n_layers:
            t = t.addmm(xs[l + 1].double(), ws[l].t())
        t = beta * t
        if l == 0:
            t = t + (1.0 - beta) * a0
        out += F.softplus(t).sum(-1)
    return out


@torch.no_grad()
def ais(model, *, base: Optional[torch.Tensor] = None, n_chains: int = 100,
        betas: Union[None, int, Sequence[float], torch.Tensor] = None,
        generator: Optional[torch.Generator] = None, dtype=None) -> AISResult:
    """Forward AIS estimate of a DBM's log Z (see the module docstring for the path).

    Parameters
    ----------
    model : DBM
    base : ``(n, n_visible)`` tensor, optional
        Data whose per-pixel rates give the base model's visible biases (recommended: the
        training data); None: zero biases (the uniform base model).
    n_chains : int
        Independent annealing runs (>= 2).
    betas : None, int or sequence
        As in :func:`boltzkit.evaluation.ais` (None: 14,500 steps of Salakhutdinov & Murray's
        shape).
    generator : torch.Generator (default: seeded 0)
    dtype : torch.float32 (default) or torch.float64
        Precision of the chains' fields; the log-weights are formed and accumulated in float64.

    Returns
    -------
    AISResult (``log_weights`` ``(n_chains,)``, ``log_z``, its ±3 standard-error interval)
    """
    _dbm(model)
    n_chains = _check_chains(n_chains)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    _validation.memory(float(n_chains) * sum(model.sizes) * 8 * 6,
                       f"n_chains: {n_chains} chains of a DBM {list(model.sizes)}",
                       model.bias_0.device)
    bs_ = _resolve_betas(betas)
    if generator is None:
        generator = torch.Generator(device=model.bias_0.device).manual_seed(0)
    a0 = base_visible_bias(model, base)
    ws = [w.detach().double() for w in model.weights]
    bs = [b.detach().double() for b in model.biases]
    wc = [w.detach().to(dtype) for w in model.weights]
    bc = [b.detach().to(dtype) for b in model.biases]
    a0c = a0.to(dtype)
    n_layers = model.n_layers
    log_z_base = F.softplus(a0).sum().item() + sum(model.sizes[1:]) * math.log(2.0)
    dev = model.bias_0.device
    xs = [None] * n_layers
    for l in range(1, n_layers, 2):
        xs[l] = (torch.rand(n_chains, model.sizes[l], generator=generator, dtype=dtype,
                            device=dev) < 0.5).to(dtype)
    log_w = torch.zeros(n_chains, dtype=torch.float64, device=dev)
    last = len(bs_) - 1
    prev_f = _log_f(ws, bs, a0, xs, bs_[0])
    for k in range(1, last + 1):
        beta = bs_[k]
        f = _log_f(ws, bs, a0, xs, beta)
        log_w += f - prev_f
        if k < last:
            _tempered_sweep(wc, bc, a0c, xs, beta, generator)
            prev_f = _log_f(ws, bs, a0, xs, beta)
    lw = log_w.cpu()
    n = lw.shape[0]
    ess = math.exp(2 * torch.logsumexp(lw, 0).item() - torch.logsumexp(2 * lw, 0).item())
    m = torch.logsumexp(lw, 0).item() - math.log(n)
    w = torch.exp(lw - lw.max())
    mean_w, sd_w = w.mean().item(), w.std().item()
    scale = lw.max().item() + log_z_base
    half = 3.0 * sd_w / math.sqrt(n)
    low = scale + math.log(mean_w - half) if mean_w - half > 0 else -math.inf
    high = scale + math.log(mean_w + half)
    return AISResult(log_z_base + m, low, high, ess, lw, log_z_base, len(bs_), "forward")


def _tempered_sweep(ws, bs, a0, xs, beta: float, generator) -> None:
    """One odd/even sweep of the tempered DBM at ``beta``, in place in ``xs``."""
    n_layers = len(bs)
    for parity in (0, 1):
        for l in range(parity, n_layers, 2):
            ref = xs[l - 1] if l > 0 else xs[l + 1]
            t = bs[l].expand(ref.shape[0], -1).clone()
            if l > 0:
                t = t.addmm(xs[l - 1], ws[l - 1])
            if l + 1 < n_layers:
                t = t.addmm(xs[l + 1], ws[l].t())
            t = beta * t
            if l == 0:
                t = t + (1.0 - beta) * a0
            p = torch.sigmoid(t)
            xs[l] = (torch.rand(p.shape, generator=generator, dtype=p.dtype,
                                device=p.device) < p).to(p.dtype)


def _entropy(mu: torch.Tensor) -> torch.Tensor:
    """Sum of binary entropies per row, ``(n,)``, with 0 log 0 = 0."""
    return -(torch.special.xlogy(mu, mu) + torch.special.xlogy(1 - mu, 1 - mu)).sum(-1)


@torch.no_grad()
def elbo(model, v: torch.Tensor, means: Optional[list] = None, *, n_steps: int = 30,
         damping: float = 0.0) -> torch.Tensor:
    """``-E(v, mu) + H(q)`` per row of ``v`` ``(n, n_visible)``, ``(n,)`` float64: the mean-field
    lower bound on ``log sum_h exp(-E(v, h))`` for the means ``means`` (``[v, mu_1, ...,
    mu_L]``; default: :func:`~boltzkit.samplers.dbm.mean_field` with ``n_steps``,
    ``damping``)."""
    _dbm(model)
    v = model.check_visible(v, "v")
    if means is None:
        means = dbm_sampler.mean_field(model, v, n_steps, damping)
    else:
        means = model.check_layers(means, "means", relaxed=True)
    mu = [m.double() for m in means]
    mu[0] = v.double()
    ws = [w.detach().double() for w in model.weights]
    bs = [b.detach().double() for b in model.biases]
    neg_e = sum(x @ b for x, b in zip(mu, bs))
    for l, w in enumerate(ws):
        neg_e = neg_e + ((mu[l] @ w) * mu[l + 1]).sum(-1)
    return neg_e + sum(_entropy(m) for m in mu[1:])


def variational_bound(model, v: torch.Tensor, log_z: float, *, n_steps: int = 30,
                      damping: float = 0.0) -> torch.Tensor:
    """The mean-field lower bound on ``log p(v)`` per row of ``v`` ``(n, n_visible)``:
    ``elbo(v) - log_z``, ``(n,)`` float64 (``log_z`` exact, or AIS's estimate)."""
    log_z = _validation.real(log_z, "log_z")
    return elbo(model, v, n_steps=n_steps, damping=damping) - log_z
