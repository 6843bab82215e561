"""Exact computation on fully connected Boltzmann machines small enough to enumerate.

A :class:`~boltzkit.models.boltzmann.BoltzmannMachine` of n binary units has 2^n joint states;
up to about 20-24 units every sum over them is done exactly, in chunks (float64 accumulation),
so that memory stays bounded. These are the reference values the samplers and the learning rule
are tested against (the RBM counterpart is :mod:`boltzkit.exact.rbm`).

State numbering: state number k has unit i on when bit i of k is set (unit 0 is the lowest bit),
the order of :meth:`boltzkit.units.Units.states`; :func:`state_index` maps states back to k.
All functions take ``temperature=None`` meaning the model's own.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..units import enumerate_states

__all__ = ["MAX_UNITS", "all_states", "state_index", "log_partition", "distribution",
           "pair_expectations", "clamped_pair_expectations", "log_likelihood",
           "conditional_distribution"]

MAX_UNITS = 24


def _temperature(model, temperature) -> float:
    t = model.temperature if temperature is None else float(temperature)
    if not t > 0:
        raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
    return t


def _require(n: int, what: str) -> None:
    if n > MAX_UNITS:
        raise ValueError(f"model: exact enumeration over {what} needs at most {MAX_UNITS} units, "
                         f"got {n} (2^{n} states)")


def all_states(model, dtype=None) -> torch.Tensor:
    """Every joint state, shape ``(2^n, n)``, numbered as in the module docstring."""
    _require(model.n_units, "all states")
    return model.units.states(model.n_units, dtype=dtype or model.weight.dtype,
                              device=model.weight.device)


def state_index(states: torch.Tensor, values=(0.0, 1.0)) -> torch.Tensor:
    """Number of each state row (``(m, n)`` -> ``(m,)`` int64); ``values`` = (off, on)."""
    bits = (states == values[1]).to(torch.int64)
    weights = 2 ** torch.arange(states.shape[-1], device=states.device, dtype=torch.int64)
    return (bits * weights).sum(-1)


def _chunks(model, n_units: int, chunk_size: int):
    return enumerate_states(model.units, n_units, chunk_size, dtype=model.weight.dtype,
                            device=model.weight.device)


@torch.no_grad()
def log_partition(model, temperature: Optional[float] = None, chunk_size: int = 2 ** 16) -> float:
    """``log Z = log sum_s exp(-E(s)/T)`` (float64 accumulation)."""
    _require(model.n_units, "log Z")
    t = _temperature(model, temperature)
    parts = [torch.logsumexp(-model.energy(s, check=False).double() / t, 0)
             for s in _chunks(model, model.n_units, chunk_size)]
    return torch.logsumexp(torch.stack(parts), 0).item()


@torch.no_grad()
def distribution(model, temperature: Optional[float] = None) -> torch.Tensor:
    """``p(s)`` of every joint state, float64 ``(2^n,)`` in state-number order."""
    s = all_states(model)
    t = _temperature(model, temperature)
    return torch.softmax(-model.energy(s, check=False).double() / t, 0)


@torch.no_grad()
def pair_expectations(model, temperature: Optional[float] = None, chunk_size: int = 2 ** 14):
    """Free-running expectations ``(E[s sᵀ] (n, n), E[s] (n,))``, float64."""
    _require(model.n_units, "pair expectations")
    t = _temperature(model, temperature)
    log_z = log_partition(model, t)
    n = model.n_units
    ss = torch.zeros(n, n, dtype=torch.float64, device=model.weight.device)
    es = torch.zeros(n, dtype=torch.float64, device=model.weight.device)
    for s in _chunks(model, n, chunk_size):
        p = torch.exp(-model.energy(s, check=False).double() / t - log_z)
        sd = s.double()
        ss += (sd * p[:, None]).t() @ sd
        es += p @ sd
    return ss, es


def _clamped(model, v: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """Joint states of every row of ``v`` ``(m, nv)`` with every hidden state ``(H, nh)``:
    shape ``(m, H, n)``."""
    m, hn = v.shape[0], hidden.shape[0]
    return torch.cat([v[:, None, :].expand(m, hn, v.shape[1]),
                      hidden[None, :, :].expand(m, hn, hidden.shape[1])], dim=-1)


@torch.no_grad()
def conditional_distribution(model, v: torch.Tensor, temperature: Optional[float] = None
                             ) -> torch.Tensor:
    """``p(h | v)`` for every row of ``v`` ``(m, n_visible)``: float64 ``(m, 2^n_hidden)``,
    hidden states numbered like :func:`state_index` over the hidden units."""
    _require(model.n_hidden, "the hidden units")
    v = model.check_visible(v, "v")
    t = _temperature(model, temperature)
    h = model.units.states(model.n_hidden, dtype=v.dtype, device=v.device)
    e = model.energy(_clamped(model, v, h), check=False).double()
    return torch.softmax(-e / t, -1)


@torch.no_grad()
def clamped_pair_expectations(model, data: torch.Tensor, temperature: Optional[float] = None):
    """Expectations with the visible units clamped to the rows of ``data`` ``(m, n_visible)``
    and the hidden units at equilibrium given them, averaged over the rows:
    ``(E_data[s sᵀ] (n, n), E_data[s] (n,))``, float64."""
    data = model.check_visible(data, "data")
    p = conditional_distribution(model, data, temperature)  # (m, H)
    h = model.units.states(model.n_hidden, dtype=torch.float64, device=data.device)
    s = _clamped(model, data.double(), h)  # (m, H, n)
    ws = s * p[..., None]
    ss = torch.einsum("mhi,mhj->ij", ws, s) / data.shape[0]
    return ss, ws.sum(1).mean(0)


@torch.no_grad()
def log_likelihood(model, data: torch.Tensor, temperature: Optional[float] = None,
                   log_z: Optional[float] = None) -> torch.Tensor:
    """``log p(v)`` of every row of ``data`` ``(m, n_visible)``, hidden units summed out:
    float64 ``(m,)``. Pass ``log_z`` to reuse a partition function already computed."""
    _require(model.n_units, "log-likelihood")
    data = model.check_visible(data, "data")
    t = _temperature(model, temperature)
    if log_z is None:
        log_z = log_partition(model, t)
    h = model.units.states(model.n_hidden, dtype=data.dtype, device=data.device)
    e = model.energy(_clamped(model, data, h), check=False).double()
    return torch.logsumexp(-e / t, -1) - log_z
