"""Evaluation: honest likelihoods for RBMs of every unit pairing.

- :func:`log_partition_exact` / :func:`exact_log_likelihood`: enumeration of the smaller layer
  (up to 2^24 joint states, chunked; ``log_partition_exact`` is
  :func:`boltzkit.exact.rbm.log_partition`);
- :func:`ais`: forward annealed importance sampling from a base-rate model (Salakhutdinov &
  Murray 2008), log Z with a confidence interval and effective sample size;
- :func:`reverse_ais`: RAISE (Burda, Grosse & Salakhutdinov 2015), chains started at the data,
  the conservative side of the bracket;
- :func:`log_likelihood`, :func:`pseudo_likelihood` (exact and stochastic),
  :func:`reconstruction_error`, :func:`free_energy_gap` and the :class:`FreeEnergyGap` training
  callback;
- :func:`evaluate`: all of the above as one JSON-ready dict (``boltzkit evaluate``), also for
  DBNs of two RBMs and DBMs (:mod:`~boltzkit.evaluation.deep`: bounds and importance-sampled
  estimates with the log Z of :mod:`~boltzkit.evaluation.dbn` / :mod:`~boltzkit.evaluation.dbm`).

Kept apart from training: this layer only reads models.
"""

from ..exact.rbm import MAX_ENUMERATE_STATES, can_enumerate, free_energy
from ..exact.rbm import log_partition as log_partition_exact
from .ais import AISResult, DEFAULT_STEPS, ais, base_log_partition, base_visible_bias, \
    default_betas, reverse_ais
from . import dbm, dbn, deep
from .evaluate import LOG_Z_METHODS, evaluate
from .likelihood import FreeEnergyGap, LogLikelihood, exact_log_likelihood, free_energy_gap, \
    log_likelihood, pseudo_likelihood, reconstruction_error

__all__ = ["AISResult", "ais", "reverse_ais", "default_betas", "base_visible_bias",
           "base_log_partition", "DEFAULT_STEPS", "evaluate", "LOG_Z_METHODS",
           "log_partition_exact", "can_enumerate", "free_energy", "MAX_ENUMERATE_STATES",
           "LogLikelihood", "log_likelihood", "exact_log_likelihood", "pseudo_likelihood",
           "reconstruction_error", "free_energy_gap", "FreeEnergyGap", "dbm", "dbn",
           "deep"]
