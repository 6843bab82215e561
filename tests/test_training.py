import math

import pytest
import torch

import boltzkit
from boltzkit import RBM, exact
from boltzkit.training import CD, PCD, SGD, Callback, Checkpoint, ExactGradient, fit

NAMES = ("weight", "visible_bias", "hidden_bias")

from .conftest import gen
from .test_rbm import random_rbm, some_visible


def exact_mean_log_likelihood(m, v):
    """Differentiable exact mean log-likelihood (enumerating the hidden layer with autograd)."""
    hs = m.hidden.states(m.n_hidden, dtype=m.weight.dtype)
    log_z = torch.logsumexp(-m.free_energy_hidden(hs), 0)
    return (-m.free_energy(v)).mean() - log_z


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "softmax:2"),
                                            ("gaussian", "bernoulli"), ("softmax:3", "spin")])
def test_exact_gradient_is_the_gradient_of_the_log_likelihood(visible, hidden):
    m = random_rbm(6, 4, visible, hidden)
    v = some_visible(m, 10)
    loss = -exact_mean_log_likelihood(m, v)
    auto = torch.autograd.grad(loss, [m.weight, m.visible_bias, m.hidden_bias])
    with torch.no_grad():
        grad, _ = ExactGradient()(m, v)
    assert set(grad) == set(NAMES)
    for a, name in zip(auto, NAMES):
        assert torch.allclose(a, grad[name], atol=1e-9)


def test_pcd_with_long_chains_matches_the_exact_gradient():
    m = random_rbm(6, 4, scale=0.6, seed=11)
    v = some_visible(m, 50, seed=12)
    n_chains = 20000
    g = gen(13)
    with torch.no_grad():
        exact_grad, _ = ExactGradient()(m, v)
        estimator = PCD(k=200, n_chains=n_chains)
        grad, chains = estimator(m, v, estimator.init_state(m, v, g), g)
    # The model statistics are means over n_chains independent chains of products in [0, 1]
    # (variance <= 1/4), so each gradient component has standard error <= 0.5 / sqrt(n_chains);
    # the positive statistics are exact. 5 standard errors: per component P < 6e-7.
    bound = 5 * 0.5 / math.sqrt(n_chains)
    for name in NAMES:
        assert (grad[name] - exact_grad[name]).abs().max().item() < bound
    # ... and the comparison has power: CD-1 is biased far beyond that bound on this model
    cd, _ = CD(1)(m, v, None, g)
    assert (cd["weight"] - exact_grad["weight"]).abs().max().item() > 3 * bound
    assert chains.visible.shape == (n_chains, 6)  # the persistent state comes back


def test_cd_is_data_minus_model_statistics():
    m = random_rbm(5, 3)
    v = some_visible(m, 8)
    grad, _ = CD(2)(m, v, None, gen(1))
    # rerun the same chain by hand with the same random numbers
    g = gen(1)
    h0 = m.hidden_mean(v)
    state = boltzkit.samplers.gibbs.init(m, v, g)
    for _ in range(2):
        state = boltzkit.samplers.gibbs.step(m, state, g)
    vk, hk = state.visible, state.hidden_mean
    assert torch.allclose(grad["weight"], vk.t() @ hk / 8 - v.t() @ h0 / 8, atol=1e-12)
    assert torch.allclose(grad["visible_bias"], vk.mean(0) - v.mean(0), atol=1e-12)
    assert torch.allclose(grad["hidden_bias"], hk.mean(0) - h0.mean(0), atol=1e-12)


def test_exact_gradient_descent_raises_the_likelihood():
    # two prototypes with 10% of the bits flipped: far from any independent-units model
    g = gen(2)
    proto = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4], dtype=torch.float64)
    data = proto[torch.randint(0, 2, (200,), generator=g)]
    flip = torch.rand(data.shape, generator=g, dtype=torch.float64) < 0.1
    data = torch.where(flip, 1 - data, data)
    m = random_rbm(8, 4, scale=0.01, seed=2)
    m.init_visible_bias(data)
    history = []
    for _ in range(5):
        history.append(exact_mean_log_likelihood(m, data).item())
        fit(m, data, estimator=ExactGradient(), epochs=10, batch_size=200, lr=0.5,
            update=SGD(momentum=0.5), init_visible_bias=False, generator=gen(0))
    history.append(exact_mean_log_likelihood(m, data).item())
    assert all(b > a for a, b in zip(history, history[1:])), history
    assert history[-1] > history[0] + 1.0, history


