"""Exact computation on deep Boltzmann machines small enough to enumerate one parity class.

The layers of a DBM split into two classes, even (0, 2, ...) and odd (1, 3, ...), each
conditionally independent given the other. Fixing every layer of one class (and the visible
layer, when it is clamped to data) leaves the units of the other class independent, so they
are summed out in closed form::

    log sum_{summed layers} exp(-E) = sum_{fixed l} x_l·b_l + sum_{fixed pairs} x_l W_l x_{l+1}
                                      + sum_{summed l} sum_j softplus(t_lj)

(``t_l`` the field of a summed layer from its fixed neighbours). What is left is a sum over the
joint states of the enumerated class: 2^(its units) terms, done in chunks, in float64. For a
784-free toy such as 6-4-3 that is 16 states (the odd layer) for log Z, or 2^9 (the even
layers); log Z takes the smaller class by default, and the visible marginal ``log p(v)`` sums
out whichever hidden class is larger (``v`` is fixed either way).

The statistics that make the log-likelihood gradient come from the same sums: the enumerated
layers' states weighted by their probability, the summed layers' conditional means.
"""

from __future__ import annotations

import copy
import math
from typing import List, NamedTuple, Optional

import torch
import torch.nn.functional as F

from ..units import enumerate_states

__all__ = ["MAX_ENUMERATE_STATES", "log_partition", "log_unnormalized", "log_likelihood",
           "model_statistics", "posterior_statistics", "DBMStatistics", "n_states"]

MAX_ENUMERATE_STATES = 2 ** 22


class DBMStatistics(NamedTuple):
    """Expectations that make a DBM's log-likelihood gradient (float64 or the model's dtype).

    pairs : list of ``L`` tensors, ``pairs[l] = E[x_lᵀ x_{l+1}]`` ``(n_l, n_{l+1})``
    means : list of ``L + 1`` tensors, ``means[l] = E[x_l]`` ``(n_l,)``
    """

    pairs: list
    means: list


def n_states(model, parity: int, clamped: bool = False) -> int:
    """Joint states of the layers of ``parity`` (0 even, 1 odd); the visible layer excluded
    when it is ``clamped``."""
    return 2 ** sum(n for l, n in enumerate(model.sizes)
                    if l % 2 == parity and not (clamped and l == 0))


def _double(model):
    return model if model.bias_0.dtype == torch.float64 else copy.deepcopy(model).double()


def _enumerated_layers(model, parity: int, clamped: bool) -> list:
    return [l for l in range(model.n_layers) if l % 2 == parity and not (clamped and l == 0)]


def _is_dbm(model):
    from ..models.dbm import DBM

    if not isinstance(model, DBM):
        raise ValueError(f"model: expected a DBM, got {type(model).__name__}")
    return model


def _check(model, parity, clamped, max_states):
    _is_dbm(model)
    if parity not in (0, 1):
        raise ValueError(f"parity: expected 0 (even layers) or 1 (odd layers), got {parity!r}")
    count = n_states(model, parity, clamped)
    if count > max_states:
        raise ValueError(f"model: exact computation would enumerate {count:g} joint states of "
                         f"the {'even' if parity == 0 else 'odd'} layers of a DBM "
                         f"{list(model.sizes)}, more than {max_states:g} (use AIS instead)")


def _chunks(model, parity: int, v: Optional[torch.Tensor], chunk_size: int):
    """Yield ``(log_f, xs, rows)`` over every joint state of the enumerated layers (times every
    row of ``v`` when given): ``log_f`` ``(R,)`` the log of the summed-out weight, ``xs`` the
    ``L + 1`` layers ``(R, n_l)`` (the enumerated layers' states, ``v``, and the summed layers'
    conditional means), ``rows`` ``(R,)`` the row of ``v`` (zeros when ``v`` is None)."""
    clamped = v is not None
    enum = _enumerated_layers(model, parity, clamped)
    widths = [model.sizes[l] for l in enum]
    dt, dev = model.bias_0.dtype, model.bias_0.device
    n_rows = v.shape[0] if clamped else 1
    total = sum(widths)
    for states in (enumerate_states(model.units, total, chunk_size, dtype=dt, device=dev)
                   if total else [torch.zeros(1, 0, dtype=dt, device=dev)]):
        s = states.shape[0]
        parts = torch.split(states, widths, dim=1) if widths else []
        xs: List[Optional[torch.Tensor]] = [None] * model.n_layers
        for l, x in zip(enum, parts):
            xs[l] = x.repeat(n_rows, 1)
        if clamped:
            xs[0] = v.repeat_interleave(s, 0)
        rows = torch.arange(n_rows, device=dev).repeat_interleave(s)
        fixed = [l for l in range(model.n_layers) if xs[l] is not None]
        log_f = torch.zeros(n_rows * s, dtype=dt, device=dev)
        for l in fixed:
            log_f = log_f + xs[l] @ getattr(model, f"bias_{l}")
            if l + 1 < model.n_layers and xs[l + 1] is not None:
                log_f = log_f + ((xs[l] @ getattr(model, f"weight_{l}")) * xs[l + 1]).sum(-1)
        summed = [l for l in range(model.n_layers) if xs[l] is None]
        means = {}
        for l in summed:
            t = model.layer_field(l, xs)
            log_f = log_f + F.softplus(t).sum(-1)
            means[l] = torch.sigmoid(t)
        for l, m in means.items():
            xs[l] = m
        yield log_f, xs, rows


