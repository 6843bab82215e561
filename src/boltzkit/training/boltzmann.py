"""Learning in fully connected Boltzmann machines: the two-phase rule.

For a machine at temperature T whose visible units should reproduce a data distribution, the
gradient of the mean log-likelihood of the data with respect to a (tied, symmetric) weight
``w_ij = w_ji`` and a bias ``b_i`` is (Ackley, Hinton & Sejnowski 1985)::

    d/dw_ij = (<s_i s_j>_data - <s_i s_j>_model) / T
    d/db_i  = (<s_i>_data     - <s_i>_model)     / T

- positive phase ("data"): the visible units clamped to training examples, the hidden units at
  equilibrium given them (sequential Gibbs sweeps, optionally annealed, or a deterministic
  mean-field settling); statistics averaged over sweeps, chains and examples;
- negative phase ("model"): every unit free, from fresh chains (random states, or the data)
  or from persistent chains kept across updates (Tieleman 2008); statistics averaged likewise.

:class:`TwoPhase` estimates both and returns the gradient of the *loss* (the negative mean
log-likelihood) in a :class:`BMGradient`; :func:`apply_update` turns it into a step, either
proportional (``Δw = lr (<s_i s_j>_data - <s_i s_j>_model)``, with momentum and weight decay) or
of fixed size in the direction of its sign (``Δw = ±step``, the 1985 procedure);
:func:`fit_boltzmann` is the driver (mini-batches, progress bar, history, callbacks).
:class:`ExactGradient` computes the same gradient by enumeration for tiny machines: the
reference the estimator is tested against.

Kept apart from :mod:`boltzkit.training.estimators`, whose estimators are for RBMs.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple, Optional, Sequence

import torch

from ..exact import boltzmann as exact_boltzmann
from ..samplers import sequential as sq
from .fit import Callback, FitState, make_schedule

__all__ = ["BMGradient", "PhaseStatistics", "pair_statistics", "collect_statistics",
           "statistics_gradient", "TwoPhase", "ExactGradient", "apply_update", "fit_boltzmann"]


class BMGradient(NamedTuple):
    """Gradient of the loss (negative mean log-likelihood).

    weight : ``(n, n)``, symmetric, zero off the model's mask (derivative with respect to the
        tied weight w_ij = w_ji)
    bias : ``(n,)``
    """

    weight: torch.Tensor
    bias: torch.Tensor


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


def _mean_field_statistics(mu: torch.Tensor) -> PhaseStatistics:
    """Factorised statistics of mean-field means ``(..., m, n)``: E[s_i s_j] ≈ μ_i μ_j for
    i ≠ j (the diagonal is not used by any weight)."""
    return pair_statistics(mu)


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


def statistics_gradient(model, positive: PhaseStatistics, negative: PhaseStatistics,
                        temperature: Optional[float] = None) -> BMGradient:
    """Loss gradient ``-(positive - negative) / T``, masked to the model's connections."""
    t = model.temperature if temperature is None else temperature
    gw = (negative.pairs - positive.pairs).mul_(model.mask).div_(t)
    return BMGradient(gw, (negative.means - positive.means) / t)


def _check_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


