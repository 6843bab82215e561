"""Checks shared by the model classes: a configuration read from a file, and the structure of
tensors read from one (symmetric weights, zero diagonals, 0/1 masks).

A configuration is what ``config()`` wrote and a model file carries as JSON, so it is checked
strictly: integers are JSON integers (not ``64.7``, not ``true``, not ``"64"``), flags are
booleans, unit specs are short strings, and keys the class does not know are refused. Every
error is a one-line ``ValueError`` naming the key or tensor, what was expected and what came.
"""

from __future__ import annotations

import math

import torch

from .. import _validation

REQUIRED = object()

#: a unit spec longer than this is refused before it is parsed (the built-in ones are short)
MAX_SPEC_LENGTH = 100


def clip(value, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters, for error messages about file contents."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # pragma: no cover - values come from checked JSON
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def layer_sizes(value, name: str, last: str = "one hidden layer") -> tuple:
    """``value`` as a tuple of at least two positive ints (a list or tuple of them); ``last``
    names the layer after the visible one in the error line."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name}: expected a list of layer sizes [n_visible, n_1, ...], got "
                         f"{clip(value)}")
    if len(value) < 2:
        raise ValueError(f"{name}: expected at least two layer sizes (visible and {last}), got "
                         f"{len(value)}")
    return tuple(_validation.integer(n, f"{name}[{i}]", 1) for i, n in enumerate(value))


def config_keys(config, known, what: str) -> dict:
    """``config`` as a dict holding only keys from ``known``; ValueError otherwise."""
    if not isinstance(config, dict):
        raise ValueError(f"config: expected a JSON object for a {what}, got "
                         f"{type(config).__name__}")
    unknown = sorted(str(k) for k in config if k not in known)
    if unknown:
        raise ValueError(f"config: a {what} has no setting {clip(unknown[0])} (expected keys "
                         f"among {', '.join(known)})")
    return config


def _get(config: dict, key: str, default):
    if key in config:
        return config[key]
    if default is REQUIRED:
        raise ValueError(f"config[{key!r}]: missing")
    return default


def config_int(config: dict, key: str, minimum: int, default=REQUIRED):
    """``config[key]`` as an int >= ``minimum`` (``default`` when absent; ``None`` stays
    ``None`` where it is the default)."""
    value = _get(config, key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"config[{key!r}]: expected an integer >= {minimum}, got {clip(value)}")
    return value


def config_bool(config: dict, key: str, default=REQUIRED) -> bool:
    value = _get(config, key, default)
    if not isinstance(value, bool):
        raise ValueError(f"config[{key!r}]: expected true or false, got {clip(value)}")
    return value


def config_positive_number(config: dict, key: str, default=REQUIRED) -> float:
    value = _get(config, key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise ValueError(f"config[{key!r}]: expected a finite number > 0, got {clip(value)}")
    return float(value)


def config_spec(config: dict, key: str, default=REQUIRED):
    """``config[key]`` as a unit spec: a string of at most :data:`MAX_SPEC_LENGTH` characters
    (whether it names a family is :func:`boltzkit.units.get_units`'s to say)."""
    value = _get(config, key, default)
    if not isinstance(value, str) or len(value) > MAX_SPEC_LENGTH:
        raise ValueError(f"config[{key!r}]: expected the name of a unit family, got "
                         f"{clip(value)}")
    return value


def config_choice(config: dict, key: str, choices, default=REQUIRED) -> str:
    value = _get(config, key, default)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"config[{key!r}]: expected one of {', '.join(choices)}, got "
                         f"{clip(value)}")
    return value


# -- structure of tensors -----------------------------------------------------------------------

def first_bad(t: torch.Tensor, bad: torch.Tensor) -> str:
    """Where the first True of ``bad`` sits in ``t`` and its value, as text."""
    index = tuple(int(i) for i in bad.nonzero()[0])
    return f"{t[index].item():g} at {index}"


def symmetry_tolerance(w: torch.Tensor) -> float:
    """How far from exactly symmetric a weight matrix may be: 64 units of rounding of its
    largest entry (the rules that make weights symmetrise them exactly; the slack admits
    weights a user set from a product such as ``X @ X.T``)."""
    scale = float(w.abs().max()) if w.numel() else 0.0
    return 64.0 * torch.finfo(w.dtype).eps * scale


def check_symmetric(w: torch.Tensor, name: str) -> None:
    """``w`` ``(..., n, n)`` symmetric (within :func:`symmetry_tolerance`) with a zero
    diagonal (exactly: the recall and sampling kernels rely on ``w_ii = 0``)."""
    diff = (w - w.transpose(-1, -2)).abs()
    tol = symmetry_tolerance(w)
    if bool((diff > tol).any()):
        raise ValueError(f"tensor {name!r}: expected a symmetric matrix, w[i, j] and w[j, i] "
                         f"differ by up to {float(diff.max()):g}")
    diag = torch.diagonal(w, dim1=-2, dim2=-1)
    if bool((diag != 0).any()):
        raise ValueError(f"tensor {name!r}: expected a zero diagonal (no unit acts on itself), "
                         f"found {first_bad(diag, diag != 0)}")


def check_values(t: torch.Tensor, name: str, values, what: str) -> None:
    """Every entry of ``t`` one of ``values``."""
    ok = torch.zeros_like(t, dtype=torch.bool)
    for v in values:
        ok |= t == v
    if not bool(ok.all()):
        raise ValueError(f"tensor {name!r}: expected {what}, found {first_bad(t, ~ok)}")


class ConfigChecked(torch.nn.Module):
    """Base of the model classes: a state dict remembers the configuration of the model it came
    from (in the state dict's own metadata, as torch keeps its version numbers there), and
    ``load_state_dict`` refuses one from a model of another configuration, say an RBM of
    other unit families, whose tensors would fit the shapes and silently mean something else.
    A plain dict of tensors (e.g. read from a file) carries no such record and is checked by
    shape only, as torch does."""

    def __init__(self):
        super().__init__()
        self.register_state_dict_post_hook(_record_config)

    @staticmethod
    def check_tensors(tensors: dict) -> None:
        """Raise ``ValueError`` naming the tensor if ``tensors`` (a state dict) break the
        model's structure, e.g. weights that must be symmetric. By default any finite values
        are a model (finiteness is :func:`boltzkit.load`'s check); classes with structure
        override it."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the tensor if the parameters break the model's structure
        (see :meth:`check_tensors`)."""
        self.check_tensors(self.state_dict())

    @classmethod
    def from_config(cls, config: dict, **kwargs):
        """The model a configuration (what :meth:`config` gave) describes; ``kwargs`` (device,
        dtype, generator) go to the constructor. Raises ``ValueError`` naming the key for a
        configuration that is not one (each class's ``_config_args`` checks its keys)."""
        return cls(**cls._config_args(config), **kwargs)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        came_from = local_metadata.get("boltzkit_config")
        if came_from is not None and came_from != _plain_config(self):
            raise ValueError(f"state_dict: comes from a {type(self).__name__} {came_from}, "
                             f"this one is {_plain_config(self)}")
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)


