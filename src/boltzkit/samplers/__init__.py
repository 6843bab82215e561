"""Samplers: a State NamedTuple and pure ``init`` / ``step`` functions (BlackJAX style).

A step never loops and never touches global random state: randomness comes from the explicit
``generator`` argument. Warm-up, thinning, persistence and the tuning of a tempering ladder are
the caller's business.

- :mod:`~boltzkit.samplers.gibbs`: block Gibbs for bipartite models (RBMs);
- :mod:`~boltzkit.samplers.tempering`: parallel tempering (replica exchange) on top of it;
- :mod:`~boltzkit.samplers.sequential`: one unit at a time, for fully connected machines.
"""

from . import dbm, dbn, gibbs, tempering
from .dbm import DBMGibbsState
from .gibbs import GibbsState
from .tempering import PTState, SwapInfo

__all__ = ["gibbs", "tempering", "dbm", "dbn", "DBMGibbsState", "GibbsState", "PTState", "SwapInfo"]
