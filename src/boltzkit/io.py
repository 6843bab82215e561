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
import math
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from . import _validation

__all__ = ["save", "load", "read_metadata", "atomic_write", "FolderLock", "FORMAT",
           "FORMAT_VERSION", "read_json", "read_header", "dtype_name", "check_dtype",
           "checked_tensor"]

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
        if self.path.is_dir():
            raise ValueError(f"{self.path}: is a folder, expected a file to write")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._remove_stale()
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.{os.getpid()}.",
                                       suffix=f".tmp{self.suffix}", dir=self.path.parent)
        except OSError as err:
            raise ValueError(f"{self.path}: cannot write there ({err.strerror or err})") \
                from None
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


def check_writable_folder(folder, what: str, keep: bool = False) -> Path:
    """Check that files can be written in ``folder``: create it (and its parents) and write and
    remove a probe file through :class:`atomic_write` (root may write where permissions say no:
    the probe settles it). With ``keep=False`` what the probe created is removed again, so a
    command refused later leaves nothing behind. One ``ValueError``, ``"{what} {folder}
    (reason)"``, otherwise."""
    folder = Path(folder)
    created = []
    top = folder
    while not top.exists() and top != top.parent:
        created.append(top)
        top = top.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / ".write-check") as tmp:
            tmp.write_bytes(b"")
        (folder / ".write-check").unlink()
    except OSError as err:
        raise ValueError(f"{what} {folder} ({err.strerror or err})") from None
    except ValueError as err:  # atomic_write's own word for the same
        reason = str(err).rsplit("(", 1)[-1].rstrip(")")
        raise ValueError(f"{what} {folder} ({reason})") from None
    finally:
        if not keep:
            for made in created:  # deepest first
                try:
                    made.rmdir()
                except OSError:
                    break
    return folder


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
    from .models import MODEL_CLASSES

    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise ValueError(f"model: expected one of {sorted(MODEL_CLASSES)}, got {name}")
    path = _path(path, "path")
    if metadata is not None and not isinstance(metadata, dict):
        raise ValueError(f"metadata: expected a dict of JSON values, got "
                         f"{type(metadata).__name__}")
    # what load refuses is not written: NaN or inf, precisions other than float32/float64
    for key, t in model.state_dict().items():
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"model: tensor {key!r} is {t.dtype}; model files hold float32 or "
                             f"float64 (convert the model with .float() or .double())")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"model: tensor {key!r} holds NaN or inf; not saved")
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
        try:
            meta["extra"] = json.dumps(metadata)
        except (TypeError, ValueError) as err:
            raise ValueError(f"metadata: expected JSON values ({err})") from None
    if preparation is not None:
        meta["preparation"] = json.dumps(preparation.to_dict())
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _path(value, name: str) -> Path:
    """``value`` as a Path (a str or os.PathLike), else a ValueError naming ``name``."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{name}: expected a file path, got {type(value).__name__}")
    return Path(value)


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


# -- reading files: JSON records and tensors, checked before anything is built ----------------

#: JSON records read from a file may nest this deep (boltzkit's own nest two or three levels)
JSON_MAX_DEPTH = 100
#: and hold integers of at most this many digits (Python's default limit for int(str), fixed
#: here so that it does not depend on ``sys.set_int_max_str_digits``)
JSON_MAX_DIGITS = 4300

#: the dtypes the tensors of a model file may have, as safetensors names them
FLOAT_DTYPES = {"F32": torch.float32, "F64": torch.float64}
_DTYPE_NAMES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2", "C64": "complex64",
                "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U64": "uint64",
                "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool"}


def _clip(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: file contents quoted in an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _names(names) -> str:
    """A list of tensor names for a message: the first few, and how many in all."""
    names = sorted(names)
    shown = ", ".join(_clip(n) for n in names[:8])
    return f"[{shown}{f', ... ({len(names)} in all)' if len(names) > 8 else ''}]"


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > JSON_MAX_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits, expected at most "
                         f"{JSON_MAX_DIGITS}")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # a literal such as 1e999999 (json.dumps writes Infinity)
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is out of "
                         f"range")
    return value


def _deeper_than(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False


def read_json(text: str, where: str):
    """Decode one JSON record read from a file, strictly: a one-line ``ValueError`` starting
    with ``where`` for text that is not JSON, nests more than :data:`JSON_MAX_DEPTH` levels,
    holds an integer of more than :data:`JSON_MAX_DIGITS` digits or a number literal out of
    float range (``1e999999``). ``NaN`` and ``Infinity``, which :func:`json.dumps` writes, are
    read as such."""
    try:
        value = json.loads(text, parse_int=_json_int, parse_float=_json_float)
    except RecursionError:
        reason = f"nested more than {JSON_MAX_DEPTH} levels deep"
    except (ValueError, OverflowError) as err:  # JSONDecodeError, and the hooks' own errors
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
    else:
        if not _deeper_than(value, JSON_MAX_DEPTH):
            return value
        reason = f"nested more than {JSON_MAX_DEPTH} levels deep"
    raise ValueError(f"{where} ({reason})")


def read_header(f) -> dict:
    """``{name: (dtype, shape)}`` of the tensors of an open safetensors file (``safe_open``),
    from its header alone: no tensor data is read. ``dtype`` is safetensors' name (``"F32"``),
    ``shape`` a tuple. (safetensors itself refuses a header whose shapes the file's size does
    not cover.)"""
    out = {}
    for name in f.keys():
        piece = f.get_slice(name)
        out[name] = (piece.get_dtype(), tuple(piece.get_shape()))
    return out


def dtype_name(dtype) -> str:
    """The name of a dtype given as safetensors spells it (``"BF16"``) or as a ``torch.dtype``,
    as torch spells it (``"bfloat16"``)."""
    if isinstance(dtype, torch.dtype):
        return str(dtype).replace("torch.", "")
    return _DTYPE_NAMES.get(dtype, _clip(dtype))


def check_dtype(name: str, dtype, where: str) -> None:
    """Refuse a tensor of a file whose dtype (safetensors' name such as ``"BF16"``, or a
    ``torch.dtype``) is not float32 or float64, with one line starting with ``where`` naming
    the tensor and its dtype."""
    if dtype_name(dtype) not in ("float32", "float64"):
        raise ValueError(f"{where}: tensor {_clip(name)} is {dtype_name(dtype)}, expected "
                         f"float32 or float64")


def checked_tensor(t: torch.Tensor, name: str, where: str, dtype=None) -> torch.Tensor:
    """A tensor read from a file, checked for use as a model's parameter or buffer: float32 or
    float64 (:func:`check_dtype`), finite, and still finite once cast to ``dtype`` (a float64
    1e300 is inf as float32). Returns it cast to ``dtype`` (when given). Raises one-line
    ``ValueError`` starting with ``where`` and naming the tensor. Shared by :func:`load` and
    :meth:`boltzkit.training.TrainState.load`."""
    check_dtype(name, t.dtype, where)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{where}: tensor {_clip(name)} holds NaN or inf")
    if dtype is not None and t.dtype != dtype:
        cast = t.to(dtype)
        if not bool(torch.isfinite(cast).all()):
            raise ValueError(f"{where}: tensor {_clip(name)} holds values too large for "
                             f"{dtype_name(dtype)} (up to "
                             f"{float(t.abs().max()):g})")
        t = cast
    return t


def read_metadata(path) -> dict:
    """The metadata of a boltzkit model file: ``{"model", "config", "extra", "preparation"}``
    (decoded JSON; ``config`` and ``extra`` are dicts; ``preparation`` is a
    :class:`boltzkit.data.Preparation` or None: the file's own record, else one read from the
    older ``extra["transform"]`` form of RBM files). No tensor data is read.

    ``extra`` is the caller's own record (:func:`save`'s ``metadata``), returned as it is:
    boltzkit writes ``epoch``, ``settings``, ``dataset`` and ``image_shape`` there, and reads
    back only ``image_shape`` (for pictures; a value that is not ``[height, width]`` fitting the
    model is ignored there).

    Raises a one-line ``ValueError`` naming the file if it is missing, corrupt or not a boltzkit
    model, if a JSON record in it is corrupt (see :func:`read_json`) or not an object, or if its
    preparation record is invalid or does not fit the model."""
    path = Path(path)
    where = f"model file: {path}"
    if not path.is_file():
        raise ValueError(f"{where} is a folder, expected a file" if path.is_dir() else
                         f"{where} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"{where} is not a readable safetensors file ({reason})") from None
    if meta.get("format") != FORMAT or "model" not in meta or "config" not in meta:
        raise ValueError(f"{where} is a safetensors file but not a boltzkit model "
                         f"(no boltzkit metadata)")
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise ValueError(f"{where} has format version {_clip(meta['format_version'])}, this "
                         f"boltzkit reads {FORMAT_VERSION}")
    config = read_json(meta["config"], f"{where} has corrupt metadata")
    if not isinstance(config, dict):
        raise ValueError(f"{where} has an invalid configuration (expected a JSON object, got "
                         f"{type(config).__name__})")
    extra = read_json(meta["extra"], f"{where} has corrupt metadata") if "extra" in meta else {}
    if not isinstance(extra, dict):
        raise ValueError(f"{where} has invalid extra metadata (expected a JSON object, got "
                         f"{type(extra).__name__})")
    record = None
    if "preparation" in meta:
        record = read_json(meta["preparation"], f"{where} has corrupt preparation record")
    elif isinstance(extra.get("transform"), dict) and "visible" in config:
        record = extra["transform"]  # the older form, written by `boltzkit train` before
    preparation = None
    if record is not None:
        from .data.preparation import Preparation

        units = _visible_of(config)[0]
        try:
            preparation = _checked_preparation(Preparation.from_dict(record, units=units),
                                               config, "preparation")
        except ValueError as err:
            raise ValueError(f"{where} has an invalid {err}") from None
    return {"model": meta["model"], "config": config, "extra": extra,
            "preparation": preparation}


def load(path, device=None) -> torch.nn.Module:
    """Read a model written by :func:`save`. Never executes code from the file.

    Everything is checked before it is used, in this order, so that a hostile file costs no
    more memory than its own tensors: the metadata (:func:`read_metadata`); the configuration,
    against the model class (``tensor_shapes``: integers where sizes go, known unit families
    and keys); the header's tensor names, dtypes (float32 or float64 only) and shapes against
    what the configuration implies; only then is the model built and the tensors read, each
    finite (also once cast to the model's precision); finally the model's structure
    (``check_tensors``: e.g. symmetric weights with a zero diagonal, a 0/1 mask).

    Raises a one-line ``ValueError`` naming the file, and the key or tensor at fault, when the
    file is missing, truncated, corrupt, of an unknown model kind, or inconsistent.
    """
    from .models import MODEL_CLASSES

    path = _path(path, "path")
    device = _validation.device(device)
    where = f"model file: {path}"
    meta = read_metadata(path)
    cls = MODEL_CLASSES.get(meta["model"])
    if cls is None:
        raise ValueError(f"{where} holds a {_clip(meta['model'])}, expected one of "
                         f"{sorted(MODEL_CLASSES)}")
    # a class added to MODEL_CLASSES from outside may lack these two: its file is then checked
    # only against the model built from it
    tensor_shapes = getattr(cls, "tensor_shapes", lambda config: {})
    check_tensors = getattr(cls, "check_tensors", lambda tensors: None)
    def configured(make):
        try:
            return make(meta["config"])
        except (KeyError, TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{where} has an invalid configuration ({err})") from None

    shapes = configured(tensor_shapes)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = read_header(f)
            for name, (dtype, _) in header.items():
                check_dtype(name, dtype, where)
            _check_shapes(header, shapes, where, partial=True)
            model = configured(cls.from_config)
            expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
            _check_shapes(header, expected, where)
            dtypes = {dtype for dtype, _ in header.values()}
            # keep the precision the model was saved in (float32 or float64)
            target = FLOAT_DTYPES[dtypes.pop()] if len(dtypes) == 1 else torch.float32
            tensors = {}
            for name in header:
                t = f.get_tensor(name)
                if tuple(t.shape) != expected[name]:  # pragma: no cover - the header said so
                    raise ValueError(f"{where}: tensor {_clip(name)} does not match its header")
                tensors[name] = checked_tensor(t, name, where, target)
    except ValueError:
        raise
    except Exception as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"{where} is corrupt ({reason})") from None
    try:
        check_tensors(tensors)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    model.to(target)
    model.load_state_dict(tensors)
    if device is not None:
        model.to(device)
    return model


def _check_shapes(header: dict, expected: dict, where: str, partial: bool = False) -> None:
    """The file's tensors (``header``: name -> (dtype, shape)) against the model's (``expected``:
    name -> shape): the same names (``partial``: every expected one present) and shapes."""
    missing = set(expected) - set(header)
    if partial and missing:
        raise ValueError(f"{where} lacks the tensor {_clip(min(missing))} its configuration "
                         f"implies (it holds {_names(header)})")
    if set(header) != set(expected) and not partial:
        raise ValueError(f"{where} holds tensors {_names(header)}, expected "
                         f"{_names(expected)}")
    for name, shape in expected.items():
        got = header[name][1]
        if got != tuple(shape):
            raise ValueError(f"{where}: tensor {_clip(name)} has shape {got}, expected "
                             f"{_clip(tuple(shape), 80)} from its configuration")
