"""Centering for RBMs (Melchior, Fischer & Wiskott 2016, "How to center deep Boltzmann machines",
JMLR 17): the centered gradient of any RBM estimator, expressed in the model's own parameters.

The centered energy
-------------------
With offsets ``mu`` ``(n_visible,)`` and ``lam`` ``(n_hidden,)`` an RBM can be written

    E(v, h) = -(v - mu)ᵀ W (h - lam) - a_cᵀ (v - mu) - b_cᵀ (h - lam)    (+ the base terms)

Expanding the products shows that this is the ordinary RBM ``-vᵀ W h - aᵀ v - bᵀ h`` (up to a
constant, which the partition function absorbs) with

    W = W_c,    a = a_c - W lam,    b = b_c - Wᵀ mu.                                   (1)

Both are the same family of distributions; centering changes the coordinates, and with them
the direction of the gradient. The model, its files and the driver keep the original
parameters ``(W, a, b)`` = ``(weight, visible_bias, hidden_bias)``; only the step changes.

The centered gradient
---------------------
Write ``dW = <v hᵀ>_data - <v hᵀ>_model``, ``da = <v>_data - <v>_model`` and
``db = <h>_data - <h>_model`` for the ordinary log-likelihood gradient. With the offsets held
fixed over one update, the log-likelihood gradient with respect to the centered parameters is
(the energy is linear in each of them)

    G_W = <(v - mu)(h - lam)ᵀ>_data - <(v - mu)(h - lam)ᵀ>_model = dW - mu dbᵀ - da lamᵀ,
    G_a = <v - mu>_data - <v - mu>_model = da,
    G_b = db.

A step of size ``lr`` along it in centered coordinates, ``(ΔW_c, Δa_c, Δb_c) = lr (G_W, G_a,
G_b)``, moves the original parameters, by (1) with the offsets fixed, by

    ΔW = ΔW_c,    Δa = Δa_c - ΔW_c lam,    Δb = Δb_c - ΔW_cᵀ mu.

:class:`Centered` returns the loss gradient (the negative, as every estimator does) that makes
that step under ``param -= lr * grad``. In terms of the inner estimator's loss gradient
``(g_W, g_a, g_b)`` (:func:`centered_gradient`)::

    weight       C_W = g_W - mu g_bᵀ - g_a lamᵀ
    visible_bias C_a = g_a - C_W lam
    hidden_bias  C_b = g_b - C_Wᵀ mu

This is PyDeep's "centered gradient" form (``use_centered_gradient=True`` there).

What it is, as an optimiser: with ``J`` the Jacobian of (1) (the map from centered to original
coordinates), the centered gradient is ``Jᵀ g`` and the step in original coordinates ``J Jᵀ g``:
the ordinary gradient preconditioned by the positive definite ``J Jᵀ``. ``J`` is invertible (its
inverse is (1) solved for the centered parameters), so the centered direction is zero exactly
where the ordinary gradient is zero (the fixed points of learning do not move) and is otherwise
a descent direction, ``gᵀ J Jᵀ g = |Jᵀ g|² > 0``. With ``mu = 0`` and ``lam = 0`` it is the
ordinary gradient.

The offsets
-----------
Exponentially moving averages of batch means, kept in the estimator's state (so that a resumed
run continues with them, bit-identically)::

    mu  <- (1 - rate) mu  + rate * mean over the batch of v
    lam <- (1 - rate) lam + rate * mean over the batch of E[h | v]

with the means taken, per layer, from the data (``d``: the positive statistics), from the
model (``m``: the inner estimator's negative samples) or their average (``a``), spelled by
``offsets`` as two letters, visible then hidden. The default ``"dd"`` (both from the data) is
what the paper recommends: it reached the best log-likelihoods in its experiments, while the
variants that use the model's means were prone to diverge; the moving average (rather than the
current batch's mean) is its remedy for the noise of batch means. ``rate = 0.01`` is the
default of PyDeep (the library of the paper's first author) and the setting of its MNIST
tutorial. ``offsets="aa"`` with ``rate=1`` is the enhanced gradient of Cho, Raiko & Ilin (2011),
which the paper shows to be this kind of centering. The model-side means come with the samples
the inner estimator draws anyway, so every variant costs the same.

Initial values: ``mu`` the mean of the data the state is started from, ``lam`` the hidden
units' mean at zero field (0.5 for Bernoulli units): PyDeep's defaults (``'AUTO'``).

Order within an update: as in PyDeep's trainer (which implements the paper's training
algorithm), the batch's means first move the offsets, and the gradient is then centered on the
moved offsets. (In centered coordinates, moving the offsets calls for re-parameterising the
centered biases so that the model stays the same; in the original coordinates kept here nothing
changes, since the model never depended on the offsets.)

Starting point: PyDeep starts the *centered* biases at ``a_c = σ⁻¹(mu)`` (the data's base
rates) and ``b_c = 0`` for binary hidden units. By (1) that is ``a = σ⁻¹(mu) - W lam`` and
``b = -Wᵀ mu`` in the model's parameters. With the small initial weights of
:class:`~boltzkit.models.RBM` the driver's default start (``a = σ⁻¹(mu)``, ``b = 0``) is close
to it; with large ones, set the biases by (1) before training to reproduce it.

Momentum and weight decay
-------------------------
:class:`~boltzkit.training.updates.SGD` accumulates its momentum buffer from these transformed
directions in the original coordinates. The transformation is linear and depends only on the
offsets, so while the offsets are fixed the buffer is the image of the buffer that momentum on
the centered parameters would hold, and the trajectories are identical. When the offsets move
the two differ: here each past direction keeps the transformation of its own batch, there the
whole buffer would be mapped by the current one; the offsets change by ``rate`` of a batch
mean's deviation per update, so the difference is of that order per step and fades with the
buffer. Weight decay (``SGD(weight_decay=...)``) applies to ``weight`` in the original
coordinates, where it leaves the biases alone; decay of ``W_c`` in centered coordinates would,
by (1), also move ``a`` and ``b`` (by ``+lr wd W lam`` and ``+lr wd Wᵀ mu``).

Learned variances
-----------------
For visible units coupling through ``phi(v) = v / σ²`` (``gaussian:learned``) ``v`` reads
``phi(v)`` above (the visible offset is a moving average of ``phi(v)``). The centered energy
differs from the original by a constant in ``(W, a, b, mu, lam)`` that does not involve the
log-variances, so their gradient is the same in both coordinates and passes through unchanged.

The fused dense update (:meth:`~boltzkit.training.updates.SGD.fused`) is declined
(``dense_statistics = False``): the centered weight direction is not the difference of two
products of samples.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Dict, Optional

import torch

from ... import _validation as check
from .base import Estimator, check_estimator
from .rbm import statistics_gradient

__all__ = ["Centered", "centered_gradient", "centered_state_type", "OFFSET_FIELDS"]

#: the fields :class:`Centered` adds to the inner estimator's state
OFFSET_FIELDS = ("visible_offset", "hidden_offset")

_VARIANTS = ("d", "m", "a")

# one state class per inner state class, so the same class object comes back every time (the
# driver checks a restored state with isinstance)
_STATE_TYPES: Dict[Any, type] = {}


def centered_state_type(inner: Optional[type]) -> type:
    """The state class of :class:`Centered` around an estimator whose state class is ``inner``
    (a NamedTuple class of tensors, or ``None`` for an estimator that keeps none): a flat
    NamedTuple with ``inner``'s fields followed by ``visible_offset`` ``(n_visible,)`` and
    ``hidden_offset`` ``(n_hidden,)``, named ``"Centered" + inner.__name__`` (``CenteredOffsets``
    for ``None``). Made once per ``inner`` and cached."""
    kind = _STATE_TYPES.get(inner)
    if kind is not None:
        return kind
    if inner is None:
        fields, name = (), "CenteredOffsets"
    else:
        fields = tuple(getattr(inner, "_fields", None) or ())
        if not fields:
            raise ValueError(f"estimator: its state_type {getattr(inner, '__name__', inner)!r} is "
                             f"not a NamedTuple class (Centered extends a flat NamedTuple state)")
        clash = [f for f in OFFSET_FIELDS if f in fields]
        if clash:
            raise ValueError(f"estimator: its state {inner.__name__} already has the field(s) "
                             f"{clash}, which Centered adds")
        name = "Centered" + inner.__name__
    kind = namedtuple(name, fields + OFFSET_FIELDS)
    kind.__module__ = __name__
    inner_doc = f"the fields of {inner.__name__}, then " if inner is not None else ""
    kind.__doc__ = (f"State of :class:`Centered`: {inner_doc}visible_offset ``(n_visible,)`` and "
                    f"hidden_offset ``(n_hidden,)``.")
    _STATE_TYPES[inner] = kind
    return kind


def centered_gradient(grads: Dict[str, torch.Tensor], visible_offset: torch.Tensor,
                      hidden_offset: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The centered loss gradient in original coordinates (see the module docstring).

    Parameters
    ----------
    grads : dict
        An RBM's ordinary loss gradient: ``weight`` ``(n_visible, n_hidden)``, ``visible_bias``
        ``(n_visible,)``, ``hidden_bias`` ``(n_hidden,)`` (other keys are passed through).
    visible_offset : tensor ``(n_visible,)``
    hidden_offset : tensor ``(n_hidden,)``

    Returns
    -------
    dict
        New tensors ``weight = g_W - mu g_bᵀ - g_a lamᵀ``, ``visible_bias = g_a - weight lam``,
        ``hidden_bias = g_b - weightᵀ mu``; ``grads`` is left as it was. Zero offsets give the
        ordinary gradient exactly.
    """
    gw, ga, gb = grads["weight"], grads["visible_bias"], grads["hidden_bias"]
    cw = torch.addr(gw, visible_offset, gb, alpha=-1.0)
    cw.addr_(ga, hidden_offset, alpha=-1.0)
    out = dict(grads)
    out["weight"] = cw
    out["visible_bias"] = torch.addmv(ga, cw, hidden_offset, alpha=-1.0)
    out["hidden_bias"] = torch.addmv(gb, cw.t(), visible_offset, alpha=-1.0)
    return out


