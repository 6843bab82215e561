"""``evaluate``: every figure of one model on one data set, as a JSON-ready dict (the CLI's
``boltzkit evaluate`` prints it). Models: RBMs of any unit pairing, convolutional RBMs
(:class:`~boltzkit.models.ConvRBM`, data as images), whose free energies, reconstructions and
pseudo-likelihood come from the model's own convolutions (see :func:`evaluate`), and deep
models: DBNs of two RBMs and DBMs (:mod:`boltzkit.evaluation.deep`)."""

from __future__ import annotations

import copy
import math
import time
from typing import Optional

import torch

from .. import _validation
from ..exact.rbm import can_enumerate, log_partition
from .ais import _check_model, ais, reverse_ais
from .likelihood import LogLikelihood, log_likelihood, pseudo_likelihood, reconstruction_error

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


def _is_conv(model) -> bool:
    return hasattr(model, "image_shape")


def log_z_methods(log_z: str, enumerable: bool) -> list:
    """The log Z estimates ``log_z`` (one of :data:`LOG_Z_METHODS`) asks for, in the order
    they are reported: ``auto`` exact when the model ``enumerable`` else forward AIS; ``both``
    forward and reverse AIS (after exact when enumerable)."""
    if log_z not in LOG_Z_METHODS:
        raise ValueError(f"log_z: expected one of {', '.join(LOG_Z_METHODS)}, got {log_z!r}")
    if log_z in ("auto", "exact"):
        return ["exact" if log_z == "exact" or enumerable else "ais"]
    if log_z == "both":
        return (["exact"] if enumerable else []) + ["ais", "reverse-ais"]
    return [log_z]


def seeded_generators(seed: int, device):
    """``offset -> torch.Generator`` on ``device`` seeded ``seed + offset``: one stream per
    estimate, so that each figure depends on the seed and not on which others ran."""
    def gen(offset):
        g = torch.Generator(device=device)
        g.manual_seed(seed + offset)
        return g
    return gen


