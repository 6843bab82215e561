"""Likelihoods of deep Boltzmann machines: forward and reverse AIS for log Z, importance-sampled
and reverse-annealed (RAISE) estimates of each row's log-likelihood, and the mean-field lower
bound (Salakhutdinov & Hinton 2009, sections 3.3 and 4; Burda, Grosse & Salakhutdinov 2015).

The path of distributions
-------------------------
The chains live on the odd layers ``o = (x_1, x_3, ...)``; the even layers (the visible one
included) are summed out in closed form, which they can be because every weight joins an even
and an odd layer. From a base model A (no weights, biases ``a_l``: given data, the base rates
of every layer, :func:`base_biases`) to the DBM B through inverse temperatures
``0 = β_0 < ... < β_K = 1``, with energies ``E_β = (1 - β) E_A + β E_B``, the unnormalised
marginal of the odd layers is

    log f_β(o) = sum_{odd l} x_l·((1 - β) a_l + β b_l) + sum_{even l} sum_j softplus(t_lj(β)),
    t_l(β) = a_l + β d_l,    d_l = b_l - a_l + x_{l-1} W_{l-1} + x_{l+1} W_lᵀ

(a missing neighbour of layer 0 or L omitted), and ``log Z_A = sum_l sum_j softplus(a_lj)``
(``n log 2`` for a layer of n units with zero base biases). :func:`log_f` computes it.

The transition at β is one odd/even Gibbs sweep of the tempered DBM (every even layer given the
odd ones, then every odd layer given the new even ones, fields ``a_l + β (field_l - a_l)``).
Its kernel on the odd layers, ``K(o' | o) = sum_e p_β(e | o) p_β(o' | e)``, satisfies
``f_β(o) K(o' | o) = sum_e p_β(o, e) p_β(o' | e)``, which is symmetric in ``o, o'`` (both equal
``sum_e p_β(e) p_β(o | e) p_β(o' | e)``): the sweep leaves f_β invariant and is reversible, so
it is its own reversal and serves both directions.

The log-ratio of consecutive distributions is formed from the even layers' conditional means
``m_l = sigmoid(t_l(β))``, which the sweep needs anyway, without cancellation::

    log f_β'(o) - log f_β(o) = (β' - β) sum_{odd l} x_l·(b_l - a_l)
                               + sum_{even l} sum_j log1p(m_lj expm1((β' - β) d_lj))

(float64 differences of softplus sums where ``|Δβ d|`` can exceed 0.5); log-weights accumulate
in float64. Per temperature the work is two matrix products per weight matrix (the even fields
from the odd layers, the odd fields from the even ones).

Forward AIS (Neal 2001; the scheme Salakhutdinov & Hinton use)
--------------------------------------------------------------
o_0 from the base; for k = 1..K, ``log w += log f_k(o) - log f_{k-1}(o)`` and (k < K) a sweep at
β_k. ``E[w] = Z_B / Z_A``, so ``Ẑ = Z_A mean(w)`` is unbiased and, by Jensen, ``E[log Ẑ] <=
log Z``: forward AIS is a stochastic *lower* bound on log Z. When the chains miss a part of
the DBM that carries much of its mass, the weights that would find it are never drawn: the
estimate falls short by up to the log of the missed mass, and the spread of the weights (ESS)
need not show it. The base decides where the chains start: with fair coins in the hidden
layers, a DBM whose upper layer inhibits the one below when half on (as MNIST DBMs learn to)
has its middle layer switched off early in the annealing, a phase the chains then keep to
β = 1 although the DBM's mass is elsewhere; the base rates in every layer start the path in
the DBM's own phase (see :func:`base_biases`).

Reverse AIS (:func:`reverse_ais`)
---------------------------------
From odd-layer states o_K at β = 1, for k = K..1: a sweep at β_k, then ``log ŵ += log
f_{k-1}(o) - log f_k(o)``. For o_K an exact sample of the DBM the reversed chain is the
forward one run backwards, and ``E[ŵ] = Z_A / Z_B`` (Grosse et al.'s reverse AIS, Burda et al.
2015): ``log Z_A - log ŵ`` is then a stochastic *upper* bound on log Z (Jensen again); the mean
of the per-chain values is what :func:`reverse_ais` reports. The guarantee needs samples of
the DBM: states from Gibbs chains that have run long at β = 1 (the persistent chains of
training after many more sweeps) are the practical choice, and chains that have not left the
modes forward AIS finds can agree with forward AIS while both miss the same mass. The bracket
therefore shows a failure of annealing, not of mixing at β = 1.

Per-row log-likelihoods (:func:`log_unnormalized`, :func:`raise_log_likelihood`)
-----------------------------------------------------------------------------
With ``v`` clamped, ``f_B(v, o) = sum_{even hidden} exp(-E(v, o, h_even))`` is closed form. For a
proposal q(o | v), here the odd layers of the mean-field posterior (a product of Bernoullis,
means kept inside [1e-7, 1 - 1e-7]), ``mean_s f_B(v, o_s) / q(o_s | v)`` over draws ``o_s ~ q``
is an unbiased estimate of ``sum_h exp(-E(v, h))``: its log is a stochastic lower bound on
``log sum_h exp(-E(v, h))`` that tightens as the draws grow and is at least the mean-field bound
in expectation already with one draw (the even layers are summed exactly, not bounded).

RAISE for the DBM: the forward chain with a last sweep at β = 1 defines an *annealing model*
``p_ann(v) = sum_o p_ann(o) p_B(v | o)``, ``p_ann(o)`` the law of the chain's final odd state.
Running the chain backwards from ``o ~ q(o | v)`` gives ``p̂ = f_B(v, o) ŵ / (Z_A q(o | v))``,
whose expectation is ``p_ann(v)`` for *every* v (the reverse-chain identity ``E[f_B(o) ŵ / Z_A]
= p_ann(o)`` for any starting o, times ``p_B(v | o) / q(o | v)`` under o ~ q). So ``E[log p̂]
<= log p_ann(v)``: a conservative estimate of each row's log-likelihood under the annealing
model, which needs neither an estimate of log Z nor samples of the DBM, and tends to the
DBM's log-likelihood as the temperatures grow (Burda et al. argue, and measure, that
``p_ann`` is the worse model of data for short schedules).

Variational bound
-----------------
For any factorised q(h) with means ``mu`` (what :func:`boltzkit.samplers.dbm.mean_field`
gives), ``log p(v) >= -E(v, mu) + H(q) - log Z``: the energy is linear in each layer, so
``E_q[E(v, h)] = E(v, mu)``, and ``H(q)`` is the sum of the units' binary entropies. With an
estimated log Z the bound is an estimate: a bound only with the exact log Z or an upper bound
on it (the reverse estimate, in expectation).
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import _validation
from ..samplers import dbm as dbm_sampler
from .ais import AISResult, _check_chains, _resolve_betas, _summary

__all__ = ["ais", "reverse_ais", "raise_log_likelihood", "log_unnormalized", "log_f",
           "elbo", "variational_bound", "base_visible_bias", "base_biases",
           "base_log_partition", "proposal_means"]

# forms that keep full relative precision need |Δβ d| below this (expm1 stays small)
_FAST_LIMIT = 0.5
# mean-field proposals keep their means this far from 0 and 1 (full support)
_PROPOSAL_EPS = 1e-7


def _dbm(model):
    from ..models.dbm import DBM

    if not isinstance(model, DBM):
        raise ValueError(f"model: expected a DBM, got {type(model).__name__}")
    return model


# -- base model -----------------------------------------------------------------------------------
def base_visible_bias(model, data: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Visible biases ``(n_visible,)`` (float64) of the base model: the data's log-odds
    (rates clipped to [1e-3, 1 - 1e-3]) or zeros when ``data`` is None."""
    _dbm(model)
    if data is None:
        return torch.zeros(model.n_visible, dtype=torch.float64, device=model.bias_0.device)
    data = model.check_visible(data, "base", relaxed=True)
    return model.units.init_bias(data.double().mean(0))


