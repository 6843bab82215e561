"""Annealed importance sampling (AIS) and reverse AIS (RAISE) for RBMs of any unit pairing
and for convolutional RBMs (with or without probabilistic max-pooling: :class:`_ImageAnnealer`).

The path of distributions
-------------------------
From a *base model* A (zero weights, hidden biases zero, visible biases ``a0``: the data's base
rates, or zero) to the RBM B, through inverse temperatures ``0 = β_0 < β_1 < ... < β_K = 1``
(Salakhutdinov & Murray 2008, section 4.1). With the hidden layer summed out, the unnormalised
marginal of v at β is

    f_β(v) = exp(-base_v(v) + v·((1-β) a0 + β a)) · Π_j Σ_{h_j} exp(β h_j (b + vW)_j - base_h(h_j))
           = exp(-base_v(v) + v·((1-β) a0 + β a) + logpart_h(b + vW, β))

where ``logpart_h(t, β)`` is the hidden family's :meth:`~boltzkit.units.Units.log_partition`:
β scales the field and never the base measure (the Gaussian ``s²/2`` is shared by every
intermediate distribution, see :mod:`boltzkit.units`). At β = 0 this is the base model, whose
log-partition is closed form::

    log Z_0 = logpart_v(a0) + logpart_h(0)

and at β = 1 it is the RBM's ``exp(-F(v))``. For visible units with learned variances
(``gaussian:learned``) ``v`` reads ``phi(v) = v / σ²`` wherever it meets a weight or a bias and
``base_v(v) = Σ v²/(2σ²)``: the base model is N(a0, σ²) with the model's own variances, which
every intermediate distribution keeps (β scales fields, never base measures). The families'
parameters are passed to every call. The log-ratio of consecutive distributions needs
only the hidden field ``c = b + vW`` of the current state::

    log f_{β'}(v) - log f_β(v) = (β' - β) v·(a - a0) + logpart_h(c, β') - logpart_h(c, β).

The transition at β is block Gibbs in the tempered RBM: h ~ p_β(h | v) with hidden field
β (b + vW), then v ~ p_β(v | h) with visible field (1-β) a0 + β (a + W h). It leaves f_β
invariant and is reversible with respect to it (a two-block Gibbs sweep on v, h summed out).

Forward AIS (Neal 2001)
-----------------------
v_0 ~ base; for k = 1..K: ``log w += log f_k(v) - log f_{k-1}(v)``, then (for k < K) move v by the
transition at β_k. ``E[w] = Z_B / Z_A``; with M chains ``Ẑ = Z_A · mean(w)`` is unbiased, so
``E[log Ẑ] <= log Z`` (Jensen): forward AIS tends to *under*-estimate log Z, i.e. to over-estimate
log-likelihoods.

Reverse AIS (Burda, Grosse & Salakhutdinov 2015, "RAISE")
---------------------------------------------------------
The forward chain defines an *annealing model* p_ann(v): the law of its final state. RAISE
estimates p_ann(v) of a given v without bias by running the chain backwards from v: for
k = K..1, move v by the transition at β_k (the reversal of a reversible kernel is itself), then
``log ŵ += log f_{k-1}(v) - log f_k(v)``. Then ``p̂_ann(v) = exp(-F(v)) · ŵ / Z_A`` has expectation
p_ann(v) for *every* v, wherever it came from, so ``E[log p̂_ann(v)] <= log p_ann(v)``: the estimate
is conservative (it errs towards lower log-likelihoods). With enough temperatures p_ann -> p.
In terms of a partition function, each chain gives ``log Z_A - log ŵ``; their mean over chains
is the "effective" log Z that turns exact free energies into RAISE log-likelihoods, an upper
estimate of log Z. Averaging over the rows of a data set, the RAISE mean log-likelihood is
``mean(-F(v)) - (log Z_A - mean log ŵ)``; :func:`reverse_ais` runs chains from a random subset
of ``n_chains`` rows and the free energies are exact on every row, which keeps the estimate
conservative in expectation over the subset (the per-row log ŵ enter through their mean).

Confidence intervals
--------------------
Forward: Salakhutdinov & Murray's ``log(mean(w) ± 3 std(w)/sqrt(M)) + log Z_A`` (the lower end is
``-inf`` when ``mean(w) - 3 std(w)/sqrt(M) <= 0``). Reverse: ``mean ± 3 std(log ŵ)/sqrt(M)``, the
standard error of the mean of the per-chain values (RAISE's estimate is a mean of logarithms).
``ess = (Σw)² / Σw²`` is Kish's effective sample size of the weights.

Precision and speed
-------------------
Chains run in ``dtype`` (float32 by default); log-weights accumulate in float64. The per-step
hidden log-partition difference is formed as ``log1p(m · expm1((β'-β) c))`` (Bernoulli; similar
forms for the other families) from the conditional mean m that the transition needs anyway, so
it keeps full relative precision although β' - β is as small as 1e-5 (a difference of two
softplus sums of size ~100 would lose four digits in float32). Per temperature the work is the
two matrix products ``v W`` (shared by the weight update and the next transition) and ``h Wᵀ``,
plus elementwise work on the ``(n_chains, n_units)`` fields.
"""

