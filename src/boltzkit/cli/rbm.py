"""``boltzkit sample``: samples from a saved RBM or convolutional RBM by block Gibbs sampling, or
from an RBM by parallel tempering (``--method pt --replicas N``; ``boltzkit train`` is in
:mod:`boltzkit.cli.train`), and from a DBN or a DBM. MODEL is a model file or a run folder of
``boltzkit train`` (its ``model.safetensors``). A ConvRBM's samples are images: ``FILE.npy``
holds ``(n, C, H, W)``, ``FILE.png`` draws each image with its channels one above the other.

A DBN's samples are ``--steps`` block-Gibbs steps in its top RBM from fair coins, then one pass
down the directed layers (:func:`boltzkit.samplers.dbn.generate`); a DBM's are ``--steps``
block-Gibbs sweeps of every layer (:mod:`boltzkit.samplers.dbm`) from visible fair coins.
``--mean`` writes the visible means of the last step: ``E[v | h_1]``.

With ``--method pt`` the samples are the chains at beta = 1 of ``N`` replicas on a ladder from 1
down to 0, evenly spaced at first and re-spaced for equal swap rates every 100 steps during the
first half of the steps (then fixed, so that the second half samples a fixed chain); the swap
rates of the final ladder are printed.
"""

from __future__ import annotations

import math

import torch

from .. import _validation as _v
from . import add_threads, apply_threads, checks

__all__ = ["register", "draw_samples", "draw_tempered", "image_shape", "model_path",
           "read_model", "product_work", "MODEL_FILE_KINDS", "DEEP_KINDS", "draw_deep"]

#: the model classes ``boltzkit sample`` and ``boltzkit evaluate`` read
MODEL_FILE_KINDS = ("RBM", "ConvRBM", "DBN", "DBM")
#: the stacks among them
DEEP_KINDS = ("DBN", "DBM")


def register(sub) -> None:
    s = sub.add_parser("sample", help="draw samples from a model by Gibbs sampling or parallel "
                                      "tempering",
                       description="Draw samples from a saved RBM, convolutional RBM, DBN or "
                                   "DBM by block Gibbs sampling, or from an RBM by parallel "
                                   "tempering (--method pt), which crosses between the modes "
                                   "of a sharp model where plain Gibbs stays in one.")
    s.add_argument("model", help="model file (.safetensors) or run folder")
    s.add_argument("--n", type=int, default=100, help="number of samples (default: 100)")
    s.add_argument("--steps", type=int, default=1000,
                   help="Gibbs steps (a DBN: in its top RBM; a DBM: sweeps of every layer), or "
                        "tempering steps with --method pt (default: 1000)")
    s.add_argument("--method", choices=["gibbs", "pt"], default="gibbs",
                   help="gibbs (block Gibbs chains) or pt (parallel tempering; default: gibbs)")
    s.add_argument("--replicas", type=int, default=None,
                   help="--method pt: rungs of the temperature ladder, beta = 1 included "
                        "(default: 10)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    s.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    s.add_argument("--mean", action="store_true",
                   help="write E[v | h] (a DBN's or DBM's: E[v | h_1]) of the last step instead "
                        "of the sampled v")
    s.add_argument("--model-space", action="store_true",
                   help="write the visible states as the model sees them (e.g. ±1 spins, "
                        "standardised values) instead of mapping them back to data space")
    s.add_argument("--out", required=True, help="output: FILE.npy (array) or FILE.png (grid)")
    add_threads(s)
    s.set_defaults(func=sample_command)


@torch.no_grad()
def draw_samples(model, n: int, steps: int, generator, start=None):
    """``n`` samples after ``steps`` block-Gibbs steps from random starting states (or ``start``).
    Returns ``(v, v_mean)``: the sampled visible states and E[v | h] of the last step."""
    from ..samplers import gibbs

    device = model.weight.device
    if start is None:  # (a ConvRBM's states are images)
        shape = tuple(getattr(model, "image_shape", (model.n_visible,)))
        field = torch.zeros(n, *shape, device=device, dtype=model.weight.dtype)
        start = model.visible.sample(field, generator, params=model.visible_params)
    state = gibbs.run(model, gibbs.init(model, start, generator), steps, generator)
    return state.visible, model.visible_mean(state.hidden, check=False)


@torch.no_grad()
def draw_tempered(model, n: int, steps: int, replicas: int, generator):
    """``n`` samples after ``steps`` parallel-tempering steps (``replicas`` rungs, adapted during
    the first half of the steps, see the module docstring), from a draw of the base measure.
    Returns ``(v, v_mean, swap rates of the final ladder)``."""
    from ..samplers import tempering

    betas = tempering.ladder(replicas, dtype=model.weight.dtype, device=model.weight.device)
    state, _ = tempering.sample(model, n, steps, betas, generator, adapt_steps=steps // 2,
                                adapt_every=100)
    v, h = state.visible[:n], state.hidden[:n]
    rates = tempering.acceptance(state).tolist()
    return v, model.visible_mean(h, check=False), [r if r == r else float("nan") for r in rates]


