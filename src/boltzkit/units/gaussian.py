"""Real-valued units: :class:`Gaussian` of unit variance (base(s) = s²/2, so p(s | t) =
N(beta t, 1)) and :class:`LearnedGaussian`, with a learned variance per unit."""

from __future__ import annotations

import math
from typing import Optional

import torch

from .base import Units, _scale

__all__ = ["Gaussian", "LearnedGaussian", "DEFAULT_MIN_VARIANCE", "LOG_VARIANCE_LIMIT"]


class Gaussian(Units):
    """Real-valued units of unit variance: base(s) = s²/2, so p(s | t) = N(beta t, 1).

    log-partition: ``(beta t)²/2 + log(2π)/2`` per unit, so that likelihoods are densities in
    nats.
    Data should be standardised (zero mean, unit variance per feature) before training.

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``mean`` and draws have the field's shape, ``log_partition`` and ``base`` are
    ``(n,)``. Owns no parameters (``params`` is ignored).
    """

    name = "gaussian"
    discrete = False
    _HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

    def mean(self, field, beta=1.0, *, params=None):
        x = _scale(field, beta)
        return x.clone() if x is field else x

    def sample_from_mean(self, mean, generator=None, *, params=None):
        return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype,
                                  device=mean.device)

    def log_partition(self, field, beta=1.0, *, params=None):
        x = _scale(field, beta)
        return (0.5 * x * x).sum(-1) + self._HALF_LOG_2PI * field.shape[-1]

    def base(self, s, *, params=None):
        return 0.5 * (s * s).sum(-1)

    def n_states(self, n_units):
        return math.inf

    def init_bias(self, data_mean):
        return data_mean.clone()


#: The smallest variance :class:`LearnedGaussian` lets training reach (see its docstring).
DEFAULT_MIN_VARIANCE = 1e-2
#: The learning-rate multiplier of learned log-variances that ``boltzkit train`` uses
#: (``SGD(lr_scale={"visible_log_variance": VARIANCE_LR_SCALE})``; see benchmarks/grbm_patches.py).
VARIANCE_LR_SCALE = 0.1
#: Log-variances a model may hold at all (a file outside this range is refused): e^±30.
LOG_VARIANCE_LIMIT = 30.0


