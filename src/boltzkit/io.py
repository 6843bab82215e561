"""Model files: safetensors tensors plus the model's configuration as JSON metadata.

Loading a file never executes code: there is no pickle anywhere, only tensors and JSON strings
(the configuration, the caller's ``extra`` metadata, and the data-preparation record
:class:`boltzkit.data.Preparation` under its own key, each validated when read).
Writing goes to a temporary file in the same folder, which is then renamed over the target, so a
crash or a kill never leaves a half-written model file.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = ["save", "load", "read_metadata", "atomic_write", "FolderLock", "FORMAT",
           "FORMAT_VERSION"]

FORMAT = "boltzkit"
FORMAT_VERSION = "1"


class atomic_write:
    """Context manager giving a temporary path in the target's folder; on success the file is
    renamed to ``path`` (atomic on POSIX), on error (or when the rename fails) it is removed.

    >>> with atomic_write("out.png") as tmp:
    ...     fig.savefig(tmp)

    The temporary file is named ``.NAME.PID.RANDOM.tmpSUFFIX``. A process killed in the middle
    of a write (SIGKILL, power loss) cannot remove its own; the next write to the same target
    removes those whose process is gone, so none lingers.
    """

    def __init__(self, path, suffix: Optional[str] = None):
        self.path = Path(path)
        self.suffix = self.path.suffix if suffix is None else suffix

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._remove_stale()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.",
                                   suffix=f".tmp{self.suffix}", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def _remove_stale(self) -> None:
        """Remove the temporary files of this target left by writers that no longer run."""
        prefix = f".{self.path.name}."
        for p in self.path.parent.glob(glob.escape(prefix) + "*.tmp*"):
            pid = p.name[len(prefix):].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                p.unlink(missing_ok=True)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)
            return False
        try:
            # mkstemp creates the file readable by its owner only: give it the usual mode
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o666 & ~umask)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and belongs to someone else
        return True
    return True


class FolderLock:
    """Exclusive use of a folder by one process (a ``.lock`` file in it, locked with
    ``fcntl.flock``): a second process asking for the same folder gets a ``ValueError`` naming
    the folder and the process that holds it. The lock dies with its process (a ``kill -9``
    leaves no stale lock), and the ``.lock`` file is removed on exit. Where ``fcntl`` does not
    exist (Windows) the lock is a no-op.

    >>> with FolderLock("runs/a", what="--out"):
    ...     train()
    """

    NAME = ".lock"

    def __init__(self, folder, what: str = "folder"):
        self.folder, self.what, self.fd = Path(folder), what, None

    def __enter__(self) -> "FolderLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        path = self.folder / self.NAME
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ValueError(f"{self.what}: {self.folder} is in use by another boltzkit "
                                 f"process (pid {holder}); one run per folder") from None
            # a holder that was just leaving may have removed the file we opened: lock anew
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd, self.path = fd, path
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None
        return False


def save(model: torch.nn.Module, path, metadata: Optional[dict] = None,
         preparation=None) -> Path:
    """Write ``model`` to ``path`` as safetensors (atomically).

    The file's metadata holds ``format``, ``format_version``, ``model`` (the class name) and
    ``config`` (JSON of ``model.config()``); ``metadata`` adds more JSON-able entries (for
    example training settings), stored under ``extra``.

    ``preparation`` (a :class:`boltzkit.data.Preparation`, or its ``to_dict()`` form) records how
    raw data become the model's visible states; it is stored as JSON under its own key,
    ``preparation``, and checked against the model (visible units, width). A ``"preparation"``
    entry of ``metadata`` is taken as this argument (so callers that pass only ``metadata``,
    such as training's ``Checkpoint``, can record it too); giving both is an error.
    """
    from .data.preparation import Preparation
    from .models import MODEL_CLASSES

    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ValueError(f"model: expected one of {sorted(MODEL_CLASSES)}, got {name}")
    if metadata and "preparation" in metadata:
        if preparation is not None:
            raise ValueError("preparation: given both as an argument and as metadata"
                             "['preparation']; give it once")
        metadata = dict(metadata)
        preparation = metadata.pop("preparation")
    config = model.config()
    if preparation is not None:
        preparation = _checked_preparation(preparation, config, "preparation")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": name,
            "config": json.dumps(config)}
    if metadata:
        meta["extra"] = json.dumps(metadata)
    if preparation is not None:
        meta["preparation"] = json.dumps(preparation.to_dict())
    path = Path(path)
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _visible_of(config) -> tuple:
    """``(units spec or None, width or None)`` of a model configuration's visible layer (an RBM's
    ``visible``/``n_visible``, a Boltzmann machine's ``units``, a Hopfield net's ``n_units``)."""
    if not isinstance(config, dict):
        return None, None
    units = config.get("visible", config.get("units"))
    width = config.get("n_visible", config.get("n_units"))
    return (units if isinstance(units, str) else None,
            width if isinstance(width, int) and not isinstance(width, bool) else None)


def _checked_preparation(record, config: dict, where: str):
    """``record`` (a Preparation or a dict) as a Preparation that fits the model ``config``:
    the same visible units and width. Raises ValueError starting with ``where``."""
    from .data.preparation import Preparation

    units, n_visible = _visible_of(config)
    if isinstance(record, Preparation):
        prep = record
    elif isinstance(record, dict):
        prep = Preparation.from_dict(record, units=units)
    else:
        raise ValueError(f"{where}: expected a boltzkit.data.Preparation or its to_dict() form, "
                         f"got {type(record).__name__}")
    if units is not None:
        try:
            same = Preparation(units).units == prep.units
        except ValueError:
            same = True  # the configuration's own check reports a bad unit spec
        if not same:
            raise ValueError(f"{where}: made for {prep.units} units, the model has {units} "
                             f"visible units")
    if prep.n_features is not None and n_visible is not None and prep.n_features != n_visible:
        raise ValueError(f"{where}: made for {prep.n_features} features, the model has "
                         f"{n_visible} visible units")
    return prep


def _loads(text, path: Path, what: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"model file: {path} has corrupt {what} "
                         f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") \
            from None


def read_metadata(path) -> dict:
    """The metadata of a boltzkit model file: ``{"model", "config", "extra", "preparation"}``
    (decoded JSON; ``preparation`` is a :class:`boltzkit.data.Preparation` or None: the file's
    own record, else one read from the older ``extra["transform"]`` form of RBM files).

    Raises ``ValueError`` naming the file if it is missing, corrupt or not a boltzkit model, or
    if its preparation record is invalid or does not fit the model."""
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
    config = _loads(meta["config"], path, "metadata")
    extra = _loads(meta["extra"], path, "metadata") if "extra" in meta else {}
    record = None
    if "preparation" in meta:
        record = _loads(meta["preparation"], path, "preparation record")
    elif isinstance(extra, dict) and isinstance(extra.get("transform"), dict) \
            and isinstance(config, dict) and "visible" in config:
        record = extra["transform"]  # the older form, written by `boltzkit train` before
    preparation = None
    if record is not None:
        from .data.preparation import Preparation

        units = _visible_of(config)[0]
        try:
            preparation = _checked_preparation(Preparation.from_dict(record, units=units),
                                               config, "preparation")
        except ValueError as err:
            raise ValueError(f"model file: {path} has an invalid {err}") from None
    return {"model": meta["model"], "config": config, "extra": extra,
            "preparation": preparation}


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
