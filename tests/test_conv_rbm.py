"""Convolutional RBM: energies against a dense RBM and brute force, probabilistic max-pooling
against enumeration, block Gibbs against the exact distribution, gradients against autograd of
the exact log-likelihood, training through the one driver, model files, input checks."""

import math

import pytest
import torch

import boltzkit
from boltzkit import ConvRBM, RBM, exact
from boltzkit.samplers import gibbs
from boltzkit.training import fit
from boltzkit.training.estimators import CD, PCD, Sparsity
from boltzkit.training.estimators.rbm import energy_gradient
from boltzkit.training.updates import SGD

from .conftest import gen
from .test_rbm import histogram, tv_bound


def random_conv(image=(1, 3, 3), k=2, f=2, pool=None, visible="bernoulli", scale=0.7, seed=0):
    g = gen(seed)
    m = ConvRBM(image, k, f, pool=pool, visible=visible, dtype=torch.float64)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, scale, generator=g)
    return m


def all_visible(m):
    return m.visible.states(m.n_visible, dtype=torch.float64)  # (2^n, C, H, W)


def all_hidden(m):
    return m.hidden.states(m.n_hidden, dtype=torch.float64)  # (n_states, K, H', W')


def exact_p(m):
    vs = all_visible(m)
    return vs, torch.softmax(-m.free_energy(vs, check=False), 0)


def as_dense(m):
    """The dense RBM with the same energy (no pooling): column j of the weight is the hidden
    field of unit j for the one-hot image e_i, less its bias."""
    eye = torch.eye(m.n_visible, dtype=torch.float64).view(-1, *m.image_shape)
    w = (m.hidden_field(eye) - m.hidden_bias[None, :, None, None]).reshape(m.n_visible, -1)
    d = RBM(m.n_visible, m.n_hidden, m.visible.spec(), "bernoulli", dtype=torch.float64)
    c, h, wd = m.image_shape
    k, hh, ww = m.hidden_shape
    with torch.no_grad():
        d.weight.copy_(w.detach())
        d.visible_bias.copy_(m.visible_bias.detach().repeat_interleave(h * wd))
        d.hidden_bias.copy_(m.hidden_bias.detach().repeat_interleave(hh * ww))
    return d


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_energy_and_free_energy_equal_the_dense_rbm_of_the_same_filters(visible):
    m = random_conv((2, 4, 3), 3, (2, 2), visible=visible, seed=1)
    d = as_dense(m)
    v = m.visible.sample(torch.randn(5, *m.image_shape, generator=gen(2), dtype=torch.float64),
                         gen(3))
    h = m.sample_hidden(v, gen(4))
    flat_v, flat_h = v.reshape(5, -1), h.reshape(5, -1)
    assert torch.allclose(m.energy(v, h), d.energy(flat_v, flat_h), atol=1e-10)
    assert torch.allclose(m.free_energy(v), d.free_energy(flat_v), atol=1e-10)
    assert torch.allclose(m.free_energy_hidden(h), d.free_energy_hidden(flat_h), atol=1e-10)
    assert torch.allclose(m.visible_field(h).reshape(5, -1), d.visible_field(flat_h), atol=1e-10)
    beta = torch.tensor([0.0, 0.3, 1.0, 0.7, 2.0], dtype=torch.float64)
    assert torch.allclose(m.free_energy(v, beta), d.free_energy(flat_v, beta), atol=1e-10)
    assert torch.allclose(m.hidden_mean(v, beta).reshape(5, -1), d.hidden_mean(flat_v, beta))


@pytest.mark.parametrize("pool", [None, 2])
def test_free_energy_is_minus_log_sum_of_the_energy_over_hidden_states(pool):
    m = random_conv((1, 3, 3), 2, 2, pool=pool, seed=5)  # hidden maps 2 x 2 x 2
    hs = all_hidden(m)
    assert len(hs) == (2 ** 8 if pool is None else 5 ** 2)
    v = all_visible(m)[::37]
    e = torch.stack([m.energy(row.expand(len(hs), -1, -1, -1), hs) for row in v])
    assert torch.allclose(m.free_energy(v), -torch.logsumexp(-e, 1), atol=1e-10)
    # and log Z is the same from either layer (the hidden one sums the pooled states)
    assert exact.rbm.log_partition(m, "visible") == pytest.approx(
        exact.rbm.log_partition(m, "hidden"), abs=1e-9)


