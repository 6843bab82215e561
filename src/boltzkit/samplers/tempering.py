"""Parallel tempering (replica exchange) for bipartite models (RBMs).

>>> state = tempering.init(rbm, v0, ladder(10), generator)     # v0: (n, n_visible)
>>> for _ in range(k):
...     state, info = tempering.step(rbm, state, generator)
>>> samples = state.visible[:n]                                  # the chains at beta = 1

``R`` replicas of ``n`` chains each run side by side at a ladder of inverse temperatures
``1 = beta_0 > beta_1 > ... > beta_{R-1} >= 0``. The tempered model at ``beta`` scales the
interaction and the biases, not the units' base measures (as everywhere in boltzkit, see
:meth:`boltzkit.models.RBM.free_energy`):

    p_beta(v, h) ∝ base_v(v) base_h(h) exp(beta u(v, h)),   u(v, h) = v·a + h·b + vᵀ W h,

so beta = 0 is the base measure alone (uniform binary units, a standard normal for Gaussian
ones): a distribution every chain mixes in at once (Desjardins et al. 2010; Cho, Raiko & Ilin
2010). One :func:`step` is

1. swaps: chain ``c`` of replica ``r`` and chain ``c`` of replica ``r + 1`` exchange their
   states with the Metropolis probability ``min(1, exp((beta_r - beta_{r+1}) (u_{r+1} -
   u_r)))``, which leaves the product of the tempered distributions invariant. The pairs
   alternate: ``(0, 1), (2, 3), ...`` on even steps, ``(1, 2), (3, 4), ...`` on odd steps
   (deterministic even-odd swaps, the non-reversible scheme of Okabe et al. 2001 and Syed et
   al. 2019, which moves a state from beta = 0 to beta = 1 in O(R) rather than O(R²) steps);
2. one block-Gibbs sweep (v ~ p(v | h), then h ~ p(h | v)) of every chain at its replica's
   beta.

Swapping states rather than temperatures keeps replica ``r`` in rows ``r n : (r + 1) n``, so the
chains at beta = 1 are always ``state.visible[:n]``. The step is pure (returns a new state) and
reports this step's swaps in a :class:`SwapInfo`; the state also counts swaps attempted and
accepted per pair since the counters were last reset, from which :func:`acceptance` gives the
rates and :func:`adapt_ladder` re-spaces the ladder so that all pairs accept equally often. The
sampler never tunes itself: adapting (during training, or during burn-in before sampling) is the
caller's (:class:`boltzkit.training.PT` does it every ``adapt_every`` updates).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .. import _validation as _v
from ..units import row_beta

__all__ = ["PTState", "SwapInfo", "ladder", "check_ladder", "init", "step", "acceptance",
           "adapt_ladder", "reset_counts", "sample"]


class PTState(NamedTuple):
    """Replicas of chains of a bipartite sampler (``R`` replicas of ``n`` chains, rows of replica
    ``r`` at ``r n : (r + 1) n``).

    visible : ``(R n, n_visible)``
    hidden : ``(R n, n_hidden)``, a draw from p_beta(h | visible)
    hidden_mean : ``(R n, n_hidden)``, E_beta[h | visible] at the row's beta
    coupling : ``(R n,)``, u(visible, hidden) = v·a + h·b + vᵀ W h (what the swaps compare)
    betas : ``(R,)``, the ladder, ``betas[0] = 1``, decreasing
    step : ``()`` int64, steps taken (its parity chooses the pairs that try to swap)
    attempted : ``(R - 1,)`` float64, swaps tried per neighbour pair since the last reset
    accepted : ``(R - 1,)`` float64, swaps made per pair since the last reset
    """

    visible: torch.Tensor
    hidden: torch.Tensor
    hidden_mean: torch.Tensor
    coupling: torch.Tensor
    betas: torch.Tensor
    step: torch.Tensor
    attempted: torch.Tensor
    accepted: torch.Tensor


class SwapInfo(NamedTuple):
    """The swaps of one step: ``attempted`` and ``accepted`` ``(R - 1,)`` (chains per pair)."""

    attempted: torch.Tensor
    accepted: torch.Tensor


def ladder(replicas: int, low: float = 0.0, dtype=torch.float32, device=None) -> torch.Tensor:
    """``replicas`` inverse temperatures spaced evenly from 1 down to ``low`` (default 0: the
    base measure; Cho, Raiko & Ilin 2010 use an evenly spaced ladder). Shape ``(replicas,)``."""
    replicas = _v.integer(replicas, "replicas", 2)
    low = _v.real(low, "low", 0.0)
    if not low < 1:
        raise ValueError(f"low: expected an inverse temperature in [0, 1), got {low}")
    return torch.linspace(1.0, low, replicas, dtype=dtype, device=device)


def check_ladder(betas, name: str = "betas", dtype=torch.float32, device=None) -> torch.Tensor:
    """``betas`` as a ``(R,)`` tensor: at least two, finite, ``betas[0] = 1``, strictly
    decreasing, none below 0; a ValueError naming ``name`` otherwise."""
    try:
        b = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}: expected a sequence of inverse temperatures, got "
                         f"{type(betas).__name__}") from None
    if b.dim() != 1 or b.numel() < 2:
        raise ValueError(f"{name}: expected at least two inverse temperatures in one dimension, "
                         f"got shape {tuple(b.shape)}")
    if not torch.isfinite(b).all():
        raise ValueError(f"{name}: expected finite inverse temperatures, got {b.tolist()}")
    if b[0] != 1 or not (b[1:] < b[:-1]).all() or b[-1] < 0:
        raise ValueError(f"{name}: expected a ladder from 1 strictly down to a value >= 0, got "
                         f"{[round(x, 4) for x in b.tolist()]}")
    return b.to(dtype=dtype, device=device)


def _coupling(model, v: torch.Tensor, h: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """u(v, h) = v·a + h·(b + vᵀW), given the hidden field ``b + v W`` already at hand."""
    return v @ model.visible_bias + (h * field).sum(1)


def _rows(betas: torch.Tensor, n: int) -> torch.Tensor:
    """Each row's beta, ``(R n,)``."""
    return betas.repeat_interleave(n)


