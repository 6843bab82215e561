import copy
import itertools

import pytest
import torch

import boltzkit
from boltzkit import DBN, RBM, exact
from boltzkit.evaluation import ais
from boltzkit.evaluation import dbn as evaluation
from boltzkit.samplers import dbn as sampler
from boltzkit.training import ExactGradient, train_dbn

from .conftest import gen
from .test_rbm import histogram, tv_bound


def all_states(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)


def exact_dbn_log_likelihood(model, v):
    """log p(v) of a two-layer DBN: log sum_h1 p_top(h1) p(v | h1), by enumeration of h1."""
    bottom, top = model.rbm(0).double(), model.rbm(1).double()
    hs = all_states(bottom.n_hidden)
    log_top = -top.free_energy(hs) - exact.rbm.log_partition(top)                 # (S,)
    # log p(v | h) = -E(v, h) + F'(h), every row of v against every h
    n, s = v.shape[0], hs.shape[0]
    vr, hr = v.repeat_interleave(s, 0), hs.repeat(n, 1)
    log_pv = (-bottom.energy(vr, hr) + bottom.free_energy_hidden(hr)).reshape(n, s)
    return torch.logsumexp(log_pv + log_top, 1)


def training_data(n=120, seed=10):
    g = gen(seed)
    protos = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]],
                          dtype=torch.float64)
    rows = protos[torch.randint(0, 3, (n,), generator=g)]
    flip = torch.rand(n, 6, generator=g, dtype=torch.float64) < 0.1
    return torch.where(flip, 1 - rows, rows)


def first_layer(data, seed=0):
    """A DBN 6-4-6 whose bottom RBM is trained and whose top RBM is its transpose."""
    dbn = train_dbn(data, [6, 4], epochs=60, batch_size=20, lr=0.1, generator=gen(seed))
    out = DBN([6, 4, 6], dtype=torch.float64)
    out.set_rbm(0, dbn.rbm(0).double())
    r = dbn.rbm(0).double()
    top = RBM(4, 6, dtype=torch.float64)
    with torch.no_grad():
        top.weight.copy_(r.weight.t())
        top.visible_bias.copy_(r.hidden_bias)
        top.hidden_bias.copy_(r.visible_bias)
    out.set_rbm(1, top)
    return out


def bound(model, data):
    top = model.rbm(1).double()
    return evaluation.variational_bound(model, data, exact.rbm.log_partition(top),
                                        n_samples=None)


def test_transposed_top_layer_makes_the_bound_the_rbm_likelihood():
    data = training_data()
    model = first_layer(data)
    rbm = model.rbm(0).double()
    rbm_ll = -rbm.free_energy(data) - exact.rbm.log_partition(rbm)
    # the DBN with the transposed top defines the RBM's p(v), and q is its true posterior
    assert torch.allclose(exact_dbn_log_likelihood(model, data), rbm_ll, atol=1e-9)
    assert torch.allclose(bound(model, data), rbm_ll, atol=1e-9)


def test_greedy_step_does_not_lower_the_variational_bound():
    data = training_data()
    model = first_layer(data)
    before = bound(model, data)
    # the greedy step: train the top RBM on draws of q(h1 | v), from the transposed start
    trained = train_dbn(data, [6, 4, 6], epochs=40, batch_size=200, lr=0.1,
                        estimator=ExactGradient(), features="sample", n_samples=20,
                        init_transpose=True, generator=gen(0), dbn=copy.deepcopy(model),
                        start=1)
    assert torch.equal(trained.weight_0, model.weight_0)  # the bottom layer is kept
    assert not torch.equal(trained.weight_1, model.weight_1)
    after = bound(trained, data)
    assert after.mean() >= before.mean() - 1e-9
    assert (bound(trained, data) <= exact_dbn_log_likelihood(trained, data) + 1e-9).all()


def test_ais_bound_of_a_two_layer_dbn_sits_below_the_exact_log_likelihood():
    data = training_data()
    model = train_dbn(data, [6, 4, 3], epochs=60, batch_size=20, lr=0.1, generator=gen(1),
                      dbn=DBN([6, 4, 3], dtype=torch.float64))
    top = model.rbm(1)
    r = ais(top, n_chains=200, betas=2000, generator=gen(2), dtype=torch.float64)
    truth_z = exact.rbm.log_partition(top)
    assert abs(r.log_z - truth_z) < 0.05
    est = evaluation.variational_bound(model, data, r.log_z, n_samples=200, generator=gen(3))
    ll = exact_dbn_log_likelihood(model, data)
    # the bound's gap (the mean KL from q to the posterior) exceeds AIS's error by far here
    assert est.mean() < ll.mean()
    exact_bound = evaluation.variational_bound(model, data, truth_z, n_samples=None)
    assert (exact_bound <= ll + 1e-9).all()
    # the sampled estimate is close to the exact bound (200 draws per row, 120 rows)
    assert abs(est.mean().item() - exact_bound.mean().item() - (truth_z - r.log_z)) < 0.05


def test_generation_follows_the_dbn_distribution():
    data = training_data()
    model = train_dbn(data, [6, 4, 3], epochs=30, batch_size=20, lr=0.1, generator=gen(4),
                      dbn=DBN([6, 4, 3], dtype=torch.float64))
    states = all_states(6)
    p = torch.exp(exact_dbn_log_likelihood(model, states))
    assert p.sum().item() == pytest.approx(1.0, abs=1e-9)
    n = 20000
    v, mean = sampler.generate(model, n, n_steps=200, generator=gen(5))
    assert v.shape == mean.shape == (n, 6)
    tv = 0.5 * (histogram(v, states) - p).abs().sum().item()
    assert tv < tv_bound(p, n)


def test_layers_are_trained_on_the_previous_activations():
    data = training_data()
    model = train_dbn(data, [6, 5, 4], epochs=3, batch_size=20, lr=0.1, generator=gen(6))
    assert model.transform(data.float()).shape == (120, 4)
    assert torch.allclose(model.transform(data.float(), layer=1),
                          model.rbm(0).hidden_mean(data.float()))


def test_save_load_and_bad_input(tmp_path):
    model = train_dbn(training_data().float(), [6, 5, 4], epochs=1, generator=gen(7))
    back = boltzkit.load(boltzkit.save(model, tmp_path / "dbn.safetensors"))
    assert isinstance(back, DBN) and back.sizes == (6, 5, 4)
    for k, t in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], t)
    with pytest.raises(ValueError, match="sizes"):
        DBN([6])
    with pytest.raises(ValueError, match="features"):
        train_dbn(training_data(), [6, 4], features="both")
    with pytest.raises(ValueError, match="data"):
        train_dbn(torch.zeros(5, 7), [6, 4])
    with pytest.raises(ValueError, match="rbm"):
        model.set_rbm(0, RBM(6, 3))
    with pytest.raises(ValueError, match="l"):
        model.rbm(2)
    with pytest.raises(ValueError, match="model"):
        evaluation.variational_bound(DBN([6, 4, 3, 2]), training_data(), 0.0)
