"""Data-parallel training (boltzkit.distributed): time per update over 1 and 2 processes, the
bytes each update all-reduces, and what that means for N GPUs.

A 784 x 500 Bernoulli RBM, PCD-1 with 100 persistent chains (50 per process over two), SGD with
momentum 0.5, global batch 100 of binarized MNIST (``load_dataset("binarized-mnist",
"train")``), one thread per process (``OMP_NUM_THREADS=1``). The script starts its workers
itself, as torchrun would (environment variables, a free port), the configurations one after
the other and round after round, so that machine noise hits all alike:

- ``1 process``: plain ``fit`` (the fused dense update, what a one-process run gets);
- ``1 process, generic``: ``fit`` with an identity ``reduce`` (the path a distributed run
  takes: the gradient built, then the update; the fused path is declined under ``reduce``);
- ``2 processes``: ``fit(..., distributed=boltzkit.distributed.init())``, with the time each
  update spends in ``reduce`` (the all-reduce and the wait for the slower process), and the
  gloo all-reduce of one gradient buffer timed alone in the same processes.

Each worker times ``--updates`` updates after ``--warmup`` (a callback's clock at every batch
end); the figure is the median over blocks of 50 updates, then the median over ``--repeats``
rounds. The bytes are counted from the buffers :meth:`~boltzkit.distributed.Group.reduce`
all-reduces. The estimate for N GPUs takes a ring all-reduce, which sends and receives
``2 (N - 1) / N`` times the buffer per process, at ``--bandwidth`` GB/s per direction, plus
``2 (N - 1)`` hops of ``--latency`` microseconds, not overlapped with the update (fit reduces,
then steps); with ``--gpu-update-ms`` (one GPU's time for an update of the whole batch) it adds
that time divided by N, which holds only while each shard keeps its GPU busy (at batch 100 a
GPU is launch-bound: scale the batch with N)::

    BOLTZKIT_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_distributed.py \\
        --bandwidth 100 --gpu-update-ms 0.5
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

WORKER = "--worker"
BLOCK = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(mode: str, updates: int, warmup: int) -> None:
    """One process's run; process 0 prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    import boltzkit
    from boltzkit import distributed
    from boltzkit.data import load_dataset
    from boltzkit.training import PCD, SGD, Callback, fit

    class Clock(Callback):
        def __init__(self):
            self.times = []

        def on_batch_end(self, state):
            self.times.append(time.perf_counter())

    group = distributed.init() if mode == "distributed" else None
    in_reduce = []
    if group is not None:  # the time each update spends in reduce (waiting for the other too)
        plain_reduce = group.reduce

        def reduce(grads):
            t0 = time.perf_counter()
            out = plain_reduce(grads)
            in_reduce.append(time.perf_counter() - t0)
            return out

        group.reduce = reduce
    n = 100 * (updates + warmup)
    x = load_dataset("binarized-mnist", "train").data[:n].contiguous()
    model = boltzkit.RBM(784, 500, generator=torch.Generator().manual_seed(0))
    clock = Clock()
    fit(model, x, estimator=PCD(1, n_chains=100), update=SGD(0.5, 1e-4), epochs=1,
        batch_size=100, lr=0.01, generator=torch.Generator().manual_seed(1), monitors=[],
        callbacks=[clock], distributed=group,
        reduce=(lambda g: g) if mode == "generic" else None)
    t = clock.times[warmup:]
    blocks = [(t[i + BLOCK] - t[i]) / BLOCK for i in range(0, len(t) - BLOCK, BLOCK)]
    out = {"mode": mode, "update_ms": 1e3 * statistics.median(blocks)}
    if group is not None:
        out["bytes_per_update"] = group.bytes_reduced / group.reductions
        out["in_reduce_ms"] = 1e3 * statistics.median(in_reduce[warmup:])
        buf = torch.zeros(int(out["bytes_per_update"]) // 4)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            group.all_reduce(buf)
            times.append(time.perf_counter() - t0)
        out["allreduce_ms"] = 1e3 * statistics.median(times[5:])
        group.close()
        if group.rank != 0:
            return
    print(json.dumps(out), flush=True)


def run(mode: str, updates: int, warmup: int) -> dict:
    world = 2 if mode == "distributed" else 1
    port = _free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if world > 1:
            env.update(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(world),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, __file__, WORKER, mode, str(updates),
                                       str(warmup)], env=env, stdout=subprocess.PIPE,
                                      text=True))
    outs = [p.communicate()[0] for p in procs]
    for p in procs:
        if p.returncode:
            raise SystemExit(f"bench_distributed: a {mode} worker failed ({p.returncode})")
    return json.loads(outs[0].strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates", type=int, default=200, help="updates timed per run")
    ap.add_argument("--warmup", type=int, default=20, help="updates before the clock starts")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of the three runs")
    ap.add_argument("--bandwidth", type=float, default=25.0,
                    help="interconnect bandwidth per direction, GB/s (default 25: PCIe 4 x16)")
    ap.add_argument("--latency", type=float, default=10.0,
                    help="latency of one all-reduce hop, microseconds (default 10)")
    ap.add_argument("--gpu-update-ms", type=float, default=None,
                    help="one GPU's time for an update of the whole batch, ms (optional)")
    args = ap.parse_args()
    modes = ["plain", "generic", "distributed"]
    results = {m: [] for m in modes}
    for _ in range(args.repeats):
        for m in modes:
            results[m].append(run(m, args.updates, args.warmup))
    med = {m: statistics.median(r["update_ms"] for r in results[m]) for m in modes}
    dist = results["distributed"]
    nbytes = dist[0]["bytes_per_update"]
    reduce_ms = statistics.median(r["allreduce_ms"] for r in dist)
    in_reduce = statistics.median(r["in_reduce_ms"] for r in dist)
    print(f"784x500 RBM, PCD-1, global batch 100, one thread per process; medians of "
          f"{args.repeats} rounds of {args.updates} updates")
    print(f"  1 process (fused update):        {med['plain']:7.2f} ms per update")
    print(f"  1 process (generic update):      {med['generic']:7.2f} ms per update")
    print(f"  2 processes (gloo, this machine): {med['distributed']:7.2f} ms per update "
          f"({med['plain'] / med['distributed']:.2f}x the fused one-process speed, "
          f"{med['generic'] / med['distributed']:.2f}x the generic), of which "
          f"{in_reduce:.2f} ms in reduce (the all-reduce and the wait for the other process)")
    print(f"  all-reduced per update: {nbytes:,.0f} bytes ({nbytes / 4:,.0f} float32: the "
          f"gradient and 3 stop flags); one such all-reduce over gloo here: "
          f"{reduce_ms:.2f} ms")
    print(f"estimate for N GPUs, ring all-reduce at {args.bandwidth:g} GB/s, "
          f"{args.latency:g} us per hop:")
    for n in (2, 4, 8, 16):
        comm = 2 * (n - 1) / n * nbytes / (args.bandwidth * 1e9) * 1e3 + \
            2 * (n - 1) * args.latency * 1e-3
        line = f"  N={n:2d}: all-reduce {comm:.3f} ms per update"
        if args.gpu_update_ms is not None:
            t = args.gpu_update_ms
            line += (f"; update {t / n + comm:.3f} ms against {t:g} ms on one GPU "
                     f"({t / (t / n + comm):.2f}x)")
        print(line)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