def _hidden(model, v, beta_rows, generator):
    field = model.hidden_field(v)
    params = model.hidden_params
    mean = model.hidden.mean(field, row_beta(beta_rows, v.shape[0]), params=params)
    h = model.hidden.sample_from_mean(mean, generator, params=params)
    return h, mean, _coupling(model, v, h, field)


def init(model, visible: torch.Tensor, betas, generator: Optional[torch.Generator] = None, *,
         check: bool = True) -> PTState:
    """Start ``R = len(betas)`` replicas of ``n`` chains, every replica at the same states
    ``visible`` ``(n, n_visible)``; the hidden layer is drawn at each replica's beta. ``betas``: see
    :func:`check_ladder`. ``check=False`` skips checking ``visible`` and ``generator``
    (callers passing the model's own states)."""
    p = model.weight
    betas = check_ladder(betas, dtype=p.dtype, device=p.device)
    R = betas.shape[0]
    if check:
        visible = model.check_visible(visible, "visible", relaxed=True)
        _v.generator(generator)
    n = visible.shape[0]
    v = visible.repeat(R, 1)
    h, mean, u = _hidden(model, v, _rows(betas, n), generator)
    zeros = torch.zeros(R - 1, dtype=torch.float64, device=p.device)
    return PTState(v, h, mean, u, betas, torch.zeros((), dtype=torch.int64, device=p.device),
                   zeros, zeros.clone())


def _swap(state: PTState, generator) -> tuple:
    """The swap half of a step: ``(visible, hidden, coupling, attempted, accepted)`` after
    the even or odd neighbour pairs (by the step's parity) tried to exchange states."""
    betas = state.betas
    R = betas.shape[0]
    n = state.visible.shape[0] // R
    first = int(state.step) % 2
    lower = torch.arange(first, R - 1, 2, device=betas.device)  # pairs (r, r + 1), r in lower
    attempted = torch.zeros(R - 1, dtype=torch.float64, device=betas.device)
    accepted = torch.zeros_like(attempted)
    if lower.numel() == 0:
        return state.visible, state.hidden, state.coupling, attempted, accepted
    u = state.coupling.view(R, n)
    d_beta = (betas[lower] - betas[lower + 1]).unsqueeze(1)
    log_ratio = d_beta * (u[lower + 1] - u[lower])            # (pairs, n)
    where = generator.device if generator is not None else betas.device
    uniform = torch.rand(log_ratio.shape, generator=generator, device=where,
                         dtype=torch.float64).to(betas.device)
    swap = torch.log(uniform) < log_ratio.double()             # (pairs, n)
    index = torch.arange(R * n, device=betas.device).view(R, n)
    lo_rows, hi_rows = index[lower], index[lower + 1]
    new = index.clone()
    new[lower] = torch.where(swap, hi_rows, lo_rows)
    new[lower + 1] = torch.where(swap, lo_rows, hi_rows)
    new = new.view(-1)
    attempted[lower] = float(n)
    accepted[lower] = swap.sum(1).double()
    return (state.visible[new], state.hidden[new], state.coupling[new], attempted, accepted)


