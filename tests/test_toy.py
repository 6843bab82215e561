"""The toy networks of threshold units: the claims printed by `boltzkit toy`."""

import json

import pytest
import torch

from boltzkit.experiments.toy import (DEFAULT_WEIGHTS, TRAINING_STATES, hebbian, run_all, settle,
                                      two_phase)


def test_hebbian_weights_grow_without_end():
    table = hebbian(epochs=300, lr=0.1)
    changes = [e.change for e in table]
    assert min(changes) == pytest.approx(0.1)  # never stops
    # from the second epoch on the hidden unit's answers are fixed: the same step every epoch
    steps = {tuple(e.delta) for e in table[1:]}
    assert len(steps) == 1
    norms = [torch.tensor(e.weights).norm().item() for e in table]
    assert all(b > a for a, b in zip(norms[10:], norms[11:]))
    assert norms[-1] > 20 * torch.tensor(DEFAULT_WEIGHTS).norm().item()
    # ...even though every training state has long been reconstructed
    assert all(e.all_reconstructed for e in table[10:])


def test_hebbian_weight_stays_at_zero():
    table = hebbian([[1, -1, 1], [-1, 1, 1]], [0.5, -0.2, 0.0], epochs=200, lr=0.1)
    assert all(e.weights[2] == 0.0 and e.delta[2] == 0.0 for e in table)
    assert table[-1].weights[0] > 20 and table[-1].weights[1] < -20


@pytest.mark.parametrize("start,winner", [([0.5, 0.2, 0.1], 0), ([0.2, 0.5, 0.1], 1)])
def test_hebbian_one_weight_takes_over(start, winner):
    parity = [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]
    table = hebbian(parity, start, epochs=100, lr=0.1)
    for i in range(3):
        if i == winner:
            assert all(e.delta[i] == pytest.approx(0.1) for e in table)
        else:  # the others never move
            assert all(e.weights[i] == start[i] for e in table)
    w = torch.tensor(table[-1].weights).abs()
    assert w[winner] / w.sum() > 0.95


def test_two_phase_learning_stops_when_the_data_are_reconstructed():
    table = two_phase(epochs=20, lr=0.1, generator=torch.Generator().manual_seed(0))
    stop = next(e.epoch for e in table if e.change == 0.0)
    assert stop == 5  # w1 = 0.75 needs 4 steps of 2 lr to change sign
    assert all(e.change == 0.0 and e.all_reconstructed for e in table[stop - 1:])
    assert not any(e.all_reconstructed for e in table[:stop - 1])
    assert all(e.weights == table[-1].weights for e in table[stop - 1:])


@pytest.mark.parametrize("seed", range(6))
def test_two_phase_stops_from_random_starts(seed):
    gen = torch.Generator().manual_seed(seed)
    w0 = (torch.rand(3, generator=gen, dtype=torch.float64) * 4 - 2).tolist()
    table = two_phase(weights=w0, epochs=40, lr=0.1, n_chains=4, generator=gen)
    # the weight change is exactly zero in precisely the epochs where every state is reconstructed
    assert all((e.change == 0.0) == e.all_reconstructed for e in table)
    assert table[-1].change == 0.0 and table[-1].all_reconstructed
    first = next(i for i, e in enumerate(table) if e.change == 0.0)
    assert all(e.change == 0.0 for e in table[first:])


def test_settled_states_are_fixed_points():
    w = torch.tensor([0.4, -0.3, 0.2], dtype=torch.float64)
    s = settle(w, 50, torch.Generator().manual_seed(1))
    v, h = s[:, :3], s[:, 3]
    assert torch.equal(v, torch.sign(w * h.unsqueeze(1)))
    assert torch.equal(h, torch.sign(v @ w))


def test_bad_arguments():
    with pytest.raises(ValueError, match="epochs"):
        hebbian(epochs=0)
    with pytest.raises(ValueError, match="lr"):
        hebbian(lr=-1.0)
    with pytest.raises(ValueError, match="starting weights"):
        hebbian(weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="training states"):
        hebbian(states=[[1, 0, 1]])


def test_cli_toy(capsys):
    from boltzkit.cli import main

    assert main(["toy", "--json", "--epochs", "8"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in data["runs"]]
    assert names[:2] == ["hebbian", "two-phase"]
    assert data["runs"][0]["training_states"] == [list(s) for s in TRAINING_STATES]
    assert data["runs"][1]["epochs"][-1]["change"] == 0.0
    assert main(["toy", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "reconstructed" in out and "two-phase" in out
    assert run_all(epochs=3, weights="random", seed=3)[0].start_weights != list(DEFAULT_WEIGHTS)
