"""Parallel tempering as a gradient estimator for RBMs (Desjardins et al. 2010; Cho, Raiko &
Ilin 2010).

Like :class:`~boltzkit.training.estimators.rbm.PCD`, the negative statistics come from
persistent chains; here the chains at beta = 1 are the coldest replica of a parallel-tempering
sampler (:mod:`boltzkit.samplers.tempering`), whose hotter replicas mix freely and hand their
states down by swaps. That is what PCD lacks once the model's modes are sharp: its chains stay in
the mode they are in while the parameters move.

The ladder starts evenly spaced from 1 to 0 (:func:`boltzkit.samplers.tempering.ladder`) and,
with ``adapt_every`` set (the default, every 100 updates), is re-spaced from the swap rates
measured since the last adaptation so that every neighbour pair swaps equally often
(:func:`~boltzkit.samplers.tempering.adapt_ladder`; a model that sharpens as it trains needs a
denser ladder near beta = 1). The ladder, the swap counters and the chains are the estimator's
state, saved with every checkpoint; ``state.betas`` and
:func:`~boltzkit.samplers.tempering.acceptance` tell how the ladder stands.
"""

from __future__ import annotations

from typing import Optional

import torch

from ... import _validation as check
from ...samplers import tempering
from .rbm import CD, Statistics

__all__ = ["PT"]


class PT(CD):
    """Parallel-tempering estimator: ``k`` tempering steps per update on ``replicas`` replicas
    of ``n_chains`` persistent chains each (default ``min(100, n_samples)``, as PCD); the
    negative statistics are those of the beta = 1 replica.

    Parameters
    ----------
    k : int
        Tempering steps (swaps, then a block-Gibbs sweep of every replica) per update.
    n_chains : int, optional
        Chains per replica (the statistics use the ``n_chains`` chains at beta = 1).
    replicas : int, optional
        Rungs of the ladder, including beta = 1 (default 10, or as many as ``betas``). The cost of an update grows about
        in proportion: the sampling is ``replicas`` times PCD's.
    betas : sequence, optional
        The starting ladder (1 strictly down to a value >= 0); default evenly spaced from 1 to 0
        with ``replicas`` rungs.
    adapt_every : int or None
        Re-space the ladder for equal swap rates every this many updates (None: keep it).
    """

    state_type = tempering.PTState

    def __init__(self, k: int = 1, n_chains: Optional[int] = None,
                 replicas: Optional[int] = None, betas=None, adapt_every: Optional[int] = 100):
        super().__init__(k)
        self.n_chains = None if n_chains is None else check.integer(n_chains, "n_chains", 1)
        if betas is not None:
            b = tempering.check_ladder(betas)
            if replicas is not None and replicas != b.shape[0]:
                raise ValueError(f"replicas: {replicas} disagrees with the {b.shape[0]} betas "
                                 f"given")
            self.betas = b.tolist()
            self.replicas = len(self.betas)
        else:
            self.replicas = 10 if replicas is None else check.integer(replicas, "replicas", 2)
            self.betas = None
        self.adapt_every = None if adapt_every is None else check.integer(
            adapt_every, "adapt_every", 1)

    def init_state(self, model, data: torch.Tensor, generator=None) -> tempering.PTState:
        """Every replica's chains start at the same rows of ``data`` drawn at random."""
        n = self.n_chains or min(100, data.shape[0])
        check.memory(4 * 4 * n * self.replicas * (model.n_visible + model.n_hidden),
                     f"n_chains {n} x replicas {self.replicas}: the tempered chains",
                     data.device)
        where = generator.device if generator is not None else "cpu"
        idx = torch.randint(0, data.shape[0], (n,), generator=generator, device=where)
        v0 = data[idx.to(data.device)]
        v0 = model.visible.sample_from_mean(v0, generator) if model.visible.discrete else v0
        betas = self.betas if self.betas is not None else tempering.ladder(self.replicas)
        return tempering.init(model, v0, betas, generator, check=False)

    def statistics(self, model, v, state=None, generator=None):
        """Returns ``(Statistics, state)``: the data with E[h | v], and the beta = 1 chains after
        ``k`` more tempering steps with their E[h | v]."""
        if state is None:
            state = self.init_state(model, v, generator)
        h_pos = model.hidden_mean(v, check=False)
        for _ in range(self.k):
            state, _ = tempering.step(model, state, generator)
        if self.adapt_every is not None and int(state.step) % (self.adapt_every * self.k) == 0:
            betas = tempering.adapt_ladder(state.betas, tempering.acceptance(state))
            state = tempering.reset_counts(state._replace(betas=betas.to(state.betas)))
        n = state.visible.shape[0] // state.betas.shape[0]
        return Statistics(v, h_pos, state.visible[:n], state.hidden_mean[:n]), state

    def __repr__(self):
        ladder = f", betas={[round(b, 6) for b in self.betas]}" if self.betas is not None else ""
        return (f"PT(k={self.k}, n_chains={self.n_chains}, replicas={self.replicas}{ladder}, "
                f"adapt_every={self.adapt_every})")
