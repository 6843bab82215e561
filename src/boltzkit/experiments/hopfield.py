"""Hopfield network experiments: corrupted recall, spurious states, storage capacity.

- :func:`corrupt` flips a given fraction of the bits of each pattern.
- :func:`count_spurious` runs recall from many random states and sorts the fixed points reached
  into stored patterns, their negations, mixtures of three patterns and other spurious states.
- :func:`capacity` measures, for each load p/N, the fraction of stored random patterns that
  asynchronous recall retrieves, for several storage rules; :func:`crossing` reads off the load
  where that fraction falls below a level (50% by default).

The capacity criterion. Recall starts from each stored pattern (or from a copy with a fraction
``noise`` of its bits flipped) and runs asynchronous dynamics to a fixed point; the pattern counts
as *recalled* when the final overlap ``m = ξ·s / N`` is at least ``threshold`` (default 0.95: at
most 2.5% of the units wrong). Exact recall (m = 1) is too strict to show the Hebbian transition:
below the critical load 0.138 the retrieval state is not the pattern itself but a nearby minimum
with overlap about 0.97 at the transition (Amit, Gutfreund & Sompolinsky 1985), while past it the
network falls into states of much lower overlap. So the 0.95 criterion follows the retrieval state
and drops where it disappears. The fraction recalled exactly and the mean overlap are reported too.
At small N the drop is smeared and sits above 0.138 (finite-size effects); it sharpens toward
0.138 as N grows.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..models.hopfield import RULES, Hopfield, as_spins, async_recall

__all__ = ["corrupt", "count_spurious", "SpuriousStates", "capacity", "crossing",
           "random_patterns", "DEFAULT_THRESHOLD", "HEBBIAN_CAPACITY"]

DEFAULT_THRESHOLD = 0.95
HEBBIAN_CAPACITY = 0.138  # Amit, Gutfreund & Sompolinsky (1985), large-N limit


def random_patterns(n_patterns: int, n_units: int, generator: Optional[torch.Generator] = None,
                    device=None) -> torch.Tensor:
    """Independent uniform ±1 patterns, shape ``(n_patterns, n_units)``, float32."""
    bits = torch.randint(0, 2, (n_patterns, n_units), generator=generator)
    return (bits.to(torch.float32) * 2.0 - 1.0).to(device)


def corrupt(patterns, fraction: float, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Flip exactly ``round(fraction * n)`` bits of each pattern, chosen uniformly at random.

    ``patterns`` ``(n,)`` or ``(m, n)``, ±1 or 0/1 (read as in :func:`as_spins`); ``fraction`` in
    [0, 1]. Returns ±1 float32 states of the same shape (each row its own random bits).
    """
    x = as_spins(patterns, "patterns")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: expected a number in [0, 1], got {fraction!r}")
    single = x.dim() == 1
    x = x.unsqueeze(0) if single else x.clone()
    k = round(fraction * x.shape[1])
    if k:
        u = torch.rand(x.shape, generator=generator).to(x.device)
        idx = u.argsort(dim=1)[:, :k]
        x.scatter_(1, idx, -x.gather(1, idx))
    return x[0] if single else x


