"""LikelihoodMonitor: the held-out log-likelihood during training, exact or by a short AIS run;
it never changes the training trajectory, and a resumed run records the same figures. And the
command line's use of it: on by default where a held-out split exists, in metrics.json and
curves.png, refused where it cannot apply."""

import json
import math
import os
import signal
import statistics

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from boltzkit import RBM, BoltzmannMachine
from boltzkit.cli import main
from boltzkit.evaluation import ais, exact_log_likelihood, log_partition_exact
from boltzkit.exact import boltzmann as exact_bm
from boltzkit.plots import learning_curves
from boltzkit.training import PCD, SGD, Callback, Checkpoint, LikelihoodMonitor, fit

from .conftest import gen


def prototypes(n, d, seed, flip=0.1):
    """Rows near three random 0/1 prototypes (each bit flipped with probability ``flip``): a
    structure an RBM learns in a few epochs, so that log Z is far from the base model's."""
    g = gen(seed)
    proto = (torch.rand(3, d, generator=g) < 0.5).float()
    rows = proto[torch.randint(0, 3, (n,), generator=g)]
    return (rows - (torch.rand(n, d, generator=g) < flip).float()).abs()


def train(model, data, callbacks=(), epochs=4, estimator=None, resume=None, seed=2):
    return fit(model, data, estimator=estimator or PCD(1, 20), update=SGD(0.5, 1e-3),
               epochs=epochs, batch_size=20, lr=0.1, generator=gen(seed),
               callbacks=list(callbacks), resume=resume)


def figures(history, key="loglik"):
    """The monitor's figures per epoch, without the timings (which differ run to run)."""
    return [{k: v for k, v in h.items() if k.startswith(key) and not k.endswith("seconds")}
            for h in history]


class Exact(Callback):
    """The exact mean log-likelihood of ``rows`` after every epoch (runs after the monitor)."""

    def __init__(self, rows):
        self.rows, self.values = rows, {}

    def on_epoch_end(self, state):
        self.values[state.epoch] = (exact_log_likelihood(state.model, self.rows).mean,
                                    log_partition_exact(state.model))


# -- the figure --------------------------------------------------------------------------------
def test_exact_method_equals_exact_evaluation_every_epoch():
    x = prototypes(300, 10, 0)
    held, rows = x[:100], x[100:]
    model = RBM(10, 6, generator=gen(1))
    untrained = exact_log_likelihood(model, held).mean
    monitor, ref = LikelihoodMonitor(held, rows=None), Exact(held)
    state = train(model, rows, [monitor, ref])
    assert monitor.method_ == "exact"
    for h in state.history:
        ll, log_z = ref.values[h["epoch"]]
        # float32 enumeration against evaluation's float64: ~1e-6 nats at this size
        assert h["loglik_method"] == "exact" and "loglik_ess" not in h
        assert abs(h["loglik"] - ll) < 1e-4 and abs(h["loglik_log_z"] - log_z) < 1e-4
        assert h["loglik_seconds"] >= 0
    # the figure moves with training (the comparison is not between constants)
    assert state.history[0]["loglik"] > untrained + 0.5
    assert len({h["loglik"] for h in state.history}) == len(state.history)


def test_a_small_boltzmann_machine_is_monitored_exactly():
    x = prototypes(120, 4, 3)
    bm = BoltzmannMachine(4, 3, init_std=0.1, generator=gen(0))
    monitor = LikelihoodMonitor(x[:40], rows=None, key="held_loglik")
    state = fit(bm, x[40:], epochs=3, batch_size=20, lr=0.1, generator=gen(1),
                callbacks=[monitor])
    expected = float(exact_bm.log_likelihood(bm, x[:40]).mean())
    last = state.history[-1]
    assert last["held_loglik_method"] == "exact"
    assert abs(last["held_loglik"] - expected) < 1e-9
    assert "exact_loglik" in last  # fit's own monitor (training rows) keeps its key


