"""The two-phase rule for fully connected Boltzmann machines (and stacks of them).

For a machine at temperature T whose visible units should reproduce a data distribution, the
gradient of the mean log-likelihood of the data with respect to a (tied, symmetric) weight
``w_ij = w_ji`` and a bias ``b_i`` is (Ackley, Hinton & Sejnowski 1985)::

    d/dw_ij = (<s_i s_j>_data - <s_i s_j>_model) / T
    d/db_i  = (<s_i>_data     - <s_i>_model)     / T

- positive phase ("data"): the visible units clamped to training examples (optionally with
  clamping noise), the hidden units at equilibrium given them (sequential Gibbs sweeps,
  optionally annealed, or a deterministic mean-field settling); statistics averaged over sweeps,
  chains and examples;
- negative phase ("model", "daydreaming"): every unit free, from fresh chains (random states,
  or the data) or from persistent chains kept across updates (Tieleman 2008).

:class:`TwoPhase` estimates both and returns the loss gradient ``{"weight", "bias"}`` (the
negative of the above, masked to the model's connections); the update rule
(:class:`~boltzkit.training.updates.SGD`, or :class:`~boltzkit.training.updates.SignStep` for
the 1985 fixed-size steps) turns it into a change. For a stack of R machines (weights
``(R, n, n)``) every statistic is per machine, and the same batch of data is clamped on each.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch

from ... import _validation as check
from ...samplers import sequential as sq
from .base import Estimator

__all__ = ["PhaseStatistics", "pair_statistics", "collect_statistics", "phase_gradient",
           "TwoPhase"]


class PhaseStatistics(NamedTuple):
    """Statistics of one phase: ``pairs`` = E[s sᵀ] ``(..., n, n)``, ``means`` = E[s]
    ``(..., n)``."""

    pairs: torch.Tensor
    means: torch.Tensor


def pair_statistics(states: torch.Tensor, weights: Optional[torch.Tensor] = None
                    ) -> PhaseStatistics:
    """E[s sᵀ] and E[s] over the chains (axis -2) of ``states`` ``(..., m, n)``; ``weights``
    ``(..., m)`` (summing to 1) weigh the rows, default uniform."""
    if weights is None:
        m = states.shape[-2]
        return PhaseStatistics(torch.matmul(states.transpose(-1, -2), states) / m,
                               states.mean(-2))
    ws = states * weights.unsqueeze(-1)
    return PhaseStatistics(torch.matmul(ws.transpose(-1, -2), states), ws.sum(-2))


@torch.no_grad()
def collect_statistics(model, state: sq.SequentialState, n_sweeps: int,
                       generator: Optional[torch.Generator] = None, **step_kwargs):
    """Run ``n_sweeps`` sweeps (keyword arguments go to :func:`sequential.step`) and average
    E[s sᵀ], E[s] over the states after each sweep and over the chains.

    Returns ``(PhaseStatistics, final state)``; with ``n_sweeps=0`` the statistics are those
    of the current states."""
    if n_sweeps == 0:
        return pair_statistics(state.states), state
    acc = None

    def add(st):
        nonlocal acc
        cur = pair_statistics(st.states)
        acc = cur if acc is None else PhaseStatistics(acc.pairs + cur.pairs,
                                                      acc.means + cur.means)

    state = sq.run(model, state, n_sweeps, generator, callback=add, **step_kwargs)
    return PhaseStatistics(acc.pairs / n_sweeps, acc.means / n_sweeps), state


def phase_gradient(model, positive: PhaseStatistics, negative: PhaseStatistics,
                   temperature: Optional[float] = None) -> dict:
    """Loss gradient ``{"weight", "bias"}`` = ``-(positive - negative) / T``, masked to the
    model's connections."""
    t = model.temperature if temperature is None else temperature
    gw = (negative.pairs - positive.pairs).mul_(model.mask).div_(t)
    return {"weight": gw, "bias": (negative.means - positive.means) / t}