# the hidden layers' base rates come from mean field on at most this many rows (evenly spaced)
_BASE_ROWS = 5000
_BASE_MF_STEPS = 10


def base_biases(model, base=None) -> List[torch.Tensor]:
    """The base model's biases, one float64 tensor ``(n_l,)`` per layer.

    ``base`` None: all zeros (the uniform base). A data tensor ``(n, n_visible)`` (values in
    [0, 1]; recommended: the training data): base rates in every layer, the log-odds of the
    data's per-pixel rates on the visible layer (:func:`base_visible_bias`) and of the mean
    activation of each hidden unit under mean field (10 sweeps, on at most 5,000 rows evenly
    spaced) on the hidden ones, both clipped to [1e-3, 1 - 1e-3]. A list of ``L + 1``
    tensors: those biases (e.g. ``[base_visible_bias(model, data), zeros, ...]`` for a base
    with fair coins in the hidden layers).

    Why every layer: a base whose hidden units are fair coins can lead the forward chains into
    a phase the DBM's mass is not in and keep them there (a 784-500-1000 DBM trained on MNIST:
    with half its 1000 top units on, the middle layer is switched off and stays off to β = 1,
    and forward AIS fell 64 nats short of the bracket this base gives, with a reverse estimate
    200 nats above, its chains started in the DBM's own phase and kept there); a base with the
    DBM's own rates starts the path in that phase."""
    _dbm(model)
    dev = model.bias_0.device
    if base is None:
        return [torch.zeros(n, dtype=torch.float64, device=dev) for n in model.sizes]
    if isinstance(base, torch.Tensor):
        out = [base_visible_bias(model, base)]
        x = model.check_visible(base, "base", relaxed=True)
        if x.shape[0] > _BASE_ROWS:
            x = x[torch.linspace(0, x.shape[0] - 1, _BASE_ROWS, device=x.device).long()]
        with torch.no_grad():
            mu = dbm_sampler.mean_field(model, x, _BASE_MF_STEPS, check=False)
        return out + [model.units.init_bias(m.double().mean(0)) for m in mu[1:]]
    if not isinstance(base, (list, tuple)) or len(base) != model.n_layers:
        raise ValueError(f"base: expected None, a data tensor (n, {model.n_visible}) or a list "
                         f"of {model.n_layers} bias tensors, got {type(base).__name__}"
                         + (f" of length {len(base)}" if isinstance(base, (list, tuple)) else ""))
    out = []
    for l, (a, n) in enumerate(zip(base, model.sizes)):
        a = torch.as_tensor(a, dtype=torch.float64, device=dev)
        if a.shape != (n,) or not torch.isfinite(a).all():
            raise ValueError(f"base[{l}]: expected {n} finite biases, got shape "
                             f"{tuple(a.shape)}" + ("" if torch.isfinite(a).all() else
                                                    " with NaN/inf"))
        out.append(a)
    return out


