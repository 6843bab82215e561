"""``boltzkit evaluate``: log Z, log-likelihood, pseudo-likelihood and reconstruction error of a
saved RBM or convolutional RBM on a data set (exact, AIS, reverse AIS or both sides of the
bracket). MODEL is a model file or a run folder of ``boltzkit train``; without ``--data`` the
data set the run trained on is evaluated (its test split by default), else digits. A ConvRBM
reads its images as it trained on them (rows of C*H*W pixels, or a ``.npy`` of ``(n, C, H,
W)``)."""

from __future__ import annotations

import json

import torch

from . import add_threads, apply_threads, checks

__all__ = ["register"]

NAMED = ("digits", "mnist", "binarized-mnist")


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="log Z, log-likelihood and pseudo-likelihood of a saved RBM or "
                         "convolutional RBM",
        description="Evaluate a saved RBM or convolutional RBM on a data set: reconstruction "
                    "error, pseudo-likelihood, log Z (exact, AIS, reverse AIS) and the mean "
                    "log-likelihood in nats.")
    p.add_argument("model", help="model file (.safetensors written by boltzkit) or run folder")
    p.add_argument("--data", default=None,
                   help="digits, mnist, binarized-mnist, PATH.npy or PATH.csv (default: the "
                        "data set the model was trained on, when its file names one of the "
                        "three, else digits)")
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
             f"  pseudo-likelihood         {_fmt(result['pseudo_likelihood'])} ± "
             f"{_fmt(result['pseudo_likelihood_std_error'])} nats/row "
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
    from .rbm import product_work, read_model
    from .train import load_images

    if args.chains < 2:
        raise ValueError(f"--chains: expected an integer >= 2, got {args.chains}")
    if args.betas is not None and args.betas < 1:
        raise ValueError(f"--betas: expected a positive number of steps, got {args.betas}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    path, meta, model = read_model(args.model, "evaluate", device)
    conv = hasattr(model, "image_shape")
    apply_threads(args, product_work(model, args.chains), device)
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
    trained_on = (meta["extra"].get("settings") or {}).get("data") \
        if isinstance(meta["extra"].get("settings"), dict) else None
    data = args.data if args.data is not None else \
        trained_on if trained_on in NAMED else "digits"

    def rows(split, name):
        """The split as the model's visible states (a ConvRBM's: images)."""
        ds = load_images(data, split, model.image_shape, option=name,
                         shape_option=f"{name} (the model's images)")[0] if conv else \
            bdata.load_dataset(data, split)
        x = prep.transform(ds.data, gen, for_likelihood=True, name=name)
        return ds, x.reshape(-1, *model.image_shape) if conv else x

    ds, x = rows(args.split, "--data")
    base = None
    if data in NAMED and args.split != "train":
        # the AIS base-rate model comes from the training data (Salakhutdinov & Murray)
        base = rows("train", "--data (train split)")[1]
    x = model.check_visible(x, "--data")
    result = evaluate(model, x, log_z=args.log_z, chains=args.chains, betas=args.betas,
                      seed=args.seed, base_data=base if base is None else
                      model.check_visible(base, "--data (train split)"))
    result = {"model_file": str(path), "data": ds.name, **result}
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        cfg = result["model"]
        if conv:
            from .train import _describe

            title = f"{path}: {_describe(model)} on {ds.name}"
        else:
            title = (f"{path}: {cfg.get('n_visible')}x{cfg.get('n_hidden')} "
                     f"{cfg.get('visible')}-{cfg.get('hidden')} RBM on {ds.name}")
        print(_table(result, title))
    return 0
