"""Torch's thread count on a shared machine: quiet against one busy competing process.

Issue 11, "Shared cores": a competing busy process on one core should cost boltzkit at most 2x
its quiet time, without losing the speed of all cores on a quiet machine. Measured here, in one
process, side by side:

- workloads: ``train defaults``, what ``boltzkit train`` with no options trains (64 hidden
  units, scikit-learn's 8x8 digits, 1438 rows, centered PCD-1, batch 20, 30 epochs, the
  held-out log-likelihood monitor after every epoch; the run folder's files and pictures are
  left out); ``MNIST CD-1 epoch`` and ``MNIST PCD-1 epoch``, one epoch of ``fit`` on 10,000
  rows of binarized MNIST, 784 visible x 500 hidden, batch 100;
- conditions: ``quiet``; ``busy``, a ``python -c 'while True: pass'`` started and stopped by
  this script, free to move between cores; ``busy, pinned``, the same pinned to the last core
  this process may use;
- thread counts: 1, every core this process may use, and ``auto``
  (:func:`boltzkit._threads.auto_threads`, resolved under each condition after the competitor
  has run for a second, with the work per product of the workload).

Each repeat runs every (workload, threads) pair once in an order that rotates from repeat to
repeat; the table gives the median seconds and the ratio to the quiet time of the best fixed
thread count for the same workload, measured in the same run (the target: ``busy / quiet`` at
most 2 for the thread count ``auto`` picks, and ``auto`` quiet within noise of the best).

    BOLTZKIT_DATA=../shared/data python benchmarks/bench_threads.py [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import torch

import boltzkit
from boltzkit._threads import auto_threads, idle_cores
from boltzkit.data import load_dataset
from boltzkit.training import CD, PCD, SGD, fit

PAUSE_S = 0.3


def train_defaults():
    """``boltzkit train``'s default run, built as the command builds it (no files written):
    returns (run, work per product)."""
    from boltzkit.cli import train as cli_train

    s = cli_train._resolve({})
    cli_train._check(s)

    def run():
        s2 = dict(s)
        ds, prep, x, model, est, update, gen = cli_train._build(s2, torch.device("cpu"))
        monitor = cli_train._monitor(s2, prep, x, model)
        t0 = time.perf_counter()
        fit(model, x, estimator=est, update=update, epochs=s2["epochs"],
            batch_size=s2["batch_size"], lr=s2["lr"], lr_schedule=s2["lr_schedule"],
            generator=gen, callbacks=monitor, progress=False)
        return time.perf_counter() - t0

    return run, 20 * 64 * s["hidden"]


def mnist_epoch(data, estimator):
    def run():
        g = torch.Generator().manual_seed(0)
        model = boltzkit.RBM(784, 500, generator=g)
        t0 = time.perf_counter()
        fit(model, data, estimator=estimator(), update=SGD(0.5), epochs=1, batch_size=100,
            lr=0.05, generator=g)
        return time.perf_counter() - t0

    return run, 100 * 784 * 500


@contextlib.contextmanager
def competitor(pin):
    """A busy process for the block (pinned to CPU ``pin`` unless None), always stopped."""
    def preexec():
        if pin is not None:
            os.sched_setaffinity(0, {pin})

    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=preexec)
    try:
        time.sleep(1.0)  # let it take its core
        yield proc
    finally:
        proc.kill()
        proc.wait()


def measure(workloads, counts, repeats):
    """Median seconds per (workload, threads) label, with what auto chose."""
    jobs = []
    chosen = {}
    for name, (run, work) in workloads.items():
        n_auto = auto_threads(work)
        chosen[name] = n_auto
        for c in counts:
            jobs.append((name, str(c), run, c))
        jobs.append((name, "auto", run, n_auto))
    before = torch.get_num_threads()
    times = {(j[0], j[1]): [] for j in jobs}
    try:
        for n in sorted(set(counts)):  # warm-up: thread pools, allocator, data
            torch.set_num_threads(n)
            for run, _ in workloads.values():
                run()
        for r in range(repeats):
            order = jobs[r % len(jobs):] + jobs[:r % len(jobs)]
            for name, label, run, n in order:
                torch.set_num_threads(n)
                time.sleep(PAUSE_S)  # let the last job's spinning threads stop
                times[(name, label)].append(run())
    finally:
        torch.set_num_threads(before)
    return {k: statistics.median(v) for k, v in times.items()}, chosen, times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args(argv)

    cores = sorted(os.sched_getaffinity(0))
    counts = sorted({1, len(cores)})
    data = load_dataset("binarized-mnist", "train").data[:10_000].contiguous()
    workloads = {"train defaults (digits, 30 epochs)": train_defaults(),
                 "MNIST CD-1 epoch (784x500, 10k rows)": mnist_epoch(data, lambda: CD(1)),
                 "MNIST PCD-1 epoch (784x500, 10k rows)": mnist_epoch(data,
                                                                      lambda: PCD(1, 100))}
    conditions = {"quiet": contextlib.nullcontext, "busy": lambda: competitor(None),
                  "busy, pinned": lambda: competitor(cores[-1])}
    results, chosen, idle, raw = {}, {}, {}, {}
    for cond, ctx in conditions.items():
        with ctx():
            idle[cond] = idle_cores()
            results[cond], chosen[cond], raw[cond] = measure(workloads, counts, args.repeats)
    if args.json:
        print(json.dumps({"cores": len(cores), "idle_cores": idle, "auto": chosen,
                          "median_s": {c: {f"{k[0]} | {k[1]}": v for k, v in r.items()}
                                       for c, r in results.items()}}, indent=2))
        return
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    print(f"torch {torch.__version__}, {len(cores)} cores, {args.repeats} repeats, "
          f"load average at the end {load}")
    print(f"idle cores measured by auto: "
          + ", ".join(f"{c} {v:.2f}" for c, v in idle.items()) + "\n")
    print("| workload | threads | " + " | ".join(f"{c} s" for c in conditions)
          + " | " + " | ".join(f"{c} / best quiet" for c in conditions if c != "quiet") + " |")
    print("|---|---|" + "---:|" * (2 * len(conditions) - 1))
    for name in workloads:
        best = min(results["quiet"][(name, str(c))] for c in counts)
        for label in [str(c) for c in counts] + ["auto"]:
            shown = label if label != "auto" else \
                "auto (" + "/".join(str(chosen[c][name]) for c in conditions) + ")"
            cells = [f"{results[c][(name, label)]:.3f}" for c in conditions]
            ratios = [f"{results[c][(name, label)] / best:.2f}x" for c in conditions
                      if c != "quiet"]
            print(f"| {name} | {shown} | " + " | ".join(cells) + " | " + " | ".join(ratios)
                  + " |")


if __name__ == "__main__":
    main()
