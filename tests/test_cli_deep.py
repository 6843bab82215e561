"""``boltzkit train --model dbn|dbm``: runs of several stages (one per layer, a dbm's joint
training last), each in its own subfolder, that survive SIGKILL in any stage and end, after
``--resume``, with the same model file bit for bit as the run done in one go; the library plans
they follow (:func:`~boltzkit.training.greedy.dbn_stages`,
:class:`~boltzkit.training.greedy.DBMPretraining`) give what ``train_dbn`` and ``pretrain_dbm``
give; and one line for every option that does not apply."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from boltzkit import load
from boltzkit.cli import main
from boltzkit.io import read_metadata
from boltzkit.models import DBM, DBN, RBM
from boltzkit.training import fit
from boltzkit.training.greedy import DBMPretraining, dbn_stages, pretrain_dbm, train_dbn

from .conftest import gen
from .test_cli_conv import one_error_line

QUICK = ["--no-progress", "--sample-steps", "5", "--batch-size", "20"]
DBN_ARGS = ["--model", "dbn", "--hidden", "6,4", "--epochs", "3", "--method", "pcd",
            "--chains", "8"]
DBM_ARGS = ["--model", "dbm", "--hidden", "6,5,4", "--pretrain-epochs", "2", "--epochs", "3",
            "--chains", "8", "--mf-steps", "3"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "binary.npy"
    x = (torch.rand(100, 10, generator=gen(3)) < 0.35).float()
    np.save(path, x.numpy())
    return path


def train(args, data, out):
    return ["train", "--data", str(data), "--out", str(out), *QUICK, *args]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = {}
    for name, args in (("dbn", DBN_ARGS), ("dbm", DBM_ARGS)):
        folder = tmp_path_factory.mktemp(name)
        assert main(train(args, data, folder)) == 0
        out[name] = folder
    return out


def same_file(a, b):
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), a


def test_a_dbn_run_has_a_folder_per_layer_and_a_dbn_file(reference, capsys):
    run = reference["dbn"]
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["layer-1", "layer-2"]
    model = load(run / "model.safetensors")
    assert isinstance(model, DBN) and model.sizes == (10, 6, 4)
    meta = read_metadata(run / "model.safetensors")
    assert meta["preparation"] is not None and meta["extra"]["stages"] == [
        "layer-1 3 epochs", "layer-2 3 epochs"]
    # each layer's file is its RBM; the DBN holds them
    for l in (0, 1):
        rbm = load(run / f"layer-{l + 1}" / "model.safetensors")
        assert isinstance(rbm, RBM) and torch.equal(rbm.weight, getattr(model, f"weight_{l}"))
    assert read_metadata(run / "layer-2" / "model.safetensors")["preparation"] is None
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [(h["stage"], h["epoch"]) for h in history] == [
        (f"layer-{l}", e) for l in (1, 2) for e in (1, 2, 3)]
    for name in ("filters.png", "samples.png", "curves.png"):
        assert (run / name).stat().st_size > 0


def test_a_dbm_run_pretrains_then_trains_jointly(reference):
    run = reference["dbm"]
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == [
        "joint", "layer-1", "layer-2", "layer-3"]
    model = load(run / "model.safetensors")
    assert isinstance(model, DBM) and model.sizes == (10, 6, 5, 4)
    same_file(run / "model.safetensors", run / "joint" / "model.safetensors")
    # a pre-training module with tied copies of a layer is a step, not a model: state only
    assert not (run / "layer-1" / "model.safetensors").exists()
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [h["stage"] for h in history] == ["layer-1"] * 2 + ["layer-2"] * 2 + \
        ["layer-3"] * 2 + ["joint"] * 3
    # joint training is watched by the mean-field reconstruction error, which draws nothing
    joint = [h["recon_error"] for h in history if h["stage"] == "joint"]
    assert len(joint) == 3 and all(0 < e < 1 for e in joint)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from boltzkit import training
    from boltzkit.cli import main

    sig, when = getattr(signal, sys.argv[1]), int(sys.argv[2])
    count, last = [0], [None]
    def on_batch_end(self, state):  # the signal after update number `when` of the whole run
        if (id(state), state.step) != last[0]:  # (every callback of a run is called)
            last[0] = (id(state), state.step)
            count[0] += 1
            if count[0] == when:
                os.kill(os.getpid(), sig)
    training.Callback.on_batch_end = on_batch_end
    sys.exit(main(sys.argv[3:]))
""")


def run_child(sig, when, args):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.run([sys.executable, "-c", KILLER, sig, str(when), *args], env=env,
                          capture_output=True, text=True, timeout=300)


# 100 rows at batch 20: 5 updates an epoch. The dbn: layer-1 takes updates 1-15, layer-2 16-30;
# the dbm: its modules 1-10, 11-20, 21-30, joint training 31-45.
@pytest.mark.parametrize("kind,when", [("dbn", 7), ("dbn", 23), ("dbm", 13), ("dbm", 38)],
                         ids=["dbn-layer-1", "dbn-layer-2", "dbm-pretraining", "dbm-joint"])
