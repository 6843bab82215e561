"""Update rules: a loss gradient keyed by parameter name becomes a change of the parameters.

A rule is a small object holding its settings; what changes during training (momentum buffers)
is a separate ``state`` dict of tensors keyed by parameter name, which the rule creates with
:meth:`Update.init_state`, changes in :meth:`Update.step`, and which the
:class:`~boltzkit.training.state.TrainState` saves, so that a resumed run continues with the
same buffers. A gradient is a mapping ``{parameter name: tensor}`` shaped like the parameters;
names missing from it are left alone, so a model with other parameters (a learned variance, a
convolutional weight, several layers) needs nothing new here.

- :class:`SGD`: ``torch.optim.SGD``'s update (momentum without dampening, L2 weight decay),
  written out to spare its per-step Python bookkeeping;
- :class:`SignStep`: the 1985 Boltzmann-machine rule (Ackley, Hinton & Sejnowski): every
  parameter moves by a fixed step ``lr`` against the sign of its gradient.

Weight decay applies to the parameters that :func:`decays` selects: the interaction weights
(``weight``, ``weight_0``, ``weight_1``, ...), never the biases (Hinton's practical guide,
section 9).

The fused dense path: for an RBM trained by CD or PCD, :meth:`SGD.fused` offers a step that
takes the estimator's samples (:class:`~boltzkit.training.estimators.Statistics`) instead of
the gradient and folds the weight update into the two gradient products (``W.addmm_``), which
spares building the ``(n_visible, n_hidden)`` gradient and a pass over it at every step. The
driver asks for it and gets ``None`` (the general path) unless the estimator declares dense
statistics, the model is a plain dense RBM and no ``reduce`` is in play.
"""

from __future__ import annotations

import abc
from typing import Callable, Dict, Mapping, Optional

import torch

from .. import _products as products
from .. import _validation as check

__all__ = ["Update", "SGD", "SignStep", "decays", "RBM_PARAMETERS"]

# the parameter names of a plain dense RBM: what the fused path knows how to update
RBM_PARAMETERS = ("weight", "visible_bias", "hidden_bias")


def decays(name: str) -> bool:
    """True for the parameters weight decay applies to: ``weight`` and ``weight_<k>``."""
    return name == "weight" or name.startswith("weight_")


class Update(abc.ABC):
    """Base class of an update rule (see the module docstring)."""

    def init_state(self, params: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The rule's state before the first step (empty: buffers are made on first use)."""
        return {}

    @abc.abstractmethod
    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor],
             lr: float, state: Dict[str, torch.Tensor]) -> None:
        """Change ``params`` in place against the loss gradient ``grads`` (never modified:
        estimators may hand out tensors they keep); ``state`` is updated in place."""

    def fused(self, estimator, model) -> Optional[Callable]:
        """A step taking the estimator's samples instead of a gradient, or ``None``."""
        return None

    def config(self) -> dict:
        """Settings as JSON (what a training state records, so a resume can check them)."""
        return {"rule": type(self).__name__}


