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