def test_a_killed_run_resumes_bit_identically(kind, when, data, reference, tmp_path):
    run = tmp_path / "run"
    child = run_child("SIGKILL", when, train(DBN_ARGS if kind == "dbn" else DBM_ARGS, data, run))
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (run / "model.safetensors").exists()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    same_file(run / "model.safetensors", reference[kind] / "model.safetensors")
    for stage in (p.name for p in reference[kind].iterdir() if p.is_dir()):
        assert not [p.name for p in (run / stage).iterdir() if ".tmp" in p.name]
    mine = json.loads((run / "metrics.json").read_text())["epochs"]
    theirs = json.loads((reference[kind] / "metrics.json").read_text())["epochs"]
    assert [(h["stage"], h["epoch"]) for h in mine] == [(h["stage"], h["epoch"]) for h in theirs]


def test_sigterm_names_the_stage_and_how_to_continue(data, reference, tmp_path, capsys):
    run = tmp_path / "run"
    child = run_child("SIGTERM", 33, train(DBM_ARGS, data, run))
    assert child.returncode == 143, child.stderr
    assert "joint: stopped after epoch 0 and 3 batches" in child.stderr
    assert f"--resume {run}" in child.stderr and "the layers before it are kept" in child.stderr
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "(joint)" in out and "layer-1:" not in out
    same_file(run / "model.safetensors", reference["dbm"] / "model.safetensors")


def test_finished_runs_and_training_further(data, tmp_path, capsys):
    run = tmp_path / "dbm"
    assert main(train(DBM_ARGS, data, run)) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "the run has finished" in capsys.readouterr().out
    # a dbm's joint training goes further; its pre-training is kept as it was
    before = load_file(run / "layer-1" / "train_state.safetensors")
    assert main(["train", "--resume", str(run), "--epochs", "5", "--no-progress"]) == 0
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history if h["stage"] == "joint"] == [1, 2, 3, 4, 5]
    after = load_file(run / "layer-1" / "train_state.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert read_metadata(run / "model.safetensors")["extra"]["stages"][-1] == "joint 5 epochs"
    # a dbn's layers all train for --epochs: changing it is refused
    dbn = tmp_path / "dbn"
    assert main(train(DBN_ARGS, data, dbn)) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(dbn), "--epochs", "5"]) == 2
    one_error_line(capsys, "--epochs: a dbn trains every layer for --epochs (3 in this run)")


def test_overwrite_replaces_the_stages(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train(DBM_ARGS, data, run)) == 0
    assert main(train(DBN_ARGS, data, run) + ["--overwrite"]) == 0
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["layer-1", "layer-2"]
    assert isinstance(load(run / "model.safetensors"), DBN)


@pytest.mark.parametrize("args,needle", [
    (["--model", "rbm", "--hidden", "6,4"], "--hidden: an rbm has one hidden layer"),
    (["--model", "dbn", "--hidden", "6,0"], "--hidden: expected N1,N2,... (positive integers"),
    (["--model", "dbn", "--hidden", "6,x"], "--hidden: expected N or N1,N2,... (integers)"),
    (["--model", "dbn", "--pretrain-epochs", "3"],
     "--pretrain-epochs: not an option of --model dbn"),
    (["--model", "dbm", "--centering"], "--centering: not an option of --model dbm"),
    (["--model", "dbm", "--method", "cd"], "--method: a dbm trains with pcd"),
    (["--model", "dbm", "--visible-units", "spin"], "--visible-units: a dbm takes bernoulli"),
    (["--model", "dbm", "--max-step-norm", "0.1"], "--max-step-norm: a dbm's joint update"),
    (["--model", "dbm", "--mf-steps", "-1"], "--mf-steps: expected an integer >= 0"),
    (["--model", "dbm", "--pretrain-lr", "nan"], "--pretrain-lr: expected a finite number"),
    (["--model", "dbn", "--visible-units", "gaussian:learned"],
     "--visible-units: a DBN takes unit families that own no parameters"),
    (["--model", "rbm", "--features", "sample"], "--features: not an option of --model rbm"),
    (["--model", "conv", "--hidden", "6"], "--hidden: not an option of --model conv"),
])
def test_options_that_do_not_apply_get_one_line(args, needle, data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train(args, data, out)) == 2
    one_error_line(capsys, needle)
    assert not out.exists()


# -- the library plans -------------------------------------------------------------------------
def test_the_dbn_plan_trains_what_train_dbn_trains():
    x = (torch.rand(80, 9, generator=gen(1)) < 0.4).float()
    ref = train_dbn(x, [9, 5, 4], epochs=2, batch_size=20, generator=gen(2))
    g = gen(2)
    model = DBN([9, 5, 4], generator=g)
    stages = list(_trained(dbn_stages(model, x, generator=g), g))
    assert [s.name for s in stages] == ["layer-1", "layer-2"]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  ref.state_dict().values()))


def test_the_dbm_plan_gives_what_pretrain_dbm_gives():
    x = (torch.rand(80, 9, generator=gen(1)) < 0.4).float()
    ref = pretrain_dbm(x, [9, 5, 4, 3], epochs=2, batch_size=20, generator=gen(2))
    g = gen(2)
    plan = DBMPretraining(x, [9, 5, 4, 3], generator=g)
    stages = list(_trained(plan, g))
    assert [s.model.n_visible for s in stages] == [18, 5, 4]  # the bottom one doubled
    assert all(torch.equal(a, b) for a, b in zip(plan.model.state_dict().values(),
                                                  ref.state_dict().values()))


def _trained(plan, g):
    for stage in plan:
        fit(stage.model, stage.data, epochs=2, batch_size=20, lr=0.05, generator=g,
            monitors=[], init_visible_bias=stage.init_visible_bias)
        yield stage
