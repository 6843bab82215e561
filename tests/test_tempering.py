"""Parallel tempering, against exact computation on RBMs small enough to enumerate.

The test model is strongly bimodal: 10 visible units, 1 hidden unit, weights 6, visible biases
-3, hidden bias -30. It is an equal mixture of two product distributions: with h = 0 each
visible unit is on with probability sigmoid(-3) ~ 0.05, with h = 1 with sigmoid(3) ~ 0.95. Plain
block Gibbs started in the first mode stays there: h turns on only once five or more visible
units are on at once (p(h = 1 | v) = sigmoid(6 k - 30) for k units on), about 6e-5 per sweep.
"""

import math

import pytest
import torch

from boltzkit import RBM
from boltzkit.exact import rbm as exact
from boltzkit.samplers import gibbs, tempering
from boltzkit.training import PCD, PT, SGD, fit

from .conftest import gen
from .test_rbm import histogram, random_rbm, tv_bound


def bimodal():
    m = RBM(10, 1, dtype=torch.float64)
    with torch.no_grad():
        m.weight.fill_(6.0)
        m.visible_bias.fill_(-3.0)
        m.hidden_bias.fill_(-30.0)
    return m


def tempered_distribution(m, beta):
    """Exact p_beta(v) over every visible state: p_beta(v) ∝ exp(-F_beta(v))."""
    states = m.visible.states(m.n_visible, dtype=m.weight.dtype)
    return states, torch.softmax(-m.free_energy(states, beta), 0)


def joint_states(m):
    """Every (v, h) of a binary RBM, and u(v, h) = v·a + h·b + vᵀWh."""
    n = m.n_visible + m.n_hidden
    codes = torch.arange(2 ** n)
    bits = ((codes[:, None] >> torch.arange(n)) & 1).to(m.weight.dtype)
    v, h = bits[:, :m.n_visible], bits[:, m.n_visible:]
    u = v @ m.visible_bias + h @ m.hidden_bias + ((v @ m.weight) * h).sum(1)
    return v, h, u


def test_the_bimodal_model_is_bimodal_and_gibbs_does_not_leave_a_mode():
    m = bimodal()
    states, p = tempered_distribution(m, 1.0)
    low = p[states.sum(1) <= 4].sum().item()
    assert low == pytest.approx(0.5, abs=1e-3)
    g = gen(0)
    state = gibbs.run(m, gibbs.init(m, torch.zeros(2000, 10, dtype=torch.float64), g), 300, g)
    assert (state.visible.sum(1) >= 5).float().mean().item() < 0.05


def test_every_replica_follows_its_tempered_distribution_and_plain_gibbs_does_not():
    m = bimodal()
    betas = tempering.ladder(6, dtype=torch.float64)
    n = 5000  # independent chains per replica (chains interact only with their own index)
    g = gen(1)
    start = torch.zeros(n, 10, dtype=torch.float64)  # every chain in the "all off" mode
    state = tempering.init(m, start, betas, g)
    for _ in range(300):
        state, _ = tempering.step(m, state, g)
    for r, beta in enumerate(betas.tolist()):
        states, p = tempered_distribution(m, beta)
        got = histogram(state.visible[r * n:(r + 1) * n], states)
        tv = 0.5 * (got - p).abs().sum().item()
        assert tv < tv_bound(p, n), (r, beta, tv)
    # plain Gibbs from the same start, as many sweeps: stuck in the first mode
    states, p = tempered_distribution(m, 1.0)
    plain = gibbs.run(m, gibbs.init(m, start, g), 300, g)
    tv_gibbs = 0.5 * (histogram(plain.visible, states) - p).abs().sum().item()
    assert tv_gibbs > 0.4 > 2 * tv_bound(p, n)


