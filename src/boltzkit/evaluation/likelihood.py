"""Log-likelihood, pseudo-likelihood, reconstruction error and the free-energy gap.

Pseudo-likelihood (Besag 1975) is ``Σ_i log p(v_i | v_-i)``, one term per visible *variable*:
a unit for Bernoulli, spin and Gaussian visible layers, a one-hot group for softmax layers.
Given the rest of the row, each conditional involves only the free energy F as a function of
that one variable:

- Bernoulli / spin: ``log p(v_i | v_-i) = -softplus(F(v) - F(v with unit i flipped))``;
- softmax: ``-logsumexp_k(F(v) - F(v with group g set to its k-th unit))``;
- Gaussian: ``p(v_i | v_-i) = exp(-F(v)) / ∫ exp(-F(v with v_i = x)) dx``. Given h, v_i is
  N(a_i + W_i·h, 1) whatever the other units, so the conditional is a mixture of unit-variance
  Gaussians whose means lie between ``a_i + Σ_j min_h W_ij h_j`` and ``a_i + Σ_j max_h W_ij h_j``
  (hidden families with bounded support). The integral is computed by the trapezoidal rule on a
  grid covering that range ± 12 (the mass beyond is below e^-72) with spacing at most 0.5: for a
  sum of unit-variance Gaussians the trapezoidal error is relative ``2 exp(-2π²/h²)`` (< 1e-30
  at h = 0.5), so the result is exact to float precision. With Gaussian hidden units the
  conditional is itself Gaussian, ``N(μ_i, 1/P_i)`` with ``P_i = 1 - Σ_j W_ij²``, and is used in
  closed form (``P_i <= 0`` means the model is not normalisable: ValueError).

The *stochastic* version (what scikit-learn's ``BernoulliRBM.score_samples`` computes) takes one
random variable per row and multiplies its log-conditional by the number of variables: an
unbiased estimate of the exact sum at a fraction of the cost.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from .. import _validation
from ..training import Callback, reconstruction_error
from ..units import Bernoulli, Gaussian, LearnedGaussian, Softmax, Spin
from ..exact.rbm import free_energy, log_partition

__all__ = ["LogLikelihood", "log_likelihood", "exact_log_likelihood", "pseudo_likelihood",
           "reconstruction_error", "free_energy_gap", "FreeEnergyGap"]

_CHUNK = 2 ** 22  # elements of the largest temporary a chunked computation builds
_GRID_SPACING = 0.5
_GRID_MARGIN = 12.0


class LogLikelihood(NamedTuple):
    """Mean log-likelihood (nats per row) with its standard error over rows.

    mean : float
    std_error : float
        ``std(values) / sqrt(n)``: the sampling error of the data set's mean (the uncertainty of
        an estimated log Z is reported separately, as its interval).
    values : torch.Tensor, float64 ``(n,)``: ``-F(v) - log Z`` per row
    """

    mean: float
    std_error: float
    values: torch.Tensor


def _log_z_value(log_z) -> float:
    value = getattr(log_z, "log_z", log_z)
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"log_z: expected a number or an AISResult, got {type(log_z).__name__}") \
            from None
    if not math.isfinite(value):
        raise ValueError(f"log_z: expected a finite number, got {value}")
    return value


@torch.no_grad()
def log_likelihood(model, data: torch.Tensor, log_z) -> LogLikelihood:
    """Per-row ``log p(v) = -F(v) - log Z`` of ``data`` ``(n, n_visible)`` (on the visible
    units' support), float64, with its mean and standard error. ``log_z`` is a number (e.g.
    :func:`log_partition_exact`) or an :class:`AISResult`. For a reverse-AIS result this is the
    RAISE (conservative) estimate, for a forward one the usual (optimistic) AIS estimate."""
    _validation.rbm(model)
    lz = _log_z_value(log_z)
    data = model.check_visible(data, "data")
    values = (-free_energy(model, data) - lz).cpu()
    n = values.shape[0]
    se = values.std().item() / math.sqrt(n) if n > 1 else 0.0
    return LogLikelihood(values.mean().item(), se, values)


def exact_log_likelihood(model, data: torch.Tensor) -> LogLikelihood:
    """:func:`log_likelihood` with the exact log Z (enumeration; small layers only)."""
    _validation.rbm(model)
    return log_likelihood(model, data, log_partition(model))


# -- pseudo-likelihood ----------------------------------------------------------------------------
def _lp_terms(units, field: torch.Tensor) -> torch.Tensor:
    """Per-unit (per-group for softmax) log-partition terms, shape ``(..., n_terms)``, so that
    differences can be taken term by term before summing (no cancellation of large sums)."""
    k = (units.group_size or field.shape[-1]) if isinstance(units, Softmax) else 1
    return units.log_partition(field.reshape(*field.shape[:-1], field.shape[-1] // k, k))


def _lp_diff(units, field: torch.Tensor, base_terms: torch.Tensor) -> torch.Tensor:
    """``logpart_h(field) - logpart_h(c)`` summed over the hidden layer, ``base_terms`` being
    ``_lp_terms(units, c)`` broadcastable to the field's terms."""
    return (_lp_terms(units, field) - base_terms).sum(-1)


