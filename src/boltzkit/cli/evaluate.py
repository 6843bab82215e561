"""``boltzkit evaluate``: log Z, log-likelihood, pseudo-likelihood and reconstruction error of a
saved RBM or convolutional RBM on a data set (exact, AIS, reverse AIS or both sides of the
bracket). MODEL is a model file or a run folder of ``boltzkit train``; without ``--data`` the
data set the run trained on is evaluated (its test split by default), else digits. A ConvRBM
reads its images as it trained on them (rows of C*H*W pixels, or a ``.npy`` of ``(n, C, H,
W)``).

A DBN of two RBMs gets the variational lower bound on its log-likelihood with its top RBM's
log Z, a DBM the mean-field bound and the importance-sampled estimate with its log Z, and
optionally RAISE on ``--raise-rows`` rows (:mod:`boltzkit.evaluation.deep`). ``--samples``
(both), ``--sweeps`` and ``--raise-rows`` (a DBM's) are refused for the other models."""

from __future__ import annotations

import json

import torch

from . import add_threads, apply_threads, checks

__all__ = ["register"]

NAMED = ("digits", "mnist", "binarized-mnist")


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="log Z, log-likelihood and pseudo-likelihood of a saved RBM, "
                         "convolutional RBM, DBN or DBM",
        description="Evaluate a saved RBM or convolutional RBM on a data set: reconstruction "
                    "error, pseudo-likelihood, log Z (exact, AIS, reverse AIS) and the mean "
                    "log-likelihood in nats. A DBN of two RBMs: the variational lower bound "
                    "with its top RBM's log Z; a DBM: the mean-field bound and the "
                    "importance-sampled estimate with its log Z, and RAISE on --raise-rows "
                    "rows.")
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
    p.add_argument("--samples", type=int, default=None,
                   help="DBN and DBM only: draws of h_1 per row for a DBN's bound, importance "
                        "samples per row for a DBM (default: 100)")
    p.add_argument("--sweeps", type=int, default=None,
                   help="DBM with --log-z reverse-ais or both: block-Gibbs sweeps at beta = 1 "
                        "of the reverse-AIS chains, started at training rows (default: 5000)")
    p.add_argument("--raise-rows", type=int, default=None,
                   help="DBM only: rows (a random subset) that also get RAISE, a conservative "
                        "per-row estimate needing no log Z, one reverse chain each on the AIS "
                        "schedule (default: 0, none)")
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


def _deep_table(result: dict, title: str) -> str:
    """The table of a DBN's or a DBM's figures (nats per row)."""
    dbn = result["model_kind"] == "DBN"
    lines = [title, f"  rows                      {result['n_rows']}"]
    if dbn:
        lines += [f"  reconstruction error      {result['reconstruction_error']:.5f} (bottom RBM, "
                  f"mean squared, per unit)",
                  f"  variational lower bound on log p(v), {result['bound_samples']} draws of "
                  f"h_1 ~ q(h_1 | v) per row, with the top RBM's log Z:"]
        figures = [("variational_bound", "lower bound (nats/row)")]
    else:
        lines.append(f"  per row, from the mean-field posterior ({result['mean_field_steps']} "
                     f"sweeps), with the DBM's log Z: the mean-field (variational lower) bound "
                     f"and the importance-sampled estimate ({result['importance_samples']} "
                     f"samples per row)")
        figures = [("variational_bound", "mean-field bound"),
                   ("importance_sampled", "importance-sampled")]
    head = f"  {'log Z by':12s} {'log Z':>10s}  {'interval (3 s.e.)':>22s}"
    for _, label in figures:
        head += f"  {label:>24s}"
    lines.append(head + f"  {'ESS':>11s}  {'time':>8s}")
    for name, e in result["estimates"].items():
        lo, hi = e["log_z_interval"]
        ess = "" if name == "exact" else f"{e['ess']:.1f}/{e['n_chains']}"
        row = f"  {name:12s} {_fmt(e['log_z']):>10s}  {f'[{_fmt(lo)}, {_fmt(hi)}]':>22s}"
        for key, _ in figures:
            cell = f"{_fmt(e[key])} ± {_fmt(e[key + '_std_error'])}"
            row += f"  {cell:>24s}"
        lines.append(row + f"  {ess:>11s}  {e['seconds']:7.1f}s")
        if name == "exact" and "log_likelihood" in e:
            lines.append(f"  {'':12s} exact log-likelihood {_fmt(e['log_likelihood'])} ± "
                         f"{_fmt(e['log_likelihood_std_error'])} nats/row")
    est = result["estimates"]
    if "ais" in est or "reverse-ais" in est:
        e = est.get("ais") or est["reverse-ais"]
        note = f"  (AIS: {e['n_betas'] - 1} annealing steps"
        if "reverse-ais" in est and not dbn:
            note += f"; reverse chains after {result['reverse_sweeps']} Gibbs sweeps"
        lines.append(note + ")")
        lines.append("  (forward AIS tends to under-estimate log Z, so the figures with it tend "
                     "to be too high; reverse AIS the other way)")
    for key, label in figures:
        if f"{key}_bracket" in result:
            lo, hi = result[f"{key}_bracket"]
            lines.append(f"  bracket of the {label.split(' (')[0]} (reverse, forward) "
                         f"[{_fmt(lo)}, {_fmt(hi)}]")
    if "raise" in result:
        r = result["raise"]
        lines.append(f"  RAISE on {r['rows']} rows     {_fmt(r['log_likelihood'])} ± "
                     f"{_fmt(r['log_likelihood_std_error'])} nats/row (conservative, no log Z; "
                     f"{r['n_betas'] - 1} annealing steps, {r['seconds']:.1f}s)")
    return "\n".join(lines)


