"""Tests of boltzkit.evaluation against exact enumeration on models small enough to enumerate.

Tolerances come from the estimators' own spread: for M importance weights with Kish effective
sample size ESS = M / (1 + cv²) (cv = std(w)/mean(w)), the delta method gives
sd(log mean w) ≈ cv / sqrt(M). Each AIS test asserts ESS > 0.9 M, hence cv² < 0.11 and
sd(log Ẑ) < 0.034 for M = 100: the issue's 0.1-nat tolerance is then about 3 standard deviations
(a two-sided normal tail of 0.3 %), and the seeds are fixed so a run is reproducible.
"""

import json
import math

import numpy as np
import pytest
import torch

import boltzkit
from boltzkit import evaluation as ev
from boltzkit.cli import main
from boltzkit.evaluation.ais import _logpart_step
from boltzkit.units import get_units


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_rbm(nv, nh, visible="bernoulli", hidden="bernoulli", std=0.3, bias_std=0.5,
               seed=0, dtype=torch.float64):
    g = gen(seed)
    m = boltzkit.RBM(nv, nh, visible, hidden, init_std=std, generator=g)
    with torch.no_grad():
        m.visible_bias.normal_(0.0, bias_std, generator=g)
        m.hidden_bias.normal_(0.0, bias_std, generator=g)
    return m.to(dtype)


def exact_samples(model, n, seed=0):
    """Exact draws from p(v): sample the enumerable layer from its marginal, then v given it."""
    g = gen(seed)
    layer = boltzkit.exact.rbm.enumerable_layer(model)
    if layer == "hidden":
        states = model.hidden.states(model.n_hidden, dtype=model.weight.dtype)
        logp = -model.free_energy_hidden(states)
        idx = torch.multinomial(torch.softmax(logp.double(), 0), n, replacement=True, generator=g)
        return model.sample_visible(states[idx], g)
    states = model.visible.states(model.n_visible, dtype=model.weight.dtype)
    logp = -model.free_energy(states)
    idx = torch.multinomial(torch.softmax(logp.double(), 0), n, replacement=True, generator=g)
    return states[idx]


def log_z_sd(result):
    """Delta-method standard deviation of an AIS log Z estimate from its own weights."""
    lw = result.log_weights
    if result.direction == "reverse":
        return lw.std().item() / math.sqrt(lw.shape[0])
    w = torch.exp(lw - lw.max())
    return (w.std() / w.mean()).item() / math.sqrt(lw.shape[0])


# -- schedule and small pieces ---------------------------------------------------------------
def test_default_schedule_is_salakhutdinov_murray():
    b = ev.default_betas()
    assert b.shape == (14501,) and b[0] == 0 and b[-1] == 1
    steps = b[1:] - b[:-1]
    assert torch.allclose(steps[:500], torch.full((500,), 1e-3, dtype=b.dtype))
    assert torch.allclose(steps[500:4500], torch.full((4000,), 1e-4, dtype=b.dtype))
    assert torch.allclose(steps[4500:], torch.full((10000,), 1e-5, dtype=b.dtype))
    short = ev.default_betas(145)
    assert short.shape == (146,) and short[5] == pytest.approx(0.5) and short[45] == pytest.approx(0.9)
    assert ev.default_betas(2).tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("units", ["bernoulli", "spin", "gaussian", "softmax:4", "softmax"])
def test_logpart_step_matches_float64_difference(units):
    u = get_units(units)
    g = gen(3)
    c = torch.randn(7, 12, generator=g, dtype=torch.float64) * 4
    for b0, b1 in [(0.3, 0.30001), (0.9, 0.8999), (0.0, 0.001), (0.2, 1.0), (1.0, 0.0)]:
        want = u.log_partition(c, b1) - u.log_partition(c, b0)
        fast = abs(b1 - b0) * c.abs().max().item() < 0.5
        got = _logpart_step(u, c.float(), u.mean(c.float(), b0), b0, b1, fast)
        # float32 inputs: relative precision of the small difference itself, not of the sums
        assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-5 * abs(b1 - b0) + 1e-9), \
            (b0, b1, (got.double() - want).abs().max())