def test_gaussian_visible_log_z_matches_quadrature():
    m = random_conv((1, 1, 2), 2, 1, visible="gaussian", scale=0.8, seed=6)  # 2 visible units
    grid = torch.linspace(-12, 12, 1201, dtype=torch.float64)
    dv = (grid[1] - grid[0]).item()
    v = torch.cartesian_prod(grid, grid).view(-1, 1, 1, 2)
    quad = torch.logsumexp(-m.free_energy(v), 0).item() + 2 * math.log(dv)
    assert exact.rbm.log_partition(m, "hidden") == pytest.approx(quad, abs=1e-6)


def test_pooling_probabilities_sum_to_one_and_match_enumeration():
    m = random_conv((2, 5, 5), 2, 2, pool=2, scale=1.5, seed=7)  # maps 2 x 4 x 4: 8 blocks
    v = m.visible.sample(torch.zeros(4, *m.image_shape, dtype=torch.float64), gen(8))
    mean = m.hidden_mean(v)
    field = m.hidden_field(v)
    off = m.hidden.block_off(field)
    blocks = mean.reshape(4, 2, 2, 2, 2, 2).sum((3, 5))  # per block: sum over its 2 x 2 units
    assert torch.allclose(blocks + off, torch.ones_like(off), atol=1e-12)
    assert torch.allclose(m.pooled_mean(v), blocks, atol=1e-12)
    # brute force on one block: softmax over its four fields and a zero
    t = field[0, 1, 2:4, 0:2].reshape(-1)
    z = 1 + t.exp().sum()
    assert torch.allclose(mean[0, 1, 2:4, 0:2].reshape(-1), t.exp() / z, atol=1e-12)
    # enumeration of a smaller model's pooled states: E[h | v] and P(block on) from p(h | v)
    s = random_conv((1, 3, 3), 2, 2, pool=2, scale=1.5, seed=9)
    hs = all_hidden(s)
    vv = all_visible(s)[[3, 200, 511]]
    for row in vv:
        e = s.energy(row.expand(len(hs), -1, -1, -1), hs)
        p = torch.softmax(-e, 0)
        assert torch.allclose((p[:, None, None, None] * hs).sum(0), s.hidden_mean(row[None])[0],
                              atol=1e-12)
        on = hs.reshape(len(hs), 2, -1).amax(-1)  # (states, K): the block of each map
        assert torch.allclose(p @ on, s.pooled_mean(row[None]).reshape(-1), atol=1e-12)


def test_pooled_sampling_turns_on_at_most_one_unit_per_block_with_the_right_frequencies():
    m = random_conv((1, 3, 3), 2, 2, pool=2, scale=1.0, seed=10)
    v = all_visible(m)[[77]].expand(40000, -1, -1, -1)
    h = m.sample_hidden(v, gen(11))
    per_block = h.reshape(40000, 2, 4)  # one 2 x 2 block per map
    assert per_block.sum(-1).max() <= 1
    states = torch.cat([torch.eye(4, dtype=torch.float64), torch.zeros(1, 4,
                                                                       dtype=torch.float64)])
    mean = m.hidden_mean(v[:1])[0].reshape(2, 4)
    for k in range(2):
        p = torch.cat([mean[k], 1 - mean[k].sum(0, keepdim=True)])
        freq = (per_block[:, k, None, :] == states).all(-1).double().mean(0)
        assert 0.5 * (freq - p).abs().sum().item() < tv_bound(p, 40000)


@pytest.mark.parametrize("pool", [None, 2])
def test_block_gibbs_reproduces_the_exact_distribution(pool):
    m = random_conv((1, 3, 3), 2, 2, pool=pool, scale=0.8, seed=12)
    states, p = exact_p(m)
    n = 50000  # independent chains; one draw each after burn-in
    g = gen(13)
    start = m.visible.sample(torch.zeros(n, *m.image_shape, dtype=torch.float64), g)
    state = gibbs.run(m, gibbs.init(m, start, g), 60, g)
    if pool is not None:
        assert state.hidden.reshape(n, 2, 4).sum(-1).max() <= 1
    flat = states.reshape(len(states), -1)
    got = histogram(state.visible.reshape(n, -1), flat)
    assert 0.5 * (got - p).abs().sum().item() < tv_bound(p, n)
    # power: the same draws are far from another model's distribution
    q = exact_p(random_conv((1, 3, 3), 2, 2, pool=pool, scale=0.8, seed=14))[1]
    assert 0.5 * (got - q).abs().sum().item() > 2 * tv_bound(q, n)


