"""Gaussian-Bernoulli RBMs with learned variances (``gaussian:learned`` visible units): energies,
exact log Z, gradients, sampling, AIS, files, bad input and training, each against an
independent computation (brute force, quadrature, autograd)."""

import json
import math

import pytest
import torch

import boltzkit
from boltzkit import RBM, exact
from boltzkit.evaluation import ais, pseudo_likelihood, reverse_ais
from boltzkit.samplers import gibbs
from boltzkit.training import CD, PCD, PT, SGD, Centered, ExactGradient, fit, statistics_gradient
from boltzkit.units import LearnedGaussian, get_units

from .conftest import gen

F64 = torch.float64


def grbm(n_visible=2, n_hidden=3, scale=0.6, seed=0, z_scale=0.6):
    g = gen(seed)
    m = RBM(n_visible, n_hidden, "gaussian:learned", dtype=F64)
    with torch.no_grad():
        m.weight.normal_(0, scale, generator=g)
        m.visible_bias.normal_(0, scale, generator=g)
        m.hidden_bias.normal_(0, scale, generator=g)
        m.visible_log_variance.normal_(0, z_scale, generator=g)
    return m


def cho_energy(m, v, h):
    """Cho, Ilin & Raiko's energy written out, minus the constant Σ a²/(2σ²) (see the family's
    docstring): (n,) for v (n, V), h (n, H)."""
    s2 = torch.exp(m.visible_log_variance)
    a, b, w = m.visible_bias, m.hidden_bias, m.weight
    return (((v - a) ** 2 / (2 * s2)).sum(1) - h @ b - ((v / s2) @ w * h).sum(1)
            - (a * a / (2 * s2)).sum())


def hidden_states(m):
    return m.hidden.states(m.n_hidden, dtype=F64)


def grid_2d(lim=14.0, n=841):
    x = torch.linspace(-lim, lim, n, dtype=F64)
    return torch.cartesian_prod(x, x), (x[1] - x[0]).item()


def test_family_is_named_and_parsed():
    u = get_units("gaussian:learned")
    assert isinstance(u, LearnedGaussian) and u.spec() == "gaussian:learned"
    assert u.min_variance == 0.01 and not u.identity_statistic
    assert get_units("gaussian:learned:0.001").spec() == "gaussian:learned:0.001"
    assert get_units("gaussian").spec() == "gaussian"  # the unit-variance family is unchanged
    for bad in ("gaussian:learned:2", "gaussian:learned:x", "gaussian:other"):
        with pytest.raises(ValueError, match="units: "):
            get_units(bad)
    with pytest.raises(ValueError, match="hidden: gaussian:learned units couple through"):
        RBM(3, 2, "bernoulli", "gaussian:learned")
    m = grbm()
    assert sorted(dict(m.named_parameters())) == ["hidden_bias", "visible_bias",
                                                  "visible_log_variance", "weight"]
    with pytest.raises(ValueError, match="params: gaussian:learned units need"):
        m.visible.mean(torch.zeros(1, 2, dtype=F64))


def test_energy_free_energies_and_conditionals_match_cho_et_al():
    m = grbm(3, 4)
    v = torch.randn(5, 3, generator=gen(1), dtype=F64) * 2
    hs = hidden_states(m)
    for h in hs[:3]:
        hh = h.expand(5, -1)
        assert torch.allclose(m.energy(v, hh), cho_energy(m, v, hh), atol=1e-12)
    brute = -torch.logsumexp(torch.stack([-cho_energy(m, v, h.expand(5, -1)) for h in hs], 1), 1)
    assert torch.allclose(m.free_energy(v), brute, atol=1e-12)
    # p(v | h) = N(a + W h, σ²): the mean, and draws with the right spread
    h = hs[5:6].expand(40000, -1)
    draws = m.sample_visible(h, gen(2))
    assert torch.allclose(m.visible_mean(h[:1]), m.visible_bias + h[:1] @ m.weight.t())
    sd = torch.exp(0.5 * m.visible_log_variance)
    # 40,000 draws: the sample std has a relative error ~ 1/sqrt(2n) = 0.0035; 5 of those
    assert ((draws.std(0) / sd - 1).abs() < 0.018).all()