def base_log_partition(biases: Sequence[torch.Tensor]) -> float:
    """``log Z_A = sum_l sum_j softplus(a_lj)`` of the base model with ``biases``."""
    return sum(F.softplus(a.double()).sum().item() for a in biases)


# -- the path -------------------------------------------------------------------------------------
class _Path:
    """The path's parameters in the chains' dtype, and the pieces every step is made of.

    Layer lists are indexed by layer; the chains' state is the list ``xs`` of odd-layer states
    (even entries None or stale), the even layers' offsets ``d_l`` a dict keyed by layer."""

    def __init__(self, model, base, dtype, generator):
        self.model = model
        self.dtype = _validation.float_dtype(dtype)
        self.n_layers = model.n_layers
        self.even = list(range(0, self.n_layers, 2))
        self.odd = list(range(1, self.n_layers, 2))
        with torch.no_grad():
            self.a64 = base_biases(model, base)
            self.log_z_base = base_log_partition(self.a64)
            self.w = [w.detach().to(self.dtype) for w in model.weights]
            self.wt = [w.t().contiguous() for w in self.w]
            self.b = [b.detach().to(self.dtype) for b in model.biases]
            self.a = [a.to(self.dtype) for a in self.a64]
            self.db = [b - a for b, a in zip(self.b, self.a)]
            # |d_l| <= |b_l - a_l| + the absolute weights into layer l, over every state
            bound = 0.0
            for l in range(self.n_layers):
                s = self.db[l].abs()
                if l > 0:
                    s = s + self.w[l - 1].abs().sum(0)
                if l + 1 < self.n_layers:
                    s = s + self.w[l].abs().sum(1)
                bound = max(bound, s.max().item())
            self.bound = bound
        if generator is None:
            generator = torch.Generator(device=model.bias_0.device).manual_seed(0)
        self.g = generator

    def offsets(self, xs, layers) -> dict:
        """``d_l = b_l - a_l + (the weighted states of l's neighbours)`` for ``l`` in
        ``layers``, ``(n, n_l)``."""
        out = {}
        for l in layers:
            t = None
            if l > 0:
                t = torch.addmm(self.db[l], xs[l - 1], self.w[l - 1])
            if l + 1 < self.n_layers:
                t = (torch.addmm(self.db[l], xs[l + 1], self.wt[l]) if t is None
                     else t.addmm_(xs[l + 1], self.wt[l]))
            out[l] = t
        return out

    def means(self, d: dict, beta: float) -> dict:
        """``sigmoid(a_l + β d_l)`` per layer of ``d``."""
        return {l: torch.add(self.a[l], dl, alpha=beta).sigmoid_() for l, dl in d.items()}

    def sample(self, mean):
        return self.model.units.sample_from_mean(mean, self.g)

    def move(self, xs, even_means: dict, beta: float) -> None:
        """The sweep at ``beta`` given the even layers' means at ``beta``: the even layers
        drawn, then the odd ones given them, in place in ``xs``."""
        for l, m in even_means.items():
            xs[l] = self.sample(m)
        for l, m in self.means(self.offsets(xs, self.odd), beta).items():
            xs[l] = self.sample(m)

    def fast(self, beta_from: float, beta_to: float) -> bool:
        return abs(beta_to - beta_from) * self.bound < _FAST_LIMIT

    def increment(self, xs, d: dict, even_means: dict, beta_from: float, beta_to: float
                  ) -> torch.Tensor:
        """``log f_{β_to}(o) - log f_{β_from}(o)``, ``(n,)`` float64, given the even offsets
        ``d`` of ``o`` and their means at ``β_from``."""
        delta = beta_to - beta_from
        n = xs[self.odd[0]].shape[0]
        out = torch.zeros(n, dtype=torch.float64, device=self.w[0].device)
        if delta == 0:
            return out
        for l in self.odd:
            out += torch.mv(xs[l], self.db[l]).double().mul_(delta)
        fast = self.fast(beta_from, beta_to)
        for l, dl in d.items():
            if fast:
                out += torch.mul(dl, delta).expm1_().mul_(even_means[l]).log1p_().sum(-1).double()
            else:
                d64, a64 = dl.double(), self.a64[l]
                out += (F.softplus(torch.add(a64, d64, alpha=beta_to))
                        - F.softplus(torch.add(a64, d64, alpha=beta_from))).sum(-1)
        return out

    def log_f(self, xs, beta: float) -> torch.Tensor:
        """``log f_β`` of the odd states ``xs``, ``(n,)`` float64."""
        n = xs[self.odd[0]].shape[0]
        out = torch.zeros(n, dtype=torch.float64, device=self.w[0].device)
        for l in self.odd:
            out += xs[l].double() @ torch.lerp(self.a64[l], self.b[l].double(), beta)
        for l, dl in self.offsets(xs, self.even).items():
            out += F.softplus(torch.add(self.a64[l], dl.double(), alpha=beta)).sum(-1)
        return out

    def base_draw(self, n: int) -> list:
        """Odd-layer states of ``n`` chains drawn from the base model."""
        xs = [None] * self.n_layers
        for l in self.odd:
            xs[l] = self.sample(torch.sigmoid(self.a[l]).expand(n, -1).contiguous())
        return xs

    def anneal_up(self, xs, betas: list) -> torch.Tensor:
        """Forward AIS from ``xs`` (base draws): per-chain log w ``(n,)`` float64."""
        log_w = torch.zeros(xs[self.odd[0]].shape[0], dtype=torch.float64,
                            device=self.w[0].device)
        d = self.offsets(xs, self.even)
        last = len(betas) - 1
        for k in range(1, last + 1):
            beta, prev = betas[k], betas[k - 1]
            m = self.means(d, beta)
            # log f_k - log f_{k-1} = -(log f_{k-1} - log f_k), with the means at β_k at hand
            log_w.sub_(self.increment(xs, d, m, beta, prev))
            if k < last:
                self.move(xs, m, beta)
                d = self.offsets(xs, self.even)
        return log_w

    def anneal_down(self, xs, betas: list) -> torch.Tensor:
        """Reverse AIS from ``xs`` (states at β = 1): per-chain log ŵ ``(n,)`` float64."""
        log_w = torch.zeros(xs[self.odd[0]].shape[0], dtype=torch.float64,
                            device=self.w[0].device)
        m = self.means(self.offsets(xs, self.even), betas[-1])
        for k in range(len(betas) - 1, 0, -1):
            beta, prev = betas[k], betas[k - 1]
            self.move(xs, m, beta)              # the sweep at β_k (its own reversal)
            d = self.offsets(xs, self.even)
            m = self.means(d, prev)             # at β_{k-1}: the increment and the next sweep
            log_w.sub_(self.increment(xs, d, m, prev, beta))
        return log_w


