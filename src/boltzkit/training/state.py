"""The training state: everything a run needs to continue, and its file.

A :class:`TrainState` holds the model, where the run stands (finished epochs, batches done in
the current epoch and that epoch's row order, updates made), the per-epoch history, the
estimator's state (persistent chains), the update rule's state (momentum buffers) and the random
generator. Saved after a finished epoch or at a batch boundary and loaded into the same model,
estimator and update rule, a run continues bit-identically on the CPU: nothing random or
stateful lives anywhere else.

The file is safetensors: tensors ``model/<name>``, ``update/<name>``, ``estimator/<field>``,
``generator`` (the generator's state bytes) and ``perm`` (the current epoch's row order, while
an epoch is unfinished), and JSON metadata (``progress``, ``history``, ``config``: the settings
a resume is checked against). Loading it never executes code.

A run over several processes (:mod:`boltzkit.distributed`) writes the same file from process 0,
with the chains and sampling generator of every process ``r`` as ``rank<r>/estimator/<field>``
and ``rank<r>/generator`` instead of ``estimator/<field>``, ``generator`` being the run's
generator (the one that draws the epoch order, the same in every process), and the metadata
record ``world_size``; a one-process file has neither.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = ["TrainState", "STATE_FORMAT", "STATE_FILE", "data_fingerprint", "same_data"]

STATE_FORMAT = "boltzkit-train-state"
STATE_VERSION = "1"
STATE_FILE = "train_state.safetensors"


@dataclass
class TrainState:
    """Where a training run stands (what callbacks see, what :func:`~boltzkit.training.fit`
    returns and resumes from).

    Attributes
    ----------
    model : torch.nn.Module
    generator : torch.Generator
        The run's only source of randomness.
    epochs : int
        Epochs the run is to train in all.
    epoch : int
        Finished epochs (1-based label of the last finished one).
    batch : int
        Batches done in the current, unfinished epoch (0 at an epoch boundary).
    step : int
        Updates made since the run began.
    perm : tensor ``(n_samples,)`` or None
        The current epoch's row order while it is unfinished.
    history : list of dict
        One entry per finished epoch (``epoch``, ``lr``, ``seconds`` and the monitors' figures).
    estimator_state : NamedTuple of tensors or None
        The estimator's state (persistent chains).
    update_state : dict of tensors
        The update rule's state (momentum buffers), keyed by parameter name.
    seconds : float
        Training time so far (monitors and callbacks excluded).
    lr : float
        The learning rate of the last update.
    grads : dict of tensors or None
        The last update's loss gradient, for callbacks that watch it (``None`` on the fused
        dense path, which never builds it; not saved).
    start_scale : dict
        Each parameter's largest magnitude when the run began (the divergence check measures
        growth from it).
    config : dict
        The settings the run was started with (estimator, update rule, batch size, learning
        rate and schedule, the data's size and checksum): a resume is checked against them.
    stop : bool
        Set by a callback to end training after the current epoch.
    interrupted : bool
        Set when Ctrl-C or SIGTERM asked training to end (it ends at the next batch boundary).
    signal : str or None
        Which signal did (``"SIGINT"``, ``"SIGTERM"``).
    consistent : bool
        False when an exception struck in the middle of an update: the parameters are then
        neither before nor after a batch, and nothing is written from them.
    diverged : bool
        Set when training stopped because the parameters ran away.
    sampling_generator : torch.Generator or None
        In a run over several processes, this process's generator for sampling (``generator``
        then draws only the epoch order, the same in every process); None in one process.
    world_size : int
        Processes the run trains over (1: one).
    shards : list of dict or None
        Only in a state loaded from a distributed run's file, until :func:`fit` takes its own
        out: per process, ``{"estimator_state", "generator"}``.
    distributed : boltzkit.distributed.Group or None
        The process group of the run in progress (not saved).
    """

    model: torch.nn.Module
    generator: torch.Generator
    epochs: int
    epoch: int = 0
    batch: int = 0
    step: int = 0
    perm: Optional[torch.Tensor] = None
    history: list = field(default_factory=list)
    estimator_state: Any = None
    update_state: dict = field(default_factory=dict)
    seconds: float = 0.0
    lr: float = math.nan
    grads: Optional[dict] = None
    config: dict = field(default_factory=dict)
    start_scale: dict = field(default_factory=dict)
    stop: bool = False
    interrupted: bool = False
    signal: Optional[str] = None
    consistent: bool = True
    diverged: bool = False
    sampling_generator: Optional[torch.Generator] = None
    world_size: int = 1
    shards: Optional[list] = None
    distributed: Any = field(default=None, repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True when every planned epoch has been trained."""
        return self.epoch >= self.epochs and self.batch == 0

    # -- the file ---------------------------------------------------------------------------
    def save(self, path, metadata: Optional[dict] = None,
             shards: Optional[list] = None) -> Path:
        """Write the state to ``path`` (safetensors, atomically). ``metadata``: JSON-able
        extras stored with it (the command line keeps its settings there). ``shards``: in a
        run over several processes, every process's ``{"estimator/<field>": tensor,
        "generator": state bytes}`` in rank order (what
        :meth:`boltzkit.distributed.Group.gather_shards` returns), written in place of this
        process's chains."""
        from safetensors.torch import save_file

        from ..io import atomic_write

        tensors = {f"model/{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"update/{k}": v for k, v in self.update_state.items()})
        est = self.estimator_state
        est_meta = None
        if est is not None:
            if not hasattr(est, "_fields"):
                raise ValueError(f"estimator state: expected a NamedTuple of tensors, got "
                                 f"{type(est).__name__}")
            est_meta = {"type": type(est).__name__, "fields": list(est._fields)}
            if shards is None:
                tensors.update({f"estimator/{k}": getattr(est, k) for k in est._fields})
        if shards is not None:
            for r, shard in enumerate(shards):
                tensors.update({f"rank{r}/{k}": v for k, v in shard.items()})
        tensors["generator"] = self.generator.get_state()
        if self.perm is not None:
            tensors["perm"] = self.perm
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        meta = {
            "format": STATE_FORMAT, "format_version": STATE_VERSION,
            "model": type(self.model).__name__,
            "model_config": json.dumps(self.model.config()),
            "progress": json.dumps({"epoch": self.epoch, "batch": self.batch,
                                    "step": self.step, "epochs": self.epochs,
                                    "seconds": self.seconds, "lr": self.lr,
                                    "start_scale": self.start_scale}),
            "history": json.dumps(self.history, default=_plain),
            "config": json.dumps(self.config, default=_plain),
            "estimator_state": json.dumps(est_meta),
            "generator_device": str(self.generator.device),
            "extra": json.dumps(metadata or {}, default=_plain),
        }
        if shards is not None:
            meta["world_size"] = str(len(shards))
        path = Path(path)
        with atomic_write(path) as tmp:
            save_file(tensors, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path, model: torch.nn.Module, estimator=None) -> "TrainState":
        """Read a state written by :meth:`save` into ``model`` (which must be of the same class
        and configuration). ``estimator`` turns the saved chains back into its state type;
        without it ``estimator_state`` is a dict of tensors (:func:`fit` converts it).

        Raises ``ValueError`` naming the file and the problem for a missing, corrupt or
        foreign file, or one that does not belong to ``model``."""
        if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "config",
                                                                           None)):
            raise ValueError(f"model: expected the boltzkit model the state belongs to, got "
                             f"{type(model).__name__}")
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path: expected a state file or run folder, got "
                             f"{type(path).__name__}")
        if Path(path).is_dir():  # a run folder, as fit(resume=...) takes
            path = Path(path) / STATE_FILE
        tensors, meta = _read(Path(path), model)
        state = _build(Path(path), tensors, meta, model)
        if estimator is not None:
            state.estimator_state = restore_estimator_state(estimator, state.estimator_state,
                                                            path)
            for shard in state.shards or ():
                shard["estimator_state"] = restore_estimator_state(
                    estimator, shard["estimator_state"], path)
        return state

    @staticmethod
    def read_metadata(path) -> dict:
        """The decoded JSON metadata of a state file (``progress``, ``history``, ``config``,
        ``extra``, ...), without loading its tensors."""
        from safetensors import safe_open

        path = Path(path)
        _exists(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as err:
            raise ValueError(f"training state: {path} is not a readable safetensors file "
                             f"({err})") from None
        return _decode(path, meta)


def _plain(value):
    """JSON for what callbacks may leave in the history: numbers held as tensors or NumPy
    scalars become floats (or lists), anything else its text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _exists(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"training state: {path} does not exist")


def _decode(path: Path, meta: dict) -> dict:
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"training state: {path} is not a boltzkit training state")
    if meta.get("format_version") != STATE_VERSION:
        raise ValueError(f"training state: {path} has format version "
                         f"{meta.get('format_version')!r}, this boltzkit reads {STATE_VERSION}")
    out = {}
    for key in ("model_config", "progress", "history", "config", "estimator_state", "extra"):
        try:
            out[key] = json.loads(meta[key])
        except KeyError:
            raise ValueError(f"training state: {path} lacks its {key!r} record") from None
        except (ValueError, RecursionError) as err:
            raise ValueError(f"training state: {path} has a corrupt {key!r} record "
                             f"({type(err).__name__})") from None
    out["model"] = meta.get("model")
    out["generator_device"] = meta.get("generator_device", "cpu")
    world = meta.get("world_size", "1")
    if not (isinstance(world, str) and world.isdigit() and 1 <= int(world) <= 2 ** 20):
        raise ValueError(f"training state: {path} has an invalid world_size ({world!r})")
    out["world_size"] = int(world)
    return out


def _read(path: Path, model=None):
    """The file's tensors and decoded metadata; with ``model``, its model tensors are checked
    against the model's from the header before any tensor data is read."""
    from safetensors import safe_open

    from ..io import read_header

    _exists(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = _decode(path, f.metadata() or {})
            if model is not None:
                _check_owner(path, meta, model)
                _check_header(path, read_header(f), model)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except ValueError:
        raise
    except Exception as err:  # safetensors' own errors for truncated or corrupt files
        raise ValueError(f"training state: {path} is corrupt ({err})") from None
    return tensors, meta


def _check_owner(path: Path, meta: dict, model) -> None:
    """The state belongs to a model of ``model``'s class and configuration."""
    if meta["model"] != type(model).__name__ or \
            meta["model_config"] != json.loads(json.dumps(model.config())):
        raise ValueError(f"training state: {path} belongs to a {meta['model']} "
                         f"{meta['model_config']}, not to this {type(model).__name__} "
                         f"{model.config()}")


def _check_header(path: Path, header: dict, model) -> None:
    """The model tensors a state file's header lists (``model/<name>``: dtype, shape) against
    ``model``'s: the same names, float32 or float64 (:func:`boltzkit.io.check_dtype`), and the
    model's own dtype and shapes."""
    from ..io import check_dtype, dtype_name

    where = f"training state: {path}"
    expected = model.state_dict()
    got = _group(header, "model/")
    if set(got) != set(expected):
        raise ValueError(f"{where} holds model tensors {sorted(got)[:8]}, expected "
                         f"{sorted(expected)}")
    for k, (dtype, shape) in got.items():
        want = expected[k]
        if want.is_floating_point():
            check_dtype(k, dtype, where)
        if shape != tuple(want.shape) or dtype_name(dtype) != dtype_name(want.dtype):
            raise ValueError(f"{where}: tensor {k!r} is {dtype_name(dtype)} {shape}, the model "
                             f"has {dtype_name(want.dtype)} {tuple(want.shape)}")


def _group(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _int(value, name: str, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"training state: {path} has an invalid {name} ({value!r})")
    return value


def _build(path: Path, tensors: dict, meta: dict, model) -> TrainState:
    from ..io import checked_tensor

    _check_owner(path, meta, model)
    expected = model.state_dict()
    got = _group(tensors, "model/")
    if set(got) != set(expected):
        raise ValueError(f"training state: {path} holds model tensors {sorted(got)}, expected "
                         f"{sorted(expected)}")
    where = f"training state: {path}"
    for k, t in got.items():
        want = expected[k]
        if t.shape != want.shape or t.dtype != want.dtype:
            raise ValueError(f"{where}: tensor {k!r} is {t.dtype} "
                             f"{tuple(t.shape)}, the model has {want.dtype} {tuple(want.shape)}")
        if want.is_floating_point():
            checked_tensor(t, k, where)
    check = getattr(type(model), "check_tensors", None)  # the model's structure (symmetry, ...)
    if check is not None:
        try:
            check(got)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    params = dict(model.named_parameters())
    update = _group(tensors, "update/")
    for k, t in update.items():
        if k not in params or t.shape != params[k].shape:
            raise ValueError(f"{where}: update buffer {k!r} matches no "
                             f"parameter of the model")
        checked_tensor(t, f"update/{k}", where, params[k].dtype)
    progress = meta["progress"]
    if not isinstance(progress, dict):
        raise ValueError(f"training state: {path} has an invalid 'progress' record")
    epoch = _int(progress.get("epoch"), "epoch", path)
    batch = _int(progress.get("batch"), "batch", path)
    step = _int(progress.get("step"), "step", path)
    epochs = _int(progress.get("epochs"), "epochs", path)
    history = meta["history"]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ValueError(f"training state: {path} has an invalid 'history' record")
    perm = tensors.get("perm")
    # a run on a tensor keeps its epoch's row order while inside an epoch; a run on batches
    # from an iterable (a DataLoader) has none: fit checks which it is
    if perm is not None and (batch == 0 or perm.dim() != 1 or perm.dtype != torch.int64):
        raise ValueError(f"training state: {path}: the row order does not match its position "
                         f"(epoch {epoch}, batch {batch})")
    device = meta["generator_device"]
    generator = _generator(path, tensors.get("generator"), device, "generator")
    dev = next(iter(expected.values())).device if expected else torch.device("cpu")
    est_meta = meta["estimator_state"]
    if est_meta is not None and (not isinstance(est_meta, dict) or
                                 not isinstance(est_meta.get("fields"), list)):
        raise ValueError(f"training state: {path} has an invalid 'estimator_state' record")

    def chains(prefix: str):
        if est_meta is None:
            return None
        fields = _group(tensors, prefix)
        if set(fields) != set(est_meta["fields"]):
            raise ValueError(f"training state: {path}: estimator tensors {sorted(fields)} do "
                             f"not match its record {est_meta['fields']}")
        return {"type": est_meta.get("type"),
                "fields": {k: _fresh(fields[k], dev) for k in est_meta["fields"]}}

    world = meta.get("world_size", 1)
    shards = None
    if world == 1:
        raw = chains("estimator/")
    else:  # a run over several processes: each one's chains and sampling generator
        if _group(tensors, "estimator/"):
            raise ValueError(f"training state: {path}: a state of {world} processes holds "
                             f"chains outside its processes' records")
        raw = None
        shards = [{"estimator_state": chains(f"rank{r}/estimator/"),
                   "generator": _generator(path, tensors.get(f"rank{r}/generator"), device,
                                           f"rank{r}/generator")} for r in range(world)]
    with torch.no_grad():
        model.load_state_dict({k: v.to(dev) for k, v in got.items()})
    scale = progress.get("start_scale", {})
    if not isinstance(scale, dict) or not all(isinstance(v, (int, float))
                                              for v in scale.values()):
        raise ValueError(f"training state: {path} has an invalid 'start_scale' record")
    seconds = progress.get("seconds", 0.0)
    lr = progress.get("lr", math.nan)
    return TrainState(
        model=model, generator=generator, epochs=epochs, epoch=epoch, batch=batch, step=step,
        perm=_fresh(perm, dev) if perm is not None else None, history=history,
        estimator_state=raw, update_state={k: _fresh(v, dev) for k, v in update.items()},
        seconds=float(seconds) if isinstance(seconds, (int, float)) else 0.0,
        lr=float(lr) if isinstance(lr, (int, float)) else math.nan,
        config=meta["config"] if isinstance(meta["config"], dict) else {},
        start_scale={k: float(v) for k, v in scale.items()}, world_size=world, shards=shards)


def _generator(path: Path, gstate, device: str, name: str) -> torch.Generator:
    """The generator whose state bytes a file holds as ``name``."""
    if gstate is None or gstate.dtype != torch.uint8 or gstate.dim() != 1:
        raise ValueError(f"training state: {path} lacks a valid {name} state")
    try:
        generator = torch.Generator(device=device)
        generator.set_state(gstate)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"training state: {path}: its {name} ({device}) cannot be restored "
                         f"here ({err})") from None
    return generator


def _fresh(t: torch.Tensor, device) -> torch.Tensor:
    """A copy of a loaded tensor in memory torch allocated itself. Tensors read from a file can
    sit at any alignment, and BLAS kernels may round differently on unaligned inputs: a resumed
    run would then drift from the uninterrupted one in the last bits."""
    return torch.empty_like(t, device=device, memory_format=torch.contiguous_format).copy_(t)


def restore_estimator_state(estimator, raw, path="training state"):
    """Turn the saved record ``{"type", "fields"}`` back into ``estimator``'s state type (a
    NamedTuple); ``None`` stays ``None``; a state already of the right type is returned."""
    if raw is None or not isinstance(raw, dict):
        return raw
    kind = getattr(estimator, "state_type", None)
    if kind is None or raw.get("type") != kind.__name__ or \
            set(raw["fields"]) != set(kind._fields):
        raise ValueError(f"training state: {path} holds a {raw.get('type')} estimator state, "
                         f"{estimator!r} keeps "
                         f"{kind.__name__ if kind is not None else 'no state'}")
    return kind(**raw["fields"])


def data_fingerprint(data: torch.Tensor) -> list:
    """``[n_rows, n_columns, sum, row-weighted sum]`` of ``data`` ``(n, d)``: a cheap check
    (one pass, under a millisecond for 10000 x 784) that a resumed run trains on the same data
    in the same order. Row sums in the data's precision, the rest in float64; compare with
    :func:`same_data`, which allows for another machine's rounding of the row sums."""
    flat = data.detach().reshape(data.shape[0], -1)  # images (n, C, H, W) as rows; 2-D: a view
    rows = flat.sum(1).double()
    weights = torch.arange(1, data.shape[0] + 1, dtype=torch.float64, device=rows.device)
    return [int(data.shape[0]), int(flat.shape[1]), float(rows.sum()),
            float((rows * weights).sum())]


def same_data(a, b) -> bool:
    """Whether two :func:`data_fingerprint` records describe the same data (sizes equal, sums
    equal to a relative 1e-6)."""
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == 4):
        return False
    return a[:2] == b[:2] and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6)
                                  for x, y in zip(a[2:], b[2:]))