def test_log_partition_exact_chunks_and_brute_force():
    m = random_rbm(6, 5, std=0.8)
    # brute force over every (v, h)
    vs = m.visible.states(6, dtype=torch.float64)
    hs = m.hidden.states(5, dtype=torch.float64)
    e = torch.stack([m.energy(vs, h.expand(vs.shape[0], -1)) for h in hs])
    brute = torch.logsumexp(-e.flatten(), 0).item()
    assert ev.log_partition_exact(m) == pytest.approx(brute, abs=1e-10)
    assert ev.log_partition_exact(m, chunk_size=3) == pytest.approx(brute, abs=1e-10)
    # and the exact log-likelihood of each state is log of its brute-force marginal
    ll = ev.exact_log_likelihood(m, vs)
    marg = torch.logsumexp(-e, 0) - brute
    assert torch.allclose(ll.values, marg, atol=1e-10)
    assert ll.mean == pytest.approx(marg.mean().item(), abs=1e-10)
    assert ll.std_error == pytest.approx(marg.std().item() / math.sqrt(64), rel=1e-9)


def test_log_partition_exact_refuses_big_layers():
    with pytest.raises(ValueError, match="AIS"):
        ev.log_partition_exact(boltzkit.RBM(30, 30))
    assert not ev.can_enumerate(boltzkit.RBM(30, 30)) and ev.can_enumerate(boltzkit.RBM(30, 24))


# -- AIS against exact log Z -----------------------------------------------------------------
PAIRINGS = [  # (visible, hidden, n_visible, n_hidden, weight std)
    ("bernoulli", "bernoulli", 12, 10, 0.5),
    ("gaussian", "bernoulli", 10, 8, 0.3),
    ("softmax:3", "bernoulli", 12, 10, 0.5),
    ("spin", "spin", 12, 10, 0.25),
    ("bernoulli", "softmax:4", 12, 8, 0.5),
    ("bernoulli", "gaussian", 12, 6, 0.3),
]


@pytest.mark.parametrize("visible,hidden,nv,nh,std", PAIRINGS)
def test_ais_and_reverse_ais_match_exact(visible, hidden, nv, nh, std):
    m = random_rbm(nv, nh, visible, hidden, std=std)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 400, seed=1)
    fwd = ev.ais(m, base=data, n_chains=100, betas=2000, generator=gen(10))
    rev = ev.reverse_ais(m, data, base=data, n_chains=100, betas=2000, generator=gen(11))
    for r in (fwd, rev):
        assert r.ess > 90, r
        assert abs(r.log_z - exact) < 0.1, (r.direction, r.log_z, exact)
        assert r.log_z_low <= r.log_z <= r.log_z_high
    # the intervals (3 standard errors) cover the exact value
    assert fwd.log_z_low <= exact <= fwd.log_z_high
    assert rev.log_z_low <= exact <= rev.log_z_high


