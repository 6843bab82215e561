"""Model files: safetensors tensors plus the model's configuration as JSON metadata.

Loading a file never executes code: there is no pickle anywhere, only tensors and a JSON string.
Writing goes to a temporary file in the same folder, which is then renamed over the target, so a
crash or a kill never leaves a half-written model file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["save", "load", "read_metadata", "atomic_write", "FORMAT", "FORMAT_VERSION"]

FORMAT = "boltzkit"
FORMAT_VERSION = "1"


class atomic_write:
    """Context manager giving a temporary path in the target's folder; on success the file is
    renamed to ``path`` (atomic on POSIX), on error it is removed.

    >>> with atomic_write("out.png") as tmp:
    ...     fig.savefig(tmp)
    """

    def __init__(self, path, suffix: Optional[str] = None):
        self.path = Path(path)
        self.suffix = self.path.suffix if suffix is None else suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=f".tmp{self.suffix}",
                                   dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            # mkstemp creates the file readable by its owner only: give it the usual mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False


def save(model: torch.nn.Module, path, metadata: Optional[dict] = None) -> Path:
    """Write ``model`` to ``path`` as safetensors (atomically).

    The file's metadata holds ``format``, ``format_version``, ``model`` (the class name) and
    ``config`` (JSON of ``model.config()``); ``metadata`` adds more string-valued JSON entries
    (for example training settings), stored under ``extra``.
    """
    from .models import MODEL_CLASSES

    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ValueError(f"model: expected one of {sorted(MODEL_CLASSES)}, got {name}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": name,
            "config": json.dumps(model.config())}
    if metadata:
        meta["extra"] = json.dumps(metadata)
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def read_metadata(path) -> dict:
    """The metadata of a boltzkit model file: ``{"model", "config", "extra"}`` (decoded JSON).
    Raises ``ValueError`` naming the file if it is missing, corrupt or not a boltzkit model."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file: {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"model file: {path} is not a readable safetensors file ({err})") from None
    if meta.get("format") != FORMAT or "model" not in meta or "config" not in meta:
        raise ValueError(f"model file: {path} is a safetensors file but not a boltzkit model "
                         f"(no boltzkit metadata)")
    try:
        return {"model": meta["model"], "config": json.loads(meta["config"]),
                "extra": json.loads(meta["extra"]) if "extra" in meta else {}}
    except json.JSONDecodeError as err:
        raise ValueError(f"model file: {path} has corrupt metadata ({err})") from None


def load(path, device=None) -> torch.nn.Module:
    """Read a model written by :func:`save`. Never executes code from the file.

    Raises ``ValueError`` naming the file and the problem when the file is missing, truncated,
    corrupt, of an unknown model kind, or its tensors do not match its configuration.
    """
    from .models import MODEL_CLASSES

    path = Path(path)
    meta = read_metadata(path)
    cls = MODEL_CLASSES.get(meta["model"])
    if cls is None:
        raise ValueError(f"model file: {path} holds a {meta['model']!r}, expected one of "
                         f"{sorted(MODEL_CLASSES)}")
    try:
        model = cls.from_config(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"model file: {path} has an invalid configuration ({err})") from None
    expected = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = set(f.keys())
            if keys != set(expected):
                raise ValueError(f"model file: {path} holds tensors {sorted(keys)}, expected "
                                 f"{sorted(expected)}")
            tensors = {k: f.get_tensor(k) for k in keys}
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"model file: {path} is corrupt ({err})") from None
    for k, t in tensors.items():
        if t.shape != expected[k].shape:
            raise ValueError(f"model file: {path}: tensor {k!r} has shape {tuple(t.shape)}, "
                             f"expected {tuple(expected[k].shape)} from its configuration")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"model file: {path}: tensor {k!r} holds NaN or inf")
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(dtypes) == 1:  # keep the precision the model was saved in (float32 or float64)
        model.to(dtypes.pop())
    expected = model.state_dict()
    model.load_state_dict({k: t.to(expected[k].dtype) for k, t in tensors.items()})
    if device is not None:
        model.to(device)
    return model
