"""Runs that survive interruption: resume is bit-identical to the run done in one go.

Library level (in this process): CD, PCD and the Boltzmann machine's two-phase rule, stopped
between epochs, by SIGINT and by SIGTERM in the middle of an epoch, then resumed from the run
folder (and from the state object). Command level (a child process that kills itself with
SIGKILL): in the middle of an epoch and in the middle of writing the training state; then
``boltzkit train --resume``. Every tensor of the final model file must equal the uninterrupted
run's, bit for bit.
"""

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

from boltzkit import DBM, RBM, BoltzmannMachine
from boltzkit.cli import main
from boltzkit.io import read_metadata
from boltzkit.training import PCD, PT, CD, Centered, SGD, Callback, Checkpoint, TrainState, TwoPhase, fit

from boltzkit.training import MeanFieldPCD

from .conftest import gen

EPOCHS = 4


def binary(n, d, seed):
    return (torch.rand(n, d, generator=gen(seed)) < 0.35).float()


CASES = {
    "cd": lambda: (RBM(12, 6, generator=gen(0)), CD(1), binary(130, 12, 1)),
    "pcd": lambda: (RBM(12, 6, generator=gen(0)), PCD(2, n_chains=9), binary(130, 12, 1)),
    # the ladder adapts every 3 updates: a resumed run must carry the ladder and its counters
    "pt": lambda: (RBM(12, 6, generator=gen(0)), PT(2, n_chains=9, replicas=4, adapt_every=3),
                   binary(130, 12, 1)),
    # centering: the offsets are part of the estimator's state
    "centered-pcd": lambda: (RBM(12, 6, generator=gen(0)), Centered(PCD(2, n_chains=9)),
                             binary(130, 12, 1)),
    "two-phase": lambda: (BoltzmannMachine(6, 3, init_std=0.1, generator=gen(0)),
                          TwoPhase(2, 2, 2, 2, n_chains=12, block_size=4), binary(90, 6, 1)),
    "dbm-mean-field-pcd": lambda: (DBM([12, 6, 4], init_std=0.1, generator=gen(0)),
                                   MeanFieldPCD(2, n_chains=9, mf_steps=3), binary(130, 12, 1)),
}


def train(case, epochs=EPOCHS, callbacks=(), resume=None):
    model, estimator, data = CASES[case]()
    state = fit(model, data, estimator=estimator, update=SGD(0.5, 1e-3), epochs=epochs,
                batch_size=20, lr=0.1, generator=gen(2), callbacks=list(callbacks),
                resume=resume)
    return model, state


