"""Argument checks shared by the library's functions and classes: one helper per kind of value,
each returning the plain Python value or raising one ``ValueError`` line that names the
argument, what was expected and what came.

NumPy scalars and other ``numbers.Integral`` / ``numbers.Real`` values are accepted wherever a
Python ``int`` / ``float`` is (``RBM(np.int64(64), 32)``, ``lr=np.float32(0.1)``); booleans
are not numbers here, and neither are strings.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

__all__ = ["integer", "real", "probability"]


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def integer(value, name: str, minimum: Optional[int] = 0) -> int:
    """``value`` as an int >= ``minimum`` (no bound when ``minimum`` is None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            (minimum is not None and value < minimum):
        want = "an integer" if minimum is None else \
            "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {want}, got {_shown(value)}")
    return int(value)


def real(value, name: str, minimum: Optional[float] = None, maximum: Optional[float] = None,
         *, strict_minimum: bool = False, strict_maximum: bool = False,
         allow_inf: bool = False) -> float:
    """``value`` as a float in the given range (finite unless ``allow_inf``)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real)
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (allow_inf or math.isfinite(v))
        if ok and minimum is not None:
            ok = v > minimum if strict_minimum else v >= minimum
        if ok and maximum is not None:
            ok = v < maximum if strict_maximum else v <= maximum
    if not ok:
        parts = []
        if minimum is not None:
            parts.append(f"{'>' if strict_minimum else '>='} {minimum:g}")
        if maximum is not None:
            parts.append(f"{'<' if strict_maximum else '<='} {maximum:g}")
        kind = "a number" if allow_inf else "a finite number"
        raise ValueError(f"{name}: expected {kind}{' ' + ' and '.join(parts) if parts else ''}, "
                         f"got {_shown(value)}")
    return v


def probability(value, name: str) -> float:
    """``value`` as a float in [0, 1]."""
    return real(value, name, 0.0, 1.0)
