"""Autoencoders: the models (tied, denoising, deep and unrolled from RBMs) and their training."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import boltzkit
from boltzkit import RBM, Autoencoder
from boltzkit.training import DivergenceError
from boltzkit.training.autoencoders import fit_autoencoder, pretrain_rbms

from .conftest import gen


def _binary(n, d, seed=0, p=0.3):
    return (torch.rand(n, d, generator=gen(seed)) < p).float()


class _Loss(nn.Module):
    """The loss of ``model`` as a module, so that ``functional_call`` can swap its parameters;
    the masking noise comes from a generator seeded afresh on every call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.loss(x, gen(7))


@pytest.mark.parametrize("kwargs", [
    dict(sizes=[5, 3]),                                                   # tied, one layer
    dict(sizes=[5, 3], corruption=0.4),                                   # denoising
    dict(sizes=[6, 4, 3, 2], code="linear", tied=False),                  # deep, linear code
    dict(sizes=[4, 3, 2], visible="gaussian", code="linear", tied=True),  # real-valued data
])
def test_gradients_pass_gradcheck(kwargs):
    model = Autoencoder(**kwargs, generator=gen(1), dtype=torch.float64)
    x = torch.rand(7, model.n_visible, generator=gen(2), dtype=torch.float64)
    if model.visible == "gaussian":
        x = x * 4 - 2
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for _, p in model.named_parameters())
    wrapper = _Loss(model)

    def loss(*ps):
        return torch.func.functional_call(wrapper, {f"model.{n}": p for n, p in zip(names, ps)},
                                          (x,))

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_initial_weights_are_glorot_uniform_scaled_for_sigmoids():
    bound = math.sqrt(6 / (300 + 200))
    for scale in (1.0, 4.0):
        m = Autoencoder([300, 200, 10], code="linear", tied=False, sigmoid_scale=scale,
                        generator=gen(0))
        # uniform in ±s bound: max near the bound, variance bound² s² / 3
        for w, s in ((m.weight_0, scale), (m.decoder_weight_0, scale),
                     (m.decoder_weight_1, scale), (m.weight_1, 1.0)):
            w = w.detach()
            b = s * math.sqrt(6 / sum(w.shape))
            assert float(w.abs().max()) <= b and float(w.abs().max()) > 0.99 * b
            assert float(w.var()) == pytest.approx(b * b / 3, rel=0.05)
        assert float(m.weight_0.detach().abs().max()) == pytest.approx(scale * bound, rel=0.01)
    assert torch.equal(Autoencoder([5, 3], generator=gen(4)).weight_0,
                       Autoencoder([5, 3], generator=gen(4)).weight_0)


def test_loss_is_the_cross_entropy_or_the_squared_error():
    m = Autoencoder([6, 3], generator=gen(3), dtype=torch.float64)
    x = torch.rand(5, 6, generator=gen(4), dtype=torch.float64)
    xh = m(x).detach()
    ce = -(x * torch.log(xh) + (1 - x) * torch.log(1 - xh)).sum(1).mean()
    assert m.loss(x).item() == pytest.approx(float(ce), rel=1e-10)
    assert torch.allclose(m.reconstruction_error(x), ((x - xh) ** 2).sum(1))
    g = Autoencoder([6, 3], visible="gaussian", generator=gen(3), dtype=torch.float64)
    xg = torch.randn(5, 6, generator=gen(4), dtype=torch.float64)
    assert g.loss(xg).item() == pytest.approx((0.5 * ((xg - g(xg)) ** 2).sum(1).mean()).item())


def test_tied_weights_are_one_tensor_and_stay_tied():
    tied = Autoencoder([8, 4], generator=gen(0))
    names = [n for n, _ in tied.named_parameters()]
    assert names == ["weight_0", "hidden_bias_0", "visible_bias_0"]
    assert tied.decoder_weight(0) is tied.weight_0
    x = _binary(200, 8)
    fit_autoencoder(tied, x, epochs=3, batch_size=20, lr=0.05, generator=gen(1))
    z = tied.encode(x[:5])
    # the decoder reads the trained encoder weights
    want = torch.sigmoid(tied.visible_bias_0 + z @ tied.weight_0.t())
    assert torch.allclose(tied.decode(z), want)
    untied = Autoencoder([8, 4], tied=False, generator=gen(0))
    assert "decoder_weight_0" in dict(untied.named_parameters())
    fit_autoencoder(untied, x, epochs=3, batch_size=20, lr=0.05, generator=gen(1))
    assert not torch.allclose(untied.weight_0, untied.decoder_weight_0)


