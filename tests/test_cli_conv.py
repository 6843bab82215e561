"""boltzkit train --model conv, and evaluate and sample on its run folders: the files a run
writes, resume, images from user arrays (a .npy of (n, C, H, W), or rows with --image-shape),
exact log Z of a small run against enumeration, the refusals of options that do not apply."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import boltzkit
from boltzkit import ConvRBM, exact
from boltzkit.cli import main

QUICK = ["--no-progress", "--sample-steps", "3"]


def bars(n, side=6, seed=0):
    """Images (n, 1, side, side) holding one horizontal or vertical bar of 1s."""
    g = np.random.default_rng(seed)
    x = np.zeros((n, 1, side, side), dtype=np.float32)
    for i in range(n):
        k = g.integers(side)
        if g.random() < 0.5:
            x[i, 0, k, :] = 1.0
        else:
            x[i, 0, :, k] = 1.0
    return x


def one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def settings(folder):
    return json.loads((folder / "run.json").read_text())["settings"]


def test_a_conv_run_on_images_of_a_npy_file_and_evaluate_and_sample_on_it(tmp_path, capsys):
    data = tmp_path / "bars.npy"
    np.save(data, bars(60, side=4))
    run = tmp_path / "run"
    assert main(["train", "--model", "conv", "--data", str(data), "--filters", "2",
                 "--epochs", "3", "--out", str(run), *QUICK]) == 0
    assert "convolutional RBM (2 filters of 3x3 on 1x4x4" in capsys.readouterr().out
    for name in ("run.json", "model.safetensors", "train_state.safetensors", "metrics.json",
                 "filters.png", "samples.png", "curves.png"):
        assert (run / name).stat().st_size > 0, name
    s = settings(run)  # auto settings are recorded as what they became
    assert (s["filter_size"], s["pool"], s["method"]) == (3, 2, "cd")
    assert s["lr"] == pytest.approx(0.4 / 4) and s["batch_size"] == 20
    epochs = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert all(0 < e["recon_error"] < 1 and 0 < e["hidden_activity"] < 1 for e in epochs)
    model = boltzkit.load(run / "model.safetensors")
    assert isinstance(model, ConvRBM) and model.hidden_shape == (2, 2, 2) and model.pool == 2

    # evaluate RUN: 2 pooling blocks of 5 states each, so log Z is exact, and forward and reverse
    # AIS bracket the same log-likelihood
    assert main(["evaluate", str(run), "--data", str(data), "--log-z", "both", "--chains", "20",
                 "--betas", "300", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    lz = exact.rbm.log_partition(model)
    assert result["log_z_method"] == "exact" and result["log_z"] == pytest.approx(lz, abs=1e-9)
    images = torch.from_numpy(bars(60, side=4))
    want = -(model.double().free_energy(images.double()).mean().item() + lz)
    assert result["log_likelihood"] == pytest.approx(want, abs=1e-6)
    assert result["pseudo_likelihood_method"] == "exact"
    lo, hi = result["log_likelihood_bracket"]
    assert abs(lo - want) < 0.5 and abs(hi - want) < 0.5
    assert main(["evaluate", str(run), "--data", str(data), "--log-z", "exact"]) == 0
    assert "convolutional RBM" in capsys.readouterr().out

    # sample RUN: images, 0/1
    assert main(["sample", str(run), "--n", "5", "--steps", "3", "--out",
                 str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (5, 1, 4, 4) and set(np.unique(s)) <= {0.0, 1.0}
    assert main(["sample", str(run), "--n", "4", "--steps", "2", "--mean", "--out",
                 str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["sample", str(run), "--method", "pt", "--out", str(tmp_path / "t.npy")]) == 2
    one_error_line(capsys, "--method pt: parallel tempering samples RBMs")


def test_a_conv_run_resumes_bit_identically(tmp_path):
    data = tmp_path / "bars.npy"
    np.save(data, bars(50, seed=1))
    args = ["--model", "conv", "--data", str(data), "--filters", "2", "--method", "pcd",
            "--chains", "7", "--sparsity", "0.1", *QUICK]
    once, twice = tmp_path / "once", tmp_path / "twice"
    assert main(["train", "--epochs", "3", "--out", str(once), *args]) == 0
    assert main(["train", "--epochs", "1", "--out", str(twice), *args]) == 0
    assert main(["train", "--resume", str(twice), "--epochs", "3", "--no-progress"]) == 0
    a, b = load_file(once / "model.safetensors"), load_file(twice / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_rows_with_an_image_shape_of_two_channels_and_gaussian_units(tmp_path, capsys):
    rows = tmp_path / "rows.npy"
    x = np.concatenate([bars(40, 4, seed=2), bars(40, 4, seed=3)], 1)  # (40, 2, 4, 4)
    np.save(rows, x.reshape(40, -1) * 3.0 + 1.0)
    run = tmp_path / "run"
    assert main(["train", "--model", "conv", "--data", str(rows), "--image-shape", "2,4,4",
                 "--filters", "2", "--filter-size", "3", "--visible-units", "gaussian",
                 "--epochs", "1", "--out", str(run), *QUICK]) == 0
    meta = boltzkit.io.read_metadata(run / "model.safetensors")
    assert meta["config"]["image_shape"] == [2, 4, 4]
    prep = meta["preparation"]  # one mean and std per channel, repeated over its pixels
    assert len(set(prep.mean[:16])) == 1 and len(set(prep.mean[16:])) == 1
    assert prep.mean[0] == pytest.approx(x[:, 0].mean() * 3 + 1, rel=1e-5)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(rows), "--log-z", "exact"]) == 0
    out = capsys.readouterr().out
    assert "pseudo-likelihood         — ± — nats/row (unavailable)" in out
    assert main(["sample", str(run), "--n", "3", "--steps", "1", "--out",
                 str(tmp_path / "g.npy")]) == 0
    assert np.load(tmp_path / "g.npy").shape == (3, 2, 4, 4)


@pytest.mark.parametrize("extra,needle", [
    (["--model", "conv", "--hidden", "10"], "--hidden: not an option of --model conv"),
    (["--model", "conv", "--centering"], "--centering: not an option of --model conv"),
    (["--model", "conv", "--method", "pt"], "--method: a conv RBM trains with cd or pcd"),
    (["--model", "conv", "--replicas", "3"], "--replicas: not an option of --model conv"),
    (["--model", "conv", "--chains", "5"], "--chains: --method cd starts its chains"),
    (["--model", "conv", "--visible-units", "spin"],
     "--visible-units: a conv RBM takes bernoulli or gaussian units"),
    (["--model", "conv", "--monitor-every", "1"],
     "--monitor-every: the held-out log-likelihood monitor serves"),
    (["--model", "conv", "--sparsity", "1.5"], "--sparsity: expected a target in [0, 1)"),
    (["--model", "conv", "--pool", "0"], "--pool: expected an integer >= 1"),
    (["--model", "conv", "--filter-size", "9"],
     "--filter-size: expected at most the images' 8 x 8, got 9"),
    (["--model", "conv", "--filter-size", "3", "--pool", "4"],
     "--pool: 4 does not divide the 6 x 6 hidden maps"),
    (["--model", "conv", "--image-shape", "3,3"],
     "--image-shape: 1 x 3 x 3 = 9 pixels, the rows of digits/train have 64"),
    (["--model", "conv", "--image-shape", "3,x"], "--image-shape: expected H,W or C,H,W"),
    (["--filters", "4"], "--filters: not an option of --model rbm"),
    (["--model", "bm", "--pool", "2"], "--pool: not an option of --model bm"),
    (["--lr", "auto"], "--lr: expected a finite number >= 0, got 'auto'"),
])
def test_refusals(tmp_path, capsys, extra, needle):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), *QUICK, *extra]) == 2
    one_error_line(capsys, needle)
    assert not out.exists()


def test_rows_that_are_not_square_images_need_an_image_shape(tmp_path, capsys):
    rows = tmp_path / "rows.npy"
    np.save(rows, np.zeros((10, 12), dtype=np.float32))
    assert main(["train", "--model", "conv", "--data", str(rows), "--out",
                 str(tmp_path / "run"), *QUICK]) == 2
    one_error_line(capsys, "not square images; give --image-shape H,W or C,H,W")
    images = tmp_path / "images.npy"
    np.save(images, bars(10))
    assert main(["train", "--model", "conv", "--data", str(images), "--image-shape", "1,4,9",
                 "--out", str(tmp_path / "run"), *QUICK]) == 2
    one_error_line(capsys, "--image-shape: " + str(images) + " holds images of shape (1, 6, 6)")
    assert not (tmp_path / "run").exists()
