"""Hostile inputs to the data, evaluation and checkpoint APIs: NumPy numbers are accepted where
Python numbers are, and everything else is one ValueError naming the argument."""

import numpy as np
import pytest
import torch

import boltzkit.evaluation as ev
from boltzkit.data import Preparation
from boltzkit.data.transforms import binarize, standardize, to_spin
from boltzkit.models import RBM, BoltzmannMachine
from boltzkit.training import fit
from boltzkit.training.callbacks import Checkpoint, reconstruction_error


def small_rbm():
    g = torch.Generator()
    g.manual_seed(0)
    return RBM(6, 4, init_std=0.1, generator=g)


def binary_rows(n=20, d=6):
    g = torch.Generator()
    g.manual_seed(1)
    return (torch.rand(n, d, generator=g) > 0.5).float()


# -- numpy numbers accepted -----------------------------------------------------------------------
def test_numpy_integers_are_accepted(tmp_path):
    assert Preparation("bernoulli", n_features=np.int64(6)).n_features == 6
    m, x = small_rbm(), binary_rows()
    r = ev.ais(m, n_chains=np.int64(10), betas=np.int64(100))
    assert r.n_chains == 10 and r.n_betas == 101
    r = ev.reverse_ais(m, x, n_chains=np.int64(10), betas=np.int64(100))
    assert r.n_chains == 10 and r.n_betas == 101
    cp = Checkpoint(tmp_path / "run", every=np.int64(2))
    assert cp.every == 2 and type(cp.every) is int
    fit(m, x, epochs=2, batch_size=10, callbacks=[cp])
    assert cp.model_path.exists() and not (tmp_path / "run" / ".write-check").exists()


# -- transforms -----------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", ["x", None, float("nan"), [0.5], 1 + 1j])
def test_binarize_threshold_is_one_value_error(threshold):
    with pytest.raises(ValueError, match="^threshold: "):
        binarize(np.ones((2, 3)) * 0.7, threshold=threshold)


@pytest.mark.parametrize("call", [
    lambda: binarize(np.array([[0.2 + 1j, 0.5]])),
    lambda: binarize(torch.tensor([[0.2 + 1j, 0.5]])),
    lambda: binarize(np.array([[0.2 + 0j]]), method="sample"),
    lambda: to_spin(np.array([[1 + 0j, 0]])),
    lambda: to_spin(torch.tensor([[1 + 0j, 0]])),
    lambda: standardize(np.array([[1 + 1j, 2]])),
    lambda: standardize(torch.tensor([[1 + 1j, 2]])),
], ids=["binarize-np", "binarize-torch", "binarize-sample", "to_spin-np", "to_spin-torch",
        "standardize-np", "standardize-torch"])
def test_complex_data_is_refused(call):
    with pytest.raises(ValueError, match=r"^x: expected real numbers"):
        call()


@pytest.mark.parametrize("name", ["mean", "std"])
def test_complex_statistics_are_refused(name):
    stats = {name: np.array([1 + 1j, 1.0])}
    with pytest.raises(ValueError, match=rf"^{name}: expected real numbers"):
        standardize(np.ones((3, 2)), **stats)


# -- AIS ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    ({"n_chains": 10 ** 12, "betas": 10}, "n_chains"),
    ({"betas": int(3.4e10)}, "betas"),
    ({"betas": np.int64(3.4e10)}, "betas"),
])
@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_ais_refuses_work_that_cannot_fit_in_memory(kwargs, name, direction):
    m = small_rbm()
    if direction == "reverse":
        if name == "n_chains":
            pytest.skip("reverse AIS runs at most one chain per row")
        call = lambda: ev.reverse_ais(m, binary_rows(), **kwargs)  # noqa: E731
    else:
        call = lambda: ev.ais(m, **kwargs)  # noqa: E731
    with pytest.raises(ValueError, match=rf"^{name}: .*would take about"):
        call()