def _memory(model, n_chains: int, dtype, what: str) -> None:
    itemsize = 8 if dtype == torch.float64 else 4
    _validation.memory(float(n_chains) * sum(model.sizes) * (itemsize * 6 + 16), what,
                       model.bias_0.device)


def log_f(model, layers, beta: float = 1.0, *, base=None) -> torch.Tensor:
    """``log f_β`` of the odd layers of ``layers`` (a list of ``L + 1`` tensors ``(n, n_l)``,
    0/1; the even entries are ignored) on the path from the base model of ``base`` (see
    :func:`base_biases`) to the DBM: ``(n,)`` float64. At ``beta = 1`` it is the log of the
    DBM's unnormalised marginal of the odd layers, at 0 the base model's (float64 throughout:
    a reference for tests and checks, not the chains' fast path)."""
    _dbm(model)
    beta = _validation.real(beta, "beta", 0.0, 1.0)
    layers = model.check_layers(layers, "layers")
    with torch.no_grad():
        path = _Path(model, base, torch.float64, None)
        return path.log_f([x.double() for x in layers], beta)


# -- log Z ----------------------------------------------------------------------------------------
def _forward_result(lw, log_z_base, n_betas) -> AISResult:
    lw, n, ess = _summary(lw)
    m = torch.logsumexp(lw, 0).item() - math.log(n)
    w = torch.exp(lw - lw.max())
    mean_w, sd_w = w.mean().item(), w.std().item()
    scale = lw.max().item() + log_z_base
    half = 3.0 * sd_w / math.sqrt(n)
    low = scale + math.log(mean_w - half) if mean_w - half > 0 else -math.inf
    high = scale + math.log(mean_w + half)
    return AISResult(log_z_base + m, low, high, ess, lw, log_z_base, n_betas, "forward")


