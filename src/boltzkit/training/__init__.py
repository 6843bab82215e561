"""The training core: one driver for every model that learns by positive minus negative
statistics.

- :func:`fit` (:mod:`.loop`): mini-batches, learning-rate schedule, callbacks, divergence
  checks, interruption at batch boundaries, resume;
- :class:`TrainState` (:mod:`.state`): everything a run needs to continue, saved to and loaded
  from safetensors;
- estimators (:mod:`.estimators`): :class:`CD`, :class:`PCD`, :class:`PT`, :class:`TwoPhase`,
  :class:`ExactGradient`, each returning the loss gradient keyed by parameter name, and
  :class:`Centered`, the centered gradient of an RBM estimator;
- update rules (:mod:`.updates`): :class:`SGD`, :class:`SignStep`;
- callbacks (:mod:`.callbacks`): :class:`Checkpoint` (a resumable run folder),
  :class:`Progress`, monitors (:class:`LikelihoodMonitor`: the held-out log-likelihood).
"""

from .callbacks import Callback, Checkpoint, LikelihoodMonitor, PhaseDifferenceMonitor, \
    Progress, ReconstructionMonitor, reconstruction_error
from .estimators import CD, PCD, PT, Centered, Estimator, ExactGradient, Statistics, TwoPhase, \
    statistics_gradient
from .estimators.dbm import MeanFieldPCD
from .greedy import pretrain_dbm, train_dbn
from .loop import DivergenceError, fit, make_schedule
from .state import TrainState
from .updates import SGD, SignStep, Update

__all__ = ["fit", "make_schedule", "DivergenceError", "TrainState", "Estimator", "CD", "PCD",
           "PT", "Centered", "TwoPhase", "ExactGradient", "Statistics", "statistics_gradient",
           "Update", "SGD", "SignStep", "Callback", "Checkpoint", "Progress", "ReconstructionMonitor",
           "LikelihoodMonitor", "PhaseDifferenceMonitor", "reconstruction_error",
           "MeanFieldPCD", "pretrain_dbm", "train_dbn"]