@pytest.mark.parametrize("kwargs,name", [
    ({"n_chains": 1.5}, "n_chains"), ({"n_chains": "10"}, "n_chains"),
    ({"n_chains": True}, "n_chains"), ({"betas": np.int64(0)}, "betas"),
    ({"betas": -3}, "betas"), ({"generator": "str"}, "generator"),
    ({"dtype": "float32"}, "dtype"),
])
def test_ais_arguments_are_named(kwargs, name):
    m = small_rbm()
    with pytest.raises(ValueError, match=rf"^{name}: "):
        ev.ais(m, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name}: "):
        ev.reverse_ais(m, binary_rows(), **kwargs)


# -- the evaluation functions take RBMs -----------------------------------------------------------
NOT_RBMS = [pytest.param(lambda: BoltzmannMachine(6, 2), id="BoltzmannMachine"),
            pytest.param(lambda: "str", id="str"), pytest.param(lambda: None, id="None")]


@pytest.mark.parametrize("make", NOT_RBMS)
@pytest.mark.parametrize("call", [
    lambda m, x: ev.ais(m, betas=10),
    lambda m, x: ev.reverse_ais(m, x, betas=10),
    lambda m, x: ev.pseudo_likelihood(m, x),
    lambda m, x: ev.log_likelihood(m, x, 1.0),
    lambda m, x: ev.exact_log_likelihood(m, x),
    lambda m, x: ev.reconstruction_error(m, x),
    lambda m, x: reconstruction_error(m, x),
    lambda m, x: ev.free_energy_gap(m, x, x),
    lambda m, x: ev.evaluate(m, x, log_z="exact"),
], ids=["ais", "reverse_ais", "pseudo_likelihood", "log_likelihood", "exact_log_likelihood",
        "reconstruction_error", "training.reconstruction_error", "free_energy_gap", "evaluate"])
def test_evaluation_needs_an_rbm(make, call):
    with pytest.raises(ValueError, match=r"^model: expected an RBM, got "):
        call(make(), binary_rows())


# -- pseudo-likelihood ----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,name", [
    ({"generator": "str"}, "generator"), ({"generator": 0}, "generator"),
    ({"stochastic": "no"}, "stochastic"), ({"stochastic": 1}, "stochastic"),
    ({"dtype": torch.int64}, "dtype"),
])
def test_pseudo_likelihood_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}: "):
        ev.pseudo_likelihood(small_rbm(), binary_rows(), **kwargs)


def test_pseudo_likelihood_takes_numpy_bool():
    m, x = small_rbm(), binary_rows()
    exact = ev.pseudo_likelihood(m, x, stochastic=np.bool_(False))
    assert torch.allclose(exact, ev.pseudo_likelihood(m, x))


# -- evaluate's seed ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [-1, "x", 2 ** 70, 1.5, True, None])
@pytest.mark.parametrize("log_z", ["exact", "ais", "reverse-ais", "both", "auto"])
def test_evaluate_seed(seed, log_z):
    with pytest.raises(ValueError, match=r"^seed: "):
        ev.evaluate(small_rbm(), binary_rows(), log_z=log_z, betas=10, chains=4, seed=seed)


def test_evaluate_takes_numpy_seed():
    out = ev.evaluate(small_rbm(), binary_rows(), log_z="exact", seed=np.int64(3))
    assert np.isfinite(out["log_likelihood"])


# -- Checkpoint -----------------------------------------------------------------------------------
@pytest.mark.parametrize("every", [0, -1, 1.5, "2", True])
def test_checkpoint_every(every, tmp_path):
    with pytest.raises(ValueError, match=r"^every: "):
        Checkpoint(tmp_path, every=every)


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_checkpoint_folder_must_be_writable_before_training(where, tmp_path):
    (tmp_path / "file").write_text("")
    m, x = small_rbm(), binary_rows()
    before = m.weight.detach().clone()
    folder = tmp_path / where
    with pytest.raises(ValueError, match=rf"^Checkpoint: cannot write {folder} \("):
        fit(m, x, epochs=1, batch_size=10, init_visible_bias=False,
            callbacks=[Checkpoint(folder)])
    assert torch.equal(m.weight, before)
    assert (tmp_path / "file").read_text() == ""