from __future__ import annotations

import copy
import math
import numbers
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .. import _products as products
from .. import _validation
from ..units import Bernoulli, Gaussian, Softmax, Spin

__all__ = ["AISResult", "ais", "reverse_ais", "default_betas", "base_visible_bias",
           "base_log_partition", "DEFAULT_STEPS"]

# Salakhutdinov & Murray (2008): steps of 1e-3 to 0.5, 1e-4 to 0.9, 1e-5 to 1
_SM_SEGMENTS = ((0.5, 500), (0.9, 4000), (1.0, 10000))
DEFAULT_STEPS = sum(n for _, n in _SM_SEGMENTS)  # 14,500 steps, 14,501 inverse temperatures

# the fast increment forms need |Δβ · c| below this (expm1 / sinh stay small and exact)
_FAST_LIMIT = 0.5


@dataclass(frozen=True)
class AISResult:
    """An estimate of log Z.

    Attributes
    ----------
    log_z : float
        The estimate (forward: ``log Z_A + log mean w``; reverse: ``log Z_A - mean log ŵ``).
    log_z_low, log_z_high : float
        Confidence interval (see the module docstring: forward ``log(mean w ± 3 std/sqrt(M))``,
        reverse ``± 3`` standard errors of the mean of log ŵ).
    ess : float
        Effective sample size ``(Σw)²/Σw²`` of the chains' weights (1 .. n_chains).
    log_weights : torch.Tensor, float64, ``(n_chains,)``
        Per-chain log w (forward, estimates log Z - log Z_A) or log ŵ (reverse, estimates
        log Z_A - log Z for chains started at exact samples), on the CPU.
    log_z_base : float
        log Z_A of the base model.
    n_betas : int
        Inverse temperatures used, 0 and 1 included (number of annealing steps + 1).
    direction : str
        ``"forward"`` or ``"reverse"``.
    """

    log_z: float
    log_z_low: float
    log_z_high: float
    ess: float
    log_weights: torch.Tensor
    log_z_base: float
    n_betas: int
    direction: str

    @property
    def n_chains(self) -> int:
        return int(self.log_weights.shape[0])

    def as_dict(self) -> dict:
        """JSON-ready summary (no per-chain weights)."""
        return {"log_z": self.log_z, "log_z_interval": [self.log_z_low, self.log_z_high],
                "ess": self.ess, "n_chains": self.n_chains, "n_betas": self.n_betas,
                "log_z_base": self.log_z_base, "direction": self.direction}


