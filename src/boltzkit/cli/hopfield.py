"""``boltzkit hopfield capacity`` and ``boltzkit hopfield recall``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .. import _validation as _v
from . import checks, needs_subcommand

__all__ = ["register"]

RULE_NAMES = ("hebbian", "storkey", "pseudoinverse")


def _rules(args) -> list:
    """The rules named by ``--rule`` (repeatable) and ``--rules`` (comma list or ``all``)."""
    names = list(args.rule or [])
    for part in (args.rules or "").split(","):
        part = part.strip()
        if part == "all":
            names.extend(RULE_NAMES)
        elif part:
            names.append(part)
    if not names:
        names = list(RULE_NAMES)
    out = []
    for name in names:
        if name not in RULE_NAMES:
            raise ValueError(f"--rule: expected one of {', '.join(RULE_NAMES)} or 'all', "
                             f"got {name!r}")
        if name not in out:
            out.append(name)
    return out


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def _loads(text: str) -> list:
    try:
        loads = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated loads, got {text!r}") from None
    if not loads or not all(math.isfinite(x) and x > 0 for x in loads):
        raise argparse.ArgumentTypeError(f"expected finite positive loads p/N, got {text!r}")
    return loads


def _write_json(obj, path: Path) -> None:
    from ..io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def _add_rule_options(p) -> None:
    p.add_argument("--rule", action="append", metavar="RULE",
                   help="storage rule: hebbian, storkey or pseudoinverse (repeatable; default all "
                        "three)")
    p.add_argument("--rules", metavar="LIST", help="comma-separated rules, or 'all'")


def register(subparsers) -> None:
    top = subparsers.add_parser("hopfield", help="Hopfield networks: capacity and recall",
                                description="Hopfield network experiments.")
    sub = top.add_subparsers(dest="hopfield_command", metavar="COMMAND")
    top.set_defaults(func=needs_subcommand(top))

    cap = sub.add_parser(
        "capacity", help="recall against load p/N for the storage rules",
        description="Store p random patterns in N units for a range of loads p/N, start "
                    "asynchronous recall at each stored pattern (optionally corrupted) and measure "
                    "the fraction recalled (final overlap >= --threshold). Writes capacity.png "
                    "and capacity.json to --out.")
    cap.add_argument("--n", type=int, default=200, help="number of units N (default 200)")
    _add_rule_options(cap)
    cap.add_argument("--trials", type=int, default=10, help="networks per load (default 10)")
    cap.add_argument("--seed", type=int, default=0)
    cap.add_argument("--loads", type=_loads, help="comma-separated loads p/N (default 0.02, "
                     "0.04, ..., 0.98, each rule stopping once its recall has collapsed)")
    cap.add_argument("--noise", type=_fraction, default=0.0,
                     help="fraction of bits flipped in the starting states (default 0)")
    cap.add_argument("--threshold", type=_fraction, default=0.95,
                     help="final overlap counted as recall (default 0.95)")
    cap.add_argument("--out", default="hopfield-capacity", help="output folder")
    cap.add_argument("--json", action="store_true", help="print the results as JSON")
    cap.set_defaults(func=_capacity)

    rec = sub.add_parser(
        "recall", help="store digit images, corrupt them, recall them",
        description="Store K binarised digit images (one per class 0, 1, 2, ...) as ±1 "
                    "patterns, flip a fraction of their pixels, recall them asynchronously, and "
                    "draw stored, corrupted and recalled images side by side for each rule.")
    rec.add_argument("--n-patterns", type=int, default=5, help="images to store (default 5)")
    rec.add_argument("--noise", type=_fraction, default=0.2,
                     help="fraction of pixels flipped (default 0.2)")
    _add_rule_options(rec)
    rec.add_argument("--dataset", default="mnist",
                     help="mnist (28x28, default) or digits (8x8, built in)")
    rec.add_argument("--mode", choices=("async", "sync"), default="async")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--out", default="recall.png", help="PNG file to write")
    rec.add_argument("--json", action="store_true", help="print the results as JSON")
    rec.set_defaults(func=_recall)

    spu = sub.add_parser(
        "spurious", help="count the fixed points reached from random states",
        description="Store random patterns, run asynchronous recall from many random states and "
                    "count the distinct fixed points reached: stored patterns, their negations, "
                    "mixtures of three patterns and other spurious states.")
    spu.add_argument("--n", type=int, default=200, help="number of units N (default 200)")
    spu.add_argument("--n-patterns", type=int, default=10, help="patterns stored (default 10)")
    spu.add_argument("--starts", type=int, default=2000, help="random starts (default 2000)")
    _add_rule_options(spu)
    spu.add_argument("--seed", type=int, default=0)
    spu.add_argument("--json", action="store_true", help="print the results as JSON")
    spu.set_defaults(func=_spurious)


def _capacity(args) -> int:
    from .. import plots
    from ..experiments.hopfield import HEBBIAN_CAPACITY, capacity

    rules = _rules(args)
    _v.integer(args.trials, "--trials", 1)
    if args.n < 2:
        raise ValueError(f"--n: expected at least 2 units, got {args.n}")
    checks.seed(args.seed)
    # a network's weights and the trials' patterns and states, a few copies each (the
    # pseudo-inverse rule also inverts a p x p overlap matrix)
    p_max = int(max(args.loads or [0.98]) * args.n) + 1  # the default loads end at 0.98
    checks.memory(4 * 4 * (args.n * args.n + args.trials * (p_max * args.n + p_max * p_max)),
                  f"--n {args.n} and --loads up to {p_max} patterns: the networks")
    out = checks.output_folder(args.out, "--out")
    if not args.json:
        print(f"Hopfield capacity: N = {args.n}, {args.trials} networks per load, seed "
              f"{args.seed}, recall = final overlap >= {args.threshold:g}"
              + (f", starts with {args.noise:g} of bits flipped" if args.noise else
                 ", starts at the stored patterns"))
        print(f"{'rule':>13} {'load':>6} {'p':>4} {'recall':>7} {'± se':>6} {'exact':>6} "
              f"{'overlap':>8}")

    def progress(rule, load, row):
        if not args.json:
            print(f"{rule:>13} {load:6.3f} {row['n_patterns']:4d} {row['recall']:7.3f} "
                  f"{row['recall_se']:6.3f} {row['exact']:6.3f} {row['overlap']:8.3f}",
                  flush=True)

    res = capacity(n_units=args.n, rules=rules, trials=args.trials, seed=args.seed,
                   loads=args.loads, noise=args.noise, threshold=args.threshold,
                   progress=progress)
    curves = {rule: (r["loads"], r["recall"]) for rule, r in res["rules"].items()}
    png = plots.capacity_curve(curves, out / "capacity.png", n_units=args.n,
                               mark=HEBBIAN_CAPACITY)
    res["hebbian_theory"] = HEBBIAN_CAPACITY
    _write_json(res, out / "capacity.json")
    if args.json:
        print(json.dumps(res))
        return 0
    print("load where recall falls below 50%:")
    for rule, r in res["rules"].items():
        at = r["load_at_half"]
        text = f"{at:.3f}" if at is not None else f"not reached (up to {max(r['loads']):.2f})"
        note = f"   (theory for N -> inf: {HEBBIAN_CAPACITY})" if rule == "hebbian" else ""
        print(f"  {rule:>13}: {text}{note}")
    print(f"wrote {png} and {out / 'capacity.json'}")
    return 0


def _digit_patterns(dataset: str, k: int):
    """The first image of each class 0, 1, 2, ... (cycling through the classes when k > 10),
    binarised at 0.5 and mapped to ±1: ``(k, n)`` and the image shape."""
    import torch

    from ..data import binarize, load_dataset, to_spin

    split = {"digits": "all", "mnist": "test"}.get(dataset)
    if split is None:
        raise ValueError(f"--dataset: expected 'mnist' or 'digits', got {dataset!r}")
    ds = load_dataset(dataset, split)
    if k > ds.data.shape[0]:
        raise ValueError(f"--n-patterns: {dataset} ({split}) has {ds.data.shape[0]} images, got "
                         f"{k}")
    picked, seen = [], {}
    for label in range(10):
        seen[label] = (ds.labels == label).nonzero().squeeze(1).tolist()
    rounds = 0
    while len(picked) < k:
        for label in range(10):
            if len(picked) < k and rounds < len(seen[label]):
                picked.append(seen[label][rounds])
        rounds += 1
    x = ds.data[torch.tensor(picked)]
    return to_spin(binarize(x, threshold=0.5)), ds.image_shape


def _recall(args) -> int:
    import torch

    from .. import plots
    from ..experiments.hopfield import corrupt
    from ..models.hopfield import Hopfield

    rules = _rules(args)
    _v.integer(args.n_patterns, "--n-patterns", 1)
    checks.seed(args.seed)
    checks.output_file(args.out, "--out", (".png",))
    xi, shape = _digit_patterns(args.dataset, args.n_patterns)
    gen = torch.Generator().manual_seed(args.seed)
    noisy = corrupt(xi, args.noise, gen)
    rows = {"stored": xi, f"corrupted ({args.noise:.0%})": noisy}
    report = {"dataset": args.dataset, "n_units": xi.shape[1], "n_patterns": xi.shape[0],
              "noise": args.noise, "mode": args.mode, "seed": args.seed, "rules": {}}
    for rule in rules:
        net = Hopfield(xi.shape[1], rule).store(xi)
        out, info = net.recall(noisy, mode=args.mode, generator=gen, return_info=True)
        overlap = (out * xi).mean(1)
        rows[f"recalled: {rule}"] = out
        report["rules"][rule] = {
            "exact": int((out == xi).all(1).sum()),
            "overlaps": [round(float(v), 4) for v in overlap],
            "sweeps": info["sweeps"], "converged": int(info["converged"].sum())}
    png = plots.image_rows(rows, shape, args.out)
    report["out"] = str(png)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"stored {xi.shape[0]} {args.dataset} images ({xi.shape[1]} units), flipped "
          f"{args.noise:.0%} of the pixels, {args.mode} recall:")
    for rule, r in report["rules"].items():
        ov = ", ".join(f"{v:.2f}" for v in r["overlaps"])
        print(f"  {rule:>13}: {r['exact']}/{xi.shape[0]} recalled exactly; overlaps {ov}")
    print(f"wrote {png}")
    return 0


def _spurious(args) -> int:
    import torch

    from ..experiments.hopfield import count_spurious, random_patterns
    from ..models.hopfield import Hopfield

    rules = _rules(args)
    _v.integer(args.n_patterns, "--n-patterns", 1)
    _v.integer(args.starts, "--starts", 1)
    if args.n < 2:
        raise ValueError(f"--n: expected at least 2 units, got {args.n}")
    checks.seed(args.seed)
    checks.memory(4 * 4 * (args.n * args.n + (args.starts + args.n_patterns) * args.n
                           + args.n_patterns * args.n_patterns),
                  f"--n {args.n} with --n-patterns {args.n_patterns} and --starts "
                  f"{args.starts}: the network and its starts")
    patterns = random_patterns(args.n_patterns, args.n,
                               torch.Generator().manual_seed(args.seed))
    report = {"n_units": args.n, "n_patterns": args.n_patterns, "n_starts": args.starts,
              "seed": args.seed, "rules": {}}
    for rule in rules:
        net = Hopfield(args.n, rule).store(patterns)
        res = count_spurious(net, args.starts, torch.Generator().manual_seed(args.seed + 1))
        report["rules"][rule] = res.to_dict()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"N = {args.n}, {args.n_patterns} random patterns, {args.starts} random starts; "
          f"distinct fixed points (starts ending there):")
    print(f"{'rule':>13} {'stored':>12} {'reversed':>12} {'mixture of 3':>13} {'other':>12}")
    for rule, r in report["rules"].items():
        cells = " ".join(f"{r['distinct'][c]:>5} ({r['starts'][c]:>4})".rjust(w) for c, w in
                         (("stored", 12), ("reversed", 12), ("mixture3", 13), ("other", 12)))
        note = "" if r["mixtures_checked"] else "  (mixtures not checked: too many patterns)"
        stuck = r["starts"]["not_converged"]
        print(f"{rule:>13} {cells}" + (f"  {stuck} starts did not converge" if stuck else "")
              + note)
    return 0
