"""Exact computation on RBMs small enough to enumerate one layer.

Summing out one layer in closed form (the free energy) leaves a sum over the joint states of the
other; when the smaller discrete layer has at most 2^24 joint states (24 binary units) that sum
is done exactly, in chunks so that memory stays bounded. :func:`log_partition` works in float64
by default, so that the reference value is exact to ~1e-9 nats, with chunks sized so that one
chunk's other-layer field stays near 2^22 numbers. :mod:`boltzkit.evaluation` builds the
user-facing estimators on these functions and :mod:`boltzkit.training` the exact gradient.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch

from ..units import enumerate_states

__all__ = ["enumerable_layer", "can_enumerate", "log_partition", "expected_statistics",
           "expected_parameter_gradients", "free_energy", "MAX_ENUMERATE_STATES"]

MAX_ENUMERATE_STATES = 2 ** 24


def enumerable_layer(model, max_states: float = MAX_ENUMERATE_STATES) -> Optional[str]:
    """``"visible"`` or ``"hidden"``: the discrete layer with fewer joint states, if it has at most
    ``max_states``; ``None`` when neither layer can be enumerated."""
    options = []
    for layer, units, n in (("hidden", model.hidden, model.n_hidden),
                            ("visible", model.visible, model.n_visible)):
        count = units.n_states(n)
        if math.isfinite(count) and count <= max_states:
            options.append((count, layer))
    return min(options)[1] if options else None


def can_enumerate(model, max_states: float = MAX_ENUMERATE_STATES) -> bool:
    """True when one discrete layer has at most ``max_states`` joint states (2^24: a 24-unit
    binary layer), so that :func:`log_partition` applies."""
    return enumerable_layer(model, max_states) is not None


def _require_layer(model, layer, max_states):
    layer = layer or enumerable_layer(model, max_states)
    if layer is None:
        raise ValueError(f"model: exact computation needs a discrete layer with at most "
                         f"{max_states:g} joint states; this RBM has {model.n_visible} "
                         f"{model.visible.name} visible and {model.n_hidden} {model.hidden.name} "
                         f"hidden units (use AIS instead)")
    return layer


def _chunks(model, layer, chunk_size):
    units, n = (model.hidden, model.n_hidden) if layer == "hidden" else (model.visible,
                                                                          model.n_visible)
    return enumerate_states(units, n, chunk_size, dtype=model.weight.dtype,
                            device=model.weight.device)


def _neg_free_energy(model, layer, states):
    return -(model.free_energy_hidden(states, check=False) if layer == "hidden"
             else model.free_energy(states, check=False))


@torch.no_grad()
def log_partition(model, layer: Optional[str] = None, *, dtype=torch.float64,
                  chunk_size: Optional[int] = None,
                  max_states: float = MAX_ENUMERATE_STATES) -> float:
    """Exact log Z of an RBM by enumerating one discrete layer (float64 accumulation).

    Parameters
    ----------
    model : RBM
    layer : "visible" or "hidden", optional
        The layer to enumerate; default: the one with fewer joint states.
    dtype : torch.float64 (default) or torch.float32
        Precision of the free energies (the model's parameters are copied, never changed); the
        sum over chunks is accumulated in float64 either way.
    chunk_size : int, optional
        Joint states per chunk; default ``2^22 // width of the other layer``, at most 2^16
        (bounded memory: a 2^24-state layer never sits in memory at once).
    max_states : float
        Refuse layers with more joint states (ValueError naming the layer sizes).
    """
    layer = _require_layer(model, layer, max_states)
    if chunk_size is None:
        other = model.n_visible if layer == "hidden" else model.n_hidden
        chunk_size = max(1, min(2 ** 16, 2 ** 22 // max(other, 1)))
    m = model if model.weight.dtype == dtype else copy.deepcopy(model).to(dtype)
    parts = [torch.logsumexp(_neg_free_energy(m, layer, s).double(), 0)
             for s in _chunks(m, layer, chunk_size)]
    return torch.logsumexp(torch.stack(parts), 0).item()


@torch.no_grad()
def expected_statistics(model, layer: Optional[str] = None, chunk_size: int = 2 ** 14,
                        max_states: float = MAX_ENUMERATE_STATES):
    """Exact model expectations ``(E[v hᵀ], E[v], E[h])`` under the RBM's distribution, shapes
    ``(n_visible, n_hidden)``, ``(n_visible,)``, ``(n_hidden,)``, in the model's dtype (free
    energies in the model's dtype, sums in float64).

    Enumerating v: E[v hᵀ] = sum_v p(v) v E[h | v]ᵀ; enumerating h: sum_h p(h) E[v | h] hᵀ.
    For a visible family coupling through ``phi(v)`` (:meth:`~boltzkit.models.RBM.visible_statistic`,
    e.g. ``v / σ²`` for learned variances) ``v`` reads ``phi(v)`` throughout (``phi`` is linear,
    so E[phi(v) | h] = phi(E[v | h])): the statistics the weights and visible biases meet.
    """
    layer = _require_layer(model, layer, max_states)
    log_z = log_partition(model, layer, dtype=model.weight.dtype, chunk_size=chunk_size,
                          max_states=max_states)
    dt = torch.float64
    vh = torch.zeros(model.n_visible, model.n_hidden, dtype=dt, device=model.weight.device)
    ev = torch.zeros(model.n_visible, dtype=dt, device=model.weight.device)
    eh = torch.zeros(model.n_hidden, dtype=dt, device=model.weight.device)
    for s in _chunks(model, layer, chunk_size):
        p = torch.exp(_neg_free_energy(model, layer, s).double() - log_z)
        if layer == "hidden":
            v = model.visible_statistic(model.visible_mean(s, check=False)).double()
            h = s.double()
        else:
            v, h = model.visible_statistic(s).double(), model.hidden_mean(s, check=False).double()
        vh += (v * p[:, None]).t() @ h
        ev += p @ v
        eh += p @ h
    return vh.to(model.weight.dtype), ev.to(model.weight.dtype), eh.to(model.weight.dtype)


def expected_parameter_gradients(model, names, layer: Optional[str] = None,
                                 chunk_size: int = 2 ** 14,
                                 max_states: float = MAX_ENUMERATE_STATES) -> dict:
    """Exact model expectations of the energy's gradient, ``{name: E_model[dE/dθ]}`` for the
    parameters ``names`` (e.g. ``["visible_log_variance"]``), each shaped like its parameter,
    in the model's dtype: the model side of the loss gradient ``E_data[dE/dθ] -
    E_model[dE/dθ]`` for any parameter, including those a unit family owns.

    With one layer summed out, ``-F(s) = log Σ_or∫ exp(-E)`` over the other layer, so
    ``dF(s)/dθ = E[dE/dθ | s]`` and ``E_model[dE/dθ] = Σ_s p(s) dF(s)/dθ`` over the
    enumerated layer's states ``s`` (the probabilities held fixed): autograd of the free
    energies, chunk by chunk (float64 sums).
    """
    layer = _require_layer(model, layer, max_states)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"names: the model has no parameter {missing[0]!r}")
    targets = [params[n] for n in names]
    log_z = log_partition(model, layer, dtype=model.weight.dtype, chunk_size=chunk_size,
                          max_states=max_states)
    total = [torch.zeros_like(t, dtype=torch.float64) for t in targets]
    for s in _chunks(model, layer, chunk_size):
        with torch.enable_grad():
            f = -_neg_free_energy(model, layer, s)
            p = torch.exp(-f.detach().double() - log_z).to(f.dtype)
            grads = torch.autograd.grad((p * f).sum(), targets, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc += g.double()
    return {n: t.to(model.weight.dtype) for n, t in zip(names, total)}


def _dtype_params(params, dtype):
    return None if params is None else {k: t.detach().to(dtype) for k, t in params.items()}


@torch.no_grad()
def free_energy(model, v: torch.Tensor, *, dtype=torch.float64,
                chunk_rows: int = 4096) -> torch.Tensor:
    """F(v) = base_v(v) - phi(v)·a - logpart_h(b + phi(v) W) per row of ``v`` ``(n, n_visible)``
    (``phi(v) = v`` but for learned variances, see :meth:`~boltzkit.models.RBM.free_energy`):
    ``(n,)`` in ``dtype`` (float64 by default, whatever the model's precision), computed
    ``chunk_rows`` rows at a time."""
    w = model.weight.detach().to(dtype)
    a = model.visible_bias.detach().to(dtype)
    b = model.hidden_bias.detach().to(dtype)
    pv = _dtype_params(model.visible_params, dtype)
    ph = _dtype_params(model.hidden_params, dtype)
    V, H = model.visible, model.hidden
    out = []
    for start in range(0, v.shape[0], chunk_rows):
        x = v[start:start + chunk_rows].to(dtype)
        stat = x if V.identity_statistic else V.statistic(x, params=pv)
        out.append(V.base(x, params=pv) - stat @ a
                   - H.log_partition(torch.addmm(b, stat, w), params=ph))
    return torch.cat(out)