# -- schedule -------------------------------------------------------------------------------------
def default_betas(n_steps: int = DEFAULT_STEPS, dtype=torch.float64) -> torch.Tensor:
    """Inverse temperatures ``(n_steps + 1,)`` from 0 to 1 shaped like Salakhutdinov & Murray's
    schedule: with the default 14,500 steps exactly theirs (steps of 1e-3 up to 0.5, 1e-4 up to
    0.9, 1e-5 up to 1); other counts split the steps between the three segments in the same
    proportions (500 : 4000 : 10000), each uniform."""
    n_steps = _validation.integer(n_steps, "betas", minimum=1)
    _check_betas_memory(n_steps + 1)
    counts = [max(1, round(n_steps * n / DEFAULT_STEPS)) for _, n in _SM_SEGMENTS]
    if n_steps < len(counts):
        return torch.linspace(0.0, 1.0, n_steps + 1, dtype=dtype)
    counts[-1] = n_steps - sum(counts[:-1])
    parts, start = [torch.zeros(1, dtype=torch.float64)], 0.0
    for (stop, _), n in zip(_SM_SEGMENTS, counts):
        parts.append(torch.linspace(start, stop, n + 1, dtype=torch.float64)[1:])
        start = stop
    return torch.cat(parts).to(dtype)


# bytes per inverse temperature: the float64 schedule and its copy, and the Python list the
# loop walks (a float object and its pointer)
_BYTES_PER_BETA = 8 * 2 + 32


def _check_betas_memory(n_betas: int) -> None:
    _validation.memory(float(n_betas) * _BYTES_PER_BETA, f"betas: {n_betas} inverse temperatures")


def _resolve_betas(betas) -> list:
    if betas is None:
        b = default_betas()
    elif isinstance(betas, numbers.Integral) and not isinstance(betas, bool):
        b = default_betas(betas)
    else:
        try:
            b = torch.as_tensor(betas, dtype=torch.float64).flatten().cpu()
        except (TypeError, ValueError) as err:
            raise ValueError(f"betas: expected None, a number of steps or a sequence of inverse "
                             f"temperatures, got {type(betas).__name__} ({err})") from None
        if b.numel() < 2 or not torch.isfinite(b).all():
            raise ValueError(f"betas: expected at least 2 finite inverse temperatures, got "
                             f"{b.numel()} values{'' if torch.isfinite(b).all() else ' with NaN/inf'}")
        if b[0] != 0 or b[-1] != 1:
            raise ValueError(f"betas: expected a schedule from 0 to 1, got {b[0].item():g} to "
                             f"{b[-1].item():g}")
        if (b[1:] < b[:-1]).any():
            raise ValueError("betas: expected non-decreasing inverse temperatures")
        _check_betas_memory(b.numel())
    return b.tolist()


# -- base model -----------------------------------------------------------------------------------
def base_visible_bias(model, data: Optional[torch.Tensor] = None, dtype=None) -> torch.Tensor:
    """Visible biases ``(n_visible,)`` of the base model: those that make a model with no weights
    reproduce the per-feature mean of ``data`` ``(n, n_visible)`` (the data's base rates, with
    the family's :meth:`~boltzkit.units.Units.init_bias`, which keeps binary rates within
    [1e-3, 1 - 1e-3]), or zeros when ``data`` is None (the uniform base model for discrete
    units, N(0, 1) for Gaussian ones)."""
    dtype = dtype or model.weight.dtype
    device = model.weight.device
    if data is None:
        return torch.zeros(_layer_shape(model, "visible"), dtype=dtype, device=device)
    data = model.check_visible(data, "base", relaxed=True)
    return model.visible.init_bias(data.double().mean(0)).to(dtype)


def _layer_shape(model, layer: str) -> tuple:
    """The shape of one row of a layer: ``(n_units,)``, or a ConvRBM's image ``(C, H, W)`` and
    maps ``(K, H', W')``."""
    if layer == "visible":
        return tuple(getattr(model, "image_shape", (model.n_visible,)))
    return tuple(getattr(model, "hidden_shape", (model.n_hidden,)))


def _check_model(model):
    """``model`` if it is an RBM or a ConvRBM (what this module anneals)."""
    from ..models.conv_rbm import ConvRBM
    from ..models.rbm import RBM

    if not isinstance(model, (RBM, ConvRBM)):
        raise ValueError(f"model: expected an RBM, got {type(model).__name__} (a ConvRBM is "
                         f"taken too)")
    return model


def _annealer(model, base, dtype, generator):
    """The path's parameters and moves for ``model``: :class:`_Annealer` for an RBM,
    :class:`_ImageAnnealer` for a ConvRBM."""
    cls = _ImageAnnealer if hasattr(model, "image_shape") else _Annealer
    return cls(model, base, dtype, generator)


