"""``boltzkit compare autoencoders``: its pieces, a miniature run, the command's input checks."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from boltzkit.cli import main
from boltzkit.experiments.compare import QUICK, Settings, format_table, linear_probe, pca, \
    run_autoencoder_comparison

from .conftest import gen


def test_pca_components_are_the_leading_orthonormal_directions():
    from sklearn.decomposition import PCA

    x = torch.rand(200, 12, generator=gen(0), dtype=torch.float64)
    x[:, 0] *= 5  # a dominant direction
    mean, comps = pca(x, 4)
    assert torch.allclose(comps @ comps.t(), torch.eye(4, dtype=x.dtype), atol=1e-10)
    ref = PCA(4).fit(x.numpy())
    assert np.allclose(np.abs(comps.numpy() @ ref.components_.T), np.eye(4), atol=1e-8)
    full_mean, full = pca(x, 12)  # all components: reconstruction is exact
    assert torch.allclose((x - full_mean) @ full.t() @ full + full_mean, x, atol=1e-10)
    with pytest.raises(ValueError, match="k: expected at most 12"):
        pca(x, 13)


def test_linear_probe_separates_separable_classes_and_picks_c_on_held_out_rows():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (10, 6))
    y = np.repeat(np.arange(10), 30)
    x = centres[y] + rng.normal(0, 0.5, (300, 6))
    yt = np.repeat(np.arange(10), 10)
    xt = centres[yt] + rng.normal(0, 0.5, (100, 6))
    res = linear_probe(x, y, xt, yt, Cs=(0.01, 1.0), max_iter=300, seed=1)
    assert res["error"] == 0.0 and res["C"] in (0.01, 1.0) and res["converged"]
    # labels unrelated to the features: near chance (10 classes: 90 % error), never 0
    noise = linear_probe(rng.normal(size=(300, 6)), y, xt, yt, Cs=(1.0,), seed=1)
    assert noise["error"] > 60.0
    assert linear_probe(x, y, xt, yt, Cs=(0.01, 1.0), seed=1) == \
        linear_probe(x, y, xt, yt, Cs=(0.01, 1.0), seed=1)


def _tiny():
    return dataclasses.replace(
        QUICK, hidden=12, deep=(12, 8, 6), code=3, batch_size=50, rbm_epochs=1, ae_epochs=1,
        finetune_epochs=2, dbm_pretrain_epochs=1, dbm_epochs=1, ais_betas=10, ais_chains=4,
        raise_rows=8, dbn_samples=2, few_labels=100, classifier_C=(0.1,),
        classifier_max_iter=30)


def test_a_miniature_comparison_writes_its_table_and_pictures(tmp_path):
    from boltzkit.data import load_dataset

    tr, te = load_dataset("digits", "train"), load_dataset("digits", "test")
    data = (tr.data[:400], tr.labels[:400], te.data[:120], te.labels[:120], tr.image_shape)
    lines = []
    res = run_autoencoder_comparison(tmp_path / "out", settings=_tiny(), data=data, seed=3,
                                     log=lines.append)
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare-codes-2d.png", "compare-curves.png", "compare-filters.png",
                     "compare-reconstructions.png", "results.json", "table.md"]
    assert json.loads((out / "results.json").read_text())["rows"].keys() == res["rows"].keys()
    rows = res["rows"]
    assert list(rows) == ["pixels", "pca-3", "pca-2", "rbm", "dbn", "dbm", "ae", "dae",
                          "deep-ae-unrolled", "deep-ae", "deep-ae-random", "deep-ae-glorot",
                          "deep-ae-2"]
    assert "test_squared_error" not in rows["pixels"]
    # PCA's error is that of the components it drops: fewer components, larger error
    assert rows["pca-2"]["test_squared_error"] > rows["pca-3"]["test_squared_error"]
    # the unrolled stack is where fine-tuning starts: the curve's first point
    assert res["curves"]["deep-ae"][0] == pytest.approx(
        rows["deep-ae-unrolled"]["test_squared_error"], rel=1e-5)
    for key in ("rbm", "dbn", "dbm"):
        ll = rows[key]["loglik"]
        assert np.isfinite(ll["forward"]) and ll["forward"] < 0
    for r in rows.values():
        assert 0.0 <= r["classifier_all"]["error"] <= 100.0
        assert r["classifier_few"]["C"] == 0.1
    table = (out / "table.md").read_text().splitlines()
    assert len(table) == 2 + len(rows) and table[0].startswith("| model |")
    assert format_table(res).splitlines() == table
    assert lines[0].startswith("data: 400 training and 120 test images (user data), seed 3")


@pytest.mark.parametrize("change, match", [
    (dict(few_labels=105), "few_labels: expected a multiple of 10"),
    (dict(deep=(10, 5)), r"deep: the first hidden layer is the RBM row's"),
    (dict(code=2), "code: expected at least 3"),
    (dict(deep=(1000,)), "deep: expected at least two"),
    (dict(corruption=1.5), "corruption: "),
    (dict(classifier_C=()), "classifier_C: expected a non-empty list"),
    (dict(ais_chains=1), "ais_chains: "),
])
def test_bad_settings_are_refused_before_work(change, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_autoencoder_comparison(tmp_path / "never", settings=dataclasses.replace(
            Settings(), **change))
    assert not (tmp_path / "never").exists()


def test_user_data_is_checked(tmp_path):
    x = torch.rand(50, 16)
    y = torch.arange(50) % 10
    with pytest.raises(ValueError, match="data: expected grey values in"):
        run_autoencoder_comparison(tmp_path, settings=_tiny(), data=(x * 2, y, x, y, (4, 4)))
    with pytest.raises(ValueError, match="data: image_shape"):
        run_autoencoder_comparison(tmp_path, settings=_tiny(), data=(x, y, x, y, (3, 4)))
    with pytest.raises(ValueError, match="few_labels: expected at most the 50"):
        run_autoencoder_comparison(tmp_path / "o", settings=_tiny(), data=(x, y, x, y, (4, 4)))
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, match", [
    (["compare"], "expected a comparison: autoencoders"),
    (["compare", "autoencoders", "--train-rows", "5"], "--train-rows: expected at least 1000"),
    (["compare", "autoencoders", "--train-rows", "70000"], "--train-rows: MNIST has 60000"),
    (["compare", "autoencoders", "--seed", "-1"], "--seed: expected an integer"),
    (["compare", "autoencoders", "--threads", "0"], "--threads: expected a positive integer"),
    (["compare", "autoencoders", "--finetune-epochs", "0"],
     "--finetune-epochs: expected a positive integer"),
])
def test_command_refuses_bad_options_in_one_line(argv, match, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "o")] if len(argv) > 1 else argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("boltzkit: error: ") and match in err[-1]
    assert not (tmp_path / "o").exists()
