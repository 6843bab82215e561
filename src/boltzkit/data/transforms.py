"""Elementary transforms of data tensors: :func:`as_tensor` (checked float32
``(n_samples, n_features)``), :func:`binarize` (threshold or Bernoulli draws), :func:`standardize`
(per-feature z-scores) and :func:`to_spin` (0/1 to ±1).

These are the building blocks; :class:`boltzkit.data.Preparation` composes them into the one
record of how raw data become a model's visible states (and back).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .. import _validation

__all__ = ["as_tensor", "binarize", "standardize", "to_spin"]


def as_tensor(x, name: str = "X") -> torch.Tensor:
    """``x`` (numpy array, nested list or tensor) as a float32 tensor ``(n_samples, n_features)``.

    Tensors keep their device. Raises ``ValueError`` naming ``name`` if ``x`` is not numeric,
    not 2-D, empty, or holds NaN/inf.
    """
    if torch.is_tensor(x):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{name}: expected a 2-D numeric array, could not convert "
                             f"({err})") from None
        if arr.dtype.kind not in "biuf":
            kind = "real numbers" if arr.dtype.kind == "c" else "numbers"
            raise ValueError(f"{name}: expected {kind}, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex() or t.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                          torch.int32, torch.int64, torch.float16,
                                          torch.bfloat16, torch.float32, torch.float64):
        raise ValueError(f"{name}: expected real numbers, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, n_features), got "
                         f"{t.dim()}-D shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one sample and one feature, got shape "
                         f"{tuple(t.shape)}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        bad = "NaN" if torch.isnan(t).any() else "inf (or values too large for float32)"
        raise ValueError(f"{name}: expected finite values, found {bad}")
    return t


def _check_tensor(x, name: str) -> torch.Tensor:
    if not torch.is_tensor(x):
        try:
            arr = np.asarray(x)
            if arr.dtype.kind != "c":
                x = torch.as_tensor(np.asarray(arr, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: expected a numeric array, could not convert ({err})") \
                from None
        if arr.dtype.kind == "c":
            raise ValueError(f"{name}: expected real numbers, got dtype {arr.dtype}")
    if x.is_complex():
        raise ValueError(f"{name}: expected real numbers, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return x


def binarize(x, method: str = "threshold", threshold: float = 0.5,
             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """0/1 version of ``x`` (any shape, e.g. ``(n_samples, n_features)``), float32, same shape.

    ``method="threshold"``: 1 where ``x > threshold``, else 0. ``method="sample"``: independent
    Bernoulli draws with probability ``x`` (needs values in [0, 1]; the randomness comes only from
    ``generator``). Loaders never binarise on their own: this is an explicit step.
    """
    x = _check_tensor(x, "x")
    if method == "threshold":
        threshold = _validation.real(threshold, "threshold")
        return (x > threshold).to(torch.float32)
    if method == "sample":
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"x: method='sample' needs probabilities in [0, 1], got values in "
                             f"[{x.min().item():g}, {x.max().item():g}]")
        return torch.bernoulli(x.to(torch.float32), generator=generator)
    raise ValueError(f"method: expected 'threshold' or 'sample', got {method!r}")


def standardize(x, mean=None, std=None):
    """Per-feature standardisation for Gaussian visible units.

    Parameters
    ----------
    x : ``(n_samples, n_features)``
    mean, std : ``(n_features,)``, optional
        Statistics to use (e.g. the training set's, to transform a test set); each that is None
        is computed from ``x`` (``std`` is the population std around ``mean``, floored at 1e-6 so
        constant pixels give z = 0 instead of a division by zero).

    Returns
    -------
    (z, mean, std) : ``z = (x - mean) / std`` of shape ``(n_samples, n_features)``, and the
    ``(n_features,)`` statistics used.
    """
    x = as_tensor(x, "x")
    d = x.shape[1]
    if mean is None:
        mean = x.mean(dim=0)
    else:
        mean = _check_tensor(mean, "mean").to(device=x.device, dtype=torch.float32)
        if mean.shape != (d,):
            raise ValueError(f"mean: expected shape ({d},), got {tuple(mean.shape)}")
    if std is None:
        std = (x - mean).pow(2).mean(dim=0).sqrt().clamp_min(1e-6)
    else:
        std = _check_tensor(std, "std").to(device=x.device, dtype=torch.float32)
        if std.shape != (d,):
            raise ValueError(f"std: expected shape ({d},), got {tuple(std.shape)}")
        if (std <= 0).any():
            raise ValueError(f"std: expected positive values, got minimum {std.min().item():g}")
    return (x - mean) / std, mean, std


def to_spin(x) -> torch.Tensor:
    """Map 0/1 values to -1/+1 (``2x - 1``), float32, same shape as ``x``.

    Raises ValueError if ``x`` holds anything other than 0 and 1.
    """
    x = _check_tensor(x, "x")
    if x.numel() and not ((x == 0) | (x == 1)).all():
        raise ValueError("x: to_spin expects only 0/1 values (binarize first), found others")
    return x.to(torch.float32) * 2 - 1