class SGD(Update):
    """``torch.optim.SGD``'s update, parameter by parameter::

        g <- g + weight_decay * p      (for the weights only, see :func:`decays`)
        buf <- momentum * buf + g      (buf = g at the first step)
        p <- p - lr * buf              (p <- p - lr * g without momentum)

    Parameters
    ----------
    momentum : float in [0, 1)
    weight_decay : float >= 0
        L2 penalty on the weights.
    lr_scale : mapping of parameter name to float > 0, optional
        Per-parameter multipliers of the learning rate: ``p <- p - lr * lr_scale[name] * buf``
        (1 for names not listed), e.g. ``{"visible_log_variance": 0.01}`` for the slower
        variance updates that Gaussian RBMs with learned variances need. Without it (the
        default) the arithmetic is exactly the plain rule's.
    max_step_norm : float > 0, optional
        The largest L2 norm one hidden unit's weights (a column of the ``(n_visible,
        n_hidden)`` weight) may move by in one update: a longer step ``lr * buf`` is scaled
        down to it, column by column (the "restricted gradient" of Melchior et al.'s GRBM
        training). It stops the runaway of a Gaussian RBM's weights at a learning rate that
        is too large for them (BENCHMARKS.md, the GRBM section). Applies to ``weight`` only.
    """

    def __init__(self, momentum: float = 0.5, weight_decay: float = 0.0, lr_scale=None,
                 max_step_norm=None):
        self.momentum = check.real(momentum, "momentum", 0.0, 1.0, strict_maximum=True)
        self.weight_decay = check.real(weight_decay, "weight_decay", 0.0)
        if lr_scale is not None:
            if not isinstance(lr_scale, Mapping) or not all(isinstance(k, str) for k in lr_scale):
                raise ValueError(f"lr_scale: expected a mapping of parameter names to numbers, "
                                 f"got {type(lr_scale).__name__}")
            lr_scale = {k: check.real(v, f"lr_scale[{k!r}]", 0.0, strict_minimum=True)
                        for k, v in sorted(lr_scale.items())}
        self.lr_scale = lr_scale or None
        self.max_step_norm = None if max_step_norm is None else \
            check.real(max_step_norm, "max_step_norm", 0.0, strict_minimum=True)

    def __repr__(self):
        scale = f", lr_scale={self.lr_scale!r}" if self.lr_scale else ""
        if self.max_step_norm is not None:
            scale += f", max_step_norm={self.max_step_norm:g}"
        return f"SGD(momentum={self.momentum:g}, weight_decay={self.weight_decay:g}{scale})"

    def config(self):
        out = {"rule": "SGD", "momentum": self.momentum, "weight_decay": self.weight_decay}
        if self.lr_scale:
            out["lr_scale"] = dict(self.lr_scale)
        if self.max_step_norm is not None:
            out["max_step_norm"] = self.max_step_norm
        return out

    def step(self, params, grads, lr, state):
        for name, g in grads.items():
            p = params[name]
            if self.weight_decay and decays(name):
                g = g.add(p, alpha=self.weight_decay)
            if self.momentum:
                buf = state.get(name)
                if buf is None:
                    buf = state[name] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                g = buf
            rate = lr * self.lr_scale[name] if self.lr_scale is not None \
                and name in self.lr_scale else lr
            if self.max_step_norm is not None and name == "weight" and g.dim() == 2:
                # per column: rate * |g_j| <= max_step_norm
                g = g * (self.max_step_norm / (rate * g.norm(dim=0)).clamp(
                    min=self.max_step_norm)).unsqueeze(0)
            p.add_(g, alpha=-rate)

    def fused(self, estimator, model):
        names = tuple(name for name, _ in model.named_parameters())
        if not getattr(estimator, "dense_statistics", False) or names != RBM_PARAMETERS \
                or (self.lr_scale is not None and any(n in self.lr_scale for n in names)) \
                or self.max_step_norm is not None \
                or model.weight.dim() != 2:
            return None
        return self._fused_step

    def _fused_step(self, params, stats, lr, state) -> None:
        """The update from :class:`~boltzkit.training.estimators.Statistics` (rows are
        samples): the weight gradient ``v_negᵀ h_neg / n_neg - v_posᵀ h_pos / n_pos`` is never
        built; its two products are accumulated straight into the momentum buffer, or into the
        weight when there is none. The same arithmetic as :meth:`step` up to the order of the
        floating-point additions."""
        v_pos, h_pos, v_neg, h_neg = stats
        a_neg, a_pos = 1.0 / v_neg.shape[0], -1.0 / v_pos.shape[0]
        w, wd = params["weight"], self.weight_decay
        pairs = [(v_neg, h_neg), (v_pos, h_pos)]
        if self.momentum:
            buf = state.get("weight")
            first = buf is None  # buf = g at the first step
            if first:
                buf = state["weight"] = torch.empty_like(w)
            products.add_outer_(buf, pairs, [a_neg, a_pos], beta=0.0 if first else self.momentum)
            if wd:
                buf.add_(w, alpha=wd)
            w.add_(buf, alpha=-lr)
        else:  # w <- (1 - lr wd) w - lr g
            products.add_outer_(w, pairs, [-lr * a_neg, -lr * a_pos], beta=1.0 - lr * wd)
        self.step(params, {"visible_bias": v_neg.mean(0) - v_pos.mean(0),
                           "hidden_bias": h_neg.mean(0) - h_pos.mean(0)}, lr, state)


class SignStep(Update):
    """The 1985 rule: every parameter moves by ``lr`` against the sign of its gradient (no move
    where the gradient is exactly 0, i.e. where the two phases' statistics are equal), after
    the weights decay by ``p <- (1 - weight_decay) p``. The learning rate *is* the step size
    (2 in Ackley, Hinton & Sejnowski 1985), so a learning-rate schedule scales the step."""

    def __init__(self, weight_decay: float = 0.0):
        self.weight_decay = check.real(weight_decay, "weight_decay", 0.0, 1.0,
                                       strict_maximum=True)

    def __repr__(self):
        return f"SignStep(weight_decay={self.weight_decay:g})"

    def config(self):
        return {"rule": "SignStep", "weight_decay": self.weight_decay}

    def step(self, params, grads, lr, state):
        for name, g in grads.items():
            p = params[name]
            if self.weight_decay and decays(name):
                p.mul_(1.0 - self.weight_decay)
            p.sub_(torch.sign(g), alpha=lr)
