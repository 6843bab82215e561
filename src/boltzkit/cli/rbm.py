"""``boltzkit train`` and ``boltzkit sample``: RBMs from the command line.

``train`` writes a run folder::

    model.safetensors   the model (rewritten atomically after every epoch: an interrupted run
                        keeps its last finished epoch)
    metrics.json        settings and per-epoch figures (rewritten after every epoch)
    filters.png         each hidden unit's weights as an image tile
    samples.png         samples drawn from the model by block Gibbs sampling
    curves.png          the per-epoch figures as curves
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from ..training import Callback
from ..units import UNIT_NAMES

__all__ = ["register", "draw_samples"]

DATA_CHOICES = "digits, mnist, binarized-mnist, PATH.npy or PATH.csv"


def register(sub) -> None:
    p = sub.add_parser("train", help="train an RBM and write a run folder",
                       description="Train a restricted Boltzmann machine. With no arguments: "
                                   "64 hidden units on scikit-learn's 8x8 digits, in seconds.")
    p.add_argument("--data", default="digits", help=f"{DATA_CHOICES} (default: digits)")
    p.add_argument("--split", default="train", help="data split (default: train)")
    p.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    p.add_argument("--visible-units", default="bernoulli",
                   help=f"{', '.join(UNIT_NAMES)} or softmax:K (default: bernoulli)")
    p.add_argument("--hidden-units", default="bernoulli",
                   help=f"{', '.join(UNIT_NAMES)} or softmax:K (default: bernoulli)")
    p.add_argument("--binarize", choices=["threshold", "sample", "none"], default="threshold",
                   help="how grey data become 0/1 for bernoulli or spin visible units; 'none' "
                        "trains on the grey values as probabilities (default: threshold at 0.5)")
    p.add_argument("--method", choices=["cd", "pcd"], default="cd",
                   help="contrastive divergence or persistent CD (default: cd)")
    p.add_argument("--k", type=int, default=1, help="Gibbs steps per update (default: 1)")
    p.add_argument("--chains", type=int, default=None,
                   help="persistent chains for pcd (default: the batch size)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the data (default: 30)")
    p.add_argument("--batch-size", type=int, default=20, help="rows per update (default: 20)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default: 0.05)")
    p.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"], default="constant",
                   help="learning-rate schedule over training (default: constant)")
    p.add_argument("--momentum", type=float, default=0.5, help="SGD momentum (default: 0.5)")
    p.add_argument("--weight-decay", type=float, default=1e-4,
                   help="L2 penalty on the weights (default: 1e-4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--out", default=None,
                   help="run folder (default: runs/rbm-DATA-YYYYmmdd-HHMMSS)")
    p.add_argument("--sample-steps", type=int, default=1000,
                   help="Gibbs steps for samples.png (default: 1000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=train_command)

    s = sub.add_parser("sample", help="draw samples from a model by Gibbs sampling",
                       description="Draw samples from a saved RBM by block Gibbs sampling.")
    s.add_argument("model", help="model file (.safetensors)")
    s.add_argument("--n", type=int, default=100, help="number of samples (default: 100)")
    s.add_argument("--steps", type=int, default=1000, help="Gibbs steps (default: 1000)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.add_argument("--mean", action="store_true",
                   help="write E[v | h] of the last step instead of the sampled v")
    s.add_argument("--model-space", action="store_true",
                   help="write the visible states as the model sees them (e.g. ±1 spins, "
                        "standardised values) instead of mapping them back to data space")
    s.add_argument("--out", required=True, help="output: FILE.npy (array) or FILE.png (grid)")
    s.set_defaults(func=sample_command)


def _positive(name, value):
    if value < 1:
        raise ValueError(f"--{name}: expected a positive integer, got {value}")


def _run_folder(args) -> Path:
    if args.out:
        return Path(args.out)
    name = Path(args.data).stem if args.data not in ("digits", "mnist", "binarized-mnist") \
        else args.data
    return Path("runs") / f"rbm-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _write_json(path: Path, obj) -> None:
    from ..io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


class _MetricsWriter(Callback):
    """Rewrites metrics.json after every epoch (atomically), so a killed run keeps its figures."""

    def __init__(self, path, settings):
        self.path, self.settings = path, settings

    def on_epoch_end(self, state):
        _write_json(self.path, {"settings": self.settings, "epochs": state.history})

    def on_fit_end(self, state):
        self.on_epoch_end(state)


@torch.no_grad()
def draw_samples(model, n: int, steps: int, generator, start=None):
    """``n`` samples after ``steps`` block-Gibbs steps from random starting states (or ``start``).
    Returns ``(v, v_mean)``: the sampled visible states and E[v | h] of the last step."""
    from ..samplers import gibbs

    device = model.weight.device
    if start is None:
        field = torch.zeros(n, model.n_visible, device=device, dtype=model.weight.dtype)
        start = model.visible.sample(field, generator)
    state = gibbs.run(model, gibbs.init(model, start, generator), steps, generator)
    return state.visible, model.visible_mean(state.hidden)


def _image_shape(meta_extra, n_visible):
    shape = meta_extra.get("image_shape")
    if shape:
        return tuple(shape)
    side = int(round(math.sqrt(n_visible)))
    return (side, side) if side * side == n_visible else (1, n_visible)


def train_command(args) -> int:
    from .. import data as bdata
    from .. import plots
    from ..io import save
    from ..models import RBM
    from ..training import CD, PCD, Checkpoint, fit

    for name in ("hidden", "k", "epochs", "batch_size", "sample_steps"):
        _positive(name.replace("_", "-"), getattr(args, name))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device: {args.device} asked for, but this PyTorch has no CUDA device")
    ds = bdata.load_dataset(args.data, args.split)
    gen = torch.Generator().manual_seed(args.seed)
    prep = bdata.Preparation.fit(ds.data, args.visible_units, args.binarize, name="--data")
    x = prep.transform(ds.data, gen, name="--data")
    model = RBM(x.shape[1], args.hidden, args.visible_units, args.hidden_units, generator=gen)
    model.to(device)
    x = model.check_visible(x, "--data", relaxed=True)
    if device.type != "cpu":
        gen = torch.Generator(device=device).manual_seed(args.seed)
    estimator = CD(args.k) if args.method == "cd" else PCD(args.k, args.chains)
    out = _run_folder(args)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    settings.update(n_samples=x.shape[0], n_visible=x.shape[1], dataset=ds.name)
    extra = {"settings": settings, "preparation": prep,
             "image_shape": list(ds.image_shape) if ds.image_shape else None}
    callbacks = [Checkpoint(out / "model.safetensors", metadata=extra),
                 _MetricsWriter(out / "metrics.json", settings)]
    print(f"training {model.n_visible}x{model.n_hidden} {model.visible.spec()}-"
          f"{model.hidden.spec()} RBM on {ds.name} ({x.shape[0]} rows), {estimator}, "
          f"{args.epochs} epochs -> {out}")
    state = fit(model, x, estimator=estimator, epochs=args.epochs, batch_size=args.batch_size,
                lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                lr_schedule=args.lr_schedule, generator=gen, callbacks=callbacks,
                progress=not args.no_progress)
    if state.interrupted:
        print(f"interrupted after {state.epoch} epochs; model and metrics so far are in {out}")
    shape = _image_shape(extra, model.n_visible)
    cpu_model = model.to("cpu")
    plots.filters(cpu_model.weight.detach(), shape, out / "filters.png",
                  title=f"filters of {model.n_hidden} hidden units")
    v, v_mean = draw_samples(cpu_model, 100, args.sample_steps,
                             torch.Generator().manual_seed(args.seed + 1))
    shown = v_mean if model.visible.name in ("bernoulli", "gaussian") else v
    plots.sample_grid(prep.inverse(shown), shape, out / "samples.png",
                      title=f"Gibbs samples after {args.sample_steps} steps (E[v|h])")
    if state.history:
        plots.learning_curves(state.history, out / "curves.png")
    last = state.history[-1] if state.history else {}
    print(f"done: {state.epoch} epochs in {last.get('seconds', 0):.1f} s, reconstruction error "
          f"{last.get('recon_error', float('nan')):.4f} (a monitor, not the objective); "
          f"wrote {out}/model.safetensors, metrics.json, filters.png, samples.png, curves.png")
    return 130 if state.interrupted else 0


def sample_command(args) -> int:
    import numpy as np

    from .. import plots
    from ..data import Preparation
    from ..io import atomic_write, load, read_metadata

    _positive("n", args.n)
    if args.steps < 0:
        raise ValueError(f"--steps: expected a non-negative integer, got {args.steps}")
    out = Path(args.out)
    if out.suffix not in (".npy", ".png"):
        raise ValueError(f"--out: expected a file ending in .npy or .png, got {args.out}")
    meta = read_metadata(args.model)
    model = load(args.model, device=args.device)
    if meta["model"] != "RBM":
        raise ValueError(f"model: 'boltzkit sample' draws from RBMs, {args.model} holds a "
                         f"{meta['model']}")
    gen = torch.Generator(device=model.weight.device).manual_seed(args.seed)
    v, v_mean = draw_samples(model, args.n, args.steps, gen)
    result = (v_mean if args.mean else v).cpu()
    prep = meta["preparation"] or Preparation(model.visible, n_features=model.n_visible)
    if not args.model_space:
        result = prep.inverse(result)
    if out.suffix == ".npy":
        with atomic_write(out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, result.numpy())
    else:
        extra = meta["extra"]
        plots.sample_grid(result, _image_shape(extra, model.n_visible), out,
                          title=f"{args.n} samples, {args.steps} Gibbs steps")
    print(f"wrote {args.n} samples to {out}")
    return 0
