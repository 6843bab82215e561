"""Unit families: the kinds of stochastic unit a Boltzmann machine is built from.

One family per module: :class:`Bernoulli` (0/1), :class:`Spin` (±1), :class:`Gaussian` (real,
unit variance: base = s²/2, so p(s|t) = N(beta t, 1)), :class:`LearnedGaussian` (real, a learned
variance per unit, ``"gaussian:learned"``) and :class:`Softmax` (one-hot groups of
``group_size`` units; ``group_size=None`` makes the whole layer one group). The contract they
share, p(s | t) ∝ exp(beta t s - base(s)), the shapes (``beta`` a number or a tensor such as
``(n, 1)``, one inverse temperature per row) and the parameters a family may own are described
in :mod:`boltzkit.units.base`.

:func:`get_units` turns a name (what a model file stores in its configuration) into a family.
A family defined outside boltzkit, for example one that owns parameters, is named by its
``spec()`` string; :func:`register_units` tells :func:`get_units` how to rebuild it, so that
:func:`boltzkit.load` can read a model made of it (its parameters come from the file's
tensors, the configuration holds only the name).
"""

from __future__ import annotations

from typing import Callable

from .base import Beta, Params, Units, _binary_states, _check_finite, _within, enumerate_states, \
    row_beta, uniform
from .bernoulli import Bernoulli
from .gaussian import DEFAULT_MIN_VARIANCE, Gaussian, LearnedGaussian
from .softmax import Softmax
from .spin import Spin

__all__ = [
    "Units",
    "Bernoulli",
    "Spin",
    "Gaussian",
    "LearnedGaussian",
    "DEFAULT_MIN_VARIANCE",
    "Softmax",
    "get_units",
    "register_units",
    "unregister_units",
    "enumerate_states",
    "uniform",
    "row_beta",
    "Beta",
    "Params",
    "UNIT_NAMES",
]

#: The built-in families' names (families added by :func:`register_units` are not listed).
UNIT_NAMES = ("bernoulli", "spin", "gaussian", "softmax")
_ALIASES = {"binary": "bernoulli", "ising": "spin"}

# name -> factory of families registered by users (see register_units)
_REGISTERED: dict[str, Callable[..., Units]] = {}


def register_units(name: str, factory: Callable[..., Units]) -> None:
    """Let :func:`get_units` (and so :func:`boltzkit.load`) build a family from ``name``.

    ``factory()`` builds the family for the spec ``"name"`` and ``factory(arg)`` for
    ``"name:arg"`` (``arg`` a string); a class whose ``spec()`` is ``name`` can be its own
    factory. ``name`` is lower case, without ``:``, and neither a built-in name nor one already
    registered (call :func:`unregister_units` first to replace it). Registration lives in the
    process only: code that loads such a model must register the family first, which is also
    what keeps loading a file from running code the user did not import.
    """
    if not isinstance(name, str) or not name or name != name.strip().lower() or ":" in name:
        raise ValueError(f"name: expected a lower-case name without ':', got {name!r}")
    if name in UNIT_NAMES or name in _ALIASES:
        raise ValueError(f"name: {name!r} is a built-in unit family")
    if name in _REGISTERED:
        raise ValueError(f"name: a unit family {name!r} is already registered")
    if not callable(factory):
        raise ValueError(f"factory: expected a callable returning a Units, got "
                         f"{type(factory).__name__}")
    _REGISTERED[name] = factory


def unregister_units(name: str) -> None:
    """Forget a family added by :func:`register_units` (``ValueError`` if there is none)."""
    if _REGISTERED.pop(name, None) is None:
        raise ValueError(f"name: no unit family {name!r} is registered")


def _expected() -> str:
    names = ", ".join(UNIT_NAMES + tuple(sorted(_REGISTERED)))
    return (f"one of {names} (or 'softmax:K', 'gaussian:learned', 'gaussian:learned:F', "
            f"'gaussian:learned:F:C')")


def get_units(spec) -> Units:
    """Turn a name into a unit family.

    ``spec`` is a :class:`Units` instance (returned as is) or one of ``"bernoulli"`` (alias
    ``"binary"``), ``"spin"`` (alias ``"ising"``), ``"gaussian"`` (unit variance),
    ``"gaussian:learned"`` (a learned variance per unit, floored at 0.01) or
    ``"gaussian:learned:F"`` (floored at F), ``"gaussian:learned:F:C"`` (kept within [F, C]), ``"softmax"`` (the whole layer one group),
    ``"softmax:K"`` (groups of K units), or the name of a family added by
    :func:`register_units` (``"name"`` or ``"name:arg"``).
    """
    if isinstance(spec, Units):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"units: expected {_expected()}, got {spec!r}")
    name, sep, arg = spec.strip().lower().partition(":")
    name = _ALIASES.get(name, name)
    if name == "bernoulli" and not sep:
        return Bernoulli()
    if name == "spin" and not sep:
        return Spin()
    if name == "gaussian" and not sep:
        return Gaussian()
    if name == "gaussian":
        kind, sep2, bounds = arg.partition(":")
        if kind == "learned" and not sep2:
            return LearnedGaussian()
        if kind == "learned":
            floor, sep3, ceiling = bounds.partition(":")
            try:
                return LearnedGaussian(float(floor), float(ceiling) if sep3 else None)
            except ValueError as err:
                raise ValueError(f"units: {spec!r}: {err}") from None
    if name == "softmax":
        if not sep:
            return Softmax()
        try:
            return Softmax(int(arg))
        except ValueError:
            pass
    factory = _REGISTERED.get(name)
    if factory is not None:
        try:
            units = factory(arg) if sep else factory()
        except (TypeError, ValueError) as err:
            raise ValueError(f"units: {spec!r}: {err}") from None
        if not isinstance(units, Units):
            raise ValueError(f"units: the factory registered for {name!r} returned a "
                             f"{type(units).__name__}, expected a Units")
        return units
    raise ValueError(f"units: expected {_expected()}, got {spec!r}")
