"""The estimator base class and the check the driver makes of an estimator."""

from __future__ import annotations

import abc
from typing import Any, Dict, Optional, Tuple

import torch

__all__ = ["Estimator", "check_estimator"]


class Estimator(abc.ABC):
    """Base class of a gradient estimator (see :mod:`boltzkit.training.estimators`)."""

    #: the NamedTuple class of the state (None: the estimator keeps no state)
    state_type = None
    #: True when ``statistics()`` hands out dense RBM samples for the fused update
    dense_statistics = False

    def init_state(self, model, data: torch.Tensor,
                   generator: Optional[torch.Generator] = None) -> Any:
        """The state before the first update (``None`` for estimators that keep none)."""
        return None

    def check_model(self, model) -> None:
        """A ValueError naming ``model`` unless this estimator serves it (default: any)."""

    def check_data(self, model, data) -> torch.Tensor:
        """``data`` ``(n, n_visible)`` checked against the model's visible support (a
        ValueError naming ``data`` otherwise), in the model's dtype and device."""
        return model.check_visible(data, "data")

    @abc.abstractmethod
    def __call__(self, model, v: torch.Tensor, state: Any = None,
                 generator: Optional[torch.Generator] = None
                 ) -> Tuple[Dict[str, torch.Tensor], Any]:
        """``(grads, state)`` for a batch ``v`` ``(batch, n_visible)``: the loss gradient keyed
        by parameter name, and the new state."""


def check_estimator(estimator) -> None:
    """A ValueError naming ``estimator`` unless it has the estimator vocabulary."""
    if isinstance(estimator, type):
        raise ValueError(f"estimator: expected an estimator object such as {estimator.__name__}"
                         f"(...), got the class {estimator.__name__} itself")
    missing = [m for m in ("init_state", "check_data") if not callable(getattr(estimator, m,
                                                                               None))]
    if not callable(estimator) or missing:
        raise ValueError(f"estimator: expected a gradient estimator (CD, PCD, TwoPhase, "
                         f"ExactGradient, or an Estimator subclass), got "
                         f"{type(estimator).__name__}")
