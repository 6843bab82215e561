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

``--val N`` carves N random training patches out as a validation split (whitening, baselines
and models fitted on the rest, the test patches never read): choose settings there. The
training settings (``--method``, ``--no-centering``, ``--lr``, ``--schedule``, ``--momentum``,
``--var-scale``, ``--init-std``, ``--batch-size``, ``--weight-decay``, ``--var-init``) are
options. The measured best (BENCHMARKS.md): plain (uncentered) PCD-1, momentum 0.5, variance
rate x0.1, linear decay over 400 epochs, lr 0.1 for 64 hidden units (filters like edges), lr
0.015 for 256 (the best likelihood); larger rates made a variance run away.

    OMP_NUM_THREADS=1 python benchmarks/grbm_patches.py --val 4000 --betas 3000 --hidden 64 \
        --epochs 400 --lr 0.1 --no-centering

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
from boltzkit.training import CD, PCD, SGD, Centered, fit


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


def train_grbm(x, hidden, epochs, lr, var_scale, floor, seed=0, centered=True, *, method="pcd",
               momentum=0.5, init_std=0.01, batch_size=100, schedule="linear", weight_decay=0.0,
               var_init="1", ceiling=None, max_step_norm=None):
    """A ``gaussian:learned`` RBM trained on ``x`` ``(n, n_visible)``; returns (model, seconds).

    ``var_init``: ``"1"`` starts every variance at 1 (the family's default, right for whitened
    data), ``"data"`` at the training data's per-feature variance. ``ceiling``: the largest
    variance training may reach (none by default); ``max_step_norm``: SGD's per-hidden-unit
    bound on a weight step (none by default)."""
    units = "gaussian:learned" if floor is None else f"gaussian:learned:{floor!r}"
    if ceiling is not None:
        units = f"gaussian:learned:{0.01 if floor is None else floor!r}:{ceiling!r}"
    model = RBM(x.shape[1], hidden, units, init_std=init_std,
                generator=torch.Generator().manual_seed(seed))
    if var_init == "data":
        with torch.no_grad():
            model.visible_log_variance.copy_(torch.log(x.var(0).clamp(min=1e-2)))
    inner = CD(1) if method == "cd" else PCD(1)
    est = Centered(inner) if centered else inner
    t0 = time.perf_counter()
    fit(model, x, estimator=est, epochs=epochs, batch_size=batch_size, lr=lr,
        lr_schedule=schedule,
        update=SGD(momentum, weight_decay, lr_scale={"visible_log_variance": var_scale},
                   max_step_norm=max_step_norm),
        generator=torch.Generator().manual_seed(seed + 1))
    return model, time.perf_counter() - t0


def test_ll(model, train, test, n_betas):
    """Mean log-likelihood of the rows of ``test``: exact for up to 20 hidden units, else
    forward AIS (``"ais"``) and reverse AIS (``"raise"``), 100 chains, ``n_betas`` steps."""
    fe = exact.rbm.free_energy(model, test).mean().item()
    if model.n_hidden <= 20:
        lz = exact.rbm.log_partition(model)
        return {"exact": -fe - lz}
    g = torch.Generator().manual_seed(5)
    fwd = ais(model, base=train, n_chains=100, betas=n_betas, generator=g)
    rev = reverse_ais(model, test, base=train, n_chains=100, betas=n_betas, generator=g)
    return {"ais": -fe - fwd.log_z, "raise": -fe - rev.log_z}


