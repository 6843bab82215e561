"""Hopfield network: memories stored in the minima of an energy over ±1 units.

Energy of a state ``s`` in {-1, +1}^n (``W = weight`` symmetric with zero diagonal, ``b = bias``)::

    E(s) = -1/2 sᵀ W s - b·s

A unit that takes the sign of its input ``h_i = (W s)_i + b_i`` never raises the energy (the change
is ``-Δs_i h_i <= 0`` because ``W`` is symmetric with ``w_ii = 0``), so asynchronous recall always
ends in a local minimum: a fixed point of the dynamics.

Storage rules (``p`` patterns ``ξ`` of ``n`` units, rows of ``Ξ`` ``(p, n)``):

- ``"hebbian"``: ``W = (1/n) Σ_μ ξ^μ ξ^μᵀ`` with the diagonal set to zero. Random patterns are
  retrieved up to a load ``p/n ≈ 0.138`` (Amit, Gutfreund & Sompolinsky 1985).
- ``"storkey"`` (Storkey 1997): patterns are learned one after another, each changing the weights by
  ``Δw_ij = (1/n)(ξ_i ξ_j - ξ_i h_ji - h_ij ξ_j)`` with the local fields
  ``h_ij = Σ_{k≠i,j} w_ik ξ_k`` of the current weights. Since ``w_ii = 0`` and ``ξ_k² = 1``,
  ``h_ij = h_i - w_ij ξ_j`` with ``h = W ξ``, so the whole update is one matrix expression,
  ``ΔW = (1/n)(ξξᵀ - ξhᵀ - hξᵀ + 2W)``, followed by zeroing the diagonal. Incremental and local,
  with a higher capacity than the Hebbian rule (about ``n / sqrt(2 ln n)`` patterns).
- ``"pseudoinverse"`` (projection rule, Personnaz, Guyon & Dreyfus 1985; Kanter & Sompolinsky
  1987): with the pattern correlation matrix ``C = Ξ Ξᵀ / n`` ``(p, p)``,
  ``P = (1/n) Ξᵀ C⁺ Ξ`` is the orthogonal projection onto the span of the patterns (``C⁺`` is the
  Moore-Penrose pseudo-inverse, so linearly dependent patterns are handled), and ``W`` is ``P``
  with its diagonal set to zero. Every stored pattern satisfies ``P ξ = ξ`` however correlated
  the patterns are.

  The diagonal is **set to zero**, as for the other rules. The projection's diagonal ``P_ii``
  averages ``p/n``; left in place it is a self-coupling by which every unit tends to keep its
  current state, so corrupted bits are held in place and the basins of attraction shrink: starting
  from patterns with 10% of their bits flipped (N = 200), recall with the diagonal kept already
  fails for every pattern at p/N = 0.5, where with it zeroed 57% are still recalled. Zeroing it
  costs the stored patterns nothing: the field at a stored pattern becomes
  ``(W ξ)_i = (1 - P_ii) ξ_i``, which keeps the sign of ``ξ_i`` as long as ``P_ii < 1``, so the
  patterns remain fixed points for loads up to nearly 1 (not only below 1/2); it is their basins
  of attraction that shrink with the load, and from 10% corruption they are gone by about
  p/N = 0.6 at N = 200 (measured by :func:`boltzkit.experiments.hopfield.capacity`, BENCHMARKS.md).
  At ``p >= n`` independent patterns the projection is the identity and the zero-diagonal weights
  vanish: the network stores nothing.

  The rule is not incremental: every call to :meth:`Hopfield.store` recomputes the weights from
  all patterns stored so far (which the model keeps for this reason).

Storing more patterns adds to the existing memories for every rule. All rules keep the patterns in
the buffer ``patterns`` ``(p, n)`` (needed by the pseudo-inverse rule, and by
:func:`boltzkit.experiments.hopfield.count_spurious` to tell memories from spurious states).

States may be given as ±1 or as 0/1: a tensor whose values all lie in {0, 1} is read as 0/1 and
mapped to ±1 by ``s = 2x - 1`` (a tensor of ones alone means the same in both conventions). Any
other value raises ``ValueError``. Results (recalled states) are always ±1.

The recall loop lives here rather than in :mod:`boltzkit.samplers` because it is deterministic
descent to a fixed point, the defining operation of the model, and the public name
``Hopfield.recall`` is what users and the experiments call.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from .. import _validation as _v
from .._threads import torch_threads
from ._validation import ConfigChecked, check_symmetric, check_values, config_choice, \
    config_int, config_keys

__all__ = ["Hopfield", "as_spins", "RULES"]

RULES = ("hebbian", "storkey", "pseudoinverse")


def as_spins(x, name: str, n_units: Optional[int] = None, *, dtype=torch.float32,
             device=None) -> torch.Tensor:
    """Check ``x`` and return it as ±1 floats of the same shape.

    ``x`` has shape ``(n,)`` or ``(m, n)`` (``n == n_units`` when given), finite values in {-1, +1}
    or in {0, 1} (mapped by ``2x - 1``). Raises ``ValueError`` naming ``name`` otherwise.
    """
    if not torch.is_tensor(x):
        try:
            x = torch.as_tensor(x)
        except Exception:
            raise ValueError(f"{name}: expected a tensor of ±1 or 0/1 values, got "
                             f"{type(x).__name__}") from None
    if x.is_complex():
        raise ValueError(f"{name}: expected real ±1 or 0/1 values, got a {x.dtype} tensor")
    if x.dim() not in (1, 2):
        raise ValueError(f"{name}: expected shape (n,) or (m, n), got {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: expected at least one state, got an empty tensor of shape "
                         f"{tuple(x.shape)}")
    if n_units is not None and x.shape[-1] != n_units:
        want = f"({n_units},) or (m, {n_units})"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    x = x.to(device=device, dtype=dtype)
    if not torch.isfinite(x).all():
        bad = "NaN" if torch.isnan(x).any() else "inf"
        raise ValueError(f"{name}: expected ±1 or 0/1 values, found {bad}")
    is_spin = (x == 1) | (x == -1)
    if bool(is_spin.all()):
        return x
    is_binary = (x == 0) | (x == 1)
    if bool(is_binary.all()):
        return 2.0 * x - 1.0
    if bool((is_spin | is_binary).all()):
        raise ValueError(f"{name}: expected values all in {{-1, +1}} or all in {{0, 1}}, found "
                         f"a mixture of -1, 0 and 1")
    bad = x[~(is_spin | is_binary)].flatten()[0].item()
    raise ValueError(f"{name}: expected values in {{-1, +1}} or {{0, 1}}, found {bad:g}")


class Hopfield(ConfigChecked):
    """Hopfield network of ``n_units`` ±1 units.

    Parameters
    ----------
    n_units : int
        Number of units n.
    rule : {"hebbian", "storkey", "pseudoinverse"}
        Storage rule used by :meth:`store` (see the module docstring).
    device, dtype
        Where the buffers live (float32 by default).

    Attributes (buffers: set by a storage rule, not by gradients)
    ----------
    weight : ``(n, n)``, symmetric, zero diagonal
    bias : ``(n,)``, zeros unless the user sets it (no rule changes it)
    patterns : ``(p, n)``, the ±1 patterns stored so far, in order
    """

    def __init__(self, n_units: int, rule: str = "hebbian", *, device=None, dtype=None):
        super().__init__()
        n_units = _v.integer(n_units, "n_units", 1)
        device, dtype = _v.device(device), _v.float_dtype(dtype)
        _v.memory(4 * 4 * n_units * n_units, f"Hopfield({n_units}): its weights", device)
        if rule not in RULES:
            raise ValueError(f"rule: expected one of {', '.join(RULES)}, got {rule!r}")
        self.n_units = n_units
        self.rule = rule
        self.register_buffer("weight", torch.zeros(n_units, n_units, dtype=dtype, device=device))
        self.register_buffer("bias", torch.zeros(n_units, dtype=dtype, device=device))
        self.register_buffer("patterns", torch.zeros(0, n_units, dtype=dtype, device=device))

    # -- configuration ------------------------------------------------------------------------
    @property
    def n_patterns(self) -> int:
        """Number of patterns stored so far."""
        return self.patterns.shape[0]

    def config(self) -> dict:
        return {"n_units": self.n_units, "rule": self.rule, "n_patterns": self.n_patterns}

    @classmethod
    def _config_args(cls, config: dict) -> dict:
        """The configuration's settings, checked strictly (see
        :mod:`boltzkit.models._validation`); nothing is allocated."""
        config_keys(config, ("n_units", "rule", "n_patterns"), "Hopfield")
        return {"n_units": config_int(config, "n_units", 1),
                "rule": config_choice(config, "rule", RULES, "hebbian"),
                "n_patterns": config_int(config, "n_patterns", 0, 0)}

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> "Hopfield":
        """The network a configuration (what :meth:`config` gave) describes, with room for its
        ``n_patterns`` patterns. Raises ``ValueError`` naming the key for a configuration that
        is not one (a float or a boolean for a size, an unknown rule or key)."""
        a = cls._config_args(config)
        model = cls(a["n_units"], rule=a["rule"], **kwargs)
        model.patterns = model.patterns.new_zeros(a["n_patterns"], model.n_units)
        return model

    @classmethod
    def tensor_shapes(cls, config: dict) -> dict:
        """``{name: shape}`` of the buffers a network of ``config`` holds, from the
        configuration alone (nothing is allocated; :func:`boltzkit.load` compares a file's
        tensors with them before it builds the model)."""
        a = cls._config_args(config)
        n = a["n_units"]
        return {"weight": (n, n), "bias": (n,), "patterns": (a["n_patterns"], n)}

    @staticmethod
    def check_tensors(tensors: dict) -> None:
        """Raise ``ValueError`` naming the tensor if a state dict (of shapes that fit) breaks
        the network's structure: ``weight`` symmetric with a zero diagonal (what makes recall
        descend the energy to a fixed point), ``patterns`` all ±1."""
        check_symmetric(tensors["weight"], "weight")
        check_values(tensors["patterns"], "patterns", (-1.0, 1.0), "±1 values")

    def extra_repr(self) -> str:
        return f"n_units={self.n_units}, rule={self.rule!r}, n_patterns={self.n_patterns}"

    def check_states(self, states, name: str = "states") -> torch.Tensor:
        """``states`` ``(n,)`` or ``(m, n)`` as ±1 floats on this model's device (see
        :func:`as_spins`)."""
        return as_spins(states, name, self.n_units, dtype=self.weight.dtype,
                        device=self.weight.device)

    # -- storage ------------------------------------------------------------------------------
    @torch.no_grad()
    def store(self, patterns) -> "Hopfield":
        """Store ``patterns`` ``(p, n)`` (or one pattern ``(n,)``), ±1 or 0/1, by this model's rule.

        Adds to the memories already stored. Returns ``self``.
        """
        xi = self.check_states(patterns, "patterns")
        if xi.dim() == 1:
            xi = xi.unsqueeze(0)
        with torch_threads(1, self.weight.device):  # small operations: see boltzkit._threads
            self._store(xi)
        return self

    def _store(self, xi: torch.Tensor) -> None:
        n = self.n_units
        w = self.weight
        if self.rule == "hebbian":
            w.addmm_(xi.t(), xi, alpha=1.0 / n)
        elif self.rule == "storkey":
            work = w.double()
            for x in xi.double():
                h = work @ x
                # ΔW = (1/n)(ξξᵀ - ξhᵀ - hξᵀ + 2W), the vectorised form of Storkey's rule with
                # h_ij = h_i - w_ij ξ_j (module docstring); the diagonal is zeroed below
                delta = torch.outer(x, x - h) - torch.outer(h, x)
                work.mul_(1.0 + 2.0 / n).add_(delta, alpha=1.0 / n)
                work.fill_diagonal_(0.0)
            w.copy_(work)
        else:  # pseudoinverse: recomputed from every pattern stored so far
            every = torch.cat([self.patterns, xi]).double()
            corr = every @ every.t() / n
            w.copy_(every.t() @ torch.linalg.pinv(corr, hermitian=True) @ every / n)
        w.fill_diagonal_(0.0)
        # symmetric by construction; enforce it exactly against rounding
        w.copy_(0.5 * (w + w.t()))
        self.patterns = torch.cat([self.patterns, xi])

    # -- energy -------------------------------------------------------------------------------
    def field(self, states: torch.Tensor) -> torch.Tensor:
        """Inputs ``W s + b`` of every unit, shape ``(m, n)`` for states ``(m, n)``."""
        return torch.addmm(self.bias, states, self.weight)

    def energy(self, states) -> torch.Tensor:
        """``E(s) = -1/2 sᵀ W s - b·s``; shape ``(m,)`` for states ``(m, n)``, ``()`` for ``(n,)``."""
        s = self.check_states(states)
        single = s.dim() == 1
        s = s.unsqueeze(0) if single else s
        e = -0.5 * ((s @ self.weight) * s).sum(-1) - s @ self.bias
        return e[0] if single else e

    # -- recall -------------------------------------------------------------------------------
    @torch.no_grad()
    def recall(self, states, mode: str = "async", max_sweeps: int = 100,
               generator: Optional[torch.Generator] = None, return_info: bool = False,
               callback: Optional[Callable[[torch.Tensor], None]] = None):
        """Run the threshold dynamics from ``states`` until nothing changes.

        Parameters
        ----------
        states : ``(n,)`` or ``(m, n)``, ±1 or 0/1
            Starting states (a batch is run all at once).
        mode : {"async", "sync"}
            ``"async"``: one unit at a time, in a random order drawn afresh for every state and
            every sweep from ``generator``; each unit takes the sign of its input, and keeps its
            state when the input is zero (within rounding). Stops when a whole sweep changes no
            unit: the result is a fixed point and the energy never increased on the way.
            ``"sync"``: every unit at once, ``s <- sign(W s + b)`` (ties keep the state). May
            end in a 2-cycle instead of a fixed point; a state stops when it reaches either.
        max_sweeps : int
            Most sweeps (async) or steps (sync).
        generator : torch.Generator, optional
            Source of the async update orders.
        return_info : bool
            Also return a dict: ``sweeps`` (int, sweeps run), ``converged`` (bool ``(m,)``: reached
            a fixed point), and for sync ``cycle`` (bool ``(m,)``: ended in a 2-cycle; the state
            returned is the last one of the cycle). Tensors of shape ``()`` for a single state.
        callback : callable, optional
            Async only: called with the ``(m, n)`` states after every single-unit update (slow;
            for tests and teaching). Must not modify its argument.

        Returns
        -------
        ±1 states of the shape of ``states`` (and the info dict if ``return_info``).
        """
        s = self.check_states(states)
        if mode not in ("async", "sync"):
            raise ValueError(f"mode: expected 'async' or 'sync', got {mode!r}")
        max_sweeps = _v.integer(max_sweeps, "max_sweeps", 1)
        _v.generator(generator)
        if callback is not None and not callable(callback):
            raise ValueError(f"callback: expected a function of the states, got "
                             f"{type(callback).__name__}")
        single = s.dim() == 1
        s = s.unsqueeze(0) if single else s.clone()
        if mode == "async":
            out, info = async_recall(self.weight, self.bias, s, max_sweeps, generator, callback)
        else:
            if callback is not None:
                raise ValueError("callback: only supported with mode='async'")
            out, info = sync_recall(self.weight, self.bias, s, max_sweeps)
        if single:
            out = out[0]
            info = {k: (v[0] if torch.is_tensor(v) else v) for k, v in info.items()}
        return (out, info) if return_info else out


# -- dynamics kernels (shared with the experiments, which run many networks at once) -----------

def _tie_tolerance(weight: torch.Tensor, bias: torch.Tensor) -> float:
    """Fields smaller than this count as zero: a sum of n terms of size at most max|w| carries a
    rounding error below about n·eps·max|w| (we allow a factor 4 on top)."""
    n = weight.shape[-1]
    scale = max(float(weight.abs().max()) if weight.numel() else 0.0,
                float(bias.abs().max()) if bias.numel() else 0.0)
    return 4.0 * n * torch.finfo(weight.dtype).eps * scale


def async_recall(weight: torch.Tensor, bias: torch.Tensor, states: torch.Tensor,
                 max_sweeps: int = 100, generator: Optional[torch.Generator] = None,
                 callback: Optional[Callable[[torch.Tensor], None]] = None):
    """Asynchronous threshold dynamics, many states (and networks) at once. Modifies ``states``.

    ``weight`` ``(n, n)`` or ``(K, n, n)`` (K networks), ``bias`` ``(n,)`` or ``(K, n)``,
    ``states`` ``(m, n)`` or ``(K, m, n)``: ±1. Returns ``(states, info)`` with the final states and
    ``info = {"sweeps": int, "converged": bool (m,) or (K, m)}``.

    Every sweep visits the units in a random order drawn from ``generator`` (one permutation per
    sweep, shared by the whole batch: each state still sees a uniformly random order, and a state's
    trajectory does not depend on what else is in the batch). The fields ``W s + b`` are computed
    once per sweep with a matrix product (which also clears rounding drift); then, unit by unit,
    the unit takes the sign of its field in every state at once, and where it flipped the fields
    are corrected by the unit's row of ``W`` (a rank-1 update), so a sweep costs about one
    ``(m, n) x (n, n)`` product plus ``n`` small vector operations.
    """
    batched = weight.dim() == 3
    w3 = weight if batched else weight.unsqueeze(0)
    b2 = bias if batched else bias.unsqueeze(0)
    s3 = states if batched else states.unsqueeze(0)  # a view: updates land in ``states``
    n = s3.shape[-1]
    tol = _tie_tolerance(w3, b2)
    changed = torch.zeros(s3.shape[:2], dtype=torch.bool, device=s3.device)
    sweeps = 0
    with torch_threads(1, s3.device):  # small operations: see boltzkit._threads
        for sweeps in range(1, max_sweeps + 1):
            fields = torch.baddbmm(b2.unsqueeze(1), s3, w3)  # (K, m, n)
            order = torch.randperm(n, generator=generator, device="cpu").tolist()
            changed.zero_()
            _unit_loop(order, s3, fields, w3, tol, changed, states, callback)
            if not changed.any():
                break
    converged = ~changed
    return states, {"sweeps": sweeps, "converged": converged if batched else converged[0]}


def _unit_loop(order, s3, fields, w3, tol, changed, states, callback):
    """One asynchronous sweep in the given unit order (see :func:`async_recall`)."""
    for i in order:
        old = s3[:, :, i]  # (K, m) view
        flip = (fields[:, :, i] * old) < -tol  # the field opposes the state
        if bool(flip.any()):
            delta = torch.where(flip, -2.0 * old, 0.0)  # new - old
            old.add_(delta)
            # fields of every unit j: += delta * w_ij (the row of W; w_ii = 0)
            fields.addcmul_(delta.unsqueeze(2), w3[:, i:i + 1, :])
            changed |= flip
        if callback is not None:
            callback(states)


def sync_recall(weight: torch.Tensor, bias: torch.Tensor, states: torch.Tensor,
                max_sweeps: int = 100):
    """Synchronous dynamics ``s <- sign(W s + b)`` (ties keep the state) for states ``(m, n)``.

    Each state stops at a fixed point or a 2-cycle (the only possible limits for a symmetric
    ``W``). Returns ``(states, {"sweeps", "converged": bool (m,), "cycle": bool (m,)})``.
    """
    tol = _tie_tolerance(weight, bias)
    s = states
    prev = torch.full_like(s, float("nan"))
    fixed = torch.zeros(s.shape[0], dtype=torch.bool, device=s.device)
    cycle = torch.zeros_like(fixed)
    sweeps = 0
    for sweeps in range(1, max_sweeps + 1):
        active = ~(fixed | cycle)
        if not active.any():
            sweeps -= 1
            break
        a = active.nonzero().squeeze(1)
        cur = s[a]
        h = torch.addmm(bias, cur, weight)
        new = torch.where(h > tol, 1.0, torch.where(h < -tol, -1.0, cur))
        fixed[a] = (new == cur).all(1)
        cycle[a] = ~fixed[a] & (new == prev[a]).all(1)
        prev[a] = cur
        s[a] = new
    return s, {"sweeps": sweeps, "converged": fixed, "cycle": cycle}
