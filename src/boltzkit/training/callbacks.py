"""Callbacks: everything that watches, records or stops training.

:func:`~boltzkit.training.fit` calls, on every callback in turn, ``on_fit_start(state)`` once,
``on_batch_end(state)`` after every update, ``on_epoch_end(state)`` after every finished epoch
(the epoch's history entry is ``state.history[-1]``: monitors add their figures to it) and
``on_fit_end(state)`` once at the end, however training ended (finished, stopped, interrupted,
diverged). Setting ``state.stop = True`` ends training after the current epoch.

- :class:`Checkpoint`: the run folder: ``model.safetensors`` (the last finished epoch, never a
  partial one) and ``train_state.safetensors`` (what :func:`fit` needs to resume);
- :class:`Progress`: a progress bar (epoch, figures of the last epoch, elapsed and remaining);
- :class:`ReconstructionMonitor`: mean-field reconstruction error on some training rows (a
  cheap figure people expect; it is not the objective CD or PCD optimise and is a poor guide to
  the likelihood, Hinton's practical guide section 5);
- :class:`LikelihoodMonitor`: the mean log-likelihood of held-out rows, the figure PCD and CD
  are after: exact for models small enough to enumerate, a short forward AIS run otherwise;
- :class:`PhaseDifferenceMonitor`: for Boltzmann machines, how far apart the two phases'
  statistics are (what the two-phase rule drives towards zero).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Optional

import torch

from .. import _validation
from .state import STATE_FILE

__all__ = ["Callback", "Checkpoint", "Progress", "ReconstructionMonitor", "LikelihoodMonitor",
           "PhaseDifferenceMonitor", "reconstruction_error", "MODEL_FILE", "STATE_FILE",
           "LIKELIHOOD_METHODS", "MONITOR_EXACT_STATES"]

MODEL_FILE = "model.safetensors"
# LikelihoodMonitor's short AIS schedule and rows (chosen by measurement: see its docstring)
DEFAULT_MONITOR_CHAINS = 10
DEFAULT_MONITOR_BETAS = 1000
DEFAULT_MONITOR_ROWS = 2000


class Callback:
    """Hooks called by :func:`~boltzkit.training.fit`; override what you need."""

    def on_fit_start(self, state) -> None:
        pass

    def on_batch_end(self, state) -> None:
        pass

    def on_epoch_end(self, state) -> None:
        pass

    def on_fit_end(self, state) -> None:
        pass


class Checkpoint(Callback):
    """Keep a run folder that survives kills and resumes bit-identically.

    Every ``every`` epochs, and when training ends, writes (each file atomically: a kill leaves
    the previous version whole):

    - ``folder/model.safetensors``: the model after the last finished epoch (its metadata says
      which), loadable with :func:`boltzkit.load`;
    - ``folder/train_state.safetensors``: the :class:`~boltzkit.training.state.TrainState`
      (parameters, chains, momentum, generator, position), which ``fit(..., resume=folder)``
      continues from.

    When training is interrupted in the middle of an epoch (Ctrl-C, SIGTERM), only the state is
    written, at the batch boundary where training stopped: the model file keeps the last
    finished epoch. Nothing is written from a model that diverged, or from parameters that an
    exception left in the middle of an update.

    In a run over several processes (:mod:`boltzkit.distributed`) give it to every process:
    each checkpoint gathers every process's chains and sampling generator, and process 0 alone
    touches the folder; after a failed collective nothing more is written.

    Parameters
    ----------
    folder : path
    every : int
        Epochs between checkpoints.
    metadata : dict, optional
        JSON-able extras stored in both files (the command line stores its settings).
    preparation : boltzkit.data.Preparation, optional
        How raw data become the model's visible states, stored in the model file.
    model_file : bool
        Write ``model.safetensors`` (False: the state file alone, for a model that is a step
        towards another one, such as a DBM's pre-training module with tied copies of a layer).
    """

    def __init__(self, folder, every: int = 1, metadata: Optional[dict] = None,
                 preparation=None, model_file: bool = True):
        every = _validation.integer(every, "every", minimum=1)
        self.folder = Path(folder)
        self.every, self.metadata, self.preparation = every, dict(metadata or {}), preparation
        self.model_file = bool(model_file)
        self._written = None  # (epoch, batch, step) of the last state written
        self._writable = True  # False after on_fit_start found the folder unwritable

    @property
    def model_path(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def on_fit_start(self, state):
        """Check, before any training, that the folder can be made and written: create it, write
        and remove a probe file (a folder path that is a file, or lies under one, or a folder
        without write permission fails here instead of at the first checkpoint)."""
        from ..io import check_writable_folder

        group = getattr(state, "distributed", None)
        if group is not None and not group.leader:
            return  # process 0 writes
        self._writable = False  # on_fit_end then writes nothing over the error
        check_writable_folder(self.folder, "Checkpoint: cannot write", keep=True)
        self._writable = True

    def write(self, state) -> None:
        """Write the state (and, at an epoch boundary, the model file) now."""
        from ..io import save

        position = (state.epoch, state.batch, state.step)
        if self._written == position:
            return
        group = getattr(state, "distributed", None)
        shards = None
        if group is not None:  # every process's chains, to process 0
            shards = group.gather_shards(state)
            if not group.leader:
                self._written = position
                return
        if state.batch == 0 and self.model_file:
            kwargs = {} if self.preparation is None else {"preparation": self.preparation}
            save(state.model, self.model_path, metadata=dict(self.metadata, epoch=state.epoch),
                 **kwargs)
        state.save(self.state_path, metadata=self.metadata, shards=shards)
        self._written = position

    def on_epoch_end(self, state):
        if state.epoch % self.every == 0:
            self.write(state)

    def on_fit_end(self, state):
        group = getattr(state, "distributed", None)
        failed = group is not None and group.failed
        if self._writable and state.consistent and not state.diverged and not failed and \
                (state.step or state.epoch):
            self.write(state)


class Progress(Callback):
    """A tqdm bar over the run's batches: epoch, the last epoch's figures, elapsed and remaining
    time (resumed runs start where they stand)."""

    def __init__(self, keys=("recon_error", "loglik", "exact_loglik", "mean_abs_difference")):
        self.keys, self.bar = keys, None

    def on_fit_start(self, state):
        from tqdm.auto import tqdm

        per_epoch = state.config.get("n_batches")  # None: batches of unknown number
        self.bar = tqdm(total=per_epoch * state.epochs if per_epoch else None, unit="batch",
                        dynamic_ncols=True, initial=state.epoch * (per_epoch or 0) + state.batch,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                   "[{elapsed}<{remaining}{postfix}]")
        self._describe(state)

    def _describe(self, state):
        self.bar.set_description(f"epoch {min(state.epoch + 1, state.epochs)}/{state.epochs}")

    def on_batch_end(self, state):
        self.bar.update(1)

    def on_epoch_end(self, state):
        self._describe(state)
        last = state.history[-1]
        post = " ".join(f"{k.replace('_', ' ')} {last[k]:.4f}" for k in self.keys
                        if isinstance(last.get(k), float))
        if post:
            self.bar.set_postfix_str(post)

    def on_fit_end(self, state):
        if self.bar is not None:
            self.bar.close()


@torch.no_grad()
def reconstruction_error(model, v: torch.Tensor, chunk_rows: int = 4096) -> float:
    """Mean squared difference per unit between ``v`` ``(n, n_visible)`` and its mean-field
    reconstruction E[v | E[h | v]] (a monitoring figure, not a likelihood), ``chunk_rows`` rows
    at a time so that memory stays bounded on large data sets. For a DBM, E[v | mu_1] with
    ``mu`` the mean-field posterior of the hidden layers (10 sweeps of
    :func:`boltzkit.samplers.dbm.mean_field`)."""
    from ..models.dbm import DBM
    from ..samplers import dbm as dbm_sampler

    if isinstance(model, DBM):
        def reconstruct(x, check):
            return model.layer_mean(0, dbm_sampler.mean_field(model, x, 10, check=check),
                                    check=False)
    else:
        _validation.rbm(model)
        reconstruct = model.reconstruct
    v = model.check_visible(v, "v", relaxed=True)
    total = 0.0
    for s in range(0, v.shape[0], chunk_rows):
        x = v[s:s + chunk_rows]
        total += (x - reconstruct(x, check=False)).double().pow(2).sum().item()
    return total / v.numel()


class ReconstructionMonitor(Callback):
    """Adds ``recon_error`` (see :func:`reconstruction_error`) on the first ``rows`` rows of
    ``data`` to every epoch's history entry."""

    def __init__(self, data: torch.Tensor, rows: int = 1000):
        self.data = data[:rows]

    def on_epoch_end(self, state):
        state.history[-1]["recon_error"] = reconstruction_error(state.model, self.data)


LIKELIHOOD_METHODS = ("auto", "exact", "ais")
# method="auto" enumerates when a layer (an RBM's smaller one, a Boltzmann machine's every unit)
# has at most this many joint states (16 binary units); see LikelihoodMonitor for the cost
MONITOR_EXACT_STATES = 2 ** 16
_CHUNK = 2 ** 22  # elements of the largest temporary of a Boltzmann machine's enumeration


def _monitor_seed(seed: int, epoch: int) -> int:
    """A seed in [0, 2^63) for the monitor's generator at ``epoch``, mixed from both numbers
    (NumPy's SeedSequence), so that neighbouring epochs and seeds get unrelated streams."""
    import numpy as np

    hi, lo = np.random.SeedSequence([seed, epoch]).generate_state(2, np.uint32)
    return ((int(hi) << 32) | int(lo)) >> 1


def _rows_of(x, name: str) -> torch.Tensor:
    """``x`` as a tensor of shape ``(n >= 1, width)`` (a NumPy array is converted; values and
    width are checked against the model later), or one ValueError line naming ``name``."""
    x = _validation.from_numpy(x, name)
    if not torch.is_tensor(x):
        raise ValueError(f"{name}: expected a tensor or NumPy array (n, n_visible), got "
                         f"{type(x).__name__}")
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected shape (n, n_visible) with n >= 1, got "
                         f"{tuple(x.shape)}")
    return x


