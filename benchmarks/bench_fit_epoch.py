"""One CD-1 epoch through ``fit``, timed alone: for A/B comparisons of two versions of boltzkit.

10,000 rows of binarized MNIST, 784 x 500 Bernoulli RBM, batch 100, lr 0.1, no momentum: the
setting of ``bench_cd.py``. Prints the medians over ``--repeats`` of the whole ``fit`` call and
of fit's own update-loop timer (``history[0]["seconds"]``). Run it alternately against the
working tree and against another version's ``src`` (``PYTHONPATH``) so that machine noise hits
both alike::

    git archive OLD src | tar -x -C /tmp/old
    for i in 1 2 3 4; do
      BOLTZKIT_DATA=../shared/data PYTHONPATH=/tmp/old/src python benchmarks/bench_fit_epoch.py --tag old
      BOLTZKIT_DATA=../shared/data python benchmarks/bench_fit_epoch.py --tag new
    done

It runs with the old keyword ``momentum=`` where ``SGD`` does not exist (before the training
core).
"""

import argparse
import statistics
import time

import torch

import boltzkit
from boltzkit.data import load_dataset
from boltzkit.training import CD, fit

try:
    from boltzkit.training import SGD

    def no_momentum():
        return {"update": SGD(0.0)}
except ImportError:  # a version from before the training core
    def no_momentum():
        return {"momentum": 0.0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tag", default="this version")
    args = ap.parse_args()
    x = load_dataset("binarized-mnist", "train").data[:10000].contiguous()
    whole, loop = [], []
    for _ in range(args.repeats):
        model = boltzkit.RBM(784, 500, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        state = fit(model, x, estimator=CD(1), epochs=1, batch_size=100, lr=0.1,
                    generator=torch.Generator().manual_seed(1), **no_momentum())
        whole.append(time.perf_counter() - t0)
        loop.append(state.history[0]["seconds"])
    print(f"{args.tag}: fit {statistics.median(whole):.4f} s, update loop "
          f"{statistics.median(loop):.4f} s (medians of {args.repeats}); recon error "
          f"{state.history[0]['recon_error']:.6f}")


if __name__ == "__main__":
    main()
