"""``evaluate`` and ``boltzkit evaluate`` / ``boltzkit sample`` on DBNs and DBMs: the library's
figures against exact enumeration on tiny models, the command on saved tiny files."""

import json
import math

import numpy as np
import pytest
import torch

import boltzkit
from boltzkit.cli import main
from boltzkit.data import Preparation, load_dataset
from boltzkit.evaluation import dbn as edbn
from boltzkit.evaluation import evaluate
from boltzkit.exact import dbm as xdbm
from boltzkit.exact.rbm import log_partition
from boltzkit.models import DBM, DBN, RBM
from boltzkit.training.greedy import pretrain_dbm, train_dbn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    """Binarised digits: (train, test), 0/1 rows of 64 pixels."""
    return tuple((load_dataset("digits", s).data > 0.5).float() for s in ("train", "test"))


@pytest.fixture(scope="module")
def dbn(digits):
    return train_dbn(digits[0], [64, 12, 8], epochs=20, lr=0.1, generator=gen(1))


@pytest.fixture(scope="module")
def dbm(digits):
    return pretrain_dbm(digits[0], [64, 10, 8], epochs=20, lr=0.1, generator=gen(2))


@pytest.fixture(scope="module")
def files(tmp_path_factory, dbn, dbm):
    """Model files as ``boltzkit train`` writes them: a DBN, a DBM, a three-layer DBN, an RBM."""
    folder = tmp_path_factory.mktemp("deep")
    prep = Preparation.fit(load_dataset("digits", "train").data, "bernoulli")
    meta = {"settings": {"data": "digits"}, "dataset": "digits", "image_shape": [8, 8]}
    x = (load_dataset("digits", "train").data > 0.5).float()
    models = {"dbn": dbn, "dbm": dbm,
              "dbn3": train_dbn(x, [64, 12, 8, 6], epochs=1, generator=gen(3)),
              "rbm": RBM(64, 6, generator=gen(4))}
    out = {}
    for name, m in models.items():
        out[name] = boltzkit.io.save(m, folder / f"{name}.safetensors", metadata=meta,
                                     preparation=prep)
    return out


# -- library ------------------------------------------------------------------------------------
def test_dbn_bound_with_exact_top_log_z_matches_the_exact_sum(dbn, digits):
    train, test = digits
    r = evaluate(dbn, test, log_z="auto", samples=50, seed=3)
    assert r["model_kind"] == "DBN" and r["log_z_method"] == "exact"
    lz = log_partition(dbn.rbm(1))
    assert r["log_z"] == pytest.approx(lz)
    exact = edbn.variational_bound(dbn, test, lz, n_samples=None)
    # the sampled bound's error: the per-row spread of one draw, over rows x samples draws
    one = edbn.variational_bound(dbn, test, lz, n_samples=1, generator=gen(9))
    sigma = (one - exact).pow(2).mean().sqrt().item()
    tol = 5 * sigma / math.sqrt(test.shape[0] * r["bound_samples"])
    assert sigma > 0 and abs(r["variational_bound"] - exact.mean().item()) < tol
    assert r["variational_bound_std_error"] > 0 and 0 < r["reconstruction_error"] < 1


def test_dbn_ais_both_ways_bracket_the_exact_top_log_z(dbn, digits):
    train, test = digits
    r = evaluate(dbn, test, log_z="both", chains=50, betas=1000, base_data=train)
    lz = r["estimates"]["exact"]["log_z"]
    for m in ("ais", "reverse-ais"):
        lo, hi = r["estimates"][m]["log_z_interval"]
        assert lo - 0.05 < lz < hi + 0.05, (m, lo, lz, hi)
    rev, fwd = r["variational_bound_bracket"]
    assert rev == pytest.approx(r["estimates"]["reverse-ais"]["variational_bound"])
    assert fwd == pytest.approx(r["estimates"]["ais"]["variational_bound"])
    json.dumps(r, allow_nan=False)


def test_dbm_figures_against_exact_enumeration(dbm, digits):
    train, test = digits
    r = evaluate(dbm, test, log_z="both", chains=50, betas=1000, base_data=train, sweeps=50,
                 samples=20, raise_rows=30)
    assert r["model_kind"] == "DBM" and r["log_z_method"] == "exact"
    lz = xdbm.log_partition(dbm)
    exact_ll = xdbm.log_likelihood(dbm, test, lz).mean().item()
    assert r["log_z"] == pytest.approx(lz)
    assert r["estimates"]["exact"]["log_likelihood"] == pytest.approx(exact_ll)
    # the mean-field bound is a bound; importance sampling lies between it and the truth
    assert exact_ll >= r["variational_bound"]
    assert r["variational_bound"] - 0.05 <= r["importance_sampled"] <= exact_ll + 0.05
    for m in ("ais", "reverse-ais"):
        lo, hi = r["estimates"][m]["log_z_interval"]
        assert lo - 0.05 < lz < hi + 0.05, (m, lo, lz, hi)
    assert r["reverse_sweeps"] == 50 and r["importance_samples"] == 20
    assert r["raise"]["rows"] == 30 and math.isfinite(r["raise"]["log_likelihood"])
    assert len(r["importance_sampled_bracket"]) == 2
    json.dumps(r, allow_nan=False)