@dataclass
class SpuriousStates:
    """Where recall from random states ends (see :func:`count_spurious`).

    ``distinct`` counts distinct final states of each class; ``starts`` counts how many starts
    ended in each class (a rough measure of the classes' basins). Classes: ``stored`` (a stored
    pattern), ``reversed`` (the negation of one: E(-s) = E(s) without biases, so these are minima
    too), ``mixture3`` (sign(±ξa ± ξb ± ξc) for three stored patterns; only checked when
    ``mixtures_checked``), ``other`` (any other fixed point: spin-glass states, larger mixtures),
    ``not_converged`` (no fixed point within ``max_sweeps``; not in ``distinct``).
    """

    n_starts: int
    distinct: dict = field(default_factory=dict)
    starts: dict = field(default_factory=dict)
    mixtures_checked: bool = False

    @property
    def n_spurious(self) -> int:
        """Distinct fixed points that are neither stored patterns nor their negations."""
        return self.distinct.get("mixture3", 0) + self.distinct.get("other", 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["n_spurious"] = self.n_spurious
        return d


def _mixtures3(patterns: torch.Tensor) -> torch.Tensor:
    """All sign(ε_a ξa + ε_b ξb + ε_c ξc) for a < b < c and signs ε, ``(8 C(p,3), n)``."""
    triples = torch.tensor(list(combinations(range(patterns.shape[0]), 3)), dtype=torch.long)
    signs = torch.tensor([[a, b, c] for a in (1., -1.) for b in (1., -1.) for c in (1., -1.)])
    x = patterns[triples]  # (T, 3, n)
    mix = torch.einsum("sk,tkn->tsn", signs.to(x), x)  # (T, 8, n); odd sums, never zero
    return torch.sign(mix).reshape(-1, patterns.shape[1])


def count_spurious(model: Hopfield, n_starts: int = 1000,
                   generator: Optional[torch.Generator] = None, max_sweeps: int = 100,
                   mixtures: bool = True, max_mixtures: int = 200_000) -> SpuriousStates:
    """Count the fixed points that asynchronous recall reaches from random states.

    Procedure: draw ``n_starts`` uniform random ±1 states, run :meth:`Hopfield.recall` (async) on
    all of them, keep the distinct final states that are fixed points, and classify each as a
    stored pattern, the negation of one, a mixture of three patterns (sign of a signed sum of three
    stored patterns; checked when ``mixtures`` and the number of candidate mixtures
    ``8·C(p, 3)`` is at most ``max_mixtures``), or another spurious state. Distinct spurious
    states found is a lower bound on how many exist: only the states whose basins the random
    starts hit are seen.
    """
    if isinstance(n_starts, bool) or not isinstance(n_starts, int) or n_starts < 1:
        raise ValueError(f"n_starts: expected a positive integer, got {n_starts!r}")
    n = model.n_units
    starts = random_patterns(n_starts, n, generator, device=model.weight.device)
    final, info = model.recall(starts, generator=generator, max_sweeps=max_sweeps,
                               return_info=True)
    done = info["converged"]
    stored = model.patterns
    classes = ("stored", "reversed", "mixture3", "other")
    result = SpuriousStates(n_starts=n_starts, distinct={c: 0 for c in classes},
                            starts={c: 0 for c in classes + ("not_converged",)})
    result.starts["not_converged"] = int((~done).sum())
    if not done.any():
        return result
    uniq, counts = torch.unique(final[done], dim=0, return_counts=True)
    label = torch.full((uniq.shape[0],), 3, dtype=torch.long)  # "other"
    p = stored.shape[0]
    if p:
        ov = uniq @ stored.t() / n  # (u, p)
        is_mix = torch.zeros(uniq.shape[0], dtype=torch.bool)
        if mixtures and p >= 3 and 8 * math.comb(p, 3) <= max_mixtures:
            result.mixtures_checked = True
            mix = _mixtures3(stored)
            for start in range(0, mix.shape[0], 4096):  # chunks keep the overlap matrix small
                is_mix |= ((uniq @ mix[start:start + 4096].t()) == n).any(1).cpu()
        label[is_mix] = 2
        label[(ov == -1).any(1).cpu()] = 1
        label[(ov == 1).any(1).cpu()] = 0
    for k, c in enumerate(classes):
        sel = label == k
        result.distinct[c] = int(sel.sum())
        result.starts[c] = int(counts[sel.to(counts.device)].sum())
    return result


def _seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (one generator per experiment cell)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0]
               >> np.uint64(1))


def crossing(loads: Sequence[float], recall: Sequence[float], level: float = 0.5) -> Optional[float]:
    """The load where ``recall`` first falls below ``level``, interpolated linearly between the
    last load at or above it and the next; None if it never falls below (loads sorted)."""
    pairs = sorted(zip(loads, recall))
    for (a0, r0), (a1, r1) in zip(pairs, pairs[1:]):
        if r0 >= level > r1:
            return a0 + (r0 - level) / (r0 - r1) * (a1 - a0)
    if pairs and pairs[0][1] < level:
        return pairs[0][0]
    return None


