"""Speed of a sequential Gibbs sweep of a fully connected Boltzmann machine.

A sweep updates the n units one after another; over a batch of B chains it costs about the
arithmetic of one (B x n) @ (n x n) matrix product. This benchmark times, in one process:

- ``matmul``: that product, ``states @ weight`` (the baseline);
- ``sweep`` (:func:`boltzkit.samplers.sequential.step`), fixed and random order, for a few block
  sizes;
- ``naive`` (:func:`boltzkit.samplers.sequential.naive_step`): one unit at a time, each field
  recomputed by a matrix-vector product, the way a sweep is written without thought;

each the median of several repeats, and prints the ratios to the matrix product.

    python benchmarks/bench_sweep.py                    # 784 + 500 units, 100 chains
    python benchmarks/bench_sweep.py --threads 1 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from boltzkit.models.boltzmann import BoltzmannMachine
from boltzkit.samplers import sequential as sq


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--visible", type=int, default=784)
    ap.add_argument("--hidden", type=int, default=500)
    ap.add_argument("--chains", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=11, help="repeats of each timing (median)")
    ap.add_argument("--naive-repeats", type=int, default=3)
    ap.add_argument("--block-sizes", default="32,64,128")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: as is)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    g = torch.Generator(device=dev).manual_seed(0)
    bm = BoltzmannMachine(args.visible, args.hidden, init_std=0.01,
                          generator=torch.Generator().manual_seed(0)).to(dev)
    state = sq.init(bm, sq.random_states(bm, args.chains, g))
    w = bm.weight.detach()
    s = state.states

    def timed(fn, repeats):
        def run():
            fn()
            sync()
        return median_time(run, repeats)

    res = {"n_units": bm.n_units, "chains": args.chains, "threads": torch.get_num_threads(),
           "device": str(dev), "torch": torch.__version__, "machine": platform.processor() or
           platform.machine(), "repeats": args.repeats}
    res["matmul_ms"] = 1e3 * timed(lambda: torch.matmul(s, w), 5 * args.repeats)
    for order in ("fixed", "random"):
        for bs in (int(x) for x in args.block_sizes.split(",")):
            t = timed(lambda: sq.step(bm, state, g, order=order, block_size=bs), args.repeats)
            res[f"sweep_{order}_b{bs}_ms"] = 1e3 * t
    res["naive_fixed_ms"] = 1e3 * timed(lambda: sq.naive_step(bm, state, g, order="fixed"),
                                        args.naive_repeats)
    # the baseline once more at the end: the machine's load may have changed meanwhile
    res["matmul_end_ms"] = 1e3 * timed(lambda: torch.matmul(s, w), 5 * args.repeats)
    base = res["matmul_ms"]
    ratios = {k.replace("_ms", "_ratio"): v / base for k, v in res.items()
              if k.endswith("_ms") and k != "matmul_ms"}
    res.update(ratios)
    if args.json:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                          for k, v in res.items()}))
    else:
        print(f"{bm.n_units} units ({args.visible} + {args.hidden}), {args.chains} chains, "
              f"{res['threads']} thread(s), {dev}")
        print(f"{'':28s}{'ms':>10s}{'x matmul':>10s}")
        for k, v in res.items():
            if k.endswith("_ms"):
                r = "" if k == "matmul_ms" else f"{v / base:10.2f}"
                print(f"{k[:-3]:28s}{v:10.2f}{r}")
    return res


if __name__ == "__main__":
    main()