def _check_deep_options(args, kind: str) -> None:
    """One line for an option that does not apply to a ``kind`` model (or to this --log-z)."""
    if kind not in ("DBN", "DBM"):
        for flag, value in (("--samples", args.samples), ("--sweeps", args.sweeps),
                            ("--raise-rows", args.raise_rows)):
            if value is not None:
                raise ValueError(f"{flag}: for DBN and DBM files only, the model is a {kind}")
        return
    if args.samples is not None and args.samples < 1:
        raise ValueError(f"--samples: expected a positive integer, got {args.samples}")
    if kind == "DBN":
        for flag, value in (("--sweeps", args.sweeps), ("--raise-rows", args.raise_rows)):
            if value is not None:
                raise ValueError(f"{flag}: for DBM files only, the model is a DBN")
        return
    if args.sweeps is not None:
        if args.log_z not in ("reverse-ais", "both"):
            raise ValueError(f"--sweeps: only with --log-z reverse-ais or both (the reverse "
                             f"chains), got --log-z {args.log_z}")
        if args.sweeps < 0:
            raise ValueError(f"--sweeps: expected an integer >= 0, got {args.sweeps}")
    if args.raise_rows is not None and args.raise_rows < 0:
        raise ValueError(f"--raise-rows: expected an integer >= 0, got {args.raise_rows}")


def _deep_memory(args, model, kind: str, betas: int, device) -> None:
    """Refuse, before any work, sizes whose tensors would not fit (a DBN's or a DBM's)."""
    from ..evaluation import deep

    samples = args.samples if args.samples is not None else deep.DEFAULT_SAMPLES
    if kind == "DBN":
        top = model.sizes[1] + model.sizes[2]
        checks.memory(8 * 4 * args.chains * top, f"--chains {args.chains}: the AIS chains of "
                                                 f"the top RBM", device)
        # the bound draws at most max(samples, 10000) rows of h_1 at a time
        checks.memory(8 * 4 * max(samples, 10000) * (model.sizes[0] + model.sizes[1]),
                      f"--samples {samples}: the draws of h_1", device)
    else:
        width = sum(model.sizes)
        checks.memory(8 * 4 * args.chains * width, f"--chains {args.chains}: the AIS chains",
                      device)
        checks.memory(8 * 4 * 10000 * width, f"--samples {samples}: the importance samples",
                      device)
        if args.raise_rows:
            checks.memory(8 * 4 * args.raise_rows * width,
                          f"--raise-rows {args.raise_rows}: the RAISE chains", device)
    checks.memory(8 * 2 * betas, f"--betas {betas}: the annealing schedule")


def evaluate_command(args) -> int:
    import dataclasses

    from .. import data as bdata
    from ..evaluation import evaluate
    from .rbm import DEEP_KINDS, product_work, read_model
    from .train import load_images

    if args.chains < 2:
        raise ValueError(f"--chains: expected an integer >= 2, got {args.chains}")
    if args.betas is not None and args.betas < 1:
        raise ValueError(f"--betas: expected a positive number of steps, got {args.betas}")
    checks.seed(args.seed)
    device = checks.device(args.device)
    path, meta, model = read_model(args.model, "evaluate", device)
    kind = meta["model"]
    deep = kind in DEEP_KINDS
    _check_deep_options(args, kind)
    if kind == "DBN" and model.n_rbms != 2:
        raise ValueError(f"model: the variational bound is for two-layer DBNs (two RBMs), "
                         f"{path} holds a DBN of {model.n_rbms} RBMs")
    conv = hasattr(model, "image_shape")
    apply_threads(args, product_work(model, args.chains), device)
    betas = args.betas if args.betas is not None else 14500
    if deep:
        _deep_memory(args, model, kind, betas, device)
    else:
        # AIS keeps every chain's visible and hidden states and their fields, and the schedule
        checks.memory(8 * 4 * args.chains * (model.n_visible + model.n_hidden),
                      f"--chains {args.chains}: the AIS chains", device)
        checks.memory(8 * 2 * betas, f"--betas {betas}: the annealing schedule")
    # the model file's record (or, for a file without one, the plain rules for its units),
    # with this command's binarisation: likelihoods need data on the units' support
    units = model.units if kind == "DBM" else model.visible
    prep = meta["preparation"] or bdata.Preparation(units, n_features=model.n_visible)
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
    if base is not None:
        base = model.check_visible(base, "--data (train split)")
    more = {"samples": args.samples, "sweeps": args.sweeps, "raise_rows": args.raise_rows} \
        if deep else {}
    result = evaluate(model, x, log_z=args.log_z, chains=args.chains, betas=args.betas,
                      seed=args.seed, base_data=base, **more)
    result = {"model_file": str(path), "data": ds.name, **result}
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return 0
    from .train import _describe

    title = f"{path}: {_describe(model)} on {ds.name}"
    if deep:
        print(_deep_table(result, title))
    else:
        print(_table(result, title))
    return 0