def capacity(n_units: int = 200, rules: Sequence[str] = RULES, trials: int = 10, seed: int = 0,
             loads: Optional[Sequence[float]] = None, noise: float = 0.0,
             threshold: float = DEFAULT_THRESHOLD, max_sweeps: int = 100,
             stop_below: Optional[float] = 0.02, device=None,
             progress: Optional[Callable[[str, float, dict], None]] = None) -> dict:
    """Recall against load for each storage rule.

    For each rule and load ``a``: ``p = round(a N)`` random patterns are stored in ``trials``
    independent networks; recall starts from every stored pattern (with a fraction ``noise`` of
    its bits flipped) and runs asynchronously to a fixed point (all networks and patterns of a cell
    at once). A pattern is recalled when the final overlap is at least ``threshold``.

    The patterns of a (load, trial) are the same for every rule (drawn from ``seed`` and ``p``), so
    the rules are compared on equal footing; the corruption and update orders come from a
    generator seeded by ``seed``, ``p`` and the rule. Equal arguments give equal results.

    Parameters
    ----------
    n_units : N
    rules : storage rules to compare
    trials : networks per load
    seed : int
    loads : loads p/N to visit; default 0.02, 0.04, ..., 0.98 (each rule stops early, see
        ``stop_below``). Loads giving the same p are visited once.
    noise : fraction of bits flipped in the starting states (0: start at the patterns)
    threshold : final overlap that counts as recall
    max_sweeps : most sweeps of asynchronous recall
    stop_below : stop a rule once its recall fraction has been below this at two consecutive
        loads (None: visit every load)
    progress : called as ``progress(rule, load, row)`` after every cell

    Returns
    -------
    dict with ``n_units``, ``trials``, ``seed``, ``noise``, ``threshold``, ``criterion`` (text) and
    ``rules``: ``{rule: {"loads", "n_patterns", "recall", "recall_se", "exact", "overlap",
    "converged", "load_at_half"}}`` (lists over loads; ``recall_se`` the standard error of the
    recall fraction over trials; ``load_at_half`` the :func:`crossing` at 0.5).
    """
    if isinstance(n_units, bool) or not isinstance(n_units, int) or n_units < 2:
        raise ValueError(f"n_units: expected an integer >= 2, got {n_units!r}")
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials: expected a positive integer, got {trials!r}")
    rules = list(rules)
    if not rules:
        raise ValueError("rules: expected at least one storage rule, got none")
    for r in rules:
        if r not in RULES:
            raise ValueError(f"rules: expected names from {', '.join(RULES)}, got {r!r}")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise: expected a fraction in [0, 1], got {noise!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold: expected an overlap in (0, 1], got {threshold!r}")
    if loads is None:
        loads = [round(0.02 * k, 2) for k in range(1, 50)]
    loads = sorted(float(a) for a in loads)
    if not loads or loads[0] <= 0:
        raise ValueError(f"loads: expected positive loads p/N, got {loads}")
    ps = sorted({max(1, round(a * n_units)) for a in loads})
    out = {"n_units": n_units, "trials": trials, "seed": seed, "noise": noise,
           "threshold": threshold, "mode": "async",
           "criterion": (f"final overlap >= {threshold:g} after asynchronous recall from each "
                         f"stored pattern" + (f" with {noise:g} of its bits flipped"
                                              if noise else "")),
           "rules": {}}
    for rule in rules:
        rows = {k: [] for k in ("loads", "n_patterns", "recall", "recall_se", "exact", "overlap",
                                "converged")}
        low = 0
        for p in ps:
            pat_gen = torch.Generator().manual_seed(_seed(seed, p))
            run_gen = torch.Generator().manual_seed(_seed(seed, p, 1 + RULES.index(rule)))
            xi = torch.stack([random_patterns(p, n_units, pat_gen) for _ in range(trials)])
            weights = torch.stack([Hopfield(n_units, rule).store(x).weight for x in xi])
            start = xi.clone() if noise == 0 else torch.stack([corrupt(x, noise, run_gen)
                                                               for x in xi])
            if device is not None:
                weights, start, xi = weights.to(device), start.to(device), xi.to(device)
            final, info = async_recall(weights, torch.zeros(trials, n_units, device=weights.device),
                                       start, max_sweeps, run_gen)
            m = (final * xi).mean(-1)  # (trials, p) overlaps
            rec = (m >= threshold - 1e-6).float()
            per_trial = rec.mean(1)
            se = float(per_trial.std() / math.sqrt(trials)) if trials > 1 else float("nan")
            row = {"loads": p / n_units, "n_patterns": p, "recall": float(rec.mean()),
                   "recall_se": se, "exact": float((m >= 1 - 1e-6).float().mean()),
                   "overlap": float(m.mean()), "converged": float(info["converged"].float().mean())}
            for k, v in row.items():
                rows[k].append(v)
            if progress is not None:
                progress(rule, p / n_units, row)
            low = low + 1 if stop_below is not None and row["recall"] < stop_below else 0
            if low >= 2:
                break
        rows["load_at_half"] = crossing(rows["loads"], rows["recall"], 0.5)
        out["rules"][rule] = rows
    return out
