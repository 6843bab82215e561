"""Tests of boltzkit.plots: mosaics, PNG files (exist, open, size ratios), input validation."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from boltzkit import plots
from boltzkit.plots import (capacity_curve, filters, image_rows, learning_curves, sample_grid,
                            tile_images)


def read_png(path):
    assert path.is_file()
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img


def no_temp_files(folder):
    assert [p.name for p in folder.iterdir() if ".tmp" in p.name] == []


# --- tile_images ----------------------------------------------------------------------------
def test_tile_images_layout_and_values():
    x = torch.arange(5 * 6, dtype=torch.float32).reshape(5, 6)  # 5 images of 2x3
    m = tile_images(x, (2, 3), n_cols=2, pad=1, normalize=None, pad_value=-1.0)
    assert isinstance(m, np.ndarray) and m.shape == (3 * 2 + 2, 2 * 3 + 1)
    np.testing.assert_array_equal(m[0:2, 0:3], x[0].reshape(2, 3))
    np.testing.assert_array_equal(m[0:2, 4:7], x[1].reshape(2, 3))
    np.testing.assert_array_equal(m[3:5, 0:3], x[2].reshape(2, 3))
    np.testing.assert_array_equal(m[6:8, 0:3], x[4].reshape(2, 3))
    assert (m[2, :] == -1).all() and (m[:, 3] == -1).all()  # gaps
    assert (m[6:8, 4:7] == -1).all()  # empty slot
    # default columns: ceil(sqrt(5)) = 3; pad 0
    assert tile_images(x, (2, 3), pad=0).shape == (2 * 2, 3 * 3)
    # n_cols larger than n: one row
    assert tile_images(x, (2, 3), n_cols=50, pad=0).shape == (2, 5 * 3)


def test_tile_images_normalize():
    x = np.array([[0.0, 2.0, 4.0, 4.0], [10.0, 10.0, 10.0, 10.0], [-1.0, 0.0, 1.0, 3.0]])
    each = tile_images(x, (2, 2), n_cols=3, pad=0, normalize="each")
    np.testing.assert_allclose(each[:, 0:2].ravel(), [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(each[:, 2:4].ravel(), [0.5] * 4)  # constant tile: mid grey
    np.testing.assert_allclose(each[:, 4:6].ravel(), [0.0, 0.25, 0.5, 1.0])
    allm = tile_images(x, (2, 2), n_cols=3, pad=0, normalize="all")
    np.testing.assert_allclose(allm[:, 0:2].ravel(), (np.array([0, 2, 4, 4]) + 1) / 11)
    assert allm.min() == 0.0 and allm.max() == 1.0
    raw = tile_images(x, (2, 2), n_cols=1, pad=2, normalize=None)
    assert raw[2, 0] == 10.0  # default pad value: the top of the value range
    with pytest.raises(ValueError, match="normalize"):
        tile_images(x, (2, 2), normalize="max")


@pytest.mark.parametrize("args,match", [
    ((np.zeros((3, 5)), (2, 2)), "4 = 2x2 columns"),
    ((np.zeros(4), (2, 2)), "2-D"),
    ((np.zeros((0, 4)), (2, 2)), "at least one image"),
    ((np.array([[0.0, np.nan, 0, 0]]), (2, 2)), "finite"),
    ((np.zeros((1, 4)), (2,)), "image_shape"),
    ((np.zeros((1, 4)), (2, 0)), "image_shape"),
    ((np.zeros((1, 4)), (2.5, 2)), "image_shape"),
])
def test_tile_images_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        tile_images(*args)


def test_tile_images_bad_options():
    x = np.zeros((4, 4))
    with pytest.raises(ValueError, match="n_cols"):
        tile_images(x, (2, 2), n_cols=0)
    with pytest.raises(ValueError, match="pad"):
        tile_images(x, (2, 2), pad=-1)


# --- image pictures -------------------------------------------------------------------------
def test_sample_grid(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 7 * 5, generator=g)
    out = sample_grid(x, (7, 5), tmp_path / "grid.png", n_cols=4)
    assert out == tmp_path / "grid.png"
    img = read_png(out)
    # mosaic 3 rows x 4 cols of 7x5 with 1-pixel gaps: 23 x 23 pixels; no title: same aspect
    h, w = img.shape[:2]
    assert abs(w / h - 23 / 23) < 0.02
    wide = read_png(sample_grid(x, (7, 5), tmp_path / "wide.png", n_cols=12))
    assert abs(wide.shape[1] / wide.shape[0] - (12 * 5 + 11) / 7) < 0.05
    titled = read_png(sample_grid(x, (7, 5), tmp_path / "t.png", n_cols=4, title="samples"))
    assert titled.shape[0] > titled.shape[1]  # a strip added on top for the title
    no_temp_files(tmp_path)


def test_sample_grid_maps_spins_to_unit_range(tmp_path):
    # one white and one black image, as spins: the PNG has exactly black and white pixels
    x = torch.cat([torch.ones(1, 16), -torch.ones(1, 16)])
    img = read_png(sample_grid(x, (4, 4), tmp_path / "spins.png", n_cols=2))
    grey = img[..., 0]
    h, w = grey.shape
    left, right = grey[h // 4: 3 * h // 4, : w // 4], grey[h // 4: 3 * h // 4, -w // 4:]
    assert np.allclose(left, 1.0) and np.allclose(right, 0.0)


def test_filters(tmp_path):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6 * 6, 30, generator=g)
    out = filters(w, (6, 6), tmp_path / "f.png", n=16, title="filters")
    img = read_png(out)
    assert img.shape[0] > img.shape[1]  # square mosaic plus the title strip
    # fewer hidden units than n: all of them (30 -> 6x6 grid with empty slots)
    read_png(filters(w.numpy(), (6, 6), tmp_path / "all.png"))
    with pytest.raises(ValueError, match=r"weight: expected shape \(n_visible=36"):
        filters(w.T, (6, 6), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="weight"):
        filters(w[:, 0], (6, 6), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="n: expected a positive int"):
        filters(w, (6, 6), tmp_path / "bad.png", n=0)
    assert not (tmp_path / "bad.png").exists()
    no_temp_files(tmp_path)


def test_filters_show_first_units_in_order(tmp_path, monkeypatch):
    seen = {}
    real = plots.tile_images

    def spy(x, *a, **k):
        seen["x"] = np.asarray(x)
        return real(x, *a, **k)

    monkeypatch.setattr(plots, "tile_images", spy)
    w = np.arange(4 * 10, dtype=float).reshape(4, 10)
    filters(w, (2, 2), tmp_path / "f.png", n=3)
    np.testing.assert_array_equal(seen["x"], w[:, :3].T)


def test_image_rows(tmp_path):
    g = torch.Generator().manual_seed(0)
    stored = torch.randint(0, 2, (5, 64), generator=g).float() * 2 - 1
    corrupted = stored.clone()
    corrupted[:, :10] *= -1
    out = image_rows({"stored": stored, "corrupted": corrupted, "recalled": stored[:4]},
                     (8, 8), tmp_path / "rows.png")
    img = read_png(out)
    h, w = img.shape[:2]
    # three rows of a 1x5 mosaic (8 x 44 pixels each) plus a label column: wider than 44/24
    assert w / h > 44 / 24
    with pytest.raises(ValueError, match=r"rows\['recalled'\]: expected 64"):
        image_rows({"stored": stored, "recalled": torch.zeros(2, 63)}, (8, 8),
                   tmp_path / "bad.png")
    with pytest.raises(ValueError, match="non-empty dict"):
        image_rows({}, (8, 8), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# --- curves ---------------------------------------------------------------------------------
def test_learning_curves(tmp_path):
    hist = [{"epoch": i + 1, "recon_error": 1 / (i + 1), "lr": 0.01, "seconds": 0.5,
             "log_likelihood": -100.0 + i} for i in range(8)]
    del hist[3]["log_likelihood"]  # a gap
    img = read_png(learning_curves(hist, tmp_path / "c.png"))
    one = read_png(learning_curves(hist, tmp_path / "one.png", keys=["recon_error"]))
    # one subplot per quantity (recon_error, lr, log_likelihood), stacked: same width, and the
    # three-panel figure is about three times as tall as the one-panel one
    assert img.shape[1] == one.shape[1] and one.shape[0] < one.shape[1]
    assert 2.0 < img.shape[0] / one.shape[0] < 3.0
    with pytest.raises(ValueError, match="keys: 'nope'"):
        learning_curves(hist, tmp_path / "bad.png", keys=["nope"])
    with pytest.raises(ValueError, match="non-empty list"):
        learning_curves([], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="non-empty list"):
        learning_curves(hist[0], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="list of dicts"):
        learning_curves([hist[0], 3], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="numeric quantity"):
        learning_curves([{"epoch": 1, "seconds": 2.0, "note": "x"}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_learning_curves_of_stages_draw_each_stage_apart(tmp_path, monkeypatch):
    """Records that name their stage (a DBN's layers) follow each other along x, one line per
    stage, the epochs restarting in each."""
    import matplotlib.axes

    hist = [{"epoch": e, "recon_error": 1.0 / e, "stage": s} for s in ("layer-1", "layer-2")
            for e in (1, 2, 3)]
    drawn = []
    real = matplotlib.axes.Axes.plot

    def plot(self, *args, **kwargs):
        drawn.append(list(args[0]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    assert read_png(learning_curves(hist, tmp_path / "c.png")).shape[0] > 0
    assert drawn == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]


def test_capacity_curve(tmp_path):
    loads = np.linspace(0.02, 0.3, 15)
    results = {"hebbian": (loads, 1 / (1 + np.exp((loads - 0.138) / 0.01))),
               "storkey": (torch.tensor(loads), torch.tensor(np.clip(1.5 - 4 * loads, 0, 1)))}
    img = read_png(capacity_curve(results, tmp_path / "cap.png", n_units=100))
    assert img.shape[1] > img.shape[0]
    read_png(capacity_curve(results, tmp_path / "nomark.png", mark=None))
    bad = {
        "length": {"r": (loads, loads[:-1])},
        "range": {"r": (loads, loads + 1)},
        "nan": {"r": (loads, np.full_like(loads, np.nan))},
        "pair": {"r": loads},
    }
    for why, res in bad.items():
        with pytest.raises(ValueError, match=r"results\['r'\]"):
            capacity_curve(res, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="non-empty dict"):
        capacity_curve({}, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="mark"):
        capacity_curve(results, tmp_path / "bad.png", mark=float("nan"))
    assert not (tmp_path / "bad.png").exists()


def test_plots_leave_pyplot_alone(tmp_path):
    """Drawing never imports pyplot nor switches the global backend."""
    code = (
        "import sys, matplotlib, numpy as np\n"
        "before = matplotlib.get_backend() if 'matplotlib.pyplot' in sys.modules else None\n"
        "from boltzkit import plots\n"
        f"plots.sample_grid(np.zeros((4, 4)), (2, 2), {str(tmp_path / 'p.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "p.png").is_file()