def test_estimators_are_unbiased_for_their_exact_targets():
    """The defining identities, checked against exact enumeration on a 5x4 RBM with a 4-step
    schedule (where the annealing is far from perfect): forward E[w] = Z/Z_A, and RAISE's
    E[p̂(v)] = p_ann(v), the law of the forward chain's final state, computed exactly by pushing
    the base distribution through the transition matrices. 20,000 chains: each mean is compared
    with 4 of its standard errors (two-sided normal tail 6e-5)."""
    import torch.nn.functional as F

    m = random_rbm(5, 4, std=1.0, bias_std=0.8, seed=3)
    vs = m.visible.states(5, dtype=torch.float64)
    hs = m.hidden.states(4, dtype=torch.float64)
    base = (torch.rand(50, 5, generator=gen(1)) < 0.3).double()
    a0 = ev.base_visible_bias(m, base, torch.float64)
    a, b, w = m.visible_bias.detach(), m.hidden_bias.detach(), m.weight.detach()
    betas = [0.0, 0.3, 0.6, 0.9, 1.0]

    def transition(beta):  # block Gibbs v -> h -> v' at beta, a (32, 32) matrix
        ph = torch.sigmoid(beta * (b + vs @ w))
        p_h = torch.where(hs[None] == 1, ph[:, None], 1 - ph[:, None]).prod(-1)
        pv = torch.sigmoid((1 - beta) * a0 + beta * (a + hs @ w.t()))
        p_v = torch.where(vs[None] == 1, pv[:, None], 1 - pv[:, None]).prod(-1)
        return p_h @ p_v

    log_za = ev.base_log_partition(m, a0)
    p_ann = torch.exp(vs @ a0 + F.softplus(0 * b).sum() - log_za)
    for beta in betas[1:]:
        p_ann = p_ann @ transition(beta)
    log_z = ev.log_partition_exact(m)
    n = 20000
    fwd = ev.ais(m, base=base, n_chains=n, betas=betas, generator=gen(5), dtype=torch.float64)
    wts = torch.exp(fwd.log_weights)
    assert abs(wts.mean().item() - math.exp(log_z - log_za)) < 4 * wts.std().item() / math.sqrt(n)
    for s in (0, 7, 19, 31):
        v = vs[s:s + 1]
        rev = ev.reverse_ais(m, v.expand(n, -1), base=base, n_chains=None, betas=betas,
                             generator=gen(s), dtype=torch.float64)
        p_hat = torch.exp(-m.free_energy(v) + rev.log_weights - log_za)
        assert abs(p_hat.mean().item() - p_ann[s].item()) < 4 * p_hat.std().item() / math.sqrt(n)
    # and this short annealing model really differs from the RBM (the check is not vacuous)
    p = torch.exp(-m.free_energy(vs) - log_z)
    assert (p_ann.log() - p.log()).abs().max() > 0.2


def test_ais_784x16_matches_exact_and_brackets():
    m = random_rbm(784, 16, std=0.1, bias_std=0.5, dtype=torch.float32, seed=2)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 300, seed=3)
    ll_exact = ev.log_likelihood(m, data, exact).mean
    fwd = ev.ais(m, base=data, n_chains=100, betas=3000, generator=gen(4))
    rev = ev.reverse_ais(m, data, base=data, n_chains=100, betas=3000, generator=gen(5))
    assert fwd.ess > 90 and rev.ess > 90
    assert abs(fwd.log_z - exact) < 0.1 and abs(rev.log_z - exact) < 0.1
    # the bracket, reverse <= exact <= forward, holds up to each estimator's own noise: forward
    # log Ẑ exceeds log Z by more than 3 sd with normal-tail probability 0.13 % (less: its bias
    # is downwards), and RAISE's mean of 100 per-chain logs exceeds its target by t with
    # probability at most exp(-100 t) (Markov's inequality on the product of unbiased weights)
    ll_fwd = ev.log_likelihood(m, data, fwd).mean
    ll_rev = ev.log_likelihood(m, data, rev).mean
    assert ll_fwd >= ll_exact - 3 * log_z_sd(fwd)
    assert ll_rev <= ll_exact + 0.07          # P(fail) <= exp(-7) < 1e-3
    # when both are this accurate their order is noise: only a gross inversion is an error
    assert ll_rev <= ll_fwd + 3 * (log_z_sd(fwd) + log_z_sd(rev))


def test_short_schedule_reverse_is_conservative():
    """With only 10 temperatures RAISE's error is visibly one-sided: it over-estimates log Z
    (under-estimates the log-likelihood) by 0.39 to 0.62 nats over seeds 0-9 (measured),
    while forward AIS, unbiased for Z itself, stays within its own noise of the exact value."""
    m = random_rbm(784, 16, std=0.1, bias_std=0.5, dtype=torch.float32, seed=2)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 300, seed=3)
    fwd = ev.ais(m, base=data, n_chains=100, betas=10, generator=gen(6))
    rev = ev.reverse_ais(m, data, base=data, n_chains=100, betas=10, generator=gen(7))
    assert rev.log_z > exact + 0.2, (rev.log_z, exact)
    assert abs(fwd.log_z - exact) <= 3 * log_z_sd(fwd), (fwd.log_z, exact, log_z_sd(fwd))
    ll = lambda z: ev.log_likelihood(m, data, z).mean  # noqa: E731
    assert ll(rev) < ll(exact) - 0.2 and ll(rev) < ll(fwd)