@torch.no_grad()
def ais(model, *, base=None, n_chains: int = 100,
        betas: Union[None, int, Sequence[float], torch.Tensor] = None,
        generator: Optional[torch.Generator] = None, dtype=None) -> AISResult:
    """Forward AIS estimate of a DBM's log Z: a stochastic lower bound (see the module
    docstring for the path).

    Parameters
    ----------
    model : DBM
    base : None, a tensor ``(n, n_visible)`` or a list of ``L + 1`` bias tensors
        The base model (:func:`base_biases`): None the uniform one; data (recommended: the
        training data) its per-pixel rates on the visible layer.
    n_chains : int
        Independent annealing runs (>= 2).
    betas : None, int or sequence
        As in :func:`boltzkit.evaluation.ais` (None: 14,500 steps of Salakhutdinov & Murray's
        shape).
    generator : torch.Generator on the model's device (default: seeded 0)
    dtype : torch.float32 (default) or torch.float64
        Precision of the chains; the log-weights are accumulated in float64.

    Returns
    -------
    AISResult (``log_weights`` ``(n_chains,)``, ``log_z``, its ±3 standard-error interval)
    """
    _dbm(model)
    n_chains = _check_chains(n_chains)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    _memory(model, n_chains, dtype, f"n_chains: {n_chains} chains of a DBM {list(model.sizes)}")
    bs = _resolve_betas(betas)
    path = _Path(model, base, dtype, generator)
    log_w = path.anneal_up(path.base_draw(n_chains), bs)
    return _forward_result(log_w, path.log_z_base, len(bs))


