import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import boltzkit
from boltzkit import RBM, exact
from boltzkit.samplers import gibbs
from boltzkit.units import Bernoulli, register_units, unregister_units

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


# -- a per-row inverse temperature -----------------------------------------------------------------
ROW_BETAS = [0.0, 0.4, 1.0, 2.0, 1.0]


@pytest.mark.parametrize("visible,hidden", PAIRINGS)
def test_per_row_beta_equals_scalar_beta_row_by_row(visible, hidden):
    m = random_rbm(4, 3 if hidden != "softmax:3" else 6, visible, hidden)
    n = len(ROW_BETAS)
    v = some_visible(m, n)
    h = m.sample_hidden(v, gen(3))
    beta = torch.tensor(ROW_BETAS, dtype=torch.float64)  # (n,): one per row
    fe, feh = m.free_energy(v, beta), m.free_energy_hidden(h, beta)
    assert fe.shape == feh.shape == (n,)
    hm, vm = m.hidden_mean(v, beta), m.visible_mean(h, beta)
    hs, vs = m.sample_hidden(v, gen(4), beta), m.sample_visible(h, gen(5), beta)
    for i, b in enumerate(ROW_BETAS):
        # the same batch at the scalar beta_i: row i is computed from the same numbers (and, for
        # the draws, the same random numbers), so it agrees up to the rounding of a row sum
        tol = dict(rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(fe[i], m.free_energy(v, b)[i], **tol)
        torch.testing.assert_close(feh[i], m.free_energy_hidden(h, b)[i], **tol)
        assert torch.equal(hm[i], m.hidden_mean(v, b)[i])
        assert torch.equal(vm[i], m.visible_mean(h, b)[i])
        assert torch.equal(hs[i], m.sample_hidden(v, gen(4), b)[i])
        assert torch.equal(vs[i], m.sample_visible(h, gen(5), b)[i])
    with pytest.raises(ValueError, match=r"beta: expected a number or a tensor of shape \(5,\)"):
        m.free_energy(v, beta[:3])


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "gaussian"),
                                            ("softmax:2", "spin"), ("gaussian", "softmax:3")])
def test_gibbs_with_per_chain_beta_equals_each_chain_at_its_own_beta(visible, hidden):
    m = random_rbm(4, 3 if hidden != "softmax:3" else 6, visible, hidden)
    n = len(ROW_BETAS)
    v0 = some_visible(m, n)
    beta = torch.tensor(ROW_BETAS, dtype=torch.float64)

    def chains(b):
        # every call draws random numbers of the same shapes whatever beta is, so a fresh
        # generator with one seed gives every run the same random numbers
        g = gen(21)
        state = gibbs.run(m, gibbs.init(m, v0, g, b), 3, g, b)
        return (*state, gibbs.sample_visible(m, state.hidden, g, b), *m.gibbs_vhv(v0, g, b),
                *m.gibbs_hvh(state.hidden, g, b))

    together = chains(beta)
    for i, b in enumerate(ROW_BETAS):
        alone = chains(b)  # chain i is row i of a batch run at the scalar beta_i
        assert len(alone) == 8
        for x, y in zip(together, alone):
            assert torch.equal(x[i], y[i])


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "gaussian")])
def test_tempered_chains_follow_the_tempered_distribution(visible, hidden):
    # chains at beta 0.4 and 1.0 side by side in one batch; the chain at beta follows
    # p_beta(v) ∝ exp(-F_beta(v)) with F_beta = free_energy(v, beta), computed exactly
    m = random_rbm(6, 4, visible, hidden, scale=0.7, seed=3)
    states = m.visible.states(6, dtype=torch.float64)
    betas, per_beta = (0.4, 1.0), 10000  # independent chains per beta, one draw each after burn-in
    beta = torch.tensor(betas, dtype=torch.float64).repeat_interleave(per_beta)
    g = gen(9)
    start = m.visible.sample(torch.zeros(len(beta), 6, dtype=torch.float64), g)
    v = gibbs.run(m, gibbs.init(m, start, g, beta), 100, g, beta).visible
    p = {b: torch.softmax(-m.free_energy(states, b), 0) for b in betas}
    for k, b in enumerate(betas):
        emp = histogram(v[k * per_beta:(k + 1) * per_beta], states)
        # tv_bound: exceeded with probability <= 1e-6 for n independent draws from p_beta
        assert 0.5 * (emp - p[b]).abs().sum().item() < tv_bound(p[b], per_beta)
        # power: the exact tempered distributions are > 0.16 apart in TV here, so the draws at
        # beta are far from the other beta's distribution
        other = p[betas[1 - k]]
        assert 0.5 * (emp - other).abs().sum().item() > tv_bound(other, per_beta)


# -- a unit family that owns parameters ------------------------------------------------------------
class CostlyBernoulli(Bernoulli):
    """Test family: 0/1 units whose base measure charges a learned cost per unit that is on,
    ``base(s) = cost·s``, so that p(s=1 | t) = sigmoid(beta t - cost) (beta scales the field and
    not the base) and logpart = sum softplus(beta t - cost). It refuses to work without its
    parameter, so a caller that forgets to pass ``params`` fails loudly."""

    name = "costly_bernoulli"

    def init_parameters(self, n_units, dtype=torch.float32, device=None):
        return {"cost": torch.zeros(n_units, dtype=dtype, device=device)}

    @staticmethod
    def _cost(params):
        if params is None or "cost" not in params:
            raise ValueError("params: costly_bernoulli units need their 'cost' parameter")
        return params["cost"]

    def mean(self, field, beta=1.0, *, params=None):
        return torch.sigmoid(field * beta - self._cost(params))

    def log_partition(self, field, beta=1.0, *, params=None):
        return F.softplus(field * beta - self._cost(params)).sum(-1)

    def base(self, s, *, params=None):
        return s @ self._cost(params)


