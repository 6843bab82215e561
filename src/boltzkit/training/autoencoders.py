"""Training autoencoders: backpropagation with ``torch.optim``, and the greedy RBM pre-training of
Hinton & Salakhutdinov (2006).

:func:`fit_autoencoder` trains an :class:`~boltzkit.models.Autoencoder` by mini-batch gradient
descent on its :meth:`~boltzkit.models.Autoencoder.loss` (cross-entropy for bernoulli outputs,
squared error for gaussian ones; a denoising autoencoder's masking noise drawn afresh for every
batch), with Adam (Kingma & Ba 2015, the default) or SGD with momentum. Hinton & Salakhutdinov
fine-tuned with conjugate gradients on batches of 1000 (three line searches per batch); Adam on
mini-batches is what is used here, and it is what a user of ``torch.optim`` would reach for.
Everything random (the row order of every epoch, the masking noise) comes from one explicit
``generator``, so equal seeds give equal models on the CPU.

:func:`pretrain_rbms` trains the stack the deep autoencoder is unrolled from: one RBM per layer,
bottom up, each by :func:`boltzkit.training.fit` (CD-1 by default) on the conditional means of
the layer below, the top RBM with Gaussian hidden units of unit variance (Hinton &
Salakhutdinov's linear code units: their mean is the field itself) and its own, smaller,
learning rate. :meth:`boltzkit.models.Autoencoder.unroll` turns the stack into the network.
"""

from __future__ import annotations

import math
import time
from typing import Callable, List, Optional, Sequence

import torch

from .. import _validation as check
from .loop import DivergenceError, make_schedule

__all__ = ["fit_autoencoder", "pretrain_rbms", "OPTIMIZERS"]

#: the optimisers :func:`fit_autoencoder` builds by name
OPTIMIZERS = ("adam", "sgd")


def _autoencoder(model):
    from ..models.autoencoder import Autoencoder

    if not isinstance(model, Autoencoder):
        raise ValueError(f"model: expected a boltzkit Autoencoder, got {type(model).__name__}")
    return model


