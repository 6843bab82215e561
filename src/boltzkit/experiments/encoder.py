"""The encoder problem of Ackley, Hinton & Sejnowski (1985), many runs at once.

Network (an N-M-N encoder): two visible groups V1 and V2 of N units and a hidden group H of M
units, 0/1 units. The environment is N patterns: unit k of V1 and unit k of V2 on, every other
visible unit off. V1 and V2 are not connected to each other, so the only way the machine can
make V2 agree with V1 is to find an M-bit code for the N patterns in H: for 4-2-4 a code that
uses all four states of two binary units.

Connectivity (paper, section 5, and issue 4): every unit of V1 and of V2 is connected to every
hidden unit; the units within V1 are connected to each other, likewise within V2; V1 and V2 are
not connected; the hidden units are not connected to each other. Each unit has a threshold
(a bias, learned like a weight from an always-on unit). ``visible_within=False`` removes the
connections within the visible groups (a bipartite machine).

The paper's learning procedure (``method="paper"``), one *learning cycle*:

1. Positive phase: each pattern in turn is clamped on V1 and V2 (both groups visible), twice.
   Clamping is noisy: every on bit is clamped off with probability 0.15 and every off bit on with
   probability 0.05, drawn afresh for each clamping. The hidden units are annealed, 2 time units
   at T=20, 2 at 15, 2 at 12, 4 at 10, and the co-occurrence probabilities p_ij = P(s_i = s_j = 1)
   are estimated over 10 more time units at T=10. A time unit is as many random probes as there
   are unclamped units, each probe giving one unit chosen at random a chance to change its state
   (order ``"probes"`` of :mod:`boltzkit.samplers.sequential`).
2. Negative phase: as many annealings with nothing clamped, giving p'_ij.
3. Every weight (and threshold) changes by a fixed step of 2 in the direction of the sign of
   p_ij - p'_ij (no change where they are equal). Weights start at 0.

Statistics are taken after each time unit (10 samples per annealing). The paper reports that
250 of 250 runs of the 4-2-4 encoder reached a global minimum, with a median of 110 learning
cycles.

Success ("a global minimum") is tested here without sampling noise: for every pattern k, with
V1 clamped to pattern k (noise-free), the lowest-energy completion of V2 and H (found by
enumerating their 2^(N+M) states, for N + M <= 20) must have exactly V2 = pattern k, and the N
hidden codes of these completions must be distinct. The test does not depend on the temperature
(the most probable completion is the lowest-energy one at every T). A run's cycle count is the
first cycle after which the test holds; the test is applied after every cycle. For larger
encoders the completion is found by annealing instead (see :func:`solved`). For comparison the
results also give the cycle counts of a weaker test, :func:`distinct_codes` (with a whole
pattern clamped on V1 and V2, the most probable hidden states of the N patterns differ),
since the paper does not spell out how it detected a global minimum.

``method="fast"`` shows boltzkit's faster defaults on the same machines (:class:`FastSettings`):
the positive phase is exact (with V1 and V2 clamped and no hidden-hidden connections the hidden
units are independent, so their means are one sigmoid away), the negative phase uses persistent
chains with one sweep per cycle at T=1, and the weights move in proportion to the difference of
the statistics. A cycle costs a small fraction of the paper's (no annealing, no fresh chains),
but gradient steps settle into the local minima where two patterns share a hidden code more
often than the paper's fixed-size noisy steps do: see BENCHMARKS.md for the figures.

Every run is an independent machine; all runs are one stack of machines
(:class:`~boltzkit.models.BoltzmannMachine` with ``n_machines``, weights ``(R, n, n)``) trained
by the same driver, estimator and update rules as every other model
(:func:`boltzkit.training.fit` with :class:`~boltzkit.training.estimators.TwoPhase` and
:class:`~boltzkit.training.updates.SignStep` or :class:`~boltzkit.training.updates.SGD`): the
data set is the N patterns, one batch of all of them per epoch, so an epoch is a learning
cycle. 250 runs cost little more than one.
"""

from __future__ import annotations

import statistics as stats_mod
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from ..models import BoltzmannMachine
from ..samplers import sequential as sq
from ..training import SGD, Callback, SignStep, TwoPhase, fit
from ..units import Bernoulli
from .._threads import torch_threads

__all__ = ["parse_spec", "connectivity", "patterns", "make_stack", "training_setup",
           "PaperSettings", "FastSettings", "solved", "distinct_codes", "run_encoder",
           "PAPER_RESULTS"]

# what the paper reports (from its section 5, as quoted in issue 4)
PAPER_RESULTS = {"4-2-4": {"runs": 250, "successes": 250, "median_cycles": 110}}

MAX_EXACT_FREE_UNITS = 20