@pytest.fixture
def costly():
    """CostlyBernoulli registered under its name (so that a model file can name it)."""
    register_units("costly_bernoulli", CostlyBernoulli)
    yield
    unregister_units("costly_bernoulli")


def costly_rbm(seed=0):
    m = random_rbm(5, 3, "costly_bernoulli", CostlyBernoulli(), seed=seed)
    with torch.no_grad():
        m.visible_cost.normal_(0, 0.5, generator=gen(seed + 20))
        m.hidden_cost.normal_(0, 0.5, generator=gen(seed + 21))
    return m


def binary_rows(n, width, seed=1):
    """``(n, width)`` random 0/1 rows, float64."""
    return (torch.rand(n, width, generator=gen(seed), dtype=torch.float64) < 0.5).double()


def test_family_parameters_are_registered_and_reach_the_family(costly):
    m = costly_rbm()
    named = dict(m.named_parameters())
    assert sorted(named) == ["hidden_bias", "hidden_cost", "visible_bias", "visible_cost", "weight"]
    assert named["visible_cost"].shape == (5,) and named["hidden_cost"].shape == (3,)
    assert m.hidden_params["cost"] is m.hidden_cost and m.visible_params["cost"] is m.visible_cost
    assert RBM(5, 3).hidden_params is None and RBM(5, 3).visible_params is None
    v = binary_rows(6, 5)
    field = m.hidden_field(v)
    assert torch.allclose(m.hidden_mean(v), torch.sigmoid(field - m.hidden_cost))
    # the energy (base terms with the costs) and the free energy (log-partition with them) agree
    hs = m.hidden.states(3, dtype=torch.float64)
    e = torch.stack([m.energy(v, h.expand(6, -1)) for h in hs], 1)
    assert torch.allclose(m.free_energy(v), -torch.logsumexp(-e, 1), atol=1e-12)
    beta = torch.tensor([0.0, 0.5, 1.0, 1.0, 2.0, 0.3], dtype=torch.float64)
    assert torch.allclose(m.free_energy(v, beta), torch.stack(
        [m.free_energy(v, b.item())[i] for i, b in enumerate(beta)]), atol=1e-12)
    # the sampler hands the parameters over too (the family raises without them)
    state = gibbs.step(m, gibbs.init(m, v, gen(1)), gen(2))
    assert torch.equal(gibbs.init(m, state.visible, gen(3)).hidden_mean,
                       m.hidden_mean(state.visible))
    assert m.config()["visible"] == "costly_bernoulli"


def test_family_parameters_get_gradients_through_the_free_energy(costly):
    m = costly_rbm()
    v = binary_rows(6, 5)
    beta = torch.tensor([0.5, 1.0, 1.0, 2.0, 0.3, 1.5], dtype=torch.float64)
    m.free_energy(v, beta).sum().backward()
    # F(v) = v·c_v - beta v·a - sum_j softplus(beta t_j - c_h,j): dF/dc_v = v, dF/dc_h =
    # sigmoid(beta t - c_h), summed over the rows
    assert torch.allclose(m.visible_cost.grad, v.sum(0))
    want = torch.sigmoid(beta[:, None] * m.hidden_field(v) - m.hidden_cost).sum(0).detach()
    assert torch.allclose(m.hidden_cost.grad, want)
    assert (m.hidden_cost.grad.abs() > 0).all()


def test_family_parameters_survive_a_save_load_round_trip(costly, tmp_path):
    m = costly_rbm()
    path = tmp_path / "m.safetensors"
    boltzkit.save(m, path)
    assert boltzkit.io.read_metadata(path)["config"]["hidden"] == "costly_bernoulli"
    m2 = boltzkit.load(path)
    assert isinstance(m2.visible, CostlyBernoulli) and isinstance(m2.hidden, CostlyBernoulli)
    assert sorted(m2.state_dict()) == sorted(m.state_dict())
    for k, t in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], t), k
    v = binary_rows(4, 5)
    assert torch.equal(m2.free_energy(v), m.free_energy(v))
    # a process that has not registered the family cannot rebuild it, and says why
    unregister_units("costly_bernoulli")
    try:
        with pytest.raises(ValueError, match="invalid configuration.*units: expected one of"):
            boltzkit.load(path)
    finally:
        register_units("costly_bernoulli", CostlyBernoulli)


def test_family_parameter_names_must_not_clash():
    class Clashing(Bernoulli):
        def init_parameters(self, n_units, dtype=torch.float32, device=None):
            return {"bias": torch.zeros(n_units, dtype=dtype, device=device)}

    with pytest.raises(ValueError, match="hidden: .*'hidden_bias', a name the RBM already uses"):
        RBM(4, 3, hidden=Clashing())



def test_layers_too_large_to_count_have_infinitely_many_states():
    """2 ** 1024 overflows a float: such layers count as inf states (never enumerable), so
    choosing exact or AIS for a 784x1024 RBM does not crash."""
    from boltzkit.exact.rbm import can_enumerate, enumerable_layer
    from boltzkit.units import get_units

    assert get_units("bernoulli").n_states(1100) == math.inf
    assert get_units("spin").n_states(2048) == math.inf
    assert get_units("softmax:2").n_states(2048) == math.inf
    assert get_units("bernoulli").n_states(10) == 1024.0
    model = RBM(784, 1024)
    assert enumerable_layer(model) is None and not can_enumerate(model)
