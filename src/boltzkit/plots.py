"""Pictures: filter tiles, sample grids, learning curves, capacity curves, labelled image rows.

Every function draws on its own :class:`matplotlib.figure.Figure` attached to a
:class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`; pyplot is never imported, so no global
backend, figure registry or rcParams of the caller are touched. Files are PNG, written atomically
(:func:`boltzkit.io.atomic_write`), and every function returns the :class:`~pathlib.Path` written.

Image data are rows of ``(n_images, height * width)`` (tensors or arrays), reshaped row-major to
``image_shape = (height, width)``, drawn with the grey colour map (low = black, high = white).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .io import atomic_write

__all__ = ["tile_images", "filters", "conv_filters", "sample_grid", "learning_curves",
           "capacity_curve", "image_rows"]

_DPI = 100
_TITLE_IN = 0.4  # inches reserved above an image mosaic for its title


# --- helpers --------------------------------------------------------------------------------
def _to_numpy(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().to("cpu").numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array, could not convert ({err})") from None
    return arr


def _check_image_shape(image_shape) -> tuple:
    try:
        h, w = (int(s) for s in image_shape)
        ok = h >= 1 and w >= 1 and (h, w) == tuple(image_shape)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_shape: expected (height, width) of positive ints, got "
                         f"{image_shape!r}")
    return h, w


def _images(x, image_shape, name: str) -> tuple[np.ndarray, int, int]:
    """Validate ``x`` as ``(n, h*w)`` finite values; return (array, h, w)."""
    h, w = _check_image_shape(image_shape)
    arr = _to_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_images, {h * w}), got {arr.ndim}-D "
                         f"shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one image, got shape {arr.shape}")
    if arr.shape[1] != h * w:
        raise ValueError(f"{name}: expected {h * w} = {h}x{w} columns for image_shape "
                         f"{(h, w)}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return arr, h, w


def _unit_range(arr: np.ndarray) -> np.ndarray:
    """Values to show in [0, 1]: kept if already there, spins in [-1, 1] mapped by (x+1)/2,
    anything else scaled by the overall min and max."""
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= 0.0 and hi <= 1.0:
        return arr
    if lo >= -1.0 and hi <= 1.0:
        return (arr + 1.0) / 2.0
    return (arr - lo) / (hi - lo) if hi > lo else np.full_like(arr, 0.5)


def _positive_int(v, name: str, allow_none: bool = True) -> Optional[int]:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected a positive int, got {v!r}")
    return int(v)


def _new_figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path) -> Path:
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _mosaic_figure(mosaic: np.ndarray, title: Optional[str], vmin=0.0, vmax=1.0) -> Figure:
    """A figure showing ``mosaic`` pixel-exact in aspect: the axes fill the width, a strip of
    ``_TITLE_IN`` inches is added on top when there is a title."""
    mh, mw = mosaic.shape
    scale = min(8.0, max(1.0, 800.0 / max(mh, mw)))  # screen pixels per image pixel
    w_in, img_h_in = mw * scale / _DPI, mh * scale / _DPI
    h_in = img_h_in + (_TITLE_IN if title else 0.0)
    fig = _new_figure(w_in, h_in)
    ax = fig.add_axes((0.0, 0.0, 1.0, img_h_in / h_in))
    ax.imshow(mosaic, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest",
              aspect="equal")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, y=1.0 - 0.5 * _TITLE_IN / h_in, va="center", fontsize=11)
    return fig


# --- public ---------------------------------------------------------------------------------
def tile_images(x, image_shape, n_cols: Optional[int] = None, pad: int = 1,
                normalize: Optional[str] = "each", *, pad_value: Optional[float] = None
                ) -> np.ndarray:
    """Arrange the rows of ``x`` as images in a 2-D mosaic.

    Parameters
    ----------
    x : ``(n_images, height * width)`` tensor or array
    image_shape : ``(height, width)``; each row is reshaped row-major (C order)
    n_cols : tiles per mosaic row; default ``ceil(sqrt(n_images))``
    pad : pixels between neighbouring tiles (none around the border)
    normalize : ``"each"`` scales every tile by its own min/max to [0, 1] (a constant tile
        becomes 0.5), ``"all"`` scales by the overall min/max, ``None`` keeps the values
    pad_value : value of the gaps and of empty slots in the last row; default the top of the
        value range (1.0 when normalised, ``x.max()`` otherwise), i.e. white separators

    Returns
    -------
    numpy.ndarray float64 of shape
    ``(n_rows * height + (n_rows - 1) * pad, n_cols * width + (n_cols - 1) * pad)`` with
    ``n_rows = ceil(n_images / n_cols)``; tile ``i`` sits at row ``i // n_cols``, column
    ``i % n_cols``.
    """
    arr, h, w = _images(x, image_shape, "x")
    n = arr.shape[0]
    n_cols = _positive_int(n_cols, "n_cols")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad: expected an int >= 0, got {pad!r}")
    if normalize == "each":
        lo = arr.min(axis=1, keepdims=True)
        span = arr.max(axis=1, keepdims=True) - lo
        arr = np.where(span > 0, (arr - lo) / np.where(span > 0, span, 1.0), 0.5)
    elif normalize == "all":
        lo, hi = arr.min(), arr.max()
        arr = (arr - lo) / (hi - lo) if hi > lo else np.full_like(arr, 0.5)
    elif normalize is not None:
        raise ValueError(f"normalize: expected 'each', 'all' or None, got {normalize!r}")
    if pad_value is None:
        pad_value = 1.0 if normalize is not None else float(arr.max())
    if n_cols is None:
        n_cols = math.ceil(math.sqrt(n))
    n_cols = min(n_cols, n)
    n_rows = math.ceil(n / n_cols)
    out = np.full((n_rows * h + (n_rows - 1) * pad, n_cols * w + (n_cols - 1) * pad),
                  float(pad_value))
    tiles = arr.reshape(n, h, w)
    for i in range(n):
        r, c = divmod(i, n_cols)
        out[r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w] = tiles[i]
    return out


def filters(weight, image_shape, path, n: int = 100, title: Optional[str] = None) -> Path:
    """Draw the receptive fields of hidden units, the classic RBM filter picture.

    Parameters
    ----------
    weight : ``(n_visible, n_hidden)`` with ``n_visible = height * width``; column ``j`` is the
        weight vector of hidden unit ``j``
    image_shape : ``(height, width)``
    path : PNG file to write
    n : number of filters drawn: the first ``min(n, n_hidden)`` hidden units in index order (so
        tile ``j`` is unit ``j`` and pictures of successive epochs are comparable), in a square-ish
        grid, each tile scaled to its own min/max, grey colour map
    title : optional title above the tiles

    Returns
    -------
    Path written.
    """
    n = _positive_int(n, "n", allow_none=False)
    h, w = _check_image_shape(image_shape)
    arr = _to_numpy(weight, "weight")
    if arr.ndim != 2 or arr.shape[0] != h * w:
        raise ValueError(f"weight: expected shape (n_visible={h * w}, n_hidden) for image_shape "
                         f"{(h, w)}, got {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"weight: expected at least one hidden unit, got shape {arr.shape}")
    mosaic = tile_images(arr[:, :n].T, (h, w), normalize="each")
    return _save(_mosaic_figure(mosaic, title), path)


def conv_filters(weight, path, n: int = 100, title: Optional[str] = None) -> Path:
    """Draw the filters of a convolutional RBM.

    Parameters
    ----------
    weight : ``(n_filters, channels, height, width)`` (:attr:`boltzkit.ConvRBM.weight`)
    path : PNG file to write
    n : number of filters drawn, the first ``min(n, n_filters)`` in index order; a filter of
        several channels is one tile, its channels one above the other; each tile scaled to
        its own min/max, grey colour map (as :func:`filters`)
    title : optional title above the tiles

    Returns
    -------
    Path written.
    """
    arr = _to_numpy(weight, "weight")
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"weight: expected shape (n_filters, channels, height, width), got "
                         f"{arr.shape}")
    k, c, h, w = arr.shape
    return filters(arr.reshape(k, c * h * w).T, (c * h, w), path, n=n, title=title)


def sample_grid(samples, image_shape, path, n_cols: Optional[int] = None,
                title: Optional[str] = None) -> Path:
    """Draw samples (or data) as a grid of images.

    Parameters
    ----------
    samples : ``(n_samples, height * width)``. Values in [0, 1] are drawn as they are (0 black,
        1 white); values in [-1, 1] (spins) are mapped by ``(x + 1) / 2``; anything else (e.g.
        Gaussian units) is scaled by the overall min and max.
    image_shape : ``(height, width)``
    path : PNG file to write
    n_cols : images per row; default ``ceil(sqrt(n_samples))``
    title : optional title

    Returns
    -------
    Path written.
    """
    arr, h, w = _images(samples, image_shape, "samples")
    mosaic = tile_images(_unit_range(arr), (h, w), n_cols=n_cols, normalize=None, pad_value=1.0)
    return _save(_mosaic_figure(mosaic, title), path)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _likelihood_keys(history: Sequence[dict]) -> list:
    """Keys that are log-likelihood figures: those recorded with a ``KEY_method`` companion
    (what :class:`boltzkit.training.LikelihoodMonitor` writes)."""
    return sorted({k for rec in history for k in rec
                   if isinstance(rec.get(f"{k}_method"), str) and _is_number(rec[k])})


def _method_label(rec: dict, key: str) -> str:
    """Legend text for the method of one likelihood figure."""
    method = rec.get(f"{key}_method")
    if method == "ais":
        chains, betas = rec.get(f"{key}_chains"), rec.get(f"{key}_betas")
        size = f", {chains} chains x {betas} steps" if _is_number(chains) and \
            _is_number(betas) else ""
        return f"forward AIS{size} (optimistic)"
    return str(method)


def learning_curves(history: Sequence[dict], path, keys: Optional[Sequence[str]] = None) -> Path:
    """Draw per-epoch training records, one subplot per quantity, stacked, sharing the x axis.

    A log-likelihood figure (a key ``K`` recorded with ``K_method``, as
    :class:`boltzkit.training.LikelihoodMonitor` writes it) is drawn in nats with one line per
    method, named in the legend (``exact``, or forward AIS with its chains and steps); its
    companions ``K_*`` (log Z, ESS, seconds, ...) are not drawn unless asked for.

    Parameters
    ----------
    history : list of dicts, one per epoch, e.g. ``{"epoch": 3, "recon_error": 0.05,
        "lr": 0.01, "seconds": 1.2, "loglik": -92.1, "loglik_method": "exact"}``. x is
        ``"epoch"`` (or 1, 2, ... when absent); a quantity missing in some epochs leaves a gap
        there (a likelihood recorded every few epochs is drawn as points joined by a line).
        When every record names its ``"stage"`` (a run of stages, such as a DBN's layers),
        the stages follow each other along x, each drawn apart and named above the plot.
    path : PNG file to write
    keys : quantities to draw; default every key with a numeric value in some record, except
        ``"epoch"``, ``"seconds"`` and the companions of log-likelihood figures, in order of
        first appearance

    Returns
    -------
    Path written.
    """
    if isinstance(history, dict) or not isinstance(history, Sequence) or len(history) == 0:
        raise ValueError(f"history: expected a non-empty list of per-epoch dicts, got "
                         f"{type(history).__name__}"
                         f"{' of length 0' if isinstance(history, Sequence) else ''}")
    for i, rec in enumerate(history):
        if not isinstance(rec, dict):
            raise ValueError(f"history: expected a list of dicts, item {i} is "
                             f"{type(rec).__name__}")
    likelihoods = _likelihood_keys(history)
    if keys is None:
        companions = tuple(f"{k}_" for k in likelihoods)
        keys = []
        for rec in history:
            keys += [k for k, v in rec.items()
                     if k not in ("epoch", "seconds") and k not in keys and _is_number(v)
                     and not (companions and k.startswith(companions))]
        if not keys:
            raise ValueError("history: expected at least one numeric quantity besides 'epoch' "
                             "and 'seconds', found none")
    else:
        keys = list(keys)
        if not keys:
            raise ValueError("keys: expected at least one key, got an empty list")
        for k in keys:
            vals = [rec[k] for rec in history if k in rec]
            if not vals or not all(_is_number(v) for v in vals):
                raise ValueError(f"keys: {k!r} is not a numeric quantity of history (available: "
                                 f"{sorted({k2 for r in history for k2 in r})})")
    stages = [rec.get("stage") for rec in history]
    segments = [slice(0, len(history))]
    if all(isinstance(name, str) for name in stages):  # a run of stages, one after another
        cuts = [0] + [i for i in range(1, len(stages)) if stages[i] != stages[i - 1]] + \
            [len(stages)]
        segments = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
        x = np.arange(1, len(history) + 1, dtype=float)
        xlabel = "epoch (the stages one after another)"
    elif all("epoch" in rec and _is_number(rec["epoch"]) for rec in history):
        x = np.array([rec["epoch"] for rec in history], dtype=float)
        xlabel = "epoch"
    else:
        x = np.arange(1, len(history) + 1, dtype=float)
        xlabel = "record"
    fig = _new_figure(6.4, 0.4 + 2.0 * len(keys))
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)[:, 0]
    for ax, k in zip(axes, keys):
        y = np.array([float(rec[k]) if _is_number(rec.get(k)) else np.nan for rec in history])
        if k in likelihoods:
            labels = [_method_label(rec, k) if _is_number(rec.get(k)) else None
                      for rec in history]
            for label in dict.fromkeys(lab for lab in labels if lab is not None):
                mask = np.array([lab == label for lab in labels])
                _segmented(ax, x, y, mask, segments, label=label)
            ax.set_ylabel(f"{k} (nats)")
            ax.legend(fontsize="small", loc="best")
        else:
            _segmented(ax, x, y, np.ones(len(x), dtype=bool), segments)
            ax.set_ylabel(k)
        ax.grid(True, alpha=0.3)
        for seg in segments[1:]:  # where a stage begins
            ax.axvline(x[seg.start] - 0.5, color="0.5", linestyle="--", linewidth=0.8)
    if len(segments) > 1:
        for seg in segments:
            axes[0].text((x[seg.start] + x[seg.stop - 1]) / 2, 1.02, stages[seg.start],
                         transform=axes[0].get_xaxis_transform(), ha="center", va="bottom",
                         fontsize="small")
    axes[-1].set_xlabel(xlabel)
    fig.align_ylabels(axes)
    fig.tight_layout()
    return _save(fig, path)


def _segmented(ax, x, y, mask, segments, label=None) -> None:
    """Plot ``y`` against ``x`` where ``mask``, one line per segment (the stages of a run are
    not joined), all in the colour of the first."""
    color = None
    for seg in segments:
        m = np.zeros(len(x), dtype=bool)
        m[seg] = mask[seg]
        if not m.any():
            continue
        (line,) = ax.plot(x[m], y[m], marker="o" if mask.sum() <= 30 else None, markersize=3,
                          color=color, label=label if color is None else None)
        color = line.get_color()


def capacity_curve(results: dict, path, n_units: Optional[int] = None,
                   mark: Optional[float] = 0.138) -> Path:
    """Draw recall against load for Hopfield storage rules.

    Parameters
    ----------
    results : ``{rule_name: (loads, recall_fraction)}``, both 1-D of equal length; ``loads`` is
        patterns per unit ``P / N``, ``recall_fraction`` in [0, 1]
    path : PNG file to write
    n_units : N, shown in the title when given
    mark : load of the vertical marker, labelled "0.138 N (Hebbian theory)" for the default
        (Amit, Gutfreund & Sompolinsky's capacity of the Hebbian rule); None draws no marker

    Returns
    -------
    Path written.
    """
    if not isinstance(results, dict) or not results:
        raise ValueError(f"results: expected a non-empty dict {{rule: (loads, recall)}}, got "
                         f"{type(results).__name__}{' (empty)' if results == {} else ''}")
    n_units = _positive_int(n_units, "n_units")
    curves = {}
    for rule, pair in results.items():
        try:
            loads, recall = pair
        except (TypeError, ValueError):
            raise ValueError(f"results[{rule!r}]: expected a pair (loads, recall_fraction)") \
                from None
        loads = _to_numpy(loads, f"results[{rule!r}] loads")
        recall = _to_numpy(recall, f"results[{rule!r}] recall")
        if loads.ndim != 1 or recall.shape != loads.shape or loads.size == 0:
            raise ValueError(f"results[{rule!r}]: expected loads and recall_fraction as 1-D "
                             f"arrays of equal non-zero length, got shapes {loads.shape} and "
                             f"{recall.shape}")
        if not (np.isfinite(loads).all() and np.isfinite(recall).all()):
            raise ValueError(f"results[{rule!r}]: expected finite values, found NaN or inf")
        if (loads < 0).any() or (recall < 0).any() or (recall > 1).any():
            raise ValueError(f"results[{rule!r}]: expected loads >= 0 and recall_fraction in "
                             f"[0, 1], got loads in [{loads.min():g}, {loads.max():g}] and "
                             f"recall in [{recall.min():g}, {recall.max():g}]")
        order = np.argsort(loads, kind="stable")
        curves[str(rule)] = (loads[order], recall[order])
    if mark is not None and not (_is_number(mark) and math.isfinite(mark) and mark >= 0):
        raise ValueError(f"mark: expected a finite load >= 0 or None, got {mark!r}")
    fig = _new_figure(6.4, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    for rule, (loads, recall) in curves.items():
        ax.plot(loads, recall, marker="o", markersize=3, label=rule)
    if mark is not None:
        ax.axvline(mark, color="0.4", linestyle="--", linewidth=1,
                   label=f"{mark:g} N (Hebbian theory)")
    ax.set_xlabel("load P / N (patterns per unit)")
    ax.set_ylabel("fraction of patterns recalled")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    ax.set_title("Storage capacity" + (f", N = {n_units} units" if n_units else ""))
    fig.tight_layout()
    return _save(fig, path)


def image_rows(rows: dict, image_shape, path) -> Path:
    """Draw labelled rows of images, e.g. ``{"stored": ..., "corrupted": ..., "recalled": ...}``.

    Parameters
    ----------
    rows : ``{label: (n_i, height * width)}``; row ``i`` shows its ``n_i`` images side by side,
        aligned by column, so image ``j`` of every row sits in the same column. Values are put in
        [0, 1] jointly over all rows like :func:`sample_grid` (kept, spins mapped by
        ``(x + 1) / 2``, else scaled by the overall min and max), so rows stay comparable.
    image_shape : ``(height, width)``
    path : PNG file to write

    Returns
    -------
    Path written.
    """
    if not isinstance(rows, dict) or not rows:
        raise ValueError(f"rows: expected a non-empty dict {{label: images}}, got "
                         f"{type(rows).__name__}{' (empty)' if rows == {} else ''}")
    h, w = _check_image_shape(image_shape)
    arrays = {str(k): _images(v, (h, w), f"rows[{k!r}]")[0] for k, v in rows.items()}
    joint = _unit_range(np.concatenate(list(arrays.values()), axis=0))
    n_max = max(a.shape[0] for a in arrays.values())
    mosaics, start = {}, 0
    for k, a in arrays.items():
        part = joint[start:start + a.shape[0]]
        start += a.shape[0]
        if a.shape[0] < n_max:  # fill empty columns with white
            part = np.concatenate([part, np.ones((n_max - a.shape[0], h * w))], axis=0)
        mosaics[k] = tile_images(part, (h, w), n_cols=n_max, normalize=None, pad_value=1.0)
    mh, mw = next(iter(mosaics.values())).shape
    label_in = 0.12 + 0.075 * max(len(k) for k in mosaics)  # room for the labels on the left
    scale = min(8.0, max(1.0, 800.0 / max(mw, 1)))
    img_w_in, row_h_in, gap_in = mw * scale / _DPI, mh * scale / _DPI, 0.08
    w_in = label_in + img_w_in
    h_in = len(mosaics) * row_h_in + (len(mosaics) + 1) * gap_in
    fig = _new_figure(w_in, h_in)
    for i, (k, m) in enumerate(mosaics.items()):
        bottom = h_in - (i + 1) * (row_h_in + gap_in)
        ax = fig.add_axes((label_in / w_in, bottom / h_in, img_w_in / w_in, row_h_in / h_in))
        ax.imshow(m, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(k, rotation=0, ha="right", va="center", fontsize=10)
    return _save(fig, path)