def test_unrolled_network_is_the_rbm_stack_before_fine_tuning():
    x = torch.rand(300, 12, generator=gen(5))
    rbms = pretrain_rbms(x, [12, 8, 5, 3], epochs=2, batch_size=50, lr=0.1, top_lr=0.01,
                         top_init_std=0.1, generator=gen(6))
    assert [r.hidden.spec() for r in rbms] == ["bernoulli", "bernoulli", "gaussian"]
    ae = Autoencoder.unroll(rbms)
    assert (ae.sizes, ae.code, ae.tied) == ((12, 8, 5, 3), "linear", False)
    for l, r in enumerate(rbms):
        assert torch.equal(getattr(ae, f"weight_{l}"), r.weight)
        assert torch.equal(getattr(ae, f"decoder_weight_{l}"), r.weight)
        assert torch.equal(getattr(ae, f"hidden_bias_{l}"), r.hidden_bias)
        assert torch.equal(getattr(ae, f"visible_bias_{l}"), r.visible_bias)
    with torch.no_grad():
        up = x[:10]
        for r in rbms:
            up = r.hidden_mean(up)   # the Gaussian top's mean is its field: a linear code
        assert torch.allclose(ae.encode(x[:10]), up, atol=1e-6)
        down = up
        for r in reversed(rbms):
            down = r.visible_mean(down)
        assert torch.allclose(ae.decode(up), down, atol=1e-6)
    # copies: fine-tuning the network leaves the RBMs as they were
    before = rbms[0].weight.detach().clone()
    fit_autoencoder(ae, x, epochs=1, batch_size=50, generator=gen(7))
    assert torch.equal(rbms[0].weight, before)
    assert not torch.equal(ae.weight_0, before)


def test_pretraining_keeps_the_given_lower_layers():
    x = torch.rand(200, 10, generator=gen(8))
    low = pretrain_rbms(x, [10, 6, 4], top="bernoulli", epochs=1, batch_size=50,
                        generator=gen(9))
    two = pretrain_rbms(x, [10, 6, 2], epochs=1, batch_size=50, generator=gen(10),
                        below=low[:1])
    assert two[0] is low[0]
    assert (two[1].n_visible, two[1].n_hidden, two[1].hidden.spec()) == (6, 2, "gaussian")
    with pytest.raises(ValueError, match=r"below\[0\]: expected an RBM\(10, 5\)"):
        pretrain_rbms(x, [10, 5, 2], below=low[:1])


def test_masking_noise_comes_from_the_generator():
    m = Autoencoder([400, 3], corruption=0.3)
    x = torch.ones(50, 400)
    a, b, c = m.corrupt(x, gen(1)), m.corrupt(x, gen(1)), m.corrupt(x, gen(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    n = x.numel()
    dropped = float((a == 0).sum())
    # binomial(n, 0.3): within 5 standard deviations
    assert abs(dropped - 0.3 * n) < 5 * math.sqrt(n * 0.3 * 0.7)
    assert torch.equal(a[a != 0], x[a != 0])  # the rest untouched
    assert Autoencoder([400, 3]).corrupt(x, None) is x
    with pytest.raises(ValueError, match="generator: a denoising autoencoder"):
        m.loss(x)
    # training: equal seeds give equal models, the noise differs with the seed
    data = _binary(100, 400, seed=3)
    runs = []
    for seed in (4, 4, 5):
        d = Autoencoder([400, 3], corruption=0.3, generator=gen(0))
        fit_autoencoder(d, data, epochs=1, batch_size=25, generator=gen(seed))
        runs.append(d.weight_0.detach())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_training_lowers_the_loss_and_records_history():
    x = _binary(400, 16, seed=11)
    m = Autoencoder([16, 6], generator=gen(12))
    start = m.loss(x).item()
    lines = []
    hist = fit_autoencoder(m, x, epochs=8, batch_size=40, lr=0.02, generator=gen(13),
                           validation=x[:50], log=lines.append)
    assert [h["epoch"] for h in hist] == list(range(1, 9))
    assert hist[-1]["loss"] < 0.9 * start
    assert hist[-1]["validation_error"] < hist[0]["validation_error"]
    assert len(lines) == 8 and lines[-1].startswith("epoch 8/8: loss")
    sgd = Autoencoder([16, 6], generator=gen(12))
    h2 = fit_autoencoder(sgd, x, epochs=8, batch_size=40, lr=0.5, optimizer="sgd",
                         momentum=0.5, lr_schedule="linear", generator=gen(13))
    assert h2[-1]["loss"] < 0.9 * start and h2[-1]["lr"] < 0.5 / 8


def test_divergence_puts_the_model_back():
    x = torch.randn(100, 6, generator=gen(14)) * 1e3
    m = Autoencoder([6, 4], visible="gaussian", code="linear", generator=gen(15))
    before = {k: v.detach().clone() for k, v in m.state_dict().items()}
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        fit_autoencoder(m, x, epochs=3, batch_size=10, lr=1e6, optimizer="sgd", momentum=0.9,
                        generator=gen(16))
    # diverged in the first epoch: back at the start
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_model_files_round_trip(tmp_path):
    for m in (Autoencoder([9, 4], corruption=0.2, generator=gen(1)),
              Autoencoder([9, 5, 2], visible="gaussian", code="linear", tied=False,
                          generator=gen(2))):
        path = boltzkit.save(m, tmp_path / "ae.safetensors")
        back = boltzkit.load(path)
        assert back.config() == m.config()
        assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                      back.state_dict().values()))
    with pytest.raises(ValueError, match="config\\['code'\\]"):
        Autoencoder.from_config({"sizes": [4, 2], "code": "relu"})
    with pytest.raises(ValueError, match="state_dict: comes from a Autoencoder"):
        Autoencoder([9, 4], tied=True).load_state_dict(
            Autoencoder([9, 4], corruption=0.1).state_dict())


