"""A first 784-500-1000 deep Boltzmann machine on binarized MNIST (Salakhutdinov & Hinton 2009's
architecture), at a budget this CPU allows: greedy pre-training with the doubled inputs, joint
training by mean-field PCD, then the test set's variational lower bound with log Z from AIS.

    OMP_NUM_THREADS=2 BOLTZKIT_DATA=../shared/data \
        .venv/bin/python benchmarks/dbm_mnist.py --pretrain-epochs 5 --epochs 10

Writes ``runs/dbm_mnist/model.safetensors`` and ``result.json`` (git-ignored). The paper
pre-trains for hundreds of epochs and trains jointly for about 500 (-84.62 nats); the figure
here measures a run of minutes, not a reproduction.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "dbm_mnist"


def main() -> None:
    import boltzkit
    from boltzkit.data import load_dataset
    from boltzkit.evaluation import dbm as edbm
    from boltzkit.training import SGD, fit
    from boltzkit.training.estimators import MeanFieldPCD
    from boltzkit.training.greedy import pretrain_dbm

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    x = load_dataset("binarized-mnist", "train").data
    test = load_dataset("binarized-mnist", "test").data
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.process_time()
    model = pretrain_dbm(x, [784, 500, 1000], epochs=args.pretrain_epochs, lr=0.05,
                         generator=gen)
    t_pre = time.process_time() - t0
    result = {"settings": vars(args), "pretrain_cpu_s": t_pre}

    def measure(tag):
        t1 = time.perf_counter()
        res = edbm.ais(model, base=x, n_chains=100, generator=torch.Generator().manual_seed(0))
        bound = edbm.variational_bound(model, test, res.log_z)
        result[tag] = {"log_z": res.log_z, "log_z_interval": [res.log_z_low, res.log_z_high],
                       "ess": res.ess, "test_bound": float(bound.mean()),
                       "test_bound_std_error": float(bound.std() / bound.numel() ** 0.5),
                       "seconds": time.perf_counter() - t1}
        print(f"{tag}: log Z {res.log_z:.2f} (ESS {res.ess:.1f}), test variational bound "
              f"{result[tag]['test_bound']:.2f} nats", flush=True)

    measure("after_pretraining")
    t0 = time.process_time()
    fit(model, x, estimator=MeanFieldPCD(k=1, n_chains=args.chains, mf_steps=10),
        update=SGD(0.5, 1e-4), epochs=args.epochs, batch_size=100, lr=args.lr,
        lr_schedule="linear", generator=gen, progress=False, monitors=[])
    result["joint_cpu_s"] = time.process_time() - t0
    boltzkit.save(model, OUT / "model.safetensors")
    measure("after_joint_training")
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.endswith("cpu_s")}))


if __name__ == "__main__":
    main()
