"""Few-label MNIST classification with convolutional RBM features (the protocol of Lee, Grosse,
Ranganath & Ng, CACM 2011: a linear classifier on 1,000 ... 60,000 labelled training digits,
test error on the 10,000 test digits), next to the same classifier on raw pixels and on a dense
RBM's hidden probabilities.

Unsupervised part, on all 60,000 training images (no labels), grey values in [0, 1] taken as the
probabilities of Bernoulli visible units (what CD accepts; no binarisation):

- layer 1: a :class:`boltzkit.ConvRBM` (``--filters`` filters of ``--filter-size``, 2 x 2
  probabilistic max-pooling), CD-1 with Lee et al.'s sparsity regulariser;
- optionally (``--layer2``) a second ConvRBM on layer 1's pooling-unit probabilities
  ``(K, 10, 10)``, trained the same way;
- a dense 784 x ``--dense-hidden`` RBM: centered PCD-1, lr 0.1 decaying linearly (the defaults of
  ``boltzkit train``).

Features: each conv layer's pooling-unit probabilities P(block on | v) (``conv1``, ``conv2``),
average-pooled over E x E neighbourhoods for each E of ``--extra-pool`` (``conv1/2``: E = 2;
E = 1: as they are); the dense RBM's E[h | v]; raw pixels; all standardised on the labelled
digits. Classifier: scikit-learn's multinomial
LogisticRegression, its C chosen from ``--Cs``: for a small labelled set by 5-fold
cross-validation inside it, for 60,000 labels on the last 10,000 of them (fitted on the first
50,000), then refitted on all. Small labelled sets are class-balanced (``--labels / 10`` digits
of each class), ``--subsets`` of them drawn at random: mean and sd of the test error.

``--validation`` holds the last 10,000 training digits out as the test set (the unsupervised
models then see only the first 50,000 and 60,000 labels become 50,000): for choosing settings
without looking at the test digits. Every part's CPU time (``time.process_time``) and wall time
are printed; ``--json-out`` writes everything::

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \\
        .venv/bin/python benchmarks/conv_fewlabel.py --json-out fewlabel.json
"""

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

import boltzkit
from boltzkit.data import load_dataset
from boltzkit.training import PCD, SGD, Centered, fit
from boltzkit.training.estimators import CD, Sparsity


class Timer:
    """CPU and wall seconds of named parts."""

    def __init__(self):
        self.parts = {}

    def __call__(self, name):
        timer = self

        class Part:
            def __enter__(self):
                self.cpu, self.wall = time.process_time(), time.perf_counter()

            def __exit__(self, *exc):
                timer.parts[name] = {"cpu_s": round(time.process_time() - self.cpu, 1),
                                     "wall_s": round(time.perf_counter() - self.wall, 1)}
                print(f"  [{name}: {timer.parts[name]['cpu_s']} s CPU]", flush=True)
        return Part()


def train_conv(images, args, filters, size, seed):
    """A ConvRBM trained with CD-1 and the sparsity regulariser on ``images`` (n, C, H, W)."""
    model = boltzkit.ConvRBM(images.shape[1:], filters, size, pool=args.pool,
                             generator=torch.Generator().manual_seed(seed))
    maps = (images.shape[2] - size + 1) * (images.shape[3] - size + 1)
    est = Sparsity(CD(1), target=args.sparsity, cost=args.sparsity_cost)
    fit(model, images, estimator=est, update=SGD(0.5, 1e-4), epochs=args.epochs,
        batch_size=100, lr=args.lr_per_map / maps,
        generator=torch.Generator().manual_seed(seed + 1), progress=False)
    return model


@torch.no_grad()
def pooled(model, images, rows=500):
    """P(pooling unit on | v) of every image, (n, K, H'/P, W'/P)."""
    return torch.cat([model.pooled_mean(images[s:s + rows], check=False)
                      for s in range(0, images.shape[0], rows)])


def conv_features(layers, images, extra_pools):
    """``{name: (n, features)}``: every layer's pooled maps, average-pooled by each E."""
    out, x = {}, images
    for depth, m in enumerate(layers, 1):
        x = pooled(m, x)
        for e in extra_pools:
            name = f"conv{depth}" + (f"/{e}" if e > 1 else "")
            out[name] = (F.avg_pool2d(x, e, ceil_mode=True) if e > 1 else x).flatten(1).numpy()
    return out


