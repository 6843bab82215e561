"""Block Gibbs sampling on the odd and even layers of a deep Boltzmann machine, and mean-field
inference of its hidden layers given the visible one.

>>> state = dbm.init(model, v0, generator)
>>> for _ in range(k):
...     state = dbm.step(model, state, generator)
>>> layers = dbm.layers(model, state)      # [v, h_1, ..., h_L]

Given the odd layers, the even layers (0, 2, ...) of a DBM are independent of each other (each
sees only odd neighbours), and the other way round; one :func:`step` draws every even layer
given the odd ones, then every odd layer given the new even ones. Each half is an exact
conditional draw, so the sweep leaves the DBM's distribution invariant.

A :class:`DBMGibbsState` keeps the chains' layers side by side in one tensor
``(n_chains, sum(sizes))`` (so that a training state can save it as it saves any chains);
:func:`layers` splits it into views, one per layer.

Mean field (Salakhutdinov & Hinton 2009, section 3.3): the factorised q(h) = prod_l prod_j
mu_lj^h (1 - mu_lj)^(1-h) that maximises the variational lower bound
``log p(v) >= -E_q[E(v, h)] + H(q) - log Z`` satisfies the fixed-point equations
``mu_l = sigmoid(b_l + mu_{l-1} W_{l-1} + mu_{l+1} W_lᵀ)`` (``mu_0 = v``). :func:`mean_field`
starts from a bottom-up pass with the weights into every layer but the top doubled (the
pass that stands in for the missing input from above; Salakhutdinov & Hinton 2012) and then
updates the layers one after the other, bottom to top: each update maximises the bound over
that layer with the others fixed, so without damping the bound never decreases. ``damping``
``d`` replaces each update by ``(1 - d) new + d old``.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional

import torch

from .. import _validation as _v
from ..units import Beta, row_beta

__all__ = ["DBMGibbsState", "init", "step", "run", "layers", "mean_field", "bottom_up"]


class DBMGibbsState(NamedTuple):
    """Chains of a DBM.

    states : ``(n_chains, sum(sizes))``, the layers' 0/1 states side by side, visible first
    """

    states: torch.Tensor


def layers(model, state: DBMGibbsState) -> List[torch.Tensor]:
    """The chains' layers as views of ``state.states``: ``[v, h_1, ..., h_L]``, layer ``l``
    ``(n_chains, n_l)``."""
    return list(torch.split(state.states, list(model.sizes), dim=1))


def _join(xs) -> DBMGibbsState:
    return DBMGibbsState(torch.cat(list(xs), 1))


def _half(model, xs: list, parity: int, generator, beta) -> None:
    """Draw every layer of ``parity`` (0: even, 1: odd) given the others, in place in ``xs``."""
    for l in range(parity, model.n_layers, 2):
        mean = model.units.mean(model.layer_field(l, xs), beta)
        xs[l] = model.units.sample_from_mean(mean, generator)


def init(model, visible: torch.Tensor, generator: Optional[torch.Generator] = None,
         beta: Beta = 1.0, *, check: bool = True) -> DBMGibbsState:
    """Chains started at ``visible`` ``(n_chains, n_visible)`` (0/1 states; grey values are
    drawn as probabilities once): the even hidden layers start at 0 and the odd layers are
    drawn given the even ones at ``beta`` (a number or ``(n_chains,)``)."""
    if check:
        visible = model.check_visible(visible, "visible", relaxed=True)
        _v.generator(generator)
        if not bool(((visible == 0) | (visible == 1)).all()):
            visible = model.units.sample_from_mean(visible, generator)
    n = visible.shape[0]
    xs = [visible] + [visible.new_zeros(n, m) for m in model.sizes[1:]]
    _half(model, xs, 1, generator, row_beta(beta, n))
    return _join(xs)


def step(model, state: DBMGibbsState, generator: Optional[torch.Generator] = None,
         beta: Beta = 1.0) -> DBMGibbsState:
    """One sweep at ``beta`` (a number or ``(n_chains,)``): every even layer given the odd
    ones, then every odd layer given the even ones. Pure: returns a new state."""
    if not isinstance(state, DBMGibbsState):
        raise ValueError(f"state: expected a DBMGibbsState (what dbm.init returns), got "
                         f"{type(state).__name__}")
    xs = layers(model, state)
    b = row_beta(beta, xs[0].shape[0])
    _half(model, xs, 0, generator, b)
    _half(model, xs, 1, generator, b)
    return _join(xs)


def run(model, state: DBMGibbsState, n_steps: int,
        generator: Optional[torch.Generator] = None, beta: Beta = 1.0) -> DBMGibbsState:
    """``n_steps`` applications of :func:`step`."""
    n_steps = _v.integer(n_steps, "n_steps", 0)
    for _ in range(n_steps):
        state = step(model, state, generator, beta)
    return state


def bottom_up(model, v: torch.Tensor) -> List[torch.Tensor]:
    """The bottom-up pass that starts mean field: ``mu_l = sigmoid(b_l + c_l mu_{l-1}
    W_{l-1})`` with ``c_l = 2`` below the top layer and 1 at it. Returns ``[v, mu_1, ...,
    mu_L]``, layer ``l`` ``(n, n_l)``. Never checks."""
    out = [v]
    top = model.n_layers - 1
    for l in range(1, model.n_layers):
        w = getattr(model, f"weight_{l - 1}")
        t = torch.addmm(getattr(model, f"bias_{l}"), out[-1], w, alpha=2.0 if l < top else 1.0)
        out.append(torch.sigmoid(t))
    return out


def mean_field(model, v: torch.Tensor, n_steps: int = 10, damping: float = 0.0, *,
               init: Optional[List[torch.Tensor]] = None, check: bool = True
               ) -> List[torch.Tensor]:
    """Mean-field posterior of the hidden layers given ``v`` ``(n, n_visible)``.

    Parameters
    ----------
    model : DBM
    v : ``(n, n_visible)``, values in [0, 1]
    n_steps : int
        Sweeps of the fixed-point updates, each layer once per sweep, bottom to top.
    damping : float in [0, 1)
        Each update becomes ``(1 - damping) new + damping old``.
    init : list of L + 1 tensors, optional
        Starting means (``init[0]`` is ignored, ``v`` is used); default :func:`bottom_up`.

    Returns
    -------
    ``[v, mu_1, ..., mu_L]``, layer ``l`` ``(n, n_l)``.
    """
    if check:
        v = model.check_visible(v, "v", relaxed=True)
        n_steps = _v.integer(n_steps, "n_steps", 0)
        damping = _v.real(damping, "damping", 0.0, 1.0, strict_maximum=True)
        if init is not None:
            init = model.check_layers(init, "init", relaxed=True)
            if init[0].shape[0] != v.shape[0]:
                raise ValueError(f"init: expected {v.shape[0]} rows like v, got "
                                 f"{init[0].shape[0]}")
    mu = bottom_up(model, v) if init is None else [v] + [m.clone() for m in init[1:]]
    for _ in range(n_steps):
        for l in range(1, model.n_layers):
            new = torch.sigmoid(model.layer_field(l, mu))
            mu[l] = new if damping == 0.0 else torch.lerp(new, mu[l], damping)
    return mu
