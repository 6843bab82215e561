"""Tests of boltzkit.data.Preparation: the one record of how raw data become visible states and
back, its validation, and its place in model files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import boltzkit
from boltzkit.data import Preparation, binarize, standardize
from boltzkit.io import read_metadata
from boltzkit.models import RBM


def gen(seed):
    return torch.Generator().manual_seed(seed)


def grey(n=50, d=6, seed=0):
    return torch.rand(n, d, generator=gen(seed))


def binary(n=50, d=6, seed=0):
    return (grey(n, d, seed) < 0.4).float()


# --- the rules per family and their inverse ---------------------------------------------------
def test_bernoulli_rules_and_inverse():
    x, b = grey(), binary()
    p = Preparation.fit(x, "bernoulli")
    assert (p.units, p.binarize, p.n_features) == ("bernoulli", "threshold", 6)
    v = p.transform(x)
    assert v.dtype == torch.float32 and v.shape == x.shape
    assert torch.equal(v, binarize(x, "threshold"))
    assert torch.equal(p.transform(b), b)                        # 0/1 data are left alone
    assert torch.equal(p.inverse(v), v)                          # means are probabilities
    s = Preparation.fit(x, "bernoulli", "sample").transform(x, gen(3))
    assert torch.equal(s, binarize(x, "sample", generator=gen(3)))
    assert torch.equal(Preparation.fit(x, "bernoulli", "none").transform(x), x)


def test_spin_rules_and_inverse():
    x, b = grey(), binary()
    p = Preparation.fit(b, "spin")
    assert not p.spin_data
    v = p.transform(b)
    assert set(v.unique().tolist()) <= {-1.0, 1.0} and torch.equal(v, 2 * b - 1)
    assert torch.equal(p.inverse(v), b)                          # ±1 back to 0/1
    assert torch.equal(p.transform(x), 2 * binarize(x) - 1)      # grey: binarised, then ±1
    none = Preparation.fit(x, "spin", "none")
    assert torch.allclose(none.inverse(none.transform(x)), x, atol=1e-6)  # means round trip
    assert torch.allclose(p.inverse(torch.tanh(torch.randn(4, 6, generator=gen(1)))).clamp(0, 1),
                          p.inverse(torch.tanh(torch.randn(4, 6, generator=gen(1)))))

    s = 2 * b - 1                                                # ±1 data
    q = Preparation.fit(s, "spin")
    assert q.spin_data
    assert torch.equal(q.transform(s), s) and torch.equal(q.inverse(s), s)   # stay ±1
    assert torch.equal(p.transform(s), s)    # ±1 data are ±1 whatever the training data were
    m = 2 * x - 1                                                # spin means in [-1, 1]
    assert torch.equal(q.transform(m), 2 * binarize(x) - 1)      # thresholded at 0
    assert torch.equal(dataclasses.replace(q, binarize="none").transform(m), m)


def test_gaussian_rules_and_inverse():
    x = torch.randn(200, 5, generator=gen(0)) * 3 + 7
    p = Preparation.fit(x, "gaussian", "threshold")
    assert p.binarize == "none" and len(p.mean) == len(p.std) == 5
    z = p.transform(x)
    z_ref, mean, std = standardize(x)
    assert torch.equal(z, z_ref)                                 # bitwise what training did
    assert torch.allclose(z.mean(0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(p.inverse(z), x, atol=1e-4)
    test = torch.randn(30, 5, generator=gen(1))
    assert torch.allclose(p.transform(test), (test - mean) / std)  # the training statistics
    assert torch.equal(Preparation("gaussian").transform(test), test)  # no record: unchanged


def test_softmax_is_checked_and_passed_through():
    v = torch.eye(3)[torch.randint(0, 3, (20, 2), generator=gen(0))].reshape(20, 6)
    p = Preparation.fit(v, "softmax:3")
    assert torch.equal(p.transform(v, for_likelihood=True), v) and torch.equal(p.inverse(v), v)
    with pytest.raises(ValueError, match="sum to 1"):
        p.transform(torch.ones(2, 6))
    with pytest.raises(ValueError, match="multiple of 4"):
        Preparation.fit(v, "softmax:4")
    probs = torch.full((2, 6), 1 / 3)
    assert torch.equal(p.transform(probs), probs)                # relaxed: probabilities
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        p.transform(probs, for_likelihood=True)


def test_unit_family_objects_and_aliases():
    assert Preparation(boltzkit.Spin()).units == "spin"
    assert Preparation("Ising").units == "spin" and Preparation("binary").units == "bernoulli"
    assert Preparation(boltzkit.Softmax(3)).units == "softmax:3"
    with pytest.raises(ValueError, match="units: expected one of"):
        Preparation("relu")


# --- training and evaluation agree --------------------------------------------------------------
@pytest.mark.parametrize("units", ["bernoulli", "spin"])
@pytest.mark.parametrize("method", ["threshold", "sample"])
def test_train_and_evaluate_preparations_agree(units, method):
    for x in (grey(), binary(), grey() * 2 - 1 if units == "spin" else binary()):
        p = Preparation.fit(grey(seed=5), units, method)
        train = p.transform(x, gen(7))
        evaluate = p.transform(x, gen(7), for_likelihood=True)
        assert torch.equal(train, evaluate)
        support = {0.0, 1.0} if units == "bernoulli" else {-1.0, 1.0}
        assert set(train.unique().tolist()) <= support


def test_binary_data_draw_no_random_numbers():
    g = gen(0)
    before = g.get_state()
    Preparation("bernoulli", "sample").transform(binary(), g)
    Preparation("spin", "sample").transform(2 * binary() - 1, g)
    assert torch.equal(g.get_state(), before)


@pytest.mark.parametrize("units", ["bernoulli", "spin"])
def test_likelihoods_need_the_support(units):
    p = Preparation.fit(grey(), units, "none")
    assert not torch.equal(p.transform(grey()), p.transform(grey()).round())  # training: grey
    with pytest.raises(ValueError, match="binarize='none'") as err:
        p.transform(grey(), for_likelihood=True, name="--data")
    assert str(err.value).startswith("--data:") and "\n" not in str(err.value)
    b = binary()
    assert torch.equal(p.transform(b, for_likelihood=True), p.transform(b))  # 0/1 data fine


def test_bad_data_are_one_line_value_errors():
    p = Preparation.fit(grey(), "bernoulli")
    cases = [
        (lambda: Preparation.fit(grey() * 3, "bernoulli"), "cannot be binarised"),
        (lambda: Preparation.fit(grey() - 2, "spin"), r"\[-1, 1\]"),
        (lambda: p.transform(grey(d=7)), "expected 6 features"),
        (lambda: p.inverse(grey(d=7)), "expected 6 features"),
        (lambda: p.transform(torch.full((2, 6), float("nan"))), "NaN"),
        (lambda: p.transform(torch.zeros(6)), "2-D"),
        (lambda: p.transform([["a"] * 6]), "numbers"),
        (lambda: Preparation.fit(grey(), "spin", "magic"), "binarize: expected one of"),
        (lambda: Preparation("spin", threshold=2.0), "threshold"),
        (lambda: Preparation("bernoulli", spin_data=True), "spin_data"),
        (lambda: Preparation("gaussian", mean=[0.0], std=[0.0]), "std: expected positive"),
        (lambda: Preparation("gaussian", mean=[0.0]), "both"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            make()
        assert "\n" not in str(err.value)


# --- records ------------------------------------------------------------------------------------
def test_to_dict_from_dict_round_trip():
    records = [Preparation.fit(grey(), "bernoulli", "sample"),
               Preparation.fit(2 * binary() - 1, "spin", "none"),
               Preparation.fit(torch.randn(40, 5, generator=gen(2)), "gaussian"),
               Preparation("softmax:3", threshold=0.25),
               Preparation("bernoulli", threshold=0.3, n_features=9)]
    for p in records:
        d = json.loads(json.dumps(p.to_dict(), allow_nan=False))
        q = Preparation.from_dict(d)
        assert q == p and q.to_dict() == p.to_dict()
        assert Preparation.from_dict(d, units=p.units) == p
    g = records[2]
    x = torch.randn(10, 5, generator=gen(3))
    assert torch.equal(Preparation.from_dict(g.to_dict()).transform(x), g.transform(x))


def _valid():
    return Preparation.fit(torch.randn(8, 3, generator=gen(0)), "gaussian").to_dict()


@pytest.mark.parametrize("change,message", [
    (lambda d: [d], "expected a JSON object"),
    (lambda d: "x", "expected a JSON object"),
    (lambda d: {**d, "version": 2}, "version"),
    (lambda d: {**d, "version": "1"}, "version"),
    (lambda d: {**d, "code": "import os"}, "unknown key"),
    (lambda d: {**d, "units": "relu"}, "units"),
    (lambda d: {**d, "units": 3}, "units"),
    (lambda d: {**d, "binarize": "magic"}, "binarize"),
    (lambda d: {**d, "threshold": "0.5"}, "threshold"),
    (lambda d: {**d, "threshold": float("nan")}, "threshold"),
    (lambda d: {**d, "threshold": 10 ** 400}, "threshold"),
    (lambda d: {**d, "spin_data": 1}, "spin_data"),
    (lambda d: {**d, "n_features": -1}, "n_features"),
    (lambda d: {**d, "n_features": 4}, "n_features=4"),
    (lambda d: {**d, "mean": [0.0, 1.0]}, "same length"),
    (lambda d: {**d, "mean": {"a": 1}}, "mean"),
    (lambda d: {**d, "mean": [0.0, "x", 1.0]}, "mean"),
    (lambda d: {**d, "mean": [[0.0, 1.0, 2.0]]}, "mean"),
    (lambda d: {**d, "mean": [0.0, float("inf"), 1.0]}, "finite"),
    (lambda d: {**d, "mean": [0.0, 1e39, 1.0]}, "finite"),
    (lambda d: {**d, "std": [1.0, -1.0, 1.0]}, "positive"),
    (lambda d: {**d, "std": None}, "both"),
    (lambda d: {**d, "units": "spin"}, "only gaussian"),
    (lambda d: {"binarize": "none", "standardize": [1, 2]}, "standardize"),
    (lambda d: {"binarize": 3}, "binarize"),
    (lambda d: {"binarize": "none", "standardize": {"mean": [1.0], "std": [1.0, 2.0]}},
     "same length"),
])
def test_corrupt_records_are_rejected(change, message):
    with pytest.raises(ValueError, match=message) as err:
        Preparation.from_dict(change(_valid()), units="gaussian")
    msg = str(err.value)
    assert msg.startswith("preparation:") and "\n" not in msg


def test_hostile_records_only_raise_value_errors():
    """Random replacements of every field by values of the wrong shape or type."""
    rng = np.random.default_rng(0)
    junk = [None, True, -1, 0, 2 ** 70, 1e308, float("nan"), "", "x" * 10000, [], [None],
            [[1.0]], {}, {"mean": 1}, "softmax:0", "softmax:3", "gaussian", "none", 1.5]
    base = _valid()
    for _ in range(400):
        d = dict(base)
        for key in rng.choice(list(base) + ["standardize", "extra"], size=rng.integers(1, 4)):
            d[str(key)] = junk[rng.integers(len(junk))]
        try:
            Preparation.from_dict(d, units=["gaussian", None][rng.integers(2)])
        except ValueError as err:
            assert str(err).startswith("preparation:") and "\n" not in str(err)


def test_old_transform_form_is_read():
    mean, std = [0.5, 0.25], [2.0, 0.5]
    old = {"binarize": "threshold", "standardize": {"mean": mean, "std": std}}
    p = Preparation.from_dict(old, units="gaussian")
    assert p == Preparation("gaussian", mean=mean, std=std)
    x = torch.tensor([[1.0, 1.0]])
    assert torch.allclose(p.transform(x), (x - torch.tensor(mean)) / torch.tensor(std))
    assert Preparation.from_dict({"binarize": "sample"}, units="spin") == \
        Preparation("spin", "sample")
    with pytest.raises(ValueError, match="units="):
        Preparation.from_dict(old)


# --- model files --------------------------------------------------------------------------------
def test_a_saved_model_file_carries_the_record(tmp_path):
    x = torch.randn(30, 4, generator=gen(0)) + 3
    p = Preparation.fit(x, "gaussian")
    m = RBM(4, 3, "gaussian", "bernoulli", generator=gen(1))
    boltzkit.save(m, tmp_path / "m.safetensors", metadata={"note": "x"}, preparation=p)
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["preparation"] == p and meta["extra"] == {"note": "x"}
    assert boltzkit.load(tmp_path / "m.safetensors").n_visible == 4
    # a "preparation" entry of metadata (what training's Checkpoint passes) lands in the same key
    boltzkit.save(m, tmp_path / "c.safetensors", metadata={"preparation": p, "epoch": 3})
    meta = read_metadata(tmp_path / "c.safetensors")
    assert meta["preparation"] == p and meta["extra"] == {"epoch": 3}
    boltzkit.save(m, tmp_path / "d.safetensors", preparation=p.to_dict())
    assert read_metadata(tmp_path / "d.safetensors")["preparation"] == p
    boltzkit.save(m, tmp_path / "n.safetensors")
    assert read_metadata(tmp_path / "n.safetensors")["preparation"] is None


def test_save_checks_the_record_against_the_model(tmp_path):
    m = RBM(4, 3, "spin", "bernoulli", generator=gen(1))
    for prep, message in [(Preparation("bernoulli"), "bernoulli units"),
                          (Preparation("spin", n_features=5), "5 features"),
                          ({"version": 9}, "version"), (42, "expected a boltzkit")]:
        with pytest.raises(ValueError, match=message):
            boltzkit.save(m, tmp_path / "m.safetensors", preparation=prep)
    with pytest.raises(ValueError, match="once"):
        boltzkit.save(m, tmp_path / "m.safetensors", metadata={"preparation": Preparation("spin")},
                      preparation=Preparation("spin"))
    assert not list(tmp_path.iterdir())


def test_old_model_files_give_their_transform(tmp_path):
    m = RBM(2, 3, "gaussian", "bernoulli", generator=gen(1))
    old = {"binarize": "threshold", "standardize": {"mean": [0.5, 0.25], "std": [2.0, 0.5]}}
    boltzkit.save(m, tmp_path / "old.safetensors", metadata={"transform": old})
    meta = read_metadata(tmp_path / "old.safetensors")
    assert meta["preparation"] == Preparation("gaussian", mean=[0.5, 0.25], std=[2.0, 0.5])
    assert meta["extra"]["transform"] == old


def _file_with(tmp_path, preparation_json, visible="bernoulli"):
    m = RBM(2, 3, visible, "bernoulli", generator=gen(1))
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}
    meta = {"format": "boltzkit", "format_version": "1", "model": "RBM",
            "config": json.dumps(m.config()), "preparation": preparation_json}
    path = tmp_path / "f.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("text,message", [
    ("{not json", "corrupt preparation"),
    ("[" * 100000 + "]" * 100000, "corrupt preparation"),
    (json.dumps({"version": 1, "units": "spin", "binarize": "none"}), "spin units"),
    (json.dumps({"version": 1, "units": "bernoulli", "binarize": "none", "n_features": 3}),
     "3 features"),
    (json.dumps({"version": 1, "units": "bernoulli", "binarize": "rm -rf"}), "binarize"),
    (json.dumps(["x"]), "JSON object"),
])
def test_corrupt_records_in_model_files(tmp_path, text, message):
    path = _file_with(tmp_path, text)
    for read in (read_metadata, boltzkit.load):
        with pytest.raises(ValueError, match=message) as err:
            read(path)
        assert str(err.value).startswith(f"model file: {path}") and "\n" not in str(err.value)
