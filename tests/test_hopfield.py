"""Hopfield networks: storage rules, energy descent, recall, spurious states, capacity."""

import math

import pytest
import torch

import boltzkit
from boltzkit import Hopfield
from boltzkit.experiments.hopfield import (capacity, corrupt, count_spurious, crossing,
                                           random_patterns)
from boltzkit.models.hopfield import RULES


def gen(seed):
    return torch.Generator().manual_seed(seed)


def is_fixed_point(net, s):
    """Every unit agrees with the sign of its field (ties count as agreeing)."""
    return ((net.field(s) * s) >= -1e-5).all(1)


# -- storage rules ---------------------------------------------------------------------------

@pytest.mark.parametrize("rule,p", [("hebbian", 5), ("storkey", 15), ("pseudoinverse", 30)])
def test_stored_patterns_are_fixed_points_within_capacity(rule, p):
    # n = 100: loads 0.05 (Hebbian, far below 0.138), 0.15 (Storkey, below n/sqrt(2 ln n) ≈ 0.33)
    # and 0.3 (pseudo-inverse, any load below 1): every pattern must be stable, under both modes
    n = 100
    xi = random_patterns(p, n, gen(1))
    net = Hopfield(n, rule).store(xi)
    assert torch.equal(net.weight, net.weight.t())
    assert torch.all(net.weight.diagonal() == 0)
    assert is_fixed_point(net, xi).all()
    assert torch.equal(net.recall(xi, generator=gen(2)), xi)
    out, info = net.recall(xi, mode="sync", return_info=True)
    assert torch.equal(out, xi) and info["converged"].all() and info["sweeps"] == 1


def test_hebbian_weights():
    xi = random_patterns(4, 10, gen(3))
    w = xi.t() @ xi / 10
    w.fill_diagonal_(0)
    assert torch.allclose(Hopfield(10).store(xi).weight, w, atol=1e-6)


def test_storkey_matches_the_rule_written_unit_by_unit():
    n, p = 12, 5
    xi = random_patterns(p, n, gen(4)).double()
    w = torch.zeros(n, n, dtype=torch.float64)
    for x in xi:  # Storkey (1997), h_ij = sum_{k != i, j} w_ik x_k, literally
        new = w.clone()
        for i in range(n):
            for j in range(n):
                if i != j:
                    h_ij = sum(w[i, k] * x[k] for k in range(n) if k not in (i, j))
                    h_ji = sum(w[j, k] * x[k] for k in range(n) if k not in (i, j))
                    new[i, j] = w[i, j] + (x[i] * x[j] - x[i] * h_ji - h_ij * x[j]) / n
        w = new
    net = Hopfield(n, "storkey").store(xi.float())
    assert torch.allclose(net.weight.double(), w, atol=1e-6)


def test_pseudoinverse_is_the_projection_with_zero_diagonal():
    n = 40
    xi = random_patterns(10, n, gen(5))
    proj = xi.t() @ torch.linalg.inv(xi @ xi.t()) @ xi
    net = Hopfield(n, "pseudoinverse").store(xi)
    expect = proj.clone().fill_diagonal_(0)
    assert torch.allclose(net.weight, expect, atol=1e-5)
    # at a stored pattern the field is (1 - P_ii) xi_i: same sign as xi_i
    assert torch.allclose(net.field(xi), (1 - proj.diagonal()) * xi, atol=1e-5)


def test_pseudoinverse_handles_dependent_patterns():
    # a repeated pattern and a pattern equal to minus another make C singular: pinv copes
    xi = random_patterns(4, 30, gen(6))
    dependent = torch.cat([xi, xi[:1], -xi[1:2]])
    net = Hopfield(30, "pseudoinverse").store(dependent)
    ref = Hopfield(30, "pseudoinverse").store(xi)
    assert torch.isfinite(net.weight).all()
    assert torch.allclose(net.weight, ref.weight, atol=1e-5)
    assert is_fixed_point(net, dependent).all()


@pytest.mark.parametrize("rule", RULES)
def test_storing_in_two_calls_adds_to_the_memories(rule):
    xi = random_patterns(8, 50, gen(7))
    once = Hopfield(50, rule).store(xi)
    twice = Hopfield(50, rule).store(xi[:3]).store(xi[3:])
    assert torch.allclose(once.weight, twice.weight, atol=1e-5)
    assert torch.equal(twice.patterns, xi)


def test_zero_one_patterns_are_converted():
    xi = random_patterns(3, 20, gen(8))
    a = Hopfield(20).store(xi)
    b = Hopfield(20).store((xi + 1) / 2)
    assert torch.equal(a.weight, b.weight)
    out = b.recall((xi[0] + 1) / 2, generator=gen(0))
    assert out.shape == (20,) and set(out.tolist()) <= {-1.0, 1.0}
    assert torch.equal(out, xi[0])


