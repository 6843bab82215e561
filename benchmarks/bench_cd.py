"""One epoch of CD-1 on binarized MNIST: boltzkit against scikit-learn and the matrix-product floor.

Issue 2, section "Speed": 10,000 rows of binarized MNIST, 784 visible x 500 hidden, batch 100,
float32, on this machine's cores, measured side by side in one process:

- ``boltzkit fit``: what a user's call costs, ``RBM(784, 500)`` plus
  ``fit(model, data, estimator=CD(1), update=SGD(momentum=0), epochs=1, batch_size=100,
  lr=0.1)``; this
  includes fit's input check, the visible-bias initialisation and the end-of-epoch
  reconstruction-error monitor (1000 rows).
- ``boltzkit update loop``: the part of that same call that ``fit`` itself times
  (``history[0]["seconds"]``: the 100 CD-1 updates, no check, no monitor).
- ``boltzkit fit, momentum 0.5``: the same with fit's default momentum (sklearn has none).
- ``sklearn float64`` / ``sklearn float32``: ``BernoulliRBM(n_components=500, learning_rate=0.1,
  batch_size=100, n_iter=1, random_state=0).fit(X)`` on float64 input (what its users pass by
  default) and on float32 input. Note that BernoulliRBM's update is persistent CD-1 (PCD-1): the
  same work per batch as CD-1 (five products, one visible and one hidden draw), other chains.
- ``boltzkit fit, products blas`` / ``products bf16``: the same call under
  ``boltzkit.set_products("blas")`` (PyTorch's torch.mm for every product, what boltzkit did
  before) and ``set_products("bf16")`` (bfloat16 operands, float32 accumulation). The plain
  rows use the default ``"auto"`` (oneDNN's float32 product where it is present).
- ``matmul floor``: for each of the 100 batches, the five products one CD-1 step must do, with
  torch.mm into preallocated outputs: 100x784 @ 784x500 (hidden field of the data),
  100x500 @ 500x784 (reconstruction), 100x784 @ 784x500 (hidden field of the reconstruction),
  and two 784x100 @ 100x500 (positive and negative statistics), on PyTorch's CPU BLAS (MKL).
  The same products are timed on every other path this machine offers: PyTorch's oneDNN linear
  primitive in float32 and in bfloat16 (``same products, oneDNN ...``), NumPy's BLAS
  (OpenBLAS) in float32 and float64 (``same products, numpy ...``; float64 is the floor of
  scikit-learn's float64 run). The fastest float32 one is the floor the ratios use.

Each repeat runs every variant once, in an order that rotates from repeat to repeat, so that
machine noise hits all of them alike; the table gives medians (and minima) over the repeats and
the ratios of the medians. ``--breakdown`` adds the cost of each piece of a CD-1 step,
measured alone and scaled to one epoch.

    BOLTZKIT_DATA=../shared/data python benchmarks/bench_cd.py [--repeats 7] [--json]

NumPy's OpenBLAS reads OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE when it loads: run the script once
as is and once under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``; the table header prints
which OpenBLAS kernel NumPy uses (threadpoolctl). PyTorch uses its own BLAS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import boltzkit
from boltzkit.data import load_dataset
from boltzkit.training import CD, SGD, fit

N_ROWS, N_VISIBLE, N_HIDDEN, BATCH, LR = 10_000, 784, 500, 100, 0.1
PAUSE_S = 0.5


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
                   .splitlines() if line.startswith("Model name"))
    except Exception:  # lscpu missing: fall back to what Python knows
        cpu = platform.processor() or "unknown"
    import sklearn
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu, "cores": cores, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
            "sklearn": sklearn.__version__,
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                    "OMP_NUM_THREADS")}}
    try:
        from threadpoolctl import threadpool_info
        info["numpy_blas"] = [
            {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                    "filepath")}
            for d in threadpool_info() if d.get("user_api") == "blas"
            and "numpy" in d.get("filepath", "")]
    except ImportError:
        info["numpy_blas"] = "threadpoolctl not installed"
    return info


# --- the variants: each returns its wall time in seconds (and may record extra figures) ---------
def run_boltzkit(data, momentum, extra, key, products="auto"):
    previous = boltzkit.get_products()
    boltzkit.set_products(products)
    try:
        return _run_boltzkit(data, momentum, extra, key)
    finally:
        boltzkit.set_products(previous)


def _run_boltzkit(data, momentum, extra, key):
    t0 = time.perf_counter()
    model = boltzkit.RBM(N_VISIBLE, N_HIDDEN, generator=torch.Generator().manual_seed(0))
    state = fit(model, data, estimator=CD(1), update=SGD(momentum), epochs=1, batch_size=BATCH,
                lr=LR, generator=torch.Generator().manual_seed(1), progress=False)
    t = time.perf_counter() - t0
    extra.setdefault(key, []).append(state.history[0]["seconds"])
    extra.setdefault(key + "/recon_error", []).append(state.history[0]["recon_error"])
    return t


def run_sklearn(x):
    from sklearn.neural_network import BernoulliRBM

    t0 = time.perf_counter()
    BernoulliRBM(n_components=N_HIDDEN, learning_rate=LR, batch_size=BATCH, n_iter=1,
                 random_state=0).fit(x)
    return time.perf_counter() - t0


def make_floor(data):
    """The five products of each of the epoch's CD-1 steps, with torch.mm into preallocated
    outputs: the floor for code built on PyTorch's CPU BLAS (what boltzkit uses)."""
    batches = list(data.split(BATCH))
    w = torch.randn(N_VISIBLE, N_HIDDEN, generator=torch.Generator().manual_seed(2)) * 0.01
    h = torch.rand(BATCH, N_HIDDEN, generator=torch.Generator().manual_seed(3))
    out_h = torch.empty(BATCH, N_HIDDEN)
    out_v = torch.empty(BATCH, N_VISIBLE)
    out_w1, out_w2 = torch.empty(N_VISIBLE, N_HIDDEN), torch.empty(N_VISIBLE, N_HIDDEN)
    wt = w.t()

    def run_floor():
        t0 = time.perf_counter()
        for v in batches:
            torch.mm(v, w, out=out_h)            # hidden field of the data
            torch.mm(h, wt, out=out_v)           # visible field (reconstruction)
            torch.mm(v, w, out=out_h)            # hidden field of the reconstruction
            torch.mm(v.t(), h, out=out_w1)       # positive statistics
            torch.mm(v.t(), h, out=out_w2)       # negative statistics
        return time.perf_counter() - t0

    return run_floor


