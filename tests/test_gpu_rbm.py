"""RBM, training, evaluation, CLI and scikit-learn paths on a CUDA device (skipped without one).
Run by the consolidated GPU check; the CPU versions of these claims are in the other files."""

import math

import numpy as np
import pytest
import torch

import boltzkit
from boltzkit import RBM, exact
from boltzkit.cli import main
from boltzkit.evaluation import ais
from boltzkit.samplers import gibbs
from boltzkit.training import CD, PCD, fit

from .test_rbm import exact_visible_distribution, histogram, random_rbm, tv_bound

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def cuda_gen(seed):
    return torch.Generator(device="cuda").manual_seed(seed)


@pytest.mark.parametrize("visible,hidden", [("bernoulli", "bernoulli"), ("spin", "gaussian"),
                                            ("softmax:2", "bernoulli")])
def test_block_gibbs_on_cuda_reproduces_the_exact_distribution(visible, hidden):
    m = random_rbm(6, 4, visible, hidden, scale=0.7, seed=3).cuda()
    states, p = exact_visible_distribution(m)
    n = 20000
    g = cuda_gen(7)
    start = m.visible.sample(torch.zeros(n, 6, dtype=torch.float64, device="cuda"), g)
    state = gibbs.run(m, gibbs.init(m, start, g), 100, g)
    assert state.visible.is_cuda
    tv = 0.5 * (histogram(state.visible.cpu(), states.cpu()) - p.cpu()).abs().sum().item()
    assert tv < tv_bound(p.cpu(), n)


@pytest.mark.parametrize("estimator", [CD(1), PCD(1, n_chains=100)], ids=repr)
def test_fit_on_cuda_learns_digits(estimator):
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().data[:500] / 16 > 0.5, dtype=torch.float32, device="cuda")
    m = RBM(64, 16, generator=torch.Generator().manual_seed(0)).cuda()
    base = RBM(64, 16).cuda()
    base.init_visible_bias(x)
    with torch.no_grad():
        base.weight.zero_()
    ll0 = (-base.free_energy(x)).mean().item() - exact.rbm.log_partition(base)
    lr = 0.1 if type(estimator) is CD else 0.05
    fit(m, x, estimator=estimator, epochs=30, batch_size=20, lr=lr, generator=cuda_gen(1))
    assert m.weight.is_cuda
    ll = (-m.free_energy(x)).mean().item() - exact.rbm.log_partition(m)
    assert ll > ll0 + 2.5, (ll0, ll)  # same claim as the CPU test (which sees +5.8 / +3.3)


def test_ais_on_cuda_matches_exact():
    m = random_rbm(784, 16, scale=0.05, seed=1).float().cuda()
    truth = exact.rbm.log_partition(m)
    res = ais(m, n_chains=100, betas=3000, generator=cuda_gen(3))
    assert abs(res.log_z - truth) < 0.1, (res.log_z, truth)


def test_save_and_load_across_devices(tmp_path):
    m = random_rbm(6, 4).cuda()
    boltzkit.save(m, tmp_path / "m.safetensors")
    back = boltzkit.load(tmp_path / "m.safetensors", device="cuda")
    assert back.weight.is_cuda and torch.equal(back.weight, m.weight)


def test_cli_train_and_sample_on_cuda(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "2", "--hidden", "16", "--device", "cuda",
                 "--sample-steps", "20", "--no-progress", "--out", str(out)]) == 0
    assert main(["sample", str(out / "model.safetensors"), "--device", "cuda", "--n", "5",
                 "--steps", "10", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 64)


def test_sklearn_transformer_on_cuda():
    from sklearn.datasets import load_digits

    from boltzkit.sklearn import RBMTransformer

    x = load_digits().data[:300] / 16
    rbm = RBMTransformer(n_components=10, n_iter=2, random_state=0, device="cuda").fit(x)
    h = rbm.transform(x)
    assert h.shape == (300, 10) and np.isfinite(h).all() and math.isfinite(
        float(rbm.score_samples((x[:5] > 0.5) * 1.0).sum()))