def _cast(params, dtype):
    return None if params is None else {k: t.detach().to(dtype) for k, t in params.items()}


def base_log_partition(model, a0: torch.Tensor) -> float:
    """log Z_A of the base model with visible biases ``a0``: ``logpart_v(a0) + logpart_h(0)``
    (float64; the families' own parameters, e.g. learned variances, included)."""
    a0 = a0.detach().to(torch.float64).reshape(1, -1)
    zeros = torch.zeros(1, model.n_hidden, dtype=torch.float64, device=a0.device)
    return (model.visible.log_partition(a0, params=_cast(model.visible_params, torch.float64))
            + model.hidden.log_partition(zeros, params=_cast(model.hidden_params,
                                                             torch.float64))).item()


# -- per-step increments --------------------------------------------------------------------------
def _field_bound(model, w: torch.Tensor, b: torch.Tensor) -> float:
    """A bound on |b + vW| over the visible support (inf for Gaussian visible units)."""
    if not model.visible.discrete:
        return math.inf
    return (b.abs() + w.abs().sum(0)).max().item()


def _logpart_step(units, c, mean_from, beta_from: float, beta_to: float, fast: bool,
                  params=None):
    """``logpart(c, beta_to) - logpart(c, beta_from)`` per row, shape ``(n,)``, given
    ``mean_from = units.mean(c, beta_from)``. ``fast`` (``|Δβ c| < 0.5`` everywhere) selects
    the forms that keep full relative precision for tiny Δβ; otherwise the difference is
    formed in float64."""
    d = beta_to - beta_from
    if d == 0:
        return c.new_zeros(c.shape[0])
    if type(units) is Gaussian:
        # exact: ((β' c)² - (β c)²)/2 = (β'² - β²) c²/2 (the log 2π terms cancel)
        return (c * c).sum(-1).mul_(0.5 * (beta_to * beta_to - beta_from * beta_from))
    if fast:
        if type(units) is Bernoulli:
            # log(1 + e^{x+y}) - log(1 + e^x) = log1p(sigmoid(x) expm1(y)), x = β c, y = Δβ c
            return torch.mul(c, d).expm1_().mul_(mean_from).log1p_().sum(-1)
        if type(units) is Spin:
            # log cosh(x+y) - log cosh x = log1p(2 sinh²(y/2) + tanh(x) sinh(y))
            y = c * d
            s = torch.sinh(y * 0.5)
            return torch.log1p(torch.sinh(y).mul_(mean_from).addcmul_(s, s, value=2.0)).sum(-1)
        if type(units) is Softmax:
            # lse(x + y) - lse(x) = log Σ_j softmax(x)_j e^{y_j} = log1p(Σ_j m_j expm1(y_j))
            k = units.group_size or c.shape[-1]
            y = torch.expm1(c * d).mul_(mean_from)
            return torch.log1p(y.reshape(c.shape[0], -1, k).sum(-1)).sum(-1)
    if type(units) is Softmax:
        # lse(x + y) - lse(x) = lse(log_softmax(x) + y) per group: stable for any y
        k = units.group_size or c.shape[-1]
        g = c.reshape(c.shape[0], -1, k)
        ls = torch.log_softmax(g * beta_from, -1)
        return torch.logsumexp(ls + g * d, -1).sum(-1)
    cd = c.double()
    pd = _cast(params, torch.float64)
    return (units.log_partition(cd, beta_to, params=pd)
            - units.log_partition(cd, beta_from, params=pd))