# gains seen with these seeds: CD-1 +5.8 nats, PCD +3.3 nats (PCD needs more updates)
@pytest.mark.parametrize("estimator", [CD(1), PCD(1, n_chains=100)], ids=repr)
def test_fit_is_reproducible_and_learns_digits(estimator):
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data[:500] / 16 > 0.5, dtype=torch.float32)
    lr, gain = (0.1, 4.0) if isinstance(estimator, CD) and not isinstance(estimator, PCD) \
        else (0.05, 2.5)
    models = []
    for _ in range(2):
        m = RBM(64, 16, generator=gen(0))
        state = fit(m, x, estimator=estimator, epochs=30, batch_size=20, lr=lr,
                    generator=gen(1))
        models.append(m)
    assert torch.equal(models[0].weight, models[1].weight)
    # 64 visible x 16 hidden: exact log-likelihood by enumerating 2^16 hidden states
    m = models[0]
    ll = (-m.free_energy(x)).mean().item() - exact.rbm.log_partition(m)
    base = RBM(64, 16)
    base.init_visible_bias(x)  # the base-rate model the training starts from (weights ~ 0)
    with torch.no_grad():
        base.weight.zero_()
    ll0 = (-base.free_energy(x)).mean().item() - exact.rbm.log_partition(base)
    assert ll > ll0 + gain, (ll0, ll)
    assert [h["epoch"] for h in state.history] == list(range(1, 31))
    assert state.history[-1]["recon_error"] < state.history[0]["recon_error"]


def test_visible_bias_starts_at_base_rates():
    x = (torch.rand(400, 5, generator=gen(3)) < torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9])).float()
    m = RBM(5, 3)
    m.init_visible_bias(x)
    assert torch.allclose(torch.sigmoid(m.visible_bias), x.mean(0), atol=1e-3)


def test_fit_rejects_bad_settings_and_data():
    m = RBM(4, 2)
    x = torch.zeros(10, 4)
    with pytest.raises(ValueError, match="epochs: expected a positive integer"):
        fit(m, x, epochs=0)
    with pytest.raises(ValueError, match="momentum: expected a finite number >= 0 and < 1"):
        SGD(momentum=1.0)
    with pytest.raises(ValueError, match="lr: expected a finite"):
        fit(m, x, lr=float("nan"))
    with pytest.raises(ValueError, match=r"data: expected shape \(n, 4\)"):
        fit(m, torch.zeros(10, 3))
    with pytest.raises(ValueError, match="data: expected at least one row"):
        fit(m, torch.zeros(0, 4))
    with pytest.raises(ValueError, match="found NaN"):
        fit(m, torch.full((3, 4), float("nan")))
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        CD(0)


def test_divergence_is_reported_and_not_checkpointed(tmp_path):
    m = RBM(4, 2, visible="gaussian")
    x = torch.randn(50, 4, generator=gen(1)) * 3
    path = tmp_path / "model.safetensors"
    boltzkit.save(m, path)
    with pytest.raises(FloatingPointError, match="diverged"):  # far too large a step
        fit(m, x, epochs=200, lr=50.0, callbacks=[Checkpoint(tmp_path)])
    assert torch.isfinite(boltzkit.load(path).weight).all()  # the last good file survives


