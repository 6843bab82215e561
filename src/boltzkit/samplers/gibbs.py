"""Block Gibbs sampling for bipartite models (RBMs).

>>> state = gibbs.init(rbm, v0, generator)
>>> for _ in range(k):
...     state = gibbs.step(rbm, state, generator)

A :class:`GibbsState` holds a batch of chains: the visible states, the hidden states drawn from
p(h | v), and E[h | v] (kept because learning rules use it as a lower-variance statistic).
Persistent chains are simply states the caller keeps from one call to the next.

``beta`` (every function): a number, or a tensor of shape ``(n_chains,)`` giving each chain its
own inverse temperature (tempered chains side by side in one batch); it is reshaped to
``(n_chains, 1)`` for the unit families.

A model is anything with ``hidden_field(v)``, ``visible_field(h)``, unit families ``hidden`` and
``visible`` and the families' parameters ``hidden_params`` / ``visible_params`` (``None`` when
they own none), as :class:`boltzkit.models.RBM` has.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .. import _validation as _v

from ..units import Beta, row_beta

__all__ = ["GibbsState", "init", "step", "run", "sample_visible"]


class GibbsState(NamedTuple):
    """Chains of a bipartite sampler.

    visible : ``(n_chains, n_visible)``
    hidden : ``(n_chains, n_hidden)``, a draw from p(h | visible)
    hidden_mean : ``(n_chains, n_hidden)``, E[h | visible]
    """

    visible: torch.Tensor
    hidden: torch.Tensor
    hidden_mean: torch.Tensor


def init(model, visible: torch.Tensor, generator: Optional[torch.Generator] = None,
         beta: Beta = 1.0, *, check: bool = True) -> GibbsState:
    """Start chains at ``visible`` ``(n_chains, n_visible)``; the hidden layer is drawn given it
    at ``beta`` (a number or ``(n_chains,)``). ``visible`` is checked (a tensor or array of the
    model's width, finite, within the units' range) and ``generator`` too, unless
    ``check=False`` (what :func:`step` and the estimators, which pass the model's own states,
    use)."""
    if check:
        visible = model.check_visible(visible, "visible", relaxed=True)
        _v.generator(generator)
    params = model.hidden_params
    mean = model.hidden.mean(model.hidden_field(visible), row_beta(beta, visible.shape[0]),
                             params=params)
    return GibbsState(visible, model.hidden.sample_from_mean(mean, generator, params=params), mean)


def sample_visible(model, hidden: torch.Tensor, generator: Optional[torch.Generator] = None,
                   beta: Beta = 1.0) -> torch.Tensor:
    """Half a sweep: a draw of v ~ p_beta(v | hidden), shape ``(n_chains, n_visible)`` for
    ``hidden`` ``(n_chains, n_hidden)`` and ``beta`` a number or ``(n_chains,)`` (for callers,
    like CD's last step, that need no hidden draw after)."""
    params = model.visible_params
    mean = model.visible.mean(model.visible_field(hidden), row_beta(beta, hidden.shape[0]),
                              params=params)
    return model.visible.sample_from_mean(mean, generator, params=params)


def step(model, state: GibbsState, generator: Optional[torch.Generator] = None,
         beta: Beta = 1.0) -> GibbsState:
    """One full block-Gibbs sweep at ``beta`` (a number or ``(n_chains,)``): v ~ p(v | h), then
    h ~ p(h | v). Pure: returns a new state."""
    if not isinstance(state, GibbsState):
        raise ValueError(f"state: expected a GibbsState (what gibbs.init returns), got "
                         f"{type(state).__name__}")
    return init(model, sample_visible(model, state.hidden, generator, beta), generator, beta,
                check=False)


def run(model, state: GibbsState, n_steps: int, generator: Optional[torch.Generator] = None,
        beta: Beta = 1.0) -> GibbsState:
    """``n_steps`` applications of :func:`step` at ``beta`` (a number or ``(n_chains,)``; a
    convenience for callers that do not thin)."""
    n_steps = _v.integer(n_steps, "n_steps", 0)
    if not isinstance(state, GibbsState):
        raise ValueError(f"state: expected a GibbsState (what gibbs.init returns), got "
                         f"{type(state).__name__}")
    for _ in range(n_steps):
        state = step(model, state, generator, beta)
    return state