def test_hidden_free_energy_is_the_gaussian_integral():
    # F'(h) = -log ∫ exp(-E(v, h)) dv, by quadrature on a fine grid (2 visible units), at beta 1
    # and for a tempered model (E_beta = base + beta (E - base))
    m = grbm(2, 3)
    grid, dx = grid_2d()
    for beta in (1.0, 0.4):
        for h in hidden_states(m)[[0, 3, 6]]:
            e = cho_energy(m, grid, h.expand(len(grid), -1))
            base = m.visible.base(grid, params=m.visible_params)
            e = base + beta * (e - base)
            quad = -(torch.logsumexp(-e, 0) + 2 * math.log(dx))
            assert m.free_energy_hidden(h[None], beta).item() == pytest.approx(quad.item(),
                                                                               abs=1e-9)


def test_exact_log_z_matches_numeric_integration():
    for seed, z_scale in ((0, 0.6), (1, 1.2)):
        m = grbm(2, 3, seed=seed, z_scale=z_scale)
        grid, dx = grid_2d(20.0, 1201)
        quad = torch.logsumexp(-m.free_energy(grid), 0).item() + 2 * math.log(dx)
        assert exact.rbm.log_partition(m) == pytest.approx(quad, abs=1e-8)


def test_tempered_marginals_agree_between_the_layers():
    # ∫ exp(-F_beta(v)) dv = Σ_h exp(-F'_beta(h)) for every beta: free_energy(beta) and
    # free_energy_hidden(beta) describe one tempered model (the one the sampler and AIS use)
    m = grbm(2, 3, scale=0.9)
    grid, dx = grid_2d(20.0, 1201)
    for beta in (0.0, 0.3, 1.0):
        quad = torch.logsumexp(-m.free_energy(grid, beta), 0).item() + 2 * math.log(dx)
        enum = torch.logsumexp(-m.free_energy_hidden(hidden_states(m), beta), 0).item()
        assert quad == pytest.approx(enum, abs=1e-8)
    # at beta 0 the model is N(0, σ²) times uniform hidden units
    lz0 = 0.5 * (math.log(2 * math.pi) * 2 + m.visible_log_variance.sum().item()) + 3 * math.log(2)
    assert enum == pytest.approx(enum) and torch.logsumexp(
        -m.free_energy_hidden(hidden_states(m), 0.0), 0).item() == pytest.approx(lz0, abs=1e-12)


def exact_log_likelihood(m, v):
    """Differentiable mean log-likelihood: log Z by enumerating the hidden layer."""
    return -(m.free_energy(v).mean() + torch.logsumexp(-m.free_energy_hidden(hidden_states(m)), 0))


def autograd_loss_gradient(m, v):
    m.zero_grad()
    (-exact_log_likelihood(m, v)).backward()
    out = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    return out


def test_exact_gradient_equals_autograd_of_the_exact_log_likelihood():
    m = grbm(3, 4)
    v = torch.randn(9, 3, generator=gen(3), dtype=F64) * 1.5
    want = autograd_loss_gradient(m, v)
    got, _ = ExactGradient()(m, v)
    assert sorted(got) == sorted(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-9, atol=1e-10)
    assert want["visible_log_variance"].abs().min() > 1e-3  # the test has something to check


def exact_samples(m, n, seed):
    """n independent exact draws (v, E[h | v]): h from p(h) by enumeration, then v | h."""
    hs = hidden_states(m)
    p = torch.softmax(-m.free_energy_hidden(hs), 0)
    idx = torch.multinomial(p, n, replacement=True, generator=gen(seed))
    v = m.sample_visible(hs[idx], gen(seed + 1))
    return v, m.hidden_mean(v)


def test_sampled_statistics_give_the_exact_variance_gradient_in_expectation():
    # statistics_gradient with exact model samples as the negative phase: an unbiased estimate
    # of the exact loss gradient (every parameter, the log-variances included)
    m = grbm(3, 4)
    v = torch.randn(9, 3, generator=gen(3), dtype=F64) * 1.5
    want = autograd_loss_gradient(m, v)
    n = 200000
    v_neg, h_neg = exact_samples(m, n, 11)
    with torch.no_grad():
        got = statistics_gradient(v, m.hidden_mean(v), v_neg, h_neg, model=m)
        # the standard error of the negative phase's mean dE/dz, per unit, from the same draws:
        # dE/dz_i = -(v_i²/2 - v_i (a + W h)_i) / σ_i²
        t = m.visible_bias + h_neg @ m.weight.t()
        per_draw = -(v_neg * v_neg / 2 - v_neg * t) * torch.exp(-m.visible_log_variance)
        se = per_draw.std(0) / math.sqrt(n)
    for name in ("weight", "visible_bias", "hidden_bias"):
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0.05)
    # 5 standard errors (z ~ N(0, 1) per unit: exceeded with probability ~6e-7 each)
    assert ((got["visible_log_variance"] - want["visible_log_variance"]).abs() < 5 * se).all()
    # power: with the exact gradient's z part shifted by 10 standard errors the test fails
    assert ((got["visible_log_variance"] - want["visible_log_variance"] - 10 * se).abs()
            > 5 * se).all()