# -- the chains -----------------------------------------------------------------------------------
class _Uniforms:
    """Uniform [0, 1) numbers for the chains' Bernoulli and spin draws.

    On the CPU they come from a NumPy SFC64 stream seeded once from ``generator`` (so equal
    generators still give equal results, and the generator's state advances): PyTorch's CPU
    generator costs about 2.5 ns per number and the ~128,000 draws of a 100-chain 784x500 step
    were a fifth of the step's matrix-product time; SFC64 takes about half that. Both give
    24-bit uniforms k·2^-24, so ``u < p`` is the same Bernoulli draw as
    :meth:`boltzkit.units.Bernoulli.sample_from_mean`. On other devices: ``torch.rand`` with
    ``generator``."""

    def __init__(self, generator, device, dtype):
        self.g, self.device, self.dtype = generator, device, dtype
        self.rng, self.buffers = None, {}
        if device.type == "cpu":
            seed = torch.randint(0, 2 ** 62, (4,), generator=generator).tolist()
            self.rng = np.random.Generator(np.random.SFC64(seed))
            self.np_dtype = np.float32 if dtype == torch.float32 else np.float64

    def __call__(self, shape) -> torch.Tensor:
        """A tensor of uniforms; on the CPU a buffer reused by the next call of that shape."""
        if self.rng is None:
            return torch.rand(shape, generator=self.g, dtype=self.dtype, device=self.device)
        buf = self.buffers.get(shape)
        if buf is None:
            buf = self.buffers[shape] = np.empty(shape, dtype=self.np_dtype)
        self.rng.random(out=buf, dtype=self.np_dtype)
        return torch.from_numpy(buf)


class _Annealer:
    """Parameters of the path, in the chains' dtype, and the two moves every step is made of."""

    def __init__(self, model, base, dtype, generator):
        self.dtype = _validation.float_dtype(dtype)
        self.model = model
        self.V, self.H = model.visible, model.hidden
        with torch.no_grad():
            self.w = model.weight.detach().to(self.dtype)
            self.wt = self.w.t().contiguous()
            self.a = model.visible_bias.detach().to(self.dtype)
            self.b = model.hidden_bias.detach().to(self.dtype)
            self.a0 = base_visible_bias(model, base, self.dtype)
            self.da = self.a - self.a0
            self.pv = _cast(model.visible_params, self.dtype)
            self.ph = _cast(model.hidden_params, self.dtype)
        self.log_z_base = base_log_partition(model, self.a0)
        self.bound = _field_bound(model, self.w, self.b)
        if generator is None:
            generator = torch.Generator(device=self.w.device)
            generator.manual_seed(0)
        self.g = generator
        self.uniforms = _Uniforms(generator, self.w.device, self.dtype)

    def fast(self, beta_from, beta_to) -> bool:
        return abs(beta_to - beta_from) * self.bound < _FAST_LIMIT

    def stat(self, v):
        """``phi(v)``: ``v`` itself but for learned variances (``v / σ²``)."""
        return v if self.V.identity_statistic else self.V.statistic(v, params=self.pv)

    def params(self, units):
        return self.ph if units is self.H else self.pv

    def hidden_field(self, v):
        return products.addmm(self.b, self.stat(v), self.w)

    def mean(self, units, field, beta):
        """E_β[s | field] (one buffer for Bernoulli units, the families' ``mean`` otherwise)."""
        if type(units) is Bernoulli:
            return (torch.mul(field, beta) if beta != 1.0 else field.clone()).sigmoid_()
        return units.mean(field, beta, params=self.params(units))

    def sample(self, units, mean):
        """A draw given the conditional mean: Bernoulli and spin through :class:`_Uniforms`
        (on the CPU the result lives in the uniforms' buffer: valid until the next draw of the
        same shape, which is all a chain step needs), other families through their own
        ``sample_from_mean``."""
        if type(units) is Bernoulli:
            u = self.uniforms(tuple(mean.shape))
            return torch.lt(u, mean, out=u)
        if type(units) is Spin:
            u = self.uniforms(tuple(mean.shape))
            return torch.lt(u, (mean + 1.0) * 0.5, out=u).mul_(2.0).sub_(1.0)
        return units.sample_from_mean(mean, self.g, params=self.params(units))

    def move(self, hidden_mean, beta):
        """Transition at ``beta`` given E_β[h | v] of the current v: h, then v. Returns v."""
        h = self.sample(self.H, hidden_mean)
        field = products.addmm(torch.lerp(self.a0, self.a, beta), h, self.wt, alpha=beta)
        if type(self.V) is Bernoulli:
            return self.sample(self.V, field.sigmoid_())
        return self.sample(self.V, self.V.mean(field, params=self.pv))

    def increment(self, v, c, mean, beta_from, beta_to):
        """``log f_{β_to}(v) - log f_{β_from}(v)``, ``(n,)``, given ``c = b + vW`` and
        ``mean = E_{β_from}[h | v]``: a small number formed without cancellation, so the
        chains' precision suffices; the caller accumulates it into float64."""
        out = _logpart_step(self.H, c, mean, beta_from, beta_to, self.fast(beta_from, beta_to),
                            self.ph)
        return out.add_(torch.mv(self.stat(v), self.da), alpha=beta_to - beta_from)