def test_float32_and_float64_agree_within_error_bar():
    m = random_rbm(40, 12, std=0.3, seed=4)
    exact = ev.log_partition_exact(m)
    r32 = ev.ais(m, n_chains=100, betas=1500, generator=gen(8), dtype=torch.float32)
    r64 = ev.ais(m, n_chains=100, betas=1500, generator=gen(8), dtype=torch.float64)
    sd = math.hypot(log_z_sd(r32), log_z_sd(r64))
    assert abs(r32.log_z - r64.log_z) <= 3 * sd, (r32.log_z, r64.log_z, sd)
    assert abs(r64.log_z - exact) <= 3 * log_z_sd(r64) + 1e-3


def test_reverse_ais_uses_a_row_subset_and_validates():
    m = random_rbm(12, 6)
    data = exact_samples(m, 50)
    r = ev.reverse_ais(m, data, n_chains=10, betas=50, generator=gen(1))
    assert r.n_chains == 10 and r.direction == "reverse" and r.n_betas == 51
    assert ev.reverse_ais(m, data, n_chains=None, betas=50).n_chains == 50
    with pytest.raises(ValueError, match="data"):
        ev.reverse_ais(m, data * 0.5, betas=10)
    bad = data.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ev.reverse_ais(m, bad, betas=10)
    with pytest.raises(ValueError, match="n_chains"):
        ev.ais(m, n_chains=1)
    with pytest.raises(ValueError, match="betas"):
        ev.ais(m, betas=[0.0, 0.5])
    with pytest.raises(ValueError, match="betas"):
        ev.ais(m, betas=[0.0, 0.7, 0.5, 1.0])
    with pytest.raises(ValueError, match="dtype"):
        ev.ais(m, dtype=torch.float16)
    with pytest.raises(ValueError, match="base"):
        ev.ais(m, base=torch.ones(3, 5))


def test_ais_is_reproducible_and_custom_schedule():
    m = random_rbm(12, 6)
    a = ev.ais(m, n_chains=20, betas=torch.linspace(0, 1, 101), generator=gen(5))
    b = ev.ais(m, n_chains=20, betas=torch.linspace(0, 1, 101).tolist(), generator=gen(5))
    assert a.log_z == b.log_z and torch.equal(a.log_weights, b.log_weights)
    assert a.as_dict()["n_betas"] == 101


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_ais_on_cuda_matches_exact():
    m = random_rbm(784, 16, std=0.1, dtype=torch.float32, seed=2)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 300, seed=3)
    mc = m.to("cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    fwd = ev.ais(mc, base=data.cuda(), n_chains=100, betas=3000, generator=g)
    rev = ev.reverse_ais(mc, data.cuda(), base=data.cuda(), n_chains=100, betas=3000, generator=g)
    assert abs(fwd.log_z - exact) < 0.1 and abs(rev.log_z - exact) < 0.1


# -- pseudo-likelihood -----------------------------------------------------------------------
def brute_force_pl(model, v):
    """Σ_i log p(v_i | v_-i) from free energies of every alternative value (or a numerical
    integral over the real line for Gaussian units)."""
    from scipy import integrate

    out = []
    V = model.visible
    for row in v:
        total = 0.0
        f0 = model.free_energy(row[None]).item()
        if V.name in ("bernoulli", "spin"):
            for i in range(row.shape[0]):
                alt = row.clone()
                alt[i] = (1 - alt[i]) if V.name == "bernoulli" else -alt[i]
                f1 = model.free_energy(alt[None]).item()
                total += -f0 - np.logaddexp(-f0, -f1)
        elif V.name == "softmax":
            k = V.group_size or row.shape[0]
            for g0 in range(0, row.shape[0], k):
                fs = []
                for j in range(k):
                    alt = row.clone()
                    alt[g0:g0 + k] = 0
                    alt[g0 + j] = 1
                    fs.append(-model.free_energy(alt[None]).item())
                total += -f0 - np.logaddexp.reduce(fs)
        else:
            for i in range(row.shape[0]):
                def dens(x, i=i):
                    alt = row.clone()
                    alt[i] = x
                    return math.exp(-model.free_energy(alt[None]).item() + f0)
                integral, _ = integrate.quad(dens, -40, 40, points=[row[i].item()], limit=200,
                                             epsabs=0, epsrel=1e-11)
                total += -math.log(integral)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "bernoulli"),
                                            ("softmax:3", "bernoulli"), ("bernoulli", "softmax:2"),
                                            ("gaussian", "bernoulli"), ("gaussian", "spin"),
                                            ("gaussian", "softmax:2"), ("gaussian", "gaussian"),
                                            ("spin", "gaussian")])
