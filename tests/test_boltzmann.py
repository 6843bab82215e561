"""Fully connected Boltzmann machine: model, exact enumeration, sequential Gibbs, learning rule.

Statistical tests compare samples with exact enumeration on machines of about 10 units, with
fixed seeds and bounds derived from the sample size (see ``chi_square`` and the gradient test).
"""

import math

import pytest
import torch

import boltzkit
from boltzkit.exact import boltzmann as ex
from boltzkit.models.boltzmann import BoltzmannMachine
from boltzkit.samplers import sequential as sq
from boltzkit import training as tb
from boltzkit.training import SGD, SignStep

chi2 = pytest.importorskip("scipy.stats").chi2


def make_bm(nv=4, nh=6, units="bernoulli", std=0.8, seed=0, dtype=torch.float32, **kw):
    g = torch.Generator().manual_seed(seed)
    bm = BoltzmannMachine(nv, nh, units, init_std=std, generator=g, dtype=dtype, **kw)
    with torch.no_grad():
        bm.bias.normal_(0.0, 0.5, generator=g)
    return bm


def chi_square(counts, probs, alpha=1e-6):
    """Pearson's statistic of ``counts`` (N independent draws) against ``probs`` and the
    ``1 - alpha`` quantile of its null distribution.

    Cells expected fewer than 5 times are pooled into one cell, so that every cell meets the
    usual condition for the χ² approximation; the statistic then has about df = cells - 1
    degrees of freedom. A correct sampler exceeds the quantile with probability ≈ alpha
    (1e-6: the test fails by chance about once in a million runs; the seeds are fixed anyway).
    """
    counts = counts.double()
    expected = probs.double() * counts.sum()
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum().reshape(1)])
    exp = torch.cat([expected[big], expected[~big].sum().reshape(1)])
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    stat = float(((obs - exp) ** 2 / exp).sum())
    return stat, float(chi2.isf(alpha, len(exp) - 1))


# -- model ------------------------------------------------------------------------------------
def test_weights_symmetric_masked_and_constrained():
    bm = make_bm(3, 4, hidden_hidden=False, visible_visible=False)
    w = bm.weight.detach()
    assert torch.equal(w, w.t())
    assert torch.all(w.diagonal() == 0)
    assert torch.all(w[:3, :3] == 0) and torch.all(w[3:, 3:] == 0)
    assert torch.all(w[:3, 3:] != 0)
    with torch.no_grad():
        bm.weight.add_(torch.randn(7, 7))
    bm.constrain_()
    w = bm.weight.detach()
    assert torch.equal(w, w.t()) and torch.all(w.diagonal() == 0)
    assert torch.all(w[:3, :3] == 0) and torch.all(w[3:, 3:] == 0)


def test_energy_and_field_formulas():
    bm = make_bm(3, 2, "spin")
    s = sq.random_states(bm, 5, torch.Generator().manual_seed(1))
    w, b = bm.weight.detach(), bm.bias.detach()
    e = torch.stack([-(0.5 * r @ w @ r + b @ r) for r in s])
    torch.testing.assert_close(bm.energy(s).detach(), e)
    # the field is the energy gap between a unit off and on (divided by 2 for spins)
    i = 2
    on, off = s.clone(), s.clone()
    on[:, i], off[:, i] = 1.0, -1.0
    gap = (bm.energy(off) - bm.energy(on)).detach()
    torch.testing.assert_close(gap, 2 * bm.field(s)[:, i].detach())


def test_save_load_round_trip_keeps_custom_connectivity(tmp_path):
    c = torch.zeros(5, 5, dtype=torch.bool)
    c[0, 3] = c[3, 0] = c[1, 4] = c[4, 1] = c[0, 1] = c[1, 0] = True
    bm = BoltzmannMachine(3, 2, connectivity=c, init_std=0.5, temperature=2.0,
                          generator=torch.Generator().manual_seed(0))
    path = boltzkit.save(bm, tmp_path / "bm.safetensors")
    back = boltzkit.load(path)
    assert isinstance(back, BoltzmannMachine) and back.temperature == 2.0
    assert torch.equal(back.mask, bm.mask) and torch.equal(back.weight, bm.weight)
    assert torch.equal(back.mask.bool(), c)