def _plain_config(module) -> dict:
    import json

    return json.loads(json.dumps(module.config()))


def _record_config(module, state_dict, prefix, local_metadata):
    local_metadata["boltzkit_config"] = _plain_config(module)


def as_states(x, *, units, width: int, name: str, relaxed: bool, like: torch.Tensor,
              stacked: bool = False) -> torch.Tensor:
    """A batch of a layer's states checked and in ``like``'s dtype and device: a tensor or NumPy
    array of shape ``(m, width)`` (``(..., m, width)`` when ``stacked``), real, at least one
    row, finite and on the units' support (its convex hull when ``relaxed``). One
    ``ValueError`` naming ``name`` otherwise: what every model's input checks share."""
    x = _validation.from_numpy(x, name)
    if not torch.is_tensor(x):
        raise ValueError(f"{name}: expected a tensor of shape (n, {width}), "
                         f"got {type(x).__name__}")
    if x.is_complex():
        raise ValueError(f"{name}: expected real numbers, got a {x.dtype} tensor")
    if (x.dim() != 2 and not (stacked and x.dim() > 2)) or x.shape[-1] != width:
        raise ValueError(f"{name}: expected shape (n, {width}), got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name}: expected at least one row, got an empty batch")
    x = x.to(device=like.device, dtype=like.dtype)
    units.check(x, name, relaxed)
    return x