@torch.no_grad()
def draw_deep(model, n: int, steps: int, generator):
    """``n`` samples of a DBN (:func:`boltzkit.samplers.dbn.generate`, ``steps`` Gibbs steps in
    its top RBM) or a DBM (``steps`` block-Gibbs sweeps from visible fair coins). Returns
    ``(v, v_mean)`` ``(n, n_visible)`` each: the sampled visible states and E[v | h_1] of the
    last step."""
    from ..models.dbn import DBN
    from ..samplers import dbm, dbn

    if isinstance(model, DBN):
        return dbn.generate(model, n, steps, generator)
    b = model.bias_0
    start = torch.bernoulli(torch.full((n, model.n_visible), 0.5, dtype=b.dtype,
                                       device=b.device), generator=generator)
    xs = dbm.layers(model, dbm.run(model, dbm.init(model, start, generator), steps, generator))
    return xs[0], model.layer_mean(0, xs, check=False)


def image_shape(meta_extra, n_visible):
    """The image shape pictures of a model use: the one stored with it (``image_shape`` of the
    file's extra metadata, when it is ``[height, width]``, two positive integers whose product
    is ``n_visible``; anything else there is ignored, as a hint that does not fit), else square
    or a row."""
    shape = meta_extra.get("image_shape") if isinstance(meta_extra, dict) else None
    if isinstance(shape, (list, tuple)) and len(shape) == 2 and \
            all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape) and \
            shape[0] * shape[1] == n_visible:
        return tuple(shape)
    side = int(round(math.sqrt(n_visible)))
    return (side, side) if side * side == n_visible else (1, n_visible)


def model_path(path):
    """The model file MODEL names: the file itself, or ``model.safetensors`` of a run folder."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir() and (p / "model.safetensors").is_file():
        return p / "model.safetensors"
    return p


def read_model(path, command: str, device, kinds=MODEL_FILE_KINDS):
    """``(file, metadata, model)`` of a model file (or run folder) for ``command``, whose
    model class is one of ``kinds`` (class names, default :data:`MODEL_FILE_KINDS`); one
    ValueError line for any other kind of model."""
    from ..io import load, read_metadata

    path = model_path(path)
    meta = read_metadata(path)
    if meta["model"] not in kinds:
        names = [f"{k}s" for k in kinds]
        listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
        raise ValueError(f"model: 'boltzkit {command}' reads {listed}, {path} holds a "
                         f"{meta['model']}")
    return path, meta, load(path, device=device)  # load checks the file's sizes first


def product_work(model, rows: int) -> int:
    """Multiply-adds of one field computation for ``rows`` rows (the --threads rule): a dense
    RBM's product, a ConvRBM's convolution, a DBN's or DBM's products of every weight."""
    if hasattr(model, "image_shape"):
        return rows * model.n_hidden * model.image_shape[0] * math.prod(model.filter_shape)
    if hasattr(model, "sizes"):
        return rows * sum(a * b for a, b in zip(model.sizes[:-1], model.sizes[1:]))
    return rows * model.n_visible * model.n_hidden


def sample_command(args) -> int:
    import numpy as np

    from .. import plots
    from ..data import Preparation
    from ..io import atomic_write

    _v.integer(args.n, "--n", 1)
    if args.steps < 0:
        raise ValueError(f"--steps: expected a non-negative integer, got {args.steps}")
    if args.replicas is not None and args.method != "pt":
        raise ValueError("--replicas: only with --method pt")
    replicas = _v.integer(args.replicas if args.replicas is not None else 10, "--replicas", 2)
    chains = args.n * (replicas if args.method == "pt" else 1)
    checks.seed(args.seed)
    device = checks.device(args.device)
    out = checks.output_file(args.out, "--out", (".npy", ".png"))
    path, meta, model = read_model(args.model, "sample", device)
    conv = hasattr(model, "image_shape")
    deep = meta["model"] in DEEP_KINDS
    if (conv or deep) and args.method == "pt":
        raise ValueError(f"--method pt: parallel tempering samples RBMs; a {meta['model']} "
                         f"samples by block Gibbs (--method gibbs)")
    apply_threads(args, product_work(model, chains), device)
    # the chains (visible, hidden, means, uniforms) and, for a picture, a grid of the samples
    width = sum(model.sizes) if deep else model.n_visible + model.n_hidden
    checks.memory(6 * 4 * chains * width,
                  f"--n {args.n}" + (f" x --replicas {replicas}" if args.method == "pt" else "")
                  + ": the samples", device)
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(args.seed)
    if deep:
        v, v_mean = draw_deep(model, args.n, args.steps, gen)
    elif args.method == "pt":
        v, v_mean, rates = draw_tempered(model, args.n, args.steps, replicas, gen)
        print("swap acceptance per neighbour pair (beta = 1 first): "
              + " ".join(f"{r:.2f}" for r in rates))
    else:
        v, v_mean = draw_samples(model, args.n, args.steps, gen)
    result = (v_mean if args.mean else v).cpu()
    result = result.reshape(result.shape[0], -1)  # a ConvRBM's images as rows
    units = model.units if meta["model"] == "DBM" else model.visible
    prep = meta["preparation"] or Preparation(units, n_features=model.n_visible)
    if not args.model_space:
        result = prep.inverse(result)
    if out.suffix == ".npy":
        with atomic_write(out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, (result.reshape(-1, *model.image_shape) if conv else result).numpy())
    else:
        c, h, w = model.image_shape if conv else (None, None, None)
        shown = (c * h, w) if conv else image_shape(meta["extra"], model.n_visible)
        plots.sample_grid(result, shown, out,
                          title=f"{args.n} samples, {args.steps} "
                                + ("Gibbs steps" if args.method == "gibbs" else
                                   f"tempering steps, {replicas} replicas"))
    print(f"wrote {args.n} samples to {out}")
    return 0