@pytest.mark.parametrize("kwargs, match", [
    ({"units": "gaussian"}, "units"),
    ({"temperature": 0.0}, "temperature"),
    ({"temperature": float("nan")}, "temperature"),
    ({"connectivity": torch.ones(3, 3, dtype=torch.bool)}, "connectivity"),
    ({"connectivity": torch.triu(torch.ones(5, 5, dtype=torch.bool))}, "symmetric"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BoltzmannMachine(3, 2, **kwargs)


def test_bad_states():
    bm = make_bm(3, 2)
    with pytest.raises(ValueError, match="states"):
        sq.init(bm, torch.zeros(4, 6))
    with pytest.raises(ValueError, match="states"):
        sq.init(bm, torch.full((4, 5), 0.5))
    with pytest.raises(ValueError, match="states"):
        sq.init(bm, torch.full((4, 5), float("nan")))
    st = sq.init(bm, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="order"):
        sq.step(bm, st, order="sideways")
    with pytest.raises(ValueError, match="clamp"):
        sq.step(bm, st, clamp=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="schedule"):
        sq.anneal(bm, st, [(10.0, 2), (-1.0, 3)])
    with pytest.raises(ValueError, match="data"):
        tb.fit(bm, torch.full((4, 3), 0.5))
    with pytest.raises(ValueError, match="data"):
        tb.fit(bm, torch.zeros(4, 2))


# -- exact enumeration --------------------------------------------------------------------------
def test_exact_helpers_are_consistent():
    bm = make_bm(4, 3, dtype=torch.float64)
    p = ex.distribution(bm)
    assert abs(float(p.sum()) - 1) < 1e-12
    states = ex.all_states(bm)
    assert torch.equal(ex.state_index(states), torch.arange(2 ** 7))
    # p(v) summed over every visible configuration is 1
    v = bm.units.states(4, dtype=torch.float64)
    assert abs(float(ex.log_likelihood(bm, v).exp().sum()) - 1) < 1e-12
    # log p(v) = log sum_h p(v, h)
    pv = p.reshape(2 ** 3, 2 ** 4).sum(0)  # state number = v + 16 h: rows h, columns v
    torch.testing.assert_close(ex.log_likelihood(bm, v).exp(), pv)
    # clamped expectations over all v weighted by p(v) are the free expectations
    ss, es = ex.pair_expectations(bm)
    css = sum(pv[k] * ex.clamped_pair_expectations(bm, v[k:k + 1])[0] for k in range(16))
    torch.testing.assert_close(css, ss)


# -- sequential Gibbs ---------------------------------------------------------------------------
@pytest.mark.parametrize("units", ["bernoulli", "spin"])
@pytest.mark.parametrize("order", ["fixed", "random"])
@pytest.mark.parametrize("clamp", [None, "visible", "mask"])
def test_blocked_sweep_equals_one_unit_at_a_time(units, order, clamp):
    """With the same random numbers the blocked sweep gives exactly the naive sweep's states
    (float64, so that no rounding difference decides a comparison)."""
    bm = make_bm(5, 8, units, std=0.7, dtype=torch.float64)
    if clamp == "mask":
        clamp = torch.tensor([True, False, False] * 4 + [False])
    st = sq.init(bm, sq.random_states(bm, 40, torch.Generator().manual_seed(3)))
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a = b = st
    for _ in range(4):
        a = sq.step(bm, a, g1, clamp=clamp, order=order, block_size=5, temperature=0.8)
        b = sq.naive_step(bm, b, g2, clamp=clamp, order=order, block_size=5, temperature=0.8)
        assert torch.equal(a.states, b.states)
    torch.testing.assert_close(a.fields, bm.field(a.states).detach())
    assert not torch.equal(a.states, st.states)


def test_blocked_sweep_on_a_stack_of_machines_equals_naive():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 9, 9, generator=g, dtype=torch.float64)
    w = (w + w.transpose(1, 2)) * 0.5
    w.diagonal(dim1=1, dim2=2).zero_()

    class Stack:
        weight, bias = w, torch.randn(3, 9, generator=g, dtype=torch.float64)
        units, temperature = boltzkit.Bernoulli(), 1.5

    s0 = (torch.rand(3, 20, 9, generator=g) < 0.5).double()
    st = sq.init(Stack, s0)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    a = sq.step(Stack, st, g1, order="random", block_size=4)
    b = sq.naive_step(Stack, st, g2, order="random", block_size=4)
    assert torch.equal(a.states, b.states)


def _sample(bm, n_chains, sweeps, seed, **kw):
    g = torch.Generator().manual_seed(seed)
    st = sq.init(bm, sq.random_states(bm, n_chains, g))
    return sq.run(bm, st, sweeps, g, **kw).states


@pytest.mark.parametrize("units, order, temperature", [
    ("bernoulli", "random", 1.0), ("spin", "random", 1.0), ("spin", "probes", 2.5),
    pytest.param("bernoulli", "fixed", 2.5, marks=pytest.mark.slow),
    pytest.param("bernoulli", "probes", 1.0, marks=pytest.mark.slow)])
def test_gibbs_reproduces_exact_distribution(units, order, temperature):
    """20000 independent chains of a 10-unit machine, 25 sweeps each from random states; the
    final states' histogram over the 1024 states must pass a χ² test against the exact
    distribution, and must fail it against the distribution at a 20% different temperature
    (so the test has the power to see a wrong sampler). Spin weights are drawn smaller: with ±1
    values the same weights make energy gaps four times as large, and mixing in 25 sweeps slow."""
    bm = make_bm(4, 6, units, std=0.8 if units == "bernoulli" else 0.35)
    s = _sample(bm, 20000, 25, seed=11, temperature=temperature, order=order, block_size=4)
    counts = torch.bincount(ex.state_index(s, bm.values), minlength=1024)
    stat, limit = chi_square(counts, ex.distribution(bm, temperature))
    assert stat < limit, (stat, limit)
    stat_wrong, _ = chi_square(counts, ex.distribution(bm, temperature * 1.2))
    assert stat_wrong > limit, (stat_wrong, limit)


@pytest.mark.parametrize("units", ["bernoulli", "spin"])
def test_gibbs_with_clamped_visible_units_reproduces_conditional(units):
    """Visible units clamped to three patterns (6000 chains each); the hidden states' histogram
    passes a χ² test against the exact p(h | v) at T=1.5."""
    bm = make_bm(4, 6, units, std=0.8 if units == "bernoulli" else 0.35, seed=2)
    lo, hi = bm.values
    v = torch.tensor([[hi, lo, hi, lo], [lo, lo, lo, lo], [hi, hi, lo, hi]])
    g = torch.Generator().manual_seed(5)
    vv = v.repeat_interleave(6000, 0)
    st = sq.init(bm, sq.states_with_visible(bm, vv, g))
    s = sq.run(bm, st, 25, g, clamp="visible", temperature=1.5, block_size=4).states
    assert torch.equal(s[:, :4], vv)
    cond = ex.conditional_distribution(bm, v, 1.5)
    for k in range(3):
        h = s[k * 6000:(k + 1) * 6000, 4:]
        counts = torch.bincount(ex.state_index(h, bm.values), minlength=64)
        stat, limit = chi_square(counts, cond[k])
        assert stat < limit, (k, stat, limit)


def test_probe_sampler_on_a_stack_matches_each_machine():
    """The 'probes' order on a stack of two machines samples each machine's own distribution."""
    bms = [make_bm(3, 5, std=0.9, seed=k) for k in range(2)]

    class Stack:
        weight = torch.stack([b.weight.detach() for b in bms])
        bias = torch.stack([b.bias.detach() for b in bms])
        units, temperature = boltzkit.Bernoulli(), 1.0

    g = torch.Generator().manual_seed(8)
    st = sq.init(Stack, sq.random_states(Stack, 10000, g))
    s = sq.run(Stack, st, 25, g, order="probes").states
    for k, bm in enumerate(bms):
        counts = torch.bincount(ex.state_index(s[k]), minlength=256)
        stat, limit = chi_square(counts, ex.distribution(bm))
        assert stat < limit, (k, stat, limit)


def test_anneal_runs_schedule_and_ends_at_last_temperature():
    bm = make_bm(4, 6, std=0.8, seed=3)
    g = torch.Generator().manual_seed(1)
    seen = []
    st = sq.init(bm, sq.random_states(bm, 20000, g))
    st = sq.anneal(bm, st, [(20.0, 2), (5.0, 3), (1.0, 20)], g,
                   callback=lambda s, t: seen.append(t))
    assert seen == [20.0] * 2 + [5.0] * 3 + [1.0] * 20
    counts = torch.bincount(ex.state_index(st.states), minlength=1024)
    stat, limit = chi_square(counts, ex.distribution(bm, 1.0))
    assert stat < limit


def test_mean_field_is_exact_without_hidden_hidden_connections():
    """With no hidden-hidden weights the hidden units are independent given v, so the mean-field
    fixed point is the exact E[h | v] = σ((b + v W) / T)."""
    bm = make_bm(5, 4, std=0.8, hidden_hidden=False, temperature=2.0)
    v = (torch.rand(7, 5, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    s0 = torch.cat([v, torch.full((7, 4), 0.5)], 1)
    mu = sq.mean_field(bm, s0, clamp="visible")
    exact = torch.sigmoid(bm.field(torch.cat([v, torch.zeros(7, 4)], 1))[:, 5:] / 2.0)
    torch.testing.assert_close(mu[:, 5:], exact.detach(), atol=1e-5, rtol=0)
    assert torch.equal(mu[:, :5], v)


# -- learning -----------------------------------------------------------------------------------
def _log_likelihood_by_hand(u, b, v, nh, t):
    """Mean log p(v) with W = U + Uᵀ (U strictly upper triangular), every sum enumerated."""
    w = torch.triu(u, 1) + torch.triu(u, 1).t()
    n = w.shape[0]
    k = torch.arange(2 ** n)
    s = ((k[:, None] >> torch.arange(n)) & 1).double()
    e = -(0.5 * ((s @ w) * s).sum(1) + s @ b)
    log_z = torch.logsumexp(-e / t, 0)
    hk = ((torch.arange(2 ** nh)[:, None] >> torch.arange(nh)) & 1).double()
    vs = torch.cat([v[:, None, :].expand(-1, 2 ** nh, -1), hk[None].expand(v.shape[0], -1, -1)],
                   -1)
    ev = -(0.5 * ((vs @ w) * vs).sum(-1) + vs @ b)
    return (torch.logsumexp(-ev / t, -1) - log_z).mean()


def test_exact_gradient_is_the_derivative_of_the_log_likelihood():
    bm = make_bm(4, 3, dtype=torch.float64, temperature=1.7)
    v = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)
    grad, _ = tb.ExactGradient()(bm, v)
    u = bm.weight.detach().clone().requires_grad_(True)
    b = bm.bias.detach().clone().requires_grad_(True)
    ll = _log_likelihood_by_hand(u, b, v, 3, 1.7)
    torch.testing.assert_close(ll.detach(), ex.log_likelihood(bm, v).mean())
    (-ll).backward()
    torch.testing.assert_close(torch.triu(grad["weight"], 1), torch.triu(u.grad, 1))
    torch.testing.assert_close(grad["bias"], b.grad)
    torch.testing.assert_close(grad["weight"], grad["weight"].t())


def test_two_phase_estimate_matches_exact_gradient():
    """Long sampling: 2000 chains per example in the positive phase (4 examples, so 8000
    chains) and 8000 fresh negative chains, 30 settling sweeps, statistics from each chain's
    final state only, so every statistic is a mean of N = 8000 independent values in [0, 1]
    (0/1 units: products of units are 0/1). Each mean has standard deviation <= 1/(2 sqrt N);
    the difference of the two phases' means <= sqrt(2) / (2 sqrt N) = 0.0079. With 55 numbers
    (the 45 tied weights of 10 units and the 10 biases), a deviation beyond 5 standard
    deviations (normal approximation) has probability < 55 * 6e-7; the bound is 5 of them."""
    bm = make_bm(4, 6, std=0.6, seed=4)
    v = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 1, 1, 0]], dtype=torch.float32)
    est = tb.TwoPhase(positive_settle=30, positive_collect=1, negative_settle=30,
                      negative_collect=1, persistent=False, n_chains=8000,
                      chains_per_example=2000, block_size=4)
    grad, _ = est(bm, v, None, torch.Generator().manual_seed(6))
    exact, _ = tb.ExactGradient()(bm, v)
    bound = 5 * math.sqrt(2) / (2 * math.sqrt(8000))
    iu = torch.triu_indices(10, 10, 1)
    dev_w = (grad["weight"] - exact["weight"])[iu[0], iu[1]].abs().max().item()
    dev_b = (grad["bias"] - exact["bias"]).abs().max().item()
    assert dev_w < bound and dev_b < bound, (dev_w, dev_b, bound)
    # the exact gradient is not small compared to the bound: the test can tell them apart
    assert exact["weight"].abs().max() > 3 * bound


