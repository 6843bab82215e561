"""Samplers: a State NamedTuple and pure ``init`` / ``step`` functions (BlackJAX style).

A step never loops and never touches global random state: randomness comes from the explicit
``generator`` argument. Warm-up, thinning, persistence and tempering are the caller's business.
"""

from . import gibbs
from .gibbs import GibbsState

__all__ = ["gibbs", "GibbsState"]
