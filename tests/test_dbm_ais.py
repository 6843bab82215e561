"""The DBM's likelihood machinery against exact enumeration: the path of distributions at every
temperature, the tempered sweep's invariance, forward and reverse AIS on both sides of the exact
log Z (also on a DBM built to trap a base with fair-coin hidden units), and the per-row
estimates (importance sampling, RAISE)."""

import math

import pytest
import torch

from boltzkit import DBM
from boltzkit.evaluation import dbm as evaluation
from boltzkit.exact import dbm as exact

from .conftest import gen
from .test_dbm import all_states, random_dbm
from .test_rbm import histogram, tv_bound


def odd_layers(m):
    """Every joint state of the odd layers of ``m`` as a layer list (even layers zero), and the
    odd states side by side ``(S, n_odd)``."""
    odd = [l for l in range(m.n_layers) if l % 2]
    flat = all_states(sum(m.sizes[l] for l in odd))
    parts = dict(zip(odd, torch.split(flat, [m.sizes[l] for l in odd], 1)))
    layers = [parts.get(l, torch.zeros(flat.shape[0], n, dtype=torch.float64))
              for l, n in enumerate(m.sizes)]
    return layers, flat


def brute_log_z(m, base, beta):
    """log sum_x exp(-E_β(x)) over every joint state, E_β = (1 - β) E_A + β E_B with E_A the
    base model's energy -sum_l a_l·x_l, straight from the DBM's energy."""
    xs = list(torch.split(all_states(sum(m.sizes)), list(m.sizes), 1))
    e_b = m.energy(xs, check=False)
    e_a = -sum(x @ a for x, a in zip(xs, base))
    return torch.logsumexp(-((1 - beta) * e_a + beta * e_b), 0).item()


def exact_samples(m, n, g):
    """``n`` exact draws of every layer of ``m``: the odd layers from their exact marginal,
    the even ones given them."""
    layers, flat = odd_layers(m)
    p = torch.softmax(evaluation.log_f(m, layers), 0)
    idx = torch.multinomial(p, n, replacement=True, generator=g)
    out = [x[idx] for x in layers]
    for l in range(0, m.n_layers, 2):
        out[l] = m.sample_layer(l, out, g)
    return out


def random_base(m, seed):
    g = gen(seed)
    return [torch.randn(n, generator=g, dtype=torch.float64) * 0.7 for n in m.sizes]


@pytest.mark.parametrize("sizes", [[6, 4, 3], [3, 2, 3, 2]])
def test_log_f_is_the_exact_marginal_at_every_temperature(sizes):
    m = random_dbm(sizes, scale=0.8, seed=1)
    base = random_base(m, 2)
    layers, _ = odd_layers(m)
    for beta in (0.0, 0.3, 0.5, 0.9, 1.0):
        lz = torch.logsumexp(evaluation.log_f(m, layers, beta, base=base), 0).item()
        assert lz == pytest.approx(brute_log_z(m, base, beta), abs=1e-9), beta
    assert brute_log_z(m, base, 0.0) == pytest.approx(evaluation.base_log_partition(base),
                                                      abs=1e-9)
    assert brute_log_z(m, base, 1.0) == pytest.approx(exact.log_partition(m), abs=1e-9)
    # the default base: zeros but on the visible layer, whose biases are the data's log-odds
    data = all_states(sizes[0])[::3]
    a = evaluation.base_biases(m, None)
    assert all(torch.equal(t, torch.zeros(n, dtype=torch.float64)) for t, n in zip(a, sizes))
    a = evaluation.base_biases(m, data)
    assert torch.allclose(a[0], torch.logit(data.mean(0).clamp(1e-3, 1 - 1e-3)))