def _optimizer(name, model, lr: float, momentum: float, weight_decay: float):
    """``torch.optim`` optimiser over ``model``'s parameters, weight decay on the weights only
    (as :class:`boltzkit.training.SGD` does), in two parameter groups."""
    weights = [p for n, p in model.named_parameters() if "weight" in n]
    biases = [p for n, p in model.named_parameters() if "weight" not in n]
    groups = [{"params": weights, "weight_decay": weight_decay},
              {"params": biases, "weight_decay": 0.0}]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def fit_autoencoder(model, data, *, epochs: int = 10, batch_size: int = 100, lr: float = 1e-3,
                    optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
                    lr_schedule="constant", generator: Optional[torch.Generator] = None,
                    validation=None, log: Optional[Callable[[str], None]] = None,
                    log_seconds: float = 60.0) -> List[dict]:
    """Train ``model`` (an :class:`~boltzkit.models.Autoencoder`) on ``data`` in place by
    backpropagation.

    Parameters
    ----------
    model : Autoencoder
    data : tensor or NumPy array ``(n_samples, n_visible)``
        Training rows (in [0, 1] for bernoulli units), shuffled by ``generator`` every epoch.
    epochs, batch_size : int
        Passes over the data, and rows per update (the last, smaller batch is kept).
    lr : float
        Learning rate (Adam's step size, or SGD's).
    optimizer : "adam" or "sgd"
        ``torch.optim.Adam`` (default betas) or ``torch.optim.SGD`` with ``momentum``.
    momentum : float in [0, 1)
        SGD only.
    weight_decay : float
        L2 penalty on the weight matrices (not the biases).
    lr_schedule : "constant", "linear", "cosine" or callable(progress in [0, 1)) -> multiplier
        As in :func:`boltzkit.training.fit`, applied every batch.
    generator : torch.Generator
        The epochs' row orders and the masking noise of a denoising autoencoder (default:
        seeded 0).
    validation : tensor ``(m, n_visible)``, optional
        Rows whose mean squared reconstruction error per row
        (:meth:`~boltzkit.models.Autoencoder.reconstruction_error`) is recorded after every
        epoch as ``validation_error``.
    log : callable(str), optional
        Receives a progress line after every epoch, and within an epoch every
        ``log_seconds`` seconds.

    Returns
    -------
    list of dict, one per epoch: ``epoch``, ``loss`` (the mean training loss over the epoch's
    batches, per row), ``lr`` (the last batch's), ``seconds`` (cumulative training time) and,
    with ``validation``, ``validation_error``.

    Raises
    ------
    DivergenceError
        When the loss becomes NaN or inf; the parameters are put back to the last finished
        epoch first.
    """
    model = _autoencoder(model)
    epochs = check.integer(epochs, "epochs", 1)
    batch_size = check.integer(batch_size, "batch_size", 1)
    lr = check.real(lr, "lr", 0.0, strict_minimum=True)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {', '.join(repr(o) for o in OPTIMIZERS)}, "
                         f"got {optimizer!r}")
    momentum = check.real(momentum, "momentum", 0.0, 1.0, strict_maximum=True)
    weight_decay = check.real(weight_decay, "weight_decay", 0.0)
    log_seconds = check.real(log_seconds, "log_seconds", 0.0, strict_minimum=True,
                             allow_inf=True)
    schedule = make_schedule(lr_schedule)
    check.generator(generator)
    if log is not None and not callable(log):
        raise ValueError(f"log: expected a callable taking a line of text, got "
                         f"{type(log).__name__}")
    x = model.check_visible(check.from_numpy(data, "data"), "data")
    val = None if validation is None else model.check_visible(
        check.from_numpy(validation, "validation"), "validation")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    opt = _optimizer(optimizer, model, lr, momentum, weight_decay)
    params = dict(model.named_parameters())
    good = {k: p.detach().clone() for k, p in params.items()}
    n = x.shape[0]
    n_batches = math.ceil(n / batch_size)
    say = log or (lambda line: None)
    history, seconds, step = [], 0.0, 0
    for epoch in range(epochs):
        t0 = last_line = time.perf_counter()
        perm = torch.randperm(n, generator=generator, device=generator.device).to(x.device)
        total, rows, step_lr = 0.0, 0, lr
        for b in range(n_batches):
            step_lr = lr * schedule((epoch * n_batches + b) / (epochs * n_batches))
            for group in opt.param_groups:
                group["lr"] = step_lr
            batch = x.index_select(0, perm[b * batch_size:(b + 1) * batch_size])
            opt.zero_grad(set_to_none=True)
            loss = model.loss(batch, generator, check=False)
            value = float(loss.detach())
            if not math.isfinite(value):
                with torch.no_grad():
                    for k, p in params.items():
                        p.copy_(good[k])
                raise DivergenceError(
                    f"training diverged in epoch {epoch + 1}, batch {b + 1}: the loss became "
                    f"{value}; the model is back at epoch {epoch} (lower the learning rate, "
                    f"currently {lr:g})")
            loss.backward()
            opt.step()
            step += 1
            total += value * batch.shape[0]
            rows += batch.shape[0]
            now = time.perf_counter()
            if now - last_line >= log_seconds and b + 1 < n_batches:
                say(f"epoch {epoch + 1}/{epochs}: batch {b + 1}/{n_batches}, loss "
                    f"{total / rows:.4g}")
                last_line = now
        seconds += time.perf_counter() - t0
        record = {"epoch": epoch + 1, "loss": total / rows, "lr": step_lr, "seconds": seconds}
        if val is not None:
            record["validation_error"] = float(model.reconstruction_error(val, check=False)
                                               .mean())
        history.append(record)
        with torch.no_grad():
            for k, p in params.items():
                good[k].copy_(p)
        say(f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.4g}" +
            (f", validation squared error {record['validation_error']:.4g}"
             if val is not None else "") + f" ({seconds:.1f} s)")
    return history