class Centered(Estimator):
    """The centered gradient (Melchior, Fischer & Wiskott 2016) of an RBM estimator, in the
    model's own parameters (see the module docstring for the mathematics).

    Parameters
    ----------
    estimator : CD, PCD, PT, or any RBM estimator with ``statistics(model, v, state,
        generator) -> (Statistics, state)``
        Draws the samples; its state (the chains) travels inside this estimator's state.
    rate : float in (0, 1]
        Step of the offsets' moving averages (0.01: the paper's and PyDeep's default).
    offsets : str
        Where the offsets' batch means come from, visible then hidden: ``d`` the data, ``m``
        the model's samples, ``a`` their average. ``"dd"`` (default) is the paper's
        recommendation; ``"aa"`` with ``rate=1`` is the enhanced gradient.

    The state is ``state_type``: the inner state's fields followed by ``visible_offset``
    ``(n_visible,)`` and ``hidden_offset`` ``(n_hidden,)`` (:func:`centered_state_type`).
    """

    dense_statistics = False

    def __init__(self, estimator, rate: float = 0.01, offsets: str = "dd"):
        check_estimator(estimator)
        if not callable(getattr(estimator, "statistics", None)):
            raise ValueError(f"estimator: Centered needs an RBM estimator offering "
                             f"statistics(model, v, state, generator) (CD, PCD, PT), got "
                             f"{estimator!r}")
        self.estimator = estimator
        self.rate = check.real(rate, "rate", 0.0, 1.0, strict_minimum=True)
        if not (isinstance(offsets, str) and len(offsets) == 2 and
                all(c in _VARIANTS for c in offsets)):
            raise ValueError(f"offsets: expected two letters from d (data), m (model), a "
                             f"(average), visible then hidden, such as 'dd', got {offsets!r}")
        self.offsets = offsets
        self._inner_type = getattr(estimator, "state_type", None)
        centered_state_type(self._inner_type)  # refuses an unusable inner state now

    @property
    def state_type(self) -> type:
        """The state's NamedTuple class (the same object for every estimator whose inner
        estimator keeps the same state class)."""
        return centered_state_type(self._inner_type)

    def __repr__(self):
        return f"Centered({self.estimator!r}, rate={self.rate!r}, offsets={self.offsets!r})"

    # -- the estimator vocabulary ---------------------------------------------------------------
    def check_model(self, model) -> None:
        """A ValueError naming ``model`` unless it is an RBM the inner estimator serves."""
        from ...models import RBM

        if not isinstance(model, RBM):
            raise ValueError(f"model: {self!r} centers RBMs, got a {type(model).__name__}")
        inner = getattr(self.estimator, "check_model", None)
        if inner is not None:
            inner(model)

    def check_data(self, model, data) -> torch.Tensor:
        """The inner estimator's check of ``data`` ``(n, n_visible)``."""
        return self.estimator.check_data(model, data)

    def init_state(self, model, data: torch.Tensor, generator: Optional[torch.Generator] = None):
        """The inner estimator's initial state, with the visible offset at the mean of ``data``
        ``(n, n_visible)`` and the hidden offset at the hidden units' mean at zero field (0.5
        for Bernoulli units)."""
        inner = self.estimator.init_state(model, data, generator)
        dt, dev = model.weight.dtype, model.weight.device
        if model.visible.identity_statistic:
            mu = data.mean(0).to(dtype=dt, device=dev)
        else:  # the offset of phi(v) (v / σ² for learned variances), what the weights meet
            mu = model.visible_statistic(data.to(dtype=dt, device=dev)).mean(0).detach()
        zero = torch.zeros(1, model.n_hidden, dtype=dt, device=dev)
        lam = model.hidden.mean(zero, params=model.hidden_params)[0].detach().clone()
        return self.state_type(*(tuple(inner) if inner is not None else ()), mu, lam)

    def _batch_means(self, model, stats):
        v_pos, h_pos, v_neg, h_neg = stats
        if not model.visible.identity_statistic:  # offsets of phi(v), what the weights meet
            v_pos, v_neg = model.visible_statistic(v_pos), model.visible_statistic(v_neg)
        out = []
        for letter, pos, neg in ((self.offsets[0], v_pos, v_neg), (self.offsets[1], h_pos, h_neg)):
            if letter == "d":
                out.append(pos.mean(0))
            elif letter == "m":
                out.append(neg.mean(0))
            else:
                out.append(0.5 * (pos.mean(0) + neg.mean(0)))
        return out

    def __call__(self, model, v: torch.Tensor, state: Any = None,
                 generator: Optional[torch.Generator] = None):
        """``(grads, state)`` for a batch ``v`` ``(batch, n_visible)``: the centered loss
        gradient keyed ``weight``, ``visible_bias``, ``hidden_bias``, and the new state (the
        inner estimator's new state and the moved offsets, which the gradient is centered on).
        ``state=None`` starts one from the batch (:meth:`init_state`)."""
        kind = self.state_type
        if state is None:
            state = self.init_state(model, v, generator)
        elif not isinstance(state, kind):
            raise ValueError(f"state: expected a {kind.__name__} (what {self!r}.init_state "
                             f"returns), got {type(state).__name__}")
        n_inner = len(state) - len(OFFSET_FIELDS)
        inner = self._inner_type(*state[:n_inner]) if self._inner_type is not None else None
        stats, inner = self.estimator.statistics(model, v, inner, generator)
        rate = self.rate
        mean_v, mean_h = self._batch_means(model, stats)
        mu = state.visible_offset.mul(1.0 - rate).add_(mean_v, alpha=rate)
        lam = state.hidden_offset.mul(1.0 - rate).add_(mean_h, alpha=rate)
        grads = centered_gradient(statistics_gradient(*stats, model=model), mu, lam)
        return grads, kind(*(tuple(inner) if inner is not None else ()), mu, lam)
