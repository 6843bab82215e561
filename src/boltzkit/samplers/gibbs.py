"""Block Gibbs sampling for bipartite models (RBMs).

>>> state = gibbs.init(rbm, v0, generator)
>>> for _ in range(k):
...     state = gibbs.step(rbm, state, generator)

A :class:`GibbsState` holds a batch of chains: the visible states, the hidden states drawn from
p(h | v), and E[h | v] (kept because learning rules use it as a lower-variance statistic).
Persistent chains are simply states the caller keeps from one call to the next.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch

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
         beta: float = 1.0) -> GibbsState:
    """Start chains at ``visible`` ``(n_chains, n_visible)``; the hidden layer is drawn given it."""
    mean = model.hidden.mean(model.hidden_field(visible), beta)
    return GibbsState(visible, model.hidden.sample_from_mean(mean, generator), mean)


def sample_visible(model, hidden: torch.Tensor, generator: Optional[torch.Generator] = None,
                   beta: float = 1.0) -> torch.Tensor:
    """Half a sweep: a draw of v ~ p(v | hidden), shape ``(n_chains, n_visible)`` for ``hidden``
    ``(n_chains, n_hidden)`` (for callers, like CD's last step, that need no hidden draw after)."""
    return model.visible.sample_from_mean(model.visible.mean(model.visible_field(hidden), beta),
                                          generator)


def step(model, state: GibbsState, generator: Optional[torch.Generator] = None,
         beta: float = 1.0) -> GibbsState:
    """One full block-Gibbs sweep: v ~ p(v | h), then h ~ p(h | v). Pure: returns a new state."""
    return init(model, sample_visible(model, state.hidden, generator, beta), generator, beta)


def run(model, state: GibbsState, n_steps: int, generator: Optional[torch.Generator] = None,
        beta: float = 1.0) -> GibbsState:
    """``n_steps`` applications of :func:`step` (a convenience for callers that do not thin)."""
    for _ in range(n_steps):
        state = step(model, state, generator, beta)
    return state
