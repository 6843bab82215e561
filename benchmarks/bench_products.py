"""One matrix product on every path this machine offers, by shape: where boltzkit's
``products="auto"`` rule (oneDNN's float32 linear from ``boltzkit._products.MIN_MACS``
multiply-adds up, BLAS below) comes from.

For each shape ``(n, k, m)`` (``a (n, k) @ b (k, m)``, plus a bias where the RBM adds one) it
times, interleaved in a rotating order, medians of ``--repeats`` rounds of many calls:

- ``blas``: ``torch.addmm`` (PyTorch's BLAS: MKL in the official CPU wheels);
- ``onednn``: ``torch.ops.mkldnn._linear_pointwise`` in float32 (what ``auto`` routes to);
- ``numpy``: NumPy's ``a @ b`` in float32 (OpenBLAS here);
- ``bf16``: the oneDNN linear on bfloat16 operands, the conversions of ``a`` and ``b`` and of
  the result back to float32 included (what ``products="bf16"`` pays per call);
- ``boltzkit``: ``boltzkit._products.addmm``, whichever route the rule picks.

    nice -n 10 .venv/bin/python benchmarks/bench_products.py --threads 1
    nice -n 10 .venv/bin/python benchmarks/bench_products.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

# the CD-1 step's products for 784x500 (fields, reconstruction, statistics) and smaller ones
# around the crossover (digits 64x64 at batch 20, 16-hidden MNIST, ...)
SHAPES = [(100, 784, 500), (100, 500, 784), (784, 100, 500), (784, 200, 500),
          (100, 784, 100), (100, 784, 50), (20, 784, 128), (20, 784, 64), (100, 784, 16),
          (20, 64, 64), (6, 4, 3)]


def variants(n, k, m, g):
    from boltzkit import _products

    a, b, bias = torch.rand(n, k, generator=g), torch.randn(k, m, generator=g), \
        torch.randn(m, generator=g)
    an, bn = a.numpy(), b.numpy()
    op = torch.ops.mkldnn._linear_pointwise
    bt = b.t()
    out = {
        "blas": lambda: torch.addmm(bias, a, b),
        "onednn": lambda: op(a, bt, bias, "none", [], ""),
        "numpy": lambda: an @ bn,
        "bf16": lambda: op(a.bfloat16(), bt.bfloat16(), None, "none", [], "").float().add_(bias),
        "boltzkit": lambda: _products.addmm(bias, a, b),
    }
    return out, _products.route(a, b, bias)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; microseconds per "
          f"call, medians of {args.repeats}")
    names = ["blas", "onednn", "numpy", "bf16", "boltzkit"]
    print(f"{'shape (n, k, m)':>18s} {'MACs':>10s} " + " ".join(f"{x:>9s}" for x in names)
          + "  route   blas/onednn")
    for n, k, m in SHAPES:
        fs, route = variants(n, k, m, g)
        macs = n * k * m
        reps = max(50, min(5000, int(5e9 / (macs + 2e5))))  # about 50 ms a round
        for f in fs.values():
            for _ in range(10):
                f()
        res = {x: [] for x in names}
        for r in range(args.repeats):
            order = names[r % len(names):] + names[:r % len(names)]
            for x in order:
                t0 = time.perf_counter()
                for _ in range(reps):
                    fs[x]()
                res[x].append((time.perf_counter() - t0) / reps * 1e6)
        med = {x: statistics.median(v) for x, v in res.items()}
        print(f"{str((n, k, m)):>18s} {macs:>10d} " + " ".join(f"{med[x]:9.1f}" for x in names)
              + f"  {route:7s} {med['blas'] / med['onednn']:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
