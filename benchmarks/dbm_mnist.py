"""A 784-500-1000 deep Boltzmann machine on binarized MNIST (Salakhutdinov & Hinton 2009's
architecture), at a budget this CPU allows: greedy pre-training with the doubled inputs, joint
training by mean-field PCD, then log Z bracketed by forward and reverse AIS and the test set's
log-likelihood estimated from both sides.

    OMP_NUM_THREADS=1 BOLTZKIT_DATA=../shared/data \\
        .venv/bin/python benchmarks/dbm_mnist.py --pretrain-epochs 5 --epochs 10

Measured after pre-training and after joint training (same seeds, same base and schedule for
both directions):

- forward AIS log Z (a stochastic lower bound) from the base model with the training data's
  rates in every layer, and reverse AIS log Z (an upper bound in expectation) from Gibbs chains
  run ``--sweeps`` sweeps at β = 1 (the persistent chains of training after joint training);
  ``--compare-base`` also runs both from a base whose hidden units are fair coins;
- on the 10,000 test rows: the mean-field bound and the importance-sampled
  ``log sum_h exp(-E(v, h))`` (``--is-samples`` draws), each minus either log Z;
- RAISE (reverse annealing from each row) on ``--raise-rows`` test rows: a conservative
  per-row estimate that needs no log Z.

``--save-every N`` keeps the pre-trained model and the model every N joint epochs and, after
training, measures each with a shorter bracket (``--curve-steps``) for a learning curve. Writes ``runs/dbm_mnist/`` (or
``--out``): ``model.safetensors`` and ``result.json`` (git-ignored). The paper pre-trains for
hundreds of epochs and trains jointly for about 500 (-84.62 nats).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import boltzkit
    from boltzkit.data import load_dataset
    from boltzkit.evaluation import DEFAULT_STEPS
    from boltzkit.evaluation import dbm as edbm
    from boltzkit.io import atomic_write
    from boltzkit.samplers import dbm as sampler
    from boltzkit.training import SGD, fit
    from boltzkit.training.callbacks import Callback
    from boltzkit.training.estimators import MeanFieldPCD
    from boltzkit.training.greedy import pretrain_dbm

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.005)
    p.add_argument("--pretrain-lr", type=float, default=0.05)
    p.add_argument("--chains", type=int, default=100, help="persistent chains of training")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--sweeps", type=int, default=5000,
                   help="Gibbs sweeps at beta = 1 before reverse AIS")
    p.add_argument("--is-samples", type=int, default=100)
    p.add_argument("--raise-rows", type=int, default=100)
    p.add_argument("--compare-base", action="store_true")
    p.add_argument("--save-every", type=int, default=0)
    p.add_argument("--curve-steps", type=int, default=3000)
    p.add_argument("--skip-pretrained", action="store_true",
                   help="no full measurement after pre-training (the curve still has it)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "dbm_mnist")
    args = p.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    x = load_dataset("binarized-mnist", "train").data
    test = load_dataset("binarized-mnist", "test").data
    gen = torch.Generator().manual_seed(args.seed)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"settings": settings, "threads": torch.get_num_threads()}

    def write():
        with atomic_write(out / "result.json") as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")

    def seeded(k):
        return torch.Generator().manual_seed(1000 * args.seed + k)

    def samples(model, chains, sweeps):
        """Chains at beta = 1: the given ones (or fresh ones from training rows) run on."""
        g = seeded(1)
        if chains is None:
            idx = torch.randperm(x.shape[0], generator=g)[:args.ais_chains]
            chains = sampler.init(model, x[idx], g)
        return sampler.run(model, chains, sweeps, g)

    def bracket(model, chains, steps, base):
        fwd = edbm.ais(model, base=base, n_chains=args.ais_chains, betas=steps,
                       generator=seeded(2))
        rev = edbm.reverse_ais(model, chains, base=base, betas=steps, generator=seeded(3))
        return fwd, rev

    def summary(r):
        return {"log_z": r.log_z, "interval": [r.log_z_low, r.log_z_high], "ess": r.ess,
                "n_chains": r.n_chains, "n_betas": r.n_betas}

    def mean_se(t):
        return float(t.mean()), float(t.std() / t.numel() ** 0.5)

    def measure(tag, model, chains):
        t1 = time.perf_counter()
        chains = samples(model, chains, args.sweeps)
        fwd, rev = bracket(model, chains, args.ais_steps, x)
        mu = sampler.mean_field(model, test, 30)
        elbo = edbm.elbo(model, test, mu)
        isl = edbm.log_unnormalized(model, test, n_samples=args.is_samples, means=mu,
                                    generator=seeded(4))
        r = {"forward": summary(fwd), "reverse": summary(rev),
             "test_elbo": mean_se(elbo), "test_is": mean_se(isl)}
        for name, lz in (("forward", fwd.log_z), ("reverse", rev.log_z)):
            r[f"test_bound_{name}"] = float(elbo.mean()) - lz
            r[f"test_is_{name}"] = float(isl.mean()) - lz
        if args.raise_rows:
            idx = torch.randperm(test.shape[0], generator=seeded(5))[:args.raise_rows]
            ll, res = edbm.raise_log_likelihood(model, test[idx], base=x, betas=args.ais_steps,
                                                means=[m[idx] for m in mu], generator=seeded(6))
            r["raise"] = {"rows": args.raise_rows, "mean": mean_se(ll),
                          "is_minus_reverse_same_rows": float(isl[idx].mean()) - rev.log_z,
                          "bound_minus_reverse_same_rows": float(elbo[idx].mean()) - rev.log_z,
                          "chains_log_z": res.log_z}
        if args.compare_base:
            a = edbm.base_biases(model, x)
            fair = [a[0]] + [torch.zeros_like(t) for t in a[1:]]
            f2, r2 = bracket(model, chains, args.ais_steps, fair)
            r["fair_coin_base"] = {"forward": summary(f2), "reverse": summary(r2),
                                   "test_bound_forward": float(elbo.mean()) - f2.log_z,
                                   "test_bound_reverse": float(elbo.mean()) - r2.log_z}
        r["seconds"] = time.perf_counter() - t1
        result[tag] = r
        write()
        print(f"{tag}: log Z forward {fwd.log_z:.2f} (ESS {fwd.ess:.1f}) reverse {rev.log_z:.2f}"
              f"; test bound {r['test_bound_forward']:.2f} / {r['test_bound_reverse']:.2f}, "
              f"importance-sampled {r['test_is_forward']:.2f} / {r['test_is_reverse']:.2f}"
              + (f", RAISE ({args.raise_rows} rows) {r['raise']['mean'][0]:.2f}"
                 if args.raise_rows else "") + f" [{r['seconds']:.0f} s]", flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    model = pretrain_dbm(x, [784, 500, 1000], epochs=args.pretrain_epochs,
                         lr=args.pretrain_lr, generator=gen)
    result["pretrain_seconds"] = time.perf_counter() - t0
    result["pretrain_cpu_s"] = time.process_time() - c0
    write()
    print(f"pre-training: {result['pretrain_seconds']:.0f} s ({result['pretrain_cpu_s']:.0f} "
          f"CPU s)", flush=True)
    if not args.skip_pretrained:
        measure("after_pretraining", model, None)

    class Snapshots(Callback):
        """Keeps the model every ``every`` epochs, with the training time so far."""

        def __init__(self, every):
            self.every, self.times, self.start = every, [], None

        def on_fit_start(self, state):
            self.start = time.perf_counter()

        def on_epoch_end(self, state):
            if self.every and state.epoch % self.every == 0:
                boltzkit.save(state.model, out / f"epoch_{state.epoch:04d}.safetensors")
                self.times.append((state.epoch, time.perf_counter() - self.start))

    snaps = Snapshots(args.save_every)
    if args.save_every:  # the curve starts at the pre-trained model
        boltzkit.save(model, out / "epoch_0000.safetensors")
        snaps.times.append((0, 0.0))
    t0, c0 = time.perf_counter(), time.process_time()
    state = fit(model, x, estimator=MeanFieldPCD(k=1, n_chains=args.chains, mf_steps=10),
                update=SGD(0.5, 1e-4), epochs=args.epochs, batch_size=100, lr=args.lr,
                lr_schedule="linear", generator=gen, progress=False, monitors=[],
                callbacks=[snaps])
    result["joint_seconds"] = time.perf_counter() - t0
    result["joint_cpu_s"] = time.process_time() - c0
    boltzkit.save(model, out / "model.safetensors")
    measure("after_joint_training", model, state.estimator_state)

    curve = []
    for epoch, seconds in snaps.times:
        m = boltzkit.load(out / f"epoch_{epoch:04d}.safetensors")
        chains = samples(m, None, args.sweeps)
        fwd, rev = bracket(m, chains, args.curve_steps, x)
        elbo = float(edbm.elbo(m, test).mean())
        curve.append({"epoch": epoch, "train_seconds": seconds, "forward": fwd.log_z,
                      "reverse": rev.log_z, "test_bound_forward": elbo - fwd.log_z,
                      "test_bound_reverse": elbo - rev.log_z})
        result["curve"] = curve
        write()
        print(f"epoch {epoch} ({seconds:.0f} s): log Z {fwd.log_z:.2f} .. {rev.log_z:.2f}, "
              f"test bound {elbo - fwd.log_z:.2f} .. {elbo - rev.log_z:.2f}", flush=True)
    print(json.dumps({k: v for k, v in result.items() if k.endswith(("seconds", "cpu_s"))}))


if __name__ == "__main__":
    main()
