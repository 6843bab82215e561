"""Sequential Gibbs sampling for fully connected Boltzmann machines (BlackJAX style).

>>> state = sequential.init(bm, sequential.random_states(bm, 100, generator))
>>> for _ in range(n_sweeps):
...     state = sequential.step(bm, state, generator)

In a fully connected machine every unit depends on every other, so units are updated one at a
time: a *sweep* visits every free (unclamped) unit once, and unit i becomes "on" with probability
``σ(c ΔE_i / T)`` given the current states of all the others (``c = 1`` for 0/1 units, ``c = 2``
for ±1 units, whose gap between off and on is twice the field). Many chains (the rows of the
state) are updated at once.

A :class:`SequentialState` holds the chains' states and their local fields ``b + s W``; every
step keeps the fields current, so a sweep never recomputes them from scratch. (Change the
weights, e.g. between learning updates, and the fields must be recomputed: call :func:`init`.)

How a sweep is made fast without changing what it computes
----------------------------------------------------------
Done naively (:func:`naive_step`), a sweep is n small matrix-vector products, each paying the
interpreter's overhead. :func:`step` produces exactly the same chain, with the same random
numbers the same states, and works like this:

- All random numbers of a sweep are drawn in bulk: one uniform ``u`` per chain and unit. The
  update "on iff u < σ(c f / T)" is the same as "on iff f > θ" with the threshold
  ``θ = (T / c) logit(u)``, so the sweep needs no transcendental function per unit.
- The free units are cut into blocks of ``block_size`` (default 128). Within a block units are
  updated one by one, but only the block's own fields are kept current, through the block's
  small ``k × k`` sub-matrix: the field of the j-th unit of the block is its field at the start
  of the block plus ``sum_{l<j} w_{jl} (s_l^new - s_l^old)``. After the block, every unit's field
  is corrected for the block's changes with one matrix product ``ΔS_block W_block,:``, so over a
  sweep the corrections add up to one ``(m × n) @ (n × n)`` product done in pieces.
- On the CPU the per-unit work inside a block is two numpy calls (a matrix-vector product over
  the block's earlier units and a comparison) on views of the same memory, made once per sweep;
  numpy's per-call overhead is a few times lower than torch's for such small arrays. On other
  devices the same loop runs in torch (correct, but a kernel launch per call makes it slow).

Orders: ``"fixed"`` (units in index order), ``"random"`` (a fresh random order every sweep: the
blocks in random order and the units of each block in random order; the order is drawn
independently of the states, so every single-unit update keeps the Boltzmann distribution
invariant and so does the sweep) and ``"probes"`` (Ackley, Hinton & Sejnowski's time unit: as
many probes as free units, each chain probing units chosen uniformly at random with replacement,
independently of the other chains; no blocking, meant for small machines).

Stacks of independent machines: ``model`` may be any object with ``weight``, ``bias``, ``units``
and ``temperature``; when ``weight`` has shape ``(R, n, n)`` (and ``bias`` ``(R, n)``), states of
shape ``(R, m, n)`` hold ``m`` chains of each of the R machines (used to run hundreds of small
networks at once, as in the encoder experiment).

Clamping: ``clamp`` is ``None`` (all units free), ``"visible"`` (the first ``n_visible`` units
held, as in the positive phase) or a bool tensor ``(n,)`` of units held at their current values.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from .. import _validation as _v

__all__ = ["SequentialState", "init", "step", "naive_step", "run", "anneal", "random_states",
           "states_with_visible", "mean_field", "check_schedule", "free_units", "ORDERS"]

ORDERS = ("fixed", "random", "probes")

Clamp = Union[None, str, torch.Tensor]


class SequentialState(NamedTuple):
    """Chains of a sequential sampler.

    states : ``(m, n)`` (or ``(R, m, n)`` for a stack of machines), values on the units' support
    fields : same shape, the local fields ``b + s W`` of every unit, kept current by each step
    """

    states: torch.Tensor
    fields: torch.Tensor


# -- helpers ------------------------------------------------------------------------------------
class _Params(NamedTuple):
    weight: torch.Tensor
    bias: torch.Tensor
    temperature: float
    lo: float
    hi: float
    c: float


def _params(model, temperature) -> _Params:
    if not all(hasattr(model, a) for a in ("weight", "bias", "units", "temperature")):
        raise ValueError(f"model: sequential Gibbs sampling runs Boltzmann machines, got a "
                         f"{type(model).__name__}")
    t = model.temperature if temperature is None else temperature
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise ValueError(f"temperature: expected a finite number > 0, got {t!r}")
    name = model.units.name
    if name == "bernoulli":
        lo, hi, c = 0.0, 1.0, 1.0
    elif name == "spin":
        lo, hi, c = -1.0, 1.0, 2.0
    else:
        raise ValueError(f"model.units: sequential Gibbs sampling needs binary units "
                         f"(bernoulli or spin), got {name!r}")
    return _Params(model.weight.detach(), model.bias.detach(), float(t), lo, hi, c)


def free_units(model, clamp: Clamp, device=None) -> torch.Tensor:
    """Indices of the units a sweep updates (those not clamped), int64 on the CPU."""
    n = model.weight.shape[-1]
    if clamp is None:
        return torch.arange(n)
    if isinstance(clamp, str):
        if clamp != "visible":
            raise ValueError(f"clamp: expected None, 'visible' or a bool tensor of shape ({n},), "
                             f"got {clamp!r}")
        return torch.arange(model.n_visible, n)
    if not torch.is_tensor(clamp) or clamp.shape != (n,) or clamp.dtype != torch.bool:
        got = (f"{clamp.dtype} tensor of shape {tuple(clamp.shape)}" if torch.is_tensor(clamp)
               else type(clamp).__name__)
        raise ValueError(f"clamp: expected None, 'visible' or a bool tensor of shape ({n},), "
                         f"got {got}")
    return torch.nonzero(~clamp.cpu()).flatten()


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected a positive integer, got {block_size!r}")
    return block_size


def _rand_device(generator, fallback):
    return generator.device if generator is not None else fallback


def _thresholds(shape, p: _Params, generator, dtype, device) -> torch.Tensor:
    """θ = (T / c) logit(u), u ~ U[0, 1): "on iff field > θ" has probability σ(c field / T)."""
    u = torch.rand(shape, generator=generator, dtype=dtype,
                   device=_rand_device(generator, device)).to(device)
    return torch.logit(u).mul_(p.temperature / p.c)


class _Block(NamedTuple):
    units: torch.Tensor  # int64 (k,), the units in update order
    start: int  # when the units are a permutation of range(start, start + k): start, else -1
    restore: Optional[torch.Tensor]  # index putting the block's rows back in ascending order


def _plan(free: torch.Tensor, order: str, block_size: int, generator) -> list:
    """The blocks of one sweep, in update order (random orders drawn from ``generator``)."""
    blocks = list(torch.split(free, block_size))
    if order == "random" and len(blocks) > 1:
        perm = torch.randperm(len(blocks), generator=generator,
                              device=_rand_device(generator, "cpu")).tolist()
        blocks = [blocks[i] for i in perm]
    plan = []
    for blk in blocks:
        k = blk.shape[0]
        start = int(blk[0]) if int(blk[-1]) - int(blk[0]) == k - 1 else -1
        restore = None
        if order == "random" and k > 1:
            local = torch.randperm(k, generator=generator,
                                   device=_rand_device(generator, "cpu")).cpu()
            blk = blk[local]
            restore = torch.argsort(local)
        plan.append(_Block(blk, start, restore))
    return plan


try:  # numpy's BLAS must not start threads for the tiny products of the per-unit loop
    from threadpoolctl import ThreadpoolController as _Controller

    _CONTROLLER = _Controller()
except Exception:  # pragma: no cover - threadpoolctl is a scikit-learn dependency
    _CONTROLLER = None


class _OneBlasThread:
    def __enter__(self):
        self.limiter = None
        if _CONTROLLER is not None:
            try:
                self.limiter = _CONTROLLER.limit(limits=1, user_api="blas")
            except Exception:  # pragma: no cover
                self.limiter = None
        return self

    def __exit__(self, *exc):
        if self.limiter is not None:
            self.limiter.restore_original_limits()
        return False


def _loop_views(wb: np.ndarray, g: np.ndarray, out: np.ndarray) -> list:
    """Per-unit views of the block workspaces, made once per sweep: the loop then does no
    slicing. 2-D workspaces use ``np.dot`` (a matrix-vector product), stacks ``np.matmul``."""
    k = wb.shape[-1]
    if wb.ndim == 2:
        return [(wb[j, :j], out[:j], g[j], out[j]) for j in range(k)]
    return [(wb[..., j:j + 1, :j], out[..., :j, :], g[..., j:j + 1, :], out[..., j:j + 1, :])
            for j in range(k)]


def _block_loop_numpy(views: list, k: int, stacked: bool) -> None:
    """Sequential decisions inside one block (see the module docstring): unit j of the block
    is on iff ``sum_{l<j} wb[j, l] new_l > g_j``, where ``wb`` is the scaled block sub-matrix
    (rows in update order) and ``g`` the thresholds minus the fields at the start of the block,
    corrected for the old states; ``new`` rows are written into the ``out`` workspace."""
    gt = np.greater
    prod = np.matmul if stacked else np.dot
    for w, prev, g, o in views[:k]:
        gt(prod(w, prev), g, o)


def _block_loop_torch(wb: torch.Tensor, g: torch.Tensor, out: torch.Tensor, k: int) -> None:
    for j in range(k):
        torch.gt(torch.matmul(wb[..., j:j + 1, :j], out[..., :j, :]), g[..., j:j + 1, :],
                 out=out[..., j:j + 1, :])


def _cols(x: torch.Tensor, blk: "_Block", units: torch.Tensor) -> torch.Tensor:
    """``x[..., units]``: a view when the block is a contiguous range in ascending order."""
    if blk.start >= 0 and blk.restore is None:
        return x.narrow(-1, blk.start, units.shape[0])
    return x.index_select(-1, units)


def _rows(w: torch.Tensor, units: torch.Tensor, start: int) -> torch.Tensor:
    """``w[..., units, :]``, a view when the units are a contiguous range."""
    if start >= 0:
        return w.narrow(-2, start, units.shape[0])
    return w.index_select(-2, units.to(w.device))


# -- public functions ---------------------------------------------------------------------------
def random_states(model, n_chains: int, generator: Optional[torch.Generator] = None,
                  p_on: float = 0.5) -> torch.Tensor:
    """Independent random states, each unit on with probability ``p_on``: shape
    ``(n_chains, n)`` (``(R, n_chains, n)`` for a stack of R machines)."""
    n_chains = _v.integer(n_chains, "n_chains", 1)
    p_on = _v.probability(p_on, "p_on")
    p = _params(model, None)
    w = p.weight
    shape = (*w.shape[:-2], n_chains, w.shape[-1])
    u = torch.rand(shape, generator=generator, dtype=w.dtype,
                   device=_rand_device(generator, w.device)).to(w.device)
    return (u < p_on).to(w.dtype) * (p.hi - p.lo) + p.lo


def states_with_visible(model, v: torch.Tensor, generator: Optional[torch.Generator] = None,
                        p_on: float = 0.5) -> torch.Tensor:
    """Joint states whose visible units are ``v`` ``(m, n_visible)`` (or ``(R, m, n_visible)``)
    and whose hidden units are random (on with probability ``p_on``): shape ``(..., m, n)``."""
    p = _params(model, None)
    n = p.weight.shape[-1]
    nv = v.shape[-1]
    hid_shape = (*v.shape[:-1], n - nv)
    u = torch.rand(hid_shape, generator=generator, dtype=p.weight.dtype,
                   device=_rand_device(generator, p.weight.device)).to(p.weight.device)
    h = (u < p_on).to(p.weight.dtype) * (p.hi - p.lo) + p.lo
    return torch.cat([v.to(p.weight.device, p.weight.dtype), h], dim=-1)


@torch.no_grad()
def init(model, states: torch.Tensor, generator: Optional[torch.Generator] = None
         ) -> SequentialState:
    """Start chains at ``states`` ``(m, n)`` (``(R, m, n)`` for a stack): computes the fields.

    ``generator`` is accepted for symmetry with the other samplers and not used."""
    p = _params(model, None)
    n = p.weight.shape[-1]
    lead = p.weight.shape[:-2]
    if not torch.is_tensor(states) or states.dim() != len(lead) + 2 or states.shape[-1] != n \
            or tuple(states.shape[:len(lead)]) != tuple(lead):
        want = ", ".join(str(d) for d in (*lead, "m", n))
        got = tuple(states.shape) if torch.is_tensor(states) else type(states).__name__
        raise ValueError(f"states: expected shape ({want}), got {got}")
    if states.shape[-2] == 0:
        raise ValueError("states: expected at least one chain, got none")
    s = states.to(p.weight.device, p.weight.dtype)
    model.units.check(s, "states")
    fields = torch.matmul(s, p.weight) + p.bias.unsqueeze(-2)
    return SequentialState(s.clone(), fields)


@torch.no_grad()
def step(model, state: SequentialState, generator: Optional[torch.Generator] = None, *,
         clamp: Clamp = None, temperature: Optional[float] = None, order: str = "random",
         block_size: int = 128) -> SequentialState:
    """One sweep: every free unit updated once, one at a time (see the module docstring).

    Parameters
    ----------
    model : BoltzmannMachine (or a stack, see the module docstring)
    state : SequentialState with fields current for ``model``
    generator : torch.Generator
        All randomness of the sweep (the order and one uniform per chain and unit).
    clamp : None, "visible" or bool tensor ``(n,)``
        Units held at their current values.
    temperature : float, optional
        Sampling temperature (default: ``model.temperature``).
    order : "fixed", "random" or "probes"
    block_size : int
        Units per block (a speed setting; the distribution does not depend on it).

    Returns a new :class:`SequentialState` (the input is not modified).
    """
    _check_order(order)
    _check_block_size(block_size)
    if not isinstance(state, SequentialState):
        raise ValueError(f"state: expected a SequentialState (what sequential.init returns), "
                         f"got {type(state).__name__}")
    p = _params(model, temperature)
    free = free_units(model, clamp)
    if order == "probes":
        return _probe_sweep(p, state, free, generator)
    s, f = state.states, state.fields
    if free.numel() == 0:  # everything clamped (a machine without hidden units, say)
        return SequentialState(s.clone(), f.clone())
    theta = _thresholds(s.shape, p, generator, s.dtype, s.device)
    plan = _plan(free, order, block_size, generator)
    return _blocked_sweep(p, s, f, theta, plan, block_size)


def _blocked_sweep(p: _Params, s, f, theta, plan, block_size) -> SequentialState:
    scale = p.hi - p.lo
    w = p.weight
    lead = s.shape[:-2]
    m = s.shape[-2]
    f = f.clone()
    s01 = (s - p.lo) / scale if p.lo != 0.0 or scale != 1.0 else s.clone()
    kmax = max((b.units.shape[0] for b in plan), default=0)
    wb = torch.empty((*lead, kmax, kmax), dtype=w.dtype, device=w.device)
    g = torch.empty((*lead, kmax, m), dtype=w.dtype, device=w.device)
    out = torch.empty((*lead, kmax, m), dtype=w.dtype, device=w.device)
    use_numpy = s.device.type == "cpu"
    if use_numpy:
        views = _loop_views(wb.numpy(), g.numpy(), out.numpy())
        stacked = wb.dim() > 2
    guard = _OneBlasThread() if use_numpy else None
    if guard is not None:
        guard.__enter__()
    try:
        for blk in plan:
            units = blk.units.to(s.device)
            k = units.shape[0]
            if blk.start >= 0:  # a contiguous range, maybe in a random order within
                sub = w.narrow(-2, blk.start, k).narrow(-1, blk.start, k)
                if blk.restore is not None:
                    local = units - blk.start
                    sub = sub.index_select(-2, local).index_select(-1, local)
            else:
                sub = w.index_select(-2, units).index_select(-1, units)  # (..., k, k)
            torch.mul(sub, scale, out=wb[..., :k, :k])
            old = _cols(s01, blk, units).transpose(-1, -2)  # (..., k, m)
            # thresholds minus the fields at the start of the block, plus the old states'
            # part of the within-block correction (so that the loop needs only new states)
            gk = g[..., :k, :]
            torch.sub(_cols(theta, blk, units).transpose(-1, -2),
                      _cols(f, blk, units).transpose(-1, -2), out=gk)
            gk.add_(torch.matmul(torch.tril(wb[..., :k, :k], -1), old))
            if use_numpy:
                _block_loop_numpy(views, k, stacked)
            else:
                _block_loop_torch(wb, g, out, k)
            new = out[..., :k, :]
            delta = new - old  # (..., k, m) in 0/1 units
            if blk.restore is not None and blk.start >= 0:
                delta = delta.index_select(-2, blk.restore.to(s.device))
                rows = _rows(w, units, blk.start)
            elif blk.start >= 0 and blk.restore is None:
                rows = _rows(w, units, blk.start)
            else:
                rows = w.index_select(-2, units)
            dt = delta.transpose(-1, -2)
            if dt.dim() == 2:
                f.addmm_(dt, rows, alpha=scale)
            else:
                f.baddbmm_(dt, rows, alpha=scale)
            s01.index_copy_(-1, units, new.transpose(-1, -2))
    finally:
        if guard is not None:
            guard.__exit__(None, None, None)
    states = s01 if (p.lo == 0.0 and scale == 1.0) else s01.mul_(scale).add_(p.lo)
    return SequentialState(states, f)


def _probe_sweep(p: _Params, state: SequentialState, free: torch.Tensor, generator
                 ) -> SequentialState:
    """n_free probes, each chain probing its own uniformly random free unit each time."""
    s, f = state.states, state.fields
    w = p.weight
    scale = p.hi - p.lo
    lead = s.shape[:-1]  # (..., m)
    n_probes = free.shape[0]
    if n_probes == 0:
        return SequentialState(s.clone(), f.clone())
    pick = torch.randint(n_probes, (n_probes, *lead), generator=generator,
                         device=_rand_device(generator, s.device)).to(s.device)
    units = free.to(s.device)[pick]  # (P, ..., m)
    theta = _thresholds((n_probes, *lead), p, generator, s.dtype, s.device)
    s01 = ((s - p.lo) / scale).clone()
    f = f.clone()
    if w.dim() == 3:
        r = torch.arange(w.shape[0], device=s.device).view(-1, *([1] * (len(lead) - 1)))
    for t in range(n_probes):
        i = units[t].unsqueeze(-1)  # (..., m, 1)
        new = (f.gather(-1, i) > theta[t].unsqueeze(-1)).to(s.dtype)
        d = (new - s01.gather(-1, i)).mul_(scale)  # (..., m, 1)
        s01.scatter_(-1, i, new)
        rows = w[units[t]] if w.dim() == 2 else w[r, units[t]]  # (..., m, n)
        f.addcmul_(d, rows)
    return SequentialState(s01.mul_(scale).add_(p.lo), f)


@torch.no_grad()
def naive_step(model, state: SequentialState, generator: Optional[torch.Generator] = None, *,
               clamp: Clamp = None, temperature: Optional[float] = None, order: str = "random",
               block_size: int = 128) -> SequentialState:
    """The reference sweep: one unit at a time, each field recomputed from all the states.

    Consumes the generator exactly as :func:`step` does (for ``"fixed"`` and ``"random"``
    orders, with the same ``block_size``, which there only shapes the random order), so with
    equal seeds both give the same states: the test that the fast sweep changes nothing.
    Slow (n matrix-vector products per sweep): for tests and the speed benchmark's contrast.
    """
    _check_order(order)
    if order == "probes":
        raise ValueError("order: naive_step implements 'fixed' and 'random', got 'probes'")
    _check_block_size(block_size)
    p = _params(model, temperature)
    free = free_units(model, clamp)
    s = state.states.clone()
    theta = _thresholds(s.shape, p, generator, s.dtype, s.device)
    plan = _plan(free, order, block_size, generator)
    w, b = p.weight, p.bias
    for blk in plan:
        for i in blk.units.tolist():
            field = torch.matmul(s, w[..., :, i:i + 1])[..., 0] + b[..., i, None]
            on = field > theta[..., i]
            s[..., i] = torch.where(on, p.hi, p.lo).to(s.dtype)
    return SequentialState(s, torch.matmul(s, w) + b.unsqueeze(-2))


def run(model, state: SequentialState, n_sweeps: int,
        generator: Optional[torch.Generator] = None, *, callback: Optional[Callable] = None,
        refresh_every: int = 100, **step_kwargs) -> SequentialState:
    """``n_sweeps`` applications of :func:`step` (keyword arguments passed on).

    ``callback(state)`` is called after every sweep (to collect statistics). The fields are
    recomputed from the states every ``refresh_every`` sweeps so that rounding errors of the
    incremental updates cannot accumulate over long runs."""
    n_sweeps = _v.integer(n_sweeps, "n_sweeps", 0)
    for k in range(n_sweeps):
        state = step(model, state, generator, **step_kwargs)
        if refresh_every and (k + 1) % refresh_every == 0:
            state = init(model, state.states)
        if callback is not None:
            callback(state)
    return state


def check_schedule(schedule) -> list:
    """Validate an annealing schedule: a sequence of ``(temperature, n_sweeps)`` pairs with
    temperature > 0 and n_sweeps >= 0 (e.g. ``[(20, 2), (15, 2), (12, 2), (10, 4)]``)."""
    pairs = []
    try:
        for t, k in schedule:
            t = float(t)
            ok = math.isfinite(t) and t > 0 and not isinstance(k, bool) and float(k) == int(k) \
                and int(k) >= 0
            if not ok:
                raise ValueError
            pairs.append((t, int(k)))
    except (TypeError, ValueError):
        raise ValueError(f"schedule: expected a sequence of (temperature > 0, n_sweeps >= 0) "
                         f"pairs, got {schedule!r}") from None
    return pairs


def anneal(model, state: SequentialState, schedule: Sequence,
           generator: Optional[torch.Generator] = None, *, callback: Optional[Callable] = None,
           **step_kwargs) -> SequentialState:
    """Simulated annealing: for each ``(temperature, n_sweeps)`` of ``schedule`` in turn,
    ``n_sweeps`` sweeps at that temperature. ``callback(state, temperature)`` after each
    sweep. Keyword arguments (``clamp``, ``order``, ``block_size``) go to :func:`step`."""
    if "temperature" in step_kwargs:
        raise ValueError("temperature: anneal takes its temperatures from the schedule")
    for t, k in check_schedule(schedule):
        for _ in range(k):
            state = step(model, state, generator, temperature=t, **step_kwargs)
            if callback is not None:
                callback(state, t)
    return state


@torch.no_grad()
def mean_field(model, states: torch.Tensor, *, clamp: Clamp = "visible",
               temperature: Optional[float] = None, n_iter: int = 50, damping: float = 0.5,
               tol: float = 1e-5) -> torch.Tensor:
    """Deterministic (mean-field) settling: the free units' means μ satisfy
    ``μ_i = E[s_i | field b_i + sum_j w_ij μ_j]``; solved by damped parallel iteration
    ``μ ← (1 - damping) μ + damping · mean(field(μ) / T)`` from ``states`` (clamped units keep
    their values; free units start at the value given, e.g. 0.5 or random states).

    Returns the means, shape of ``states`` ``(m, n)``; stops early when no mean moves by more
    than ``tol``."""
    if not 0 < damping <= 1:
        raise ValueError(f"damping: expected a value in (0, 1], got {damping!r}")
    p = _params(model, temperature)
    free = free_units(model, clamp).to(states.device)
    mu = states.to(p.weight.device, p.weight.dtype).clone()
    beta = 1.0 / p.temperature
    for _ in range(n_iter):
        field = torch.matmul(mu, p.weight) + p.bias.unsqueeze(-2)
        target = model.units.mean(field.index_select(-1, free), beta)
        cur = mu.index_select(-1, free)
        nxt = cur + damping * (target - cur)
        mu.index_copy_(-1, free, nxt)
        if (nxt - cur).abs().max() <= tol:
            break
    return mu
