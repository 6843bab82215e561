"""``boltzkit evaluate``: log Z, log-likelihood, pseudo-likelihood and reconstruction error of a
saved RBM on a data set (exact, AIS, reverse AIS or both sides of the bracket)."""

from __future__ import annotations

import json

import torch

from . import add_threads, apply_threads, checks

__all__ = ["register"]

NAMED = ("digits", "mnist", "binarized-mnist")


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="log Z, log-likelihood and pseudo-likelihood of a saved RBM",
        description="Evaluate a saved RBM on a data set: reconstruction error, pseudo-likelihood, "
                    "log Z (exact, AIS, reverse AIS) and the mean log-likelihood in nats.")
    p.add_argument("model", help="model file (.safetensors written by boltzkit)")
    p.add_argument("--data", default="digits",
                   help="digits, mnist, binarized-mnist, PATH.npy or PATH.csv (default: digits)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                   help="data split (default: test; ignored for files)")
    p.add_argument("--log-z", default="auto", choices=["auto", "exact", "ais", "reverse-ais",
                                                       "both"],
                   help="how log Z is found: auto = exact when a layer has <= 24 binary units, "
                        "else forward AIS; both = forward and reverse AIS (default: auto)")
    p.add_argument("--chains", type=int, default=100, help="AIS chains (default: 100)")
    p.add_argument("--betas", type=int, default=None,
                   help="AIS annealing steps (default: 14500, Salakhutdinov & Murray's schedule)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--binarize", choices=["threshold", "sample", "none"], default="threshold",
                   help="how grey data become 0/1 for bernoulli or spin visible units "
                        "(default: threshold at 0.5; 0/1 and ±1 data are left as they are); "
                        "the rest of the preparation (±1 spins, the training standardisation "
                        "of Gaussian units) comes from the model file")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_threads(p)
    p.set_defaults(func=evaluate_command)


def _fmt(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f}"


def _table(result: dict, title: str) -> str:
    lines = [title,
             f"  rows                      {result['n_rows']}",
             f"  reconstruction error      {result['reconstruction_error']:.5f} (mean squared, "
             f"per unit)",
             f"  pseudo-likelihood         {result['pseudo_likelihood']:.3f} ± "
             f"{result['pseudo_likelihood_std_error']:.3f} nats/row "
             f"({result['pseudo_likelihood_method']})"]
    lines.append(f"  {'log Z by':12s} {'log Z':>10s}  {'interval (3 s.e.)':>22s}  "
                 f"{'log-likelihood (nats/row)':>26s}  {'ESS':>11s}  {'time':>8s}")
    for name, e in result["estimates"].items():
        lo, hi = e["log_z_interval"]
        ess = "" if name == "exact" else f"{e['ess']:.1f}/{e['n_chains']}"
        interval = f"[{_fmt(lo)}, {_fmt(hi)}]"
        ll = f"{_fmt(e['log_likelihood'])} ± {_fmt(e['log_likelihood_std_error'])}"
        lines.append(f"  {name:12s} {_fmt(e['log_z']):>10s}  {interval:>22s}  {ll:>26s}  "
                     f"{ess:>11s}  {e['seconds']:7.1f}s")
    if "ais" in result["estimates"] or "reverse-ais" in result["estimates"]:
        e = result["estimates"].get("ais") or result["estimates"]["reverse-ais"]
        lines.append(f"  (AIS: {e['n_betas'] - 1} annealing steps; forward AIS tends to over-, "
                     f"reverse AIS to under-estimate the log-likelihood)")
    if "log_likelihood_bracket" in result:
        lo, hi = result["log_likelihood_bracket"]
        lines.append(f"  bracket (reverse, forward) [{_fmt(lo)}, {_fmt(hi)}]")
    return "\n".join(lines)


def evaluate_command(args) -> int:
    import dataclasses

    from .. import data as bdata
    from ..evaluation import evaluate
    from ..io import load, read_metadata

    if args.chains < 2:
        raise ValueError(f"--chains: expected an integer >= 2, got {args.chains}")
    if args.betas is not None and args.betas < 1:
        raise ValueError(f"--betas: expected a positive number of steps, got {args.betas}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    meta = read_metadata(args.model)
    if meta["model"] != "RBM":
        raise ValueError(f"model: 'boltzkit evaluate' evaluates RBMs, {args.model} holds a "
                         f"{meta['model']}")
    model = load(args.model, device=device)
    apply_threads(args, args.chains * model.n_visible * model.n_hidden, device)
    # AIS keeps every chain's visible and hidden states and their fields, and the schedule
    betas = args.betas if args.betas is not None else 14500
    checks.memory(8 * 4 * args.chains * (model.n_visible + model.n_hidden),
                  f"--chains {args.chains}: the AIS chains", device)
    checks.memory(8 * 2 * betas, f"--betas {betas}: the annealing schedule")
    # the model file's record (or, for a file without one, the plain rules for its units),
    # with this command's binarisation: likelihoods need data on the units' support
    prep = meta["preparation"] or bdata.Preparation(model.visible, n_features=model.n_visible)
    prep = dataclasses.replace(prep, binarize=args.binarize)
    gen = torch.Generator().manual_seed(args.seed)
    ds = bdata.load_dataset(args.data, args.split)
    x = prep.transform(ds.data, gen, for_likelihood=True, name="--data")
    base = None
    if args.data in NAMED and args.split != "train":
        # the AIS base-rate model comes from the training data (Salakhutdinov & Murray)
        base = prep.transform(bdata.load_dataset(args.data, "train").data, gen,
                              for_likelihood=True, name="--data (train split)")
    x = model.check_visible(x, "--data")
    result = evaluate(model, x, log_z=args.log_z, chains=args.chains, betas=args.betas,
                      seed=args.seed, base_data=base if base is None else
                      model.check_visible(base, "--data (train split)"))
    result = {"model_file": str(args.model), "data": ds.name, **result}
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        cfg = result["model"]
        print(_table(result, f"{args.model}: {cfg.get('n_visible')}x{cfg.get('n_hidden')} "
                             f"{cfg.get('visible')}-{cfg.get('hidden')} RBM on {ds.name}"))
    return 0
