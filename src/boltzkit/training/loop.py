"""The driver: one training loop for every model that learns by positive minus negative
statistics (RBMs, Boltzmann machines, stacks of them, and the models that come next).

The driver is separate from the pluggable parts (NumPyro's habit): the *estimator* says how the
loss gradient is estimated (:mod:`boltzkit.training.estimators`), the *update rule* how a
gradient changes the parameters (:mod:`boltzkit.training.updates`), and everything that watches,
records or stops training is a *callback* (:mod:`boltzkit.training.callbacks`). The driver owns
mini-batches, the learning-rate schedule, divergence checks, interruption and the
:class:`~boltzkit.training.state.TrainState`, which holds everything random or stateful, so that
a run resumed from a saved state continues bit-identically on the CPU.

Interruption: while :func:`fit` runs in the main thread, Ctrl-C (SIGINT) and SIGTERM do not
break into an update; they set ``state.interrupted`` and training ends at the next batch
boundary, so the parameters, chains and momentum always describe a whole number of batches (a
second Ctrl-C interrupts at once; nothing is written from the half-done state it leaves).

Several processes: ``fit(..., distributed=boltzkit.distributed.init())`` in every process that
``torchrun`` starts trains on each one's shard of every batch and sums the statistics over them
through the ``reduce`` seam (see :mod:`boltzkit.distributed`).

Divergence: after every epoch the parameters are checked. Training stops with a
:class:`DivergenceError` (one line naming the learning rate), and the model is put back to the
last finished epoch, when a parameter is NaN or inf, or when one has run away: its largest
magnitude has grown by more than ``divergence_limit`` (default 100) since the run began, in
units of the temperature (times the model's inverse temperature, where it has one). A weight or
bias that has moved by 100 changes the odds of a unit's states by e^100: no data set needs that
(visible biases start at the data's base rates, within ±7 for binary units), while runaway
learning rates get there within an epoch (at lr 100 an RBM's hidden biases pass 300). The
growth, not the size, is measured so that Gaussian units' biases, which carry the data's own
scale, are judged by how far they moved.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import torch

from .. import _validation as check
from .callbacks import Callback, Progress, default_monitors
from .state import STATE_FILE, TrainState, data_fingerprint, restore_estimator_state, \
    same_data
from .updates import SGD, Update

__all__ = ["fit", "make_schedule", "DivergenceError", "DEFAULT_DIVERGENCE_LIMIT"]

DEFAULT_DIVERGENCE_LIMIT = 100.0

Grads = Mapping[str, torch.Tensor]
_HOOKS = ("on_fit_start", "on_batch_end", "on_epoch_end", "on_fit_end")


class DivergenceError(FloatingPointError):
    """Training stopped because the parameters became NaN/inf or ran away."""


def make_schedule(spec: Union[str, Callable[[float], float], None]) -> Callable[[float], float]:
    """Learning-rate multiplier as a function of training progress in [0, 1).

    ``"constant"`` (default), ``"linear"`` (decays linearly to 0 at the end, as Tieleman 2008
    does for PCD), ``"cosine"``, or any callable.
    """
    if spec is None or spec == "constant":
        return lambda t: 1.0
    if spec == "linear":
        return lambda t: 1.0 - t
    if spec == "cosine":
        return lambda t: 0.5 * (1.0 + math.cos(math.pi * t))
    if callable(spec):
        return spec
    raise ValueError(f"lr_schedule: expected 'constant', 'linear', 'cosine' or a callable, "
                     f"got {spec!r}")


def _schedule_name(spec) -> str:
    return "constant" if spec is None else spec if isinstance(spec, str) else "callable"


def default_estimator(model):
    """CD-1 for RBMs, the two-phase rule for Boltzmann machines."""
    from ..models import BoltzmannMachine
    from .estimators import CD, TwoPhase

    return TwoPhase() if isinstance(model, BoltzmannMachine) else CD(1)


def _inverse_temperature(model) -> float:
    t = getattr(model, "temperature", 1.0)
    return 1.0 / t if isinstance(t, (int, float)) and t > 0 else 1.0


def parameter_scale(model) -> dict:
    """The largest magnitude of each parameter, ``{name: float}`` (what :func:`runaway` measures
    growth from)."""
    return {name: float(p.detach().abs().max()) if p.numel() else 0.0
            for name, p in model.named_parameters()}


def runaway(model, limit: float, start: Mapping[str, float]) -> Optional[str]:
    """Why the model's parameters count as diverged (see the module docstring), or None;
    ``start`` is :func:`parameter_scale` at the beginning of the run."""
    beta = _inverse_temperature(model)
    for name, p in model.named_parameters():
        if not bool(torch.isfinite(p.sum())) and not bool(torch.isfinite(p).all()):
            return f"parameter {name} became NaN or inf"
        if p.numel():
            top = float(p.detach().abs().max())
            if (top - start.get(name, 0.0)) * beta > limit:
                return (f"parameter {name} ran away to |{top:.3g}|" +
                        (f" (temperature {1 / beta:g})" if beta != 1.0 else "") +
                        f", more than {limit:g} beyond where it started")
    return None


class _DeferSignals:
    """SIGINT and SIGTERM set ``state.interrupted`` instead of breaking into an update (main
    thread only; elsewhere Python's default handling stays). A second SIGINT interrupts at
    once; with ``echo`` (a process under torchrun, which passes the terminal's Ctrl-C on to
    processes that the terminal has already given it) not within ``ECHO`` seconds of the
    first."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    ECHO = 1.0

    def __init__(self, state: TrainState, enabled: bool, echo: bool = False):
        self.state, self.old, self.echo, self.first = state, None, echo, None
        self.enabled = enabled and threading.current_thread() is threading.main_thread()

    def _handler(self, signum, frame):
        now = time.monotonic()
        if self.state.interrupted and signum == signal.SIGINT and not \
                (self.echo and self.first is not None and now - self.first < self.ECHO):
            raise KeyboardInterrupt
        if self.first is None:
            self.first = now
        self.state.interrupted = True
        self.state.signal = signal.Signals(signum).name

    def __enter__(self):
        if self.enabled:
            self.old = {s: signal.getsignal(s) for s in self.SIGNALS}
            for s in self.SIGNALS:
                signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        if self.old:
            for s, h in self.old.items():
                signal.signal(s, h if h is not None else signal.SIG_DFL)
        return False


def _data(fingerprint) -> str:
    """A data fingerprint in words, for messages."""
    if isinstance(fingerprint, list) and len(fingerprint) == 4:
        return (f"{fingerprint[0]} x {fingerprint[1]}, checksums {fingerprint[2]:.6g}, "
                f"{fingerprint[3]:.6g}")
    return "batches from an iterable" if fingerprint == "batches" else str(fingerprint)


def _resume_state(resume, model, estimator, generator, config, epochs,
                  world: int = 1) -> TrainState:
    """The state to continue from: a TrainState, or a state file or run folder to load."""
    if isinstance(resume, TrainState):
        state = resume
        if not state.consistent:
            raise ValueError("resume: this state was left in the middle of an update (an "
                             "interrupt that could not wait for the batch to end); resume from "
                             "its run folder's last checkpoint instead")
        if state.model is not model:
            with torch.no_grad():
                model.load_state_dict(state.model.state_dict())
            state.model = model
        state.estimator_state = restore_estimator_state(estimator, state.estimator_state)
    else:
        path = Path(resume)
        if path.is_dir():
            path = path / STATE_FILE
        state = TrainState.load(path, model)
    if state.world_size != world:
        raise ValueError(f"resume: the run was trained over {state.world_size} "
                         f"process{'es' if state.world_size > 1 else ''}, this call runs over "
                         f"{world} (resume it over as many)")
    if not isinstance(resume, TrainState):  # (the chains once the run is known to fit)
        state.estimator_state = restore_estimator_state(estimator, state.estimator_state, path)
        for shard in state.shards or ():
            shard["estimator_state"] = restore_estimator_state(
                estimator, shard["estimator_state"], path)
    # the settings that make the run what it is must not change under it
    for key, want in config.items():
        have = state.config.get(key)
        if have is None:
            continue
        if key == "data" and have != want and not same_data(have, want):
            raise ValueError(f"resume: the run was trained on other data ({_data(have)}), this "
                             f"call gives {_data(want)}")
        if key != "data" and have != want:
            raise ValueError(f"resume: the run was trained with {key}={have}, this call asks for "
                             f"{key}={want}")
    if epochs < state.epoch or (epochs == state.epoch and state.batch):
        raise ValueError(f"epochs: the run has already trained {state.epoch} epochs"
                         f"{f' and {state.batch} batches' if state.batch else ''}, expected "
                         f"epochs >= {state.epoch + (1 if state.batch else 0)}, got {epochs}")
    if generator is not None and generator is not state.generator:
        if generator.device != state.generator.device:
            raise ValueError(f"generator: the run's generator was on {state.generator.device}, "
                             f"got one on {generator.device}")
        generator.set_state(state.generator.get_state())
        state.generator = generator
    state.epochs, state.config = epochs, dict(config)
    state.stop = state.interrupted = state.diverged = False
    return state


def _warm_start(initial, estimator, model):
    """The estimator state and update buffers a run given ``initial_state`` starts from (see
    :func:`fit`): ``(estimator state or None, {name: copied buffer})``; ValueError naming
    ``initial_state`` for anything that cannot be one."""
    if not isinstance(initial, TrainState):
        raise ValueError(f"initial_state: expected a TrainState (what fit returns), got "
                         f"{type(initial).__name__}")
    if not initial.consistent:
        raise ValueError("initial_state: this state was left in the middle of an update (an "
                         "interrupt that could not wait for the batch to end)")
    kind = getattr(estimator, "state_type", None)
    chains = initial.estimator_state
    if kind is None or chains is None:
        chains = None
    else:
        chains = restore_estimator_state(estimator, chains, "initial_state")
        if not isinstance(chains, kind):
            raise ValueError(f"initial_state: holds a {type(chains).__name__} estimator state, "
                             f"{estimator!r} keeps {kind.__name__}")
    params = dict(model.named_parameters())
    buffers = {}
    for name, buf in initial.update_state.items():
        if name not in params or buf.shape != params[name].shape:
            raise ValueError(f"initial_state: update buffer {name!r} "
                             f"{tuple(buf.shape)} matches no parameter of the model")
        buffers[name] = buf.detach().clone()
    return chains, buffers


class _Batches:
    """Where a run's batches come from: a tensor (or NumPy array) ``(n, n_visible)``, shuffled
    by the run's generator every epoch, or a re-iterable of batches (a ``DataLoader``, a list of
    tensors), taken in the order it gives them; batches that are tuples ``(x, ...)`` (what a
    ``DataLoader`` over a ``TensorDataset`` yields) give ``x``.

    ``rows``: the data (a tensor) or, for batches, the first rows (at most 1000) for monitors
    and for starting persistent chains; ``n_batches``: per epoch (``None`` for batches without
    a ``len``)."""

    def __init__(self, model, data, estimator, batch_size):
        import numpy as np

        self.model, self.estimator, self.batch_size = model, estimator, batch_size
        self.tensor = torch.is_tensor(data) or isinstance(data, np.ndarray)
        if self.tensor:
            self.data = self.rows = estimator.check_data(model, _tensor(data))
            self.n_batches = math.ceil(self.rows.shape[0] / batch_size)
            return
        what = f"a {type(data).__name__}"
        if isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
            raise ValueError(f"data: expected a tensor (n, n_visible), a NumPy array or a "
                             f"re-iterable of batches (a DataLoader), got {what}")
        if iter(data) is data:
            raise ValueError(f"data: expected a tensor (n, n_visible), a NumPy array or a "
                             f"re-iterable of batches (a DataLoader, a list), got {what}, which "
                             f"can be passed over only once")
        self.data = data
        self.n_batches = len(data) if hasattr(data, "__len__") else None
        rows, count = [], 0
        for raw in data:
            x = self.batch(raw, len(rows))
            rows.append(x)
            count += x.shape[0]
            if count >= 1000:
                break
        if not rows:
            raise ValueError("data: expected at least one batch, got none")
        self.rows = torch.cat(rows)[:1000]

    def batch(self, raw, index: int) -> torch.Tensor:
        if isinstance(raw, (tuple, list)) and raw and not isinstance(raw[0], (int, float)):
            raw = raw[0]
        if not (torch.is_tensor(raw) or hasattr(raw, "__array__")):
            raise ValueError(f"data: expected a tensor (n, n_visible), a NumPy array or batches "
                             f"of them, got batch {index} as a {type(raw).__name__}")
        return self.estimator.check_data(self.model, _tensor(raw))

    def mean(self) -> torch.Tensor:
        """Per-feature mean of all the data ``(n_visible,)`` (one pass over batches)."""
        if self.tensor:
            return self.data.mean(0)
        total, count = 0.0, 0
        for i, raw in enumerate(self.data):
            x = self.batch(raw, i)
            total, count = total + x.sum(0, dtype=torch.float64), count + x.shape[0]
        return (total / count).to(self.rows.dtype)

    def epoch(self, state):
        """The current epoch's batches from ``state.batch`` on (drawing the epoch's row order
        first when it has none)."""
        if self.tensor:
            if state.perm is None:
                state.batch = 0
                g = state.generator
                state.perm = torch.randperm(self.rows.shape[0], generator=g,
                                            device=g.device).to(self.rows.device)
            bs = self.batch_size
            for b in range(state.batch, self.n_batches):
                yield self.data.index_select(0, state.perm[b * bs:(b + 1) * bs])
            return
        for i, raw in enumerate(self.data):
            if i >= state.batch:  # a resumed epoch skips what it had done
                yield self.batch(raw, i)


def _tensor(x):
    """A NumPy array (or array-like) as a tensor; tensors as they are."""
    if torch.is_tensor(x):
        return x
    import numpy as np

    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"data: expected real numbers, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr))


def fit(model, data: torch.Tensor, *, estimator=None, update: Optional[Update] = None,
        epochs: int = 10, batch_size: int = 100, lr: float = 0.05, lr_schedule="constant",
        generator: Optional[torch.Generator] = None, callbacks: Sequence[Callback] = (),
        resume=None, reduce: Optional[Callable[[Grads], Grads]] = None,
        init_visible_bias: bool = True, monitors: Optional[Sequence[Callback]] = None,
        progress: bool = False, divergence_limit: float = DEFAULT_DIVERGENCE_LIMIT,
        handle_signals: bool = True, initial_state: Optional[TrainState] = None,
        distributed=None) -> TrainState:
    """Train ``model`` on ``data`` ``(n_samples, n_visible)`` in place.

    Parameters
    ----------
    model : RBM, BoltzmannMachine (also a stack of machines), or any model an estimator serves
    data : tensor or NumPy array ``(n_samples, n_visible)`` on the model's visible support
        (CD and PCD also take grey values in [0, 1] as probabilities for binary units),
        shuffled by ``generator`` every epoch; or, for data that do not fit in memory, a
        ``DataLoader`` or any re-iterable of batches, taken in its order and at its batch size
        (``batch_size`` then does not apply; ``(x, ...)`` tuples give ``x``). Resuming inside
        an epoch of such data skips the batches done, so they must come in the same order
        when iterated again.
    estimator : default ``CD(1)`` for RBMs, ``TwoPhase()`` for Boltzmann machines
        How the loss gradient is estimated (see :mod:`boltzkit.training.estimators`).
    update : Update, default ``SGD(momentum=0.5)``
        How a gradient changes the parameters: :class:`~boltzkit.training.updates.SGD`
        (momentum, weight decay on the weights only) or
        :class:`~boltzkit.training.updates.SignStep` (the 1985 rule).
    epochs, batch_size : int
        Passes over the shuffled data, and rows per update (the last, smaller batch is kept).
    lr : float
        Learning rate (for :class:`SignStep`, the step size).
    lr_schedule : "constant", "linear", "cosine" or callable(progress in [0, 1)) -> multiplier
    generator : torch.Generator
        All randomness (shuffling, sampling); equal seeds give equal models on the CPU.
    callbacks : sequence of Callback
        E.g. :class:`~boltzkit.training.callbacks.Checkpoint` to keep a resumable run folder.
    resume : TrainState, or the path of a state file or of a run folder
        Continue that run: the model's parameters, the chains, the momentum buffers, the
        generator and the position within the epoch are restored, and the run ends
        bit-identical (on the CPU) to the same run done without a break. The estimator, update
        rule, batch size, learning rate, schedule and data must be those of the run (checked);
        ``epochs`` may be larger than the run's, to train further (a schedule other than
        "constant" then stretches over the new total from where the run stands).
    reduce : callable(gradient dict) -> gradient dict, optional
        Applied to every gradient before the update (the seam for data-parallel training: sum
        the statistics over processes). Declines the fused dense path.
    init_visible_bias : bool
        Start the visible biases at the data's base rates (Hinton's practical guide, section
        8); not on resume.
    monitors : sequence of Callback, optional
        Epoch-end figures added to the history (default: reconstruction error for RBMs, the exact
        log-likelihood for Boltzmann machines of at most 16 units; ``[]`` for none).
    progress : bool
        Show a progress bar.
    divergence_limit : float
        See the module docstring; ``math.inf`` keeps only the NaN/inf check.
    handle_signals : bool
        Defer Ctrl-C / SIGTERM to the next batch boundary (main thread only).
    initial_state : TrainState, optional
        Warm start: a run that begins with the persistent chains (``estimator_state``) and the
        update rule's buffers (``update_state``, the momentum) of an earlier run's state, e.g.
        the one the last call returned, instead of fresh ones; ``generator`` defaults to its
        generator (continuing its stream). This is how training continues on *other* data
        (scikit-learn's ``partial_fit``): unlike ``resume``, nothing else carries over and
        nothing is checked against the earlier run (the model keeps its own parameters; the
        data, epochs and settings may differ; the run starts at epoch 0). The buffers are
        copied, so ``initial_state`` is left as it was. Chains are used only by an estimator
        of the same state type (an estimator that keeps none ignores them); not together with
        ``resume``.
    distributed : boltzkit.distributed.Group, optional
        Train over the processes of this group (what :func:`boltzkit.distributed.init`
        returns; every process calls fit with the same arguments): each trains on its shard
        of every batch, the statistics are summed over them (the ``reduce`` seam, so not
        together with ``reduce``), the persistent chains are split over them (the estimator's
        ``n_chains`` is the total), ``generator`` draws the epoch order and each process
        samples from a generator of its own; every process ends with the same parameters.
        Callbacks run everywhere; :class:`~boltzkit.training.callbacks.Checkpoint` writes
        from process 0. A group of one process trains exactly as without one. See
        :mod:`boltzkit.distributed`.

    Returns the :class:`~boltzkit.training.state.TrainState`: ``history`` holds one dict per
    finished epoch with ``epoch``, ``lr``, ``seconds`` (cumulative training time) and the
    monitors' figures; ``interrupted`` tells whether Ctrl-C or SIGTERM ended the run.

    Raises :class:`DivergenceError` (after putting the model back to the last finished epoch)
    when the parameters diverge.
    """
    from .estimators import check_estimator

    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "check_visible",
                                                                       None)):
        raise ValueError(f"model: expected a boltzkit model (RBM, BoltzmannMachine, ...), got "
                         f"{type(model).__name__}")
    epochs = check.integer(epochs, "epochs", 1)
    batch_size = check.integer(batch_size, "batch_size", 1)
    lr = check.real(lr, "lr", 0.0)
    limit = check.real(divergence_limit, "divergence_limit", 0.0, strict_minimum=True,
                       allow_inf=True)
    if update is None:
        update = SGD()
    if not isinstance(update, Update):
        raise ValueError(f"update: expected an update rule (SGD, SignStep), got "
                         f"{type(update).__name__}")
    estimator = estimator if estimator is not None else default_estimator(model)
    check_estimator(estimator)
    getattr(estimator, "check_model", lambda m: None)(model)
    check.generator(generator)
    group = distributed
    if group is not None:
        if not callable(getattr(group, "local_estimator", None)):
            raise ValueError(f"distributed: expected a boltzkit.distributed.Group (what "
                             f"boltzkit.distributed.init returns), got {type(group).__name__}")
        if reduce is not None:
            raise ValueError("reduce: a distributed run sums its statistics over the processes "
                             "itself; expected reduce=None with distributed, got both")
        group.check_batch_size(batch_size)
        if group.world_size == 1:
            group = None  # one process trains as without a group
    if resume is not None and not isinstance(resume, (TrainState, str, os.PathLike)):
        raise ValueError(f"resume: expected a TrainState, a state file or a run folder, got "
                         f"{type(resume).__name__}")
    if isinstance(callbacks, Callback) or (callbacks is not None and
                                           callable(getattr(callbacks, "on_fit_start", None))):
        callbacks = [callbacks]  # one callback given on its own
    if initial_state is not None:
        if resume is not None:
            raise ValueError("initial_state: expected either resume (continue the same run) or "
                             "initial_state (start a new run from its chains and buffers), "
                             "got both")
        warm_estimator, warm_update = _warm_start(initial_state, estimator, model)
        if generator is None:
            generator = initial_state.generator
    schedule = make_schedule(lr_schedule)
    source = _Batches(model, data, estimator, batch_size)
    data, n_batches = source.rows, source.n_batches
    config = {"estimator": repr(estimator), "update": update.config(),
              "batch_size": batch_size, "lr": float(lr),
              "lr_schedule": _schedule_name(lr_schedule), "n_batches": n_batches,
              "data": data_fingerprint(data) if source.tensor else "batches",
              "model": type(model).__name__}
    params = dict(model.named_parameters())
    constrain = getattr(model, "constrain_", None)
    # the estimator as this process runs it (in a distributed run: its share of the chains)
    local = estimator if group is None else group.local_estimator(estimator, data)
    with torch.no_grad():
        if resume is not None:
            state = _resume_state(resume, model, estimator, generator, config, epochs,
                                  1 if group is None else group.world_size)
            generator = state.generator
            if group is not None:
                group.resume(state, estimator)
        else:
            if generator is None:
                generator = torch.Generator(device=data.device)
                generator.manual_seed(0)
            sampling = generator
            if group is not None:
                warm = None if initial_state is None else initial_state.sampling_generator
                sampling = group.sampling_generator(generator) if warm is None else warm
            if init_visible_bias:
                model.init_visible_bias(source.mean().unsqueeze(0))
            if constrain is not None:
                constrain()
            state = TrainState(model=model, generator=generator, epochs=epochs, config=config,
                               start_scale=parameter_scale(model))
            if group is not None:
                state.sampling_generator, state.world_size = sampling, group.world_size
            if initial_state is None or warm_estimator is None:
                state.estimator_state = local.init_state(model, data, sampling)
            else:
                state.estimator_state = warm_estimator
            state.update_state = update.init_state(params) if initial_state is None \
                else warm_update
    # what the estimator draws from: the run's generator, or in a distributed run this
    # process's own (the run's generator then draws only the epoch order)
    sampling = generator if group is None else state.sampling_generator
    fused = update.fused(estimator, model) if reduce is None and group is None else None
    cbs = list(default_monitors(model, data) if monitors is None else monitors)
    for cb in callbacks:
        if not all(callable(getattr(cb, hook, None)) for hook in _HOOKS):
            raise ValueError(f"callbacks: expected Callback objects (with {', '.join(_HOOKS)}), "
                             f"got {type(cb).__name__}")
    cbs += list(callbacks)
    if group is not None:
        # the same data, settings and callbacks everywhere; process 0's parameters for all
        group.start(state, cbs, resumed=resume is not None)
        reduce = group.reduce
        if resume is None:
            state.start_scale = parameter_scale(model)
    if progress and (group is None or group.leader):
        cbs.append(Progress())
    stopping = (lambda: state.interrupted) if group is None else (lambda: group.interrupted)
    # the parameters after the last finished epoch (or where a resumed run began), to go
    # back to when training diverges
    good = {k: p.detach().clone() for k, p in params.items()}
    good_at = f"epoch {state.epoch}" + (f", batch {state.batch}" if state.batch else "")
    if source.tensor and state.batch and state.perm is None:
        raise ValueError("resume: the state stands inside an epoch but has no row order")
    with torch.no_grad(), _DeferSignals(state, handle_signals, echo=group is not None):
        try:
            with contextlib.nullcontext() if group is None else group.agreement():
                for cb in cbs:
                    cb.on_fit_start(state)
            while state.epoch < state.epochs and not (state.stop or stopping()):
                t0 = time.perf_counter()
                finished = True
                for batch in source.epoch(state):
                    if stopping():
                        finished = False
                        break
                    b = state.batch
                    progress_now = (state.epoch * n_batches + b) / (state.epochs * n_batches) \
                        if n_batches else state.epoch / state.epochs
                    factor = schedule(progress_now)
                    if not (isinstance(factor, (int, float)) and math.isfinite(factor)
                            and factor >= 0):
                        raise ValueError(f"lr_schedule: expected a finite multiplier >= 0, got "
                                         f"{factor!r} at progress {progress_now:.3g}")
                    step_lr = lr * factor
                    state.consistent = False
                    if fused is not None:
                        stats, state.estimator_state = estimator.statistics(
                            model, batch, state.estimator_state, generator)
                        fused(params, stats, step_lr, state.update_state)
                    else:
                        if group is not None:
                            batch = group.shard(batch)
                        grads, state.estimator_state = local(model, batch,
                                                             state.estimator_state, sampling)
                        if reduce is not None:
                            grads = reduce(grads)
                        update.step(params, grads, step_lr, state.update_state)
                        state.grads = grads
                    if constrain is not None:
                        constrain()
                    state.batch, state.step, state.lr = b + 1, state.step + 1, step_lr
                    state.consistent = True
                    for cb in cbs:
                        cb.on_batch_end(state)
                state.seconds += time.perf_counter() - t0
                if not finished:  # interrupted inside the epoch
                    break
                why = runaway(model, limit, state.start_scale)
                if why is not None:
                    state.diverged = True
                    for k, p in params.items():
                        p.copy_(good[k])
                    raise DivergenceError(
                        f"training diverged in epoch {state.epoch + 1}: {why}; the model is "
                        f"back at {good_at} (lower the learning rate, currently {lr:g})")
                if not source.tensor and state.epoch == 0 and n_batches is None:
                    state.config["n_batches"] = state.batch  # learnt from the first pass
                state.epoch, state.batch, state.perm = state.epoch + 1, 0, None
                state.history.append({"epoch": state.epoch, "lr": state.lr,
                                      "seconds": state.seconds})
                for cb in cbs:
                    cb.on_epoch_end(state)
                if group is not None:  # a callback's stop holds for every process
                    state.stop = group.any(state.stop)
                for k, p in params.items():
                    good[k].copy_(p)
                good_at = f"epoch {state.epoch}"
            if group is not None:  # what the processes agreed on
                state.interrupted, state.signal = group.interrupted, group.signal
        except KeyboardInterrupt:
            state.interrupted = True
            if group is not None:
                group.failed = True
        except BaseException:
            if group is not None:  # the other processes are not where this one is
                group.failed = True
            raise
        finally:
            if state.interrupted and state.consistent and \
                    runaway(model, limit, state.start_scale) is not None:
                state.diverged = True  # an interrupted epoch is checked before it is written
            for cb in cbs:
                cb.on_fit_end(state)
    return state