def test_tempered_chains_use_their_own_beta():
    m = random_conv((1, 3, 3), 2, 2, pool=2, scale=0.8, seed=15)
    v = all_visible(m)[:4]
    beta = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    for i in range(4):
        assert torch.allclose(m.hidden_mean(v, beta)[i], m.hidden_mean(v[i:i + 1],
                                                                        float(beta[i]))[0])
        assert m.free_energy(v, beta)[i].item() == pytest.approx(
            m.free_energy(v[i:i + 1], float(beta[i]))[0].item(), abs=1e-12)
    assert torch.allclose(m.hidden_mean(v, 0.0).reshape(4, 2, 4).sum(-1),
                          torch.full((4, 2), 0.8, dtype=torch.float64))  # 4 of 5 states


@pytest.mark.parametrize("pool", [None, 2])
def test_gradient_equals_autograd_of_the_exact_log_likelihood(pool):
    m = random_conv((1, 3, 3), 2, 2, pool=pool, scale=0.6, seed=16)
    names = [n for n, _ in m.named_parameters()]
    vs = all_visible(m)
    data = vs[torch.randint(0, len(vs), (30,), generator=gen(17))]
    with torch.enable_grad():  # -mean log p(data) = mean F(data) + log Z (enumerated)
        loss = m.free_energy(data).mean() + torch.logsumexp(-m.free_energy(vs), 0)
        want = dict(zip(names, torch.autograd.grad(loss, list(m.parameters()))))
    with torch.enable_grad():  # data side: dE/dθ at the data and E[h | data] (held fixed)
        e_data = m.energy(data, m.hidden_mean(data).detach(), check=False).mean()
        g_data = dict(zip(names, torch.autograd.grad(e_data, list(m.parameters()))))
    model_side = exact.rbm.expected_parameter_gradients(m, names, "visible")
    for k in names:
        assert torch.allclose(g_data[k] - model_side[k], want[k], atol=1e-10), k
    # negative samples drawn from the exact distribution: energy_gradient is the exact gradient
    # in expectation; its error per coordinate is within 5 standard errors of the draw
    p = torch.softmax(-m.free_energy(vs), 0)
    n = 100000
    neg = vs[torch.multinomial(p, n, replacement=True, generator=gen(18))]
    grads = energy_gradient(m, data, m.hidden_mean(data), neg, m.hidden_mean(neg))
    per_state = {k: [] for k in names}  # dF(v)/dθ of every visible state, for the spread
    for row in vs:
        with torch.enable_grad():
            gs = torch.autograd.grad(m.free_energy(row[None], check=False).sum(),
                                     list(m.parameters()))
        for k, g in zip(names, gs):
            per_state[k].append(g)
    for k in names:
        d = torch.stack(per_state[k])  # (states, *shape)
        pp = p.view(-1, *([1] * (d.dim() - 1)))
        sd = ((pp * d * d).sum(0) - (pp * d).sum(0) ** 2).clamp(min=0).sqrt()
        assert ((grads[k] - want[k]).abs() <= 5 * sd / math.sqrt(n) + 1e-9).all(), k


@pytest.mark.parametrize("pool", [None, 2])
def test_closed_form_gradient_equals_autograd_of_the_mean_energies(pool):
    m = random_conv((2, 5, 7), 3, (2, 4), pool=pool, seed=31)
    v_pos = m.visible.sample(torch.zeros(6, *m.image_shape, dtype=torch.float64), gen(32))
    v_neg = m.visible.sample(torch.zeros(4, *m.image_shape, dtype=torch.float64), gen(33))
    h_pos, h_neg = m.hidden_mean(v_pos).detach(), m.sample_hidden(v_neg, gen(34))
    with torch.enable_grad():
        e = m.energy(v_pos, h_pos, check=False).mean() - m.energy(v_neg, h_neg).mean()
        want = torch.autograd.grad(e, list(m.parameters()))
    got = energy_gradient(m, v_pos, h_pos, v_neg, h_neg)
    for (name, _), w in zip(m.named_parameters(), want):
        assert torch.allclose(got[name], w, atol=1e-10), name