def test_swap_acceptance_matches_the_exact_formula():
    """Chains drawn exactly from p_1 and p_0.55 (by enumeration) try one swap each: the fraction
    accepted matches E[min(1, exp((b0 - b1)(u(y) - u(x))))], x ~ p_b0, y ~ p_b1, within five
    standard errors of a mean of n Bernoulli draws."""
    m = random_rbm(5, 2, scale=1.0, seed=5).double()
    b0, b1 = 1.0, 0.55
    v, h, u = joint_states(m)
    p0, p1 = torch.softmax(b0 * u, 0), torch.softmax(b1 * u, 0)
    ratio = torch.exp((b0 - b1) * (u[None, :] - u[:, None])).clamp(max=1.0)  # [x, y]
    expected = (p0[:, None] * p1[None, :] * ratio).sum().item()
    n = 40000
    g = gen(2)
    ix, iy = torch.multinomial(p0, n, True, generator=g), torch.multinomial(p1, n, True,
                                                                              generator=g)
    rows = torch.cat([ix, iy])
    vv, hh = v[rows], h[rows]
    field = m.hidden_field(vv)
    betas = torch.tensor([b0, b1], dtype=torch.float64)
    state = tempering.PTState(vv, hh, m.hidden_mean(vv, check=False),
                              tempering._coupling(m, vv, hh, field), betas,
                              torch.zeros((), dtype=torch.int64), torch.zeros(1, dtype=torch.float64),
                              torch.zeros(1, dtype=torch.float64))
    new, info = tempering.step(m, state, g)
    rate = info.accepted.item() / info.attempted.item()
    assert info.attempted.item() == n
    assert abs(rate - expected) < 5 * math.sqrt(expected * (1 - expected) / n), (rate, expected)
    assert tempering.acceptance(new).item() == rate
    # odd step: with two replicas there is no odd pair, nothing is tried
    _, info2 = tempering.step(m, new, g)
    assert info2.attempted.item() == 0


def test_swaps_alternate_between_even_and_odd_pairs():
    m = random_rbm(4, 3, seed=1)
    state = tempering.init(m, torch.zeros(7, 4), tempering.ladder(5), gen(0))
    state, info = tempering.step(m, state, gen(1))
    assert info.attempted.tolist() == [7, 0, 7, 0]
    state, info = tempering.step(m, state, gen(1))
    assert info.attempted.tolist() == [0, 7, 0, 7]
    assert state.attempted.tolist() == [7, 7, 7, 7] and int(state.step) == 2


def test_adapt_ladder_equalises_rejections():
    b = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], dtype=torch.float64)
    # equal acceptance: the ladder stays
    assert torch.allclose(tempering.adapt_ladder(b, torch.full((4,), 0.6)), b)
    # the pair nearest beta = 1 rejects most: rungs move towards it, the ends stay
    new = tempering.adapt_ladder(b, torch.tensor([0.1, 0.7, 0.9, 0.95]))
    assert new[0] == 1 and new[-1] == 0 and (new[1:] < new[:-1]).all()
    assert new[1] > 0.75 and (new[0] - new[1]) < (new[-2] - new[-1])
    # on the new ladder the (linearly interpolated) barrier increments are equal
    reject = 1 - torch.tensor([0.1, 0.7, 0.9, 0.95], dtype=torch.float64)
    lam = torch.cat([torch.zeros(1, dtype=torch.float64), reject.flip(0).cumsum(0)])
    x = b.flip(0)
    levels = torch.tensor([float(torch.tensor(_interp(x, lam, t))) for t in new.flip(0)])
    steps = levels[1:] - levels[:-1]
    assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-9)
    # unmeasured pairs (NaN) count as the mean; bad input is named
    assert (tempering.adapt_ladder(b, torch.tensor([float("nan"), 0.5, 0.5, 0.5]))[1:] <
            tempering.adapt_ladder(b, torch.tensor([float("nan"), 0.5, 0.5, 0.5]))[:-1]).all()
    with pytest.raises(ValueError, match="rates"):
        tempering.adapt_ladder(b, torch.ones(3))
    with pytest.raises(ValueError, match="betas"):
        tempering.adapt_ladder([1.0, 1.0, 0.0], torch.ones(2))


def _interp(x, y, t):
    for i in range(len(x) - 1):
        if x[i] <= t <= x[i + 1]:
            return float(y[i] + (t - x[i]) / (x[i + 1] - x[i]) * (y[i + 1] - y[i]))
    raise AssertionError(t)