def step(model, state: PTState, generator: Optional[torch.Generator] = None
         ) -> tuple[PTState, SwapInfo]:
    """One parallel-tempering step: swaps between neighbouring replicas (even or odd pairs,
    alternating), then one block-Gibbs sweep of every chain at its replica's beta. Pure:
    returns ``(new state, SwapInfo)``."""
    if not isinstance(state, PTState):
        raise ValueError(f"state: expected a PTState (what tempering.init returns), got "
                         f"{type(state).__name__}")
    visible, hidden, _, attempted, accepted = _swap(state, generator)
    rows = _rows(state.betas, visible.shape[0] // state.betas.shape[0])
    params = model.visible_params
    v_mean = model.visible.mean(model.visible_field(hidden), row_beta(rows, hidden.shape[0]),
                                params=params)
    v = model.visible.sample_from_mean(v_mean, generator, params=params)
    h, h_mean, u = _hidden(model, v, rows, generator)
    new = PTState(v, h, h_mean, u, state.betas, state.step + 1, state.attempted + attempted,
                  state.accepted + accepted)
    return new, SwapInfo(attempted, accepted)


def acceptance(state: PTState) -> torch.Tensor:
    """Swap acceptance rate of each neighbour pair since the counters were reset, ``(R - 1,)``
    float64 (NaN for a pair that has not tried yet)."""
    return state.accepted / state.attempted


def reset_counts(state: PTState) -> PTState:
    """The same chains with the swap counters at zero."""
    return state._replace(attempted=torch.zeros_like(state.attempted),
                          accepted=torch.zeros_like(state.accepted))


def adapt_ladder(betas, rates, floor: float = 1e-3) -> torch.Tensor:
    """A ladder with the same ends and number of rungs on which every neighbour pair would
    reject swaps equally often, given the acceptance ``rates`` ``(R - 1,)`` measured on
    ``betas`` ``(R,)``.

    Syed, Bouchard-Côté, Deligiannidis & Doucet (2019): the rejection rate of a pair is about
    the increment, between its two betas, of the *communication barrier* Λ(beta) (an increasing
    function of beta). Λ is taken as piecewise linear through the cumulative sum of the measured
    rejections (each at least ``floor``, so that Λ is strictly increasing), and the new betas
    are where Λ reaches equally spaced levels. Pairs that rejected often get closer, pairs that
    always swapped move apart. A pair without measurements (NaN) counts as rejecting at the
    mean rate. Returns float64 ``(R,)``, ``[1, ..., betas[-1]]``, strictly decreasing."""
    b = check_ladder(betas, dtype=torch.float64)
    r = torch.as_tensor(rates, dtype=torch.float64).detach().cpu()
    if r.shape != (b.shape[0] - 1,):
        raise ValueError(f"rates: expected {b.shape[0] - 1} acceptance rates (one per pair), got "
                         f"shape {tuple(r.shape)}")
    reject = 1.0 - r
    known = torch.isfinite(reject)
    fill = reject[known].mean() if known.any() else torch.tensor(1.0, dtype=torch.float64)
    reject = torch.where(known, reject, fill).clamp(min=floor, max=1.0)
    # ascending in beta: x = betas reversed, Λ(x_0) = 0
    x = b.flip(0)
    lam = torch.cat([torch.zeros(1, dtype=torch.float64), reject.flip(0).cumsum(0)])
    levels = torch.linspace(0.0, float(lam[-1]), b.shape[0], dtype=torch.float64)
    # invert the piecewise-linear Λ at the levels
    j = torch.searchsorted(lam, levels, right=True).clamp(1, lam.shape[0] - 1)
    t = (levels - lam[j - 1]) / (lam[j] - lam[j - 1])
    new = x[j - 1] + t * (x[j] - x[j - 1])
    new[0], new[-1] = x[0], x[-1]
    return new.flip(0)


def sample(model, n: int, steps: int, betas, generator: Optional[torch.Generator] = None,
           start: Optional[torch.Tensor] = None, adapt_steps: int = 0,
           adapt_every: int = 100) -> tuple[PTState, list]:
    """``n`` samples of the model (the chains at beta = 1) after ``steps`` parallel-tempering
    steps from ``start`` ``(n, n_visible)`` (default: a draw of the base measure). During the
    first ``adapt_steps`` steps the ladder is re-spaced every ``adapt_every`` steps
    (:func:`adapt_ladder`) and the counters reset; the ladder then stays fixed. Returns the
    final state (counters: the steps after the last adaptation) and the ladders used."""
    n = _v.integer(n, "n", 1)
    steps = _v.integer(steps, "steps", 0)
    adapt_steps = _v.integer(adapt_steps, "adapt_steps", 0)
    adapt_every = _v.integer(adapt_every, "adapt_every", 1)
    p = model.weight
    if start is None:
        start = model.visible.sample(torch.zeros(n, model.n_visible, dtype=p.dtype,
                                                 device=p.device), generator,
                                     params=model.visible_params)
    state = init(model, start, betas, generator)
    ladders = [state.betas.tolist()]
    for i in range(steps):
        state, _ = step(model, state, generator)
        if i + 1 <= adapt_steps and (i + 1) % adapt_every == 0:
            state = reset_counts(state._replace(betas=adapt_ladder(
                state.betas, acceptance(state)).to(state.betas)))
            ladders.append(state.betas.tolist())
    return state, ladders