@pytest.mark.parametrize("sizes", [[6, 4, 3], [3, 2, 3, 2]])
def test_the_tempered_sweep_leaves_each_intermediate_distribution_invariant(sizes):
    m = random_dbm(sizes, scale=1.0, seed=5)
    base = random_base(m, 6)
    layers, flat = odd_layers(m)
    odd = [l for l in range(m.n_layers) if l % 2]
    beta, n = 0.5, 20000
    p = torch.softmax(evaluation.log_f(m, layers, beta, base=base), 0)
    g = gen(7)
    idx = torch.multinomial(p, n, replacement=True, generator=g)
    path = evaluation._Path(m, base, torch.float64, g)

    def swept(at):
        xs = [x[idx] if l % 2 else None for l, x in enumerate(layers)]
        path.move(xs, path.means(path.offsets(xs, path.even), at), at)
        return torch.cat([xs[l] for l in odd], 1)

    after = histogram(swept(beta), flat)
    assert 0.5 * (after - p).abs().sum().item() < tv_bound(p, n)
    # the test has power: a sweep at another temperature moves the same draws away from p_β
    wrong = histogram(swept(1.0), flat)
    assert 0.5 * (wrong - p).abs().sum().item() > 2 * tv_bound(p, n)


@pytest.mark.parametrize("sizes", [[6, 4, 3], [3, 2, 3, 2]])
def test_forward_and_reverse_ais_bracket_the_exact_log_z(sizes):
    m = random_dbm(sizes, scale=0.8, seed=2)
    truth = exact.log_partition(m)
    start = exact_samples(m, 200, gen(3))
    data = start[0]
    fwd = evaluation.ais(m, base=data, n_chains=200, betas=500, generator=gen(4))
    rev = evaluation.reverse_ais(m, start, base=data, betas=500, generator=gen(5))
    assert fwd.direction == "forward" and rev.direction == "reverse"
    for r in (fwd, rev):
        # both intervals are 3 standard errors each side: below 0.02 nats on these models
        # (checked here), so 0.1 nats is a margin of over 15 standard errors that still fails
        # for a wrong path (a missing base term is several nats)
        assert r.log_z_high - r.log_z_low < 0.12, r
        assert abs(r.log_z - truth) < 0.1, (r.direction, r.log_z, truth)
        assert r.log_z_low - 0.01 <= truth <= r.log_z_high + 0.01
    # a subset of the chains, drawn without replacement
    sub = evaluation.reverse_ais(m, start, base=data, n_chains=50, betas=100, generator=gen(6))
    assert sub.n_chains == 50


def trap_dbm():
    """A DBM whose mass is in one phase (layer 1 on, layer 2 off) and that has a metastable
    other phase (layer 1 off, layer 2 near its bias) that fair coins in layer 2 lead into: a
    miniature of a 784-500-1000 DBM trained on MNIST. Its odd layer has 10 units, so log Z is
    exact."""
    m = DBM([20, 10, 100], dtype=torch.float64)
    g = gen(0)
    with torch.no_grad():
        m.weight_0.copy_(0.4 + 0.05 * torch.randn(20, 10, generator=g, dtype=torch.float64))
        m.weight_1.copy_(-0.6 + 0.05 * torch.randn(10, 100, generator=g, dtype=torch.float64))
        m.bias_0.fill_(-2.0)
        m.bias_2.fill_(-1.0)
    return m


def test_a_base_with_rates_in_every_layer_avoids_the_trap_of_fair_coin_hidden_units():
    m = trap_dbm()
    truth = exact.log_partition(m, parity=1)
    start = exact_samples(m, 100, gen(1))
    data = start[0]
    a = evaluation.base_biases(m, data)
    fair = [a[0]] + [torch.zeros_like(t) for t in a[1:]]
    kw = dict(betas=300, generator=gen(2))
    # the fair-coin base: forward AIS falls far short (8.4 nats measured; 8.5 with 1000
    # steps), and the reverse run from samples of the DBM, far above (19.2; 16.0), shows it
    assert evaluation.ais(m, base=fair, n_chains=100, **kw).log_z < truth - 3
    assert evaluation.reverse_ais(m, start, base=fair, **kw).log_z > truth + 3
    # the default base of data: both sides within a tenth of a nat
    for r in (evaluation.ais(m, base=data, n_chains=100, **kw),
              evaluation.reverse_ais(m, start, base=data, **kw)):
        assert abs(r.log_z - truth) < 0.1, (r.direction, r.log_z, truth)


