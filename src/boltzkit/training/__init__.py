"""The training core: one driver for every model that learns by positive minus negative
statistics.

- :func:`fit` (:mod:`.loop`): mini-batches, learning-rate schedule, callbacks, divergence
  checks, interruption at batch boundaries, resume;
- :class:`TrainState` (:mod:`.state`): everything a run needs to continue, saved to and loaded
  from safetensors;
- estimators (:mod:`.estimators`): :class:`CD`, :class:`PCD`, :class:`TwoPhase`,
  :class:`ExactGradient`, each returning the loss gradient keyed by parameter name;
- update rules (:mod:`.updates`): :class:`SGD`, :class:`SignStep`;
- callbacks (:mod:`.callbacks`): :class:`Checkpoint` (a resumable run folder),
  :class:`Progress`, monitors.
"""

from .callbacks import Callback, Checkpoint, ExactLikelihoodMonitor, PhaseDifferenceMonitor, \
    Progress, ReconstructionMonitor, reconstruction_error
from .estimators import CD, PCD, Estimator, ExactGradient, Statistics, TwoPhase, \
    statistics_gradient
from .loop import DivergenceError, fit, make_schedule
from .state import TrainState
from .updates import SGD, SignStep, Update

__all__ = ["fit", "make_schedule", "DivergenceError", "TrainState", "Estimator", "CD", "PCD",
           "TwoPhase", "ExactGradient", "Statistics", "statistics_gradient", "Update", "SGD",
           "SignStep", "Callback", "Checkpoint", "Progress", "ReconstructionMonitor",
           "ExactLikelihoodMonitor", "PhaseDifferenceMonitor", "reconstruction_error"]