def parse_spec(spec: str) -> tuple[int, int]:
    """``"4-2-4"`` -> ``(4, 2)``: N visible units per group, M hidden units."""
    try:
        a, m, b = (int(x) for x in str(spec).split("-"))
    except ValueError:
        raise ValueError(f"spec: expected N-M-N with positive integers (e.g. 4-2-4), "
                         f"got {spec!r}") from None
    if a != b or a < 2 or m < 1:
        raise ValueError(f"spec: expected N-M-N with equal outer sizes N >= 2 and M >= 1, "
                         f"got {spec!r}")
    return a, m


def connectivity(n: int, m: int, visible_within: bool = True) -> torch.Tensor:
    """Bool ``(2n+m, 2n+m)`` connection pattern; units V1 = 0..n-1, V2 = n..2n-1, H after."""
    total = 2 * n + m
    c = torch.zeros(total, total, dtype=torch.bool)
    v1, v2, h = slice(0, n), slice(n, 2 * n), slice(2 * n, total)
    for g in (v1, v2):
        c[g, h] = True
        c[h, g] = True
        if visible_within:
            c[g, g] = True
    c.fill_diagonal_(False)
    return c


def patterns(n: int) -> torch.Tensor:
    """The n environment vectors over V1 and V2, shape ``(n, 2n)``: unit k on in both."""
    eye = torch.eye(n)
    return torch.cat([eye, eye], 1)


def make_stack(n_runs: int, n: int, m: int, settings, generator=None,
               device=None) -> BoltzmannMachine:
    """The R = ``n_runs`` independent N-M-N machines of the experiment as one stack (0/1
    units, the encoder's connectivity, the settings' temperature; weights N(0, init_std²) on
    the connections for the fast method, zero for the paper's)."""
    return BoltzmannMachine(2 * n, m, "bernoulli", n_machines=n_runs,
                            connectivity=connectivity(n, m, settings.visible_within),
                            temperature=settings.temperature,
                            init_std=getattr(settings, "init_std", 0.0), generator=generator,
                            device=device)


@dataclass
class PaperSettings:
    """The 1985 procedure (see the module docstring)."""

    schedule: list = field(default_factory=lambda: [(20.0, 2), (15.0, 2), (12.0, 2), (10.0, 4)])
    collect: int = 10
    temperature: float = 10.0
    step: float = 2.0
    annealings_per_pattern: int = 2
    p_on_to_off: float = 0.15
    p_off_to_on: float = 0.05
    order: str = "probes"
    visible_within: bool = True


@dataclass
class FastSettings:
    """boltzkit's faster defaults (see the module docstring).

    ``negative="persistent"``: ``chains_per_run`` chains per run kept across cycles,
    ``negative_sweeps`` sweeps per cycle; ``"annealed"``: fresh chains each cycle, annealed from
    2T to T, statistics over ``collect`` sweeps. ``rule="proportional"``: Δw = lr (p - p') after
    a decay ``w ← (1 - lr weight_decay) w``; ``"sign"``: Δw = step sign(p - p'). The positive
    phase clamps each pattern ``copies_per_pattern`` times with the paper's clamping noise and
    computes the hidden means exactly. Weights start as N(0, init_std²)."""

    temperature: float = 1.0
    lr: float = 1.0
    chains_per_run: int = 64
    negative: str = "persistent"
    negative_sweeps: int = 1
    collect: int = 1
    rule: str = "proportional"
    step: float = 0.2
    weight_decay: float = 1e-3
    copies_per_pattern: int = 4
    p_on_to_off: float = 0.15
    p_off_to_on: float = 0.05
    init_std: float = 0.5
    order: str = "random"
    visible_within: bool = True


