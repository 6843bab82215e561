"""CD-k epochs on a CUDA device against the matrix-product floor measured in the same run.

One epoch of CD-1 (and CD-25, PCD-1) on 10,000 rows of binarized MNIST, 784 visible x 500 hidden,
batch 100, float32, through :func:`boltzkit.training.fit`; the floor is the same number of the
matrix products one step must do (CD-k: 2k + 3 products of 100x784x500), nothing else. Medians of
``--repeats``, interleaved; CUDA work is synchronised before each clock read.

    BOLTZKIT_DATA=../shared/data python benchmarks/bench_cd_gpu.py --device cuda --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from boltzkit import RBM
from boltzkit.data import load_dataset
from boltzkit.training import CD, PCD, SGD, ReconstructionMonitor, fit


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor(x, w, batch, products_per_step, device):
    """Time of ``products_per_step`` 100x784x500-sized products per batch, nothing else."""
    n_batches = x.shape[0] // batch
    v = x[:batch]
    h = torch.rand(batch, w.shape[1], device=device)
    wt = w.t().contiguous()
    c = torch.empty(batch, w.shape[1], device=device)
    o = torch.empty(batch, w.shape[0], device=device)
    g = torch.empty_like(w)
    kinds = [lambda: torch.mm(v, w, out=c), lambda: torch.mm(h, wt, out=o),
             lambda: torch.mm(v.t(), h, out=g)]
    # CD-k: (k + 1) hidden fields v W, k reconstructions h Wᵀ, and 2 gradient products vᵀh
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        for i in products_per_step:
            kinds[i]()
    _sync(device)
    return time.perf_counter() - t0


def products(k):
    return [0] * (k + 1) + [1] * k + [2, 2]


def one_epoch(x, estimator, device, seed):
    m = RBM(784, 500, generator=torch.Generator().manual_seed(seed)).to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    _sync(device)
    t0 = time.perf_counter()
    fit(m, x, estimator=estimator, epochs=1, batch_size=100, lr=0.05, update=SGD(0.5),
        generator=g, monitors=[ReconstructionMonitor(x, rows=100)])
    _sync(device)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    x = load_dataset("binarized-mnist", "train").data[:10000].to(device)
    w = torch.randn(784, 500, device=device) * 0.01
    cases = {"CD-1": (CD(1), products(1)), "PCD-1": (PCD(1, 100), [0, 0, 1, 2, 2]),
             "CD-25": (CD(25), products(25))}
    one_epoch(x, CD(1), device, 0)  # warm-up: kernels, allocator
    floor(x, w, 100, products(1), device)
    times = {name: [] for name in cases}
    floors = {name: [] for name in cases}
    for r in range(args.repeats):
        for name, (est, prods) in cases.items():
            times[name].append(one_epoch(x, est, device, r))
            floors[name].append(floor(x, w, 100, prods, device))
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "rows": x.shape[0], "repeats": args.repeats}
    for name in cases:
        t, f = statistics.median(times[name]), statistics.median(floors[name])
        result[name] = {"epoch_s": t, "floor_s": f, "ratio": t / f}
        print(f"{name:6s} epoch {t * 1e3:8.1f} ms   floor {f * 1e3:8.1f} ms   ratio {t / f:5.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
