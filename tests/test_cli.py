import json

import numpy as np
import pytest
import torch

import boltzkit
from boltzkit.cli import main


def test_train_writes_a_run_folder_and_sample_reads_it(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "3", "--hidden", "16", "--sample-steps", "20",
                 "--no-progress", "--out", str(out)]) == 0
    for name in ("model.safetensors", "metrics.json", "filters.png", "samples.png", "curves.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["settings"]["hidden"] == 16
    model = boltzkit.load(out / "model.safetensors")
    assert (model.n_visible, model.n_hidden) == (64, 16)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left

    assert main(["sample", str(out / "model.safetensors"), "--n", "7", "--steps", "5",
                 "--out", str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (7, 64) and set(np.unique(s)) <= {0.0, 1.0}
    assert main(["sample", str(out / "model.safetensors"), "--n", "9", "--steps", "5",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize("visible", ["spin", "gaussian"])
def test_train_other_visible_units(tmp_path, visible):
    out = tmp_path / visible
    assert main(["train", "--epochs", "1", "--hidden", "8", "--visible-units", visible,
                 "--hidden-units", "spin", "--sample-steps", "5", "--no-progress",
                 "--lr", "0.01", "--out", str(out)]) == 0
    assert boltzkit.load(out / "model.safetensors").visible.name == visible


@pytest.mark.parametrize("visible", ["bernoulli", "spin", "gaussian"])
def test_train_evaluate_sample_share_the_models_preparation(tmp_path, capsys, visible):
    out = tmp_path / visible
    assert main(["train", "--epochs", "1", "--hidden", "6", "--visible-units", visible,
                 "--sample-steps", "5", "--no-progress", "--lr", "0.01", "--out", str(out)]) == 0
    path = out / "model.safetensors"
    meta = boltzkit.io.read_metadata(path)
    prep = meta["preparation"]
    assert isinstance(prep, boltzkit.Preparation) and prep.units == visible
    assert prep.n_features == 64 and "transform" not in meta["extra"]
    assert (prep.mean is not None) == (visible == "gaussian")
    capsys.readouterr()
    rows = tmp_path / "rows.npy"  # 40 test digits (grey): a Gaussian pseudo-likelihood is slow
    np.save(rows, boltzkit.data.load_dataset("digits", "test").data[:40].numpy())
    assert main(["evaluate", str(path), "--data", str(rows), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_rows"] == 40 and "exact" in result["estimates"]
    assert main(["sample", str(path), "--n", "6", "--steps", "3", "--mean",
                 "--out", str(tmp_path / "m.npy")]) == 0
    means = np.load(tmp_path / "m.npy")                 # data space
    assert main(["sample", str(path), "--n", "6", "--steps", "3", "--mean", "--model-space",
                 "--out", str(tmp_path / "v.npy")]) == 0
    raw = np.load(tmp_path / "v.npy")                   # the model's own visible space
    np.testing.assert_allclose(means, prep.inverse(torch.from_numpy(raw)).numpy(), rtol=1e-6)
    if visible == "spin":
        assert -1 <= raw.min() < 0 and 0 <= means.min() and means.max() <= 1
    if visible == "gaussian":                           # un-standardised: grey-level scale
        np.testing.assert_allclose(means, raw * np.array(prep.std) + np.array(prep.mean),
                                   rtol=1e-5, atol=1e-6)


def test_evaluate_reads_an_old_transform_record(tmp_path, capsys):
    x = boltzkit.data.load_dataset("digits").data
    _, mean, std = boltzkit.data.standardize(x)
    model = boltzkit.RBM(64, 4, "gaussian", "bernoulli", generator=torch.Generator().manual_seed(0))
    path = tmp_path / "old.safetensors"
    boltzkit.save(model, path, metadata={"transform": {
        "binarize": "threshold", "standardize": {"mean": mean.tolist(), "std": std.tolist()}}})
    assert boltzkit.io.read_metadata(path)["preparation"].mean == tuple(mean.tolist())
    rows = tmp_path / "rows.npy"
    np.save(rows, x[:30].numpy())
    assert main(["evaluate", str(path), "--data", str(rows), "--json"]) == 0
    old = json.loads(capsys.readouterr().out)["pseudo_likelihood"]
    boltzkit.save(model, path, preparation=boltzkit.Preparation.fit(x, "gaussian"))
    assert main(["evaluate", str(path), "--data", str(rows), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pseudo_likelihood"] == old


def test_train_user_arrays(tmp_path):
    x = (np.random.default_rng(0).random((50, 6)) < 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    for name in ("x.npy", "x.csv"):
        out = tmp_path / f"run-{name}"
        assert main(["train", "--data", str(tmp_path / name), "--epochs", "2", "--hidden", "3",
                     "--method", "pcd", "--sample-steps", "5", "--no-progress",
                     "--out", str(out)]) == 0
        assert boltzkit.load(out / "model.safetensors").n_visible == 6


@pytest.mark.parametrize("args,message", [
    (["train", "--hidden", "0"], "--hidden: expected a positive integer"),
    (["train", "--visible-units", "relu"], "units: expected one of"),
    (["train", "--data", "nope.npy"], "nope.npy"),
    (["train", "--visible-units", "softmax:3"], "multiple of 3"),
    (["sample", "missing.safetensors", "--out", "x.npy"], "does not exist"),
    (["sample", "m.safetensors", "--out", "x.txt"], "--out: expected a file ending in .npy"),
])
def test_errors_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    assert main(args + (["--out", str(tmp_path / "o")] if args[0] == "train" else [])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("boltzkit: error:") and message in err[0], err


def test_bad_values_in_user_data(tmp_path, capsys):
    x = np.ones((5, 4), dtype=np.float32)
    x[2, 1] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")]) == 2
    assert "NaN" in capsys.readouterr().err