def make_onednn_floor(data, bf16=False):
    """The same five products per step through PyTorch's oneDNN linear primitive (what
    boltzkit's ``products="auto"`` routes to on the CPU), in float32, or with ``bf16`` on
    bfloat16 operands (the batches and the weights converted once, outside the timing: the
    floor of ``products="bf16"``, which must convert them at every step)."""
    op = torch.ops.mkldnn._linear_pointwise
    dt = torch.bfloat16 if bf16 else torch.float32
    batches = [b.to(dt) for b in data.split(BATCH)]
    w = (torch.randn(N_VISIBLE, N_HIDDEN, generator=torch.Generator().manual_seed(2))
         * 0.01).to(dt)
    h = torch.rand(BATCH, N_HIDDEN, generator=torch.Generator().manual_seed(3)).to(dt)
    wt = w.t()

    def run_floor():
        t0 = time.perf_counter()
        for v in batches:
            op(v, wt, None, "none", [], "")          # hidden field of the data: v W
            op(h, w, None, "none", [], "")           # visible field: h Wᵀ
            op(v, wt, None, "none", [], "")          # hidden field of the reconstruction
            op(v.t(), h.t(), None, "none", [], "")   # positive statistics vᵀ h
            op(v.t(), h.t(), None, "none", [], "")   # negative statistics
        return time.perf_counter() - t0

    return run_floor


