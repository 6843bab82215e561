"""Exact log Z and free energies for the evaluation layer (built on :mod:`boltzkit.exact`).

``log_partition_exact`` enumerates the smaller discrete layer (at most 2^24 joint states) in
chunks sized so that one chunk's other-layer field stays near 2^22 numbers, and works in float64
by default so that the reference value is exact to ~1e-9 nats.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch

from .. import exact as _exact

__all__ = ["log_partition_exact", "can_enumerate", "free_energy", "MAX_ENUMERATE_STATES"]

MAX_ENUMERATE_STATES = _exact.MAX_ENUMERATE_STATES


def can_enumerate(model, max_states: float = MAX_ENUMERATE_STATES) -> bool:
    """True when one discrete layer has at most ``max_states`` joint states (2^24: a 24-unit
    binary layer), so that :func:`log_partition_exact` applies."""
    return _exact.enumerable_layer(model, max_states) is not None


@torch.no_grad()
def log_partition_exact(model, *, dtype=torch.float64, chunk_size: Optional[int] = None,
                        max_states: float = MAX_ENUMERATE_STATES) -> float:
    """Exact log Z of an RBM by enumerating its smaller discrete layer.

    Parameters
    ----------
    model : RBM
    dtype : torch.float64 (default) or torch.float32 (the model's parameters are copied, never
        changed)
    chunk_size : int, optional
        Joint states per chunk; default ``2^22 // width of the other layer`` (bounded memory: a
        2^24-state layer never sits in memory at once).
    max_states : float
        Refuse layers with more joint states (ValueError naming the layer sizes).
    """
    layer = _exact.enumerable_layer(model, max_states)
    if layer is None:
        return _exact.log_partition(model, max_states=max_states)  # raises the ValueError
    other = model.n_visible if layer == "hidden" else model.n_hidden
    if chunk_size is None:
        chunk_size = max(1, min(2 ** 16, 2 ** 22 // max(other, 1)))
    m = model if model.weight.dtype == dtype else copy.deepcopy(model).to(dtype)
    return _exact.log_partition(m, layer, chunk_size=chunk_size, max_states=max_states)


@torch.no_grad()
def free_energy(model, v: torch.Tensor, *, dtype=torch.float64, chunk_rows: int = 4096) -> torch.Tensor:
    """F(v) = base_v(v) - v·a - logpart_h(b + vW) per row, ``(n,)`` in ``dtype`` (float64 by
    default, whatever the model's precision), computed ``chunk_rows`` rows at a time."""
    w = model.weight.detach().to(dtype)
    a = model.visible_bias.detach().to(dtype)
    b = model.hidden_bias.detach().to(dtype)
    out = []
    for start in range(0, v.shape[0], chunk_rows):
        x = v[start:start + chunk_rows].to(dtype)
        out.append(model.visible.base(x) - x @ a - model.hidden.log_partition(torch.addmm(b, x, w)))
    return torch.cat(out)