def test_ais_method_is_within_the_estimators_spread_of_the_exact_figure():
    """18 visible, 30 hidden units: too big for method='auto' to enumerate (2^18 > 2^16
    states), small enough for the exact reference (2^18 visible states)."""
    x = prototypes(600, 18, 0)
    held, rows = x[:200], x[200:]
    model = RBM(18, 30, generator=gen(1))
    monitor = LikelihoodMonitor(held, rows=None, base=rows, seed=3)
    state = train(model, rows, [monitor], epochs=10)
    last = state.history[-1]
    assert last["loglik_method"] == "ais" and (last["loglik_chains"], last["loglik_betas"]) \
        == (10, 1000)
    assert 1 <= last["loglik_ess"] <= 10
    exact = exact_log_likelihood(model, held).mean
    # the spread of the monitor's estimator: log Z over 40 independent runs of its schedule
    base = rows.mean(0, keepdim=True)
    runs = [ais(model, base=base, n_chains=10, betas=1000, generator=gen(100 + s)).log_z
            for s in range(40)]
    spread = statistics.stdev(runs)  # ~0.1 nats here
    tol = 4 * spread
    assert abs(last["loglik"] - exact) < tol, (last["loglik"], exact, tol)
    # it is the estimate of the monitor's own chains, reproducible from seed and epoch
    again = ais(model, base=base, n_chains=10, betas=1000,
                generator=monitor.epoch_generator(state.epoch))
    assert abs(last["loglik_log_z"] - again.log_z) < 1e-6
    # power: a one-step estimate (importance sampling from the base model) misses by several
    # times the tolerance on average
    lz = log_partition_exact(model)
    crude = [ais(model, base=base, n_chains=10, betas=1, generator=gen(200 + s)).log_z - lz
             for s in range(40)]
    assert abs(statistics.mean(crude)) > 3 * tol


def test_every_and_the_last_epoch():
    x = prototypes(200, 8, 1)
    state = train(RBM(8, 4, generator=gen(0)), x, [LikelihoodMonitor(x[:50], every=2)],
                  epochs=5)
    assert [h["epoch"] for h in state.history if "loglik" in h] == [2, 4, 5]