def pretrain_rbms(data, sizes: Sequence[int], *, visible: str = "bernoulli",
                  top: str = "gaussian", epochs: int = 10, batch_size: int = 100,
                  lr: float = 0.05, top_lr: Optional[float] = None, estimator=None,
                  update=None, init_std: float = 0.01, top_init_std: Optional[float] = None,
                  generator: Optional[torch.Generator] = None, below: Sequence = (),
                  log: Optional[Callable[[str], None]] = None,
                  fit_kwargs: Optional[dict] = None) -> list:
    """Greedy layer-wise pre-training of a deep autoencoder's stack of RBMs (see the module
    docstring).

    Parameters
    ----------
    data : ``(n, sizes[0])``
        Training rows (in [0, 1] for bernoulli visible units: grey values are taken as
        probabilities).
    sizes : sequence of int
        ``[n_visible, n_1, ..., n_code]``.
    visible : "bernoulli" or "gaussian"
        The bottom RBM's visible units.
    top : "gaussian" or "bernoulli"
        The top RBM's hidden units: Gaussian of unit variance (a linear code, Hinton &
        Salakhutdinov) or binary.
    epochs, batch_size, lr, estimator, update
        Passed to :func:`boltzkit.training.fit` for every RBM (``estimator`` default CD-1,
        ``update`` default ``SGD(momentum=0.5)``); ``top_lr`` (default ``lr``) for the top RBM.
    init_std, top_init_std
        The RBMs' initial weight scale (:class:`~boltzkit.models.RBM`); ``top_init_std``
        (default ``init_std``) for the top one.
    generator : torch.Generator
        All randomness (default seeded 0).
    below : sequence of RBM
        Already trained RBMs for the lowest ``len(below)`` layers (their sizes must match
        ``sizes``): kept as they are (the same objects are returned) and only passed through;
        training starts above them. (A 2-D code on the lower layers of a 30-D one, say.)
    log : callable(str), optional
        One line per RBM trained.
    fit_kwargs : dict, optional
        More arguments for :func:`fit` (``monitors``, ``callbacks``, ``lr_schedule``, ...).

    Returns
    -------
    list of RBM, bottom first, ready for :meth:`boltzkit.models.Autoencoder.unroll`.
    """
    from ..models._validation import as_states
    from ..models._validation import layer_sizes
    from ..models.rbm import RBM
    from ..units import get_units
    from .loop import fit

    sizes = layer_sizes(sizes, "sizes")
    if visible not in ("bernoulli", "gaussian"):
        raise ValueError(f"visible: expected 'bernoulli' or 'gaussian', got {visible!r}")
    if top not in ("gaussian", "bernoulli"):
        raise ValueError(f"top: expected 'gaussian' or 'bernoulli', got {top!r}")
    epochs = check.integer(epochs, "epochs", 1)
    lr = check.real(lr, "lr", 0.0)
    top_lr = lr if top_lr is None else check.real(top_lr, "top_lr", 0.0)
    init_std = check.real(init_std, "init_std", 0.0)
    top_init_std = init_std if top_init_std is None else check.real(top_init_std,
                                                                    "top_init_std", 0.0)
    check.generator(generator)
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if isinstance(below, RBM) or not isinstance(below, (list, tuple)):
        raise ValueError(f"below: expected a list of RBMs, got {type(below).__name__}")
    n_layers = len(sizes) - 1
    if len(below) >= n_layers:
        raise ValueError(f"below: expected fewer than {n_layers} RBMs (the stack has "
                         f"{n_layers} layers), got {len(below)}")
    for l, r in enumerate(below):
        want = (sizes[l], sizes[l + 1])
        if not isinstance(r, RBM) or (r.n_visible, r.n_hidden) != want:
            raise ValueError(f"below[{l}]: expected an RBM{want} for layer {l}, got "
                             f"{r!r}" if isinstance(r, RBM) else
                             f"below[{l}]: expected an RBM{want}, got {type(r).__name__}")
        units = (visible if l == 0 else "bernoulli", "bernoulli")
        if (r.visible.spec(), r.hidden.spec()) != units:
            raise ValueError(f"below[{l}]: expected {units[0]}-{units[1]} units, got "
                             f"{r.visible.spec()}-{r.hidden.spec()}")
    if log is not None and not callable(log):
        raise ValueError(f"log: expected a callable taking a line of text, got "
                         f"{type(log).__name__}")
    say = log or (lambda line: None)
    kwargs = {"epochs": epochs, "batch_size": batch_size, "estimator": estimator,
              "update": update, "monitors": []}
    kwargs.update(fit_kwargs or {})
    x = check.from_numpy(data, "data")
    like = torch.empty(0, dtype=torch.float64 if torch.is_tensor(x) and x.dtype == torch.float64
                       else torch.float32, device=x.device if torch.is_tensor(x) else None)
    x = as_states(x, units=get_units(visible), width=sizes[0], name="data", relaxed=True,
                  like=like)
    rbms = []
    for l in range(n_layers):
        if l < len(below):
            rbm = below[l]
        else:
            is_top = l == n_layers - 1
            rbm = RBM(sizes[l], sizes[l + 1], visible if l == 0 else "bernoulli",
                      top if is_top else "bernoulli",
                      init_std=top_init_std if is_top else init_std, generator=generator,
                      device=x.device, dtype=x.dtype)
            t0 = time.perf_counter()
            fit(rbm, x, lr=top_lr if is_top else lr, generator=generator, **kwargs)
            say(f"RBM {l + 1}/{n_layers} ({sizes[l]}-{sizes[l + 1]}, "
                f"{rbm.visible.spec()}-{rbm.hidden.spec()}): {epochs} epochs, "
                f"{time.perf_counter() - t0:.1f} s")
        rbms.append(rbm)
        if l + 1 < n_layers:
            with torch.no_grad():
                x = rbm.hidden_mean(x, check=False)
    return rbms