def test_every_sampling_estimator_returns_the_variance_gradient():
    m = grbm(3, 4)
    v = torch.randn(20, 3, generator=gen(4), dtype=F64)
    for est in (CD(1), PCD(1, n_chains=10), PT(1, n_chains=10, replicas=3),
                Centered(PCD(1, n_chains=10))):
        grads, _ = est(m, v, est.init_state(m, v, gen(5)), gen(6))
        assert sorted(grads) == sorted(dict(m.named_parameters())), est
        assert grads["visible_log_variance"].shape == (3,)
        assert torch.isfinite(grads["visible_log_variance"]).all()
    # centering changes coordinates that do not involve the variances: their gradient is the
    # uncentered one for the same samples
    est = Centered(PCD(1, n_chains=10))
    state = est.init_state(m, v, gen(5))
    centered, _ = est(m, v, state, gen(6))
    stats, _ = PCD(1, n_chains=10).statistics(m, v, PCD(1, 10).init_state(m, v, gen(5)), gen(6))
    plain = statistics_gradient(*stats, model=m)
    torch.testing.assert_close(centered["visible_log_variance"], plain["visible_log_variance"])


def exact_moments(m, beta):
    """E_beta[v] and E_beta[v²] ``(n_visible,)``: Σ_h p_beta(h) of the N(beta (a + W h), σ²)
    moments."""
    hs = hidden_states(m)
    p = torch.softmax(-m.free_energy_hidden(hs, beta), 0)
    mu = m.visible_mean(hs, beta)
    s2 = torch.exp(m.visible_log_variance)
    return p @ mu, p @ (mu * mu + s2)


def test_gibbs_and_tempered_chains_follow_the_exact_moments():
    m = grbm(3, 5, scale=0.8, seed=5)
    betas, per = (0.4, 1.0), 20000  # independent chains per beta, side by side in one batch
    beta = torch.tensor(betas, dtype=F64).repeat_interleave(per)
    g = gen(8)
    state = gibbs.run(m, gibbs.init(m, torch.zeros(len(beta), 3, dtype=F64), g, beta), 100, g,
                      beta)
    for k, b in enumerate(betas):
        v = state.visible[k * per:(k + 1) * per]
        m1, m2 = exact_moments(m, b)
        # 5 standard errors of the sample means (sd estimated from the draws)
        assert ((v.mean(0) - m1).abs() < 5 * v.std(0) / math.sqrt(per)).all()
        assert (((v * v).mean(0) - m2).abs() < 5 * (v * v).std(0) / math.sqrt(per)).all()
    # power: the two betas' exact means differ by far more than the tolerance
    d = (exact_moments(m, 0.4)[0] - exact_moments(m, 1.0)[0]).abs()
    assert (d > 10 * state.visible.std(0) / math.sqrt(per)).any()


def test_per_row_beta_equals_scalar_beta():
    m = grbm(3, 4)
    v = torch.randn(4, 3, generator=gen(2), dtype=F64)
    beta = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=F64)
    fe = m.free_energy(v, beta)
    h = m.sample_hidden(v, gen(3))
    vs = m.sample_visible(h, gen(4), beta)
    for i, b in enumerate(beta.tolist()):
        torch.testing.assert_close(fe[i], m.free_energy(v, b)[i], rtol=1e-14, atol=1e-14)
        assert torch.equal(vs[i], m.sample_visible(h, gen(4), b)[i])


