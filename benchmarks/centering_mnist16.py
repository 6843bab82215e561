"""Centered against normal: a 16-hidden binary RBM on MNIST, exact test log-likelihood.

The reference is PyDeep's tutorial "Small centered/normal binary RBM on MNIST"
(``docs/tutorials/RBM_MNIST_small.rst`` and ``examples/RBM_MNIST_small.py`` in
github.com/MelJan/PyDeep, by J. Melchior, the paper's first author), which reports, with the
exact partition function::

    centered (update_offsets = 0.01):  log Z 310.18, LL train -143.15, LL test -142.56
    normal   (update_offsets = 0.0):   log Z 190.95, LL train -149.61, LL test -149.05

Its settings, read from that example and from PyDeep's ``rbm/trainer.py``, ``rbm/model.py``,
``base/basicstructure.py``, ``rbm/sampler.py`` and ``misc/io.py``, and what this script does:

- data: MNIST binarised with ``x < 0.5 -> 0`` and 1 otherwise, training on all 60,000 training
  rows (the pickle's train + valid), testing on the 10,000 test rows. Here:
  ``load_dataset("mnist", ...)`` thresholded the same way (``x >= 0.5``; pixel/255 and the
  pickle's scaling both put the cut at grey level 128).
- model: 784 x 16 Bernoulli-Bernoulli RBM.
- training: ``trainer.PCD(rbm, num_chains=batch_size)`` and ``train(data=batch, epsilon=0.01,
  update_visible_offsets=rate, update_hidden_offsets=rate)`` with the trainer's defaults: k = 1,
  momentum 0, no weight decay or other regulariser, offset type ``'DD'`` (both offsets from the
  data), hidden probabilities (not states) in the statistics; batch 100, 50 epochs, constant
  learning rate. Here: ``PCD(1, n_chains=100)``, ``SGD(momentum=0, weight_decay=0)``, lr 0.01,
  batch 100, 50 epochs; centered: ``Centered(PCD(1, n_chains=100), rate=0.01, offsets="dd")``.
- initial weights (``initial_weights='AUTO'``): uniform on ``±4 sqrt(6 / (n_visible +
  n_hidden))`` = ±0.346. The same here, drawn from the run's seed (both models start from the
  same weights).
- initial biases (``'AUTO'``): the visible bias at the inverse sigmoid of the data mean clipped
  to [0.001, 0.999] (the log base rates), the hidden bias 0; in the centered model these are
  the *centered* biases. Initial offsets (``'AUTO'``): the data mean (visible) and 0.5 (hidden)
  for the centered model, 0 for the normal one. Here the model keeps the ordinary parameters,
  so the centered start is mapped by ``a = a_c - W lam``, ``b = b_c - Wᵀ mu`` (see
  :mod:`boltzkit.training.estimators.centering`); the normal start is ``a = σ⁻¹(mean)``, ``b =
  0``. ``init_visible_bias=False`` keeps these starts.

Differences: PyDeep takes the batches in the data's order every epoch, here
:func:`boltzkit.training.fit` shuffles them every epoch (``--in-order`` takes them in order, as
PyDeep does; the chains and the offsets then start from the first 1000 rows); PyDeep starts the
persistent chains at binary draws from ``randn * 0.01`` (nearly all zeros), boltzkit's PCD at
random training rows; PyDeep works in float64, this script in float32 (log Z and the
log-likelihoods are computed in float64). PyDeep gives one run per variant, with its seed 42.
PyDeep's log Z of the centered model is that of its centered energy, which differs from the
ordinary energy by the constant ``a_cᵀ mu + b_cᵀ lam - muᵀ W lam``: only the normal models'
log Z compare.

Writes ``runs/centering16/results_seed<SEED>[_in_order].json`` (git-ignored) and prints a
markdown table; the exact log-likelihood every 10 epochs goes into the JSON (outside the
training time)::

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \\
        .venv/bin/python benchmarks/centering_mnist16.py [--seed N] [--in-order]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "centering16"

N_HIDDEN = 16
SETTINGS = dict(epochs=50, batch_size=100, lr=0.01, momentum=0.0, weight_decay=0.0,
                n_chains=100, k=1, rate=0.01)
PYDEEP = {"centered": {"log_z": 310.18444704, "train": -143.149739926, "test": -142.56382054},
          "normal": {"log_z": 190.951945786, "train": -149.605105935, "test": -149.053303204}}


def mnist_binary(split: str) -> torch.Tensor:
    from boltzkit.data import load_dataset

    return (load_dataset("mnist", split).data >= 0.5).float()


def initial_model(train: torch.Tensor, centered: bool, seed: int):
    """PyDeep's start (see the module docstring), in the model's ordinary parameters."""
    from boltzkit import RBM

    n_visible = train.shape[1]
    model = RBM(n_visible, N_HIDDEN)
    g = torch.Generator().manual_seed(seed)
    bound = 4.0 * math.sqrt(6.0 / (n_visible + N_HIDDEN))
    w = (2.0 * torch.rand(n_visible, N_HIDDEN, generator=g) - 1.0) * bound
    mean = train.mean(0)
    p = mean.clamp(0.001, 0.999)
    a = torch.log(p) - torch.log1p(-p)  # the centered visible bias a_c (normal model: a)
    b = torch.zeros(N_HIDDEN)
    if centered:  # a = a_c - W lam, b = b_c - Wᵀ mu with mu = data mean, lam = 0.5
        a = a - w @ torch.full((N_HIDDEN,), 0.5)
        b = b - w.t() @ mean
    with torch.no_grad():
        model.weight.copy_(w)
        model.visible_bias.copy_(a)
        model.hidden_bias.copy_(b)
    return model


def run(name: str, train: torch.Tensor, test: torch.Tensor, settings: dict, seed: int,
        in_order: bool = False) -> dict:
    from boltzkit import evaluation as ev
    from boltzkit.training import PCD, SGD, Callback, Centered, fit

    s = settings
    centered = name == "centered"
    model = initial_model(train, centered, seed)
    inner = PCD(s["k"], n_chains=s["n_chains"])
    estimator = Centered(inner, rate=s["rate"], offsets="dd") if centered else inner
    curve = []

    class Watch(Callback):
        def on_epoch_end(self, state):
            e = state.epoch
            if e == 1 or e % 10 == 0 or e == state.epochs:
                log_z = ev.log_partition_exact(state.model)
                ll = ev.log_likelihood(state.model, test, log_z).mean
                curve.append({"epoch": e, "seconds": state.seconds, "log_z": log_z,
                              "test": ll})
                print(f"{name}: epoch {e} log Z {log_z:.2f} test LL {ll:.2f} "
                      f"({state.seconds:.0f} s)", flush=True)

    # in order: a list of batches, which fit takes as it comes (it then starts the chains and
    # the offsets from the first 1000 rows)
    data = list(train.split(s["batch_size"])) if in_order else train
    state = fit(model, data, estimator=estimator,
                update=SGD(s["momentum"], s["weight_decay"]), epochs=s["epochs"],
                batch_size=s["batch_size"], lr=s["lr"],
                generator=torch.Generator().manual_seed(seed), monitors=[],
                callbacks=[Watch()], init_visible_bias=False)
    t0 = time.perf_counter()
    log_z = ev.log_partition_exact(model)
    ll_test = ev.log_likelihood(model, test, log_z)
    ll_train = ev.log_likelihood(model, train, log_z)
    out = {"model": name, "estimator": repr(estimator), "train_seconds": state.seconds,
           "eval_seconds": time.perf_counter() - t0, "log_z": log_z,
           "train": ll_train.mean, "test": ll_test.mean, "test_std_error": ll_test.std_error,
           "weight_norm": float(model.weight.detach().norm()), "curve": curve,
           "pydeep": PYDEEP[name]}
    if centered:
        offsets = state.estimator_state
        out["hidden_offset"] = offsets.hidden_offset.tolist()
        out["visible_offset_minus_data_mean_max"] = float(
            (offsets.visible_offset - train.mean(0)).abs().max())
    return out


def main(argv=None) -> None:
    from boltzkit.io import atomic_write

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=SETTINGS["epochs"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--in-order", action="store_true",
                        help="take the batches in the data's order every epoch, as PyDeep does")
    args = parser.parse_args(argv)
    settings = dict(SETTINGS, epochs=args.epochs)
    train, test = mnist_binary("train"), mnist_binary("test")
    results = [run(name, train, test, settings, args.seed, args.in_order)
               for name in ("centered", "normal")]
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"settings": settings, "seed": args.seed, "in_order": args.in_order,
              "n_train": train.shape[0],
              "n_test": test.shape[0], "torch_threads": torch.get_num_threads(),
              "results": results}
    tag = "_in_order" if args.in_order else ""
    with atomic_write(OUT / f"results_seed{args.seed}{tag}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    print()
    print("| model | exact test LL (nats) | train LL | log Z | train s | PyDeep test LL |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['test']:.2f} ± {r['test_std_error']:.2f} | {r['train']:.2f} | "
              f"{r['log_z']:.2f} | {r['train_seconds']:.0f} | {r['pydeep']['test']:.2f} |")


if __name__ == "__main__":
    main()
