"""The fit loop: mini-batches, an estimator, SGD with momentum and weight decay, callbacks.

The driver is separate from the pluggable parts (NumPyro's habit): the estimator decides how
the gradient is estimated (:mod:`boltzkit.training.estimators`), the optimiser is SGD with
momentum and weight decay (the update of ``torch.optim.SGD``, written out in :class:`_SGD` to
spare its per-step Python bookkeeping), and everything that watches or stops training (progress
bar, checkpoints, held-out monitoring, early stopping) is a :class:`Callback`.

Reconstruction error is logged because it is cheap and people expect it, but it is *not* the
objective CD or PCD optimise and is a poor guide to the likelihood (Hinton's practical guide,
section 5): compare models with the likelihood estimators of :mod:`boltzkit.evaluation`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch

from .estimators import CD

__all__ = ["fit", "FitState", "Callback", "Checkpoint", "reconstruction_error", "make_schedule"]


@torch.no_grad()
def reconstruction_error(model, v: torch.Tensor, chunk_rows: int = 4096) -> float:
    """Mean squared difference per unit between ``v`` ``(n, n_visible)`` and its mean-field
    reconstruction E[v | E[h | v]] (a monitoring figure, not a likelihood), ``chunk_rows`` rows
    at a time so that memory stays bounded on large data sets."""
    v = model.check_visible(v, "v", relaxed=True)
    total = 0.0
    for s in range(0, v.shape[0], chunk_rows):
        x = v[s:s + chunk_rows]
        total += (x - model.reconstruct(x)).double().pow(2).sum().item()
    return total / v.numel()


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


class _SGD:
    """The update of ``torch.optim.SGD`` (no dampening, no Nesterov) on a fixed list of
    parameters, each with its own weight decay::

        g <- g + weight_decay * p;   buf <- momentum * buf + g (buf = g at the first step);
        p <- p - lr * buf            (p <- p - lr * g without momentum)

    Written out to spare ``torch.optim.SGD.step``'s per-step Python bookkeeping, and so that
    :meth:`step_statistics` can fold the weight update into the gradient products. The
    gradient tensors are never modified (estimators may return tensors they keep)."""

    def __init__(self, params, weight_decays, momentum: float):
        self.params, self.weight_decays, self.momentum = list(params), list(weight_decays), momentum
        self.buffers = [None] * len(self.params)

    def step(self, grads, lr: float, start: int = 0) -> None:
        """One update from gradients shaped like the parameters (those before ``start`` are
        skipped)."""
        for i in range(start, len(self.params)):
            p, g, wd = self.params[i], grads[i], self.weight_decays[i]
            if wd:
                g = g.add(p, alpha=wd)
            if self.momentum:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = g.clone()
                else:
                    buf.mul_(self.momentum).add_(g)
                g = buf
            p.add_(g, alpha=-lr)

    def step_statistics(self, stats, lr: float) -> None:
        """The same update from :class:`~boltzkit.training.estimators.Statistics` (parameters
        ``(weight, visible_bias, hidden_bias)``): the weight gradient
        ``v_negᵀ h_neg / n_neg - v_posᵀ h_pos / n_pos`` is never built; its two products are
        accumulated straight into the momentum buffer, or into the weight when there is none."""
        v_pos, h_pos, v_neg, h_neg = stats
        a_neg, a_pos = 1.0 / v_neg.shape[0], -1.0 / v_pos.shape[0]
        w, wd = self.params[0], self.weight_decays[0]
        if self.momentum:
            buf = self.buffers[0]
            if buf is None:  # buf = g at the first step
                buf = self.buffers[0] = torch.addmm(torch.empty_like(w), v_neg.t(), h_neg,
                                                    beta=0.0, alpha=a_neg)
            else:
                buf.addmm_(v_neg.t(), h_neg, beta=self.momentum, alpha=a_neg)
            buf.addmm_(v_pos.t(), h_pos, alpha=a_pos)
            if wd:
                buf.add_(w, alpha=wd)
            w.add_(buf, alpha=-lr)
        else:  # w <- (1 - lr wd) w - lr g
            w.addmm_(v_neg.t(), h_neg, beta=1.0 - lr * wd, alpha=-lr * a_neg)
            w.addmm_(v_pos.t(), h_pos, alpha=-lr * a_pos)
        self.step((None, v_neg.mean(0) - v_pos.mean(0), h_neg.mean(0) - h_pos.mean(0)), lr,
                  start=1)


def _all_finite(params) -> bool:
    """True if no parameter holds NaN or inf (one sum per tensor; exact test if a sum overflows)."""
    return all(bool(torch.isfinite(p.sum())) or bool(torch.isfinite(p).all()) for p in params)


@dataclass
class FitState:
    """What callbacks see: the model, the epoch just finished (1-based), the per-epoch history
    (a list of dicts), the estimator state (persistent chains) and a ``stop`` flag."""

    model: torch.nn.Module
    epochs: int
    epoch: int = 0
    history: list = field(default_factory=list)
    chains: object = None
    stop: bool = False
    interrupted: bool = False


class Callback:
    """Hooks called by :func:`fit`. Override what you need; set ``state.stop = True`` to stop."""

    def on_fit_start(self, state: FitState) -> None:
        pass

    def on_epoch_end(self, state: FitState) -> None:
        pass

    def on_fit_end(self, state: FitState) -> None:
        pass


class Checkpoint(Callback):
    """Write the model to ``path`` (atomically, safetensors) every ``every`` epochs and at the end,
    so that an interrupted run loses at most ``every`` epochs."""

    def __init__(self, path, every: int = 1, metadata: Optional[dict] = None):
        self.path, self.every, self.metadata = path, every, metadata

    def _save(self, state):
        from ..io import save

        meta = dict(self.metadata or {}, epoch=state.epoch)
        save(state.model, self.path, metadata=meta)

    def on_epoch_end(self, state):
        if state.epoch % self.every == 0:
            self._save(state)

    def on_fit_end(self, state):
        # a diverged model (NaN/inf) is not written over the last good checkpoint
        if _all_finite(state.model.parameters()):
            self._save(state)


class _Progress(Callback):
    """tqdm bar over mini-batches: epoch, reconstruction error, elapsed and remaining time."""

    def __init__(self, total_batches: int, epochs: int):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_batches, unit="batch", dynamic_ncols=True,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                   "[{elapsed}<{remaining}{postfix}]")
        self.epochs = epochs
        self.bar.set_description(f"epoch 1/{epochs}")

    def on_epoch_end(self, state):
        rec = state.history[-1]["recon_error"]
        self.bar.set_description(f"epoch {min(state.epoch + 1, self.epochs)}/{self.epochs}")
        self.bar.set_postfix_str(f"recon {rec:.4f}")

    def on_fit_end(self, state):
        self.bar.close()


def fit(model, data: torch.Tensor, *, estimator=None, epochs: int = 10, batch_size: int = 100,
        lr: float = 0.05, momentum: float = 0.5, weight_decay: float = 0.0,
        lr_schedule="constant", init_visible_bias: bool = True,
        generator: Optional[torch.Generator] = None, callbacks: Sequence[Callback] = (),
        progress: bool = False, monitor_size: int = 1000) -> FitState:
    """Train ``model`` (an RBM) on ``data`` ``(n_samples, n_visible)`` in place.

    Parameters
    ----------
    estimator : CD, PCD or ExactGradient, default ``CD(1)``
    epochs, batch_size : int
        Passes over the shuffled data and rows per update (the last, smaller batch is kept).
    lr, momentum, weight_decay : float
        SGD settings, with the meaning (and the update) of ``torch.optim.SGD``; weight decay
        (L2) applies to the weights only, not the biases (Hinton's practical guide, section 9).
    lr_schedule : "constant", "linear", "cosine" or callable(progress in [0,1)) -> multiplier
    init_visible_bias : bool
        Start the visible biases at the data's base rates (Hinton's practical guide, section 8).
    generator : torch.Generator
        All randomness (shuffling, sampling); equal seeds give equal models on the CPU.
    callbacks : sequence of Callback
    progress : bool
        Show a progress bar (epoch, reconstruction error, elapsed and remaining time).
    monitor_size : int
        Rows of the training data on which reconstruction error is measured each epoch.

    Returns the final :class:`FitState`; ``state.history`` holds one dict per epoch with
    ``epoch``, ``recon_error``, ``lr``, ``seconds`` (cumulative training time).
    A ``KeyboardInterrupt`` ends training after the current batch: callbacks' ``on_fit_end``
    still run (so checkpoints are written) and ``state.interrupted`` is set.
    """
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a finite non-negative number, got {value!r}")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum: expected a value in [0, 1), got {momentum}")
    data = model.check_visible(data, "data", relaxed=True)
    estimator = estimator or CD(1)
    schedule = make_schedule(lr_schedule)
    if generator is None:
        generator = torch.Generator(device=data.device)
        generator.manual_seed(0)
    n = data.shape[0]
    n_batches = math.ceil(n / batch_size)
    if init_visible_bias:
        model.init_visible_bias(data)
    params = (model.weight, model.visible_bias, model.hidden_bias)
    opt = _SGD(params, (weight_decay, 0.0, 0.0), momentum)
    # CD and PCD hand out their samples: the update is folded into the products (unless a
    # subclass changes the gradient that __call__ makes from them)
    fused = type(estimator).__call__ is CD.__call__
    monitor = data[:monitor_size]
    state = FitState(model=model, epochs=epochs)
    cbs = list(callbacks)
    if progress:
        cbs.insert(0, _Progress(epochs * n_batches, epochs))
    with torch.no_grad():
        state.chains = estimator.init_state(model, data, generator)
        for cb in cbs:
            cb.on_fit_start(state)
        seconds = 0.0
        step_lr = lr
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                perm = torch.randperm(n, generator=generator, device=generator.device)
                perm = perm.to(data.device)
                for b in range(n_batches):
                    step_lr = lr * schedule((epoch * n_batches + b) / (epochs * n_batches))
                    batch = data.index_select(0, perm[b * batch_size:(b + 1) * batch_size])
                    if fused:
                        stats, state.chains = estimator.statistics(model, batch, state.chains,
                                                                   generator)
                        opt.step_statistics(stats, step_lr)
                    else:
                        grad, state.chains = estimator(model, batch, state.chains, generator)
                        opt.step(grad, step_lr)
                    if progress:
                        cbs[0].bar.update(1)
                seconds += time.perf_counter() - t0
                # checked before the callbacks run, so that no checkpoint of a diverged model
                # is written over the last good one
                if not _all_finite(params):
                    raise FloatingPointError(
                        f"training diverged at epoch {epoch + 1}: parameters became NaN or inf "
                        f"(lower lr, currently {lr})")
                state.epoch = epoch + 1
                state.history.append({"epoch": epoch + 1,
                                      "recon_error": reconstruction_error(model, monitor),
                                      "lr": step_lr, "seconds": seconds})
                for cb in cbs:
                    cb.on_epoch_end(state)
                if state.stop:
                    break
        except KeyboardInterrupt:
            state.interrupted = True
        finally:
            for cb in cbs:
                cb.on_fit_end(state)
    return state