def test_cd_and_pcd_train_a_conv_rbm_through_the_driver_and_the_fused_path_is_declined():
    assert SGD().fused(CD(1), ConvRBM((1, 4, 4), 2, 2)) is None
    gm = random_conv((1, 3, 3), 2, 2, pool=2, scale=1.2, seed=19)  # the data's source
    vs, p = exact_p(gm)
    data = vs[torch.multinomial(p, 600, replacement=True, generator=gen(20))].float()
    for est in (CD(1), PCD(1, n_chains=50), Sparsity(CD(1), target=0.1, cost=0.5)):
        m = ConvRBM((1, 3, 3), 2, 2, pool=2, generator=gen(21))
        before = m.double()
        ll0 = -(before.free_energy(data.double()).mean() +
                exact.rbm.log_partition(before, "visible"))
        m.float()
        state = fit(m, data, estimator=est, epochs=15, batch_size=20, lr=0.1, generator=gen(22),
                    progress=False)
        assert state.epoch == 15 and state.grads is not None  # the general (unfused) route
        md = m.double()
        ll = -(md.free_energy(data.double()).mean() + exact.rbm.log_partition(md, "visible"))
        assert ll.item() > ll0.item() + 0.3, est


def test_sparsity_pulls_mean_activations_towards_the_target():
    data = (torch.rand(200, 1, 6, 6, generator=gen(23)) < 0.5).float()
    acts = {}
    for cost in (0.0, 5.0):
        m = ConvRBM((1, 6, 6), 3, 3, generator=gen(24))
        fit(m, data, estimator=Sparsity(CD(1), target=0.02, cost=cost), epochs=5,
            batch_size=20, lr=0.1, generator=gen(25), progress=False)
        acts[cost] = m.hidden_mean(data).mean().item()
    assert acts[5.0] < 0.5 * acts[0.0]
    assert acts[5.0] < 0.1
    with pytest.raises(ValueError, match="target"):
        Sparsity(CD(1), target=1.5)


@pytest.mark.parametrize("pool,visible", [(None, "bernoulli"), (2, "bernoulli"),
                                          (None, "gaussian")])
def test_model_file_round_trip(tmp_path, pool, visible):
    m = random_conv((2, 5, 5), 3, 2, pool=pool, visible=visible, seed=26).float()
    path = boltzkit.save(m, tmp_path / "conv.safetensors")
    back = boltzkit.load(path)
    assert isinstance(back, ConvRBM) and back.config() == m.config()
    for k, t in m.state_dict().items():
        assert torch.equal(back.state_dict()[k], t)
    v = (torch.rand(3, 2, 5, 5, generator=gen(27)) < 0.5).float()
    assert torch.equal(back.free_energy(v), m.free_energy(v))


def test_model_files_that_do_not_fit_their_configuration_are_refused(tmp_path):
    import json

    from safetensors.torch import save_file

    m = ConvRBM((1, 5, 5), 2, 2, pool=2)
    path = boltzkit.save(m, tmp_path / "ok.safetensors")
    meta = boltzkit.io.read_metadata(path)
    tensors = {k: v.contiguous() for k, v in m.state_dict().items()}

    def write(config, tensors=tensors):
        p = tmp_path / "bad.safetensors"
        save_file(tensors, str(p), metadata={"format": "boltzkit", "format_version": "1",
                                             "model": "ConvRBM", "config": json.dumps(config)})
        return p

    good = meta["config"]
    for change, word in [({"n_filters": 3}, "weight"), ({"image_shape": [2, 5, 5]}, "weight"),
                         ({"pool": 3}, "pool"), ({"filter_shape": [9, 9]}, "filter_shape"),
                         ({"n_filters": 2.0}, "n_filters"), ({"visible": "spin"}, "visible"),
                         ({"image_shape": [1, 5]}, "image_shape"), ({"extra": 1}, "extra")]:
        with pytest.raises(ValueError, match=word):
            boltzkit.load(write({**good, **change}))


