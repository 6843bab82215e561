"""``boltzkit toy``: the toy networks of binary threshold units (positive vs two-phase learning)."""

from __future__ import annotations

import argparse
import json

from . import checks

__all__ = ["register"]


def _weights(text: str):
    if text == "random":
        return text
    try:
        w = [float(x) for x in text.split(",")]
    except ValueError:
        w = []
    if len(w) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers or 'random', "
                                         f"got {text!r}")
    return w


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "toy", help="toy networks of threshold units: Hebbian vs two-phase learning",
        description="Three visible ±1 threshold units and one hidden unit, trained on the states "
                    "(1,-1,1) and (-1,1,-1): with the positive phase only (Hebbian) the weights "
                    "grow without end; with the negative phase added learning stops once the "
                    "reconstruction equals the data. Also shows, on other training states, a "
                    "weight that never leaves zero and one weight that takes over.")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the negative phase (and of --weights random)")
    p.add_argument("--chains", type=int, default=8,
                   help="settled random states per negative phase (default 8)")
    p.add_argument("--weights", type=_weights, default=None, metavar="W1,W2,W3",
                   help="starting weights on the training states (default 0.75,0.3,-0.5), or "
                        "'random'")
    p.add_argument("--json", action="store_true", help="print the runs as JSON")
    p.set_defaults(func=_toy, _aliases={"n_chains": "chains"})


def _fmt_state(s) -> str:
    return "(" + ",".join(f"{int(x):d}" for x in s) + ")"


def _toy(args) -> int:
    from ..experiments.toy import run_all

    checks.seed(args.seed)
    if args.chains > 0:  # (other sizes are refused by name further on)
        checks.memory(4 * 32 * args.chains, f"--chains {args.chains}: the chains")
    runs = run_all(epochs=args.epochs, lr=args.lr, seed=args.seed, n_chains=args.chains,
                   weights=args.weights)
    if args.json:
        print(json.dumps({"settings": {"epochs": args.epochs, "lr": args.lr, "seed": args.seed,
                                       "chains": args.chains},
                          "runs": [r.to_dict() for r in runs]}))
        return 0
    for r in runs:
        phase = "positive phase only" if r.rule == "hebbian" else "positive minus negative phase"
        print(f"== {r.name} ({phase}) ==")
        print("training states " + " ".join(_fmt_state(s) for s in r.training_states)
              + f"; start w = ({', '.join(f'{x:g}' for x in r.start_weights)}); lr {r.lr:g}")
        print(f"{'epoch':>5} {'max|dw|':>8} {'w1':>8} {'w2':>8} {'w3':>8}  reconstructed")
        n = len(r.training_states)
        for e in r.epochs:
            w = " ".join(f"{x:8.3f}" for x in e.weights)
            ok = sum(e.reconstructed)
            print(f"{e.epoch:5d} {e.change:8.3f} {w}  {'yes' if e.all_reconstructed else 'no':>3}"
                  f" ({ok}/{n})")
        print(r.explanation)
        print()
    print("weights: after the epoch's update; reconstructed: by the weights before it.")
    return 0
