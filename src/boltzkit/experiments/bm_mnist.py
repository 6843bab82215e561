"""A fully connected Boltzmann machine on MNIST digits, and what the negative phase's settling
time does to it.

Data: the MNIST training images of a few classes (default 0, 1, 2), ``per_class`` of each,
downsampled by averaging 2x2 blocks to 14x14 pixels (so that training takes minutes on two CPU
cores) and binarised at 0.5.

Machine: 196 visible units (one per pixel) and ``n_hidden`` hidden units, every pair connected
(visible-visible, hidden-hidden and visible-hidden), 0/1 units, T = 1, small random initial
weights, visible biases started at the data's base rates.

Learning: the two-phase rule (:class:`boltzkit.training.TwoPhase`). Positive phase:
pixels clamped to a mini-batch, hidden units settle for a few sweeps, statistics over a few
more. Negative phase as in the 1985 procedure: fresh chains started from random states run
free for ``negative_settle`` sweeps before their statistics are taken. Three machines are
trained identically except for that number:

- too little settling (1 sweep): the negative chains are still near their random start, so
  the negative statistics are not the machine's own and the update is not the likelihood
  gradient; nothing in learning checks what the machine generates when it runs free;
- enough settling (20 sweeps);
- too much settling (200 sweeps): ten times the cost of "enough" for a learning signal that is
  only slightly closer to the true gradient.

What each machine generates is measured on 64 free-running samples: the mean absolute
difference between the samples' and the data's pixel means, and the class of each sample's
nearest training image. (BENCHMARKS.md records what we saw.)

Pictures: each machine's hidden units' weights from the pixels (as 14x14 images) and samples the
machine generates when running free (the same long run from random states for every machine),
side by side in one figure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

from .._validation import integer, real
from ..io import atomic_write, save
from ..models.boltzmann import BoltzmannMachine
from ..samplers import sequential as sq
from ..training import SGD, TwoPhase, fit
from .._threads import torch_threads

__all__ = ["prepare_mnist", "train_variant", "draw_samples", "run_mnist_experiment",
           "DEFAULT_SETTLE"]

DEFAULT_SETTLE = {"too little": 1, "enough": 20, "too much": 200}


def prepare_mnist(classes: Sequence[int] = (0, 1, 2), per_class: int = 1000,
                  downsample: int = 2, generator: Optional[torch.Generator] = None,
                  split: str = "train"):
    """Binary images of the chosen classes: ``(data (m, h*w), labels (m,), (h, w))``.

    ``per_class`` images of each class, drawn at random (``generator``), averaged over
    ``downsample x downsample`` blocks, thresholded at 0.5, shuffled."""
    from ..data import binarize, load_dataset

    classes = [int(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or any(c < 0 or c > 9 for c in classes):
        raise ValueError(f"classes: expected distinct digits 0-9, got {classes}")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class: expected a positive integer, got {per_class!r}")
    if downsample not in (1, 2, 4):
        raise ValueError(f"downsample: expected 1, 2 or 4, got {downsample!r}")
    ds = load_dataset("mnist", split)
    h, w = ds.image_shape
    rows, labels = [], []
    for c in classes:
        idx = torch.nonzero(ds.labels == c).flatten()
        if per_class > idx.shape[0]:
            raise ValueError(f"per_class: class {c} has {idx.shape[0]} {split} images, got "
                             f"{per_class}")
        pick = idx[torch.randperm(idx.shape[0], generator=generator)[:per_class]]
        rows.append(ds.data[pick])
        labels.append(ds.labels[pick])
    x = torch.cat(rows)
    y = torch.cat(labels)
    if x.max() > 1.0:  # raw bytes
        x = x / 255.0
    if downsample > 1:
        x = F.avg_pool2d(x.reshape(-1, 1, h, w), downsample).reshape(x.shape[0], -1)
        h, w = h // downsample, w // downsample
    x = binarize(x, "threshold", 0.5)
    perm = torch.randperm(x.shape[0], generator=generator)
    return x[perm], y[perm], (h, w)


def train_variant(data: torch.Tensor, *, n_hidden: int = 64, negative_settle: int = 20,
                  negative_collect: int = 1, positive_settle: int = 3,
                  positive_collect: int = 2, epochs: int = 10, batch_size: int = 100,
                  lr: float = 0.1, momentum: float = 0.5, weight_decay: float = 1e-4,
                  seed: int = 0, progress: bool = False):
    """Train one machine on ``data`` ``(m, n_visible)`` (fresh negative chains from random
    states, ``negative_settle`` sweeps). Returns ``(model, TrainState)``."""
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(data.shape[1], n_hidden, init_std=0.01, generator=g)
    est = TwoPhase(positive_settle=positive_settle, positive_collect=positive_collect,
                   negative_settle=negative_settle, negative_collect=negative_collect,
                   persistent=False, negative_init="random")
    state = fit(bm, data, estimator=est, epochs=epochs, batch_size=batch_size, lr=lr,
                update=SGD(momentum, weight_decay), generator=g, progress=progress)
    return bm, state


@torch.no_grad()
def draw_samples(model, n: int = 16, sweeps: int = 500, seed: int = 1) -> torch.Tensor:
    """Visible states of ``n`` free-running chains after ``sweeps`` sweeps from random states
    (the first 50 annealed from T = 2 down to the model's temperature): ``(n, n_visible)``."""
    g = torch.Generator().manual_seed(seed)
    st = sq.init(model, sq.random_states(model, n, g))
    t = model.temperature
    warm = min(50, sweeps)
    st = sq.anneal(model, st, [(2.0 * t, warm // 2), (1.5 * t, warm - warm // 2)], g)
    st = sq.run(model, st, sweeps - warm, g)
    return st.states[:, : model.n_visible]


def _sample_quality(samples: torch.Tensor, data: torch.Tensor, labels: torch.Tensor) -> dict:
    """Plain figures about free-running samples: the mean absolute difference between the
    samples' and the data's pixel means (0 when the machine reproduces every pixel's base
    rate), the mean Hamming distance (in pixels) from each sample to its nearest training image,
    and how many samples have their nearest training image in each class (a rough picture of
    which digits the machine generates)."""
    d = torch.cdist(samples, data, p=1)
    near = d.min(1)
    counts = torch.bincount(labels[near.indices], minlength=10)
    return {"pixel_mean_error": float((samples.mean(0) - data.mean(0)).abs().mean()),
            "nearest_image_distance": float(near.values.mean()),
            "nearest_class_counts": {int(c): int(counts[c]) for c in labels.unique().tolist()}}


def _comparison_figure(panels: list, image_shape, path) -> Path:
    """One PNG: a column per machine, its hidden units' weights on top, its samples below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..plots import tile_images

    cols = len(panels)
    fig = Figure(figsize=(4.2 * cols, 9.8), dpi=100)
    FigureCanvasAgg(fig)
    for k, p in enumerate(panels):
        ax = fig.add_subplot(2, cols, k + 1)
        ax.imshow(tile_images(p["filters"], image_shape, normalize="each"), cmap="gray",
                  interpolation="nearest")
        ax.set_title(p["title"], fontsize=9.5)
        ax.set_axis_off()
        ax = fig.add_subplot(2, cols, cols + k + 1)
        ax.imshow(tile_images(p["samples"], image_shape, normalize=None, pad_value=0.5),
                  cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_axis_off()
    fig.suptitle("Boltzmann machine on MNIST: hidden units' weights from the pixels (top) and "
                 "free-running samples (bottom)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def run_mnist_experiment(out_dir, *, classes: Sequence[int] = (0, 1, 2), per_class: int = 1000,
                         n_hidden: int = 64, epochs: int = 10, batch_size: int = 100,
                         lr: float = 0.1, settle: Optional[dict] = None, seed: int = 0,
                         n_filters: int = 36, progress: bool = False,
                         log: Optional[Callable[[str], None]] = None,
                         threads: Optional[int] = 1) -> dict:
    """Train the three machines of the module docstring and write to ``out_dir``:
    ``comparison.png`` (the side-by-side picture), ``weights_<name>.png`` and
    ``samples_<name>.png`` per machine, ``model_<name>.safetensors`` and ``metrics.json``.
    Returns the metrics (settings, and per machine: settling sweeps, seconds, sample figures,
    weight sizes, history). ``threads``: torch CPU threads during the run (default 1, see
    :func:`boltzkit._threads.torch_threads`; ``None`` leaves the setting alone)."""
    with torch_threads(threads):
        return _run(out_dir, classes, per_class, n_hidden, epochs, batch_size, lr, settle,
                    seed, n_filters, progress, log)


def _run(out_dir, classes, per_class, n_hidden, epochs, batch_size, lr, settle, seed,
         n_filters, progress, log) -> dict:
    out = Path(out_dir)
    settle = dict(settle or DEFAULT_SETTLE)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for name, value in (("n_hidden", n_hidden), ("epochs", epochs), ("batch_size", batch_size)):
        integer(value, name, 0 if name == "n_hidden" else 1)
    real(lr, "lr", 0.0)
    data, labels, shape = prepare_mnist(classes, per_class, 2, g)
    out.mkdir(parents=True, exist_ok=True)  # only once the settings and the data are good
    say = log or (lambda s: None)
    say(f"data: {data.shape[0]} images of classes {list(classes)}, {shape[0]}x{shape[1]} pixels "
        f"({time.perf_counter() - t0:.1f}s)")
    from ..plots import filters, sample_grid

    metrics = {"classes": list(classes), "per_class": per_class, "image_shape": list(shape),
               "n_visible": data.shape[1], "n_hidden": n_hidden, "epochs": epochs,
               "batch_size": batch_size, "lr": lr, "seed": seed,
               "negative_chains": "fresh, from random states", "variants": {}}
    panels = []
    for name, k in settle.items():
        say(f"training: negative phase settles {k} sweep(s) ({name}) ...")
        bm, state = train_variant(data, n_hidden=n_hidden, negative_settle=k, epochs=epochs,
                                  batch_size=batch_size, lr=lr, seed=seed, progress=progress)
        seconds = state.history[-1]["seconds"]
        samples = draw_samples(bm, 64, 500, seed=seed + 1)
        q = _sample_quality(samples, data, labels)
        w = bm.weight.detach()
        vh = w[: bm.n_visible, bm.n_visible:]
        tag = name.replace(" ", "_")
        save(bm, out / f"model_{tag}.safetensors", metadata={"negative_settle": k})
        filters(vh, shape, out / f"weights_{tag}.png", n=n_filters,
                title=f"visible-hidden weights, negative phase {k} sweep(s) ({name})")
        sample_grid(samples, shape, out / f"samples_{tag}.png", n_cols=8,
                    title=f"free-running samples, negative phase {k} sweep(s) ({name})")
        metrics["variants"][name] = {
            "negative_settle": k, "seconds": round(seconds, 1), **q,
            "mean_abs_weight": float(w[bm.mask > 0].abs().mean()),
            "max_abs_weight": float(w.abs().max()), "history": state.history}
        panels.append({"filters": vh[:, :n_filters].t(), "samples": samples,
                       "title": f"{name}: negative phase {k} sweep{'s' if k != 1 else ''}\n"
                                f"training {seconds:.0f}s, mean |w| "
                                f"{metrics['variants'][name]['mean_abs_weight']:.2f}\n"
                                f"samples: pixel-mean error {q['pixel_mean_error']:.3f}\n"
                                f"nearest training digit: " + ", ".join(
                                    f"{c}: {n}" for c, n in q["nearest_class_counts"].items())})
        say(f"  {name}: {seconds:.1f}s, pixel-mean error {q['pixel_mean_error']:.3f}, "
            f"nearest-image distance {q['nearest_image_distance']:.1f} px, samples nearest to "
            f"each class {q['nearest_class_counts']}")
    _comparison_figure(panels, shape, out / "comparison.png")
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    with atomic_write(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    return metrics
