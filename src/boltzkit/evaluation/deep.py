"""The figures of deep models for :func:`boltzkit.evaluation.evaluate` (``boltzkit evaluate``):
deep belief nets of two RBMs and deep Boltzmann machines, as JSON-ready dicts shaped like an
RBM's. Nothing here is a new estimator: the numbers come from :mod:`boltzkit.evaluation.dbn`,
:mod:`boltzkit.evaluation.dbm`, :mod:`boltzkit.evaluation.ais` and :mod:`boltzkit.exact`;
this module chooses, runs and reports them.

DBN (:func:`evaluate_dbn`)
--------------------------
A DBN's log-likelihood is not computed: what is reported is the variational lower bound per
row (:func:`boltzkit.evaluation.dbn.variational_bound`, ``samples`` draws of ``h_1 ~ q(h_1 |
v)`` per row) with the top RBM's log Z exact when it can be enumerated, else AIS from a
base-rate model whose rates are those of the top RBM's training inputs (the bottom RBM's hidden
means of ``base_data``, Salakhutdinov & Murray 2008), forward and, for ``"both"``, reverse
(chains started at draws of ``h_1 ~ q(h_1 | v)`` for rows of ``data``). The bound is linear in
log Z: a smaller (forward) log Z raises it, so with forward AIS's log Z it tends to be
over-stated, with reverse AIS's under-stated; ``"both"`` reports the two as a bracket.

DBM (:func:`evaluate_dbm`)
--------------------------
Per row of ``data``, two estimates of ``log sum_h exp(-E(v, h))`` from the mean-field posterior
(30 sweeps): the mean-field bound (:func:`boltzkit.evaluation.dbm.elbo`) and the
importance-sampled estimate (:func:`boltzkit.evaluation.dbm.log_unnormalized`, ``samples``
draws per row, tighter); minus log Z they estimate ``log p(v)`` from below (with the exact or an
upper estimate of log Z). log Z is exact when a parity class of layers can be enumerated
(:mod:`boltzkit.exact.dbm`), else forward AIS (:func:`boltzkit.evaluation.dbm.ais`, base rates
of ``base_data`` in every layer) and, for ``"reverse-ais"`` / ``"both"``, reverse AIS from
``chains`` Gibbs chains started at rows of ``base_data`` (the training data) and run
``sweeps`` block-Gibbs sweeps at beta = 1 (default 5,000, what BENCHMARKS.md's DBM
measurements used; reverse AIS is an upper bound on log Z only for samples of the DBM).
``raise_rows`` rows (default none) also get RAISE
(:func:`boltzkit.evaluation.dbm.raise_log_likelihood`), a conservative per-row estimate that
needs no log Z, at the cost of one reverse chain per row on the AIS schedule.
"""

from __future__ import annotations

import math
import time
from typing import Optional

import torch

from .. import _validation

__all__ = ["evaluate_dbn", "evaluate_dbm", "is_deep", "DEFAULT_SAMPLES", "DEFAULT_SWEEPS",
           "MEAN_FIELD_STEPS"]

#: draws per row: of h_1 for a DBN's bound, importance samples for a DBM's estimate
DEFAULT_SAMPLES = 100
#: block-Gibbs sweeps at beta = 1 of a DBM's reverse-AIS chains
DEFAULT_SWEEPS = 5000
#: mean-field sweeps of a DBM's posterior (bound and proposal)
MEAN_FIELD_STEPS = 30
# rows times draws of h_1 per call of the DBN bound (it holds them all at once)
_BOUND_CHUNK = 10000
# exact per-row DBM log-likelihoods when rows x enumerated hidden states stay below this
_EXACT_ROWS_BUDGET = 2 ** 28


def is_deep(model) -> bool:
    """True for a :class:`~boltzkit.models.DBN` or a :class:`~boltzkit.models.DBM`."""
    from ..models.dbm import DBM
    from ..models.dbn import DBN

    return isinstance(model, (DBN, DBM))