# -- the training it watches -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["exact", "ais"])
def test_monitoring_does_not_change_the_trained_parameters(method):
    x = prototypes(300, 12, 2)
    plain = RBM(12, 8, generator=gen(0))
    s1 = train(plain, x[100:])
    watched = RBM(12, 8, generator=gen(0))
    s2 = train(watched, x[100:], [LikelihoodMonitor(x[:100], method=method, chains=4,
                                                     n_betas=50)])
    assert all("loglik" in h for h in s2.history)
    for (name, a), b in zip(plain.state_dict().items(), watched.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(s1.generator.get_state(), s2.generator.get_state())
    chains = zip(s1.estimator_state, s2.estimator_state)  # the persistent chains
    assert all(torch.equal(a, b) for a, b in chains if torch.is_tensor(a))


class StopAt(Callback):
    """Sends SIGTERM to this process once, after update number ``step`` (deferred by fit to the
    batch boundary)."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, state):
        if state.step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("where", ["mid-epoch", "between-epochs"])
def test_a_resumed_run_records_the_same_figures(where, tmp_path):
    x = prototypes(260, 12, 4)
    held, rows = x[:100], x[100:]  # 160 rows: 8 batches per epoch

    def monitor():
        return LikelihoodMonitor(held, base=rows, method="ais", chains=4, n_betas=100, seed=5)

    ref_model = RBM(12, 20, generator=gen(0))
    ref = train(ref_model, rows, [monitor()], epochs=4)
    assert ref.history[0]["loglik_method"] == "ais"
    model = RBM(12, 20, generator=gen(0))
    if where == "mid-epoch":
        first = train(model, rows, [monitor(), Checkpoint(tmp_path), StopAt(13)], epochs=4)
        assert first.interrupted and first.batch == 5
    else:
        first = train(model, rows, [monitor(), Checkpoint(tmp_path)], epochs=2)
    model = RBM(12, 20, generator=gen(1))  # other parameters: resume restores them
    done = train(model, rows, [monitor(), Checkpoint(tmp_path)], epochs=4, resume=tmp_path)
    assert done.finished
    for (name, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    assert figures(done.history) == figures(ref.history)
    assert len({h["loglik"] for h in done.history}) == 4  # figures that differ by epoch


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,needle", [
    ({"every": 0}, "every: expected a positive integer, got 0"),
    ({"rows": 0}, "rows: expected a positive integer, got 0"),
    ({"method": "raise"}, "method: expected one of auto, exact, ais, got 'raise'"),
    ({"chains": 1}, "chains: expected an integer >= 2, got 1"),
    ({"n_betas": 0}, "n_betas: expected a positive integer, got 0"),
    ({"seed": -1}, "seed: expected an integer in [0, 2^63)"),
    ({"key": ""}, "key: expected a non-empty name"),
    ({"base": [[0.0, 1.0]]}, "base: expected a tensor or NumPy array"),
])
def test_bad_arguments_are_refused_with_one_line(kwargs, needle):
    with pytest.raises(ValueError) as err:
        LikelihoodMonitor(torch.zeros(5, 4), **kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_bad_data_and_models_are_refused_before_training():
    x = prototypes(60, 6, 0)
    with pytest.raises(ValueError, match=r"data: expected shape \(n, n_visible\) with n >= 1"):
        LikelihoodMonitor(torch.zeros(0, 6))
    with pytest.raises(ValueError, match="data: expected a tensor or NumPy array"):
        LikelihoodMonitor("rows.npy")
    cases = [
        (RBM(6, 3), LikelihoodMonitor(torch.zeros(4, 5)), r"data: expected shape \(n, 6\)"),
        (RBM(6, 3), LikelihoodMonitor(torch.full((4, 6), 0.5)), "data"),  # grey: no likelihood
        (RBM(6, 30), LikelihoodMonitor(x, base=torch.full((2, 6), 2.0), method="ais"), "base"),
        (RBM(30, 30), LikelihoodMonitor(torch.zeros(4, 30), method="exact"),
         "method='exact' needs a discrete layer of at most"),
        (BoltzmannMachine(6, 11), LikelihoodMonitor(x), "at most 16 units; this one has 17"),
        (BoltzmannMachine(6, 19), LikelihoodMonitor(x, method="exact"), "at most 24 units"),
        (BoltzmannMachine(6, 2), LikelihoodMonitor(x, method="ais"), "method='ais' is for RBMs"),
        (BoltzmannMachine(6, 2, n_machines=3), LikelihoodMonitor(x), "stack of 3"),
    ]
    for model, monitor, needle in cases:
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(ValueError, match=needle):
            fit(model, prototypes(60, model.n_visible, 0), epochs=1, callbacks=[monitor],
                init_visible_bias=False, monitors=[])
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- the picture -------------------------------------------------------------------------------
def test_curves_draw_the_likelihood_without_its_companions(tmp_path):
    hist = [{"epoch": e, "lr": 0.1, "seconds": e, "recon_error": 1 / e, "loglik": -30 + e,
             "loglik_method": "ais", "loglik_log_z": 50.0, "loglik_ess": 3.0,
             "loglik_chains": 10, "loglik_betas": 1000, "loglik_seconds": 0.1}
            for e in range(1, 7)]
    hist[2] = {k: v for k, v in hist[2].items() if not k.startswith("loglik")}  # not every epoch
    three = mpimg.imread(learning_curves(hist, tmp_path / "c.png"))
    one = mpimg.imread(learning_curves(hist, tmp_path / "one.png", keys=["loglik"]))
    # lr, recon_error and loglik: three panels (log Z, ESS, ... are not drawn by default)
    assert three.shape[1] == one.shape[1] and 2.0 < three.shape[0] / one.shape[0] < 3.0
    mixed = [dict(h, loglik_method="exact") if h["epoch"] < 3 else h for h in hist]
    assert learning_curves(mixed, tmp_path / "m.png").stat().st_size > 0
    # a companion can still be asked for
    assert learning_curves(hist, tmp_path / "ess.png", keys=["loglik_ess"]).exists()


# -- the command line --------------------------------------------------------------------------
QUICK = ["--no-progress", "--sample-steps", "5"]


def metrics(folder):
    return json.loads((folder / "metrics.json").read_text())


def one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("boltzkit: error:") and needle in err[0], err


def test_train_monitors_the_held_out_likelihood_by_default(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--out", str(out), *QUICK]) == 0
    done = capsys.readouterr().out.strip().splitlines()[-1]
    epochs = metrics(out)["epochs"]
    assert metrics(out)["settings"]["monitor_every"] == 1
    assert [e["loglik_method"] for e in epochs] == ["exact", "exact"]
    # the exact figure over the first 2000 (all 359) digits of the test split, prepared as
    # the training data were
    from boltzkit import data as bdata
    from boltzkit.io import load, read_metadata

    model = load(out / "model.safetensors")
    prep = read_metadata(out / "model.safetensors")["preparation"]
    held = prep.transform(bdata.load_dataset("digits", "test").data, for_likelihood=True)
    assert abs(epochs[-1]["loglik"] - exact_log_likelihood(model, held).mean) < 1e-4
    assert f"held-out log-likelihood {epochs[-1]['loglik']:.2f} nats (exact)" in done
    assert "reconstruction error" in done
    img = mpimg.imread(out / "curves.png")
    assert img.shape[0] > 600  # lr, reconstruction error and log-likelihood: three panels


def test_train_monitor_options(tmp_path, capsys):
    out = tmp_path / "ais"
    assert main(["train", "--epochs", "3", "--hidden", "20", "--monitor-every", "2",
                 "--monitor-rows", "100", "--out", str(out), *QUICK]) == 0
    assert "short forward AIS" in capsys.readouterr().out
    epochs = metrics(out)["epochs"]
    assert ["loglik" in e for e in epochs] == [False, True, True]
    assert epochs[-1]["loglik_method"] == "ais" and math.isfinite(epochs[-1]["loglik"])
    off = tmp_path / "off"
    assert main(["train", "--epochs", "2", "--hidden", "8", "--monitor-every", "0",
                 "--out", str(off), *QUICK]) == 0
    assert not any("loglik" in e for e in metrics(off)["epochs"])
    assert "log-likelihood" not in capsys.readouterr().out
    # a data file has no held-out split: off by default
    np.save(tmp_path / "x.npy", prototypes(80, 6, 0).numpy())
    user = tmp_path / "user"
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--hidden", "3",
                 "--out", str(user), *QUICK]) == 0
    assert metrics(user)["settings"]["monitor_every"] == 0


def test_train_refuses_monitor_settings_that_cannot_apply(tmp_path, capsys):
    np.save(tmp_path / "x.npy", prototypes(80, 6, 0).numpy())
    run = tmp_path / "run"
    cases = [
        (["--monitor-every", "-1"], "--monitor-every: expected an integer >= 0, got -1"),
        (["--monitor-rows", "0"], "--monitor-rows: expected a positive integer, got 0"),
        (["--monitor-every", "0", "--monitor-rows", "10"],
         "--monitor-rows: the held-out monitor is off for this run"),
        (["--data", str(tmp_path / "x.npy"), "--monitor-every", "1"],
         "has no held-out split to monitor"),
        (["--split", "test", "--monitor-every", "1"], "has no held-out split to monitor"),
        (["--model", "bm", "--hidden", "4", "--monitor-every", "1"],
         "--monitor-every: a Boltzmann machine's log-likelihood is monitored by enumeration"),
        (["--binarize", "none", "--monitor-every", "1"], "likelihoods need 0/1 data"),
    ]
    for extra, needle in cases:
        assert main(["train", "--out", str(run), "--epochs", "1", *QUICK, *extra]) == 2, extra
        one_error_line(capsys, needle)
        assert not run.exists()
    # a bm, or grey data kept as probabilities: off by default, not refused
    assert main(["train", "--out", str(run), "--epochs", "1", "--binarize", "none",
                 "--hidden", "4", *QUICK]) == 0
    assert metrics(run)["settings"]["monitor_every"] == 0
    capsys.readouterr()
    # resume keeps the run's settings
    assert main(["train", "--resume", str(run), "--monitor-every", "1"]) == 2
    one_error_line(capsys, "only --epochs may change, got --monitor-every")


def test_an_interrupted_command_draws_its_curves_and_resumes_with_the_same_figures(
        tmp_path, capsys, monkeypatch):
    args = ["--epochs", "3", "--hidden", "20", "--batch-size", "100", "--monitor-rows", "100",
            *QUICK]
    ref = tmp_path / "ref"
    assert main(["train", "--out", str(ref), *args]) == 0
    run = tmp_path / "run"
    stop = StopAt(20)  # 15 batches per epoch: in epoch 2
    from boltzkit.cli import train as cli_train

    real = cli_train._RunFile.on_batch_end
    monkeypatch.setattr(cli_train._RunFile, "on_batch_end",
                        lambda self, state: (stop.on_batch_end(state), real(self, state)))
    assert main(["train", "--out", str(run), *args]) == 143
    assert "SIGTERM: stopped after epoch 1" in capsys.readouterr().err
    assert (run / "curves.png").stat().st_size > 0
    kept = metrics(run)["epochs"]  # rewritten after every epoch, the monitor's figures in it
    assert [e["epoch"] for e in kept] == [1] and kept[0]["loglik_method"] == "ais"
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert figures(metrics(run)["epochs"]) == figures(metrics(ref)["epochs"])
    a, b = load_file(run / "model.safetensors"), load_file(ref / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
