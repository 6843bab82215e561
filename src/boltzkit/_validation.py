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


def boolean(value, name: str) -> bool:
    """``value`` as a bool (True/False, or NumPy's bool); anything else is refused (a string
    such as ``"no"`` would otherwise count as true)."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool_", "bool"):
        return bool(value)  # numpy.bool_ (named numpy.bool since NumPy 2)
    raise ValueError(f"{name}: expected True or False, got {_shown(value)}")


MAX_SEED = 2 ** 63


def seed(value, name: str = "seed") -> int:
    """A seed a torch generator takes: an integer in [0, 2^63)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            not 0 <= value < MAX_SEED:
        raise ValueError(f"{name}: expected an integer in [0, 2^63), got {_shown(value)}")
    return int(value)


def generator(value, name: str = "generator"):
    """``value`` if it is a ``torch.Generator`` (or None)."""
    import torch

    if value is not None and not isinstance(value, torch.Generator):
        raise ValueError(f"{name}: expected a torch.Generator, got {type(value).__name__}")
    return value


def from_numpy(x, name: str):
    """``x`` itself, or a NumPy array of real numbers as a tensor sharing its data (contiguous);
    a NumPy array of anything else (strings, objects, complex) is one ValueError naming
    ``name``. What every check of data arrays starts with."""
    import numpy as np
    import torch

    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected real numbers, got a NumPy array of dtype "
                             f"{x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    return x


def rbm(value, name: str = "model"):
    """``value`` if it is a :class:`boltzkit.models.RBM` (what the evaluation functions, AIS
    among them, are written for)."""
    from .models.rbm import RBM

    if not isinstance(value, RBM):
        raise ValueError(f"{name}: expected an RBM, got {type(value).__name__}")
    return value


def device(value, name: str = "device"):
    """A ``torch.device`` this machine has, from a device or its name (None stays None)."""
    import torch

    if value is None:
        return None
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name}: expected cpu, cuda or cuda:N, got {_shown(value)}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name}: expected cpu, cuda or cuda:N, got {_shown(value)}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name}: {value} asked for, but this PyTorch has no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{name}: {value} asked for, this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def float_dtype(value, name: str = "dtype"):
    """``torch.float32`` (for None) or ``torch.float64``: the precisions models hold."""
    import torch

    if value is None:
        return torch.float32
    if value not in (torch.float32, torch.float64):
        raise ValueError(f"{name}: expected torch.float32 or torch.float64, got {_shown(value)}")
    return value


def available_memory(dev=None) -> int:
    """Bytes that tensors on ``dev`` can still take (free GPU memory, or the machine's
    available memory)."""
    import os

    import torch

    dev = torch.device("cpu") if dev is None else torch.device(dev)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def memory(n_bytes: float, what: str, dev=None) -> None:
    """Refuse, before allocating anything, work whose tensors need more than ``dev`` has."""
    have = available_memory(dev)
    if n_bytes > have:
        where = "cpu" if dev is None else str(dev)
        raise ValueError(f"{what} would take about {size_text(n_bytes)}, and {where} has "
                         f"{size_text(have)} available")
