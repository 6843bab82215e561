"""The encoder reproduction and the MNIST Boltzmann machine experiment (fast checks; the full
runs are benchmarks recorded in BENCHMARKS.md)."""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from boltzkit.cli import main
from boltzkit.experiments import encoder as E
from boltzkit.training.estimators.boltzmann import noisy_clamp


def test_parse_spec():
    assert E.parse_spec("4-2-4") == (4, 2)
    assert E.parse_spec("8-3-8") == (8, 3)
    for bad in ("4-2-5", "4-2", "a-b-c", "1-1-1", "4-0-4"):
        with pytest.raises(ValueError, match="spec"):
            E.parse_spec(bad)


def test_connectivity_of_the_encoder():
    c = E.connectivity(4, 2)
    v1, v2, h = slice(0, 4), slice(4, 8), slice(8, 10)
    assert torch.equal(c, c.t()) and not c.diagonal().any()
    assert not c[v1, v2].any()  # V1 and V2 talk only through H
    assert not c[h, h].any()  # hidden units not connected to each other
    assert c[v1, h].all() and c[v2, h].all()
    assert c[v1, v1].sum() == 12 and c[v2, v2].sum() == 12  # within each group, off-diagonal
    assert not E.connectivity(4, 2, visible_within=False)[v1, v1].any()


def _hand_made_solution(stack, n=4, m=2):
    """Weights that encode pattern k by the hidden code k (binary): V1_k and V2_k excite the
    hidden units whose bit is 1 and inhibit the others; V2_k's bias makes it come on only for
    exactly its own code (field +3 there, at most -3 for every other code); the units of each
    visible group inhibit each other."""
    w = torch.zeros(2 * n + m, 2 * n + m)
    b = torch.zeros(2 * n + m)
    for k in range(n):
        code = [(k >> j) & 1 for j in range(m)]
        for j in range(m):
            for base in (0, n):
                w[base + k, 2 * n + j] = w[2 * n + j, base + k] = 6.0 if code[j] else -6.0
        b[n + k] = -6.0 * sum(code) + 3.0
        b[k] = -1.0
    for base in (0, n):
        for i in range(n):
            for j in range(n):
                if i != j:
                    w[base + i, base + j] = -10.0
    with torch.no_grad():
        stack.weight[0] = w * stack.mask
        stack.bias[0] = b


def test_solved_recognises_a_solution_and_rejects_zero_weights():
    stack = E.make_stack(3, 4, 2, E.PaperSettings())
    _hand_made_solution(stack)
    with torch.no_grad():
        stack.weight[2] = stack.weight[0]
        stack.bias[2] = stack.bias[0]
        stack.weight[2, 0, 8] = stack.weight[2, 8, 0] = -stack.weight[0, 0, 8]  # break pattern 0
    assert E.solved(stack, 4, 2).tolist() == [True, False, False]


def test_noisy_clamping_rates():
    """Flip rates of 200000 on bits and 600000 off bits are within 5 standard deviations
    (binomial: sqrt(p(1-p)/N)) of 0.15 and 0.05."""
    g = torch.Generator().manual_seed(0)
    v = E.patterns(4).expand(100000, 4, 8)
    noisy = noisy_clamp(v, 0.15, 0.05, g)
    on = v > 0.5
    off_rate = float((noisy[on] == 0).double().mean())
    on_rate = float((noisy[~on] == 1).double().mean())
    assert abs(off_rate - 0.15) < 5 * math.sqrt(0.15 * 0.85 / on.sum())
    assert abs(on_rate - 0.05) < 5 * math.sqrt(0.05 * 0.95 / (~on).sum())


def test_encoder_command_json(capsys):
    assert main(["encoder", "3-2-3", "--runs", "4", "--max-cycles", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["spec"] == "3-2-3" and res["runs"] == 4 and len(res["cycles"]) == 4
    assert res["settings"]["step"] == 2.0 and res["settings"]["temperature"] == 10.0
    assert 0 <= res["successes"] <= 4 and res["cycles_run"] <= 3
    assert main(["encoder", "3-2-3", "--runs", "2", "--max-cycles", "2", "--method",
                 "fast"]) == 0
    assert "method fast" in capsys.readouterr().out


def test_encoder_command_rejects_bad_spec(capsys):
    assert main(["encoder", "4-2-5", "--runs", "2"]) == 2
    assert "spec" in capsys.readouterr().err


@pytest.mark.slow
def test_paper_procedure_solves_most_4_2_4_runs():
    """16 runs of the 1985 procedure, at most 400 cycles. In the 250-run benchmark about 75% of
    runs had succeeded by cycle 400; if each run succeeds with probability 0.75, at least 8 of 16
    do with probability > 0.99 (binomial). With this seed 10 succeed; with the sign of the
    weight steps reversed, none does."""
    res = E.run_encoder("4-2-4", runs=16, max_cycles=400, seed=3)
    assert res["successes"] >= 8, res


def _mnist_available():
    root = Path(os.environ.get("BOLTZKIT_DATA", "")) / "mnist"
    return root.is_dir() and any(root.iterdir())


@pytest.mark.skipif(not _mnist_available(), reason="MNIST not in BOLTZKIT_DATA")
def test_bm_mnist_command_writes_pictures(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["bm", "mnist", "--per-class", "10", "--epochs", "1", "--hidden", "4",
                 "--batch-size", "10", "--settle", "1,2,3", "--out", str(out)]) == 0
    for name in ("comparison.png", "weights_too_little.png", "samples_too_much.png",
                 "metrics.json", "model_enough.safetensors"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_visible"] == 196 and [v["negative_settle"] for v in m["variants"].values()] \
        == [1, 2, 3]


def test_bm_mnist_rejects_bad_settle(capsys, tmp_path):
    assert main(["bm", "mnist", "--settle", "1,2", "--out", str(tmp_path)]) == 2
    assert "settle" in capsys.readouterr().err