def noisy_clamp(v: torch.Tensor, p_on_to_off: float, p_off_to_on: float,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``v`` (0/1 states, any shape) with every on unit turned off with probability
    ``p_on_to_off`` and every off unit on with probability ``p_off_to_on``, independently (the
    1985 procedure's noisy clamping)."""
    where = generator.device if generator is not None else v.device
    u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=where).to(v.device)
    return torch.where(v > 0.5, u >= p_on_to_off, u < p_off_to_on).to(v.dtype)


class TwoPhase(Estimator):
    """Estimate the loss gradient from a positive (clamped) and a negative (free) phase.

    Parameters
    ----------
    positive_settle, negative_settle : int
        Sweeps before statistics are collected, in each phase (at the model's temperature,
        after the annealing schedule if one is given).
    positive_collect, negative_collect : int
        Sweeps over which statistics are averaged (at least 1).
    schedule : sequence of (temperature, n_sweeps), optional
        Simulated annealing applied at the start of both phases (before the settling sweeps).
    persistent : bool
        Keep the negative chains from one update to the next (default) instead of starting
        fresh chains each time.
    n_chains : int, optional
        Number of negative chains (per machine of a stack; default: ``min(100, n_samples)``
        persistent, the batch size times ``chains_per_example`` fresh).
    negative_init : "random" or "data"
        Where fresh (and, the first time, persistent) negative chains start: random states, or
        rows of the data with random hidden units.
    chains_per_example : int
        Positive-phase chains per training example.
    clamp_noise : (p_on_to_off, p_off_to_on), optional
        Noisy clamping in the positive phase, drawn afresh for every chain and update (0.15 and
        0.05 in the 1985 encoder experiment).
    mean_field : bool
        Deterministic positive phase: hidden means by damped mean-field iteration
        (``mean_field_iters`` iterations, ``mean_field_damping``) instead of Gibbs sweeps;
        statistics μ_i μ_j. Without hidden-hidden connections, damping 1 gives the exact hidden
        means in one iteration.
    order, block_size
        Sweep order ("random", "fixed", "probes") and block size, see
        :mod:`boltzkit.samplers.sequential`.
    """

    state_type = sq.SequentialState

    def __init__(self, positive_settle: int = 5, positive_collect: int = 5,
                 negative_settle: int = 5, negative_collect: int = 5, *,
                 schedule: Optional[Sequence] = None, persistent: bool = True,
                 n_chains: Optional[int] = None, negative_init: str = "random",
                 chains_per_example: int = 1, clamp_noise: Optional[Sequence[float]] = None,
                 mean_field: bool = False, mean_field_iters: int = 50,
                 mean_field_damping: float = 0.5, order: str = "random",
                 block_size: int = 128):
        self.positive_settle = check.integer(positive_settle, "positive_settle")
        self.positive_collect = check.integer(positive_collect, "positive_collect", 1)
        self.negative_settle = check.integer(negative_settle, "negative_settle")
        self.negative_collect = check.integer(negative_collect, "negative_collect", 1)
        self.schedule = None if schedule is None else sq.check_schedule(schedule)
        self.persistent = check.boolean(persistent, "persistent")
        self.n_chains = None if n_chains is None else check.integer(n_chains, "n_chains", 1)
        if negative_init not in ("random", "data"):
            raise ValueError(f"negative_init: expected 'random' or 'data', got {negative_init!r}")
        self.negative_init = negative_init
        self.chains_per_example = check.integer(chains_per_example, "chains_per_example", 1)
        if clamp_noise is not None:
            try:
                a, b = clamp_noise
            except (TypeError, ValueError):
                raise ValueError(f"clamp_noise: expected (p_on_to_off, p_off_to_on), got "
                                 f"{clamp_noise!r}") from None
            clamp_noise = (check.probability(a, "clamp_noise"), check.probability(b, "clamp_noise"))
        self.clamp_noise = clamp_noise
        self.mean_field = check.boolean(mean_field, "mean_field")
        self.mean_field_iters = check.integer(mean_field_iters, "mean_field_iters", 1)
        self.mean_field_damping = check.real(mean_field_damping, "mean_field_damping", 0.0, 1.0,
                                             strict_minimum=True)
        if order not in sq.ORDERS:
            raise ValueError(f"order: expected one of {sq.ORDERS}, got {order!r}")
        self.order = order
        self.block_size = check.integer(block_size, "block_size", 1)

    def __repr__(self):
        return (f"TwoPhase(positive_settle={self.positive_settle}, "
                f"positive_collect={self.positive_collect}, "
                f"negative_settle={self.negative_settle}, "
                f"negative_collect={self.negative_collect}, schedule={self.schedule}, "
                f"persistent={self.persistent}, n_chains={self.n_chains}, "
                f"negative_init={self.negative_init!r}, "
                f"chains_per_example={self.chains_per_example}, "
                f"clamp_noise={self.clamp_noise}, mean_field={self.mean_field}, "
                f"order={self.order!r})")

    def check_model(self, model):
        from ...models import BoltzmannMachine

        if not isinstance(model, BoltzmannMachine):
            raise ValueError(f"model: the two-phase rule trains a BoltzmannMachine, got a "
                             f"{type(model).__name__}")

    def _settle_and_collect(self, model, state, settle, collect, clamp, generator):
        kw = {"clamp": clamp, "order": self.order, "block_size": self.block_size}
        if self.schedule:
            state = sq.anneal(model, state, self.schedule, generator, **kw)
        state = sq.run(model, state, settle, generator, **kw)
        return collect_statistics(model, state, collect, generator, **kw)

    def _fresh_chains(self, model, data, n, generator):
        if self.negative_init == "data":
            idx = torch.randint(0, data.shape[0], (n,), generator=generator,
                                device=generator.device if generator is not None else "cpu")
            return sq.states_with_visible(model, _per_machine(model, data[idx.to(data.device)]),
                                          generator)
        return sq.random_states(model, n, generator)

    def init_state(self, model, data: torch.Tensor, generator=None):
        """Persistent negative chains (``None`` when not persistent)."""
        if not self.persistent:
            return None
        n = self.n_chains or min(100, data.shape[0])
        machines = model.weight.shape[0] if model.weight.dim() == 3 else 1
        check.memory(4 * 4 * machines * n * model.n_units, f"n_chains {n}: the chains",
                     model.weight.device)
        return sq.init(model, self._fresh_chains(model, data, n, generator))

    def positive(self, model, v: torch.Tensor, generator=None) -> PhaseStatistics:
        """Positive-phase statistics for visible data ``v`` ``(batch, n_visible)``."""
        if self.chains_per_example > 1:
            v = v.repeat_interleave(self.chains_per_example, 0)
        v = _per_machine(model, v)
        if self.clamp_noise is not None:
            v = noisy_clamp(v, *self.clamp_noise, generator)
        if self.mean_field:
            lo, hi = model.values
            s0 = torch.cat([v, v.new_full((*v.shape[:-1], model.n_hidden), 0.5 * (lo + hi))],
                           -1)
            return pair_statistics(sq.mean_field(model, s0, clamp="visible",
                                                 n_iter=self.mean_field_iters,
                                                 damping=self.mean_field_damping))
        state = sq.init(model, sq.states_with_visible(model, v, generator))
        stats, _ = self._settle_and_collect(model, state, self.positive_settle,
                                            self.positive_collect, "visible", generator)
        return stats

    def negative(self, model, v: torch.Tensor, state=None, generator=None):
        """Negative-phase statistics and the (persistent) chains afterwards."""
        if self.persistent:
            if state is None:
                state = self.init_state(model, v, generator)
            else:
                state = sq.init(model, state.states)  # the weights changed: new fields
        else:
            n = self.n_chains or v.shape[0] * self.chains_per_example
            state = sq.init(model, self._fresh_chains(model, v, n, generator))
        stats, state = self._settle_and_collect(model, state, self.negative_settle,
                                                self.negative_collect, None, generator)
        return stats, (state if self.persistent else None)

    @torch.no_grad()
    def __call__(self, model, v: torch.Tensor, state=None,
                 generator: Optional[torch.Generator] = None):
        """Returns ``({"weight", "bias"}, state)`` for a batch ``v`` ``(batch, n_visible)``."""
        pos = self.positive(model, v, generator)
        neg, state = self.negative(model, v, state, generator)
        return phase_gradient(model, pos, neg), state


def _per_machine(model, v: torch.Tensor) -> torch.Tensor:
    """Visible rows ``(m, n_visible)`` as ``(R, m, n_visible)`` for a stack of R machines."""
    lead = model.weight.shape[:-2]
    return v.expand(*lead, *v.shape) if lead and v.dim() == 2 else v