def test_importance_sampled_marginal_is_a_lower_bound_that_tightens():
    m = random_dbm([6, 4, 3], scale=1.2, seed=0)
    v = all_states(6)
    truth = exact.log_unnormalized(m, v)
    many = evaluation.log_unnormalized(m, v, n_samples=2000, generator=gen(1))
    assert (many - truth).abs().max() < 0.05
    # one draw per estimate: its mean lies between the mean-field bound and the truth
    # (4 standard errors of 400 repeats each side)
    one = evaluation.log_unnormalized(m, v.repeat(400, 1), n_samples=1, generator=gen(2))
    one = one.reshape(400, 64)
    mean, se = one.mean(0), one.std(0) / 20
    assert (mean <= truth + 4 * se + 1e-9).all()
    assert (mean >= evaluation.elbo(m, v) - 4 * se - 1e-9).all()
    # and a clearly better bound than mean field on this strongly coupled model
    assert (mean - evaluation.elbo(m, v)).mean() > 0.05


def test_raise_is_conservative_on_samples_of_the_model():
    m = random_dbm([6, 4, 3], scale=0.8, seed=3)
    v = exact_samples(m, 400, gen(4))[0]
    truth = exact.log_likelihood(m, v)
    ll, res = evaluation.raise_log_likelihood(m, v, base=v, betas=300, generator=gen(5))
    d = ll - truth
    mean, se = d.mean().item(), d.std().item() / math.sqrt(len(d))
    assert res.direction == "reverse" and ll.shape == (400,)
    # E[log p̂(v)] <= log p_ann(v) per row and, for rows drawn from the model, mean log p_ann
    # <= mean log p (Gibbs' inequality): conservative up to noise, and close at 300 steps
    assert mean < 3 * se and abs(mean) < 0.1, (mean, se)
    # with one step from the uniform base the annealing model is a poorer one (0.19 nats
    # measured, 7 standard errors), and the estimate says so
    short, _ = evaluation.raise_log_likelihood(m, v, betas=1, generator=gen(6))
    d = short - truth
    assert d.mean().item() < -0.1 and d.mean().item() < -3 * d.std().item() / 20


def test_bad_input_is_one_value_error_naming_the_argument():
    m = DBM([4, 3, 2])
    with pytest.raises(ValueError, match="chains"):
        evaluation.reverse_ais(m, torch.zeros(3, 4))
    with pytest.raises(ValueError, match="chains"):
        evaluation.reverse_ais(m, [torch.zeros(3, 4), torch.zeros(3, 3)])
    with pytest.raises(ValueError, match="chains"):
        evaluation.reverse_ais(m, [torch.zeros(1, 4), torch.zeros(1, 3), torch.zeros(1, 2)])
    with pytest.raises(ValueError, match="base"):
        evaluation.ais(m, base=[torch.zeros(4)])
    with pytest.raises(ValueError, match=r"base\[1\]"):
        evaluation.ais(m, base=[torch.zeros(4), torch.zeros(5), torch.zeros(2)])
    with pytest.raises(ValueError, match="n_chains"):
        evaluation.ais(m, n_chains=1)
    with pytest.raises(ValueError, match="beta"):
        evaluation.log_f(m, [torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 2)], 2.0)
    with pytest.raises(ValueError, match="n_samples"):
        evaluation.log_unnormalized(m, torch.zeros(2, 4), n_samples=0)
    with pytest.raises(ValueError, match="v"):
        evaluation.raise_log_likelihood(m, torch.full((2, 4), 0.5))
    with pytest.raises(ValueError, match="means"):
        evaluation.log_unnormalized(m, torch.zeros(2, 4), means=[torch.zeros(3, 4),
                                                                 torch.zeros(3, 3),
                                                                 torch.zeros(3, 2)])