def test_exact_updates_raise_the_likelihood():
    bm = make_bm(4, 3, std=0.1, seed=5)
    v = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 1]] * 5,
                     dtype=torch.float32)
    ll0 = float(ex.log_likelihood(bm, v).mean())
    state = tb.fit(bm, v, estimator=tb.ExactGradient(), epochs=15, batch_size=20, lr=0.5,
                   update=SGD(momentum=0.0), init_visible_bias=False)
    lls = [h["exact_loglik"] for h in state.history]
    assert all(b >= a - 1e-6 for a, b in zip([ll0] + lls, lls))  # full-batch steps never fall
    assert lls[-1] > ll0 + 0.3


def test_two_phase_learning_raises_the_likelihood():
    """Persistent chains, a few sweeps per phase, proportional updates: the exact likelihood of
    the training data rises well above its starting value (entropy of 4 patterns ~ -1.39)."""
    bm = make_bm(4, 3, std=0.1, seed=6)
    v = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1]] * 25,
                     dtype=torch.float32)
    ll0 = float(ex.log_likelihood(bm, v).mean())
    est = tb.TwoPhase(positive_settle=2, positive_collect=2, negative_settle=2,
                      negative_collect=2, n_chains=100, block_size=4)
    state = tb.fit(bm, v, estimator=est, epochs=30, batch_size=50, lr=0.1,
                   update=SGD(momentum=0.5), init_visible_bias=False,
                   generator=torch.Generator().manual_seed(0))
    final = state.history[-1]["exact_loglik"]
    assert final > ll0 + 0.8, (ll0, final)


def test_mean_field_positive_phase_and_sign_rule_run():
    bm = make_bm(4, 3, std=0.1, seed=7)
    v = torch.tensor([[1, 0, 1, 0], [0, 1, 0, 1]] * 10, dtype=torch.float32)
    est = tb.TwoPhase(mean_field=True, negative_settle=3, negative_collect=2, block_size=4)
    ll0 = float(ex.log_likelihood(bm, v).mean())
    state = tb.fit(bm, v, estimator=est, epochs=20, batch_size=20, update=SignStep(), lr=0.05,
                   init_visible_bias=False, generator=torch.Generator().manual_seed(1))
    assert state.history[-1]["exact_loglik"] > ll0 + 0.3
    w = bm.weight.detach()
    assert torch.equal(w, w.t()) and torch.all(w.diagonal() == 0)