# -- energy and dynamics ---------------------------------------------------------------------

def test_async_recall_never_raises_the_energy():
    n, m = 30, 16
    a = torch.randn(n, n, generator=gen(9))
    w = (a + a.t()) / 2
    w.fill_diagonal_(0)
    net = Hopfield(n)
    net.weight.copy_(w)
    net.bias.copy_(0.3 * torch.randn(n, generator=gen(10)))
    start = random_patterns(m, n, gen(11))
    energies = [net.energy(start)]
    out, info = net.recall(start, generator=gen(12), return_info=True,
                           callback=lambda s: energies.append(net.energy(s)))
    e = torch.stack(energies)  # (updates + 1, m)
    assert e.shape[0] == info["sweeps"] * n + 1
    # energies are recomputed from scratch in float32: rounding error well below 1e-4
    assert (e[1:] - e[:-1]).max() <= 1e-4
    assert (e[-1] < e[0]).all()  # random starts are not minima here
    assert info["converged"].all() and is_fixed_point(net, out).all()
    # the energy of the final states matches the last recorded one
    assert torch.allclose(net.energy(out), e[-1])


def test_energy_formula_and_shapes():
    net = Hopfield(5)
    w = torch.randn(5, 5, generator=gen(13))
    net.weight.copy_((w + w.t()).fill_diagonal_(0))
    net.bias.copy_(torch.randn(5, generator=gen(14)))
    s = random_patterns(3, 5, gen(15))
    expect = torch.stack([-0.5 * x @ net.weight @ x - net.bias @ x for x in s])
    assert torch.allclose(net.energy(s), expect, atol=1e-5)
    assert net.energy(s[0]).shape == ()


def test_sync_recall_reports_two_cycles():
    # two units with a negative coupling: from (1, 1) synchronous updates flip both forever
    net = Hopfield(2)
    net.weight.copy_(torch.tensor([[0.0, -1.0], [-1.0, 0.0]]))
    start = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    out, info = net.recall(start, mode="sync", return_info=True)
    assert info["cycle"].tolist() == [True, False]
    assert info["converged"].tolist() == [False, True]
    # asynchronous recall always reaches a fixed point
    out, info = net.recall(start, mode="async", generator=gen(0), return_info=True)
    assert info["converged"].all() and (out[:, 0] == -out[:, 1]).all()


def test_batch_recall_equals_one_state_at_a_time():
    n = 60
    net = Hopfield(n).store(random_patterns(6, n, gen(16)))
    starts = random_patterns(5, n, gen(17))
    batch = net.recall(starts, generator=gen(18))
    # one update order per sweep shared by the batch: a state's path does not depend on the rest
    for k in range(5):
        assert torch.equal(net.recall(starts[k], generator=gen(18)), batch[k])


def test_recall_from_corrupted_patterns():
    n, p = 200, 10  # load 0.05
    xi = random_patterns(p, n, gen(19))
    noisy = corrupt(xi, 0.2, gen(20))
    assert ((noisy != xi).sum(1) == 40).all()
    for rule in RULES:
        out = Hopfield(n, rule).store(xi).recall(noisy, generator=gen(21))
        assert torch.equal(out, xi), rule


def test_corrupt():
    x = random_patterns(4, 50, gen(22))
    assert torch.equal(corrupt(x, 0.0, gen(0)), x)
    assert torch.equal(corrupt(x, 1.0, gen(0)), -x)
    y = corrupt((x[0] + 1) / 2, 0.1, gen(1))  # 0/1 input, one pattern
    assert y.shape == (50,) and (y != x[0]).sum() == 5
    with pytest.raises(ValueError, match="fraction"):
        corrupt(x, 1.5)


# -- input checks, files ---------------------------------------------------------------------

@pytest.mark.parametrize("bad,match", [
    (torch.tensor([[1.0, -1.0, float("nan"), 1.0]]), "NaN"),
    (torch.tensor([[1.0, -1.0, 0.5, 1.0]]), "found 0.5"),
    (torch.tensor([[1.0, -1.0, 0.0, 1.0]]), "mixture"),
    (torch.ones(2, 3), r"shape \(4,\) or \(m, 4\)"),
    (torch.ones(1, 2, 4), r"shape \(n,\) or \(m, n\)"),
    (torch.ones(0, 4), "empty"),
])
def test_bad_states_raise(bad, match):
    net = Hopfield(4)
    for call in (net.store, net.recall, net.energy):
        with pytest.raises(ValueError, match=match):
            call(bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="rule"):
        Hopfield(4, rule="oja")
    with pytest.raises(ValueError, match="n_units"):
        Hopfield(0)
    net = Hopfield(4)
    with pytest.raises(ValueError, match="mode"):
        net.recall(torch.ones(4), mode="parallel")
    with pytest.raises(ValueError, match="max_sweeps"):
        net.recall(torch.ones(4), max_sweeps=0)


