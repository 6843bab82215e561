"""One ConvRBM CD-1 epoch through ``fit`` against its floor, the convolution calls alone,
measured side by side in one process.

Binarized MNIST images ``(n, 1, 28, 28)``, 24 filters of 9 x 9 (hidden maps 24 x 20 x 20) with
2 x 2 probabilistic max-pooling, batch 100, lr 0.05, no momentum. Per CD-1 update the floor
is what no implementation can skip:
two hidden fields (``conv2d``: the data and the reconstruction), one visible field (the
transposed convolution) and two filter correlations (``conv2d_weight``: the positive and
negative statistics), each on a batch of 100; the fit epoch does these plus sampling,
pooling, the checks and the update. The floor's convolutions are the model's own
(``hidden_field``, ``visible_field``: for one-channel images on the CPU the transposed
convolution is a matrix product and a fold, see :meth:`boltzkit.ConvRBM.visible_field`);
``floor with conv_transpose2d`` is the same with PyTorch's transposed convolution, the floor
this benchmark measured before the model stopped using it. Prints the medians over
``--repeats`` and the ratios (target: within 1.5x of the floor)::

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \\
        .venv/bin/python benchmarks/conv_rbm_mnist.py --rows 10000 --repeats 5
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import boltzkit
from boltzkit.data import load_dataset
from boltzkit.training import CD, SGD, fit


def floor_epoch(model, x, batch_size, transposed=None):
    """The convolution calls of one CD-1 epoch alone (the same shapes, no sampling): the
    model's own ``hidden_field`` and ``visible_field``, or ``transposed(h, w)`` for the
    visible field when given."""
    w = model.weight.detach()
    visible = model.visible_field if transposed is None else (lambda h: transposed(h, w))
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, x.shape[0], batch_size):
            v = x[s:s + batch_size]
            h = model.hidden_field(v)
            v1 = visible(h)
            h1 = model.hidden_field(v1)
            # the filter statistics of both phases: correlations of v with h
            torch.nn.grad.conv2d_weight(v, w.shape, h)
            torch.nn.grad.conv2d_weight(v1, w.shape, h1)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--filters", type=int, default=24)
    ap.add_argument("--filter-size", type=int, default=9)
    ap.add_argument("--pool", type=int, default=2)
    args = ap.parse_args()
    x = load_dataset("binarized-mnist", "train").data[:args.rows].reshape(-1, 1, 28, 28)
    x = x.contiguous()
    epoch, floor, old = [], [], []
    for r in range(args.repeats):
        model = boltzkit.ConvRBM((1, 28, 28), args.filters, args.filter_size, pool=args.pool,
                                 generator=torch.Generator().manual_seed(0))
        floor.append(floor_epoch(model, x, 100))
        old.append(floor_epoch(model, x, 100, F.conv_transpose2d))
        state = fit(model, x, estimator=CD(1), update=SGD(0.0), epochs=1, batch_size=100,
                    lr=0.05, generator=torch.Generator().manual_seed(1), progress=False)
        epoch.append(state.history[0]["seconds"])
    e, f, o = (statistics.median(t) for t in (epoch, floor, old))
    print(f"ConvRBM {args.filters} x {args.filter_size}x{args.filter_size}, pool {args.pool}, "
          f"{args.rows} rows, threads {torch.get_num_threads()}: CD-1 epoch {e:.3f} s, "
          f"convolutions alone {f:.3f} s, ratio {e / f:.2f}; floor with conv_transpose2d "
          f"{o:.3f} s, ratio {e / o:.2f} (medians of {args.repeats})")


if __name__ == "__main__":
    main()