def _default_chunk(model, parity, clamped, n_rows=1):
    width = sum(model.sizes)
    return max(1, min(2 ** 14, 2 ** 22 // max(1, width * n_rows)))


@torch.no_grad()
def log_partition(model, parity: Optional[int] = None, *, chunk_size: Optional[int] = None,
                  max_states: float = MAX_ENUMERATE_STATES) -> float:
    """Exact log Z of a DBM (float64), enumerating the layers of ``parity`` (0: even, visible
    included; 1: odd; default: the class with fewer joint states) and summing the other class
    out in closed form."""
    if _is_dbm(model) is not None and parity is None:
        parity = min((n_states(model, p), p) for p in (0, 1))[1]
    _check(model, parity, False, max_states)
    m = _double(model)
    chunk_size = chunk_size or _default_chunk(m, parity, False)
    parts = [torch.logsumexp(lf, 0) for lf, _, _ in _chunks(m, parity, None, chunk_size)]
    return torch.logsumexp(torch.stack(parts), 0).item()


def _check_v(model, v):
    return model.check_visible(v, "v").to(torch.float64)


def _hidden_parity(model) -> int:
    """The hidden class to enumerate with ``v`` clamped: the one with fewer joint states."""
    return min((n_states(model, p, clamped=True), p) for p in (1, 0))[1]


@torch.no_grad()
def log_unnormalized(model, v: torch.Tensor, parity: Optional[int] = None, *,
                     max_states: float = MAX_ENUMERATE_STATES) -> torch.Tensor:
    """``log sum_h exp(-E(v, h))`` per row of ``v`` ``(n, n_visible)`` (0/1): ``(n,)`` float64.
    ``parity``: the hidden class to enumerate (default the smaller one)."""
    parity = _hidden_parity(_is_dbm(model)) if parity is None else parity
    _check(model, parity, True, max_states)
    m = _double(model)
    v = _check_v(model, v)
    n = v.shape[0]
    out = torch.full((n,), -math.inf, dtype=torch.float64, device=v.device)
    chunk = _default_chunk(m, parity, True, n)
    for lf, _, _ in _chunks(m, parity, v, chunk):
        out = torch.logaddexp(out, torch.logsumexp(lf.reshape(n, -1), 1))
    return out


def log_likelihood(model, v: torch.Tensor, log_z: Optional[float] = None, *,
                   max_states: float = MAX_ENUMERATE_STATES) -> torch.Tensor:
    """Exact ``log p(v)`` per row of ``v`` ``(n, n_visible)``: ``(n,)`` float64
    (``log_z`` default: :func:`log_partition`)."""
    if log_z is None:
        log_z = log_partition(model, max_states=max_states)
    return log_unnormalized(model, v, max_states=max_states) - log_z


def _statistics(model, parity, v, max_states, dtype) -> DBMStatistics:
    m = _double(model)
    n = 1 if v is None else v.shape[0]
    chunk = _default_chunk(m, parity, v is not None, n)
    chunks = list(_chunks(m, parity, v, chunk))
    # normalisers: log Z, or per row of v the log of its unnormalised marginal
    if v is None:
        norm = torch.logsumexp(torch.cat([lf for lf, _, _ in chunks]), 0).reshape(1)
    else:
        norm = torch.full((n,), -math.inf, dtype=torch.float64, device=v.device)
        for lf, _, _ in chunks:
            norm = torch.logaddexp(norm, torch.logsumexp(lf.reshape(n, -1), 1))
    pairs = [torch.zeros(a, b, dtype=torch.float64, device=m.bias_0.device)
             for a, b in zip(m.sizes[:-1], m.sizes[1:])]
    means = [torch.zeros(k, dtype=torch.float64, device=m.bias_0.device) for k in m.sizes]
    for lf, xs, rows in chunks:
        p = torch.exp(lf - norm[rows]) / n  # each row's posterior, averaged over the rows
        for l in range(m.n_layers):
            means[l] += p @ xs[l]
        for l in range(m.n_layers - 1):
            # one of each neighbouring pair is enumerated (or v), the other a conditional
            # mean given it: E[x_l x_{l+1}ᵀ | fixed] = x_l ⊗ mean or mean ⊗ x_{l+1}
            pairs[l] += (xs[l] * p[:, None]).t() @ xs[l + 1]
    return DBMStatistics([t.to(dtype) for t in pairs], [t.to(dtype) for t in means])


@torch.no_grad()
def model_statistics(model, parity: Optional[int] = None, *,
                     max_states: float = MAX_ENUMERATE_STATES) -> DBMStatistics:
    """Exact ``E[x_lᵀ x_{l+1}]`` and ``E[x_l]`` under the DBM's distribution, in the model's
    dtype (sums in float64)."""
    if _is_dbm(model) is not None and parity is None:
        parity = min((n_states(model, p), p) for p in (0, 1))[1]
    _check(model, parity, False, max_states)
    return _statistics(model, parity, None, max_states, model.bias_0.dtype)


@torch.no_grad()
def posterior_statistics(model, v: torch.Tensor, parity: Optional[int] = None, *,
                         max_states: float = MAX_ENUMERATE_STATES) -> DBMStatistics:
    """Exact ``mean_rows E[x_lᵀ x_{l+1} | v]`` and ``mean_rows E[x_l | v]`` for the rows of
    ``v`` ``(n, n_visible)`` (0/1): the data statistics of the exact gradient (the positive
    phase that mean field approximates), in the model's dtype."""
    parity = _hidden_parity(_is_dbm(model)) if parity is None else parity
    _check(model, parity, True, max_states)
    return _statistics(model, parity, _check_v(model, v), max_states, model.bias_0.dtype)