def tensors(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


class SendSignal(Callback):
    """Sends ``sig`` to this process after update number ``step``."""

    def __init__(self, sig, step):
        self.sig, self.step = sig, step

    def on_batch_end(self, state):
        if state.step == self.step:
            os.kill(os.getpid(), self.sig)


class Record(Callback):
    """The model's tensors after every finished epoch."""

    def __init__(self):
        self.epochs = {}

    def on_epoch_end(self, state):
        self.epochs[state.epoch] = tensors(state.model)


@pytest.fixture(scope="module")
def reference():
    """Each case trained in one go: final tensors and the tensors after every epoch."""
    out = {}
    for case in CASES:
        rec = Record()
        model, _ = train(case, callbacks=[rec])
        out[case] = (tensors(model), rec.epochs)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_resume_between_epochs_is_bit_identical(case, reference, tmp_path):
    _, first = train(case, epochs=2, callbacks=[Checkpoint(tmp_path)])
    assert first.finished and first.epoch == 2
    model, state = train(case, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    assert state.epoch == EPOCHS and [h["epoch"] for h in state.history] == [1, 2, 3, 4]
    assert_same(tensors(model), reference[case][0])
    assert_same(load_file(tmp_path / "model.safetensors"), reference[case][0])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("case", list(CASES))
def test_signal_mid_epoch_keeps_the_last_epoch_and_resumes_bit_identically(case, sig,
                                                                           reference, tmp_path):
    step = 9  # 7 batches per epoch (130 or 90 rows by 20): epoch 2, batch 2 (or 5)
    _, state = train(case, callbacks=[Checkpoint(tmp_path), SendSignal(sig, step)])
    assert state.interrupted and state.signal == signal.Signals(sig).name
    assert state.step == step and state.batch > 0 and state.consistent
    # the model file is the last finished epoch, labelled as such, never the half-done one
    meta = read_metadata(tmp_path / "model.safetensors")
    assert meta["extra"]["epoch"] == state.epoch
    assert_same(load_file(tmp_path / "model.safetensors"), reference[case][1][state.epoch])
    progress = TrainState.read_metadata(tmp_path / "train_state.safetensors")["progress"]
    assert (progress["epoch"], progress["batch"]) == (state.epoch, state.batch)
    model, done = train(case, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    assert done.finished and not done.interrupted
    assert_same(tensors(model), reference[case][0])
    assert_same(load_file(tmp_path / "model.safetensors"), reference[case][0])


@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_the_state_object(case, reference):
    class Stop(Callback):
        def on_batch_end(self, state):
            if state.step == 11:
                state.interrupted = True

    _, state = train(case, callbacks=[Stop()])
    model, done = train(case, resume=state)
    assert done is state and done.finished
    assert_same(tensors(model), reference[case][0])


def test_resume_checks_the_run_it_continues(tmp_path):
    train("pcd", epochs=1, callbacks=[Checkpoint(tmp_path)])
    model, estimator, data = CASES["pcd"]()
    with pytest.raises(ValueError, match="resume: the run was trained with batch_size=20"):
        fit(model, data, estimator=estimator, update=SGD(0.5, 1e-3), epochs=3, batch_size=10,
            lr=0.1, resume=tmp_path)
    model, estimator, data = CASES["pcd"]()
    with pytest.raises(ValueError, match=r"resume: the run was trained on other data \(130 x 12"):
        fit(model, data[:-1], estimator=estimator, update=SGD(0.5, 1e-3), epochs=3,
            batch_size=20, lr=0.1, resume=tmp_path)
    with pytest.raises(ValueError, match="belongs to a RBM"):
        fit(RBM(12, 5), binary(130, 12, 1), estimator=PCD(2, n_chains=9), epochs=3,
            batch_size=20, lr=0.1, resume=tmp_path)
    model, estimator, data = CASES["pcd"]()
    state = TrainState.load(tmp_path / "train_state.safetensors", model, estimator)
    state.epoch = 2  # as if two epochs had run: asking for fewer is refused
    with pytest.raises(ValueError, match="already trained 2 epochs, expected epochs >= 2"):
        fit(model, data, estimator=estimator, update=SGD(0.5, 1e-3), epochs=1, batch_size=20,
            lr=0.1, resume=state)


def test_corrupt_and_foreign_state_files_are_refused(tmp_path):
    train("cd", epochs=1, callbacks=[Checkpoint(tmp_path)])
    path = tmp_path / "train_state.safetensors"
    raw = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    model, _, _ = CASES["cd"]()
    with pytest.raises(ValueError, match="cut.safetensors"):
        TrainState.load(tmp_path / "cut.safetensors", model)
    with pytest.raises(ValueError, match="not a boltzkit training state"):
        TrainState.load(tmp_path / "model.safetensors", model)
    with pytest.raises(ValueError, match="does not exist"):
        TrainState.load(tmp_path / "nothing.safetensors", model)


# -- the command line, killed for real --------------------------------------------------------
KILLER = textwrap.dedent("""
    import os, signal, sys
    import safetensors.torch
    from boltzkit import training
    from boltzkit.cli import main

    mode, when = sys.argv[1], int(sys.argv[2])
    if mode == "batch":  # SIGKILL right after update number `when`
        def on_batch_end(self, state):
            if state.step == when:
                os.kill(os.getpid(), signal.SIGKILL)
        training.Callback.on_batch_end = on_batch_end
    elif mode == "write":  # SIGKILL halfway through writing training state number `when`
        real, count = safetensors.torch.save_file, [0]
        def save_file(tensors, filename, metadata=None):
            if "train_state" in str(filename):
                count[0] += 1
                if count[0] == when:
                    real(tensors, filename, metadata=metadata)
                    data = open(filename, "rb").read()
                    open(filename, "wb").write(data[: len(data) // 2])
                    os.kill(os.getpid(), signal.SIGKILL)
            return real(tensors, filename, metadata=metadata)
        safetensors.torch.save_file = save_file
    elif mode == "term":  # SIGTERM after update number `when`
        def on_batch_end(self, state):
            if state.step == when:
                os.kill(os.getpid(), signal.SIGTERM)
        training.Callback.on_batch_end = on_batch_end
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    path = d / "binary.npy"
    np.save(path, binary(120, 10, 7).numpy())
    return path


def cli_args(method, data, out):
    args = ["train", "--data", str(data), "--hidden", "5", "--epochs", "3",
            "--batch-size", "20", "--out", str(out), "--no-progress", "--sample-steps", "5"]
    if method == "two-phase":
        return args + ["--model", "bm", "--hidden", "3", "--settle", "2", "--collect", "1",
                       "--chains", "10"]
    return args + ["--method", method] + (["--chains", "8"] if method == "pcd" else [])


def run_child(mode, when, args):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.run([sys.executable, "-c", KILLER, mode, str(when), *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cli_reference(cli_data, tmp_path_factory):
    out = {}
    for method in ("cd", "pcd", "two-phase"):
        folder = tmp_path_factory.mktemp(f"ref-{method}")
        assert main(cli_args(method, cli_data, folder)) == 0
        out[method] = load_file(folder / "model.safetensors")
    return out


@pytest.mark.parametrize("mode,when", [("batch", 8), ("write", 2), ("term", 14)],
                         ids=["kill-mid-epoch", "kill-during-state-write", "sigterm"])
@pytest.mark.parametrize("method", ["cd", "pcd", "two-phase"])
def test_killed_command_resumes_bit_identically(method, mode, when, cli_data, cli_reference,
                                                tmp_path, capsys):
    run = tmp_path / "run"
    child = run_child(mode, when, cli_args(method, cli_data, run))
    if mode == "term":
        assert child.returncode == 143, child.stderr
        assert f"--resume {run}" in child.stderr
    else:
        assert child.returncode == -signal.SIGKILL, child.stderr
    assert (run / "run.json").exists()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert_same(load_file(run / "model.safetensors"), cli_reference[method])
    # nothing half-written is left behind, not even by the killed writer
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_a_model_with_its_own_parameters_needs_nothing_new_from_the_driver(tmp_path):
    """A unit family that owns parameters (a learned per-unit cost): an estimator that returns
    their gradients by name trains them through the same driver, update rule (momentum
    buffers for them too), state file and resume."""
    from boltzkit.training import statistics_gradient
    from boltzkit.units import register_units, unregister_units

    from .test_rbm import CostlyBernoulli

    class CostCD(CD):
        dense_statistics = False  # its gradient has more than the dense RBM's three names

        def __call__(self, model, v, state=None, generator=None):
            stats, state = self.statistics(model, v, state, generator)
            grads = statistics_gradient(*stats)
            # base(s) = cost·s enters the energy with a plus sign: d(-log p)/d cost is
            # E_data[s] - E_model[s]
            grads["visible_cost"] = stats.v_pos.mean(0) - stats.v_neg.mean(0)
            grads["hidden_cost"] = stats.h_pos.mean(0) - stats.h_neg.mean(0)
            return grads, state

    def run(callbacks=(), resume=None):
        model = RBM(12, 6, CostlyBernoulli(), CostlyBernoulli(), generator=gen(0))
        data = binary(130, 12, 1)
        state = fit(model, data, estimator=CostCD(1), update=SGD(0.5), epochs=3,
                    batch_size=20, lr=0.1, generator=gen(2), callbacks=list(callbacks),
                    resume=resume)
        return model, state

    register_units("costly_bernoulli", CostlyBernoulli)
    try:
        ref, ref_state = run()
        assert {"visible_cost", "hidden_cost"} <= set(ref_state.update_state)
        assert ref.visible_cost.abs().max() > 1e-3 and ref.hidden_cost.abs().max() > 1e-3
        _, stopped = run([Checkpoint(tmp_path), SendSignal(signal.SIGINT, 10)])
        assert stopped.interrupted and stopped.batch > 0
        model, _ = run([Checkpoint(tmp_path)], resume=tmp_path)
        assert_same(tensors(model), tensors(ref))
        assert_same(load_file(tmp_path / "model.safetensors"), tensors(ref))
    finally:
        unregister_units("costly_bernoulli")