class TwoPhase:
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
        Number of negative chains (default: the batch size).
    negative_init : "random" or "data"
        Where fresh (and, the first time, persistent) negative chains start: random states, or
        the batch's visible data with random hidden units.
    chains_per_example : int
        Positive-phase chains per training example.
    mean_field : bool
        Deterministic positive phase: hidden means by damped mean-field iteration
        (``mean_field_iters`` iterations) instead of Gibbs sweeps; statistics μ_i μ_j.
    order, block_size
        Sweep order ("random", "fixed", "probes") and block size, see
        :mod:`boltzkit.samplers.sequential`.
    """

    def __init__(self, positive_settle: int = 5, positive_collect: int = 5,
                 negative_settle: int = 5, negative_collect: int = 5, *,
                 schedule: Optional[Sequence] = None, persistent: bool = True,
                 n_chains: Optional[int] = None, negative_init: str = "random",
                 chains_per_example: int = 1, mean_field: bool = False,
                 mean_field_iters: int = 50, order: str = "random", block_size: int = 128):
        self.positive_settle = _check_int(positive_settle, "positive_settle")
        self.positive_collect = _check_int(positive_collect, "positive_collect", 1)
        self.negative_settle = _check_int(negative_settle, "negative_settle")
        self.negative_collect = _check_int(negative_collect, "negative_collect", 1)
        self.schedule = None if schedule is None else sq.check_schedule(schedule)
        self.persistent = bool(persistent)
        if n_chains is not None:
            _check_int(n_chains, "n_chains", 1)
        self.n_chains = n_chains
        if negative_init not in ("random", "data"):
            raise ValueError(f"negative_init: expected 'random' or 'data', got {negative_init!r}")
        self.negative_init = negative_init
        self.chains_per_example = _check_int(chains_per_example, "chains_per_example", 1)
        self.mean_field = bool(mean_field)
        self.mean_field_iters = _check_int(mean_field_iters, "mean_field_iters", 1)
        if order not in sq.ORDERS:
            raise ValueError(f"order: expected one of {sq.ORDERS}, got {order!r}")
        self.order = order
        self.block_size = _check_int(block_size, "block_size", 1)

    def __repr__(self):
        return (f"TwoPhase(positive_settle={self.positive_settle}, "
                f"positive_collect={self.positive_collect}, "
                f"negative_settle={self.negative_settle}, "
                f"negative_collect={self.negative_collect}, schedule={self.schedule}, "
                f"persistent={self.persistent}, n_chains={self.n_chains}, "
                f"negative_init={self.negative_init!r}, mean_field={self.mean_field}, "
                f"order={self.order!r})")

    def _kwargs(self, clamp):
        return {"clamp": clamp, "order": self.order, "block_size": self.block_size}

    def _settle_and_collect(self, model, state, settle, collect, clamp, generator):
        kw = self._kwargs(clamp)
        if self.schedule:
            state = sq.anneal(model, state, self.schedule, generator, **kw)
        state = sq.run(model, state, settle, generator, **kw)
        return collect_statistics(model, state, collect, generator, **kw)

    def _fresh_chains(self, model, data, n, generator):
        if self.negative_init == "data":
            idx = torch.randint(0, data.shape[0], (n,), generator=generator,
                                device=generator.device if generator is not None else "cpu")
            return sq.states_with_visible(model, data[idx.to(data.device)], generator)
        return sq.random_states(model, n, generator)

    def init_state(self, model, data: torch.Tensor, generator=None):
        """Persistent negative chains (``None`` when not persistent)."""
        if not self.persistent:
            return None
        n = self.n_chains or min(100, data.shape[0])
        return sq.init(model, self._fresh_chains(model, data, n, generator))

    def positive(self, model, v: torch.Tensor, generator=None) -> PhaseStatistics:
        """Positive-phase statistics for visible data ``v`` ``(batch, n_visible)``."""
        if self.chains_per_example > 1:
            v = v.repeat_interleave(self.chains_per_example, 0)
        if self.mean_field:
            lo, hi = model.values
            s0 = torch.cat([v, v.new_full((v.shape[0], model.n_hidden), 0.5 * (lo + hi))], -1)
            mu = sq.mean_field(model, s0, clamp="visible", n_iter=self.mean_field_iters)
            return _mean_field_statistics(mu)
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
            state = sq.init(model, self._fresh_chains(model, v, self.n_chains or v.shape[0],
                                                      generator))
        stats, state = self._settle_and_collect(model, state, self.negative_settle,
                                                self.negative_collect, None, generator)
        return stats, (state if self.persistent else None)

    @torch.no_grad()
    def __call__(self, model, v: torch.Tensor, state=None,
                 generator: Optional[torch.Generator] = None):
        """Returns ``(BMGradient, state)`` for a batch ``v`` ``(batch, n_visible)``."""
        pos = self.positive(model, v, generator)
        neg, state = self.negative(model, v, state, generator)
        return statistics_gradient(model, pos, neg), state


class ExactGradient:
    """The exact loss gradient by enumerating every state (machines of up to ~20 units)."""

    def init_state(self, model, data, generator=None):
        return None

    @torch.no_grad()
    def __call__(self, model, v, state=None, generator=None):
        pp, pm = exact_boltzmann.clamped_pair_expectations(model, v)
        fp, fm = exact_boltzmann.pair_expectations(model)
        dt = model.weight.dtype
        pos = PhaseStatistics(pp.to(dt), pm.to(dt))
        neg = PhaseStatistics(fp.to(dt), fm.to(dt))
        return statistics_gradient(model, pos, neg), state

    def __repr__(self):
        return "ExactGradient()"


RULES = ("proportional", "sign")


@torch.no_grad()
def apply_update(model, grad: BMGradient, *, rule: str = "proportional", lr: float = 0.01,
                 momentum: float = 0.0, weight_decay: float = 0.0, step_size: float = 2.0,
                 velocity: Optional[BMGradient] = None) -> Optional[BMGradient]:
    """Change the model's weights and biases against the loss gradient, in place.

    ``rule="proportional"``: ``v ← momentum v - lr (grad + weight_decay W)``, ``W ← W + v``
    (biases without decay). ``rule="sign"``: every connected weight and every bias moves by
    ``step_size`` in the direction of ``-sign(grad)`` (no move where the statistics are equal),
    after a decay ``W ← (1 - weight_decay) W``. The weights are then put back on the model's
    structure (:meth:`BoltzmannMachine.constrain_`). Returns the new velocity (proportional
    rule) so that the caller can pass it back next time."""
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    w, b = model.weight, model.bias
    if rule == "sign":
        if weight_decay:
            w.mul_(1.0 - weight_decay)
        w.sub_(torch.sign(grad.weight) * model.mask, alpha=step_size)
        b.sub_(torch.sign(grad.bias), alpha=step_size)
        model.constrain_()
        return None
    gw = grad.weight + weight_decay * w * model.mask if weight_decay else grad.weight
    if velocity is None or momentum == 0.0:
        vw, vb = -lr * gw, -lr * grad.bias
    else:
        vw = momentum * velocity.weight - lr * gw
        vb = momentum * velocity.bias - lr * grad.bias
    w.add_(vw)
    b.add_(vb)
    model.constrain_()
    return BMGradient(vw, vb)


class _Progress(Callback):
    def __init__(self, total: int, epochs: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="batch", dynamic_ncols=True)
        self.epochs = epochs
        self.bar.set_description(f"epoch 1/{epochs}")

    def on_epoch_end(self, state):
        h = state.history[-1]
        self.bar.set_description(f"epoch {min(state.epoch + 1, self.epochs)}/{self.epochs}")
        post = f"|Δ| {h['mean_abs_difference']:.4f}"
        if "exact_loglik" in h:
            post += f" loglik {h['exact_loglik']:.4f}"
        self.bar.set_postfix_str(post)

    def on_fit_end(self, state):
        self.bar.close()


def fit_boltzmann(model, data: torch.Tensor, *, estimator=None, epochs: int = 10,
                  batch_size: int = 100, rule: str = "proportional", lr: float = 0.01,
                  momentum: float = 0.0, weight_decay: float = 0.0, step_size: float = 2.0,
                  lr_schedule="constant", init_visible_bias: bool = False,
                  generator: Optional[torch.Generator] = None,
                  callbacks: Sequence[Callback] = (), progress: bool = False,
                  exact_monitor: Optional[bool] = None) -> FitState:
    """Train a :class:`~boltzkit.models.boltzmann.BoltzmannMachine` on visible data in place.

    Parameters
    ----------
    data : ``(n_samples, n_visible)``, values on the units' support (0/1 or ±1)
    estimator : TwoPhase or ExactGradient, default ``TwoPhase()``
    epochs, batch_size : int
        Passes over the shuffled data, rows per update.
    rule, lr, momentum, weight_decay, step_size
        See :func:`apply_update`; ``lr_schedule`` scales ``lr`` (and ``step_size``) over
        training ("constant", "linear", "cosine" or a callable of progress in [0, 1)).
    init_visible_bias : bool
        Start the visible biases at the data's base rates.
    generator : torch.Generator
        All randomness; equal seeds give equal models on the CPU.
    callbacks, progress
        :class:`~boltzkit.training.fit.Callback` objects; a tqdm progress bar.
    exact_monitor : bool, optional
        Record the exact mean log-likelihood of the data each epoch (default: when the machine
        has at most 16 units).

    Returns the :class:`~boltzkit.training.fit.FitState`; ``history`` holds per epoch
    ``epoch``, ``seconds`` (cumulative training time), ``lr``, ``mean_abs_difference`` (mean
    |<s_i s_j>_data - <s_i s_j>_model| over connected pairs, averaged over the epoch's batches)
    and, when monitored, ``exact_loglik``.
    """
    _check_int(epochs, "epochs", 1)
    _check_int(batch_size, "batch_size", 1)
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay),
                        ("step_size", step_size)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
    if rule not in RULES:
        raise ValueError(f"rule: expected one of {RULES}, got {rule!r}")
    data = model.check_visible(data, "data")
    estimator = estimator or TwoPhase()
    schedule = make_schedule(lr_schedule)
    if generator is None:
        generator = torch.Generator(device=data.device)
        generator.manual_seed(0)
    if exact_monitor is None:
        exact_monitor = model.n_units <= 16
    n = data.shape[0]
    n_batches = math.ceil(n / batch_size)
    if init_visible_bias:
        model.init_visible_bias(data)
    model.constrain_()
    state = FitState(model=model, epochs=epochs)
    cbs = list(callbacks)
    if progress:
        cbs.insert(0, _Progress(epochs * n_batches, epochs))
    n_pairs = max(float(model.mask.sum()), 1.0)
    velocity = None
    with torch.no_grad():
        state.chains = estimator.init_state(model, data, generator)
        for cb in cbs:
            cb.on_fit_start(state)
        seconds = 0.0
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=generator, device=generator.device)
                perm = perm.to(data.device)
                diff = 0.0
                for bi in range(n_batches):
                    scale = schedule((epoch * n_batches + bi) / (epochs * n_batches))
                    batch = data.index_select(0, perm[bi * batch_size:(bi + 1) * batch_size])
                    grad, state.chains = estimator(model, batch, state.chains, generator)
                    diff += float(grad.weight.abs().sum()) / n_pairs * model.temperature
                    velocity = apply_update(model, grad, rule=rule, lr=lr * scale,
                                            momentum=momentum, weight_decay=weight_decay,
                                            step_size=step_size * scale, velocity=velocity)
                    if progress:
                        cbs[0].bar.update(1)
                seconds += time.perf_counter() - t0
                state.epoch = epoch + 1
                record = {"epoch": epoch + 1, "seconds": seconds, "lr": lr * scale,
                          "mean_abs_difference": diff / n_batches}
                if exact_monitor:
                    record["exact_loglik"] = float(
                        exact_boltzmann.log_likelihood(model, data).mean())
                state.history.append(record)
                if not (torch.isfinite(model.weight).all() and torch.isfinite(model.bias).all()):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch + 1}: weights became NaN or inf "
                        f"(lower lr, currently {lr})")
                for cb in cbs:
                    cb.on_epoch_end(state)
                if state.stop:
                    break
        except KeyboardInterrupt:
            state.interrupted = True
        finally:
            for cb in cbs:
                cb.on_fit_end(state)
    return state