class LearnedGaussian(Units):
    """Real-valued units with a learned variance per unit (Cho, Ilin & Raiko 2011).

    The family owns one parameter, ``log_variance`` ``z`` ``(n_units,)`` (an RBM registers it as
    ``visible_log_variance``), with ``σ² = exp(z)``. A state enters the pairwise and bias terms
    of the energy through its :meth:`statistic` ``s / σ²`` and its base measure is
    ``s² / (2σ²)``, so that in an RBM (field ``t = a + W h``)

        E(v, h) = Σ_i (v_i - a_i)² / (2σ_i²) - Σ_j b_j h_j - Σ_ij (v_i / σ_i²) W_ij h_j
                  - Σ_i a_i² / (2σ_i²),

    Cho et al.'s energy less the constant ``Σ_i a_i²/(2σ_i²)``, which cancels in every probability
    (log Z is smaller by it; free energies too; likelihoods are the same). The conditional is

        p(s | t) ∝ exp(beta t s / σ² - s² / (2σ²)) = N(beta t, σ²):

    ``beta`` scales the field (biases and interaction) and leaves the variances alone, as it
    leaves every base measure alone (:mod:`boltzkit.units.base`): at beta = 0 the units are
    N(0, σ²), the base distribution of annealed importance sampling, and every tempered model
    keeps the learned variances. ``log_partition = Σ (beta t)²/(2σ²) + ½ log(2π σ²)``.

    Parameters
    ----------
    min_variance : float in (0, 1]
        The floor :meth:`constrain_` keeps the variances above during training (the driver calls
        it after every update): a variance that collapses onto a data point makes the likelihood
        unbounded. The default 0.01 suits standardised or whitened data (variance 1 per
        feature). Spelled ``"gaussian:learned"`` (default floor) or ``"gaussian:learned:F"``.
    max_variance : float > min_variance, optional
        A ceiling :meth:`constrain_` keeps the variances below (none by default). In a GRBM the
        conditional variance of a visible unit cannot usefully exceed its marginal variance
        (the mixture over hidden states only adds to it), so on standardised or whitened data
        1 is a bound that costs nothing and stops a variance that runs away when the learning
        rate is too large (BENCHMARKS.md, the GRBM section). Spelled
        ``"gaussian:learned:F:C"``.

    Shapes: ``field`` ``(n, n_units)``, ``beta`` a number or broadcasting against the field
    (``(n, 1)``); ``params`` ``{"log_variance": (n_units,)}`` (required: every method raises a
    ``ValueError`` without it); ``mean``, draws and :meth:`statistic` have the field's shape,
    ``log_partition`` and ``base`` are ``(n,)``.
    """

    name = "gaussian"
    discrete = False
    identity_statistic = False
    _HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)

    def __init__(self, min_variance: float = DEFAULT_MIN_VARIANCE,
                 max_variance: Optional[float] = None):
        try:
            ok = (not isinstance(min_variance, bool) and 0.0 < float(min_variance) <= 1.0)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"min_variance: expected a number in (0, 1], got {min_variance!r}")
        self.min_variance = float(min_variance)
        if max_variance is not None:
            try:
                ok = (not isinstance(max_variance, bool) and math.isfinite(float(max_variance))
                      and float(max_variance) > self.min_variance
                      and math.log(float(max_variance)) < LOG_VARIANCE_LIMIT)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"max_variance: expected a number above the floor "
                                 f"{self.min_variance:g} and below e^{LOG_VARIANCE_LIMIT:g}, "
                                 f"got {max_variance!r}")
            max_variance = float(max_variance)
        self.max_variance = max_variance

    def init_parameters(self, n_units, dtype=torch.float32, device=None):
        return {"log_variance": torch.zeros(n_units, dtype=dtype, device=device)}

    @staticmethod
    def _z(params) -> torch.Tensor:
        if params is None or "log_variance" not in params:
            raise ValueError("params: gaussian:learned units need their 'log_variance' parameter")
        return params["log_variance"]

    def statistic(self, s, *, params=None):
        return s * torch.exp(-self._z(params))

    def mean(self, field, beta=1.0, *, params=None):
        self._z(params)
        x = _scale(field, beta)
        return x.clone() if x is field else x

    def sample_from_mean(self, mean, generator=None, *, params=None):
        sd = torch.exp(0.5 * self._z(params))
        return torch.addcmul(mean, sd, torch.randn(mean.shape, generator=generator,
                                                   dtype=mean.dtype, device=mean.device))

    def log_partition(self, field, beta=1.0, *, params=None):
        z = self._z(params)
        x = _scale(field, beta)
        return (0.5 * x * x * torch.exp(-z)).sum(-1) + (self._HALF_LOG_2PI * z.shape[-1]
                                                        + 0.5 * z.sum(-1))

    def base(self, s, *, params=None):
        return 0.5 * (s * s * torch.exp(-self._z(params))).sum(-1)

    def constrain_(self, params) -> None:
        """Keep the variances at or above ``min_variance`` (and at or below ``max_variance``
        where set), in place."""
        z = self._z(params)
        top = LOG_VARIANCE_LIMIT if self.max_variance is None else math.log(self.max_variance)
        with torch.no_grad():
            z.clamp_(min=math.log(self.min_variance), max=top)

    @staticmethod
    def check_parameters(params, layer: str = "visible") -> None:
        """``ValueError`` naming ``<layer>_log_variance`` unless it is finite and within
        ±:data:`LOG_VARIANCE_LIMIT` (variances between e^-30 and e^30)."""
        z = params["log_variance"].detach()
        name = f"{layer}_log_variance"
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name}: expected finite log-variances, found NaN or inf")
        if z.numel() and float(z.abs().max()) > LOG_VARIANCE_LIMIT:
            raise ValueError(f"{name}: expected log-variances within ±{LOG_VARIANCE_LIMIT:g}, "
                             f"found {float(z[z.abs().argmax()]):g}")

    def n_states(self, n_units):
        return math.inf

    def init_bias(self, data_mean):
        return data_mean.clone()

    def spec(self):
        if self.max_variance is not None:
            return f"gaussian:learned:{self.min_variance!r}:{self.max_variance!r}"
        if self.min_variance == DEFAULT_MIN_VARIANCE:
            return "gaussian:learned"
        return f"gaussian:learned:{self.min_variance!r}"

    def __repr__(self):
        top = "" if self.max_variance is None else f", max_variance={self.max_variance!r}"
        return f"LearnedGaussian(min_variance={self.min_variance!r}{top})"
