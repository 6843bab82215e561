"""Exact computation on RBMs small enough to enumerate one layer.

Summing out one layer in closed form (the free energy) leaves a sum over the joint states of the
other; when the smaller discrete layer has at most about 24 units (2^24 states) that sum is done
exactly, in chunks so that memory stays bounded. These are the reference values every statistical
test in boltzkit compares against; :mod:`boltzkit.evaluation` builds the user-facing estimators on
them and :mod:`boltzkit.training` the exact gradient.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from .units import enumerate_states

__all__ = ["enumerable_layer", "log_partition", "expected_statistics", "MAX_ENUMERATE_STATES"]

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
    return -(model.free_energy_hidden(states) if layer == "hidden" else model.free_energy(states))


@torch.no_grad()
def log_partition(model, layer: Optional[str] = None, chunk_size: int = 2 ** 16,
                  max_states: float = MAX_ENUMERATE_STATES) -> float:
    """Exact log Z of an RBM (float64 accumulation), enumerating ``layer`` (default: the smaller
    enumerable one)."""
    layer = _require_layer(model, layer, max_states)
    parts = [torch.logsumexp(_neg_free_energy(model, layer, s).double(), 0)
             for s in _chunks(model, layer, chunk_size)]
    return torch.logsumexp(torch.stack(parts), 0).item()


@torch.no_grad()
def expected_statistics(model, layer: Optional[str] = None, chunk_size: int = 2 ** 14,
                        max_states: float = MAX_ENUMERATE_STATES):
    """Exact model expectations ``(E[v hᵀ], E[v], E[h])`` under the RBM's distribution, shapes
    ``(n_visible, n_hidden)``, ``(n_visible,)``, ``(n_hidden,)``, in the model's dtype.

    Enumerating v: E[v hᵀ] = sum_v p(v) v E[h | v]ᵀ; enumerating h: sum_h p(h) E[v | h] hᵀ.
    """
    layer = _require_layer(model, layer, max_states)
    log_z = log_partition(model, layer, chunk_size, max_states)
    dt = torch.float64
    vh = torch.zeros(model.n_visible, model.n_hidden, dtype=dt, device=model.weight.device)
    ev = torch.zeros(model.n_visible, dtype=dt, device=model.weight.device)
    eh = torch.zeros(model.n_hidden, dtype=dt, device=model.weight.device)
    for s in _chunks(model, layer, chunk_size):
        p = torch.exp(_neg_free_energy(model, layer, s).double() - log_z)
        if layer == "hidden":
            v, h = model.visible_mean(s).double(), s.double()
        else:
            v, h = s.double(), model.hidden_mean(s).double()
        vh += (v * p[:, None]).t() @ h
        ev += p @ v
        eh += p @ h
    return vh.to(model.weight.dtype), ev.to(model.weight.dtype), eh.to(model.weight.dtype)