def test_pseudo_likelihood_exact_matches_brute_force(visible, hidden):
    m = random_rbm(6, 4, visible, hidden, std=0.3 if hidden == "gaussian" else 0.7, seed=5)
    v = exact_samples(m, 5, seed=6) if m.visible.discrete else \
        torch.randn(5, 6, generator=gen(6), dtype=torch.float64) * 1.5
    got = ev.pseudo_likelihood(m, v)
    assert got.shape == (5,)
    assert torch.allclose(got, brute_force_pl(m, v), atol=1e-8), (got, brute_force_pl(m, v))


@pytest.mark.parametrize("visible", ["bernoulli", "softmax:3", "gaussian"])
def test_stochastic_pseudo_likelihood_is_unbiased(visible):
    m = random_rbm(6, 4, visible, "bernoulli", std=0.7, seed=7)
    v = exact_samples(m, 1, seed=8) if m.visible.discrete else torch.randn(1, 6, generator=gen(8),
                                                                           dtype=torch.float64)
    exact = ev.pseudo_likelihood(m, v).item()
    draws = ev.pseudo_likelihood(m, v.expand(4000, -1), gen(9))
    assert draws.shape == (4000,)
    # mean of 4000 iid draws: within 4 standard errors (two-sided normal tail 6e-5)
    assert abs(draws.mean().item() - exact) < 4 * draws.std().item() / math.sqrt(4000)
    assert draws.std() > 0


# -- figures and the callback ----------------------------------------------------------------
def test_reconstruction_error_and_free_energy_gap():
    m = random_rbm(12, 6, dtype=torch.float32)
    v = exact_samples(m, 30)
    assert ev.reconstruction_error(m, v) == pytest.approx(
        (v - m.reconstruct(v)).pow(2).mean().item(), rel=1e-6)
    gap = ev.free_energy_gap(m, v[:15], v[15:])
    f = m.free_energy(v).double()
    assert gap["free_energy_gap"] == pytest.approx((f[15:].mean() - f[:15].mean()).item(), abs=1e-4)


def test_free_energy_gap_callback_records_history():
    from boltzkit.training import fit

    g = gen(0)
    x = (torch.rand(200, 16, generator=g) < 0.3).float()
    m = boltzkit.RBM(16, 8, generator=g)
    cb = ev.FreeEnergyGap(x[:100], x[100:], every=1, max_rows=50)
    state = fit(m, x[:100], epochs=3, batch_size=20, callbacks=[cb], generator=g)
    assert all("free_energy_gap" in h for h in state.history)
    want = ev.free_energy_gap(m, x[:50], x[100:150])
    assert state.history[-1]["free_energy_gap"] == pytest.approx(want["free_energy_gap"])


def test_evaluate_reports_every_figure_and_the_bracket():
    m = random_rbm(12, 8, dtype=torch.float32)
    v = exact_samples(m, 60)
    r = ev.evaluate(m, v, log_z="both", chains=50, betas=500, seed=1)
    for key in ("reconstruction_error", "pseudo_likelihood", "log_z", "log_z_interval",
                "log_likelihood", "log_likelihood_std_error", "log_likelihood_bracket"):
        assert key in r
    assert set(r["estimates"]) == {"exact", "ais", "reverse-ais"} and r["log_z_method"] == "exact"
    exact_ll = r["estimates"]["exact"]["log_likelihood"]
    assert abs(r["estimates"]["ais"]["log_likelihood"] - exact_ll) < 0.1
    assert r["log_likelihood"] == pytest.approx(ev.exact_log_likelihood(m, v).mean, abs=1e-4)
    json.dumps(r, allow_nan=False)
    auto = ev.evaluate(m, v)
    assert set(auto["estimates"]) == {"exact"}
    with pytest.raises(ValueError, match="log_z"):
        ev.evaluate(m, v, log_z="magic")


