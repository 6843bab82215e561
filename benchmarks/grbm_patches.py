"""Gaussian-Bernoulli RBMs with learned variances on ZCA-whitened natural image patches.

Trains ``gaussian:learned`` RBMs on the ``patches`` data set (8x8, or ``--size 14``) and reports
the test log-likelihood per patch, in nats on the whitened data, next to two closed-form
baselines fitted to the same whitened training patches: a diagonal Gaussian and a
full-covariance Gaussian (which a useful GRBM must beat: a GRBM is a constrained mixture of
Gaussians). Log Z is exact (enumerating the hidden layer) for up to 20 hidden units, else
forward AIS and reverse AIS (RAISE) bracket it. ``--sweep`` compares learning-rate multipliers
for the variances and reports whether training stayed finite.

    OMP_NUM_THREADS=1 python benchmarks/grbm_patches.py --hidden 16 --epochs 20
    OMP_NUM_THREADS=1 python benchmarks/grbm_patches.py --sweep --epochs 5
    OMP_NUM_THREADS=1 python benchmarks/grbm_patches.py --hidden 64 --epochs 20 --pictures out/

Figures are means over the test rows (5000 patches from the right quarter of the images).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import boltzkit
from boltzkit import RBM, exact
from boltzkit.data import Preparation, load_dataset
from boltzkit.evaluation import ais, reverse_ais
from boltzkit.training import PCD, SGD, Centered, fit


def gaussian_log_likelihood(train: torch.Tensor, test: torch.Tensor, full: bool) -> float:
    """Mean test log-density (nats) of a Gaussian fitted by maximum likelihood to ``train``."""
    x, t = train.double(), test.double()
    mu = x.mean(0)
    d = x.shape[1]
    if full:
        cov = torch.cov(x.t(), correction=0)
        dist = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
        return dist.log_prob(t).mean().item()
    var = x.var(0, unbiased=False)
    return (-0.5 * (((t - mu) ** 2 / var).sum(1) + torch.log(var).sum()
                    + d * math.log(2 * math.pi))).mean().item()


def train_grbm(x, hidden, epochs, lr, var_scale, floor, seed=0, centered=True):
    units = "gaussian:learned" if floor is None else f"gaussian:learned:{floor!r}"
    model = RBM(x.shape[1], hidden, units, generator=torch.Generator().manual_seed(seed))
    est = Centered(PCD(1)) if centered else PCD(1)
    t0 = time.perf_counter()
    fit(model, x, estimator=est, epochs=epochs, batch_size=100, lr=lr, lr_schedule="linear",
        update=SGD(0.5, lr_scale={"visible_log_variance": var_scale}),
        generator=torch.Generator().manual_seed(seed + 1))
    return model, time.perf_counter() - t0


def test_ll(model, train, test, n_betas):
    fe = exact.rbm.free_energy(model, test).mean().item()
    if model.n_hidden <= 20:
        lz = exact.rbm.log_partition(model)
        return {"exact": -fe - lz}
    g = torch.Generator().manual_seed(5)
    fwd = ais(model, base=train, n_chains=100, betas=n_betas, generator=g)
    rev = reverse_ais(model, test, base=train, n_chains=100, betas=n_betas, generator=g)
    return {"ais": -fe - fwd.log_z, "raise": -fe - rev.log_z}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, choices=(8, 14), default=8)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--var-scale", type=float, default=0.1)
    p.add_argument("--floor", type=float, default=None)
    p.add_argument("--betas", type=int, default=10000)
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--pictures", default=None, help="folder for filters, samples, variances")
    a = p.parse_args(argv)
    name = "patches" if a.size == 8 else "patches-14"
    raw_train, raw_test = load_dataset(name, "train").data, load_dataset(name, "test").data
    prep = Preparation.fit(raw_train, "gaussian:learned", whiten=True)
    train, test = prep.transform(raw_train), prep.transform(raw_test)
    print(f"{name}: {train.shape[0]} train, {test.shape[0]} test patches, whitened "
          f"(log|det| {prep.log_det_jacobian():.2f} nats per patch to pixel units)")
    print(f"diagonal Gaussian       test LL {gaussian_log_likelihood(train, test, False):9.3f}")
    print(f"full-covariance Gaussian test LL {gaussian_log_likelihood(train, test, True):9.3f}")
    settings = ([(lr, s) for lr in (a.lr, 10 * a.lr) for s in (1.0, 0.1, 0.01)] if a.sweep
                else [(a.lr, a.var_scale)])
    for lr, scale in settings:
        model, secs = train_grbm(train, a.hidden, a.epochs, lr, scale, a.floor)
        finite = all(bool(torch.isfinite(t).all()) for t in model.parameters())
        ll = test_ll(model, train, test, a.betas) if finite else {}
        var = torch.exp(model.visible_log_variance.detach())
        figures = ", ".join(f"{k} {v:9.3f}" for k, v in ll.items())
        print(f"GRBM {a.hidden:3d} hidden lr {lr:g} variance lr x{scale:g}: {figures or 'DIVERGED'}"
              f"  (variances {var.min():.3f}..{var.max():.3f}, {secs:.0f} s)")
    if a.pictures and finite:
        from pathlib import Path

        from boltzkit import plots

        out = Path(a.pictures)
        out.mkdir(parents=True, exist_ok=True)
        boltzkit.save(model, out / "grbm.safetensors", preparation=prep)
        # filters in pixel space: each hidden unit's weights through the inverse whitening
        filters = (prep.inverse(model.weight.detach().t()) - torch.tensor(prep.mean)).t()
        plots.filters(filters, (a.size, a.size), out / "filters.png",
                      title=f"{a.hidden} GRBM filters (pixel space)")
        g = torch.Generator().manual_seed(3)
        from boltzkit.cli.rbm import draw_samples

        v, _ = draw_samples(model, 64, 1000, g)
        plots.filters(prep.inverse(v).t(), (a.size, a.size), out / "samples.png",
                      title="samples (1000 Gibbs steps), pixel space")
        plots.filters(var.reshape(-1, 1), (a.size, a.size), out / "variances.png",
                      title="learned variances (whitened units)")
        print(f"pictures in {out}")


if __name__ == "__main__":
    main()
