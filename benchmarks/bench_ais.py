"""AIS speed: one forward AIS estimate of a 784x500 binary RBM (100 chains, the default 14,500
annealing steps) against its floor, the two 100x784x500 matrix products per temperature alone
(``v W`` and ``h Wᵀ``, same count) on each path PyTorch offers here (``torch.mm``: its BLAS;
on the CPU also oneDNN's float32 linear), measured in the same process, interleaved in a
rotating order, medians of ``--repeats``; AIS runs under each of ``--products`` (boltzkit's
product modes: auto = oneDNN where present, blas = torch.mm). Ratios are against the fastest
floor.

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


def floor_run(w, steps, n_chains, gen, device, path="mm"):
    """The two matrix products of every annealing step, nothing else: ``path`` "mm"
    (``torch.mm`` into preallocated outputs: PyTorch's BLAS, MKL on the CPU) or "onednn"
    (PyTorch's oneDNN linear primitive in float32, what boltzkit's ``products="auto"`` uses on
    the CPU)."""
    v = (torch.rand(n_chains, w.shape[0], generator=gen, device=device) < 0.5).float()
    h = (torch.rand(n_chains, w.shape[1], generator=gen, device=device) < 0.5).float()
    wt = w.t().contiguous()
    c = torch.empty(n_chains, w.shape[1], device=device)
    o = torch.empty(n_chains, w.shape[0], device=device)
    op = torch.ops.mkldnn._linear_pointwise
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    if path == "onednn":
        for _ in range(steps):
            op(v, wt, None, "none", [], "")   # v W  (the linear's weight is Wᵀ, (out, in))
            op(h, w, None, "none", [], "")    # h Wᵀ
    else:
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
    p.add_argument("--products", default="auto,blas",
                   help="boltzkit product modes to time AIS under, comma-separated "
                        "(default auto,blas)")
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
    modes = [m.strip() for m in args.products.split(",") if m.strip()]
    floor_paths = ["mm"] + (["onednn"] if device.type == "cpu"
                            and boltzkit._products.onednn_available() else [])

    def ais_run(seed, mode):
        before = boltzkit.get_products()
        boltzkit.set_products(mode)
        try:
            gen = torch.Generator(device=device).manual_seed(seed)
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            res = ev.ais(model, n_chains=args.chains, betas=betas, generator=gen)
            _sync(device)
            return time.perf_counter() - t0, time.process_time() - c0, res
        finally:
            boltzkit.set_products(before)

    # warm-up (allocator, kernels, primitive caches) on a short schedule
    for mode in modes:
        boltzkit.set_products(mode)
        ev.ais(model, n_chains=args.chains, betas=200,
               generator=torch.Generator(device=device).manual_seed(99))
    boltzkit.set_products("auto")
    for path in floor_paths:
        floor_run(w, 200, args.chains, torch.Generator(device=device).manual_seed(1), device,
                  path)
    names = [f"floor {p}" for p in floor_paths] + [f"AIS {m}" for m in modes]
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    log_z = {m: [] for m in modes}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]   # rotate: noise hits all
        for name in order:
            kind, what = name.split(" ", 1)
            if kind == "floor":
                fw, fc = floor_run(w, args.steps, args.chains,
                                   torch.Generator(device=device).manual_seed(r), device, what)
            else:
                fw, fc, res = ais_run(r, what)
                log_z[what].append(res.log_z)
            wall[name].append(fw)
            cpu[name].append(fc)
        print(f"repeat {r + 1}: " + ", ".join(f"{n} {wall[n][-1]:.2f} s wall / {cpu[n][-1]:.2f}"
                                               f" s cpu" for n in names), flush=True)
    med = statistics.median
    fastest = min((n for n in names if n.startswith("floor")), key=lambda n: med(wall[n]))
    out = {"device": str(device), "threads": torch.get_num_threads(), "steps": args.steps,
           "chains": args.chains, "repeats": args.repeats, "wall_s": wall, "cpu_s": cpu,
           "fastest_floor": fastest,
           "ratio_wall_of_medians": {m: med(wall[f"AIS {m}"]) / med(wall[fastest])
                                     for m in modes},
           "ratio_cpu_of_medians": {m: med(cpu[f"AIS {m}"]) / med(cpu[fastest]) for m in modes},
           "log_z": log_z, "torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    print(f"\n[{torch.get_num_threads()} threads, {device}; medians of {args.repeats}; "
          f"fastest floor: {fastest}]")
    for n in names:
        print(f"{n:14s} wall {med(wall[n]):7.2f} s ({med(wall[n]) / args.steps * 1e3:.3f} "
              f"ms/step)  cpu {med(cpu[n]):7.2f} s   / fastest floor: wall "
              f"{med(wall[n]) / med(wall[fastest]):.3f}, cpu {med(cpu[n]) / med(cpu[fastest]):.3f}")
    for m in modes:
        print(f"log Z ({m}): " + ", ".join(f"{z:.3f}" for z in log_z[m]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
