"""boltzkit train's methods and measured defaults: parallel tempering (--method pt --replicas),
centering (on by default for an rbm; --centering RATE, --no-centering), the batch size that
depends on the data's size, and the refusals of options that would be ignored."""

import json

import pytest
import torch

from boltzkit.cli import main


def settings(folder):
    return json.loads((folder / "run.json").read_text())["settings"]


def test_rbm_defaults_are_centered_pcd_with_a_decaying_rate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--out", str(out),
                 "--no-progress", "--monitor-every", "0"]) == 0
    s = settings(out)
    assert (s["method"], s["centering"], s["lr"], s["lr_schedule"]) == ("pcd", 0.01, 0.1,
                                                                          "linear")
    assert s["batch_size"] == 20  # digits: fewer than 10,000 rows
    assert "Centered(PCD(" in capsys.readouterr().out
    # the offsets travel with the chains in the training state
    from safetensors.torch import load_file

    names = set(load_file(out / "train_state.safetensors"))
    assert {"estimator/visible", "estimator/visible_offset", "estimator/hidden_offset"} <= names


def test_bm_keeps_its_own_defaults(tmp_path):
    out = tmp_path / "bm"
    assert main(["train", "--model", "bm", "--hidden", "2", "--epochs", "1", "--settle", "1",
                 "--collect", "1", "--out", str(out), "--no-progress"]) == 0
    s = settings(out)
    assert (s["method"], s["centering"], s["batch_size"], s["lr"], s["lr_schedule"]) == \
        ("two-phase", 0.0, 20, 0.05, "constant")


@pytest.mark.parametrize("extra,estimator", [
    (["--method", "pt", "--replicas", "3"], "Centered(PT(k=1, n_chains=None, replicas=3"),
    (["--method", "pt", "--no-centering"], "PT(k=1, n_chains=None, replicas=10"),
    (["--method", "cd", "--centering", "0.05"], "Centered(CD(k=1), rate=0.05"),
    (["--no-centering"], "PCD(k=1, n_chains=None)"),
])
def test_methods_and_centering(tmp_path, capsys, extra, estimator):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--hidden", "6", "--out", str(out), "--no-progress",
                 *extra]) == 0
    printed = capsys.readouterr().out
    assert estimator in printed
    assert "held-out log-likelihood" in printed


def test_pt_run_resumes_bit_identically(tmp_path):
    from safetensors.torch import load_file

    once, twice = tmp_path / "once", tmp_path / "twice"
    # (a constant rate: a decaying one stretches over the new total when a finished run is
    # trained further)
    args = ["--method", "pt", "--replicas", "3", "--hidden", "6", "--no-progress",
            "--monitor-every", "0", "--lr-schedule", "constant"]
    assert main(["train", "--epochs", "3", "--out", str(once), *args]) == 0
    assert main(["train", "--epochs", "1", "--out", str(twice), *args]) == 0
    assert main(["train", "--resume", str(twice), "--epochs", "3", "--no-progress"]) == 0
    a, b = load_file(once / "model.safetensors"), load_file(twice / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("extra,message", [
    (["--replicas", "4"], "--replicas: only --method pt has a temperature ladder"),
    (["--method", "pt", "--replicas", "1"], "--replicas: expected an integer >= 2"),
    (["--centering", "1.5"], "--centering: expected a rate in (0, 1]"),
    (["--centering", "nan"], "--centering: expected a rate in (0, 1]"),
    (["--model", "bm", "--centering"], "--centering: not an option of --model bm"),
    (["--model", "bm", "--method", "pt"], "--method: a bm trains with two-phase"),
])
def test_refusals(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_learned_variances_train_uncentered_by_default(tmp_path):
    out = tmp_path / "grbm"
    assert main(["train", "--data", "patches", "--visible-units", "gaussian:learned",
                 "--hidden", "4", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--monitor-every", "0"]) == 0
    assert settings(out)["centering"] == 0.0
