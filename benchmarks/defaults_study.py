"""The defaults study: which settings of ``boltzkit train`` give a good, measurable 784x500 RBM
on binarized MNIST in 10 epochs of PCD-1, without tuning.

Every configuration trains the way ``boltzkit train --data binarized-mnist --hidden 500
--method pcd --epochs 10`` does (seed 0, 50,000 training rows, visible biases from the base
rates), with the settings of its row changed, then is measured on the 10,000 test rows by
forward AIS (100 chains) and reverse AIS (RAISE, 100 random test rows), each with the default
14,500-step schedule. A good default is one where the two directions agree (a bracket of a
few nats) and the figure is high: a model that the two directions disagree about by tens of
nats is not measurable, whatever forward AIS alone says.

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data nice -n 10 \
        .venv/bin/python benchmarks/defaults_study.py run NAME [NAME ...]   # or: run all
    .venv/bin/python benchmarks/defaults_study.py table

Results: ``runs/defaults_study/NAME.json`` (git-ignored); ``table`` prints the markdown table
of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "runs" / "defaults_study"

BASE = dict(batch_size=20, lr=0.05, lr_schedule="constant", momentum=0.5, weight_decay=1e-4,
            chains=None, k=1, centering=None, method="pcd", replicas=None)
# name: settings that differ from BASE (the defaults of boltzkit train before this study)
CONFIGS = {
    "old-defaults": {},
    "b100-lr0.02-lin": dict(batch_size=100, lr=0.02, lr_schedule="linear"),
    "b100-lr0.05-lin": dict(batch_size=100, lr=0.05, lr_schedule="linear"),
    "b100-lr0.1-lin-m0": dict(batch_size=100, lr=0.1, lr_schedule="linear", momentum=0.0),
    "b100-lr0.01-lin-m0.9": dict(batch_size=100, lr=0.01, lr_schedule="linear", momentum=0.9),
    "b50-lr0.02-lin": dict(batch_size=50, lr=0.02, lr_schedule="linear"),
    "b100-lr0.05-cos": dict(batch_size=100, lr=0.05, lr_schedule="cosine"),
    "b100-lr0.05-lin-c500": dict(batch_size=100, lr=0.05, lr_schedule="linear", chains=500),
    "b100-lr0.1-lin": dict(batch_size=100, lr=0.1, lr_schedule="linear"),
    "b100-lr0.2-lin": dict(batch_size=100, lr=0.2, lr_schedule="linear"),
    "b50-lr0.05-lin": dict(batch_size=50, lr=0.05, lr_schedule="linear"),
    "b100-lr0.1-lin-cent": dict(batch_size=100, lr=0.1, lr_schedule="linear", centering=0.01),
    "b100-lr0.2-lin-cent": dict(batch_size=100, lr=0.2, lr_schedule="linear", centering=0.01),
    "b50-lr0.1-lin-cent": dict(batch_size=50, lr=0.1, lr_schedule="linear", centering=0.01),
    "b100-lr0.1-const-cent": dict(batch_size=100, lr=0.1, centering=0.01),
    "b100-lr0.1-lin-m0.9-cent": dict(batch_size=100, lr=0.1, lr_schedule="linear", momentum=0.9,
                                     centering=0.01),
    "b100-lr0.1-lin-cent-pt": dict(batch_size=100, lr=0.1, lr_schedule="linear", centering=0.01,
                                   method="pt", replicas=10),
    "b100-lr0.05-lin-cent": dict(batch_size=100, lr=0.05, lr_schedule="linear", centering=0.01),
    "b100-lr0.02-lin-cent": dict(batch_size=100, lr=0.02, lr_schedule="linear", centering=0.01),
    "b100-lr0.05-lin-pt": dict(batch_size=100, lr=0.05, lr_schedule="linear", method="pt",
                               replicas=10),
}


def estimator_for(s: dict):
    from boltzkit import training

    if s["method"] == "pt":
        est = training.PT(s["k"], n_chains=s["chains"], replicas=s["replicas"])
    else:
        est = training.PCD(s["k"], n_chains=s["chains"])  # None: 100, as boltzkit train
    if s["centering"]:
        est = training.Centered(est, rate=s["centering"])
    return est


def run(name: str, epochs: int = 10, seed: int = 0) -> dict:
    import boltzkit
    from boltzkit import evaluation as ev
    from boltzkit.data import load_dataset
    from boltzkit.training import SGD, DivergenceError, fit

    s = dict(BASE, **CONFIGS[name])
    x = load_dataset("binarized-mnist", "train").data
    test = load_dataset("binarized-mnist", "test").data
    gen = torch.Generator().manual_seed(seed)
    model = boltzkit.RBM(784, 500, generator=gen)
    est = estimator_for(s)
    t0 = time.process_time()
    result = {"name": name, "settings": s, "estimator": repr(est), "epochs": epochs,
              "torch_threads": torch.get_num_threads()}
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        state = fit(model, x, estimator=est, update=SGD(s["momentum"], s["weight_decay"]),
                    epochs=epochs, batch_size=s["batch_size"], lr=s["lr"],
                    lr_schedule=s["lr_schedule"], generator=gen, progress=False)
    except DivergenceError as err:  # a finding of the study, not a failure of the script
        result.update(diverged=str(err), train_cpu_s=time.process_time() - t0)
        (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{name}: {err}", flush=True)
        return result
    result.update(train_cpu_s=time.process_time() - t0, train_s=state.seconds,
                  max_abs_weight=float(model.weight.detach().abs().max()))
    train_cpu = result["train_cpu_s"]
    for key, fn in (("forward", lambda g: ev.ais(model, base=x, n_chains=100, generator=g)),
                    ("reverse", lambda g: ev.reverse_ais(model, test, base=x, n_chains=100,
                                                         generator=g))):
        t0 = time.perf_counter()
        res = fn(torch.Generator().manual_seed(seed))
        ll = ev.log_likelihood(model, test, res.log_z)
        result[key] = {"log_likelihood": ll.mean, "std_error": ll.std_error, "log_z": res.log_z,
                       "ess": res.ess, "seconds": time.perf_counter() - t0}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{name}: forward {result['forward']['log_likelihood']:.2f} reverse "
          f"{result['reverse']['log_likelihood']:.2f} (ESS {result['forward']['ess']:.1f}), "
          f"train {train_cpu:.0f} CPU s", flush=True)
    return result


def table() -> str:
    lines = ["| configuration | batch | lr (schedule) | momentum | chains | extra | train CPU s "
             "| forward AIS | reverse AIS | gap | forward ESS |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in CONFIGS:
        p = OUT / f"{name}.json"
        if not p.exists():
            continue
        r = json.loads(p.read_text())
        s = r["settings"]
        extra = ", ".join(x for x in (f"centering {s['centering']}" if s["centering"] else "",
                                      f"PT {s['replicas']} replicas" if s["method"] == "pt"
                                      else "") if x) or "–"
        head = (f"| {name} | {s['batch_size']} | {s['lr']} ({s['lr_schedule']}) | "
                f"{s['momentum']} | {s['chains'] or 'default'} | {extra} | "
                f"{r['train_cpu_s']:.0f} | ")
        if "diverged" in r:
            epoch = r["diverged"].split("epoch ")[1].split(":")[0]
            lines.append(head + f"diverged in epoch {epoch} | | | |")
            continue
        f, b = r["forward"]["log_likelihood"], r["reverse"]["log_likelihood"]
        lines.append(head + f"{f:.2f} | {b:.2f} | {f - b:.2f} | {r['forward']['ess']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("names", nargs="+")
    r.add_argument("--epochs", type=int, default=10)
    sub.add_parser("table")
    args = p.parse_args()
    if args.cmd == "table":
        print(table())
        return
    names = list(CONFIGS) if args.names == ["all"] else args.names
    for name in names:
        if name not in CONFIGS:
            raise SystemExit(f"unknown configuration {name!r}; one of {', '.join(CONFIGS)}")
    for name in names:
        run(name, args.epochs)


if __name__ == "__main__":
    main()