class _ImageAnnealer(_Annealer):
    """The path for a :class:`~boltzkit.models.ConvRBM`: states are images ``(n, C, H, W)`` and
    maps ``(n, K, H', W')``, the fields the model's convolutions (a copy of the model in the
    chains' dtype).

    Its base model keeps the model's hidden biases: only the filters (and the visible biases,
    from the data's base rates ``a0``, one per pixel) are annealed in. With ``c = W ⋆ v`` (no
    bias), the intermediate distributions are

        p_β(v, h) ∝ exp(v·((1-β) a0 + β a) + h·(b + β c)),

    so the hidden field at β is ``b + β c``, the visible field ``(1-β) a0 + β (a + W ⋆ᵀ h)``,
    and the base model (β = 0) has ``log Z_A = logpart_v(a0) + logpart_h(b)``. A ConvRBM's hidden
    layer is large and, trained with a sparsity target, its biases strongly negative; from a
    base model with zero hidden biases (log 5 per pooling block) the path of a 24-filter MNIST
    model fell 4,000 nats, and 100 chains of 14,500 steps did not follow it (forward and reverse
    AIS 445 nats apart, effective sample sizes 1.5 and 1.0). The hidden log-partition steps are
    taken without cancellation: per unit ``log1p(m expm1(Δβ c))`` (binary maps, the dense
    Bernoulli form) or per pooling block ``log1p(Σ p expm1(Δβ c))``
    (:meth:`~boltzkit.models.conv_rbm.PooledBernoulli.log_partition_step`), with ``m``, ``p``
    the hidden means at β; in float64 where ``|Δβ c|`` may reach 0.5. The visible units
    (Bernoulli or unit-variance Gaussian) own no parameters."""

    def __init__(self, model, base, dtype, generator):
        self.dtype = _validation.float_dtype(dtype)
        self.model = model if model.weight.dtype == self.dtype else \
            copy.deepcopy(model).to(self.dtype)
        self.V, self.H = model.visible, model.hidden
        self.pooled = callable(getattr(self.H, "log_partition_step", None))
        with torch.no_grad():
            self.w = self.model.weight.detach()
            self.b = self.model.hidden_bias.detach().view(-1, 1, 1)  # (K, 1, 1)
            self.a0 = base_visible_bias(model, base, self.dtype)  # (C, H, W)
            self.da = self.model.visible_bias.detach().view(-1, 1, 1) - self.a0
            b64 = self.b.double().expand(*_layer_shape(model, "hidden"))[None]
            self.log_z_base = (self.V.log_partition(self.a0.double()[None])
                               + self.H.log_partition(b64)).item()
        self.pv = self.ph = None
        # |W_k ⋆ v| <= Σ|W_k| for visible states in [0, 1]
        self.bound = (self.w.abs().flatten(1).sum(1).max().item() if self.V.discrete
                      else math.inf)
        if generator is None:
            generator = torch.Generator(device=self.w.device)
            generator.manual_seed(0)
        self.g = generator
        self.uniforms = _Uniforms(generator, self.w.device, self.dtype)

    def hidden_field(self, v):
        """``c = W ⋆ v`` without the hidden bias (which the base model keeps)."""
        return torch.nn.functional.conv2d(v, self.w)

    def _shifted(self, c, beta):
        """The hidden field at ``beta`` on this path: ``b + β c``."""
        return torch.add(self.b, c, alpha=beta)

    def mean(self, units, field, beta):
        if units is self.H:
            return self.H.mean(self._shifted(field, beta))
        return super().mean(units, field, beta)

    def move(self, hidden_mean, beta):
        """Transition at ``beta``: h ~ p_β(h | v) (one draw per pooling block), then v with the
        visible field ``(1-β) a0 + β (a + W ⋆ᵀ h)``. Returns v."""
        h = self.H.sample_from_mean(hidden_mean, self.g)
        field = self.model.visible_field(h).mul_(beta).add_(self.a0, alpha=1.0 - beta)
        mean = self.V.mean(field)
        if type(self.V.units) is Bernoulli:
            return self.sample(self.V.units, mean)
        return self.V.sample_from_mean(mean, self.g)

    def increment(self, v, c, mean, beta_from, beta_to):
        """``log f_{β_to}(v) - log f_{β_from}(v)`` given ``c = W ⋆ v`` and ``mean`` the hidden
        means at ``beta_from``."""
        d = beta_to - beta_from
        if d == 0:
            return c.new_zeros(c.shape[0])
        if not self.fast(beta_from, beta_to):
            cd = c.double()
            out = (self.H.log_partition(self._shifted(cd, beta_to))
                   - self.H.log_partition(self._shifted(cd, beta_from)))
        elif self.pooled:
            out = self.H.log_partition_step(c, mean, d)
        else:
            out = torch.mul(c, d).expm1_().mul_(mean).flatten(1).log1p_().sum(1)
        return out.add_(torch.mv(v.flatten(1), self.da.flatten()), alpha=d)