def test_interrupt_keeps_the_work_done(tmp_path):
    class Interrupt(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt

    m = RBM(4, 2)
    x = (torch.rand(50, 4, generator=gen(1)) < 0.5).float()
    path = tmp_path / "model.safetensors"
    state = fit(m, x, epochs=10, callbacks=[Checkpoint(tmp_path), Interrupt()])
    assert state.interrupted and state.epoch == 2
    assert torch.equal(boltzkit.load(path).weight, m.weight)


def test_cd1_on_binarized_mnist_raises_the_exact_test_likelihood(data_dir):
    """784x20: the exact test log-likelihood (2^20 hidden states enumerated) rises from the
    base-rate model's. Seen with these seeds: -206.0 -> -169.9 nats after 5 epochs on 10k rows."""
    from boltzkit.data import load_dataset

    train = load_dataset("binarized-mnist", "train").data[:10000]
    test = load_dataset("binarized-mnist", "test").data
    m = RBM(784, 20, generator=gen(0))
    m.init_visible_bias(train)

    def test_ll():
        return (-m.free_energy(test)).mean().item() - exact.rbm.log_partition(m)

    start = test_ll()
    assert -207 < start < -205  # the base-rate (independent pixels) model, weights ~ N(0, 0.01²)
    fit(m, train, estimator=CD(1), epochs=5, batch_size=100, lr=0.05, update=SGD(momentum=0.5),
        generator=gen(1))
    assert test_ll() > start + 25


def test_reduce_sees_every_gradient_by_name_and_declines_the_fused_path():
    """The data-parallel seam: ``reduce`` gets each batch's gradient dict before the update.
    An identity reduce must give exactly the generic (unfused) path's model."""
    from .test_fit_fast_paths import PlainCD

    x = (torch.rand(60, 6, generator=gen(1)) < 0.4).double()
    seen = []

    def reduce(grads):
        seen.append(sorted(grads))
        return grads

    a, b = RBM(6, 3, generator=gen(0), dtype=torch.float64), \
        RBM(6, 3, generator=gen(0), dtype=torch.float64)
    fit(a, x, estimator=CD(1), epochs=2, batch_size=20, lr=0.1, generator=gen(2), reduce=reduce)
    fit(b, x, estimator=PlainCD(1), epochs=2, batch_size=20, lr=0.1, generator=gen(2))
    assert seen == [sorted(NAMES)] * 6  # 3 batches x 2 epochs
    for name in NAMES:
        assert torch.equal(getattr(a, name), getattr(b, name))
    # a reduce that doubles the statistics doubles the step (plain SGD, no momentum)
    c, d = RBM(6, 3, generator=gen(0), dtype=torch.float64), \
        RBM(6, 3, generator=gen(0), dtype=torch.float64)
    fit(c, x, estimator=CD(1), update=SGD(0.0), epochs=1, batch_size=60, lr=0.1,
        generator=gen(2), reduce=lambda g: {k: 2 * v for k, v in g.items()})
    fit(d, x, estimator=CD(1), update=SGD(0.0), epochs=1, batch_size=60, lr=0.2,
        generator=gen(2))
    for name in NAMES:
        torch.testing.assert_close(getattr(c, name), getattr(d, name), rtol=0, atol=1e-12)


def test_fit_takes_a_dataloader_or_a_list_of_batches(tmp_path):
    """Data that do not sit in one tensor: the batches come in the iterable's order."""
    import signal
    import os

    from torch.utils.data import DataLoader, TensorDataset

    x = (torch.rand(90, 6, generator=gen(1)) < 0.4).float()
    loader = DataLoader(TensorDataset(x), batch_size=20)  # no shuffling: the same every epoch
    batches = [x[i:i + 20] for i in range(0, 90, 20)]

    def train(data, **kw):
        m = RBM(6, 3, generator=gen(0))
        state = fit(m, data, estimator=PCD(1, n_chains=7), epochs=3, lr=0.1, generator=gen(2),
                    **kw)
        return m, state

    a, sa = train(loader)
    b, _ = train(batches)
    for name in NAMES:
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert [h["epoch"] for h in sa.history] == [1, 2, 3] and sa.step == 15
    # the visible biases start at the base rates of all the data, streamed
    c = RBM(6, 3)
    c.init_visible_bias(x)
    fresh = RBM(6, 3)
    fit(fresh, loader, epochs=1, lr=0.0)
    torch.testing.assert_close(fresh.visible_bias, c.visible_bias)

    # interrupted inside an epoch, resumed from the run folder: the same model
    class Interrupt(Callback):
        def on_batch_end(self, state):
            if state.step == 7:
                os.kill(os.getpid(), signal.SIGINT)

    _, stopped = train(loader, callbacks=[Checkpoint(tmp_path), Interrupt()])
    assert stopped.interrupted and stopped.batch == 2
    r, _ = train(loader, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    for name in NAMES:
        assert torch.equal(getattr(r, name), getattr(a, name))


@pytest.mark.parametrize("data,message", [
    (iter([torch.zeros(4, 6)]), "can be passed over only once"),
    ([], "data: expected at least one batch"),
    (["abc"], "got batch 0 as a str"),
    ([torch.zeros(4, 5)], r"data: expected shape \(n, 6\)"),
    ({"x": 1}, "data: expected a tensor"),
])
def test_fit_names_bad_batches(data, message):
    with pytest.raises(ValueError, match=message):
        fit(RBM(6, 3), data, epochs=1)