def _odd_states(model, chains, name: str) -> list:
    """The odd layers of ``chains`` (a DBMGibbsState or a list of ``L + 1`` layer tensors) as
    a layer list (even entries None)."""
    if isinstance(chains, dbm_sampler.DBMGibbsState):
        st = chains.states
        if st.dim() != 2 or st.shape[1] != sum(model.sizes):
            raise ValueError(f"{name}: expected states of shape (n, {sum(model.sizes)}), got "
                             f"{tuple(st.shape)}")
        layers = dbm_sampler.layers(model, chains)
    elif isinstance(chains, (list, tuple)):
        layers = list(chains)
    else:
        raise ValueError(f"{name}: expected a DBMGibbsState or a list of {model.n_layers} layer "
                         f"tensors (states of the DBM at beta = 1), got {type(chains).__name__}")
    layers = model.check_layers(layers, name)
    return [x if l % 2 else None for l, x in enumerate(layers)]


@torch.no_grad()
def reverse_ais(model, chains, *, base=None, n_chains: Optional[int] = None,
                betas: Union[None, int, Sequence[float], torch.Tensor] = None,
                generator: Optional[torch.Generator] = None, dtype=None) -> AISResult:
    """Reverse AIS estimate of a DBM's log Z from states at β = 1: a stochastic upper bound
    when the states are samples of the DBM (see the module docstring).

    Parameters
    ----------
    model : DBM
    chains : DBMGibbsState or list of ``L + 1`` tensors ``(n, n_l)`` (0/1)
        The starting states; only their odd layers are read. Use samples of the DBM: Gibbs
        chains (:func:`boltzkit.samplers.dbm.run`) after many sweeps at β = 1, e.g. the
        persistent chains of training run on.
    base, betas, generator, dtype
        As in :func:`ais` (use the same base and schedule for both sides of the bracket).
    n_chains : int or None
        Chains, started at a random subset of this many states (drawn with ``generator``);
        None or a number >= the states given: every state once.

    Returns
    -------
    AISResult with ``direction="reverse"``: ``log_z = log Z_A - mean(log ŵ)``, interval ±3
    standard errors of that mean, ``log_weights`` the per-chain log ŵ.
    """
    _dbm(model)
    xs = _odd_states(model, chains, "chains")
    n_rows = xs[1].shape[0]
    if n_chains is not None:
        n_chains = _check_chains(n_chains)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    n = n_rows if n_chains is None else min(n_chains, n_rows)
    if n < 2:
        raise ValueError(f"chains: expected at least 2 states for reverse AIS, got {n_rows}")
    _memory(model, n, dtype, f"chains: {n} chains of a DBM {list(model.sizes)}")
    bs = _resolve_betas(betas)
    path = _Path(model, base, dtype, generator)
    if n < n_rows:
        idx = torch.randperm(n_rows, generator=path.g, device=path.g.device)[:n]
        xs = [None if x is None else x.index_select(0, idx.to(x.device)) for x in xs]
    xs = [None if x is None else x.to(dtype) for x in xs]
    lw = path.anneal_down(xs, bs)
    lw, n, ess = _summary(lw)
    est = path.log_z_base - lw.mean().item()
    half = 3.0 * lw.std().item() / math.sqrt(n)
    return AISResult(est, est - half, est + half, ess, lw, path.log_z_base, len(bs), "reverse")


# -- per-row estimates ----------------------------------------------------------------------------
def proposal_means(model, v: torch.Tensor, n_steps: int = 30, damping: float = 0.0
                   ) -> List[torch.Tensor]:
    """The proposal q(o | v) of the per-row estimates: mean-field means (``n_steps``,
    ``damping``) of every layer ``[v, mu_1, ..., mu_L]`` in float64, the hidden ones kept
    inside [1e-7, 1 - 1e-7]; only the odd layers are used."""
    mu = dbm_sampler.mean_field(model, v, n_steps, damping)
    out = [mu[0].double()]
    return out + [m.detach().double().clamp_(_PROPOSAL_EPS, 1 - _PROPOSAL_EPS) for m in mu[1:]]