def _check_chains(n_chains, name="n_chains") -> int:
    """``n_chains`` as an int >= 2 (an interval needs a spread)."""
    return _validation.integer(n_chains, name, minimum=2)


def _check_chains_memory(model, n_chains: int, dtype) -> None:
    """Refuse chains whose states and fields (a few ``(n_chains, n_visible + n_hidden)``
    tensors in the chains' precision, plus float64 weights) would not fit on the model's
    device."""
    itemsize = 8 if dtype == torch.float64 else 4
    need = float(n_chains) * ((model.n_visible + model.n_hidden) * itemsize * 4 + 8 * 2)
    _validation.memory(need, f"n_chains: {n_chains} chains of {model.n_visible}+"
                       f"{model.n_hidden} units", model.weight.device)


def _summary(log_w: torch.Tensor):
    lw = log_w.detach().double().cpu()
    n = lw.shape[0]
    ess = math.exp(2 * torch.logsumexp(lw, 0).item() - torch.logsumexp(2 * lw, 0).item())
    return lw, n, ess


@torch.no_grad()
def ais(model, *, base: Optional[torch.Tensor] = None, n_chains: int = 100,
        betas: Union[None, int, Sequence[float], torch.Tensor] = None,
        generator: Optional[torch.Generator] = None, dtype=None) -> AISResult:
    """Forward annealed importance sampling estimate of the RBM's log Z.

    Parameters
    ----------
    model : RBM (any unit pairing) or ConvRBM (with or without pooling; states are images)
    base : ``(n, n_visible)`` tensor, optional
        Data whose per-feature means give the base model's visible biases (Salakhutdinov &
        Murray's base-rate model; recommended: the training data); None: zero biases.
    n_chains : int
        Independent annealing runs (M >= 2).
    betas : None, int or sequence
        None: the default schedule (14,500 steps, :func:`default_betas`); an int: that many
        steps in the same shape; a sequence: the inverse temperatures themselves, from 0 to 1,
        non-decreasing.
    generator : torch.Generator on the model's device (default: a fresh one seeded 0)
    dtype : torch.float32 (default) or torch.float64
        Precision of the chains; log-weights are accumulated in float64 either way.

    Returns
    -------
    AISResult (``log_weights`` of shape ``(n_chains,)``)
    """
    _check_model(model)
    n_chains = _check_chains(n_chains)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    _check_chains_memory(model, n_chains, dtype)
    bs = _resolve_betas(betas)
    an = _annealer(model, base, dtype, generator)
    n = n_chains
    v = an.V.sample(an.a0.expand(n, *an.a0.shape).contiguous(), an.g, params=an.pv)
    log_w = torch.zeros(n, dtype=torch.float64, device=an.w.device)
    c = an.hidden_field(v)
    last = len(bs) - 1
    for k in range(1, last + 1):
        beta, prev = bs[k], bs[k - 1]
        mean = an.mean(an.H, c, beta)
        # log f_k(v) - log f_{k-1}(v) = -(log f_{k-1}(v) - log f_k(v)), with E_k[h|v] at hand
        log_w.sub_(an.increment(v, c, mean, beta, prev))
        if k < last:
            v = an.move(mean, beta)
            c = an.hidden_field(v)
    lw, n, ess = _summary(log_w)
    m = torch.logsumexp(lw, 0).item() - math.log(n)
    w = torch.exp(lw - lw.max())
    mean_w, sd_w = w.mean().item(), w.std().item()
    scale = lw.max().item() + an.log_z_base
    half = 3.0 * sd_w / math.sqrt(n)
    low = scale + math.log(mean_w - half) if mean_w - half > 0 else -math.inf
    high = scale + math.log(mean_w + half)
    return AISResult(an.log_z_base + m, low, high, ess, lw, an.log_z_base, len(bs), "forward")


