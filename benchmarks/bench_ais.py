"""AIS speed: one forward AIS estimate of a 784x500 binary RBM (100 chains, the default 14,500
annealing steps) against its floor, the two 100x784x500 matrix products per temperature alone
(``v W`` and ``h Wᵀ`` into preallocated outputs, same count), measured in the same process,
interleaved, medians of ``--repeats``.

    nice -n 10 .venv/bin/python benchmarks/bench_ais.py --repeats 3
    nice -n 10 .venv/bin/python benchmarks/bench_ais.py --repeats 3 --threads 1
    .venv/bin/python benchmarks/bench_ais.py --device cuda

The model is random (weights N(0, 0.05²), biases N(0, 0.5²)) unless ``--model FILE`` names a
saved 784x500 RBM; the time of AIS does not depend on the weights' values.

Both wall-clock and process CPU time are recorded: on a shared machine whose load changes from
minute to minute, the CPU time of a one-thread run (``--threads 1``) measures the work done and
is the steadier figure; wall time is what a user waits.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_run(w, steps, n_chains, gen, device):
    """The two matrix products of every annealing step, nothing else."""
    v = (torch.rand(n_chains, w.shape[0], generator=gen, device=device) < 0.5).float()
    h = (torch.rand(n_chains, w.shape[1], generator=gen, device=device) < 0.5).float()
    wt = w.t().contiguous()
    c = torch.empty(n_chains, w.shape[1], device=device)
    o = torch.empty(n_chains, w.shape[0], device=device)
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        torch.mm(v, w, out=c)
        torch.mm(h, wt, out=o)
    _sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=14500, help="annealing steps (default 14500)")
    p.add_argument("--chains", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--model", default=None, help="a saved 784x500 RBM (default: random)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import boltzkit
    from boltzkit import evaluation as ev

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    if args.model:
        model = boltzkit.load(args.model)
    else:
        model = boltzkit.RBM(784, 500, init_std=0.05, generator=g)
        with torch.no_grad():
            model.visible_bias.normal_(0, 0.5, generator=g)
            model.hidden_bias.normal_(0, 0.5, generator=g)
    model.to(device)
    w = model.weight.detach()
    betas = ev.default_betas(args.steps)

    def ais_run(seed):
        gen = torch.Generator(device=device).manual_seed(seed)
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        res = ev.ais(model, n_chains=args.chains, betas=betas, generator=gen)
        _sync(device)
        return time.perf_counter() - t0, time.process_time() - c0, res

    # warm-up (allocator, kernels) on a short schedule
    ev.ais(model, n_chains=args.chains, betas=200,
           generator=torch.Generator(device=device).manual_seed(99))
    floor_run(w, 200, args.chains, torch.Generator(device=device).manual_seed(1), device)
    floors, runs, floors_cpu, runs_cpu, results = [], [], [], [], []
    for r in range(args.repeats):
        fw, fc = floor_run(w, args.steps, args.chains,
                           torch.Generator(device=device).manual_seed(r), device)
        aw, ac, res = ais_run(r)
        floors.append(fw), floors_cpu.append(fc), runs.append(aw), runs_cpu.append(ac)
        results.append(res.log_z)
        print(f"repeat {r + 1}: floor {fw:.2f} s wall / {fc:.2f} s cpu, AIS {aw:.2f} s wall / "
              f"{ac:.2f} s cpu (ratio wall {aw / fw:.3f}, cpu {ac / fc:.3f}), log Z "
              f"{res.log_z:.3f}", flush=True)
    med = statistics.median
    out = {"device": str(device), "threads": torch.get_num_threads(), "steps": args.steps,
           "chains": args.chains, "repeats": args.repeats,
           "floor_wall_s": floors, "ais_wall_s": runs, "floor_cpu_s": floors_cpu,
           "ais_cpu_s": runs_cpu, "ratio_wall_of_medians": med(runs) / med(floors),
           "ratio_cpu_of_medians": med(runs_cpu) / med(floors_cpu),
           "log_z": results, "torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    print(f"median wall: floor {med(floors):.2f} s ({med(floors) / args.steps * 1e3:.3f} "
          f"ms/step), AIS {med(runs):.2f} s ({med(runs) / args.steps * 1e3:.3f} ms/step), "
          f"ratio {med(runs) / med(floors):.3f}")
    print(f"median cpu:  floor {med(floors_cpu):.2f} s, AIS {med(runs_cpu):.2f} s, ratio "
          f"{med(runs_cpu) / med(floors_cpu):.3f}  [{torch.get_num_threads()} threads, {device}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
