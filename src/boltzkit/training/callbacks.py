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
- :class:`ExactLikelihoodMonitor`: the exact mean log-likelihood, for models small enough to
  enumerate;
- :class:`PhaseDifferenceMonitor`: for Boltzmann machines, how far apart the two phases'
  statistics are (what the two-phase rule drives towards zero).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from .. import _validation
from .state import STATE_FILE

__all__ = ["Callback", "Checkpoint", "Progress", "ReconstructionMonitor",
           "ExactLikelihoodMonitor", "PhaseDifferenceMonitor", "reconstruction_error",
           "MODEL_FILE", "STATE_FILE"]

MODEL_FILE = "model.safetensors"


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

    Parameters
    ----------
    folder : path
    every : int
        Epochs between checkpoints.
    metadata : dict, optional
        JSON-able extras stored in both files (the command line stores its settings).
    preparation : boltzkit.data.Preparation, optional
        How raw data become the model's visible states, stored in the model file.
    """

    def __init__(self, folder, every: int = 1, metadata: Optional[dict] = None,
                 preparation=None):
        every = _validation.integer(every, "every", minimum=1)
        self.folder = Path(folder)
        self.every, self.metadata, self.preparation = every, dict(metadata or {}), preparation
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

        self._writable = False  # on_fit_end then writes nothing over the error
        check_writable_folder(self.folder, "Checkpoint: cannot write", keep=True)
        self._writable = True

    def write(self, state) -> None:
        """Write the state (and, at an epoch boundary, the model file) now."""
        from ..io import save

        position = (state.epoch, state.batch, state.step)
        if self._written == position:
            return
        if state.batch == 0:
            kwargs = {} if self.preparation is None else {"preparation": self.preparation}
            save(state.model, self.model_path, metadata=dict(self.metadata, epoch=state.epoch),
                 **kwargs)
        state.save(self.state_path, metadata=self.metadata)
        self._written = position

    def on_epoch_end(self, state):
        if state.epoch % self.every == 0:
            self.write(state)

    def on_fit_end(self, state):
        if self._writable and state.consistent and not state.diverged and \
                (state.step or state.epoch):
            self.write(state)


class Progress(Callback):
    """A tqdm bar over the run's batches: epoch, the last epoch's figures, elapsed and remaining
    time (resumed runs start where they stand)."""

    def __init__(self, keys=("recon_error", "exact_loglik", "mean_abs_difference")):
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
    at a time so that memory stays bounded on large data sets."""
    _validation.rbm(model)
    v = model.check_visible(v, "v", relaxed=True)
    total = 0.0
    for s in range(0, v.shape[0], chunk_rows):
        x = v[s:s + chunk_rows]
        total += (x - model.reconstruct(x, check=False)).double().pow(2).sum().item()
    return total / v.numel()


class ReconstructionMonitor(Callback):
    """Adds ``recon_error`` (see :func:`reconstruction_error`) on the first ``rows`` rows of
    ``data`` to every epoch's history entry."""

    def __init__(self, data: torch.Tensor, rows: int = 1000):
        self.data = data[:rows]

    def on_epoch_end(self, state):
        state.history[-1]["recon_error"] = reconstruction_error(state.model, self.data)


class ExactLikelihoodMonitor(Callback):
    """Adds ``exact_loglik``, the exact mean log-likelihood of the first ``rows`` rows of
    ``data`` in nats, to every epoch's history entry (models small enough to enumerate)."""

    def __init__(self, data: torch.Tensor, rows: int = 10000):
        self.data = data[:rows]

    def on_epoch_end(self, state):
        from ..exact import boltzmann as exact_bm
        from ..exact import rbm as exact_rbm
        from ..models import BoltzmannMachine

        m = state.model
        if isinstance(m, BoltzmannMachine):
            ll = float(exact_bm.log_likelihood(m, self.data).mean())
        else:
            log_z = exact_rbm.log_partition(m)
            ll = float(-exact_rbm.free_energy(m, self.data).mean()) - log_z
        state.history[-1]["exact_loglik"] = ll if math.isfinite(ll) else float("nan")


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
    RBMs."""
    from ..models import BoltzmannMachine

    if isinstance(model, BoltzmannMachine):
        small = model.n_units <= 16 and model.weight.dim() == 2
        return [PhaseDifferenceMonitor()] + ([ExactLikelihoodMonitor(data)] if small else [])
    if hasattr(model, "reconstruct"):
        return [ReconstructionMonitor(data)]
    return []