def test_bad_inputs_are_refused_with_one_line():
    m = ConvRBM((1, 4, 4), 2, 2)
    for bad, word in [(torch.zeros(3, 16), r"reshape\(-1, 1, 4, 4\)"),
                      (torch.zeros(3, 1, 4, 5), "shape"), (torch.zeros(0, 1, 4, 4), "empty"),
                      (torch.full((2, 1, 4, 4), math.nan), "NaN"),
                      (torch.full((2, 1, 4, 4), 2.0), "bernoulli"), ("x", "tensor")]:
        with pytest.raises(ValueError, match=word) as err:
            m.free_energy(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="0, 1"):
        m.energy(torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, 2, 3, 3))
    pooled = ConvRBM((1, 5, 5), 2, 2, pool=2)
    two_on = torch.zeros(1, 2, 4, 4)
    two_on[0, 0, 0, 0] = two_on[0, 0, 1, 1] = 1.0
    with pytest.raises(ValueError, match="at most one unit on"):
        pooled.free_energy_hidden(two_on)
    for kwargs, word in [(dict(pool=3), "pool"), (dict(filter_shape=(6, 2)), "filter_shape"),
                         (dict(visible="spin"), "visible"), (dict(n_filters=0), "n_filters"),
                         (dict(image_shape=(1, 5)), "image_shape"), (dict(pool=1), "pool")]:
        args = dict(image_shape=(1, 5, 5), n_filters=2, filter_shape=2)
        with pytest.raises(ValueError, match=word):
            ConvRBM(**{**args, **kwargs})
    with pytest.raises(ValueError, match="data"):
        fit(ConvRBM((1, 4, 4), 2, 2), torch.rand(10, 16), epochs=1, progress=False)


def test_pcd_run_resumes_bit_identically_from_its_run_folder(tmp_path):
    from boltzkit.training.callbacks import Checkpoint

    data = (torch.rand(90, 1, 5, 5, generator=gen(28)) < 0.4).float()

    def train(epochs, resume=None):
        m = ConvRBM((1, 5, 5), 2, 2, pool=2, generator=gen(29))
        est = Sparsity(PCD(2, n_chains=7), target=0.1, cost=0.3)
        fit(m, data, estimator=est, update=SGD(0.5, 1e-3), epochs=epochs, batch_size=20,
            lr=0.1, generator=gen(30), callbacks=[Checkpoint(tmp_path)], resume=resume,
            progress=False)
        return m

    straight = {k: v.clone() for k, v in train(3).state_dict().items()}
    for p in tmp_path.iterdir():
        p.unlink()
    train(1)
    resumed = train(3, resume=tmp_path)
    for k, t in resumed.state_dict().items():
        assert torch.equal(t, straight[k]), k
    assert isinstance(boltzkit.load(tmp_path / "model.safetensors"), ConvRBM)


# -- the fast paths of the pooling and of the visible field ------------------------------------
def test_pooling_of_three_by_three_blocks_matches_enumeration_and_autograd():
    m = random_conv((1, 4, 4), 2, 2, pool=3, scale=1.5, seed=40)  # maps 2 x 3 x 3: one block each
    v = all_visible(m)[[5, 999, 40000]]
    field = m.hidden_field(v)
    for row in range(3):
        for k in range(2):
            t = field[row, k].reshape(-1)
            z = 1 + t.exp().sum()
            assert torch.allclose(m.hidden_mean(v)[row, k].reshape(-1), t.exp() / z, atol=1e-12)
            assert m.hidden.block_off(field)[row, k, 0, 0].item() == pytest.approx(
                1 / z.item(), abs=1e-12)
    want = torch.log1p(field.reshape(3, 2, 9).exp().sum(-1)).sum(-1)
    assert torch.allclose(m.hidden.log_partition(field), want, atol=1e-12)
    # with autograd (the differentiable assembly) the same values, and the gradient of the
    # log-partition is the mean
    f = field.detach().requires_grad_()
    with torch.enable_grad():
        mean = m.hidden.mean(f)
        (g,) = torch.autograd.grad(m.hidden.log_partition(f).sum(), f)
    assert torch.allclose(mean, m.hidden_mean(v), atol=1e-12)
    assert torch.allclose(g, m.hidden_mean(v), atol=1e-12)
    # one draw per block: at most one unit on, frequencies as the block's softmax
    n = 30000
    h = m.hidden.sample_from_mean(m.hidden_mean(v[:1]).expand(n, -1, -1, -1), gen(41))
    flat = h.reshape(n, 2, 9)
    assert flat.sum(-1).max() <= 1
    p = torch.cat([m.hidden_mean(v[:1])[0, 0].reshape(-1),
                   m.hidden.block_off(field[:1])[0, 0].reshape(1)])
    freq = torch.cat([flat[:, 0].mean(0), (flat[:, 0].sum(-1) == 0).double().mean(0, True)])
    assert 0.5 * (freq - p).abs().sum().item() < tv_bound(p, n)


