import itertools
import math

import pytest
import torch

import boltzkit
from boltzkit import RBM, exact
from boltzkit.samplers import gibbs

from .conftest import gen

PAIRINGS = [(v, h) for v in ("bernoulli", "spin", "softmax:2", "gaussian")
            for h in ("bernoulli", "spin", "softmax:3", "gaussian")]


def random_rbm(n_visible, n_hidden, visible="bernoulli", hidden="bernoulli", scale=0.5, seed=0):
    g = gen(seed)
    m = RBM(n_visible, n_hidden, visible, hidden, dtype=torch.float64)
    with torch.no_grad():
        m.weight.normal_(0, scale, generator=g)
        m.visible_bias.normal_(0, scale, generator=g)
        m.hidden_bias.normal_(0, scale, generator=g)
    return m


def some_visible(m, n, seed=1):
    return m.visible.sample(torch.randn(n, m.n_visible, generator=gen(seed), dtype=torch.float64),
                            gen(seed + 1))


@pytest.mark.parametrize("visible,hidden", PAIRINGS)
def test_free_energy_is_minus_log_sum_over_hidden(visible, hidden):
    m = random_rbm(4, 3 if hidden != "softmax:3" else 6, visible, hidden)
    v = some_visible(m, 5)
    if m.hidden.discrete:
        hs = m.hidden.states(m.n_hidden, dtype=torch.float64)  # every hidden state
        e = torch.stack([m.energy(v, h.expand(5, -1)) for h in hs], 1)
        brute = -torch.logsumexp(-e, 1)
    else:  # Gaussian hidden: integrate each of the 3 hidden units numerically on a grid
        grid = torch.linspace(-12, 12, 97, dtype=torch.float64)
        dh = (grid[1] - grid[0]).item()
        hs = torch.tensor(list(itertools.product(grid.tolist(), repeat=3)), dtype=torch.float64)
        e = torch.stack([m.energy(row.expand(len(hs), -1), hs) for row in v])
        brute = -(torch.logsumexp(-e, 1) + 3 * math.log(dh))
    assert torch.allclose(m.free_energy(v), brute, atol=1e-6)


@pytest.mark.parametrize("visible,hidden", [p for p in PAIRINGS if "gaussian" not in p])
def test_exact_log_z_is_the_same_from_either_layer(visible, hidden):
    m = random_rbm(6, 3 if hidden != "softmax:3" else 6, visible, hidden, scale=0.8)
    assert exact.rbm.log_partition(m, "visible") == pytest.approx(
        exact.rbm.log_partition(m, "hidden"), abs=1e-9)


def test_exact_log_z_of_gaussian_visible_matches_quadrature():
    m = random_rbm(1, 3, "gaussian", "bernoulli")
    grid = torch.linspace(-20, 20, 40001, dtype=torch.float64)[:, None]
    quad = torch.logsumexp(-m.free_energy(grid), 0).item() + math.log(40 / 40000)
    assert exact.rbm.log_partition(m) == pytest.approx(quad, abs=1e-8)


def test_exact_log_z_chunked_equals_unchunked():
    m = random_rbm(10, 9)
    assert exact.rbm.log_partition(m, chunk_size=7) == pytest.approx(exact.rbm.log_partition(m),
                                                                     abs=1e-9)


def exact_visible_distribution(m):
    states = m.visible.states(m.n_visible, dtype=m.weight.dtype)
    return states, torch.softmax(-m.free_energy(states), 0)


def _codes(x):
    # every discrete state here has units in {0, 1} or {-1, +1}: read "on" (> 0) as one bit
    return ((x > 0).long() << torch.arange(x.shape[1])).sum(1)


def histogram(samples, states):
    """Empirical distribution of samples over the rows of states (all of the support)."""
    lookup = torch.full((2 ** states.shape[1],), -1, dtype=torch.long)
    lookup[_codes(states)] = torch.arange(len(states))
    idx = lookup[_codes(samples)]
    assert (idx >= 0).all(), "a sample outside the support"
    return torch.bincount(idx, minlength=len(states)).double() / len(samples)


def tv_bound(p, n, delta=1e-6):
    """A bound that the total-variation distance between the empirical distribution of n
    independent draws from p and p itself exceeds with probability at most delta:
    E[TV] <= 1/2 sum_i sqrt(p_i (1 - p_i) / n) (Jensen), and TV moves by at most 1/n when one
    draw changes, so McDiarmid adds sqrt(log(1/delta) / (2 n))."""
    return 0.5 * torch.sqrt(p * (1 - p) / n).sum().item() + math.sqrt(math.log(1 / delta) / (2 * n))


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "gaussian"),
                                            ("softmax:2", "bernoulli"), ("bernoulli", "spin")])