def _proposal(model, v, n_steps, damping, means) -> List[torch.Tensor]:
    if means is None:
        return proposal_means(model, v, n_steps, damping)
    means = model.check_layers(means, "means", relaxed=True)
    if means[0].shape[0] != v.shape[0]:
        raise ValueError(f"means: expected {v.shape[0]} rows like v, got {means[0].shape[0]}")
    return [v.double()] + [m.detach().double().clamp(_PROPOSAL_EPS, 1 - _PROPOSAL_EPS)
                           for m in means[1:]]


def _visible_terms(path, v) -> tuple:
    """What ``v`` ``(n, n_visible)`` contributes to :func:`_clamped_log_f`: ``v·b_0``
    ``(n,)`` float64 and the field ``b_1 + v W_0`` of layer 1 ``(n, n_1)``."""
    return v.double() @ path.b[0].double(), torch.addmm(path.b[1], v, path.w[0])


def _clamped_log_f(path, vterms, xs) -> torch.Tensor:
    """``log f_B(v, o) = log sum_{even hidden} exp(-E(v, o, h_even))``, ``(n,)`` float64, for
    odd states ``xs`` and ``vterms`` (:func:`_visible_terms` of the same rows)."""
    vb, c1 = vterms
    out = vb + (xs[1] * c1).sum(-1).double()
    for l in path.odd[1:]:
        out += torch.mv(xs[l], path.b[l]).double()
    # the pairs of odd layers with even hidden ones lie inside the even layers' fields;
    # offsets are b_l - a_l + ...: a_l added back gives the DBM's own field
    for l, dl in path.offsets(xs, path.even[1:]).items():
        out += F.softplus(dl + path.a[l]).sum(-1).double()
    return out


def _proposal_terms(mu, odd) -> dict:
    """Per row and odd layer, the log-odds of the proposal's means ``(n, n_l)`` and the sum of
    their ``log(1 - mu)`` ``(n,)``: ``log q(x) = x·logit + sum log(1 - mu)``."""
    return {l: (torch.log(mu[l]) - torch.log1p(-mu[l]), torch.log1p(-mu[l]).sum(-1))
            for l in odd}


def _log_q(terms: dict, rows, xs) -> torch.Tensor:
    """``log q(o | v)`` ``(n,)`` float64 of the odd states ``xs`` drawn for ``rows``."""
    out = 0.0
    for l, (logit, const) in terms.items():
        out = out + (xs[l].double() * logit[rows]).sum(-1) + const[rows]
    return out