def classify(train_x, train_y, test_x, test_y, Cs, seed, cv_folds=5):
    """Test error of a standardised multinomial logistic regression, C chosen on the labelled
    data alone; returns (error, chosen C)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    def fitted(x, y, c):
        scaler = StandardScaler().fit(x)
        clf = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), y)
        return lambda z: clf.predict(scaler.transform(z))

    n = train_x.shape[0]
    scores = {}
    if n > 20000:  # one split: the last 10,000 labelled digits
        cut = n - 10000
        for c in Cs:
            pred = fitted(train_x[:cut], train_y[:cut], c)(train_x[cut:])
            scores[c] = float((pred != train_y[cut:]).mean())
    else:
        folds = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
        for c in Cs:
            errs = [float((fitted(train_x[a], train_y[a], c)(train_x[b]) != train_y[b]).mean())
                    for a, b in folds.split(train_x, train_y)]
            scores[c] = float(np.mean(errs))
    best = min(Cs, key=lambda c: (scores[c], c))
    pred = fitted(train_x, train_y, best)(test_x)
    return float((pred != test_y).mean()), best


def balanced_subset(labels, per_class, rng):
    return np.concatenate([rng.choice(np.flatnonzero(labels == k), per_class, replace=False)
                           for k in range(10)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--filters", type=int, default=24)
    ap.add_argument("--filter-size", type=int, default=9)
    ap.add_argument("--pool", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr-per-map", type=float, default=0.4,
                    help="learning rate times the positions of a hidden map")
    ap.add_argument("--sparsity", type=float, default=0.02)
    ap.add_argument("--sparsity-cost", type=float, default=300.0)
    ap.add_argument("--layer2", action="store_true", help="a second ConvRBM on layer 1")
    ap.add_argument("--filters2", type=int, default=40)
    ap.add_argument("--filter-size2", type=int, default=3)
    ap.add_argument("--extra-pool", default="1,2",
                    help="average-pooling sizes of the pooled maps, one feature set each")
    ap.add_argument("--dense-hidden", type=int, default=500)
    ap.add_argument("--dense-epochs", type=int, default=10)
    ap.add_argument("--feature-sets", default=None,
                    help="the feature sets classified, e.g. 'conv1/2,dense RBM,pixels' "
                         "(default: all)")
    ap.add_argument("--labels", default="1000,60000")
    ap.add_argument("--subsets", type=int, default=10)
    ap.add_argument("--Cs", default="0.001,0.01,0.1,1")
    ap.add_argument("--validation", action="store_true",
                    help="test on the last 10,000 training digits instead of the test set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    Cs = [float(c) for c in args.Cs.split(",")]
    timer = Timer()

    train = load_dataset("mnist", "train")
    if args.validation:
        test_x, test_y = train.data[50000:], train.labels.numpy()[50000:]
        train_x, train_y = train.data[:50000], train.labels.numpy()[:50000]
    else:
        test = load_dataset("mnist", "test")
        test_x, test_y = test.data, test.labels.numpy()
        train_x, train_y = train.data, train.labels.numpy()
    images = train_x.reshape(-1, 1, 28, 28).contiguous()
    test_images = test_x.reshape(-1, 1, 28, 28).contiguous()
    print(f"{'validation' if args.validation else 'test'}: {len(train_y)} training digits, "
          f"{len(test_y)} test digits; threads {torch.get_num_threads()}", flush=True)

    with timer("conv layer 1 training"):
        layers = [train_conv(images, args, args.filters, args.filter_size, args.seed)]
    if args.layer2:
        with timer("conv layer 2 training"):
            first = pooled(layers[0], images)
            layers.append(train_conv(first, args, args.filters2, args.filter_size2,
                                     args.seed + 10))
    with timer("conv features"):
        pools = [int(e) for e in args.extra_pool.split(",")]
        tr, te = conv_features(layers, images, pools), conv_features(layers, test_images, pools)
        feats = {name: (tr[name], te[name]) for name in tr}
    with timer("dense RBM training"):
        rbm = boltzkit.RBM(784, args.dense_hidden, generator=torch.Generator().manual_seed(5))
        fit(rbm, train_x, estimator=Centered(PCD(1), rate=0.01), update=SGD(0.5, 1e-4),
            epochs=args.dense_epochs, batch_size=100, lr=0.1, lr_schedule="linear",
            generator=torch.Generator().manual_seed(6), progress=False)
        with torch.no_grad():
            feats["dense RBM"] = (rbm.hidden_mean(train_x).numpy(),
                                  rbm.hidden_mean(test_x).numpy())
    feats["pixels"] = (train_x.numpy(), test_x.numpy())
    if args.feature_sets:
        keep = args.feature_sets.split(",")
        unknown = [k for k in keep if k not in feats]
        if unknown:
            raise SystemExit(f"--feature-sets: no feature set {unknown[0]!r}; there are "
                             f"{', '.join(feats)}")
        feats = {k: feats[k] for k in keep}
    print("features: " + ", ".join(f"{k} {v[0].shape[1]}" for k, v in feats.items()), flush=True)

    results = {}
    rng = np.random.default_rng(args.seed)
    counts = [min(int(n), len(train_y)) for n in args.labels.split(",")]
    for n_labels in counts:
        subsets = [np.arange(len(train_y))] if n_labels == len(train_y) else \
            [balanced_subset(train_y, n_labels // 10, rng) for _ in range(args.subsets)]
        for name, (ftr, fte) in feats.items():
            with timer(f"classifier {name} {n_labels}"):
                runs = [classify(ftr[idx], train_y[idx], fte, test_y, Cs, args.seed)
                        for idx in subsets]
            errs = [100 * e for e, _ in runs]
            results[f"{name} {n_labels}"] = {
                "labels": n_labels, "features": name, "error_pct_mean": float(np.mean(errs)),
                "error_pct_sd": float(np.std(errs, ddof=1)) if len(errs) > 1 else 0.0,
                "errors_pct": errs, "C": [c for _, c in runs]}
            r = results[f"{name} {n_labels}"]
            where = "validation" if args.validation else "test"
            print(f"{n_labels:6d} labels  {name:10s} {where} error {r['error_pct_mean']:.2f}% "
                  f"(sd {r['error_pct_sd']:.2f}, {len(errs)} subsets; C {r['C']})", flush=True)
    out = {"settings": vars(args), "times": timer.parts, "results": results}
    print(json.dumps(timer.parts, indent=1))
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
