"""The study behind ``boltzkit train --model conv``'s defaults: on MNIST, a ConvRBM of 24 filters
of 9 x 9 with 2 x 2 probabilistic max-pooling, 3 epochs of CD-1 (batch 100, momentum 0.5, weight
decay 1e-4) on the first 10,000 training digits binarised at 0.5, for each learning rate and
sparsity setting (``--grid LR:TARGET:COST,...``; TARGET ``none``: no regulariser). Each model is
judged by its filters (``OUT/filters_*.png``), its mean hidden activation and reconstruction
error on 500 held-out training digits, and a logistic regression (C 0.1 and 1) on the pooled
features of the first 1,000 training digits, scored on training digits 50,000-54,999 (never the
test set)::

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \\
        .venv/bin/python benchmarks/conv_defaults_study.py --out conv-study
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import boltzkit
from boltzkit import plots
from boltzkit.data import load_dataset
from boltzkit.training import CD, SGD, fit
from boltzkit.training.estimators import Sparsity

GRID = ("0.001:none:0,0.001:0.02:10,0.001:0.02:100,0.003:none:0,0.003:0.02:10,0.003:0.02:100,"
        "0.01:none:0,0.01:0.02:10,0.01:0.02:100,0.001:0.02:300,0.001:0.02:1000,"
        "0.001:0.005:100,0.001:0.005:300,0.001:0.05:100,0.002:0.02:100,0.002:0.02:300,"
        "0.0005:0.02:100")


def main():
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--out", default="conv-study")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_dataset("mnist", "train")
    y = ds.labels.numpy()
    binar = (ds.data.reshape(-1, 1, 28, 28) > 0.5).float()
    train, held = binar[:10000], binar[50000:50500]
    lab_idx, val_idx = np.arange(1000), np.arange(50000, 55000)

    def feats(m, imgs):
        with torch.no_grad():
            return torch.cat([m.pooled_mean(imgs[s:s + 500], check=False).flatten(1)
                              for s in range(0, len(imgs), 500)]).numpy()

    results = []
    for item in args.grid.split(","):
        lr, target, cost = item.split(":")
        lr, cost = float(lr), float(cost)
        target = None if target == "none" else float(target)
        m = boltzkit.ConvRBM((1, 28, 28), 24, 9, pool=2,
                             generator=torch.Generator().manual_seed(0))
        est = CD(1) if target is None else Sparsity(CD(1), target=target, cost=cost)
        t0 = time.process_time()
        try:
            fit(m, train, estimator=est, update=SGD(0.5, 1e-4), epochs=3, batch_size=100, lr=lr,
                generator=torch.Generator().manual_seed(1))
        except FloatingPointError as err:
            print(f"lr {lr} target {target} cost {cost}: diverged ({err})")
            continue
        with torch.no_grad():
            act = m.hidden_mean(held, check=False).mean().item()
            rec = ((held - m.reconstruction(held, check=False)) ** 2).mean().item()
        f_lab, f_val = feats(m, binar[lab_idx]), feats(m, binar[val_idx])
        errs = {c: 1 - LogisticRegression(C=c, max_iter=500).fit(f_lab, y[lab_idx]).score(
            f_val, y[val_idx]) for c in (0.1, 1.0)}
        name = f"lr{lr}_t{target}_c{cost}"
        plots.filters(m.weight.detach().reshape(24, -1).T, (9, 9), out / f"filters_{name}.png",
                      title=name)
        r = dict(lr=lr, target=target, cost=cost, cpu_s=time.process_time() - t0,
                 hidden_activity=act, recon_error=rec, error=errs)
        print(json.dumps(r), flush=True)
        results.append(r)
    (out / "study.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