# -- command line ----------------------------------------------------------------------------
@pytest.fixture
def saved_model(tmp_path):
    m = random_rbm(16, 6, dtype=torch.float32)
    path = tmp_path / "tiny.safetensors"
    boltzkit.save(m, path)
    data = tmp_path / "rows.npy"
    np.save(data, exact_samples(m, 40).numpy().astype(np.float32))
    return path, data


def test_cli_evaluate_json(saved_model, capsys):
    path, data = saved_model
    code = main(["evaluate", str(path), "--data", str(data), "--log-z", "both", "--chains", "20",
                 "--betas", "200", "--seed", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("log_z", "log_z_interval", "log_likelihood", "log_likelihood_std_error",
                "reconstruction_error", "pseudo_likelihood", "log_likelihood_bracket"):
        assert key in out
    assert out["n_rows"] == 40 and len(out["log_z_interval"]) == 2
    code = main(["evaluate", str(path), "--data", str(data), "--betas", "50"])
    text = capsys.readouterr().out
    assert code == 0 and "log Z" in text and "pseudo-likelihood" in text


def test_cli_evaluate_bad_model_file(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a model")
    code = main(["evaluate", str(bad), "--data", "digits", "--json"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.startswith("boltzkit: error:") and "\n" not in err
    code = main(["evaluate", str(tmp_path / "missing.safetensors")])
    assert code != 0


def test_cli_evaluate_binarizes_grey_data(saved_model, tmp_path, capsys):
    path, _ = saved_model
    grey = tmp_path / "grey.npy"
    np.save(grey, np.random.default_rng(0).random((30, 16)).astype(np.float32))
    assert main(["evaluate", str(path), "--data", str(grey), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_rows"] == 30
    assert main(["evaluate", str(path), "--data", str(grey), "--binarize", "none"]) != 0
    assert "0/1" in capsys.readouterr().err


# -- slow: the full default schedule ---------------------------------------------------------
@pytest.mark.slow
def test_default_schedule_784x16_matches_exact():
    m = random_rbm(784, 16, std=0.2, bias_std=1.0, dtype=torch.float32, seed=9)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 500, seed=10)
    fwd = ev.ais(m, base=data, n_chains=100, generator=gen(11))
    rev = ev.reverse_ais(m, data, base=data, n_chains=100, generator=gen(12))
    assert fwd.n_betas == 14501
    assert abs(fwd.log_z - exact) < 0.1 and abs(rev.log_z - exact) < 0.1
    assert fwd.log_z_low <= exact <= fwd.log_z_high


@pytest.mark.slow
def test_bracket_frequency_over_seeds():
    """Over 20 seeds with a short schedule (biased estimators), the bracket holds every time."""
    m = random_rbm(100, 12, std=0.3, seed=13)
    exact = ev.log_partition_exact(m)
    data = exact_samples(m, 200, seed=14)
    for s in range(20):
        fwd = ev.ais(m, base=data, n_chains=100, betas=100, generator=gen(100 + s))
        rev = ev.reverse_ais(m, data, base=data, n_chains=100, betas=100, generator=gen(200 + s))
        assert fwd.log_z <= exact + 3 * log_z_sd(fwd) and rev.log_z >= exact - 0.07


@pytest.mark.slow
def test_exact_log_z_with_2_to_the_24_states():
    """The largest enumerable layer (24 binary units, 2^24 states) in bounded-memory chunks,
    against enumeration of the other side (25 visible units, 2^25 states)."""
    m = random_rbm(25, 24, std=0.2, seed=15)
    via_hidden = ev.log_partition_exact(m)
    via_visible = boltzkit.exact.rbm.log_partition(m, "visible", chunk_size=2 ** 17,
                                                   max_states=2 ** 25)
    assert via_hidden == pytest.approx(via_visible, abs=1e-8)