@pytest.mark.parametrize("make, match", [
    (lambda: Autoencoder([5]), "sizes: expected at least two"),
    (lambda: Autoencoder("5,3"), "sizes: expected a list"),
    (lambda: Autoencoder([5, 0]), r"sizes\[1\]: expected a positive integer"),
    (lambda: Autoencoder([5, 3], visible="spin"), "visible: expected one of"),
    (lambda: Autoencoder([5, 3], code="relu"), "code: expected one of"),
    (lambda: Autoencoder([5, 3], corruption=1.0), "corruption: expected a finite number"),
    (lambda: Autoencoder([5, 3], tied="no"), "tied: expected True or False"),
    (lambda: Autoencoder([5, 3], sigmoid_scale=0), "sigmoid_scale: expected a finite number"),
    (lambda: Autoencoder([5, 3]).encode(torch.rand(2, 4)), r"x: expected shape \(n, 5\)"),
    (lambda: Autoencoder([5, 3]).encode(torch.full((2, 5), float("nan"))), "x: .*finite"),
    (lambda: Autoencoder([5, 3]).loss(torch.full((2, 5), 2.0)), "x: "),
    (lambda: Autoencoder([5, 3]).encode(torch.rand(2, 5), layer=2), "layer: expected at most"),
    (lambda: Autoencoder.unroll([]), "rbms: expected a non-empty list"),
    (lambda: Autoencoder.unroll([RBM(5, 3), RBM(4, 2)]), r"rbms\[1\]: expected 3 visible"),
    (lambda: Autoencoder.unroll([RBM(5, 3, hidden="gaussian"), RBM(3, 2)]),
     r"rbms\[0\]: expected bernoulli hidden units"),
    (lambda: Autoencoder.unroll([RBM(5, 3, visible="spin")]), r"rbms\[0\]: expected bernoulli"),
    (lambda: fit_autoencoder(RBM(5, 3), torch.rand(4, 5)), "model: expected a boltzkit "
                                                           "Autoencoder"),
    (lambda: fit_autoencoder(Autoencoder([5, 3]), torch.rand(4, 5), epochs=0), "epochs: "),
    (lambda: fit_autoencoder(Autoencoder([5, 3]), torch.rand(4, 5), lr=0), "lr: "),
    (lambda: fit_autoencoder(Autoencoder([5, 3]), torch.rand(4, 5), optimizer="rmsprop"),
     "optimizer: expected one of"),
    (lambda: fit_autoencoder(Autoencoder([5, 3]), np.full((4, 5), 3.0)), "data: "),
    (lambda: fit_autoencoder(Autoencoder([5, 3]), torch.rand(4, 5),
                             validation=torch.rand(4, 6)), r"validation: expected shape"),
    (lambda: pretrain_rbms(torch.rand(4, 5), [5, 3], top="relu"), "top: expected"),
    (lambda: pretrain_rbms(torch.rand(4, 6), [5, 3]), r"data: expected shape \(n, 5\)"),
])
def test_bad_input_is_one_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
