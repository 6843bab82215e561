"""``boltzkit encoder`` and ``boltzkit bm mnist``: fully connected Boltzmann machines.

``boltzkit encoder 4-2-4 --runs 250 --seed 0 --json`` reproduces the encoder experiment of
Ackley, Hinton & Sejnowski (1985) (any N-M-N) and prints the success rate, the median and worst
learning-cycle counts and the settings; ``--method fast`` runs boltzkit's faster defaults on the
same problem. ``boltzkit bm mnist --classes 0,1,2 --out DIR`` trains machines on MNIST digits
with too little, enough and too much settling in the negative phase and draws them side by side.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import checks, needs_subcommand

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser(
        "encoder", help="the 1985 encoder problem (Ackley, Hinton & Sejnowski)",
        description="Train many N-M-N encoder Boltzmann machines at once and report how many "
                    "reach a global minimum (every pattern's lowest-energy completion from V1 "
                    "gives the right V2, with distinct hidden codes) and after how many "
                    "learning cycles.")
    p.add_argument("spec", nargs="?", default="4-2-4", help="N-M-N (default: 4-2-4)")
    p.add_argument("--runs", type=int, default=250, help="independent runs (default: 250)")
    p.add_argument("--method", choices=["paper", "fast"], default="paper",
                   help="the 1985 procedure, or boltzkit's faster defaults (default: paper)")
    p.add_argument("--max-cycles", type=int, default=2000,
                   help="learning cycles before a run counts as failed (default: 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--plot", default=None, help="also draw the cycle counts to this PNG")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_encoder)

    bm = sub.add_parser("bm", help="fully connected Boltzmann machine experiments",
                        description="Fully connected Boltzmann machine experiments.")
    bsub = bm.add_subparsers(dest="bm_command", metavar="EXPERIMENT")
    m = bsub.add_parser(
        "mnist", help="machines on MNIST digits with too little, enough and too much settling",
        description="Train three fully connected Boltzmann machines (196 pixels of 14x14 "
                    "downsampled MNIST digits plus hidden units) that differ only in how long "
                    "the negative phase settles, and draw their weights and samples side by "
                    "side (comparison.png in --out).")
    m.add_argument("--classes", default="0,1,2", help="digit classes (default: 0,1,2)")
    m.add_argument("--per-class", type=int, default=1000,
                   help="training images per class (default: 1000)")
    m.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    m.add_argument("--epochs", type=int, default=10, help="passes over the data (default: 10)")
    m.add_argument("--batch-size", type=int, default=100, help="rows per update (default: 100)")
    m.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    m.add_argument("--settle", default="1,20,200",
                   help="negative-phase settling sweeps for the three machines: too little, "
                        "enough, too much (default: 1,20,200)")
    m.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    m.add_argument("--out", default=None, help="output folder (default: runs/bm-mnist-TIME)")
    m.add_argument("--progress", action="store_true", help="show progress bars")
    m.set_defaults(func=_mnist, _aliases={"n_hidden": "hidden"})
    bm.set_defaults(func=needs_subcommand(bm, "an experiment"))


def _ints(text: str, name: str) -> list:
    try:
        return [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name}: expected comma-separated integers, got {text!r}") from None


def _encoder(args) -> int:
    from ..experiments.encoder import parse_spec, run_encoder

    checks.seed(args.seed)
    device = checks.device(args.device)
    if args.plot:
        checks.output_file(args.plot, "--plot", (".png",))
    n, m = parse_spec(args.spec)
    if args.runs < 1:
        raise ValueError(f"--runs: expected a positive integer, got {args.runs}")
    # per run: weights, mask, statistics and updates of (2n+m)^2 floats, and the test's
    # enumeration of (V2, H) completions for every pattern (n 2^(n+m) states, chunked)
    units = 2 * n + m
    checks.memory(4 * args.runs * (8 * units * units + 64 * units),
                  f"encoder {args.spec} with --runs {args.runs}: the machines", device)
    res = run_encoder(args.spec, runs=args.runs, method=args.method,
                      max_cycles=args.max_cycles, seed=args.seed, device=device)
    if args.plot:
        _plot_cycles(res, args.plot)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"encoder {res['spec']}, method {res['method']}: {res['successes']}/{res['runs']} runs "
          f"reached a global minimum within {res['max_cycles']} cycles "
          f"({100 * res['success_rate']:.1f}%)")
    if res["successes"]:
        print(f"learning cycles: median {res['median_cycles']}, worst {res['worst_cycles']}")
    print(f"still at a global minimum after the last cycle ({res['cycles_run']}): "
          f"{res['solved_at_end']}/{res['runs']}; {res['seconds']:.1f}s")
    if "paper" in res:
        pp = res["paper"]
        print(f"paper (Ackley, Hinton & Sejnowski 1985): {pp['successes']}/{pp['runs']}, "
              f"median {pp['median_cycles']} cycles")
    print("settings: " + json.dumps(res["settings"]))
    return 0


def _plot_cycles(res: dict, path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..io import atomic_write

    done = sorted(c for c in res["cycles"] if c is not None)
    fig = Figure(figsize=(6.0, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    if done:
        ax.step(done, [(k + 1) / res["runs"] for k in range(len(done))], where="post",
                label=f"boltzkit ({res['method']}): global minimum")
    codes = sorted(c for c in res.get("distinct_codes", {}).get("cycles", []) if c is not None)
    if codes:
        ax.step(codes, [(k + 1) / res["runs"] for k in range(len(codes))], where="post",
                ls=":", label="weaker test: distinct hidden codes")
    if "paper" in res:
        ax.axvline(res["paper"]["median_cycles"], color="grey", ls="--",
                   label="paper's median")
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.set_xlabel("learning cycles")
    ax.set_ylabel("fraction of runs solved")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{res['spec']} encoder, {res['runs']} runs")
    ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_write(Path(path)) as tmp:
        fig.savefig(tmp, format="png")


def _mnist(args) -> int:
    from ..experiments.bm_mnist import run_mnist_experiment

    settle = _ints(args.settle, "settle")
    if len(settle) != 3 or min(settle) < 0:
        raise ValueError(f"settle: expected three sweep counts >= 0, got {args.settle!r}")
    checks.seed(args.seed)
    if args.hidden >= 0:  # (negative sizes are refused by name further on)
        units = 14 * 14 + args.hidden
        checks.memory(4 * 10 * units * units, f"--hidden {args.hidden}: the machines")
    out = checks.output_folder(args.out or f"runs/bm-mnist-{time.strftime('%Y%m%d-%H%M%S')}",
                               "--out")
    metrics = run_mnist_experiment(
        out, classes=_ints(args.classes, "classes"), per_class=args.per_class,
        n_hidden=args.hidden, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        settle=dict(zip(("too little", "enough", "too much"), settle)), seed=args.seed,
        progress=args.progress, log=lambda s: print(s, file=sys.stderr, flush=True))
    print(f"wrote {Path(out) / 'comparison.png'} ({metrics['seconds']:.0f}s)")
    return 0
