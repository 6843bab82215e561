"""The best 784x500 binary RBM on binarized MNIST that 30 minutes of this machine's CPU (one
thread) can train, and its test log-likelihood measured from both sides (forward AIS and reverse
AIS with more chains than the defaults).

Runs (seed 0; 50,000 training rows; batch 100; SGD, momentum 0.5, weight decay 1e-4 on the
weights; the learning rate decays linearly to 0 over the run; visible biases from the base
rates; held-out curve: the LikelihoodMonitor on 2000 validation rows every 25 epochs):

- ``centered-pcd``: centered PCD-1 (100 chains, offsets rate 0.01), lr 0.02, 700 epochs;
- ``centered-pt``: centered parallel tempering (100 chains at each of 10 replicas, the ladder
  adapted every 100 updates), lr 0.02, 140 epochs (an update costs about 5x PCD's).

::

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \
        .venv/bin/python benchmarks/best_rbm.py train centered-pcd      # resumes if stopped
    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \
        .venv/bin/python benchmarks/best_rbm.py eval centered-pcd --chains 500

``runs/best_rbm/NAME/`` (git-ignored) holds the run folder (model.safetensors,
train_state.safetensors), train.json (settings, history with the curve, CPU seconds) and
eval.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "best_rbm"
RUNS = {
    "centered-pcd": dict(method="pcd", lr=0.02, epochs=700),
    "centered-pt": dict(method="pt", lr=0.02, epochs=140),
}


def _write(path: Path, obj) -> None:
    from boltzkit.io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def train(name: str, seed: int = 0) -> None:
    import boltzkit
    from boltzkit.data import load_dataset
    from boltzkit.training import PCD, PT, SGD, Callback, Centered, Checkpoint, fit
    from boltzkit.training.callbacks import LikelihoodMonitor, ReconstructionMonitor

    cfg = RUNS[name]
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    x = load_dataset("binarized-mnist", "train").data
    valid = load_dataset("binarized-mnist", "valid").data
    gen = torch.Generator().manual_seed(seed)
    model = boltzkit.RBM(784, 500, generator=gen)
    inner = PCD(1, n_chains=100) if cfg["method"] == "pcd" else PT(1, n_chains=100, replicas=10)
    est = Centered(inner, rate=0.01)
    record = folder / "train.json"
    cpu = json.loads(record.read_text()).get("train_cpu_s", 0.0) if record.exists() else 0.0
    t0 = time.process_time()

    class Log(Callback):
        def on_epoch_end(self, state):
            h = state.history[-1]
            if "loglik" in h:
                print(f"{name}: epoch {h['epoch']} held-out {h['loglik']:.2f} (short AIS) "
                      f"{h['seconds']:.0f} s", flush=True)
            _write(record, {"name": name, "settings": cfg, "estimator": repr(est),
                            "history": state.history,
                            "train_cpu_s": cpu + time.process_time() - t0})

    resume = folder if (folder / "train_state.safetensors").exists() else None
    fit(model, x, estimator=est, update=SGD(0.5, 1e-4), epochs=cfg["epochs"], batch_size=100,
        lr=cfg["lr"], lr_schedule="linear", generator=gen, progress=False, resume=resume,
        monitors=[ReconstructionMonitor(x),
                  LikelihoodMonitor(valid, every=25, base=x)],
        callbacks=[Checkpoint(folder), Log()])


def evaluate(name: str, chains: int, seed: int = 0) -> None:
    import boltzkit
    from boltzkit import evaluation as ev
    from boltzkit.data import load_dataset

    folder = OUT / name
    model = boltzkit.load(folder / "model.safetensors")
    x = load_dataset("binarized-mnist", "train").data
    test = load_dataset("binarized-mnist", "test").data
    result = {"name": name, "chains": chains}
    for key, fn in (("forward", lambda g: ev.ais(model, base=x, n_chains=chains, generator=g)),
                    ("reverse", lambda g: ev.reverse_ais(model, test, base=x, n_chains=chains,
                                                         generator=g))):
        t0 = time.perf_counter()
        res = fn(torch.Generator().manual_seed(seed))
        ll = ev.log_likelihood(model, test, res.log_z)
        result[key] = {"log_likelihood": ll.mean, "std_error": ll.std_error, "log_z": res.log_z,
                       "log_z_interval": [res.log_z_low, res.log_z_high], "ess": res.ess,
                       "seconds": time.perf_counter() - t0}
        print(f"{name}: {key} {ll.mean:.2f} ± {ll.std_error:.2f} (log Z {res.log_z:.2f}, ESS "
              f"{res.ess:.1f}, {result[key]['seconds']:.0f} s)", flush=True)
    train_ll = ev.log_likelihood(model, x[:10000], result["forward"]["log_z"])
    result["train_forward_first_10000"] = train_ll.mean
    _write(folder / f"eval_{chains}.json", result)


def curves(name: str, path: str) -> None:
    """Draw the run's learning curves (boltzkit.plots.learning_curves, what ``boltzkit train``
    draws as curves.png) from its train.json."""
    from boltzkit import plots

    record = json.loads((OUT / name / "train.json").read_text())
    plots.learning_curves(record["history"], path)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("name", choices=list(RUNS))
    e = sub.add_parser("eval")
    e.add_argument("name", choices=list(RUNS))
    e.add_argument("--chains", type=int, default=500)
    c = sub.add_parser("curves")
    c.add_argument("name", choices=list(RUNS))
    c.add_argument("path")
    args = p.parse_args()
    if args.cmd == "train":
        train(args.name)
    elif args.cmd == "eval":
        evaluate(args.name, args.chains)
    else:
        curves(args.name, args.path)


if __name__ == "__main__":
    main()