def _pl_cost(model, n: int) -> float:
    if _is_conv(model):  # a full free energy (one convolution) per visible unit and row
        c, kh, kw = model.image_shape[0], *model.filter_shape
        return float(n) * model.n_visible * model.n_hidden * c * kh * kw
    v = model.visible
    n_vars = model.n_visible // (getattr(v, "group_size", None) or model.n_visible) \
        if v.name == "softmax" else model.n_visible
    per_var = model.n_hidden * (model.n_visible // n_vars if v.name == "softmax" else 1)
    if v.name == "gaussian" and model.hidden.name != "gaussian":
        per_var *= 100  # typical quadrature grid
    return float(n) * n_vars * per_var


# -- the figures of a ConvRBM ------------------------------------------------------------------
_CONV_ROWS = 1024  # images per chunk of a ConvRBM's free energies


def _conv_free_energy(model, v: torch.Tensor) -> torch.Tensor:
    """F(v) ``(n,)`` in float64 of images ``v`` ``(n, C, H, W)`` (a float64 copy of the model),
    in chunks."""
    m = model if model.weight.dtype == torch.float64 else copy.deepcopy(model).double()
    return torch.cat([m.free_energy(v[s:s + _CONV_ROWS].double(), check=False)
                      for s in range(0, v.shape[0], _CONV_ROWS)])


def _conv_log_likelihood(model, data: torch.Tensor, log_z: float) -> LogLikelihood:
    values = (-_conv_free_energy(model, data) - log_z).cpu()
    n = values.shape[0]
    se = values.std().item() / math.sqrt(n) if n > 1 else 0.0
    return LogLikelihood(values.mean().item(), se, values)


def _conv_reconstruction_error(model, data: torch.Tensor) -> float:
    """Mean squared difference per unit between the images and E[v | E[h | v]]."""
    total = 0.0
    for s in range(0, data.shape[0], _CONV_ROWS):
        x = data[s:s + _CONV_ROWS]
        total += (x - model.reconstruction(x, check=False)).double().pow(2).sum().item()
    return total / data.numel()


def _conv_pseudo_likelihood(model, v: torch.Tensor, generator=None) -> torch.Tensor:
    """Log pseudo-likelihood ``Σ_i log p(v_i | v_-i) = -Σ_i softplus(F(v) - F(v with unit i
    flipped))`` per image ``(n,)`` (binary visible units), float64: every unit (``generator``
    None: one free energy per unit and image) or one random unit per image times their number
    (the stochastic estimate)."""
    f0 = _conv_free_energy(model, v)
    flat = v.reshape(v.shape[0], -1)
    n, nv = flat.shape
    if generator is not None:
        idx = torch.randint(0, nv, (n,), generator=generator,
                            device=generator.device).to(v.device)
        flipped = flat.clone()
        rows = torch.arange(n, device=v.device)
        flipped[rows, idx] = 1.0 - flipped[rows, idx]
        f1 = _conv_free_energy(model, flipped.view(v.shape))
        return -torch.nn.functional.softplus(f0 - f1) * nv
    out = torch.zeros(n, dtype=torch.float64, device=v.device)
    for i in range(nv):
        flipped = flat.clone()
        flipped[:, i] = 1.0 - flipped[:, i]
        out -= torch.nn.functional.softplus(f0 - _conv_free_energy(model, flipped.view(v.shape)))
    return out


def _likelihood(model, data, log_z) -> LogLikelihood:
    return _conv_log_likelihood(model, data, log_z) if _is_conv(model) else \
        log_likelihood(model, data, log_z)


@torch.no_grad()
def evaluate(model, data: torch.Tensor, *, log_z: str = "auto", chains: int = 100,
             betas=None, seed: int = 0, base_data: Optional[torch.Tensor] = None,
             pseudo_likelihood_method: str = "auto", samples: Optional[int] = None,
             sweeps: Optional[int] = None, raise_rows: Optional[int] = None) -> dict:
    """Evaluate ``model`` (an RBM, a ConvRBM, a DBN of two RBMs or a DBM) on ``data`` ``(n,
    n_visible)`` (a ConvRBM's: images ``(n, C, H, W)``), values on the visible support.

    A DBN or a DBM gets its own figures (:func:`~boltzkit.evaluation.deep.evaluate_dbn`,
    :func:`~boltzkit.evaluation.deep.evaluate_dbm`: bounds and importance-sampled estimates
    of the log-likelihood with log Z exact, forward or reverse AIS; no pseudo-likelihood), and
    takes ``samples`` (DBN: draws of ``h_1`` per row for the variational bound; DBM:
    importance samples per row; default 100), and a DBM ``sweeps`` (Gibbs sweeps of the
    reverse-AIS chains, default 5,000) and ``raise_rows`` (rows that also get RAISE, default
    0); these three are refused (``ValueError``) for the models they do not apply to, as is
    ``pseudo_likelihood_method`` other than ``"auto"`` for a deep model.

    A ConvRBM gets the same figures from its own convolutions: log Z exact when a layer can be
    enumerated (a pooled hidden layer counts ``P² + 1`` states per block), forward and reverse
    AIS otherwise (:func:`~boltzkit.evaluation.ais`, base rates per pixel); free energies in
    float64; the pseudo-likelihood of binary visible units by flipping each unit (one free
    energy per unit: exact within ``EXACT_PL_BUDGET`` multiply-adds, else one random unit per
    image); for Gaussian visible units the pseudo-likelihood is not computed (``None``, method
    ``"unavailable"``).

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
    ``log_likelihood_bracket`` ``[reverse, forward]``. A deep model's keys are listed in
    :mod:`boltzkit.evaluation.deep`'s functions.
    """
    from . import deep

    if deep.is_deep(model):
        return _clean(_evaluate_deep(model, data, log_z=log_z, chains=chains, betas=betas,
                                     seed=seed, base_data=base_data,
                                     pseudo_likelihood_method=pseudo_likelihood_method,
                                     samples=samples, sweeps=sweeps, raise_rows=raise_rows))
    for name, value in (("samples", samples), ("sweeps", sweeps), ("raise_rows", raise_rows)):
        if value is not None:
            raise ValueError(f"{name}: for DBN and DBM models only, got a "
                             f"{type(model).__name__}")
    _check_model(model)
    seed = _validation.seed(seed)
    if log_z not in LOG_Z_METHODS:
        raise ValueError(f"log_z: expected one of {', '.join(LOG_Z_METHODS)}, got {log_z!r}")
    if pseudo_likelihood_method not in ("auto", "exact", "stochastic"):
        raise ValueError(f"pseudo_likelihood_method: expected 'auto', 'exact' or 'stochastic', "
                         f"got {pseudo_likelihood_method!r}")
    data = model.check_visible(data, "data")
    n = data.shape[0]
    gen = seeded_generators(seed, model.weight.device)

    out = {"n_rows": n, "model": model.config() if hasattr(model, "config") else {}}
    conv = _is_conv(model)
    out["reconstruction_error"] = (_conv_reconstruction_error(model, data) if conv else
                                   reconstruction_error(model, data))
    stochastic = (pseudo_likelihood_method == "stochastic" or
                  (pseudo_likelihood_method == "auto" and _pl_cost(model, n) > EXACT_PL_BUDGET))
    if conv and not model.visible.discrete:
        out.update(pseudo_likelihood=None, pseudo_likelihood_std_error=None,
                   pseudo_likelihood_method="unavailable")
    else:
        pl = (_conv_pseudo_likelihood(model, data, gen(1) if stochastic else None) if conv else
              pseudo_likelihood(model, data, gen(1) if stochastic else None,
                                stochastic=stochastic)).double()
        out["pseudo_likelihood"] = pl.mean().item()
        out["pseudo_likelihood_std_error"] = (pl.std().item() / math.sqrt(n)) if n > 1 else 0.0
        out["pseudo_likelihood_method"] = "stochastic" if stochastic else "exact"

    methods = log_z_methods(log_z, can_enumerate(model))
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
        ll = _likelihood(model, data, lz)
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


def _evaluate_deep(model, data, *, log_z, chains, betas, seed, base_data,
                   pseudo_likelihood_method, samples, sweeps, raise_rows) -> dict:
    from ..models.dbn import DBN
    from . import deep

    if pseudo_likelihood_method != "auto":
        raise ValueError(f"pseudo_likelihood_method: for RBMs and ConvRBMs only (a "
                         f"{type(model).__name__} has no pseudo-likelihood here), got "
                         f"{pseudo_likelihood_method!r}")
    samples = deep.DEFAULT_SAMPLES if samples is None else samples
    if isinstance(model, DBN):
        for name, value in (("sweeps", sweeps), ("raise_rows", raise_rows)):
            if value is not None:
                raise ValueError(f"{name}: for DBM models only, got a DBN")
        return deep.evaluate_dbn(model, data, log_z=log_z, chains=chains, betas=betas,
                                 seed=seed, base_data=base_data, samples=samples)
    return deep.evaluate_dbm(model, data, log_z=log_z, chains=chains, betas=betas, seed=seed,
                             base_data=base_data, samples=samples,
                             sweeps=deep.DEFAULT_SWEEPS if sweeps is None else sweeps,
                             raise_rows=0 if raise_rows is None else raise_rows)