def test_pt_sampling_with_adaptation_keeps_the_target():
    m = bimodal()
    g = gen(3)
    state, ladders = tempering.sample(m, 3000, 400, tempering.ladder(5, dtype=torch.float64), g,
                                      start=torch.zeros(3000, 10, dtype=torch.float64),
                                      adapt_steps=200, adapt_every=50)
    assert len(ladders) == 5 and ladders[-1][0] == 1 and ladders[-1][-1] == 0
    states, p = tempered_distribution(m, 1.0)
    tv = 0.5 * (histogram(state.visible[:3000], states) - p).abs().sum().item()
    assert tv < tv_bound(p, 3000)


def test_pt_statistics_match_the_exact_gradient_where_pcd_is_stuck():
    """On the bimodal model, the negative statistics of PT chains match the exact model
    expectations within five standard errors; PCD's chains, started in one mode, do not."""
    m = bimodal()
    vh, ev, eh = exact.expected_statistics(m)
    data = torch.zeros(20000, 10, dtype=torch.float64)  # every chain starts in the "all off" mode
    g = gen(4)
    results = {}
    for name, est in (("pt", PT(k=200, n_chains=20000, replicas=6, adapt_every=None)),
                      ("pcd", PCD(k=200, n_chains=20000))):
        stats, _ = est.statistics(m, data[:10], est.init_state(m, data, g), g)
        results[name] = stats.v_neg.mean(0), stats.v_neg.std(0) / math.sqrt(20000)
    mean, se = results["pt"]
    assert ((mean - ev).abs() < 5 * se + 1e-12).all(), (mean, ev)
    mean, se = results["pcd"]
    assert ((mean - ev).abs() > 0.4).all()


def test_pt_trains_through_fit_and_records_its_ladder():
    m = random_rbm(12, 6, seed=0).float()
    data = (torch.rand(200, 12, generator=gen(5)) < 0.3).float()
    est = PT(1, n_chains=20, replicas=4, adapt_every=5)
    state = fit(m, data, estimator=est, update=SGD(0.5), epochs=3, batch_size=20, lr=0.05,
                generator=gen(6), progress=False)
    pt = state.estimator_state
    assert isinstance(pt, tempering.PTState) and pt.visible.shape == (80, 12)
    assert int(pt.step) == 30 and pt.betas[0] == 1 and pt.betas[-1] == 0
    assert not torch.allclose(pt.betas, tempering.ladder(4))  # adapted
    assert state.history[-1]["epoch"] == 3


def test_bad_arguments_are_named():
    m = random_rbm(4, 3)
    for bad, match in (([1.0], "betas"), ([0.9, 0.5], "betas"), ([1.0, 0.5, 0.7], "betas"),
                       ([1.0, -0.1], "betas"), ([1.0, float("nan")], "betas"), ("x", "betas")):
        with pytest.raises(ValueError, match=match):
            tempering.init(m, torch.zeros(3, 4), bad)
    with pytest.raises(ValueError, match="replicas"):
        tempering.ladder(1)
    with pytest.raises(ValueError, match="replicas"):
        PT(replicas=1)
    with pytest.raises(ValueError, match="replicas"):
        PT(replicas=3, betas=[1.0, 0.5])
    with pytest.raises(ValueError, match="adapt_every"):
        PT(adapt_every=0)
    with pytest.raises(ValueError, match="state"):
        tempering.step(m, gibbs.init(m, torch.zeros(3, 4)), gen(0))
    with pytest.raises(ValueError, match="visible"):
        tempering.init(m, torch.full((3, 4), 2.0), tempering.ladder(3))


def test_sample_command_with_parallel_tempering(tmp_path, capsys):
    from boltzkit import save
    from boltzkit.cli import main

    m = bimodal().float()
    save(m, tmp_path / "m.safetensors")
    out = tmp_path / "s.npy"
    assert main(["sample", str(tmp_path / "m.safetensors"), "--method", "pt", "--replicas", "6",
                 "--n", "400", "--steps", "400", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "swap acceptance" in printed
    import numpy as np

    v = torch.from_numpy(np.load(out))
    # both modes are found (plain Gibbs from the base measure's draw would stay in the first one
    # it falls into, chain by chain, but here every chain must be able to cross)
    high = (v.sum(1) >= 5).float().mean().item()
    assert 0.4 < high < 0.6
    assert main(["sample", str(tmp_path / "m.safetensors"), "--replicas", "4", "--out",
                 str(out)]) == 2
    assert "--replicas: only with --method pt" in capsys.readouterr().err