def test_block_gibbs_reproduces_the_exact_distribution(visible, hidden):
    m = random_rbm(6, 4, visible, hidden, scale=0.7, seed=3)
    states, p = exact_visible_distribution(m)
    n = 20000  # independent chains; one draw each after burn-in
    g = gen(7)
    start = m.visible.sample(torch.zeros(n, 6, dtype=torch.float64), g)
    state = gibbs.run(m, gibbs.init(m, start, g), 100, g)
    tv = 0.5 * (histogram(state.visible, states) - p).abs().sum().item()
    assert tv < tv_bound(p, n)
    # the test has power: the same draws are far from a visibly different model's distribution
    other = random_rbm(6, 4, visible, hidden, scale=0.7, seed=4)
    q = exact_visible_distribution(other)[1]
    assert 0.5 * (histogram(state.visible, states) - q).abs().sum().item() > 2 * tv_bound(q, n)


def test_gaussian_visible_gibbs_matches_exact_moments():
    m = random_rbm(3, 5, "gaussian", "bernoulli", seed=5)
    hs = m.hidden.states(5, dtype=torch.float64)
    ph = torch.softmax(-m.free_energy_hidden(hs), 0)
    mean = ph @ m.visible_mean(hs)  # E[v] = sum_h p(h) E[v | h]
    n = 20000
    g = gen(8)
    state = gibbs.run(m, gibbs.init(m, torch.zeros(n, 3, dtype=torch.float64), g), 100, g)
    sd = state.visible.std(0)
    assert ((state.visible.mean(0) - mean).abs() < 5 * sd / math.sqrt(n)).all()


def test_energy_decomposes_into_conditionals():
    # log p(h | v) from the energy equals the hidden units' own conditional (spin hidden)
    m = random_rbm(5, 3, "bernoulli", "spin")
    v = some_visible(m, 4)
    hs = m.hidden.states(3, dtype=torch.float64)
    logp = torch.stack([-m.energy(v, h.expand(4, -1)) for h in hs], 1)
    logp = logp - torch.logsumexp(logp, 1, keepdim=True)
    mean = torch.exp(logp) @ hs
    assert torch.allclose(mean, m.hidden_mean(v), atol=1e-10)


def test_save_load_round_trip(tmp_path):
    m = random_rbm(6, 4, "softmax:3", "spin")
    boltzkit.save(m, tmp_path / "m.safetensors", metadata={"note": "x"})
    m2 = boltzkit.load(tmp_path / "m.safetensors")
    assert m2.visible.spec() == "softmax:3" and m2.hidden.spec() == "spin"
    for k, t in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], t)
    assert boltzkit.io.read_metadata(tmp_path / "m.safetensors")["extra"] == {"note": "x"}
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left


def test_corrupt_model_files_give_clear_errors(tmp_path):
    m = random_rbm(6, 4)
    good = tmp_path / "m.safetensors"
    boltzkit.save(m, good)
    raw = good.read_bytes()
    cases = {"truncated": raw[: len(raw) // 2], "garbage": b"\x00" * 5 + b"not a model",
             "empty": b""}
    for name, content in cases.items():
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match=f"model file: {bad}"):
            boltzkit.load(bad)
    with pytest.raises(ValueError, match="does not exist"):
        boltzkit.load(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a boltzkit model"):
        boltzkit.load(tmp_path / "other.safetensors")


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "m.safetensors"
    boltzkit.save(random_rbm(3, 2), target)
    before = target.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(boltzkit.io, "save_file", boom)
    with pytest.raises(RuntimeError):
        boltzkit.save(random_rbm(3, 2, seed=9), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_bad_input_errors_name_the_problem():
    m = RBM(6, 4)
    with pytest.raises(ValueError, match=r"v: expected shape \(n, 6\), got \(3, 5\)"):
        m.check_visible(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="v: expected at least one row"):
        m.check_visible(torch.zeros(0, 6))
    with pytest.raises(ValueError, match="found NaN"):
        m.check_visible(torch.full((2, 6), float("nan")))
    with pytest.raises(ValueError, match=r"\{0, 1\}, found 3"):
        m.check_visible(torch.full((2, 6), 3.0))
    with pytest.raises(ValueError, match="n_hidden: expected a positive integer"):
        RBM(6, 0)
    with pytest.raises(ValueError, match="multiple of 4"):
        RBM(6, 3, visible="softmax:4")
    with pytest.raises(ValueError, match="exact computation needs a discrete layer"):
        exact.rbm.log_partition(RBM(30, 30))
