"""The toy networks of binary threshold units: the two phases of Boltzmann learning, made visible.

The network: three visible units ``v = (v1, v2, v3)`` and one hidden unit ``h``, all ±1 threshold
units, connected only visible-to-hidden by weights ``w = (w1, w2, w3)``, with no biases and no
visible-visible weights. Energy ``E(v, h) = -h (w · v)``. This is the smallest network in which the
hidden unit has to *explain* the visible units: with visible-visible weights the visible units
could store the pairwise structure of the data directly, and the hidden unit, which is what the
story is about (a unit whose state nobody sets), would have nothing to do. Without biases the
energy is symmetric under flipping every unit, which matches the training states (1, -1, 1) and
(-1, 1, -1), each the negation of the other: the network can hold both in one weight vector.

Deterministic threshold units: a unit takes its most probable value given its neighbours, the sign
of its input; an input of exactly zero (a tie) gives +1. This tie rule is used everywhere below.

- **Positive phase** (visible units clamped to a training state ``v``): ``h = sign(w · v)``; the
  co-activations ``⟨v_i h⟩_data`` are averaged over the training states.
- **Hebbian learning** (positive phase only): ``Δw = lr ⟨v h⟩_data``.
- **Negative phase**: ``n_chains`` states of all four units drawn uniformly at random settle, one
  unit at a time in a random order (drawn afresh each sweep), each unit taking its most probable
  value given its neighbours, until a whole sweep changes nothing; ``⟨v_i h⟩_model`` is averaged
  over the settled chains.
- **Two-phase learning**: ``Δw = lr (⟨v h⟩_data - ⟨v h⟩_model)``.
- **Reconstruction** of a training state: clamp ``v``, set ``h`` to its most probable value, then
  set every visible unit to its most probable value given ``h``, ``v'_i = sign(w_i h)``; the state
  is reconstructed when ``v' = v``.

What the five runs show (see :func:`run_all`, printed by ``boltzkit toy``):

1. Hebbian learning on the training states: once ``h = sign(w · v)`` agrees on which state is
   which, every epoch adds the same ``lr ⟨v h⟩_data`` (each component ±lr): the weights grow
   without end, long after every training state is reconstructed. Nothing in the rule says
   "enough".
2. Two-phase learning on the training states, from the same starting weights: once every weight
   has the sign of ``d_i s`` (``d`` = (1, -1, 1), ``s`` the hidden state for ``d``), every settled
   state of the free network has ``v_i h = sign(w_i)`` = the data's co-activation, so the negative
   phase cancels the positive phase exactly: ``Δw = 0``, and that happens exactly when every
   training state is reconstructed. Learning stops by itself.
3. Hebbian learning, a weight that never moves from zero: training states (1, -1, 1) and
   (-1, 1, 1), starting weights (0.5, -0.2, 0). ``v3`` is +1 in both states while ``h`` is +1 for
   one and -1 for the other, so ``⟨v3 h⟩ = 0`` exactly every epoch: ``w3`` stays 0 forever while
   ``w1`` and ``w2`` grow. A unit that does not co-vary with the hidden unit gets no weight.
4. Hebbian learning, one weight grows and suppresses the rest: the four even-parity states
   (1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1), in which every pair of visible units is
   uncorrelated. From (0.5, 0.2, 0.1) the largest weight decides the hidden unit, ``h = v1``, so
   ``⟨v h⟩ = ⟨v v1⟩ = (1, 0, 0)``: ``w1`` grows by lr every epoch and ``w2``, ``w3`` never change,
   their share of the hidden unit's input falling toward zero ("suppressed" in this relative
   sense: with ±1 units and no decay a positive-phase-only rule cannot shrink them).
5. The same from (0.2, 0.5, 0.1): now ``w2`` wins. Which weight wins is set by the start.

Arithmetic is float64 (exact for these sums of ±1 terms; weights print cleanly). Randomness (the
negative phase's starting states and update orders, and random starting weights) comes only from
the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import torch

__all__ = ["TRAINING_STATES", "DEFAULT_WEIGHTS", "hidden_state", "reconstruct", "settle",
           "hebbian", "two_phase", "run_all", "Run", "Epoch"]

TRAINING_STATES = ((1.0, -1.0, 1.0), (-1.0, 1.0, -1.0))
# starting weights of runs 1 and 2 (on the training states): w · (1, -1, 1) = -0.05, so h = -1 for
# (1, -1, 1), and w1 has the wrong sign for that: nothing is reconstructed at the start, and the
# two-phase rule needs 0.75 / (2 lr) epochs to fix it (4 at lr = 0.1). Multiples of 0.05 that stay
# away from 0 under steps of 0.1 (no rounding-error ties in the printed table).
DEFAULT_WEIGHTS = (0.75, 0.3, -0.5)

_DT = torch.float64


def _sign(x: torch.Tensor) -> torch.Tensor:
    """Most probable ±1 value for input ``x``; ties (exactly 0) give +1."""
    return torch.where(x >= 0, 1.0, -1.0).to(_DT)


def _states(states, name="states") -> torch.Tensor:
    x = torch.as_tensor(states, dtype=_DT)
    if x.dim() != 2 or x.shape[1] != 3 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n, 3) with n >= 1, got {tuple(x.shape)}")
    if not ((x == 1) | (x == -1)).all():
        raise ValueError(f"{name}: expected ±1 values")
    return x


def _weights(w, name="weights") -> torch.Tensor:
    x = torch.as_tensor(w, dtype=_DT)
    if x.shape != (3,) or not torch.isfinite(x).all():
        raise ValueError(f"{name}: expected 3 finite numbers, got {w!r}")
    return x.clone()


def hidden_state(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Most probable hidden state for clamped visible states ``v`` ``(n, 3)``: ``(n,)``."""
    return _sign(v @ w)