def test_ais_forward_and_reverse_bracket_the_exact_log_z():
    m = grbm(4, 6, scale=0.7, seed=2)
    lz = exact.rbm.log_partition(m)
    data, _ = exact_samples(m, 200, 21)
    fwd = ais(m, n_chains=200, betas=2000, generator=gen(1), dtype=F64, base=data)
    rev = reverse_ais(m, data, n_chains=200, betas=2000, generator=gen(2), dtype=F64, base=data)
    # intervals of ±3 standard errors (module docstring); and both within 0.05 nats
    assert fwd.log_z_low - 1e-3 <= lz <= fwd.log_z_high + 1e-3
    assert rev.log_z_low - 1e-3 <= lz <= rev.log_z_high + 1e-3
    assert abs(fwd.log_z - lz) < 0.05 and abs(rev.log_z - lz) < 0.05
    # the base model keeps the learned variances: log Z_A = Σ a0²/(2σ²) + ½ log 2πσ² + H log 2
    a0 = data.mean(0)
    z = m.visible_log_variance
    want = ((a0 * a0 / (2 * torch.exp(z))).sum() + 0.5 * (z + math.log(2 * math.pi)).sum()
            + 6 * math.log(2)).item()
    assert fwd.log_z_base == pytest.approx(want, abs=1e-9)


def test_pseudo_likelihood_matches_quadrature():
    m = grbm(3, 4, seed=3)
    v = torch.randn(4, 3, generator=gen(9), dtype=F64)
    x = torch.linspace(-25, 25, 20001, dtype=F64)
    want = torch.zeros(4, dtype=F64)
    for i in range(3):
        rows = v.repeat_interleave(len(x), 0)
        rows[:, i] = x.repeat(4)
        lz = torch.logsumexp(-m.free_energy(rows).reshape(4, -1), 1) + math.log(x[1] - x[0])
        want += -m.free_energy(v) - lz
    torch.testing.assert_close(pseudo_likelihood(m, v), want, rtol=0, atol=1e-7)
    # the stochastic estimate is one unit times 3: its mean over many draws is the exact sum
    many = v.repeat(3000, 1)
    est = pseudo_likelihood(m, many, gen(1)).reshape(3000, 4).mean(0)
    assert torch.allclose(est, want, atol=0.5)


def test_save_load_round_trip_keeps_the_variances(tmp_path):
    m = grbm(5, 3)
    path = tmp_path / "m.safetensors"
    boltzkit.save(m, path)
    assert boltzkit.io.read_metadata(path)["config"]["visible"] == "gaussian:learned"
    m2 = boltzkit.load(path)
    assert isinstance(m2.visible, LearnedGaussian)
    assert sorted(m2.state_dict()) == sorted(m.state_dict())
    for k, t in m.state_dict().items():
        assert torch.equal(m2.state_dict()[k], t), k
    v = torch.randn(4, 5, generator=gen(1), dtype=F64)
    assert torch.equal(m2.free_energy(v), m.free_energy(v))
    floor = RBM(5, 3, "gaussian:learned:0.001")
    boltzkit.save(floor, path)
    assert boltzkit.load(path).visible.min_variance == 0.001


def test_bad_variances_in_a_file_are_refused_with_one_line(tmp_path):
    from safetensors.torch import load_file, save_file

    m = grbm(5, 3)
    good = tmp_path / "m.safetensors"
    boltzkit.save(m, good)
    meta = boltzkit.io.safe_open(str(good), framework="pt").metadata()
    for value, match in ((float("nan"), "tensor 'visible_log_variance' holds NaN or inf"),
                         (80.0, "visible_log_variance: expected log-variances within ±30")):
        tensors = load_file(str(good))
        tensors["visible_log_variance"][1] = value
        bad = tmp_path / "bad.safetensors"
        save_file(tensors, str(bad), metadata=meta)
        with pytest.raises(ValueError, match=match) as err:
            boltzkit.load(bad)
        assert "\n" not in str(err.value)
    tensors = load_file(str(good))
    del tensors["visible_log_variance"]
    bad = tmp_path / "missing.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(ValueError, match="visible_log_variance"):
        boltzkit.load(bad)


def test_old_unit_variance_models_are_unchanged():
    m = RBM(4, 3, "gaussian", dtype=F64)
    assert sorted(dict(m.named_parameters())) == ["hidden_bias", "visible_bias", "weight"]
    v = torch.randn(3, 4, generator=gen(1), dtype=F64)
    assert m.visible_statistic(v) is v
    # a learned-variance model at z = 0 is the unit-variance model
    m2 = RBM(4, 3, "gaussian:learned", dtype=F64)
    with torch.no_grad():
        for n in ("weight", "visible_bias", "hidden_bias"):
            getattr(m2, n).copy_(torch.randn(getattr(m, n).shape, generator=gen(2), dtype=F64))
            getattr(m, n).copy_(getattr(m2, n))
    torch.testing.assert_close(m2.free_energy(v), m.free_energy(v))
    assert exact.rbm.log_partition(m2) == pytest.approx(exact.rbm.log_partition(m), abs=1e-10)