def _mean_se(t: torch.Tensor) -> tuple:
    t = t.double()
    n = t.numel()
    return t.mean().item(), (t.std().item() / math.sqrt(n)) if n > 1 else 0.0


def _primary(estimates: dict) -> str:
    return next(m for m in ("exact", "ais", "reverse-ais") if m in estimates)


# -- DBN ----------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_dbn(model, data: torch.Tensor, *, log_z: str = "auto", chains: int = 100,
                 betas=None, seed: int = 0, base_data: Optional[torch.Tensor] = None,
                 samples: int = DEFAULT_SAMPLES) -> dict:
    """The figures of a two-layer DBN on ``data`` ``(n, n_visible)`` (see the module docstring).

    Parameters
    ----------
    log_z, chains, betas, seed
        As in :func:`boltzkit.evaluation.evaluate`; log Z is the top RBM's.
    base_data : ``(m, n_visible)``, optional
        The training data: their bottom-RBM hidden means give AIS's base rates (default
        ``data``).
    samples : int
        Draws of ``h_1`` per row for the bound.

    Returns
    -------
    dict with ``n_rows``, ``model_kind`` ``"DBN"``, ``model`` (its configuration),
    ``reconstruction_error`` (the bottom RBM's), ``bound_samples``, ``log_z_of`` (``"top
    RBM"``), ``log_z_method``, ``log_z``, ``log_z_interval``, ``variational_bound`` and
    ``variational_bound_std_error`` (nats per row, with the primary log Z: exact, else
    forward, else reverse AIS), ``estimates`` (per method: the top RBM's ``log_z``, its
    interval, ESS and chains for AIS, the bound with that log Z, seconds) and, when both AIS
    directions ran, ``variational_bound_bracket`` ``[reverse, forward]``.
    """
    from ..exact.rbm import can_enumerate, log_partition
    from ..training.callbacks import reconstruction_error
    from .ais import ais, reverse_ais
    from .dbn import _dbn, variational_bound
    from .evaluate import log_z_methods, seeded_generators

    _dbn(model)
    seed = _validation.seed(seed)
    samples = _validation.integer(samples, "samples", 1)
    data = model.check_visible(data, "data")
    if data.shape[0] < 1:
        raise ValueError("data: expected at least one row, got 0")
    base_data = data if base_data is None else model.check_visible(base_data, "base_data",
                                                                   relaxed=True)
    bottom, top = model.rbm(0), model.rbm(1)
    enumerable = can_enumerate(top)
    methods = log_z_methods(log_z, enumerable)
    if log_z == "exact" and not enumerable:
        raise ValueError(f"log_z: 'exact' enumerates a layer of the top RBM, which has "
                         f"{top.n_visible} and {top.n_hidden} binary units (at most 24 in one "
                         f"layer); use 'ais' or 'both'")
    gen = seeded_generators(seed, bottom.weight.device)
    n = data.shape[0]
    out = {"n_rows": n, "model_kind": "DBN", "model": model.config(),
           "reconstruction_error": reconstruction_error(bottom, data),
           "bound_samples": samples, "log_z_of": "top RBM"}
    g = gen(1)
    rows_per = max(1, _BOUND_CHUNK // samples)
    bound0 = torch.cat([variational_bound(model, data[s:s + rows_per], 0.0, n_samples=samples,
                                          generator=g) for s in range(0, n, rows_per)])
    b_mean, b_se = _mean_se(bound0)
    h_base = torch.cat([model.up_mean(0, x) for x in base_data.split(_BOUND_CHUNK)])
    estimates = {}
    for m in methods:
        t0 = time.perf_counter()
        if m == "exact":
            lz = log_partition(top)
            info = {"log_z": lz, "log_z_interval": [lz, lz]}
        elif m == "ais":
            res = ais(top, base=h_base, n_chains=chains, betas=betas, generator=gen(2))
            lz, info = res.log_z, res.as_dict()
        else:  # the top RBM's inputs for these rows: draws of h_1 ~ q(h_1 | v)
            g3 = gen(3)
            h = torch.bernoulli(model.up_mean(0, data), generator=g3)
            res = reverse_ais(top, h, base=h_base, n_chains=chains, betas=betas, generator=g3)
            lz, info = res.log_z, res.as_dict()
        info.pop("direction", None)
        info.update(variational_bound=b_mean - lz, variational_bound_std_error=b_se,
                    seconds=time.perf_counter() - t0)
        estimates[m] = info
    p = estimates[_primary(estimates)]
    out.update(log_z_method=_primary(estimates), log_z=p["log_z"],
               log_z_interval=p["log_z_interval"], variational_bound=p["variational_bound"],
               variational_bound_std_error=b_se, estimates=estimates)
    if "ais" in estimates and "reverse-ais" in estimates:
        out["variational_bound_bracket"] = [estimates["reverse-ais"]["variational_bound"],
                                            estimates["ais"]["variational_bound"]]
    return out


# -- DBM ----------------------------------------------------------------------------------------
def _dbm_enumerable(model) -> bool:
    from ..exact.dbm import MAX_ENUMERATE_STATES, n_states

    return min(n_states(model, p) for p in (0, 1)) <= MAX_ENUMERATE_STATES


def _dbm_rows_enumerable(model, n_rows: int) -> bool:
    from ..exact.dbm import MAX_ENUMERATE_STATES, n_states

    k = min(n_states(model, p, clamped=True) for p in (0, 1))
    return k <= MAX_ENUMERATE_STATES and k * n_rows <= _EXACT_ROWS_BUDGET


@torch.no_grad()
def evaluate_dbm(model, data: torch.Tensor, *, log_z: str = "auto", chains: int = 100,
                 betas=None, seed: int = 0, base_data: Optional[torch.Tensor] = None,
                 samples: int = DEFAULT_SAMPLES, sweeps: int = DEFAULT_SWEEPS,
                 raise_rows: int = 0) -> dict:
    """The figures of a DBM on ``data`` ``(n, n_visible)`` (0/1; see the module docstring).

    Parameters
    ----------
    log_z, chains, betas, seed
        As in :func:`boltzkit.evaluation.evaluate` (``auto``: exact when a parity class of
        layers has at most 2^22 joint states, else forward AIS).
    base_data : ``(m, n_visible)``, optional
        The training data: AIS's base rates in every layer, and the reverse chains' starting
        rows (default ``data``).
    samples : int
        Importance samples per row.
    sweeps : int
        Block-Gibbs sweeps at beta = 1 of the reverse-AIS chains before they anneal back.
    raise_rows : int
        Rows of ``data`` (a random subset) that also get RAISE; 0: none.

    Returns
    -------
    dict with ``n_rows``, ``model_kind`` ``"DBM"``, ``model``, ``mean_field_steps``,
    ``importance_samples``, ``log_z_method``, ``log_z``, ``log_z_interval``,
    ``variational_bound`` (the mean-field bound) and ``importance_sampled`` with their
    ``..._std_error`` (nats per row, with the primary log Z: exact, else forward, else reverse
    AIS), ``estimates`` (per method: ``log_z``, interval, ESS and chains for AIS, both figures
    with that log Z, seconds; ``exact`` also ``log_likelihood`` and its standard error when
    the rows can be enumerated too), ``reverse_sweeps`` when reverse AIS ran, the two
    ``..._bracket`` ``[reverse, forward]`` when both directions ran, and ``raise`` (``rows``,
    ``log_likelihood``, ``log_likelihood_std_error``, ``n_betas``, ``seconds``) when
    ``raise_rows`` > 0.
    """
    from ..exact import dbm as xdbm
    from ..samplers import dbm as sdbm
    from . import dbm as edbm
    from .evaluate import log_z_methods, seeded_generators

    edbm._dbm(model)
    seed = _validation.seed(seed)
    samples = _validation.integer(samples, "samples", 1)
    sweeps = _validation.integer(sweeps, "sweeps", 0)
    raise_rows = _validation.integer(raise_rows, "raise_rows", 0)
    data = model.check_visible(data, "data")
    n = data.shape[0]
    if n < 1:
        raise ValueError("data: expected at least one row, got 0")
    base_data = data if base_data is None else model.check_visible(base_data, "base_data",
                                                                   relaxed=True)
    enumerable = _dbm_enumerable(model)
    methods = log_z_methods(log_z, enumerable)
    if log_z == "exact" and not enumerable:
        raise ValueError(f"log_z: 'exact' enumerates a parity class of the layers of a DBM "
                         f"{list(model.sizes)}, more than 2^22 joint states; use 'ais' or "
                         f"'both'")
    gen = seeded_generators(seed, model.bias_0.device)
    out = {"n_rows": n, "model_kind": "DBM", "model": model.config(),
           "mean_field_steps": MEAN_FIELD_STEPS, "importance_samples": samples}
    mu = sdbm.mean_field(model, data, MEAN_FIELD_STEPS)
    elbo_mean, elbo_se = _mean_se(edbm.elbo(model, data, mu))
    is_mean, is_se = _mean_se(edbm.log_unnormalized(model, data, n_samples=samples, means=mu,
                                                    generator=gen(1)))
    estimates = {}
    for m in methods:
        t0 = time.perf_counter()
        if m == "exact":
            lz = xdbm.log_partition(model)
            info = {"log_z": lz, "log_z_interval": [lz, lz]}
            if _dbm_rows_enumerable(model, n):
                ll, ll_se = _mean_se(xdbm.log_unnormalized(model, data) - lz)
                info.update(log_likelihood=ll, log_likelihood_std_error=ll_se)
        elif m == "ais":
            res = edbm.ais(model, base=base_data, n_chains=chains, betas=betas,
                           generator=gen(2))
            lz, info = res.log_z, res.as_dict()
        else:  # chains at beta = 1 from training rows, run on, then annealed back
            g = gen(3)
            k = min(chains, base_data.shape[0])
            idx = torch.randperm(base_data.shape[0], generator=g, device=g.device)[:k]
            start = base_data.index_select(0, idx.to(base_data.device))
            state = sdbm.run(model, sdbm.init(model, start, g), sweeps, g)
            res = edbm.reverse_ais(model, state, base=base_data, betas=betas, generator=g)
            lz, info = res.log_z, res.as_dict()
            out["reverse_sweeps"] = sweeps
        info.pop("direction", None)
        info.update(variational_bound=elbo_mean - lz, variational_bound_std_error=elbo_se,
                    importance_sampled=is_mean - lz, importance_sampled_std_error=is_se,
                    seconds=time.perf_counter() - t0)
        estimates[m] = info
    p = estimates[_primary(estimates)]
    out.update(log_z_method=_primary(estimates), log_z=p["log_z"],
               log_z_interval=p["log_z_interval"], variational_bound=p["variational_bound"],
               variational_bound_std_error=elbo_se, importance_sampled=p["importance_sampled"],
               importance_sampled_std_error=is_se, estimates=estimates)
    if "ais" in estimates and "reverse-ais" in estimates:
        for key in ("variational_bound", "importance_sampled"):
            out[f"{key}_bracket"] = [estimates["reverse-ais"][key], estimates["ais"][key]]
    if raise_rows:
        t0 = time.perf_counter()
        g = gen(4)
        k = min(raise_rows, n)
        idx = torch.randperm(n, generator=g, device=g.device)[:k].to(data.device)
        ll, res = edbm.raise_log_likelihood(model, data.index_select(0, idx), base=base_data,
                                            betas=betas, means=[m.index_select(0, idx)
                                                                for m in mu], generator=g)
        mean, se = _mean_se(ll)
        out["raise"] = {"rows": k, "log_likelihood": mean, "log_likelihood_std_error": se,
                        "n_betas": res.n_betas, "seconds": time.perf_counter() - t0}
    return out