def reconstruct(w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``v' = sign(w h)`` with ``h`` the most probable hidden state given ``v``: ``(n, 3)``."""
    return _sign(hidden_state(w, v).unsqueeze(1) * w)


def settle(w: torch.Tensor, n_chains: int, generator: Optional[torch.Generator] = None,
           max_sweeps: int = 100) -> torch.Tensor:
    """Free-running (negative) phase: ``n_chains`` random ±1 states of ``(v1, v2, v3, h)`` settle
    by one-unit-at-a-time threshold updates in random order until a sweep changes nothing.
    Returns the settled states ``(n_chains, 4)`` (column 3 is ``h``)."""
    s = (torch.randint(0, 2, (n_chains, 4), generator=generator) * 2 - 1).to(_DT)
    rows = torch.arange(n_chains)
    for _ in range(max_sweeps):
        order = torch.rand(n_chains, 4, generator=generator).argsort(1)
        before = s.clone()
        for t in range(4):
            unit = order[:, t]
            # input of a visible unit i: w_i h; of the hidden unit: w · v
            vis_in = w[unit.clamp(max=2)] * s[:, 3]
            hid_in = s[:, :3] @ w
            s[rows, unit] = _sign(torch.where(unit == 3, hid_in, vis_in))
        if torch.equal(before, s):
            return s
    raise RuntimeError("settle: threshold dynamics did not settle (cannot happen for symmetric "
                       "weights)")


@dataclass
class Epoch:
    """One epoch of learning: the weights *after* the update, the update itself, its largest
    magnitude, the co-activation statistics, and which training states the weights *before*
    the update reconstruct."""

    epoch: int
    weights: list
    delta: list
    change: float
    positive: list
    negative: Optional[list]
    reconstructed: list
    all_reconstructed: bool


@dataclass
class Run:
    """A run: its name, what it demonstrates, the settings and the per-epoch table."""

    name: str
    rule: str
    explanation: str
    training_states: list
    start_weights: list
    lr: float
    epochs: list

    def to_dict(self) -> dict:
        return asdict(self)


def _run(rule: str, states, w0, epochs: int, lr: float, n_chains: int,
         generator: Optional[torch.Generator]) -> list:
    v = _states(states, "training states")
    w = _weights(w0, "starting weights")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if isinstance(n_chains, bool) or not isinstance(n_chains, int) or n_chains < 1:
        raise ValueError(f"n_chains: expected a positive integer, got {n_chains!r}")
    table = []
    for e in range(1, epochs + 1):
        recon = (reconstruct(w, v) == v).all(1).tolist()
        pos = (v * hidden_state(w, v).unsqueeze(1)).mean(0)
        if rule == "hebbian":
            neg, delta = None, lr * pos
        else:
            s = settle(w, n_chains, generator)
            neg = (s[:, :3] * s[:, 3:]).mean(0)
            delta = lr * (pos - neg)
        w = w + delta
        table.append(Epoch(e, w.tolist(), delta.tolist(), float(delta.abs().max()), pos.tolist(),
                           None if neg is None else neg.tolist(), recon, all(recon)))
    return table


def hebbian(states=TRAINING_STATES, weights=DEFAULT_WEIGHTS, epochs: int = 10,
            lr: float = 0.1) -> list:
    """Positive phase only: ``Δw = lr ⟨v h⟩_data`` each epoch. Returns a list of :class:`Epoch`."""
    return _run("hebbian", states, weights, epochs, lr, 1, None)


def two_phase(states=TRAINING_STATES, weights=DEFAULT_WEIGHTS, epochs: int = 10,
              lr: float = 0.1, n_chains: int = 8,
              generator: Optional[torch.Generator] = None) -> list:
    """Positive minus negative phase: ``Δw = lr (⟨v h⟩_data - ⟨v h⟩_model)``, the negative
    statistics from ``n_chains`` freshly settled random states per epoch."""
    return _run("two-phase", states, weights, epochs, lr, n_chains, generator)


def run_all(epochs: int = 10, lr: float = 0.1, seed: int = 0, n_chains: int = 8,
            weights: Optional[Sequence[float]] = None) -> list:
    """The five runs of the module docstring, as a list of :class:`Run`.

    ``weights``: starting weights of runs 1 and 2 (default :data:`DEFAULT_WEIGHTS`; the string
    ``"random"`` draws them uniformly from [-1, 1] with ``seed``). ``seed`` also drives the
    negative phase.
    """
    gen = torch.Generator().manual_seed(seed)
    if weights is None:
        w0 = list(DEFAULT_WEIGHTS)
    elif isinstance(weights, str):
        if weights != "random":
            raise ValueError(f"weights: expected three numbers or 'random', got {weights!r}")
        w0 = (torch.rand(3, generator=gen, dtype=_DT) * 2 - 1).tolist()
    else:
        w0 = _weights(weights).tolist()
    train = [list(s) for s in TRAINING_STATES]
    zero_states = [[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]]
    parity = [[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    runs = [
        Run("hebbian", "hebbian",
            "Positive phase only: the same co-activations are added every epoch, so the weights "
            "grow without end, even after every training state is reconstructed.",
            train, w0, lr, hebbian(train, w0, epochs, lr)),
        Run("two-phase", "two-phase",
            "Positive minus negative phase: free-running states settle into the network's own "
            "minima; once those equal the data (every training state reconstructed), their "
            "co-activations cancel the data's exactly and the weights stop changing.",
            train, w0, lr, two_phase(train, w0, epochs, lr, n_chains, gen)),
        Run("hebbian-zero-weight", "hebbian",
            "v3 is +1 in both training states while h is +1 for one and -1 for the other, so "
            "<v3 h> = 0 every epoch: w3 never moves from zero while w1 and w2 grow.",
            zero_states, [0.5, -0.2, 0.0], lr, hebbian(zero_states, [0.5, -0.2, 0.0], epochs, lr)),
        Run("hebbian-one-wins", "hebbian",
            "Even-parity states (every pair of visible units uncorrelated): the largest starting "
            "weight makes h copy v1, so <v h> = <v v1> = (1, 0, 0): w1 grows every epoch, w2 and "
            "w3 never change and their share of h's input falls toward zero.",
            parity, [0.5, 0.2, 0.1], lr, hebbian(parity, [0.5, 0.2, 0.1], epochs, lr)),
        Run("hebbian-other-wins", "hebbian",
            "The same states from (0.2, 0.5, 0.1): now h copies v2 and w2 takes over. Which "
            "weight wins is decided by the start, not by the data.",
            parity, [0.2, 0.5, 0.1], lr, hebbian(parity, [0.2, 0.5, 0.1], epochs, lr)),
    ]
    return runs