def gaussian_mixture_data(n, seed=0):
    """Two-cluster data with unequal per-feature spreads, (n, 4) float32."""
    g = gen(seed)
    centre = torch.tensor([[1.5, -1.0, 0.0, 0.5], [-1.5, 1.0, 0.0, -0.5]])
    sd = torch.tensor([0.3, 0.5, 1.5, 0.2])
    k = torch.randint(0, 2, (n,), generator=g)
    return centre[k] + sd * torch.randn(n, 4, generator=g)


def test_training_with_the_defaults_learns_and_stays_finite():
    x = gaussian_mixture_data(2000)
    m = RBM(4, 4, "gaussian:learned", generator=gen(1))
    before = exact.rbm.log_partition(m)
    ll0 = (-exact.rbm.free_energy(m, x) - before).mean().item()
    fit(m, x, estimator=PCD(1), epochs=10, batch_size=50, lr=0.05, generator=gen(2),
        update=SGD(0.5, lr_scale={"visible_log_variance": 0.1}))
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert (m.visible_log_variance >= math.log(0.01) - 1e-6).all()  # the floor holds
    ll = (-exact.rbm.free_energy(m, x) - exact.rbm.log_partition(m)).mean().item()
    assert ll > ll0 + 1.0
    # the per-feature spread is learned: the broad third feature gets the largest variance
    assert m.visible_log_variance.argmax().item() == 2


def test_the_floor_holds_when_a_variance_collapses():
    m = grbm(3, 2)
    with torch.no_grad():
        m.visible_log_variance.fill_(-20.0)
    m.constrain_()
    assert torch.allclose(m.visible_log_variance, torch.full((3,), math.log(0.01), dtype=F64))
    m3 = RBM(3, 2, "gaussian:learned:0.2")
    with torch.no_grad():
        m3.visible_log_variance.fill_(-5.0)
    m3.constrain_()
    assert torch.allclose(m3.visible_log_variance, torch.full((3,), math.log(0.2)))


def test_the_ceiling_holds_and_travels_with_the_model(tmp_path):
    m = RBM(3, 2, "gaussian:learned:0.05:2")
    assert m.visible.max_variance == 2.0 and m.visible.spec() == "gaussian:learned:0.05:2.0"
    with torch.no_grad():
        m.visible_log_variance.copy_(torch.tensor([5.0, 0.3, -9.0]))
    m.constrain_()
    assert torch.allclose(m.visible_log_variance,
                          torch.tensor([math.log(2.0), 0.3, math.log(0.05)]))
    boltzkit.save(m, tmp_path / "m.safetensors")
    assert boltzkit.load(tmp_path / "m.safetensors").visible.max_variance == 2.0
    assert get_units("gaussian:learned:0.01").max_variance is None
    for bad in ("gaussian:learned:0.1:0.05", "gaussian:learned:0.01:inf",
                "gaussian:learned:0.01:1e20"):
        with pytest.raises(ValueError, match="max_variance: expected a number above the floor"):
            get_units(bad)


def test_sgd_max_step_norm_bounds_each_hidden_units_step():
    g = gen(4)
    w0 = torch.randn(6, 4, generator=g)
    grad = torch.randn(6, 4, generator=g) * torch.tensor([0.01, 1.0, 10.0, 100.0])
    lr, bound = 0.1, 0.5
    p = {"weight": w0.clone(), "visible_bias": torch.zeros(6)}
    SGD(0.0, max_step_norm=bound).step(p, {"weight": grad, "visible_bias": torch.ones(6)}, lr,
                                       {})
    step = w0 - p["weight"]
    norms = step.norm(dim=0)
    want = (lr * grad.norm(dim=0)).clamp(max=bound)
    assert torch.allclose(norms, want, rtol=1e-5)                     # long steps cut to 0.5
    assert torch.allclose(step[:, 0], lr * grad[:, 0], atol=1e-6)      # a short one untouched
    cos = torch.nn.functional.cosine_similarity(step, grad, dim=0)
    assert torch.allclose(cos, torch.ones(4), atol=1e-5)               # directions kept
    assert torch.allclose(p["visible_bias"], torch.full((6,), -lr))    # biases are not bound
    assert SGD(max_step_norm=0.5).config()["max_step_norm"] == 0.5
    assert "max_step_norm" not in SGD().config()
    assert SGD(max_step_norm=0.5).fused(CD(1), RBM(3, 2)) is None      # the fused path declines
    with pytest.raises(ValueError, match="max_step_norm"):
        SGD(max_step_norm=0.0)