def make_numpy_floor(data, dtype):
    """The same five products per step with NumPy's BLAS (OpenBLAS here) in ``dtype``: float32
    shows whether another BLAS sets a lower floor on this CPU; float64 is the floor of
    scikit-learn's float64 run (its products alone)."""
    batches = [b.numpy().astype(dtype) for b in data.split(BATCH)]
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((N_VISIBLE, N_HIDDEN)) * 0.01).astype(dtype)
    h = rng.random((BATCH, N_HIDDEN)).astype(dtype)
    out_h, out_v = np.empty((BATCH, N_HIDDEN), dtype), np.empty((BATCH, N_VISIBLE), dtype)
    out_w1, out_w2 = np.empty((N_VISIBLE, N_HIDDEN), dtype), np.empty((N_VISIBLE, N_HIDDEN), dtype)

    def run_floor():
        t0 = time.perf_counter()
        for v in batches:
            np.dot(v, w, out=out_h)
            np.dot(h, w.T, out=out_v)
            np.dot(v, w, out=out_h)
            np.dot(v.T, h, out=out_w1)
            np.dot(v.T, h, out=out_w2)
        return time.perf_counter() - t0

    return run_floor


# --- the pieces of one CD-1 step, each alone --------------------------------------------------
def breakdown(data, repeats):
    """Seconds per epoch of each piece of a CD-1 step measured alone (min over ``repeats``
    batches of 100 calls; per-step pieces are scaled by the 100 steps of an epoch)."""
    from boltzkit.training import Statistics, reconstruction_error
    from boltzkit.units import uniform

    g = torch.Generator().manual_seed(4)
    model = boltzkit.RBM(N_VISIBLE, N_HIDDEN, generator=g)
    params = dict(model.named_parameters())
    v = data[:BATCH].contiguous()
    fh, fv = torch.randn(BATCH, N_HIDDEN), torch.randn(BATCH, N_VISIBLE)
    ph, pv = torch.sigmoid(fh), torch.sigmoid(fv)
    stats = Statistics(v, ph, (pv > 0.5).float(), ph)
    out_w = torch.empty(N_VISIBLE, N_HIDDEN)
    sgd0, sgd5 = SGD(0.0), SGD(0.5)
    fused0, fused5 = sgd0.fused(CD(1), model), sgd5.fused(CD(1), model)
    state0, state5 = {}, {}
    perm = torch.randperm(N_ROWS)
    est = CD(1)
    wt = model.weight.detach().t()

    # a tiny learning rate, not 0: a product scaled by alpha=0 may be skipped by the BLAS
    TINY_LR = 1e-12

    def cd1_step():
        s, _ = est.statistics(model, v, None, g)
        fused0(params, s, TINY_LR, state0)

    pieces = {
        "5 products (the floor's step)": lambda: (
            torch.mm(v, model.weight, out=fh), torch.mm(ph, wt, out=fv),
            torch.mm(v, model.weight, out=fh), torch.mm(v.t(), ph, out=out_w),
            torch.mm(v.t(), ph, out=out_w)),
        "whole CD-1 step (statistics + update)": cd1_step,
        "torch.rand 100x500": lambda: torch.rand(BATCH, N_HIDDEN, generator=g),
        "torch.rand 100x784": lambda: torch.rand(BATCH, N_VISIBLE, generator=g),
        "units.uniform 100x500 (hidden draw)": lambda: uniform((BATCH, N_HIDDEN), g),
        "units.uniform 100x784 (visible draw)": lambda: uniform((BATCH, N_VISIBLE), g),
        "Bernoulli draw 100x500 (uniform + compare)": lambda: model.hidden.sample_from_mean(
            ph, g),
        "Bernoulli draw 100x784 (uniform + compare)": lambda: model.visible.sample_from_mean(
            pv, g),
        "sigmoid 100x500 (twice per step)": lambda: torch.sigmoid(fh),
        "sigmoid 100x784": lambda: torch.sigmoid(fv),
        "2 gradient products, plain mm": lambda: (torch.mm(v.t(), ph, out=out_w),
                                                  torch.mm(v.t(), ph, out=out_w)),
        "update: 2 products folded into W, + biases": lambda: fused0(
            params, stats, TINY_LR, state0),
        "same with momentum 0.5 (into buffer, + W pass)": lambda: fused5(
            params, stats, TINY_LR, state5),
        "bias update alone (4 means, 2 subs, 2 adds)": lambda: sgd0.step(
            params, {"visible_bias": v.mean(0) - v.mean(0),
                     "hidden_bias": ph.mean(0) - ph.mean(0)}, TINY_LR, state0),
        "batch gather (index_select)": lambda: data.index_select(0, perm[:BATCH]),
    }
    once = {  # per fit call, not per step
        "per fit: RBM(784, 500) initial weights": lambda: boltzkit.RBM(N_VISIBLE, N_HIDDEN,
                                                                      generator=g),
        "per fit: input check of the 10000x784 data": lambda: model.check_visible(
            data, "data", relaxed=True),
        "per fit: visible biases from base rates": lambda: model.init_visible_bias(data),
        "per epoch: recon-error monitor, 1000 rows": lambda: reconstruction_error(
            model, data[:1000]),
    }
    n_steps = math.ceil(N_ROWS / BATCH)
    out = {}
    with torch.no_grad():
        for name, f in list(pieces.items()) + list(once.items()):
            reps = 100 if name in pieces else 5
            for _ in range(3):
                f()
            best = math.inf
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(reps):
                    f()
                best = min(best, (time.perf_counter() - t0) / reps)
            out[name] = best * (n_steps if name in pieces else 1)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    ap.add_argument("--json-out", metavar="PATH", help="also write the results as JSON to PATH")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time each piece of a CD-1 step alone")
    args = ap.parse_args(argv)

    data = load_dataset("binarized-mnist", "train").data[:N_ROWS].contiguous()
    assert data.shape == (N_ROWS, N_VISIBLE) and data.dtype == torch.float32
    x64 = data.numpy().astype(np.float64)
    x32 = data.numpy().copy()
    run_floor = make_floor(data)
    extra: dict = {}
    variants = {
        "boltzkit fit": lambda: run_boltzkit(data, 0.0, extra, "boltzkit fit"),
        "boltzkit fit, momentum 0.5": lambda: run_boltzkit(data, 0.5, extra,
                                                           "boltzkit fit, momentum 0.5"),
        "boltzkit fit, products blas": lambda: run_boltzkit(data, 0.0, extra,
                                                            "boltzkit fit, products blas",
                                                            "blas"),
        "boltzkit fit, products bf16": lambda: run_boltzkit(data, 0.0, extra,
                                                            "boltzkit fit, products bf16",
                                                            "bf16"),
        "sklearn BernoulliRBM float64": lambda: run_sklearn(x64),
        "sklearn BernoulliRBM float32": lambda: run_sklearn(x32),
        "matmul floor (5 products x 100)": run_floor,
        "same products, oneDNN float32": make_onednn_floor(data),
        "same products, oneDNN bfloat16": make_onednn_floor(data, bf16=True),
        "same products, numpy float32": make_numpy_floor(data, np.float32),
        "same products, numpy float64": make_numpy_floor(data, np.float64),
    }
    names = list(variants)
    for name in names:  # warm-up: first calls, allocator, BLAS thread pools
        time.sleep(PAUSE_S)
        variants[name]()
    extra.clear()
    times = {name: [] for name in names}
    for r in range(args.repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            # a pause lets the BLAS thread pools of the last variant (OpenMP for torch,
            # OpenBLAS's own for NumPy) stop spinning before the next one starts: on 2 cores
            # spinning threads of one pool slow the other several fold
            time.sleep(PAUSE_S)
            times[name].append(variants[name]())
    times["boltzkit update loop (fit's own epoch timer)"] = extra["boltzkit fit"]

    med = {k: statistics.median(v) for k, v in times.items()}
    float32_floors = ("matmul floor (5 products x 100)", "same products, oneDNN float32",
                      "same products, numpy float32")
    fastest = min(float32_floors, key=med.get)
    floor = med[fastest]
    fit_t = med["boltzkit fit"]
    ratios = {
        "sklearn float64 / boltzkit fit (target >= 4)": med["sklearn BernoulliRBM float64"] / fit_t,
        "sklearn float32 / boltzkit fit": med["sklearn BernoulliRBM float32"] / fit_t,
        f"boltzkit fit / fastest float32 floor ({fastest}) (target <= 1.3)": fit_t / floor,
        "boltzkit update loop / fastest float32 floor":
        med["boltzkit update loop (fit's own epoch timer)"] / floor,
        "boltzkit fit momentum 0.5 / fastest float32 floor": med["boltzkit fit, momentum 0.5"]
        / floor,
        "boltzkit fit, products blas / fastest float32 floor": med["boltzkit fit, products blas"]
        / floor,
        "boltzkit fit, products bf16 / oneDNN bfloat16 floor":
        med["boltzkit fit, products bf16"] / med["same products, oneDNN bfloat16"],
        "torch.mm (MKL) floor / oneDNN float32 floor": med["matmul floor (5 products x 100)"]
        / med["same products, oneDNN float32"],
        "sklearn float64 / its float64 products": med["sklearn BernoulliRBM float64"]
        / med["same products, numpy float64"],
    }
    result = {"machine": machine(), "repeats": args.repeats,
              "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
              "median_s": med, "min_s": {k: min(v) for k, v in times.items()},
              "all_s": times, "ratios": ratios,
              "recon_error_after_epoch": statistics.median(extra["boltzkit fit/recon_error"])}
    if args.breakdown:
        result["breakdown_s_per_epoch"] = breakdown(data, args.repeats)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=2)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    m = result["machine"]
    print(f"CPU: {m['cpu']}, {m['cores']} cores; torch {m['torch']} ({m['torch_threads']} threads), "
          f"numpy {m['numpy']}, scikit-learn {m['sklearn']}")
    print(f"env: {m['env']}")
    for d in m["numpy_blas"] if isinstance(m["numpy_blas"], list) else []:
        print(f"numpy BLAS: {d['internal_api']} {d['version']}, kernel {d['architecture']}, "
              f"{d['num_threads']} threads")
    print(f"one epoch, {N_ROWS} rows x {N_VISIBLE} visible, {N_HIDDEN} hidden, batch {BATCH}, "
          f"lr {LR}; {args.repeats} interleaved repeats\n")
    print(f"fastest float32 floor: {fastest}")
    print(f"{'variant':48s} {'median s':>9s} {'min s':>9s} {'/ floor':>8s}")
    for k in times:
        print(f"{k:48s} {med[k]:9.4f} {result['min_s'][k]:9.4f} {med[k] / floor:8.2f}")
    print()
    for k, v in ratios.items():
        print(f"{k:48s} {v:6.2f}x")
    print(f"\nreconstruction error after the epoch (boltzkit): "
          f"{result['recon_error_after_epoch']:.4f}")
    if args.breakdown:
        print(f"\n{'piece, alone (min of repeats), per epoch':48s} {'ms':>9s} {'% floor':>8s}")
        for k, v in result["breakdown_s_per_epoch"].items():
            print(f"{k:48s} {v * 1e3:9.2f} {100 * v / floor:7.1f}%")


if __name__ == "__main__":
    main()