def test_dbm_forward_ais_when_asked(dbm, digits):
    r = evaluate(dbm, digits[1][:50], log_z="ais", chains=20, betas=200, seed=1)
    assert list(r["estimates"]) == ["ais"] and r["log_z_method"] == "ais"
    assert "raise" not in r and "reverse_sweeps" not in r


def test_library_refuses_what_does_not_apply(dbn, dbm, digits):
    test = digits[1][:20]
    with pytest.raises(ValueError, match=r"^samples: for DBN and DBM models only"):
        evaluate(RBM(64, 4, generator=gen()), test, samples=10)
    with pytest.raises(ValueError, match=r"^sweeps: for DBM models only"):
        evaluate(dbn, test, sweeps=10)
    with pytest.raises(ValueError, match=r"^pseudo_likelihood_method: "):
        evaluate(dbm, test, pseudo_likelihood_method="exact")
    with pytest.raises(ValueError, match=r"^log_z: expected one of"):
        evaluate(dbm, test, log_z="nope")
    deep = DBN([64, 8, 6, 4], generator=gen())
    with pytest.raises(ValueError, match=r"^model: the bound is for a two-layer DBN"):
        evaluate(deep, test)
    big = DBM([64, 30, 30], generator=gen())
    with pytest.raises(ValueError, match=r"^log_z: 'exact' enumerates"):
        evaluate(big, test, log_z="exact")


# -- command line -------------------------------------------------------------------------------
def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_cli_evaluate_dbn_json_and_table(files, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(files["dbn"]), "--log-z", "both", "--chains", "10",
                 "--betas", "100", "--samples", "10", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"model_file", "data", "n_rows", "model_kind", "reconstruction_error", "log_z",
            "log_z_interval", "log_z_of", "variational_bound", "variational_bound_std_error",
            "estimates", "variational_bound_bracket"} <= set(r)
    assert set(r["estimates"]) == {"exact", "ais", "reverse-ais"}
    assert r["data"].startswith("digits") and r["bound_samples"] == 10
    assert main(["evaluate", str(files["dbn"]), "--chains", "10", "--betas", "50"]) == 0
    out = capsys.readouterr().out
    assert "variational lower bound" in out and "top RBM" in out


def test_cli_evaluate_dbm_json_and_table(files, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(files["dbm"]), "--log-z", "both", "--chains", "10",
                 "--betas", "100", "--sweeps", "5", "--raise-rows", "5", "--samples", "5",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"model_kind", "log_z", "variational_bound", "importance_sampled",
            "importance_sampled_std_error", "estimates", "raise", "reverse_sweeps",
            "variational_bound_bracket", "importance_sampled_bracket"} <= set(r)
    assert r["model_kind"] == "DBM" and r["raise"]["rows"] == 5
    assert main(["evaluate", str(files["dbm"]), "--log-z", "reverse-ais", "--chains", "10",
                 "--betas", "50", "--sweeps", "5", "--raise-rows", "4"]) == 0
    out = capsys.readouterr().out
    assert "mean-field" in out and "importance-sampled" in out and "RAISE on 4 rows" in out
    assert "reverse-ais" in out


def test_cli_one_line_errors(files, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(files["dbn3"])]) == 2
    assert "two-layer DBNs" in _error(capsys)
    assert main(["evaluate", str(files["dbn"]), "--sweeps", "5", "--log-z", "both"]) == 2
    assert _error(capsys).startswith("boltzkit: error: --sweeps: for DBM files only")
    assert main(["evaluate", str(files["dbn"]), "--raise-rows", "5"]) == 2
    assert _error(capsys).startswith("boltzkit: error: --raise-rows: for DBM files only")
    assert main(["evaluate", str(files["rbm"]), "--samples", "5"]) == 2
    assert _error(capsys).startswith("boltzkit: error: --samples: for DBN and DBM files")
    assert main(["evaluate", str(files["dbm"]), "--sweeps", "5"]) == 2
    assert "--log-z reverse-ais or both" in _error(capsys)
    assert main(["evaluate", str(files["dbm"]), "--raise-rows", "-1"]) == 2
    assert _error(capsys).startswith("boltzkit: error: --raise-rows:")
    for name in ("dbn", "dbm"):
        assert main(["sample", str(files[name]), "--method", "pt", "--out", "x.png"]) == 2
        assert _error(capsys).startswith("boltzkit: error: --method pt:")


@pytest.mark.parametrize("name", ["dbn", "dbm"])
def test_cli_sample_writes_npy_and_png(files, tmp_path, capsys, name):
    assert main(["sample", str(files[name]), "--n", "7", "--steps", "5", "--out",
                 str(tmp_path / "s.npy")]) == 0
    s = np.load(tmp_path / "s.npy")
    assert s.shape == (7, 64) and set(np.unique(s)) <= {0.0, 1.0}
    assert main(["sample", str(files[name]), "--n", "5", "--steps", "5", "--mean", "--out",
                 str(tmp_path / "m.npy")]) == 0
    m = np.load(tmp_path / "m.npy")
    assert m.shape == (5, 64) and (m >= 0).all() and (m <= 1).all()
    assert main(["sample", str(files[name]), "--n", "9", "--steps", "5", "--out",
                 str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
