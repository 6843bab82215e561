"""``boltzkit compare autoencoders``: autoencoders next to RBMs, a DBN and a DBM on MNIST.

``boltzkit compare autoencoders --quick --out DIR`` trains every model of
:mod:`boltzkit.experiments.compare` at the quick setting (minutes on one CPU thread) and writes
``results.json``, ``table.md`` and the pictures into ``DIR``; without ``--quick`` at the
paper's scale (hours). The table is printed when the run ends.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from . import checks, needs_subcommand

__all__ = ["register"]


def register(sub) -> None:
    p = sub.add_parser("compare", help="side-by-side comparisons of model families",
                       description="Side-by-side comparisons of model families on one data "
                                   "set: a table and pictures.")
    psub = p.add_subparsers(dest="compare_command", metavar="COMPARISON")
    a = psub.add_parser(
        "autoencoders", help="autoencoders vs RBMs, DBN, DBM and PCA on MNIST",
        description="Train on MNIST a tied autoencoder, a denoising autoencoder, Hinton & "
                    "Salakhutdinov's deep autoencoder (784-1000-500-250-30: pre-trained as a "
                    "stack of RBMs, unrolled and fine-tuned; and from random weights), an RBM, "
                    "a DBN, a DBM and PCA, and compare them: test reconstruction error, a "
                    "linear classifier on their features (all labels and 1,000 labels), test "
                    "log-likelihoods where there are any, and pictures (filters, "
                    "reconstructions, 2-D codes, fine-tuning curves). Writes results.json, "
                    "table.md and compare-*.png into --out.")
    a.add_argument("--quick", action="store_true",
                   help="10,000 training images, 10 epochs per model, 2,000 AIS steps: minutes "
                        "on one CPU thread (default: all 60,000 images at the paper's scale, "
                        "50 epochs of pre-training per RBM, 200 of fine-tuning: hours)")
    a.add_argument("--out", default=None,
                   help="output folder (default: runs/compare-autoencoders-TIME)")
    a.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    a.add_argument("--train-rows", type=int, default=None, metavar="N",
                   help="training images (default: 10,000 with --quick, else 60,000)")
    a.add_argument("--finetune-epochs", type=int, default=None, metavar="N",
                   help="epochs of fine-tuning of the deep autoencoders (default: 10 with "
                        "--quick, else 200)")
    a.add_argument("--no-2d", dest="codes_2d", action="store_false",
                   help="skip the 784-1000-500-250-2 autoencoder of the 2-D picture")
    a.add_argument("--threads", default="1", metavar="N|auto",
                   help="torch's and the classifier's CPU threads: a positive number, or auto "
                        "(as many as there are idle cores, measured at start) (default: 1)")
    a.set_defaults(func=_autoencoders, _aliases={"n_train": "train_rows"})
    p.set_defaults(func=needs_subcommand(p, "a comparison"))


def _autoencoders(args) -> int:
    from ..experiments.compare import FULL, QUICK, run_autoencoder_comparison

    checks.seed(args.seed)
    settings = QUICK if args.quick else FULL
    if args.train_rows is not None:
        if args.train_rows < settings.few_labels:
            raise ValueError(f"n_train: expected at least {settings.few_labels} training "
                             f"images (the few-label classifier's), got {args.train_rows}")
        if args.train_rows > 60000:
            raise ValueError(f"n_train: MNIST has 60000 training images, got "
                             f"{args.train_rows}")
        settings = dataclasses.replace(settings, n_train=args.train_rows)
    if args.finetune_epochs is not None:
        settings = dataclasses.replace(settings, finetune_epochs=args.finetune_epochs)
    settings = dataclasses.replace(settings, codes_2d=args.codes_2d).checked()
    out = checks.output_folder(args.out or f"runs/compare-autoencoders-"
                                           f"{time.strftime('%Y%m%d-%H%M%S')}", "--out")
    result = run_autoencoder_comparison(out, settings=settings, seed=args.seed,
                                        threads=args.threads,
                                        log=lambda s: print(s, file=sys.stderr, flush=True))
    from ..experiments.compare import format_table

    print(format_table(result))
    print(f"wrote {Path(out) / 'table.md'}, results.json and the pictures "
          f"({result['seconds']:.0f} s)")
    return 0
