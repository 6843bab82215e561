"""Generation from a deep belief net: block Gibbs in the top RBM, then one downward pass.

>>> v, v_mean = dbn.generate(model, 16, n_steps=1000, generator=g)

The top RBM (layer ``L - 1``) is run as any RBM (:mod:`boltzkit.samplers.gibbs`) from chains
whose bottom layer starts as fair coins; its bottom-layer state is then passed down through
the directed layers, each drawn from its RBM's visible conditional. The caller chooses the
number of Gibbs steps (the burn-in of the top-level associative memory).
"""

from __future__ import annotations

from typing import Optional

import torch

from .. import _validation as _v
from . import gibbs

__all__ = ["generate"]


@torch.no_grad()
def generate(model, n_samples: int, n_steps: int = 1000,
             generator: Optional[torch.Generator] = None) -> tuple:
    """``n_samples`` draws of the visible layer of ``model`` (a DBN).

    Returns
    -------
    ``(v, v_mean)``: the visible draws and their conditional means ``E[v | x_1]`` (what
    pictures show), each ``(n_samples, n_visible)``.
    """
    n_samples = _v.integer(n_samples, "n_samples", 1)
    n_steps = _v.integer(n_steps, "n_steps", 0)
    _v.generator(generator)
    top = model.rbm(model.n_rbms - 1)
    w = top.weight
    start = torch.rand(n_samples, top.n_visible, generator=generator, dtype=w.dtype,
                       device=w.device)
    start = top.visible.sample_from_mean(start, generator) if top.visible.discrete else start
    state = gibbs.run(top, gibbs.init(top, start, generator, check=False), n_steps, generator)
    x = state.visible
    mean = x
    for l in range(model.n_rbms - 2, -1, -1):
        mean = model.down_mean(l, x)
        units = model.visible if l == 0 else model.hidden
        x = units.sample_from_mean(mean, generator)
    return x, mean