def _energy(weight: torch.Tensor, bias: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Energies of the states ``s`` ``(C, n)`` under machines ``(r, n, n)``: ``(r, C)``."""
    return -(0.5 * (torch.matmul(s, weight) * s).sum(-1) + torch.matmul(bias, s.t()))


def _completion_states(n: int, m: int, dtype, device) -> torch.Tensor:
    """Every state of (V2, H): ``(2^(n+m), n+m)``."""
    return Bernoulli().states(n + m, dtype=dtype, device=device)


@torch.no_grad()
def solved(stack: BoltzmannMachine, n: int, m: int, generator=None) -> torch.Tensor:
    """Bool ``(R,)``: which runs are at a global minimum (see the module docstring).

    For ``n + m <= 20`` the lowest-energy completion given V1 is found by enumeration. Beyond,
    it is approximated by annealing 16 chains per pattern (V1 clamped) down to T = 0.05 and
    taking each pattern's lowest-energy final state."""
    pats = patterns(n).to(stack.weight.device, stack.weight.dtype)
    r = stack.weight.shape[0]
    if n + m <= MAX_EXACT_FREE_UNITS:
        comp = _completion_states(n, m, stack.weight.dtype, stack.weight.device)  # (C, n+m)
        c = comp.shape[0]
        v1 = pats[:, :n]  # (n, n)
        full = torch.cat([v1[:, None, :].expand(n, c, n),
                          comp[None].expand(n, c, n + m)], -1).reshape(n * c, 2 * n + m)
        # energies of every completion under every run, a few runs at a time (bounded memory)
        step = max(1, (1 << 22) // (n * c * (2 * n + m)))
        e = torch.cat([_energy(stack.weight[a:a + step], stack.bias[a:a + step], full)
                       for a in range(0, r, step)]).reshape(r, n, c)
        best = comp[e.argmin(-1)]  # (R, n, n+m)
    else:
        chains = 16
        v1 = pats[:, :n].repeat_interleave(chains, 0)  # (n*chains, n)
        s0 = torch.cat([v1, torch.zeros(n * chains, n + m, dtype=v1.dtype,
                                        device=v1.device)], -1).expand(r, -1, -1)
        clamp = torch.zeros(2 * n + m, dtype=torch.bool)
        clamp[:n] = True
        st = sq.init(stack, s0.contiguous())
        sched = [(10.0, 5), (5.0, 5), (2.0, 5), (1.0, 5), (0.5, 5), (0.2, 5), (0.05, 5)]
        st = sq.anneal(stack, st, sched, generator, clamp=clamp, order="random")
        e = stack.energy(st.states, check=False).reshape(r, n, chains)
        pick = e.argmin(-1)  # (R, n)
        fs = st.states.reshape(r, n, chains, 2 * n + m)
        best = torch.gather(fs, 2, pick[..., None, None].expand(r, n, 1, 2 * n + m))[:, :, 0, n:]
    v2, h = best[..., :n], best[..., n:]
    eye = torch.eye(n, dtype=v2.dtype, device=v2.device)
    v2_ok = (v2 == eye).all(-1).all(-1)
    codes = (h * (2 ** torch.arange(m, device=h.device, dtype=h.dtype))).sum(-1)  # (R, n)
    distinct = (codes[:, :, None] != codes[:, None, :]) | torch.eye(n, dtype=torch.bool,
                                                                     device=h.device)
    return v2_ok & distinct.all(-1).all(-1)


@torch.no_grad()
def distinct_codes(stack: BoltzmannMachine, n: int, m: int) -> torch.Tensor:
    """Bool ``(R,)``: a weaker criterion, for comparison. With a whole pattern (V1 and V2)
    clamped, the lowest-energy hidden state is found for each pattern (2^m states); true when
    the N codes are all different (whatever V1 alone would complete V2 to)."""
    if m > MAX_EXACT_FREE_UNITS:
        raise ValueError(f"m: distinct_codes enumerates 2^m hidden states, got m={m}")
    pats = patterns(n).to(stack.weight.device, stack.weight.dtype)
    hs = Bernoulli().states(m, dtype=pats.dtype, device=pats.device)  # (H, m)
    c = hs.shape[0]
    full = torch.cat([pats[:, None, :].expand(n, c, 2 * n), hs[None].expand(n, c, m)],
                     -1).reshape(n * c, 2 * n + m)
    e = _energy(stack.weight, stack.bias, full).reshape(-1, n, c)
    codes = e.argmin(-1)  # (R, n): the hidden state's number
    same = codes[:, :, None] == codes[:, None, :]
    return (same.sum((-1, -2)) == n)


def training_setup(settings, method: str):
    """``(estimator, update rule, learning rate)`` that make one epoch over the N patterns one
    learning cycle of ``method`` (see the module docstring)."""
    s = settings
    if method == "paper":
        est = TwoPhase(positive_settle=0, positive_collect=s.collect, negative_settle=0,
                       negative_collect=s.collect, schedule=s.schedule, persistent=False,
                       chains_per_example=s.annealings_per_pattern,
                       clamp_noise=(s.p_on_to_off, s.p_off_to_on), order=s.order)
        return est, SignStep(), s.step
    noise = (s.p_on_to_off, s.p_off_to_on) if (s.p_on_to_off or s.p_off_to_on) else None
    common = dict(positive_settle=0, positive_collect=1, chains_per_example=s.copies_per_pattern,
                  clamp_noise=noise, mean_field=True, mean_field_damping=1.0,
                  mean_field_iters=2, n_chains=s.chains_per_run, order=s.order)
    if s.negative == "persistent":
        est = TwoPhase(negative_settle=s.negative_sweeps - 1, negative_collect=1,
                       persistent=True, **common)
    else:  # fresh chains each cycle, annealed from twice the temperature
        t = s.temperature
        est = TwoPhase(negative_settle=0, negative_collect=s.collect, persistent=False,
                       schedule=[(2 * t, 2), (1.5 * t, 2), (1.2 * t, 2), (t, s.negative_sweeps)],
                       **common)
    if s.rule == "sign":
        return est, SignStep(), s.step
    return est, SGD(momentum=0.0, weight_decay=s.weight_decay), s.lr


class _Solved(Callback):
    """After every learning cycle: which runs have reached a global minimum (and the weaker
    distinct-codes test); stops training when every run has."""

    def __init__(self, n, m, runs, progress):
        self.n, self.m, self.progress = n, m, progress
        self.first = torch.full((runs,), -1, dtype=torch.int64)
        self.first_codes = torch.full((runs,), -1, dtype=torch.int64)
        self.ok = torch.zeros(runs, dtype=torch.bool)

    def on_epoch_end(self, state):
        cycle = state.epoch
        self.ok = solved(state.model, self.n, self.m, state.generator).cpu()
        self.first[(self.first < 0) & self.ok] = cycle
        if self.m <= MAX_EXACT_FREE_UNITS:
            codes = distinct_codes(state.model, self.n, self.m).cpu()
            self.first_codes[(self.first_codes < 0) & codes] = cycle
        if self.progress is not None:
            self.progress(cycle, int((self.first > 0).sum()))
        if bool((self.first > 0).all()):
            state.stop = True


@torch.no_grad()
def run_encoder(spec: str = "4-2-4", runs: int = 250, method: str = "paper",
                max_cycles: int = 2000, seed: int = 0, settings=None, device=None,
                progress: Optional[Callable[[int, int], None]] = None,
                threads: Optional[int] = 1) -> dict:
    """Train ``runs`` independent N-M-N encoders with ``method`` ("paper" or "fast") until all
    have reached a global minimum or ``max_cycles`` learning cycles have passed.

    Returns a dict with ``spec``, ``method``, ``runs``, ``successes``, ``success_rate``,
    ``median_cycles`` and ``worst_cycles`` (over the successful runs), ``cycles`` (each run's
    count, ``None`` where it never succeeded), ``solved_at_end`` (runs whose final weights
    still pass the test), ``cycles_run``, ``seconds``, ``settings``, ``distinct_codes`` (the
    same figures under the weaker criterion) and, when the paper reports the same problem,
    ``paper``. ``progress(cycle, n_solved)`` is called after every cycle.
    ``threads``: CPU threads for torch during the run (default 1: the operations are tiny,
    and with two threads on a busy two-core machine a cycle took up to 100 times longer;
    ``None`` leaves torch's setting alone)."""
    with torch_threads(threads):
        return _run_encoder(spec, runs, method, max_cycles, seed, settings, device, progress)


def _run_encoder(spec, runs, method, max_cycles, seed, settings, device, progress) -> dict:
    n, m = parse_spec(spec)
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs: expected a positive integer, got {runs!r}")
    if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
        raise ValueError(f"max_cycles: expected a positive integer, got {max_cycles!r}")
    if method not in ("paper", "fast"):
        raise ValueError(f"method: expected 'paper' or 'fast', got {method!r}")
    if settings is None:
        settings = PaperSettings() if method == "paper" else FastSettings()
    device = torch.device(device or "cpu")
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    stack = make_stack(runs, n, m, settings, generator, device)
    estimator, update, lr = training_setup(settings, method)
    watch = _Solved(n, m, runs, progress)
    t0 = time.perf_counter()
    state = fit(stack, patterns(n).to(device), estimator=estimator, update=update, lr=lr,
                epochs=max_cycles, batch_size=n, generator=generator, callbacks=[watch],
                init_visible_bias=False, monitors=[])
    seconds = time.perf_counter() - t0
    cycle, first, first_codes, ok = state.epoch, watch.first, watch.first_codes, watch.ok
    counts = [int(c) if c > 0 else None for c in first.tolist()]
    done = [c for c in counts if c is not None]
    result = {
        "spec": f"{n}-{m}-{n}", "method": method, "runs": runs, "seed": seed,
        "successes": len(done), "success_rate": len(done) / runs,
        "median_cycles": stats_mod.median(done) if done else None,
        "worst_cycles": max(done) if done else None,
        "solved_at_end": int(ok.sum()), "cycles_run": cycle, "max_cycles": max_cycles,
        "seconds": round(seconds, 2), "settings": asdict(settings), "cycles": counts,
    }
    codes = [int(c) for c in first_codes.tolist() if c > 0]
    result["distinct_codes"] = {
        "successes": len(codes), "median_cycles": stats_mod.median(codes) if codes else None,
        "worst_cycles": max(codes) if codes else None,
        "cycles": [int(c) if c > 0 else None for c in first_codes.tolist()]}
    if result["spec"] in PAPER_RESULTS:
        result["paper"] = PAPER_RESULTS[result["spec"]]
    return result