def test_large_fields_keep_exact_probabilities_and_log_partitions():
    """Fields of ±300 (a trained model's reach): the exponent floor changes nothing that
    float64 can show."""
    from boltzkit.models.conv_rbm import PooledBernoulli

    units = PooledBernoulli(2, (1, 2, 2))
    t = torch.tensor([[[[-300.0, -250.0], [2.0, -400.0]]], [[[300.0, 299.0], [-300.0, 0.0]]],
                      [[[-300.0, -300.0], [-300.0, -300.0]]]], dtype=torch.float64)
    flat = t.reshape(3, 4)
    lse = torch.logsumexp(torch.cat([flat, torch.zeros(3, 1, dtype=t.dtype)], 1), 1)
    assert torch.allclose(units.log_partition(t), lse, rtol=1e-15, atol=1e-15)
    mean = units.mean(t).reshape(3, 4)
    assert torch.allclose(mean, torch.exp(flat - lse[:, None]), atol=1e-30, rtol=1e-12)
    assert torch.isfinite(units.mean(t.float())).all()


@pytest.mark.parametrize("channels", [1, 2])
def test_visible_field_equals_the_transposed_convolution_with_and_without_autograd(channels):
    import torch.nn.functional as F

    m = random_conv((channels, 7, 6), 3, (3, 2), seed=42)
    h = m.sample_hidden(m.visible.sample(torch.zeros(4, channels, 7, 6, dtype=torch.float64),
                                         gen(43)), gen(44))
    want = F.conv_transpose2d(h, m.weight, m.visible_bias)
    assert torch.allclose(m.visible_field(h), want, atol=1e-12)
    with torch.enable_grad():
        got = torch.autograd.grad(m.visible_field(h).pow(2).sum(), m.weight)[0]
        ref = torch.autograd.grad(F.conv_transpose2d(h, m.weight, m.visible_bias).pow(2).sum(),
                                  m.weight)[0]
    assert torch.allclose(got, ref, atol=1e-10)


# -- evaluation: AIS, reverse AIS and evaluate() against enumeration ---------------------------
@pytest.mark.parametrize("pool,visible", [(None, "bernoulli"), (2, "bernoulli"),
                                          (2, "gaussian")])
def test_ais_and_reverse_ais_find_the_exact_log_z_of_a_tiny_conv_rbm(pool, visible):
    from boltzkit.evaluation import ais, reverse_ais

    m = random_conv((1, 3, 3), 2, 2, pool=pool, visible=visible, scale=0.8, seed=45).float()
    lz = exact.rbm.log_partition(m)
    g = gen(46)  # reverse AIS starts at samples of the model (Gibbs chains, long burnt in)
    start = m.visible.sample(torch.zeros(60, 1, 3, 3), g)
    data = gibbs.run(m, gibbs.init(m, start, g), 200, g).visible
    forward = ais(m, base=data, n_chains=100, betas=500, generator=gen(47))
    backward = reverse_ais(m, data, base=data, n_chains=60, betas=500, generator=gen(48))
    for res in (forward, backward):
        # the exact value inside the estimate's 3-standard-error interval, which is narrow
        # enough to tell a wrong path (a lost term of the increments moves it by nats)
        assert res.log_z_low <= lz <= res.log_z_high, (res, lz)
        assert res.log_z_high - res.log_z_low < 0.5
        assert res.log_weights.shape == (100 if res is forward else 60,)