@pytest.mark.parametrize("rule", RULES)
def test_save_load_round_trip(tmp_path, rule):
    xi = random_patterns(5, 40, gen(23))
    net = Hopfield(40, rule).store(xi)
    path = boltzkit.save(net, tmp_path / "h.safetensors")
    back = boltzkit.load(path)
    assert isinstance(back, Hopfield) and back.rule == rule and back.n_patterns == 5
    assert torch.equal(back.weight, net.weight) and torch.equal(back.patterns, xi)
    noisy = corrupt(xi, 0.1, gen(24))
    assert torch.equal(back.recall(noisy, generator=gen(1)), net.recall(noisy, generator=gen(1)))
    more = random_patterns(2, 40, gen(25))  # storing continues after loading
    assert torch.allclose(back.store(more).weight, net.store(more).weight, atol=1e-6)


# -- spurious states, capacity ---------------------------------------------------------------

def test_count_spurious_finds_memories_reversals_and_mixtures():
    n, p = 100, 3  # at load 0.03 the three-pattern mixtures are stable (Amit et al. 1985)
    net = Hopfield(n).store(random_patterns(p, n, gen(26)))
    res = count_spurious(net, n_starts=400, generator=gen(27))
    assert sum(res.starts.values()) == 400 and res.starts["not_converged"] == 0
    assert res.distinct["stored"] == p and res.distinct["reversed"] == p
    assert res.mixtures_checked and res.distinct["mixture3"] >= 1
    assert res.n_spurious == res.distinct["mixture3"] + res.distinct["other"]
    # the stored patterns attract more starts than any other class
    assert res.starts["stored"] + res.starts["reversed"] > res.starts["mixture3"]


def test_crossing():
    assert crossing([0.1, 0.2, 0.3], [1.0, 0.6, 0.2]) == pytest.approx(0.225)
    assert crossing([0.1, 0.2], [1.0, 0.9]) is None


def test_capacity_small_network():
    # n = 60, 4 networks per load: at load 0.05 the Hebbian net recalls (nearly) everything, at
    # 0.5 (far past 0.138) the retrieval states are gone; Storkey still holds at 0.2
    res = capacity(n_units=60, rules=["hebbian", "storkey"], trials=4, seed=0,
                   loads=[0.05, 0.2, 0.5], stop_below=None)
    heb, sto = res["rules"]["hebbian"], res["rules"]["storkey"]
    assert heb["loads"] == pytest.approx([3 / 60, 12 / 60, 30 / 60])
    assert heb["recall"][0] >= 0.9 and heb["recall"][2] <= 0.2
    assert sto["recall"][1] >= 0.9
    assert 0.05 < heb["load_at_half"] < 0.5
    again = capacity(n_units=60, rules=["hebbian"], trials=4, seed=0, loads=[0.05, 0.2, 0.5],
                     stop_below=None)
    assert again["rules"]["hebbian"] == heb
    with pytest.raises(ValueError, match="rules"):
        capacity(n_units=60, rules=["nope"])


# -- command line ----------------------------------------------------------------------------

def test_cli_capacity(tmp_path, capsys):
    import json

    from boltzkit.cli import main

    rc = main(["hopfield", "capacity", "--n", "40", "--trials", "2", "--loads", "0.05,0.5",
               "--rule", "hebbian", "--rules", "storkey", "--out", str(tmp_path), "--json"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "capacity.json").read_text())
    assert printed == written and list(printed["rules"]) == ["hebbian", "storkey"]
    assert (tmp_path / "capacity.png").stat().st_size > 0
    assert main(["hopfield", "capacity", "--rule", "oja", "--out", str(tmp_path)]) == 2
    assert "--rule" in capsys.readouterr().err


def test_cli_recall(tmp_path, capsys):
    from boltzkit.cli import main

    out = tmp_path / "recall.png"
    rc = main(["hopfield", "recall", "--dataset", "digits", "--n-patterns", "3", "--noise",
               "0.1", "--rule", "pseudoinverse", "--out", str(out)])
    assert rc == 0 and out.stat().st_size > 0
    assert "pseudoinverse" in capsys.readouterr().out


def test_cli_spurious(capsys):
    import json

    from boltzkit.cli import main

    rc = main(["hopfield", "spurious", "--n", "60", "--n-patterns", "3", "--starts", "200",
               "--rule", "hebbian", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)["rules"]["hebbian"]
    assert sum(res["starts"].values()) == 200 and res["distinct"]["stored"] == 3
    assert main(["hopfield", "spurious", "--n", "60", "--n-patterns", "3", "--starts", "50"]) == 0
    assert "mixture of 3" in capsys.readouterr().out
