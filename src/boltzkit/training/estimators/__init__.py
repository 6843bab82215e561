"""Gradient estimators: positive (data) statistics minus negative (model) statistics.

Every estimator has the same small vocabulary, so that one driver
(:func:`boltzkit.training.fit`) serves them all:

- ``init_state(model, data, generator) -> state``: what it keeps between updates (persistent
  chains, a NamedTuple of tensors) or ``None``;
- ``__call__(model, batch, state, generator) -> (grads, state)``: the gradient of the *loss*
  (the negative mean log-likelihood) as a dict keyed by the model's parameter names, and the
  new state; pure: the state is passed in and handed back;
- ``check_data(model, data)``: the data checked for this estimator (CD and PCD accept grey
  values for binary units as probabilities; the others need states on the support);
- ``state_type``: the NamedTuple class of its state (``None`` when it keeps none), so that a
  saved training state can be turned back into it.

RBMs (:mod:`.rbm`): :class:`CD` (Hinton 2002) and :class:`PCD` (Tieleman 2008), which also
offer ``statistics()`` (the samples themselves) for the fused dense update, and :class:`PT`,
parallel tempering (:mod:`.tempering`; Desjardins et al. 2010). Boltzmann machines
and stacks of them (:mod:`.boltzmann`): :class:`TwoPhase`, the positive phase with the data
clamped minus the free-running negative phase (Ackley, Hinton & Sejnowski 1985). Both families:
:class:`ExactGradient` by enumeration (:mod:`.exact`), the reference the others are tested
against.

:class:`Centered` (:mod:`.centering`) wraps an RBM estimator that offers ``statistics()`` and
returns its centered gradient (Melchior, Fischer & Wiskott 2016) in the model's own parameters.
"""

from .base import Estimator, check_estimator
from .boltzmann import PhaseStatistics, TwoPhase, collect_statistics, pair_statistics, \
    phase_gradient
from .centering import Centered
from .dbm import MeanFieldPCD, dbm_gradient, layer_statistics
from .exact import ExactGradient
from .rbm import CD, PCD, Sparsity, Statistics, statistics_gradient
from .tempering import PT

__all__ = ["Estimator", "check_estimator", "CD", "PCD", "PT", "Statistics", "statistics_gradient",
           "TwoPhase", "PhaseStatistics", "pair_statistics", "collect_statistics",
           "phase_gradient", "ExactGradient", "Centered", "Sparsity",
           "MeanFieldPCD", "dbm_gradient", "layer_statistics"]