def _rows_per_chunk(per_row: int) -> int:
    return max(1, _CHUNK // max(per_row, 1))


def _pl_binary(model, v, w, a, b, idx):
    """Bernoulli or spin visible units. ``idx`` None: every unit (exact); else ``(n,)`` unit
    per row. Returns ``(n,)``."""
    flip = (1.0 - 2.0 * v) if isinstance(model.visible, Bernoulli) else (-2.0 * v)
    H = model.hidden
    out = []
    nv, nh = w.shape
    step = _rows_per_chunk(nv * nh if idx is None else nh)
    for s in range(0, v.shape[0], step):
        vs, fs = v[s:s + step], flip[s:s + step]
        c = torch.addmm(b, vs, w)
        base = _lp_terms(H, c)
        if idx is None:
            field = c.unsqueeze(1) + fs.unsqueeze(2) * w.unsqueeze(0)         # (r, V, H)
            d = fs * a + _lp_diff(H, field, base.unsqueeze(1))                  # (r, V)
            out.append(-F.softplus(d).sum(-1))
        else:
            i = idx[s:s + step]
            fi = fs.gather(1, i[:, None])                                       # (r, 1)
            field = c + fi * w[i]                                               # (r, H)
            d = fi.squeeze(1) * a[i] + _lp_diff(H, field, base)
            out.append(-F.softplus(d) * nv)
    return torch.cat(out)


def _pl_softmax(model, v, w, a, b, idx):
    """Softmax visible groups. ``idx`` None: every group; else ``(n,)`` group per row."""
    H = model.hidden
    nv, nh = w.shape
    k = model.visible.group_size or nv
    ng = nv // k
    wg, ag = w.reshape(ng, k, nh), a.reshape(ng, k)
    out = []
    step = _rows_per_chunk(nv * nh if idx is None else k * nh)
    for s in range(0, v.shape[0], step):
        vs = v[s:s + step].reshape(-1, ng, k)
        c = torch.addmm(b, v[s:s + step], w)
        base = _lp_terms(H, c)
        if idx is None:
            cur_w = torch.einsum("rgk,gkh->rgh", vs, wg)                        # (r, G, H)
            cur_a = (vs * ag).sum(-1)                                           # (r, G)
            field = c[:, None, None, :] - cur_w.unsqueeze(2) + wg.unsqueeze(0)  # (r, G, K, H)
            d = ag.unsqueeze(0) - cur_a.unsqueeze(-1) + _lp_diff(H, field, base[:, None, None])
            out.append(-torch.logsumexp(d, -1).sum(-1))
        else:
            g = idx[s:s + step]
            vg = vs[torch.arange(vs.shape[0], device=v.device), g]              # (r, K)
            wsel, asel = wg[g], ag[g]                                           # (r, K, H), (r, K)
            cur_w = torch.einsum("rk,rkh->rh", vg, wsel)
            cur_a = (vg * asel).sum(-1)
            field = (c - cur_w).unsqueeze(1) + wsel                             # (r, K, H)
            d = asel - cur_a.unsqueeze(-1) + _lp_diff(H, field, base.unsqueeze(1))
            out.append(-torch.logsumexp(d, -1) * ng)
    return torch.cat(out)


def _hidden_range(H, w):
    """Per visible unit, the smallest and largest ``Σ_j W_ij h_j`` over the hidden support,
    ``(V,)`` each (discrete hidden families)."""
    if isinstance(H, Bernoulli):
        return w.clamp(max=0).sum(1), w.clamp(min=0).sum(1)
    if isinstance(H, Spin):
        s = w.abs().sum(1)
        return -s, s
    k = H.group_size or w.shape[1]
    g = w.reshape(w.shape[0], -1, k)
    return g.amin(-1).sum(-1), g.amax(-1).sum(-1)


def _pl_gaussian(model, v, w, a, b, idx):
    """Gaussian visible units (see the module docstring). Returns ``(n,)``."""
    H = model.hidden
    nv, nh = w.shape
    if isinstance(H, Gaussian):
        prec = 1.0 - (w * w).sum(1)                                             # (V,)
        if (prec <= 0).any():
            raise ValueError("model: a Gaussian-Gaussian RBM needs Σ_j W_ij² < 1 for every "
                             "visible unit to be normalisable; this one is not")
        c = torch.addmm(b, v, w)
        mu = (a + c @ w.t() - v * (1.0 - prec)) / prec                          # (n, V)
        lp = 0.5 * torch.log(prec / (2 * math.pi)) - 0.5 * prec * (v - mu) ** 2
        if idx is None:
            return lp.sum(-1)
        return lp.gather(1, idx[:, None]).squeeze(1) * nv
    if not H.discrete:
        raise ValueError(f"pseudo_likelihood: Gaussian visible units with {H.name} hidden "
                         f"units are not supported")
    lo, hi = _hidden_range(H, w)
    lo, hi = a + lo - _GRID_MARGIN, a + hi + _GRID_MARGIN                       # (V,)
    n_grid = int(math.ceil(((hi - lo).max().item()) / _GRID_SPACING)) + 1
    t = torch.linspace(0.0, 1.0, n_grid, dtype=w.dtype, device=w.device)
    grid = lo[:, None] + (hi - lo)[:, None] * t                                 # (V, G)
    log_h = torch.log((hi - lo) / (n_grid - 1))                                 # (V,)
    out = []
    if idx is None:
        unit_block = max(1, min(nv, _CHUNK // (n_grid * nh)))
        for r in range(v.shape[0]):  # one row at a time: the temporary is (units, G, H)
            vr = v[r:r + 1]
            c = torch.addmm(b, vr, w)                                           # (1, H)
            base = _lp_terms(H, c)                                              # (1, T)
            total = torch.zeros((), dtype=w.dtype, device=w.device)
            for u0 in range(0, nv, unit_block):
                u = slice(u0, u0 + unit_block)
                wi, x, xi = w[u], grid[u], vr[0, u]                             # (B,H),(B,G),(B,)
                c_minus = c - xi[:, None] * wi                                  # (B, H)
                field = c_minus[:, None, :] + x[:, :, None] * wi[:, None, :]    # (B, G, H)
                rel = (-(x * x - (xi * xi)[:, None]) / 2 + a[u, None] * (x - xi[:, None])
                       + _lp_diff(H, field, base[:, None]))                     # g(x) - g(v_i)
                total = total - (torch.logsumexp(rel, -1) + log_h[u]).sum()
            out.append(total.reshape(1))
        return torch.cat(out)
    step = _rows_per_chunk(n_grid * nh)
    for s in range(0, v.shape[0], step):
        vs, i = v[s:s + step], idx[s:s + step]
        c = torch.addmm(b, vs, w)
        base = _lp_terms(H, c)
        wi, x = w[i], grid[i]                                                   # (r,H),(r,G)
        xi = vs.gather(1, i[:, None]).squeeze(1)
        field = (c - xi[:, None] * wi)[:, None, :] + x[:, :, None] * wi[:, None, :]
        rel = (-(x * x - (xi * xi)[:, None]) / 2 + a[i, None] * (x - xi[:, None])
               + _lp_diff(H, field, base[:, None]))
        out.append(-(torch.logsumexp(rel, -1) + log_h[i]) * nv)
    return torch.cat(out)


@torch.no_grad()
def pseudo_likelihood(model, v: torch.Tensor, generator: Optional[torch.Generator] = None, *,
                      stochastic: Optional[bool] = None, dtype=None) -> torch.Tensor:
    """Log pseudo-likelihood of each row of ``v`` ``(n, n_visible)``: ``(n,)`` in nats.

    Parameters
    ----------
    model : RBM (any visible family; Gaussian visible needs discrete or Gaussian hidden units)
    v : rows on the visible units' support
    generator : torch.Generator, optional
        Given (or ``stochastic=True``): the stochastic estimate, one random variable per row
        times the number of variables (scikit-learn's ``score_samples``); its expectation is
        the exact value. Not given: the exact sum over every variable.
    stochastic : bool, optional
        Overrides the choice made by ``generator`` (a generator seeded 0 is made if needed).
    dtype : working precision (default: the model's)

    Cost: exact ``O(n · n_visible · n_hidden)`` (times the quadrature grid, typically 50-200
    points, for Gaussian visible units), stochastic ``O(n · n_hidden)``, in bounded memory.
    """
    _validation.rbm(model)
    generator = _validation.generator(generator)
    if stochastic is None:
        stochastic = generator is not None
    stochastic = _validation.boolean(stochastic, "stochastic")
    dtype = _validation.float_dtype(dtype or model.weight.dtype)
    v = model.check_visible(v, "v")
    w = model.weight.detach().to(dtype)
    a = model.visible_bias.detach().to(dtype)
    b = model.hidden_bias.detach().to(dtype)
    v = v.to(dtype)
    V = model.visible
    if isinstance(V, Softmax):
        n_vars = model.n_visible // (V.group_size or model.n_visible)
    else:
        n_vars = model.n_visible
    idx = None
    if stochastic:
        if generator is None:
            generator = torch.Generator(device=w.device)
            generator.manual_seed(0)
        idx = torch.randint(0, n_vars, (v.shape[0],), generator=generator,
                            device=generator.device).to(w.device)
    if isinstance(V, (Bernoulli, Spin)):
        return _pl_binary(model, v, w, a, b, idx)
    if isinstance(V, Softmax):
        return _pl_softmax(model, v, w, a, b, idx)
    if isinstance(V, Gaussian):
        return _pl_gaussian(model, v, w, a, b, idx)
    if isinstance(V, LearnedGaussian):
        # u = v / σ is the visible layer of a unit-variance RBM with weights W / σ and biases
        # a / σ (the same energy), so p(v_i | v_-i) = p(u_i | u_-i) / σ_i
        z = model.visible_log_variance.detach().to(dtype)
        sd = torch.exp(0.5 * z)
        pl = _pl_gaussian(model, v / sd, w / sd[:, None], a / sd, b, idx)
        return pl - (0.5 * z.sum() if idx is None else 0.5 * z[idx] * n_vars)
    raise ValueError(f"pseudo_likelihood: unsupported visible units {V!r}")


# -- monitoring figures ---------------------------------------------------------------------------
@torch.no_grad()
def free_energy_gap(model, train: torch.Tensor, held_out: torch.Tensor) -> dict:
    """Mean free energy of held-out rows minus that of training rows (Hinton's practical guide,
    section 6): a gap that grows during training signals over-fitting; log Z cancels, so it
    costs two free-energy passes. Use subsets of similar size. Returns ``{"free_energy_train",
    "free_energy_held_out", "free_energy_gap"}`` (floats, nats)."""
    _validation.rbm(model)
    tr = free_energy(model, model.check_visible(train, "train", relaxed=True)).mean().item()
    ho = free_energy(model, model.check_visible(held_out, "held_out", relaxed=True)).mean().item()
    return {"free_energy_train": tr, "free_energy_held_out": ho, "free_energy_gap": ho - tr}


class FreeEnergyGap(Callback):
    """Training callback: after every ``every``-th epoch, add :func:`free_energy_gap` of the
    first ``max_rows`` rows of ``train`` and of ``held_out`` to the epoch's history entry
    (keys ``free_energy_train``, ``free_energy_held_out``, ``free_energy_gap``)."""

    def __init__(self, train: torch.Tensor, held_out: torch.Tensor, every: int = 1,
                 max_rows: Optional[int] = 1000):
        every = _validation.integer(every, "every", minimum=1)
        self.train = train[:max_rows] if max_rows else train
        self.held_out = held_out[:max_rows] if max_rows else held_out
        self.every = every

    def on_fit_start(self, state):
        model = state.model
        self.train = model.check_visible(self.train, "train", relaxed=True)
        self.held_out = model.check_visible(self.held_out, "held_out", relaxed=True)

    def on_epoch_end(self, state):
        if state.epoch % self.every == 0 and state.history:
            state.history[-1].update(free_energy_gap(state.model, self.train, self.held_out))
