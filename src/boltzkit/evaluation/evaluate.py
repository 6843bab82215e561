"""``evaluate``: every figure of one model on one data set, as a JSON-ready dict (the CLI's
``boltzkit evaluate`` prints it)."""

from __future__ import annotations

import math
import time
from typing import Optional

import torch

from .. import _validation
from ..exact.rbm import can_enumerate, log_partition
from .ais import ais, reverse_ais
from .likelihood import log_likelihood, pseudo_likelihood, reconstruction_error

__all__ = ["evaluate", "LOG_Z_METHODS", "EXACT_PL_BUDGET"]

LOG_Z_METHODS = ("auto", "exact", "ais", "reverse-ais", "both")
# exact pseudo-likelihood when rows x variables x hidden units (x grid points for Gaussian
# visible units) stays below this; the stochastic estimate otherwise
EXACT_PL_BUDGET = 4e9


def _clean(obj):
    """JSON-safe copy: non-finite floats (an interval's -inf lower end) become None."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def _pl_cost(model, n: int) -> float:
    v = model.visible
    n_vars = model.n_visible // (getattr(v, "group_size", None) or model.n_visible) \
        if v.name == "softmax" else model.n_visible
    per_var = model.n_hidden * (model.n_visible // n_vars if v.name == "softmax" else 1)
    if v.name == "gaussian" and model.hidden.name != "gaussian":
        per_var *= 100  # typical quadrature grid
    return float(n) * n_vars * per_var


@torch.no_grad()
def evaluate(model, data: torch.Tensor, *, log_z: str = "auto", chains: int = 100,
             betas=None, seed: int = 0, base_data: Optional[torch.Tensor] = None,
             pseudo_likelihood_method: str = "auto") -> dict:
    """Evaluate ``model`` (an RBM) on ``data`` ``(n, n_visible)`` (values on the visible
    support).

    Parameters
    ----------
    log_z : "auto", "exact", "ais", "reverse-ais" or "both"
        ``auto``: exact when a discrete layer has at most 2^24 joint states (24 binary units),
        forward AIS otherwise; ``both``: forward and reverse AIS (the two sides of the bracket),
        plus the exact value when it is available.
    chains : int
        AIS chains; reverse AIS starts them at a random subset of this many rows of ``data``.
    betas : None (default schedule, 14,500 steps), int (steps) or a sequence (see :func:`ais`)
    seed : int
        Seeds every random choice (AIS chains, stochastic pseudo-likelihood, row subsets).
    base_data : tensor, optional
        Data for the AIS base-rate model (the training data; default ``data`` itself).
    pseudo_likelihood_method : "auto", "exact" or "stochastic"
        ``auto``: exact unless it would cost more than ``EXACT_PL_BUDGET`` hidden-unit
        evaluations.

    Returns
    -------
    dict with ``n_rows``, ``model``, ``reconstruction_error``, ``pseudo_likelihood`` (mean per
    row) and its ``pseudo_likelihood_std_error`` and ``pseudo_likelihood_method``,
    ``log_z_method``, ``log_z``, ``log_z_interval`` ``[low, high]`` (``None`` for an end that
    is -inf), ``log_likelihood`` and ``log_likelihood_std_error`` (nats per row, from the
    primary estimate: exact, else forward AIS, else reverse AIS), ``estimates`` (each method
    computed, with its own figures and seconds) and, when both AIS directions ran,
    ``log_likelihood_bracket`` ``[reverse, forward]``.
    """
    _validation.rbm(model)
    seed = _validation.seed(seed)
    if log_z not in LOG_Z_METHODS:
        raise ValueError(f"log_z: expected one of {', '.join(LOG_Z_METHODS)}, got {log_z!r}")
    if pseudo_likelihood_method not in ("auto", "exact", "stochastic"):
        raise ValueError(f"pseudo_likelihood_method: expected 'auto', 'exact' or 'stochastic', "
                         f"got {pseudo_likelihood_method!r}")
    data = model.check_visible(data, "data")
    n = data.shape[0]
    device = model.weight.device

    def gen(offset):
        g = torch.Generator(device=device)
        g.manual_seed(seed + offset)
        return g

    out = {"n_rows": n, "model": model.config() if hasattr(model, "config") else {}}
    out["reconstruction_error"] = reconstruction_error(model, data)
    stochastic = (pseudo_likelihood_method == "stochastic" or
                  (pseudo_likelihood_method == "auto" and _pl_cost(model, n) > EXACT_PL_BUDGET))
    pl = pseudo_likelihood(model, data, gen(1) if stochastic else None,
                           stochastic=stochastic).double()
    out["pseudo_likelihood"] = pl.mean().item()
    out["pseudo_likelihood_std_error"] = (pl.std().item() / math.sqrt(n)) if n > 1 else 0.0
    out["pseudo_likelihood_method"] = "stochastic" if stochastic else "exact"

    methods = []
    if log_z in ("auto", "exact"):
        methods.append("exact" if log_z == "exact" or can_enumerate(model) else "ais")
    elif log_z == "both":
        methods = (["exact"] if can_enumerate(model) else []) + ["ais", "reverse-ais"]
    else:
        methods.append(log_z)
    estimates = {}
    for m in methods:
        t0 = time.perf_counter()
        if m == "exact":
            lz = log_partition(model)
            info = {"log_z": lz, "log_z_interval": [lz, lz]}
        elif m == "ais":
            res = ais(model, base=base_data if base_data is not None else data,
                      n_chains=chains, betas=betas, generator=gen(2))
            lz, info = res.log_z, res.as_dict()
        else:
            res = reverse_ais(model, data, base=base_data if base_data is not None else data,
                              n_chains=chains, betas=betas, generator=gen(3))
            lz, info = res.log_z, res.as_dict()
        ll = log_likelihood(model, data, lz)
        info.update(log_likelihood=ll.mean, log_likelihood_std_error=ll.std_error,
                    seconds=time.perf_counter() - t0)
        info.pop("direction", None)
        estimates[m] = info
    primary = next(m for m in ("exact", "ais", "reverse-ais") if m in estimates)
    p = estimates[primary]
    out.update(log_z_method=primary, log_z=p["log_z"], log_z_interval=p["log_z_interval"],
               log_likelihood=p["log_likelihood"],
               log_likelihood_std_error=p["log_likelihood_std_error"], estimates=estimates)
    if "ais" in estimates and "reverse-ais" in estimates:
        out["log_likelihood_bracket"] = [estimates["reverse-ais"]["log_likelihood"],
                                         estimates["ais"]["log_likelihood"]]
    return _clean(out)