def test_sgd_learning_rate_multipliers():
    p = {"a": torch.ones(2), "b": torch.ones(2)}
    g = {"a": torch.ones(2), "b": torch.ones(2)}
    SGD(0.0, lr_scale={"b": 0.1}).step(p, g, 0.5, {})
    assert torch.equal(p["a"], torch.full((2,), 0.5)) and torch.allclose(p["b"],
                                                                      torch.full((2,), 0.95))
    assert SGD(lr_scale={"b": 0.1}).config()["lr_scale"] == {"b": 0.1}
    assert "lr_scale" not in SGD().config()
    with pytest.raises(ValueError, match=r"lr_scale\['b'\]"):
        SGD(lr_scale={"b": 0.0})
    with pytest.raises(ValueError, match="lr_scale: expected a mapping"):
        SGD(lr_scale=[0.1])


# -- data: natural image patches, ZCA whitening in the preparation record ---------------------------
def test_patches_are_deterministic_and_whitening_round_trips():
    from boltzkit.data import Preparation, load_dataset

    d = load_dataset("patches", "train")
    assert d.data.shape == (20000, 64) and d.image_shape == (8, 8)
    assert torch.equal(d.data[:5], load_dataset("patches", "train").data[:5])
    assert load_dataset("patches", "test").data.shape == (5000, 64)
    x = d.data[:3000]
    prep = Preparation.fit(x, "gaussian:learned", whiten=True)
    assert prep.units == "gaussian" and prep.zca is not None and set(prep.std) == {1.0}
    v = prep.transform(x)
    cov = torch.cov(v.double().t())
    # whitened up to the regulariser: variances λ/(λ + ε) in (0, 1], correlations gone
    assert cov.diagonal().max() < 1.0 + 1e-3
    assert (cov - torch.diag(cov.diagonal())).abs().max() < 0.15  # raw neighbours: ~0.9
    torch.testing.assert_close(prep.inverse(v), x, rtol=0, atol=1e-5)
    again = Preparation.from_dict(prep.to_dict(), units="gaussian:learned")
    assert again == prep
    # the log-determinant turns a log-density of whitened rows into one of pixel rows
    jac = torch.linalg.slogdet(torch.tensor(prep.zca, dtype=F64).reshape(64, 64))[1].item()
    assert prep.log_det_jacobian() == pytest.approx(jac)
    with pytest.raises(ValueError, match="zca: expected n_features² = 4 values"):
        Preparation("gaussian", mean=(0.0, 0.0), std=(1.0, 1.0), zca=(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="zca: expected an invertible"):
        Preparation("gaussian", mean=(0.0, 0.0), std=(1.0, 1.0), zca=(1.0, 1.0, 1.0, 1.0))


def test_cli_trains_a_learned_variance_rbm_on_whitened_patches(tmp_path):
    from boltzkit.cli import main

    out = tmp_path / "run"
    assert main(["train", "--data", "patches", "--visible-units", "gaussian:learned",
                 "--hidden", "8", "--epochs", "1", "--sample-steps", "5", "--no-progress",
                 "--lr", "0.05", "--out", str(out)]) == 0
    path = out / "model.safetensors"
    m = boltzkit.load(path)
    assert m.visible.spec() == "gaussian:learned" and m.visible_log_variance.shape == (64,)
    assert torch.isfinite(m.visible_log_variance).all()
    prep = boltzkit.io.read_metadata(path)["preparation"]
    assert prep.zca is not None and prep.n_features == 64


def test_cli_max_step_norm_is_recorded_and_checked(tmp_path, capsys):
    from boltzkit.cli import main

    out = tmp_path / "r"
    assert main(["train", "--epochs", "1", "--max-step-norm", "0.05", "--out", str(out),
                 "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["settings"]["max_step_norm"] == 0.05
    assert main(["train", "--resume", str(out), "--epochs", "2", "--no-progress"]) == 0
    for bad, said in ((["--max-step-norm", "0"], "expected a finite number > 0"),
                      (["--model", "bm", "--rule", "sign", "--max-step-norm", "1"],
                       "--rule sign takes fixed steps")):
        assert main(["train", *bad, "--out", str(tmp_path / "s")]) == 2
        assert f"--max-step-norm: {said}" in capsys.readouterr().err