def test_evaluate_gives_a_conv_rbm_the_figures_of_brute_force():
    from boltzkit.evaluation import evaluate

    m = random_conv((1, 3, 3), 2, 2, pool=2, scale=0.8, seed=49)
    vs, p = exact_p(m)
    idx = torch.multinomial(p, 400, replacement=True, generator=gen(50))
    data = vs[idx]
    r = evaluate(m, data, log_z="both", chains=30, betas=300)
    assert set(r["estimates"]) == {"exact", "ais", "reverse-ais"}
    log_z = torch.logsumexp(-m.free_energy(vs), 0).item()
    assert r["log_z_method"] == "exact" and r["log_z"] == pytest.approx(log_z, abs=1e-9)
    assert r["log_likelihood"] == pytest.approx(p[idx].log().mean().item(), abs=1e-9)
    lo, hi = r["log_likelihood_bracket"]
    assert abs(lo - r["log_likelihood"]) < 0.2 and abs(hi - r["log_likelihood"]) < 0.2
    # pseudo-likelihood by its definition: p(v_i | v_-i) from the exact joint
    flat = vs.reshape(len(vs), -1)
    code = (flat * 2 ** torch.arange(9, dtype=torch.float64)).sum(1).long()
    assert torch.equal(code, torch.arange(len(vs)))  # states enumerate in binary order
    pl = torch.zeros(len(idx), dtype=torch.float64)
    for i in range(9):
        other = idx ^ (1 << i)
        pl += torch.log(p[idx] / (p[idx] + p[other]))
    assert r["pseudo_likelihood_method"] == "exact"
    assert r["pseudo_likelihood"] == pytest.approx(pl.mean().item(), abs=1e-9)
    recon = (data - m.reconstruction(data)).pow(2).mean().item()
    assert r["reconstruction_error"] == pytest.approx(recon, abs=1e-12)
    # the stochastic estimate (one unit per image, times 9) is unbiased: within 5 standard
    # errors of the exact value over 400 images
    s = evaluate(m, data, log_z="exact", pseudo_likelihood_method="stochastic", seed=3)
    assert s["pseudo_likelihood_method"] == "stochastic"
    assert abs(s["pseudo_likelihood"] - pl.mean().item()) < 5 * s["pseudo_likelihood_std_error"]
    assert s["pseudo_likelihood"] != r["pseudo_likelihood"]


def test_layers_too_large_to_count_are_not_enumerable():
    m = ConvRBM((1, 28, 28), 24, 9, pool=2)  # 2400 blocks of 5 states, 784 binary pixels
    assert m.hidden.n_states(m.n_hidden) == math.inf
    assert ConvRBM((1, 28, 28), 24, 9).hidden.n_states(9600) == math.inf
    assert exact.rbm.enumerable_layer(m) is None and not exact.rbm.can_enumerate(m)


@pytest.mark.parametrize("pool", [None, 2])
def test_the_annealing_increments_without_cancellation_equal_the_float64_differences(pool):
    """AIS's per-step log-weight change: the expm1 forms it uses for small steps against the
    plain difference of two log-partitions (its form for large steps), on the path that keeps
    the hidden biases in the base model."""
    from boltzkit.evaluation.ais import _ImageAnnealer

    m = random_conv((1, 5, 5), 2, 2, pool=pool, scale=0.7, seed=51).float()
    v = m.visible.sample(torch.zeros(6, 1, 5, 5), gen(52))
    an = _ImageAnnealer(m, v, torch.float32, gen(53))
    c = an.hidden_field(v)
    for beta, step in [(0.3, 1e-3), (0.9, 2e-2)]:
        mean = an.mean(an.H, c, beta)
        fast = an.increment(v, c, mean, beta, beta + step)
        an.bound = math.inf  # the float64 route
        slow = an.increment(v, c, mean, beta, beta + step)
        an.bound = 0.0
        assert torch.allclose(fast.double(), slow.double(), rtol=1e-4, atol=1e-7)
        # and the path's end points: f_1 is the model's exp(-F(v)), f_0 the base model's
        f1 = an.H.log_partition(an._shifted(c.double(), 1.0)) + v.flatten(1).double() @ \
            m.visible_bias.double().repeat_interleave(25)
        assert torch.allclose(f1, -m.double().free_energy(v.double()), atol=1e-9)
