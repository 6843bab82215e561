"""Training: gradient estimators (positive minus negative statistics), the fit loop, callbacks."""

from .estimators import CD, PCD, ExactGradient, Gradient, Statistics, statistics_gradient
from .fit import Callback, Checkpoint, FitState, fit, make_schedule, reconstruction_error

__all__ = ["CD", "PCD", "ExactGradient", "Gradient", "Statistics", "statistics_gradient",
           "Callback", "Checkpoint", "FitState", "fit", "make_schedule", "reconstruction_error"]