class LikelihoodMonitor(Callback):
    """Adds the mean log-likelihood of held-out rows, in nats, to the history: the learning
    curve of the objective that CD and PCD follow (reconstruction error is not it).

    After every ``every``-th epoch, and after the run's last one, the epoch's history entry
    gets (``key`` being ``"loglik"`` unless chosen otherwise):

    - ``key``: mean over the rows of ``log p(v) = -F(v) - log Z``;
    - ``key + "_method"``: ``"exact"`` or ``"ais"``;
    - ``key + "_log_z"``: the log Z used (exact, or the AIS estimate);
    - ``key + "_ess"``, ``key + "_chains"``, ``key + "_betas"`` (AIS only): the weights'
      effective sample size (1 .. chains) and the schedule;
    - ``key + "_seconds"``: what the figure cost (training's own ``seconds`` leave it out).

    A non-finite result is recorded as NaN.

    How: *exact* when the model is small enough to enumerate (``method="auto"``: a layer of at
    most :data:`MONITOR_EXACT_STATES` = 2^16 joint states, i.e. 16 binary units; ``"exact"``:
    up to :func:`~boltzkit.evaluation.can_enumerate`'s 2^24 whatever it costs), in the model's
    precision (float32: ~1e-5 nats from float64); otherwise *forward AIS*
    (:func:`boltzkit.evaluation.ais`) from the base-rate model of ``base`` (the training data,
    recommended; default: the monitored rows themselves) with a short schedule: ``chains``
    chains over ``n_betas`` annealing steps shaped like Salakhutdinov & Murray's, instead of
    evaluation's 100 x 14,500. Boltzmann machines are monitored by enumeration only (``"auto"``:
    at most 16 units; ``"exact"``: at most 24); a larger one, a stack of machines, or another
    kind of model is refused at ``on_fit_start`` with a ``ValueError`` naming the limit.

    Cost and bias of the default short schedule, 10 chains x 1000 steps on 2000 rows, measured on
    the run ``boltzkit train --data binarized-mnist --hidden 500 --method pcd --epochs 5
    --batch-size 100 --lr 0.02 --lr-schedule linear`` (a 784x500 binary RBM, PCD-1 on 50,000
    rows; one thread of a shared machine), against evaluation's full schedule (100 chains x
    14,500 steps, forward and reverse, as ``boltzkit evaluate MODEL --data binarized-mnist
    --log-z ais`` / ``reverse-ais``) on the model of every epoch:

    - *cost*: 0.28-0.31 s per figure against 2.06 s per epoch in that run (14%); side by side
      in one process, medians of 3: 0.29 s against 2.07 s. AIS steps cost about 0.27 ms each
      with 10 chains (the weights are read twice per step, whatever the number of chains), the
      free energies of 2000 rows 16 ms. 20 chains x 500 steps cost 11%, 5 x 2000 20%, 10 x 1000
      on 10,000 rows 17%.
    - *bias*: short AIS underestimates log Z on average (Jensen), so the figure is
      *optimistic*. After epochs 2-5 its log Z was below the full forward estimate by 1.1-1.8
      nats on average over 10 seeds (1.3-2.2 below the full reverse one), with a spread of
      1.1-2.1 nats from seed to seed: the figure is about 1-2 nats too high, and moves by about
      as much between epochs from its chains alone (the last one, -114.9 nats, against -117.0
      from the full schedule on the same rows). After epoch 1, on a model that even the full
      schedule had not settled (forward 359.5, reverse 373.3), it was 20 nats below the full
      forward estimate (34 below the reverse), with a healthy-looking ESS of 6.7 of 10: early
      in training the figure can be far too good, and the ESS does not show it. 10 chains x
      500 steps were 3.5-4.8 nats low; 20 x 1000 1.3-1.7 with a spread of 1.0-1.35, at twice
      the cost.
    - *no reverse bracket*: a reverse-AIS run of the same size from the held-out rows (the
      conservative side) would cost as much again (0.27 s: the monitor at 27% of an epoch) and
      came out 3.8-4.3 nats above the full log Z after epochs 2-5, looser than the forward side;
      it does not fit the budget, so the monitor runs forward AIS only. For a figure to report,
      use :func:`boltzkit.evaluation.evaluate` (``boltzkit evaluate --log-z both``).

    Randomness: the monitor never touches the training generator, so a run trained with it
    ends with the same parameters, bit for bit, as one trained without it. Its AIS chains draw
    from a generator of its own, seeded from ``seed`` and the epoch number
    (:meth:`epoch_generator`), so a resumed run records the same figures as an uninterrupted
    one. A run stopped early by a callback gets a last figure only when that epoch is one of
    the ``every``-th.

    Parameters
    ----------
    data : tensor or NumPy array ``(n, n_visible)``
        Held-out rows on the visible units' support (checked against the model at
        ``on_fit_start``); the first ``rows`` are used, the same ones every epoch.
    every : int
        Epochs between figures (the run's last epoch always gets one).
    rows : int or None
        Rows of ``data`` used (None: all). Default 2000: the mean's sampling error over rows is
        about ``std/sqrt(rows)`` (0.75 nats on MNIST), the same rows every epoch, so it shifts
        the curve rather than shaking it.
    method : "auto", "exact" or "ais"
    chains : int
        AIS chains (at least 2).
    n_betas : int
        AIS annealing steps (``betas=n_betas`` of :func:`~boltzkit.evaluation.ais`, so
        ``n_betas + 1`` inverse temperatures from 0 to 1).
    base : tensor or NumPy array ``(m, n_visible)``, optional
        Rows whose per-feature means give the AIS base model (values in the support's convex
        hull); only their mean is kept.
    seed : int
        Seeds the AIS chains (with the epoch number).
    key : str
        Name of the figure in the history (and prefix of its companions).
    """

    def __init__(self, data, every: int = 1, rows: Optional[int] = DEFAULT_MONITOR_ROWS,
                 method: str = "auto", chains: int = DEFAULT_MONITOR_CHAINS,
                 n_betas: int = DEFAULT_MONITOR_BETAS, base=None, seed: int = 0,
                 key: str = "loglik"):
        self.every = _validation.integer(every, "every", minimum=1)
        self.rows = None if rows is None else _validation.integer(rows, "rows", minimum=1)
        if method not in LIKELIHOOD_METHODS:
            raise ValueError(f"method: expected one of {', '.join(LIKELIHOOD_METHODS)}, got "
                             f"{method!r}")
        self.method = method
        self.chains = _validation.integer(chains, "chains", minimum=2)
        self.n_betas = _validation.integer(n_betas, "n_betas", minimum=1)
        self.seed = _validation.seed(seed)
        if not isinstance(key, str) or not key:
            raise ValueError(f"key: expected a non-empty name, got {key!r}")
        self.key = key
        self.data = _rows_of(data, "data")[: self.rows]
        self.base = None if base is None else _rows_of(base, "base")
        self.method_ = None  # "exact" or "ais", decided at on_fit_start
        self._machine = False

    # -- checks ----------------------------------------------------------------------------
    def check_model(self, model) -> str:
        """The method this monitor uses on ``model`` (``"exact"`` or ``"ais"``), or a
        ``ValueError`` saying why it cannot monitor it."""
        from ..exact.boltzmann import MAX_UNITS
        from ..exact.rbm import MAX_ENUMERATE_STATES, can_enumerate
        from ..models import RBM, BoltzmannMachine

        if isinstance(model, BoltzmannMachine):
            if model.weight.dim() != 2:
                raise ValueError(f"LikelihoodMonitor: monitors one Boltzmann machine, got a "
                                 f"stack of {model.n_machines}")
            if self.method == "ais":
                raise ValueError("LikelihoodMonitor: method='ais' is for RBMs; a Boltzmann "
                                 "machine's log-likelihood is monitored by enumeration")
            limit = MAX_UNITS if self.method == "exact" else \
                int(math.log2(MONITOR_EXACT_STATES))
            if model.n_units > limit:
                raise ValueError(f"LikelihoodMonitor: a Boltzmann machine's log-likelihood is "
                                 f"monitored by enumeration, which method={self.method!r} "
                                 f"does for at most {limit} units; this one has "
                                 f"{model.n_units}")
            return "exact"
        if not isinstance(model, RBM):
            raise ValueError(f"LikelihoodMonitor: expected an RBM or a Boltzmann machine, got "
                             f"{type(model).__name__}")
        if self.method == "ais":
            return "ais"
        if self.method == "exact":
            if not can_enumerate(model, MAX_ENUMERATE_STATES):
                raise ValueError(f"LikelihoodMonitor: method='exact' needs a discrete layer of "
                                 f"at most 2^{int(math.log2(MAX_ENUMERATE_STATES))} joint "
                                 f"states; this RBM has "
                                 f"{model.n_visible} {model.visible.name} visible and "
                                 f"{model.n_hidden} {model.hidden.name} hidden units (use "
                                 f"method='auto' or 'ais')")
            return "exact"
        return "exact" if can_enumerate(model, MONITOR_EXACT_STATES) else "ais"

    def epoch_generator(self, epoch: int, device="cpu") -> torch.Generator:
        """The generator the AIS chains of ``epoch`` draw from (seeded from ``seed`` and
        ``epoch`` only)."""
        g = torch.Generator(device=device)
        g.manual_seed(_monitor_seed(self.seed, _validation.integer(epoch, "epoch")))
        return g

    def on_fit_start(self, state):
        from ..models import BoltzmannMachine

        model = state.model
        self.method_ = self.check_model(model)
        self._machine = isinstance(model, BoltzmannMachine)
        self._rows = model.check_visible(self.data, "data")
        self._base = None
        if self.method_ == "ais":
            base = self._rows if self.base is None else \
                model.check_visible(self.base, "base", relaxed=True)
            # the base model needs only the per-feature means (a row in the convex hull)
            self._base = base.double().mean(0, keepdim=True).to(base.dtype)

    # -- the figure ------------------------------------------------------------------------
    def measure(self, model, epoch: int = 0) -> dict:
        """The figures this monitor records, for ``model`` now, with the chains of ``epoch``:
        ``{key: mean log-likelihood, key_method, key_log_z, ...}`` (see the class
        docstring). Call :meth:`on_fit_start` (or ``fit``) first."""
        from ..exact import boltzmann as exact_bm
        from ..exact import rbm as exact_rbm

        if self.method_ is None:
            raise ValueError("LikelihoodMonitor: measure() before on_fit_start()")
        t0 = time.perf_counter()
        k = self.key
        out = {}
        if self._machine:  # enumeration of the joint states, rows in bounded chunks
            log_z = exact_bm.log_partition(model)
            step = max(1, _CHUNK // (2 ** model.n_hidden * model.n_units))
            total = sum(float(exact_bm.log_likelihood(model, self._rows[s:s + step],
                                                      log_z=log_z).sum())
                        for s in range(0, self._rows.shape[0], step))
            ll = total / self._rows.shape[0]
        else:
            neg_f = -exact_rbm.free_energy(model, self._rows, dtype=model.weight.dtype)
            mean_neg_f = float(neg_f.double().mean())
            if self.method_ == "exact":
                log_z = exact_rbm.log_partition(model, dtype=model.weight.dtype)
            else:
                # evaluation imports training, so it is imported here, once both are loaded
                from ..evaluation.ais import ais

                res = ais(model, base=self._base, n_chains=self.chains, betas=self.n_betas,
                          generator=self.epoch_generator(epoch, model.weight.device),
                          dtype=model.weight.dtype)
                log_z = res.log_z
                out.update({f"{k}_ess": res.ess, f"{k}_chains": self.chains,
                            f"{k}_betas": self.n_betas})
            ll = mean_neg_f - log_z
        out = {k: ll if math.isfinite(ll) else float("nan"), f"{k}_method": self.method_,
               f"{k}_log_z": float(log_z), **out}
        out[f"{k}_seconds"] = time.perf_counter() - t0
        return out

    def on_epoch_end(self, state):
        if state.history and (state.epoch % self.every == 0 or state.epoch >= state.epochs):
            state.history[-1].update(self.measure(state.model, state.epoch))


class PhaseDifferenceMonitor(Callback):
    """Adds ``mean_abs_difference`` to every epoch's history entry: the mean over the epoch's
    updates and over connected pairs of |<s_i s_j>_data - <s_i s_j>_model|, read from the
    Boltzmann machine's weight gradient (which is that difference over the temperature)."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def on_batch_end(self, state):
        g = state.grads
        if g is not None and "weight" in g:
            m = state.model
            pairs = max(float(m.mask.sum()), 1.0) * (g["weight"].numel() // m.mask.numel())
            self.total += float(g["weight"].abs().sum()) / pairs * m.temperature
            self.count += 1

    def on_epoch_end(self, state):
        if self.count:
            state.history[-1]["mean_abs_difference"] = self.total / self.count
        self.total, self.count = 0.0, 0


def default_monitors(model, data: torch.Tensor) -> list:
    """The monitors :func:`fit` adds when none are given: for Boltzmann machines the phases'
    difference and, with at most 16 units, the exact log-likelihood; reconstruction error for
    RBMs and DBMs."""
    from ..models import DBM, BoltzmannMachine

    if isinstance(model, BoltzmannMachine):
        small = model.n_units <= 16 and model.weight.dim() == 2
        return [PhaseDifferenceMonitor()] + (
            [LikelihoodMonitor(data, rows=10000, method="exact", key="exact_loglik")]
            if small else [])
    if hasattr(model, "reconstruct") or isinstance(model, DBM):
        return [ReconstructionMonitor(data)]
    return []