def _logmeanexp(t: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


def _per_row_inputs(model, v, n_samples, n_steps, damping, dtype, generator, what,
                    chunk_size=None):
    _dbm(model)
    v = model.check_visible(v, "v")
    n_samples = _validation.integer(n_samples, "n_samples", 1)
    n_steps = _validation.integer(n_steps, "n_steps", 0)
    damping = _validation.real(damping, "damping", 0.0, 1.0, strict_maximum=True)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    if v.shape[0] < 1:
        raise ValueError("v: expected at least one row, got 0")
    n = v.shape[0] * n_samples  # chains (RAISE), or rows times samples (in chunks)
    _memory(model, n if chunk_size is None else min(n, chunk_size), dtype, what)
    return v, n_samples, n_steps, damping, dtype


def _draw(path, mu, rows) -> list:
    xs = [None] * path.n_layers
    for l in path.odd:
        xs[l] = path.sample(mu[l][rows].to(path.dtype))
    return xs


@torch.no_grad()
def log_unnormalized(model, v: torch.Tensor, *, n_samples: int = 100, n_steps: int = 30,
                     damping: float = 0.0, means: Optional[list] = None,
                     chunk_size: int = 10000, generator: Optional[torch.Generator] = None,
                     dtype=None) -> torch.Tensor:
    """Importance-sampled ``log sum_h exp(-E(v, h))`` per row of ``v`` ``(n, n_visible)``
    (0/1): ``(n,)`` float64, a stochastic lower bound that tightens with ``n_samples``.

    The odd layers are drawn from the mean-field proposal (:func:`proposal_means`, with
    ``n_steps`` and ``damping``; or from ``means``, mean-field means ``[v, mu_1, ...]`` already
    at hand), the even hidden layers summed out exactly; ``chunk_size``
    rows times samples are evaluated at a time. Subtract an upper estimate of log Z
    (:func:`reverse_ais`) for a conservative log-likelihood."""
    chunk_size = _validation.integer(chunk_size, "chunk_size", 1)
    v, n_samples, n_steps, damping, dtype = _per_row_inputs(
        model, v, n_samples, n_steps, damping, dtype, generator,
        f"chunk_size: {chunk_size} importance samples at a time", chunk_size)
    path = _Path(model, None, dtype, generator)
    mu = _proposal(model, v, n_steps, damping, means)
    terms = _proposal_terms(mu, path.odd)
    vb, c1 = _visible_terms(path, v.to(dtype))
    n = v.shape[0]
    rows_per = max(1, chunk_size // n_samples)
    out = []
    for start in range(0, n, rows_per):
        rows = torch.arange(start, min(n, start + rows_per), device=v.device)
        rows = rows.repeat_interleave(n_samples)
        xs = _draw(path, mu, rows)
        lw = _clamped_log_f(path, (vb[rows], c1[rows]), xs) - _log_q(terms, rows, xs)
        out.append(_logmeanexp(lw.reshape(-1, n_samples), 1))
    return torch.cat(out)


@torch.no_grad()
def raise_log_likelihood(model, v: torch.Tensor, *, base=None, n_samples: int = 1,
                         betas: Union[None, int, Sequence[float], torch.Tensor] = None,
                         n_steps: int = 30, damping: float = 0.0,
                         means: Optional[list] = None,
                         generator: Optional[torch.Generator] = None, dtype=None):
    """RAISE: a conservative estimate of each row's log-likelihood (see the module docstring).

    Parameters
    ----------
    model : DBM
    v : ``(n, n_visible)``, 0/1
        The rows (one reverse chain per row and sample: the cost of AIS on ``n * n_samples``
        chains).
    base, betas, generator, dtype
        As in :func:`ais`.
    n_samples : int
        Reverse chains per row, combined as ``log mean p̂``.
    n_steps, damping, means
        Of the mean-field proposal, as in :func:`log_unnormalized`.

    Returns
    -------
    (log_likelihood, result): ``(n,)`` float64 per-row estimates of ``log p_ann(v)``, and an
    AISResult (``direction="reverse"``) whose ``log_z`` is ``log Z_A - mean(log ŵ)`` over the
    chains (started from the proposal, not from samples of the DBM: a diagnostic, not a bound)
    and whose ``log_weights`` are the chains' ``log ŵ``.
    """
    v, n_samples, n_steps, damping, dtype = _per_row_inputs(
        model, v, n_samples, n_steps, damping, dtype, generator,
        "n_samples: the reverse chains (rows of v times n_samples)")
    bs = _resolve_betas(betas)
    path = _Path(model, base, dtype, generator)
    mu = _proposal(model, v, n_steps, damping, means)
    rows = torch.arange(v.shape[0], device=v.device).repeat_interleave(n_samples)
    xs = _draw(path, mu, rows)
    log_q = _log_q(_proposal_terms(mu, path.odd), rows, xs)
    vb, c1 = _visible_terms(path, v.to(dtype))
    log_fv = _clamped_log_f(path, (vb[rows], c1[rows]), xs)
    lw = path.anneal_down(list(xs), bs)
    per = (log_fv - log_q + lw - path.log_z_base).reshape(-1, n_samples)
    lw_cpu, n, ess = _summary(lw)
    est = path.log_z_base - lw_cpu.mean().item()
    half = 3.0 * lw_cpu.std().item() / math.sqrt(n) if n > 1 else math.inf
    res = AISResult(est, est - half, est + half, ess, lw_cpu, path.log_z_base, len(bs),
                    "reverse")
    return _logmeanexp(per, 1), res


# -- the mean-field bound -------------------------------------------------------------------------
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
    ``elbo(v) - log_z``, ``(n,)`` float64 (``log_z`` exact, or an estimate: a bound in
    expectation only with an upper estimate such as :func:`reverse_ais`'s)."""
    log_z = _validation.real(log_z, "log_z")
    return elbo(model, v, n_steps=n_steps, damping=damping) - log_z