def write_pictures(model, prep, size, folder, title=""):
    """filters.png (pixel space: each hidden unit's weight vector through the inverse
    whitening, i.e. the image it adds to the visible mean), filters-whitened.png (the weights
    as they are), samples.png (pixel space) and variances.png (bar chart of the learned
    variances against the whitened data's, 1 per unit). Returns the folder."""
    from pathlib import Path

    from boltzkit import plots

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    boltzkit.save(model, out / "grbm.safetensors", preparation=prep)
    w = model.weight.detach()
    # order the units by the norm of their weights, strongest first
    order = torch.argsort(w.norm(dim=0), descending=True)
    w = w[:, order]
    pixel = (prep.inverse(w.t()) - torch.tensor(prep.mean, dtype=w.dtype)).t()
    shape = (size, size)
    n = min(100, w.shape[1])
    plots.filters(pixel, shape, out / "filters.png", n=n,
                  title=f"{title}{model.n_hidden} GRBM filters, pixel space")
    plots.filters(w, shape, out / "filters-whitened.png", n=n,
                  title=f"{title}{model.n_hidden} GRBM filters, whitened space")
    from boltzkit.cli.rbm import draw_samples

    v, _ = draw_samples(model, 64, 1000, torch.Generator().manual_seed(3))
    plots.filters(prep.inverse(v).t(), shape, out / "samples.png", n=64,
                  title="samples (1000 Gibbs steps), pixel space")
    var = torch.exp(model.visible_log_variance.detach()).numpy()
    fig = plots._new_figure(6.0, 3.0)
    ax = fig.add_axes((0.1, 0.18, 0.87, 0.68))
    ax.bar(range(len(var)), sorted(var), color="0.3")
    ax.set_xlabel("visible unit (sorted)")
    ax.set_ylabel("learned variance")
    ax.set_ylim(0.0, max(1.05, float(var.max()) * 1.05))
    ax.axhline(1.0, color="r", lw=0.8, ls="--")
    fig.suptitle(f"learned variances (whitened units): {var.min():.3f}..{var.max():.3f}",
                 fontsize=10)
    plots._save(fig, out / "variances.png")
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, choices=(8, 14), default=8)
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--var-scale", type=float, default=0.1)
    p.add_argument("--floor", type=float, default=None)
    p.add_argument("--ceiling", type=float, default=None,
                   help="the largest variance training may reach (gaussian:learned:F:C)")
    p.add_argument("--max-step-norm", type=float, default=None,
                   help="the largest norm of one hidden unit's weight step (SGD max_step_norm)")
    p.add_argument("--method", choices=("cd", "pcd"), default="pcd", help="CD-1 or PCD-1")
    p.add_argument("--no-centering", action="store_true", help="the plain gradient")
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--init-std", type=float, default=0.01, help="std of the initial weights")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--schedule", choices=("constant", "linear", "cosine"), default="linear")
    p.add_argument("--var-init", choices=("1", "data"), default="1",
                   help="initial variances: 1, or the whitened data's per-unit variance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--betas", type=int, default=10000)
    p.add_argument("--val", type=int, default=0, metavar="N",
                   help="carve N random training patches out as a validation split: the "
                        "whitening, the baselines and the models see only the rest, and every "
                        "figure is on the validation patches (the test patches are not read)")
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--pictures", default=None, help="folder for filters, samples, variances")
    a = p.parse_args(argv)
    name = "patches" if a.size == 8 else "patches-14"
    raw_train = load_dataset(name, "train").data
    raw_train = torch.as_tensor(raw_train, dtype=torch.float32)
    if a.val:
        perm = torch.randperm(raw_train.shape[0], generator=torch.Generator().manual_seed(123))
        raw_test, raw_train = raw_train[perm[:a.val]], raw_train[perm[a.val:]]
        split = "validation"
    else:
        raw_test, split = load_dataset(name, "test").data, "test"
    prep = Preparation.fit(raw_train, "gaussian:learned", whiten=True)
    train, test = prep.transform(raw_train), prep.transform(raw_test)
    print(f"{name}: {train.shape[0]} train, {test.shape[0]} {split} patches, whitened "
          f"(log|det| {prep.log_det_jacobian():.2f} nats per patch to pixel units)")
    print(f"diagonal Gaussian        {split} LL {gaussian_log_likelihood(train, test, False):9.3f}")
    print(f"full-covariance Gaussian {split} LL {gaussian_log_likelihood(train, test, True):9.3f}")
    settings = ([(lr, s) for lr in (a.lr, 10 * a.lr) for s in (1.0, 0.1, 0.01)] if a.sweep
                else [(a.lr, a.var_scale)])
    for lr, scale in settings:
        model, secs = train_grbm(train, a.hidden, a.epochs, lr, scale, a.floor, a.seed,
                                 not a.no_centering, method=a.method, momentum=a.momentum,
                                 init_std=a.init_std, batch_size=a.batch_size,
                                 schedule=a.schedule, weight_decay=a.weight_decay,
                                 var_init=a.var_init, ceiling=a.ceiling,
                                 max_step_norm=a.max_step_norm)
        finite = all(bool(torch.isfinite(t).all()) for t in model.parameters())
        ll = test_ll(model, train, test, a.betas) if finite else {}
        var = torch.exp(model.visible_log_variance.detach())
        wn = model.weight.detach().norm(dim=0)
        figures = ", ".join(f"{k} {v:9.3f}" for k, v in ll.items())
        print(f"GRBM {a.hidden:3d} hidden {a.method}{'' if a.no_centering else ' centered'} "
              f"{a.epochs} epochs lr {lr:g} ({a.schedule}) variance lr x{scale:g} "
              f"momentum {a.momentum:g} init_std {a.init_std:g} batch {a.batch_size} "
              f"var_init {a.var_init} ceiling {a.ceiling} max step {a.max_step_norm}: "
              f"{split} {figures or 'DIVERGED'}"
              f"  (variances {var.min():.3f}..{var.max():.3f}, |w_j| {wn.min():.2f}.."
              f"{wn.max():.2f}, {secs:.0f} s)", flush=True)
    if a.pictures and finite:
        print(f"pictures in {write_pictures(model, prep, a.size, a.pictures)}")


if __name__ == "__main__":
    main()