@torch.no_grad()
def reverse_ais(model, data: torch.Tensor, *, base: Optional[torch.Tensor] = None,
                n_chains: Optional[int] = 100,
                betas: Union[None, int, Sequence[float], torch.Tensor] = None,
                generator: Optional[torch.Generator] = None, dtype=None) -> AISResult:
    """Reverse AIS (RAISE, Burda, Grosse & Salakhutdinov 2015): chains start at rows of ``data``
    and anneal back to the base model, giving a conservative (upper) estimate of log Z, i.e. a
    conservative (lower) estimate of log-likelihoods; forward :func:`ais` gives the other side.

    Parameters
    ----------
    data : ``(n, n_visible)``, values in the visible units' support
        Starting points: the data set whose log-likelihood is wanted (RAISE's guarantee holds
        for any rows; the estimate is tight when they look like samples of the model).
    base, betas, generator, dtype
        As in :func:`ais` (use the same ``base`` for both sides of the bracket).
    n_chains : int or None
        Chains, started at a random subset of this many rows (drawn with ``generator``, without
        replacement); None or a number >= n uses every row once.

    Returns
    -------
    AISResult with ``direction="reverse"``: ``log_z = log Z_A - mean(log ŵ)``, so that
    ``mean(-F(data)) - log_z`` is the RAISE mean log-likelihood (see :func:`log_likelihood`).
    """
    _check_model(model)
    data = model.check_visible(data, "data")
    n_rows = data.shape[0]
    if n_chains is not None:
        n_chains = _check_chains(n_chains)
    dtype = _validation.float_dtype(dtype)
    _validation.generator(generator)
    _check_chains_memory(model, n_rows if n_chains is None else min(n_chains, n_rows), dtype)
    bs = _resolve_betas(betas)
    an = _annealer(model, base, dtype, generator)
    if n_chains is None or n_chains >= n_rows:
        if n_rows < 2:
            raise ValueError(f"data: expected at least 2 rows for reverse AIS, got {n_rows}")
        v = data.to(an.dtype)
    else:
        idx = torch.randperm(n_rows, generator=an.g, device=an.g.device)[:n_chains]
        v = data.index_select(0, idx.to(data.device)).to(an.dtype)
    n = v.shape[0]
    log_w = torch.zeros(n, dtype=torch.float64, device=an.w.device)
    c = an.hidden_field(v)
    mean = an.mean(an.H, c, bs[-1])
    for k in range(len(bs) - 1, 0, -1):
        beta, prev = bs[k], bs[k - 1]
        v = an.move(mean, beta)             # transition at β_k (reversible: its own reversal)
        c = an.hidden_field(v)
        mean = an.mean(an.H, c, prev)       # E_{k-1}[h|v]: for the increment and the next move
        # log f_{k-1}(v) - log f_k(v) = -(log f_k(v) - log f_{k-1}(v)), with E_{k-1}[h|v]
        log_w.sub_(an.increment(v, c, mean, prev, beta))
    lw, n, ess = _summary(log_w)
    est = an.log_z_base - lw.mean().item()
    half = 3.0 * lw.std().item() / math.sqrt(n)
    return AISResult(est, est - half, est + half, ess, lw, an.log_z_base, len(bs), "reverse")
