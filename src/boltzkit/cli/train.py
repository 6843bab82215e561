"""``boltzkit train``: train an RBM, a Boltzmann machine, a convolutional RBM, a DBN or a DBM
into a run folder that survives kills.

A run folder holds::

    run.json                  the run's settings (what ``--resume`` continues with)
    model.safetensors         the model after the last finished epoch (never a partial one)
    train_state.safetensors   everything needed to continue: parameters, chains, momentum,
                              the random generator, the position within the epoch
    metrics.json              settings and per-epoch figures
    filters.png, samples.png, curves.png   pictures, drawn when training ends

The kinds of model (``--model``) are the rows of :data:`MODEL_KINDS`: each says which methods
and options it takes (the others are refused with one line), its defaults
(:data:`MODEL_DEFAULTS`), how it is built from the data, described and drawn. ``--model conv``
trains a :class:`~boltzkit.ConvRBM` (``--filters``, ``--filter-size``, ``--pool``,
``--sparsity``) on images: the named data sets (digits 8x8, mnist and binarized-mnist 28x28,
patches), a ``.npy`` array ``(n, C, H, W)``, or rows ``(n, C*H*W)`` with ``--image-shape``
(square one-channel images need none); its filters.png shows every filter, samples.png Gibbs
samples from random images, and metrics.json the reconstruction error and the mean hidden
activation after every epoch.

``--model dbn`` and ``--model dbm`` (``--hidden 500,2000``: the hidden layers, bottom first)
train in stages (:class:`Stage`, one :func:`~boltzkit.training.fit` each): a DBN one RBM per
layer (each as ``--model rbm`` would, on the hidden means of the layer below; ``--features
sample``: draws), a DBM its greedy pre-training modules with doubled inputs (``--pretrain-epochs``
of CD-1 at ``--pretrain-lr``) and then its joint training (``--epochs``, mean-field positive
phase of ``--mf-steps`` sweeps, ``--chains`` persistent chains). Each stage keeps its own
``train_state.safetensors`` (and, where the stage's model is a model of its own,
``model.safetensors``) in the subfolder of its name (``layer-1``, ..., ``joint``); every stage
has its own generator, seeded from ``--seed`` and its position, so a resumed run takes up the
first unfinished stage from its state (the finished ones are read back, not retrained) and ends
bit-identical to the run done in one go. The run folder's ``model.safetensors`` (the DBN or
DBM) is written when the last stage ends; metrics.json holds every stage's epochs, each record
with its ``stage``.

``boltzkit train --resume RUN`` continues a run that was killed (``kill -9``), interrupted
(Ctrl-C, SIGTERM) or stopped early, with the settings in ``RUN/run.json``, and ends with the same
model file, bit for bit on the CPU, as the same run done in one go; ``--epochs N`` trains a
finished run further. One run per folder: a folder that a live run is using is refused, and a
folder that holds a run is only reused with ``--resume`` or ``--overwrite``.

The held-out log-likelihood (:class:`~boltzkit.training.LikelihoodMonitor`) is monitored by
default when the data set has a held-out split (training on ``train``: ``valid`` for
binarized-mnist, ``test`` for mnist and digits); its rows go through the same preparation as the
training data. After every ``--monitor-every`` epochs (default 1; 0: off) and the last,
metrics.json gets ``loglik``, the mean over the first ``--monitor-rows`` held-out rows
(default 2000) in nats, with ``loglik_method`` (``exact`` when a layer has at most 16 binary
units, else ``ais``: forward AIS, 10 chains x 1000 steps, about 14% of a 784x500 PCD epoch on
binarized MNIST, optimistic by 1-2 nats from the second epoch on and by 20 after the first: see
the monitor's docstring), ``loglik_log_z``, ``loglik_ess`` and ``loglik_seconds``; curves.png
draws it beside the reconstruction error (also when a run is interrupted), and the last line
prints it. Off by default for data without a held-out split (user files), for
``--model bm`` (monitored only by enumeration, at most 16 units) and for ``--binarize none``
(grey values have no likelihood); asking for it there is refused.

Started by ``torchrun --nproc-per-node N -m boltzkit train ...``, the run trains over the N
processes (:mod:`boltzkit.distributed`): ``--batch-size`` and ``--chains`` are totals over them,
every process ends with the same model, and process 0 alone writes the run folder and prints;
``--resume`` continues such a run over as many processes. A setup that fails on any process
stops all of them with that process's one line; a process that dies ends the others with one
line naming the last checkpoint, within ``--dist-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import torch

from ..distributed import PeerSetupError, ProcessGroupError
from ..training import Callback
from ..training.callbacks import DEFAULT_MONITOR_ROWS
from ..units import UNIT_NAMES, get_units
from ..units.gaussian import VARIANCE_LR_SCALE
from . import add_threads, apply_threads, checks

__all__ = ["register", "TRAIN_DEFAULTS", "RUN_FILE"]

RUN_FILE = "run.json"
RUN_FILES = (RUN_FILE, "model.safetensors", "train_state.safetensors", "metrics.json",
             "filters.png", "samples.png", "curves.png")
DATA_CHOICES = ("digits, mnist, binarized-mnist, patches, patches-14 (natural image patches, "
                "ZCA-whitened for gaussian units), PATH.npy or PATH.csv")
METHODS = ("cd", "pcd", "pt", "two-phase")
# the held-out split of each data set, when training on its "train" split
HELD_OUT = {"digits": "test", "mnist": "test", "binarized-mnist": "valid", "patches": "test",
            "patches-14": "test"}

# every setting of a run, with its default: the parser's defaults are None so that the options
# a user gave can be told apart (a resumed run takes its settings from run.json)
# (None: a default that depends on the model, see MODEL_DEFAULTS)
TRAIN_DEFAULTS = {
    "model": "rbm", "data": "digits", "split": "train", "hidden": None,
    "visible_units": "bernoulli", "hidden_units": "bernoulli", "binarize": "threshold",
    "method": None, "k": 1, "chains": None, "replicas": None, "centering": None, "settle": 5,
    "collect": 5, "rule": "sgd", "epochs": 30, "batch_size": None, "lr": None,
    "lr_schedule": None, "momentum": 0.5, "weight_decay": 1e-4, "max_step_norm": None,
    "seed": 0, "device": "cpu",
    "sample_steps": 1000,
    # the held-out log-likelihood monitor (monitor_every None: 1 where it applies, else 0)
    "monitor_every": None, "monitor_rows": DEFAULT_MONITOR_ROWS,
    # --model conv
    "filters": None, "filter_size": None, "pool": None, "sparsity": None,
    "sparsity_cost": None, "image_shape": None,
    # --model dbn and dbm
    "features": None, "pretrain_epochs": None, "pretrain_lr": None, "mf_steps": None,
}
# The rbm defaults were chosen by measurement (BENCHMARKS.md, "Defaults study"): on binarized
# MNIST with 500 hidden units, 10 epochs of centered PCD-1 at batch 100 and a learning rate of
# 0.1 decaying linearly to 0 gave -93.5 nats (forward AIS) / -93.3 (reverse), where the earlier
# defaults (uncentered CD-1 or PCD-1, batch 20, constant 0.05) gave models AIS could not measure
# (PCD: -171 / -184). Batch "auto": 100, or 20 for data of fewer than 10,000 rows, so that a
# small data set still gets enough updates per epoch (digits, 1438 rows: batch 100 made 14
# updates an epoch and a model 2.5 nats worse than batch 20). The bm keeps the settings of the
# 1985 experiments.
MODEL_DEFAULTS = {
    "rbm": {"hidden": 64, "method": "pcd", "centering": 0.01, "batch_size": "auto", "lr": 0.1,
            "lr_schedule": "linear"},
    "bm": {"hidden": 64, "method": "two-phase", "centering": 0.0, "batch_size": 20,
           "lr": 0.05, "lr_schedule": "constant"},
    # The conv defaults follow Lee et al. (2009: CD-1, 2 x 2 probabilistic max-pooling, a
    # sparsity target) with the learning rate and the regulariser's weight chosen on MNIST
    # (BENCHMARKS.md, "Convolutional RBM"): 24 filters of 9 x 9, 3 epochs of CD-1 on 10,000
    # binarised training digits, judged by the filters and by a logistic regression on the
    # pooled features of 1,000 labelled digits (error on 5,000 held-out training digits):
    # lr 0.001 gave 12.9% without the regulariser, 11.0% / 9.9% / 12.0% with target 0.02 and
    # cost 100 / 300 / 1000, and stroke-like filters; lr 0.003 and 0.01 let the filters die
    # (hidden activity below 1%, reconstructions no better than the base rates, 28-35% error),
    # and so did 0.002 with cost 300 (18%).
    "conv": {"method": "cd", "centering": 0.0, "batch_size": "auto", "lr": "auto",
             "lr_schedule": "constant", "filters": 24, "filter_size": "auto", "pool": 2,
             "sparsity": 0.02, "sparsity_cost": 300.0},
    # A DBN trains every layer as --model rbm would (--epochs each), the next one on the
    # hidden means of the one below (Hinton et al. 2006; --features sample: one binary draw per
    # row instead).
    "dbn": {"hidden": [64, 64], "method": "pcd", "centering": 0.01, "batch_size": "auto",
            "lr": 0.1, "lr_schedule": "linear", "features": "mean"},
    # A DBM follows Salakhutdinov & Hinton (2009) at the settings measured on MNIST
    # (BENCHMARKS.md, "Deep Boltzmann machine"): --pretrain-epochs of CD-1 at --pretrain-lr
    # 0.05 per module with the doubled inputs, then --epochs of joint training, a mean-field
    # positive phase (--mf-steps 10) against --chains persistent chains (--k sweeps per update),
    # lr 0.005 decaying linearly to 0.
    "dbm": {"hidden": [64, 64], "method": "pcd", "centering": 0.0, "batch_size": "auto",
            "lr": 0.005, "lr_schedule": "linear", "features": "mean", "pretrain_epochs": 20,
            "pretrain_lr": 0.05, "mf_steps": 10},
}
# --model conv's --lr auto: this over the number of positions of a hidden map, since a filter's
# gradient sums over them: 0.001 for MNIST's 20 x 20 maps (the rate chosen above); 0.011 for
# 8 x 8 digits with 3 x 3 filters, where 0.001 left the reconstruction error at 0.139 after
# the default 30 epochs and 0.01 reached 0.079; a tenth of it for Gaussian visible units (as
# Hinton's practical guide advises: on digits with four 7 x 7 filters, 0.1 diverged in the
# first epoch, 0.01 and 0.001 gave exact test log-likelihoods of -90.6 and -90.5 nats)
CONV_LR_PER_MAP = 0.4
CONV_GAUSSIAN_LR_SCALE = 0.1
# the options only some kinds of model take (MODEL_KINDS says which)
KIND_OPTIONS = ("hidden", "hidden_units", "k", "replicas", "centering", "settle", "collect",
                "filters", "filter_size", "pool", "sparsity", "sparsity_cost", "image_shape",
                "features", "pretrain_epochs", "pretrain_lr", "mf_steps")
# what --resume may change: how far to train, and how it is shown
RESUME_OPTIONS = ("epochs", "no_progress")


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train an RBM, a Boltzmann machine, a convolutional RBM, a DBN or a DBM "
                      "into a resumable run folder",
        description="Train a restricted Boltzmann machine (with --model bm, a fully "
                    "connected Boltzmann machine; with --model conv, a convolutional RBM; with "
                    "--model dbn or dbm, a deep belief net or a deep Boltzmann machine, one "
                    "layer at a time) into a run folder. With no arguments: 64 hidden units "
                    "on scikit-learn's 8x8 digits, in seconds. Ctrl-C or SIGTERM stop at the "
                    "next batch and keep what is needed to continue; --resume RUN continues "
                    "bit-identically.")
    d = TRAIN_DEFAULTS
    p.add_argument("--model", choices=list(MODEL_KINDS),
                   help="; ".join(f"{name}: {kind.help}" for name, kind in MODEL_KINDS.items())
                   + " (default: rbm)")
    p.add_argument("--data", help=f"{DATA_CHOICES} (default: {d['data']})")
    p.add_argument("--split", help="data split (default: train)")
    p.add_argument("--hidden", metavar="N|N1,N2,...",
                   help="hidden units: one number for an rbm and a bm (default: 64); one per "
                        "hidden layer, bottom first, for a dbn and a dbm, e.g. 500,2000 "
                        "(default: 64,64); a conv RBM has --filters maps")
    p.add_argument("--visible-units",
                   help=f"{', '.join(UNIT_NAMES)}, softmax:K or gaussian:learned (learned "
                        f"variances; gaussian:learned:F floors them at F) (default: bernoulli; a "
                        f"bm takes bernoulli or spin for all its units, a conv RBM bernoulli or "
                        f"gaussian, standardised per channel)")
    p.add_argument("--hidden-units",
                   help=f"{', '.join(UNIT_NAMES)} or softmax:K (default: bernoulli; rbm only)")
    p.add_argument("--binarize", choices=["threshold", "sample", "none"],
                   help="how grey data become 0/1 for bernoulli or spin visible units; 'none' "
                        "trains on the grey values as probabilities (default: threshold at 0.5)")
    p.add_argument("--method", choices=METHODS,
                   help="cd, pcd or pt (parallel tempering) for an rbm, two-phase for a bm, "
                        "cd or pcd for a conv RBM (default: pcd / two-phase / cd)")
    p.add_argument("--k", type=int,
                   help="Gibbs (pt: tempering) steps per update, cd, pcd and pt (rbm and conv) "
                        "(default: 1)")
    p.add_argument("--chains", type=int,
                   help="persistent chains for pcd, two-phase, and pt (per replica) "
                        "(default: min(100, rows))")
    p.add_argument("--replicas", type=int,
                   help="pt: rungs of the temperature ladder, beta = 1 included; the ladder "
                        "starts evenly spaced from 1 to 0 and is re-spaced for equal swap rates "
                        "every 100 updates (default: 10)")
    p.add_argument("--centering", type=float, nargs="?", const=0.01, metavar="RATE",
                   help="centered gradient (Melchior et al. 2016) with offsets moving at RATE "
                        "per update (an rbm trains centered by default, RATE 0.01)")
    p.add_argument("--no-centering", dest="centering", action="store_const", const=0.0,
                   help="the plain gradient instead of the centered one")
    p.add_argument("--settle", type=int,
                   help="two-phase: sweeps before statistics, each phase (default: 5)")
    p.add_argument("--collect", type=int,
                   help="two-phase: sweeps statistics are averaged over (default: 5)")
    p.add_argument("--rule", choices=["sgd", "sign"],
                   help="update rule: sgd, or sign (the 1985 fixed step of size --lr; bm) "
                        "(default: sgd)")
    p.add_argument("--epochs", type=int, help=f"passes over the data (default: {d['epochs']})")
    r, b, c = MODEL_DEFAULTS["rbm"], MODEL_DEFAULTS["bm"], MODEL_DEFAULTS["conv"]
    p.add_argument("--batch-size", type=int,
                   help=f"rows per update (default: 100, or 20 for data of fewer than 10,000 "
                        f"rows; bm {b['batch_size']})")
    p.add_argument("--lr", type=_float_or_auto, metavar="LR|auto",
                   help=f"learning rate (default: {r['lr']}; bm {b['lr']}; conv auto: "
                        f"{CONV_LR_PER_MAP:g} / the positions of a hidden map, since a filter's "
                        f"gradient sums over them: 0.001 for 9x9 filters on 28x28 images; a "
                        f"tenth of that for gaussian visible units)")
    p.add_argument("--lr-schedule", choices=["constant", "linear", "cosine"],
                   help=f"learning-rate schedule over training; linear decays to 0 at the end "
                        f"(default: {r['lr_schedule']}; bm {b['lr_schedule']}; conv "
                        f"{c['lr_schedule']})")
    p.add_argument("--momentum", type=float, help=f"SGD momentum (default: {d['momentum']})")
    p.add_argument("--weight-decay", type=float,
                   help=f"L2 penalty on the weights (default: {d['weight_decay']})")
    p.add_argument("--max-step-norm", type=float, metavar="NORM",
                   help="the largest L2 norm one hidden unit's weights may move by in one "
                        "update (longer steps are scaled down to it): stops a Gaussian RBM's "
                        "weights running away at a large --lr (default: none)")
    p.add_argument("--seed", type=int, help="random seed (default: 0)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--out", default=None,
                   help="run folder (default: runs/MODEL-DATA-YYYYmmdd-HHMMSS)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run in folder RUN with its stored settings (only "
                        "--epochs, to train further, and --no-progress may be given)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in --out even if it holds a run (its files are "
                        "replaced)")
    p.add_argument("--sample-steps", type=int,
                   help="Gibbs steps (bm: sweeps) for samples.png (default: 1000)")
    p.add_argument("--no-progress", action="store_true", default=None, help="no progress bar")
    p.add_argument("--monitor-every", type=int,
                   help="held-out log-likelihood every N epochs and at the last (exact for "
                        "small models, else short forward AIS); 0: off (default: 1 where the "
                        "data have a held-out split and the model is an rbm, else 0)")
    p.add_argument("--monitor-rows", type=int,
                   help=f"held-out rows the monitor uses (default: {DEFAULT_MONITOR_ROWS})")
    conv = p.add_argument_group("--model conv (a convolutional RBM on images)")
    conv.add_argument("--filters", type=int, metavar="K",
                      help=f"filters, one hidden feature map each (default: {c['filters']})")
    conv.add_argument("--filter-size", type=_int_or_auto, metavar="SIZE|auto",
                      help="filter height and width in pixels; auto: about a third of the "
                           "image side, moved to the nearest size whose maps divide by --pool "
                           "(9 for 28x28 images, 3 for 8x8) (default: auto)")
    conv.add_argument("--pool", type=int, metavar="P",
                      help=f"probabilistic max-pooling over P x P blocks of each map (Lee et "
                           f"al. 2009: at most one unit of a block on); 1: none "
                           f"(default: {c['pool']})")
    conv.add_argument("--sparsity", type=float, metavar="TARGET",
                      help=f"the mean hidden activation the hidden biases are pulled towards "
                           f"(Lee et al.'s sparsity regulariser); 0: off "
                           f"(default: {c['sparsity']})")
    conv.add_argument("--sparsity-cost", type=float, metavar="COST",
                      help=f"the regulariser's weight (default: {c['sparsity_cost']})")
    conv.add_argument("--image-shape", metavar="H,W|C,H,W",
                      help="the images' shape, for data files of rows (n, C*H*W) (default: "
                           "square one-channel images; a .npy of shape (n, C, H, W) gives its "
                           "own)")
    deep = p.add_argument_group("--model dbn and dbm (trained one layer at a time)")
    deep.add_argument("--features", choices=["mean", "sample"],
                      help="what the next layer trains on: the hidden conditional means of the "
                           "layer below, or one binary draw of them per row (default: mean)")
    deep.add_argument("--pretrain-epochs", type=int, metavar="N",
                      help="dbm: epochs of CD-1 for each pre-training module (default: "
                           f"{MODEL_DEFAULTS['dbm']['pretrain_epochs']}); --epochs is the joint "
                           "training's")
    deep.add_argument("--pretrain-lr", type=float, metavar="LR",
                      help=f"dbm: the pre-training's learning rate (default: "
                           f"{MODEL_DEFAULTS['dbm']['pretrain_lr']}; --lr is the joint "
                           f"training's, default {MODEL_DEFAULTS['dbm']['lr']})")
    deep.add_argument("--mf-steps", type=int, metavar="N",
                      help=f"dbm: mean-field sweeps of the positive phase per batch (default: "
                           f"{MODEL_DEFAULTS['dbm']['mf_steps']})")
    p.add_argument("--dist-timeout", type=float, metavar="SECONDS",
                   help="under torchrun: seconds a process waits for the others before the run "
                        "is given up (default: 120)")
    add_threads(p)
    p.set_defaults(func=train_command, _aliases={"n_chains": "chains", "n_filters": "filters",
                                                 "filter_shape": "filter_size"})


def _or_auto(kind, expected: str):
    """An argparse type: ``auto`` or a value of ``kind`` (checked with the other settings);
    ``expected`` names the value in the error line."""
    def parse(text: str):
        if text == "auto":
            return text
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text[:40]!r}") from None
    return parse


_int_or_auto = _or_auto(int, "a positive integer or auto")            # --filter-size
_float_or_auto = _or_auto(float, "a number (or auto, --model conv)")   # --lr


def _hidden_sizes(text: str):
    """--hidden as given on the command line: ``N`` (an int) or ``N1,N2,...`` (a list of
    ints; their ranges are checked by :func:`_check_hidden`)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--hidden: expected N or N1,N2,... (integers), got "
                         f"{text[:40]!r}") from None
    return sizes[0] if len(sizes) == 1 else sizes


# -- settings --------------------------------------------------------------------------------
def _given(args) -> dict:
    """The run settings the user gave on the command line (--hidden as numbers)."""
    given = {k: v for k, v in vars(args).items() if k in TRAIN_DEFAULTS and v is not None}
    if isinstance(given.get("hidden"), str):
        given["hidden"] = _hidden_sizes(given["hidden"])
    return given


def _resolve(settings: dict) -> dict:
    s = dict(TRAIN_DEFAULTS, **settings)
    if s["centering"] is None and str(s["visible_units"]).startswith("gaussian:learned"):
        # measured on whitened image patches: centering trained learned-variance models 1-4
        # nats worse at every length tried (BENCHMARKS.md, "Gaussian-Bernoulli RBM ...")
        s["centering"] = 0.0
    for name, value in MODEL_DEFAULTS.get(s["model"], MODEL_DEFAULTS["rbm"]).items():
        if s[name] is None:
            s[name] = list(value) if isinstance(value, list) else value
    if s["monitor_every"] is None:
        grey = s["binarize"] == "none" and \
            str(s["visible_units"]).split(":")[0] in ("bernoulli", "binary", "spin", "ising")
        kind = MODEL_KINDS.get(s["model"])
        s["monitor_every"] = int(_held_out(s) is not None and not grey and
                                 kind is not None and kind.monitor == "default")
    return s


def _held_out(s: dict):
    """The held-out split the monitor reads, or None (user files, other splits)."""
    return HELD_OUT.get(s["data"]) if s["split"] == "train" else None


CHOICES = {"model": tuple(MODEL_DEFAULTS), "method": METHODS,
           "binarize": ("threshold", "sample", "none"), "rule": ("sgd", "sign"),
           "lr_schedule": ("constant", "linear", "cosine")}


def _check(s: dict) -> None:
    """One line naming the option, before anything is loaded or written (the settings may come
    from a hand-edited run.json, so types and choices are checked too)."""
    from ..units import get_units

    def option(name):
        return "--" + name.replace("_", "-")

    for name, allowed in CHOICES.items():
        if s[name] not in allowed:
            raise ValueError(f"{option(name)}: expected one of {', '.join(allowed)}, got "
                             f"{s[name]!r}")
    for name in ("data", "split", "device", "visible_units", "hidden_units"):
        if not isinstance(s[name], str):
            raise ValueError(f"{option(name)}: expected text, got {s[name]!r}")
    for name in ("visible_units", "hidden_units"):
        try:
            get_units(s[name])
        except ValueError as err:
            raise ValueError(f"{option(name)}: {str(err).split(': ', 1)[-1]}") from None
    _check_hidden(s)
    for name in ("k", "epochs", "batch_size", "sample_steps", "settle", "collect",
                 "monitor_every", "monitor_rows", "pretrain_epochs", "mf_steps"):
        v = s[name]
        if name == "batch_size" and v == "auto":  # resolved once the data are loaded
            continue
        if v is None and name in ("pretrain_epochs", "mf_steps"):  # not this kind's
            continue
        low = 0 if name in ("settle", "monitor_every", "mf_steps") else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            want = "a positive integer" if low else "an integer >= 0"
            raise ValueError(f"{option(name)}: expected {want}, got {v!r}")
    if s["chains"] is not None and (not isinstance(s["chains"], int) or
                                    isinstance(s["chains"], bool) or s["chains"] < 1):
        raise ValueError(f"--chains: expected a positive integer, got {s['chains']}")
    if s["replicas"] is not None and (not isinstance(s["replicas"], int) or
                                      isinstance(s["replicas"], bool) or s["replicas"] < 2):
        raise ValueError(f"--replicas: expected an integer >= 2 (beta = 1 and at least one "
                         f"hotter rung), got {s['replicas']}")
    c = s["centering"]
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or \
            not 0 <= c <= 1:
        raise ValueError(f"--centering: expected a rate in (0, 1] (or --no-centering), got "
                         f"{c!r}")
    if s["features"] not in (None, "mean", "sample"):
        raise ValueError(f"--features: expected mean or sample, got {s['features']!r}")
    for name in ("lr", "momentum", "weight_decay", "pretrain_lr"):
        v = s[name]
        if v is None and name == "pretrain_lr":
            continue
        if name == "lr" and v == "auto" and s["model"] == "conv":  # resolved with the model
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                or v < 0:
            raise ValueError(f"{option(name)}: expected a finite number >= 0, got {v!r}")
    m = s["max_step_norm"]
    if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float))
                          or not math.isfinite(m) or m <= 0):
        raise ValueError(f"--max-step-norm: expected a finite number > 0, got {m!r}")
    if not s["momentum"] < 1:
        raise ValueError(f"--momentum: expected a value in [0, 1), got {s['momentum']}")
    checks.seed(s["seed"])
    _check_conv(s)
    kind = MODEL_KINDS[s["model"]]
    if s["method"] not in kind.methods:
        raise ValueError(f"--method: {kind.noun} trains with {_either(kind.methods)}, got "
                         f"{s['method']}")
    if kind.visible_units and get_units(s["visible_units"]).spec() not in kind.visible_units:
        raise ValueError(f"--visible-units: {kind.noun} takes {_either(kind.visible_units)} "
                         f"units, got {s['visible_units']}")
    if s["rule"] == "sign" and s["model"] != "bm":
        raise ValueError("--rule sign: the 1985 sign rule is for --model bm")
    if s["monitor_every"] and kind.monitor == "never":
        raise ValueError(f"--monitor-every: the held-out log-likelihood monitor serves --model "
                         f"rbm and small bm; measure a --model {s['model']} run with boltzkit "
                         f"evaluate RUN")
    if s["monitor_every"] and _held_out(s) is None:
        raise ValueError(f"--monitor-every: --data {s['data']} --split {s['split']} has no "
                         f"held-out split to monitor (training on the train split of "
                         f"{', '.join(HELD_OUT)} has one)")
    # options that would be ignored are refused: those of another kind of model (the kind's
    # row of MODEL_KINDS says which it takes), of another method, of another rule, of other
    # units
    defaults = dict(TRAIN_DEFAULTS, **MODEL_DEFAULTS[s["model"]])
    unused = {name: name not in kind.options for name in KIND_OPTIONS}
    unused.update({"chains": s["method"] == "cd",
                   "replicas": unused["replicas"] or s["method"] != "pt",
                   "momentum": s["rule"] == "sign",
                   "max_step_norm": s["rule"] == "sign" or s["model"] in ("conv", "dbm"),
                   "monitor_rows": s["monitor_every"] == 0,
                   "binarize": s["visible_units"].split(":")[0] not in ("bernoulli", "binary",
                                                                         "spin", "ising")})
    for name, ignored in unused.items():
        if ignored and s[name] != defaults[name]:
            why = f"not an option of --model {s['model']}" if name not in kind.options and \
                name in KIND_OPTIONS else \
                {"chains": "--method cd starts its chains at the data",
                 "replicas": "only --method pt has a temperature ladder",
                 "momentum": "--rule sign takes fixed steps",
                 "max_step_norm": "--rule sign takes fixed steps" if s["rule"] == "sign" else
                 "a conv RBM's filters are not columns of a weight matrix"
                 if s["model"] == "conv" else "a dbm's joint update has no column bound",
                 "binarize": f"{s['visible_units']} visible units take the data as they are",
                 "monitor_rows": "the held-out monitor is off for this run (--monitor-every 0)",
                 }[name]
            raise ValueError(f"{option(name)}: {why}")


def _check_hidden(s: dict) -> None:
    """--hidden: one number of units for the kinds with one hidden layer (an integer >= 0 for
    a bm, which may have none), a list of them, bottom first, for a dbn and a dbm (a single
    number there: one hidden layer; normalised to a list)."""
    h, model = s["hidden"], s["model"]

    def count(v, low=1):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if model in ("dbn", "dbm"):
        sizes = [h] if count(h, -math.inf) else h
        if not isinstance(sizes, list) or not 1 <= len(sizes) <= 63 or \
                not all(count(n) for n in sizes):
            raise ValueError(f"--hidden: expected N1,N2,... (positive integers, one per hidden "
                             f"layer, bottom first), got {_sizes_text(h)}")
        s["hidden"] = sizes
    elif "hidden" in MODEL_KINDS[model].options:
        if isinstance(h, list):
            raise ValueError(f"--hidden: {MODEL_KINDS[model].noun} has one hidden layer; "
                             f"expected one number, got {_sizes_text(h)} (layers of hidden "
                             f"units: --model dbn or dbm)")
        if not count(h, 0 if model == "bm" else 1):
            want = "an integer >= 0" if model == "bm" else "a positive integer"
            raise ValueError(f"--hidden: expected {want}, got {h!r}")


def _sizes_text(h) -> str:
    return ",".join(map(str, h)) if isinstance(h, list) else repr(h)


def _either(names) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _check_conv(s: dict) -> None:
    """The types of --model conv's settings (any model: a run.json may hold anything; whether
    they apply is :func:`_check`'s question)."""
    def integer(name, low, text):
        v = s[name]
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
            raise ValueError(f"--{name.replace('_', '-')}: expected {text}, got {v!r}")

    integer("filters", 1, "a positive integer")
    integer("pool", 1, "an integer >= 1 (1: no pooling)")
    if s["filter_size"] != "auto":
        integer("filter_size", 1, "a positive integer or auto")
    for name, top in (("sparsity", 1.0), ("sparsity_cost", math.inf)):
        v = s[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or
                              not math.isfinite(v) or not 0 <= v < top):
            want = "a target in [0, 1) (0: off)" if name == "sparsity" else \
                "a finite number >= 0"
            raise ValueError(f"--{name.replace('_', '-')}: expected {want}, got {v!r}")
    shape = s["image_shape"]
    if isinstance(shape, str):  # as given on the command line: H,W or C,H,W
        try:
            shape = s["image_shape"] = [int(part) for part in shape.split(",")]
        except ValueError:
            raise ValueError(f"--image-shape: expected H,W or C,H,W (positive integers), got "
                             f"{shape[:40]!r}") from None
    if shape is not None and (not isinstance(shape, list) or len(shape) not in (2, 3) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)):
        raise ValueError(f"--image-shape: expected H,W or C,H,W (positive integers), got "
                         f"{shape!r}")


# -- the run folder --------------------------------------------------------------------------
def _default_folder(s: dict) -> Path:
    name = Path(s["data"]).stem if s["data"] not in ("digits", "mnist", "binarized-mnist") \
        else s["data"]
    return Path("runs") / f"{s['model']}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _holds_run(folder: Path) -> bool:
    return any((folder / f).exists() for f in (RUN_FILE, "model.safetensors",
                                               "train_state.safetensors"))


def _write_json(path: Path, obj) -> None:
    from ..io import atomic_write

    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n")


def _read_run(folder: Path) -> dict:
    path = folder / RUN_FILE
    if not folder.is_dir():
        raise ValueError(f"--resume: {folder} is not a folder")
    if not path.is_file():
        raise ValueError(f"--resume: {folder} is not a boltzkit run folder (no {RUN_FILE})")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as err:
        raise ValueError(f"--resume: {path} cannot be read ({type(err).__name__})") from None
    settings = record.get("settings") if isinstance(record, dict) else None
    if not isinstance(settings, dict) or set(settings) - set(TRAIN_DEFAULTS):
        raise ValueError(f"--resume: {path} does not hold a run's settings")
    return settings


class _RunFile(Callback):
    """Writes run.json (the run's settings) when training starts."""

    def __init__(self, path, settings):
        self.path, self.settings = path, settings

    def on_fit_start(self, state):
        _write_json(self.path, {"settings": self.settings})


def _tagged(history, stage: Optional[str]) -> list:
    """A stage's per-epoch records, each with ``"stage": stage`` (as they are for None)."""
    return list(history) if stage is None else [dict(h, stage=stage) for h in history]


def _stage_names(folder: Path) -> list:
    """The stage subfolders a dbn or dbm run has in ``folder``, in training order."""
    def order(p):
        return (1, 0) if p.name == "joint" else (0, int(p.name.split("-")[1]))

    try:
        found = [p for p in folder.iterdir() if p.is_dir() and (
            p.name == "joint" or (p.name.startswith("layer-") and p.name[6:].isdigit()))]
    except OSError:
        return []
    return [p.name for p in sorted(found, key=order)]


def _remove_run_files(folder: Path) -> None:
    """Remove a run's files from ``folder`` (and its stages' from their subfolders, which go
    when empty); nothing else."""
    for stage in _stage_names(folder):
        for name in RUN_FILES:
            (folder / stage / name).unlink(missing_ok=True)
        try:
            (folder / stage).rmdir()
        except OSError:
            pass
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)


def _stage_status(args, given: dict, where: Path, stage, folder: Path, staged: bool):
    """``(resume, finished, started)`` of a stage of a run: the state file to continue from (or
    None), and the lines to say when it has finished or is taken up (None: nothing to say; a
    finished stage of a dbn or dbm is kept as it is). One line naming --epochs when the run
    has trained further than it asks."""
    from ..training import TrainState

    if args.resume is None:
        return None, None, None
    state_file = where / "train_state.safetensors"
    if not state_file.exists():
        return None, None, None if staged else \
            f"resuming {folder}: no epoch had finished, starting from the beginning"
    progress = TrainState.read_metadata(state_file)["progress"]
    done = (progress.get("epoch"), progress.get("batch"))
    label = "" if stage.name is None else f" ({stage.name})"
    if "epochs" in given and stage.epochs_option == "epochs" and (
            given["epochs"] < done[0] or (given["epochs"] == done[0] and done[1])):
        raise ValueError(f"--epochs: the run has trained {done[0]} epochs"
                         f"{f' and {done[1]} batches' if done[1] else ''}{label}; "
                         f"expected more, got {given['epochs']}")
    if done[0] >= stage.epochs and not done[1]:
        return None, (f"{folder}: the run has finished its {done[0]} epochs; train it "
                      f"further with --resume {folder} --epochs N (N > {done[0]})"), None
    at = f"epoch {done[0]}" + (f", batch {done[1]}" if done[1] else "")
    return state_file, None, f"resuming {folder} at {at} of {stage.epochs}{label}"


def _remove_run(folder: Path, created: bool) -> None:
    """Remove the files a run that produced nothing wrote (and its folder, if this run made
    it)."""
    _remove_run_files(folder)
    if created:
        try:
            folder.rmdir()
        except OSError:
            pass


class _MetricsWriter(Callback):
    """Rewrites metrics.json after every epoch (atomically), so a killed run keeps its figures.
    In a run of stages, ``before`` holds the records of the stages that have finished and every
    record of this one gets ``"stage": stage``."""

    def __init__(self, path, settings, before=(), stage: Optional[str] = None):
        self.path, self.settings, self.before, self.stage = path, settings, before, stage

    def on_epoch_end(self, state):
        _write_json(self.path, {"settings": self.settings,
                                "epochs": [*self.before, *_tagged(state.history, self.stage)]})

    def on_fit_end(self, state):
        if state.history:
            self.on_epoch_end(state)


# -- building the run ------------------------------------------------------------------------
def _build(s: dict, device: torch.device):
    """Data, preparation, model, estimator and update rule of a run (deterministic given the
    settings: a resumed run rebuilds the same ones). What depends on the kind of model is its
    row of :data:`MODEL_KINDS`."""
    from ..training import SGD, SignStep

    kind = MODEL_KINDS[s["model"]]
    ds, shape = kind.load(s)
    gen = torch.Generator().manual_seed(s["seed"])
    prep = kind.prepare(s, ds, shape)
    x = prep.transform(ds.data, gen, name="--data")
    if s["batch_size"] == "auto":  # recorded in run.json as the number it became
        s["batch_size"] = 100 if x.shape[0] >= 10000 else 20
    model, estimator, x = kind.build(s, x, gen, shape, device)
    update = SignStep(s["weight_decay"]) if s["rule"] == "sign" else _sgd(s, model)
    model.to(device)
    x = x.to(device) if estimator is None else estimator.check_data(model, x)
    if device.type != "cpu":
        gen = torch.Generator(device=device).manual_seed(s["seed"])
    return ds, prep, x, model, estimator, update, gen


def _sgd(s: dict, model):
    """The run's SGD rule for ``model`` (a learned variance moves at its own rate)."""
    from ..training import SGD

    return SGD(s["momentum"], s["weight_decay"],
               lr_scale={"visible_log_variance": VARIANCE_LR_SCALE}
               if hasattr(model, "visible_log_variance") else None,
               max_step_norm=s["max_step_norm"])


# -- the stages of a run ---------------------------------------------------------------------
@dataclasses.dataclass
class Stage:
    """One call of :func:`boltzkit.training.fit` in a run. A run of an rbm, a bm or a conv RBM
    is one stage whose files are the run folder's own (``name`` None); a dbn or a dbm trains
    one stage per layer (``layer-1``, ``layer-2``, ...; a dbm then ``joint``), each in the
    subfolder of its name, and the run folder's model.safetensors is written when the last one
    ends. ``data_visible``: the stage's model has the run's visible layer (its model file gets
    the preparation record); ``source``: what it trains on, in words."""

    name: Optional[str]
    title: str
    model: object
    data: object
    estimator: object
    update: object
    epochs: int
    lr: float
    lr_schedule: str
    generator: object
    init_visible_bias: bool = True
    model_file: bool = True
    data_visible: bool = True
    epochs_option: str = "epochs"  # the setting its epochs come from (what --resume may extend)
    source: str = "{data}"  # what it trains on, for the start line ({data}: the data set)


def _stage_generator(s: dict, *key: int) -> torch.Generator:
    """A generator of its own for a stage of a run (NumPy's SeedSequence mixes the seed and
    ``key``), so that any stage can be taken up again without the ones before it."""
    import numpy as np

    hi, lo = np.random.SeedSequence([s["seed"], *key]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(((int(hi) << 32) | int(lo)) >> 1)


def _one_stage(s, model, estimator, update, x, gen):
    yield Stage(None, "", model, x, estimator, update, s["epochs"], s["lr"], s["lr_schedule"],
                gen)


def _on_device(gen: torch.Generator, device) -> torch.Generator:
    """``gen`` itself on the CPU, else a generator on ``device`` with its seed."""
    if device.type == "cpu":
        return gen
    return torch.Generator(device=device).manual_seed(gen.initial_seed())


_FEATURES = {"mean": "means", "sample": "samples"}


def _stages_dbn(s, model, estimator, update, x, gen):
    from ..training.greedy import dbn_stages

    device = x.device
    plan = dbn_stages(model, x, features=s["features"],
                      generator=lambda l: _on_device(_stage_generator(s, 2, l), device))
    for st in plan:
        g = _stage_generator(s, 3, st.index)
        yield Stage(st.name, f"a {_describe_rbm(st.model)} (layer {st.index + 1} of "
                             f"{model.n_rbms})", st.model, st.data,
                    _rbm_estimator(s), _sgd(s, st.model), s["epochs"], s["lr"],
                    s["lr_schedule"], _on_device(g, device),
                    init_visible_bias=st.init_visible_bias, data_visible=st.index == 0,
                    source="{data}" if st.index == 0 else
                    f"layer-{st.index}'s hidden {_FEATURES[s['features']]}")


def _stages_dbm(s, model, estimator, update, x, gen):
    from ..training import CD, SGD
    from ..training.greedy import DBMPretraining

    device = x.device
    plan = DBMPretraining(x, model.sizes, features=s["features"],
                          generator=lambda l: _on_device(_stage_generator(s, 2, l), device))
    for st in plan:
        g = _stage_generator(s, 3, st.index)
        doubled = "" if model.n_layers == 2 else \
            " with its visible layer doubled" if st.index == 0 else \
            " with its hidden layer doubled" if st.index == model.n_layers - 2 else \
            ", its weights halved into the DBM,"
        yield Stage(st.name, f"a {model.sizes[st.index]}x{model.sizes[st.index + 1]} RBM"
                             f"{doubled} (pre-training module {st.index + 1} of "
                             f"{model.n_layers - 1})", st.model, st.data, CD(1),
                    SGD(s["momentum"], s["weight_decay"]), s["pretrain_epochs"],
                    s["pretrain_lr"], "constant", _on_device(g, device),
                    model_file=False, data_visible=False, epochs_option="pretrain_epochs",
                    source="{data} (twice)" if st.index == 0 else
                    f"layer-{st.index}'s hidden {_FEATURES[s['features']]}")
    with torch.no_grad():
        for name, value in plan.model.state_dict().items():
            model.get_parameter(name).copy_(value)
    g = _stage_generator(s, 3, model.n_layers - 1)
    # (the pre-trained visible biases are kept: fit's base-rate start would undo them)
    yield Stage("joint", f"the {_describe_dbm(model)}, all layers jointly", model, x,
                estimator, update,
                s["epochs"], s["lr"], s["lr_schedule"], _on_device(g, device),
                init_visible_bias=False)


# -- the kinds of model ----------------------------------------------------------------------
def _load_rows(s: dict):
    from .. import data as bdata

    return bdata.load_dataset(s["data"], s["split"]), None


def _fit_preparation(s: dict, ds, shape):
    from ..data import Preparation

    return Preparation.fit(ds.data, s["visible_units"], s["binarize"], name="--data",
                           whiten=str(s["data"]).startswith("patches"))


def _chains_memory(s: dict, width: int, device) -> None:
    replicas = (s["replicas"] or 10) if s["method"] == "pt" else 1
    if s["chains"] or replicas > 1:
        chains = (s["chains"] or 100) * replicas
        checks.memory(4 * 4 * chains * width, f"--chains {s['chains'] or 100}"
                      + (f" x --replicas {replicas}" if replicas > 1 else "") + ": the chains",
                      device)


def _build_rbm(s: dict, x, gen, shape, device):
    from ..models import RBM

    # parameters, momentum, gradient, two file copies
    checks.memory(5 * 4 * x.shape[1] * s["hidden"] + 4 * x.numel(),
                  f"--hidden {s['hidden']}: the model's tensors", device)
    _chains_memory(s, x.shape[1] + s["hidden"], device)
    model = RBM(x.shape[1], s["hidden"], s["visible_units"], s["hidden_units"], generator=gen)
    return model, _rbm_estimator(s), x


def _rbm_estimator(s: dict):
    """The estimator an rbm (and every layer of a dbn) trains with."""
    from ..training import CD, PCD, PT, Centered

    estimator = CD(s["k"]) if s["method"] == "cd" else PCD(s["k"], s["chains"]) \
        if s["method"] == "pcd" else PT(s["k"], s["chains"], s["replicas"])
    if s["centering"]:
        estimator = Centered(estimator, rate=s["centering"])
    return estimator


def _weights_memory(s: dict, sizes, x, device) -> None:
    """A stack's parameters, momentum, gradient and two file copies, and one layer's
    features, before any is made."""
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    checks.memory(5 * 4 * n_weights + 4 * x.shape[0] * (x.shape[1] + max(sizes[1:])),
                  f"--hidden {_sizes_text(s['hidden'])}: the model's tensors", device)
    _chains_memory(s, sum(sizes) if s["model"] == "dbm" else max(
        a + b for a, b in zip(sizes[:-1], sizes[1:])), device)


def _build_dbn(s: dict, x, gen, shape, device):
    from ..models import DBN

    sizes = [x.shape[1], *s["hidden"]]
    _weights_memory(s, sizes, x, device)
    try:
        model = DBN(sizes, s["visible_units"], generator=gen)
    except ValueError as err:
        raise ValueError(f"--visible-units: {str(err).split(': ', 1)[-1]}") from None
    return model, None, x


def _build_dbm(s: dict, x, gen, shape, device):
    from ..models import DBM
    from ..training.estimators import MeanFieldPCD

    sizes = [x.shape[1], *s["hidden"]]
    _weights_memory(s, sizes, x, device)
    model = DBM(sizes, generator=gen)
    return model, MeanFieldPCD(s["k"], s["chains"], mf_steps=s["mf_steps"]), x


def _build_bm(s: dict, x, gen, shape, device):
    from ..models import BoltzmannMachine
    from ..training import TwoPhase

    n = x.shape[1] + s["hidden"]  # a bm's weights are (n, n)
    checks.memory(5 * 4 * n * n + 4 * x.numel(), f"--hidden {s['hidden']}: the model's tensors",
                  device)
    _chains_memory(s, n, device)
    model = BoltzmannMachine(x.shape[1], s["hidden"], s["visible_units"], init_std=0.01,
                             generator=gen)
    estimator = TwoPhase(positive_settle=s["settle"], positive_collect=s["collect"],
                         negative_settle=s["settle"], negative_collect=s["collect"],
                         n_chains=s["chains"])
    return model, estimator, x


def auto_filter_size(height: int, width: int, pool: int) -> int:
    """``--filter-size auto``: the size nearest a third of the smaller image side (at least 2;
    the larger of two equally near) whose hidden maps, ``side - size + 1``, divide by
    ``pool``: 9 for 28 x 28 images and pool 2, 3 for 8 x 8, 5 for 14 x 14. A ValueError naming
    --pool when no size fits."""
    side = min(height, width)
    want = max(2, round(side / 3))
    for size in sorted(range(1, side + 1), key=lambda k: (abs(k - want), -k)):
        if (height - size + 1) % pool == 0 and (width - size + 1) % pool == 0:
            return size
    raise ValueError(f"--pool: no filter size gives hidden maps of {height} x {width} images "
                     f"that divide by {pool}")


def load_images(spec, split, image_shape=None, option: str = "--data",
                shape_option: str = "--image-shape"):
    """A data set of images for a ConvRBM: ``(Dataset of rows (n, C*H*W), (C, H, W))``. The
    named data sets are one-channel images of their own shape; a ``.npy`` array ``(n, C, H,
    W)`` gives its shape (its rows are flattened, every check of
    :func:`boltzkit.data.load_dataset` made); other files are rows, shaped by
    ``image_shape`` (``[H, W]`` or ``[C, H, W]``) or, without it, square one-channel images.
    One ValueError line when the shape does not fit the rows (naming ``shape_option``, the
    option or model the shape came from)."""
    import numpy as np

    from .. import data as bdata
    from ..data import loaders

    path = Path(str(spec)).expanduser()
    given = None if image_shape is None else tuple(image_shape)
    if given is not None and len(given) == 2:
        given = (1, *given)
    if str(spec).lower().endswith(".npy") and path.is_file():
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                dims = len(read(f)[0])
        except (ValueError, OSError, EOFError, SyntaxError):
            dims = 2  # load_dataset says what is wrong with the file
        if dims == 4:
            arr = loaders._read_npy(path)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"data file: {path}: expected numbers, got dtype {arr.dtype}")
            own = tuple(int(n) for n in arr.shape[1:])
            if given is not None and given != own:
                raise ValueError(f"{shape_option}: {path} holds images of shape {own}, "
                                 f"expected {given}")
            data = bdata.as_tensor(arr.reshape(arr.shape[0], -1), name=f"data file {path}")
            return bdata.Dataset(data, None, None, path.name), own
    ds = bdata.load_dataset(spec, split)
    width = ds.data.shape[1]
    if given is not None:
        if math.prod(given) != width:
            raise ValueError(f"{shape_option}: {' x '.join(map(str, given))} = "
                             f"{math.prod(given)} pixels, the rows of {ds.name} have {width}")
        return ds, given
    if ds.image_shape is None:
        raise ValueError(f"{option}: the {width} features of {ds.name} are not square images; "
                         f"give --image-shape H,W or C,H,W")
    return ds, (1, *ds.image_shape)


def _load_images(s: dict):
    return load_images(s["data"], s["split"], s["image_shape"])


def _conv_preparation(s: dict, ds, shape):
    """Bernoulli visible units: as for an RBM. Gaussian ones: standardised per channel (one
    mean and one std over the channel's pixels and images, repeated for every pixel), so that
    every position is treated alike, as the shared filters need (per-pixel statistics would
    blow up the always-blank border of MNIST); patches: ZCA-whitened as for an RBM."""
    from ..data import Preparation

    if get_units(s["visible_units"]).spec() != "gaussian" or \
            str(s["data"]).startswith("patches"):
        return _fit_preparation(s, ds, shape)
    Preparation.fit(ds.data, "gaussian", name="--data")  # the data's checks
    c = shape[0]
    x = ds.data.double().reshape(ds.data.shape[0], c, -1)
    mean = x.mean((0, 2))
    std = x.std((0, 2)).clamp(min=1e-6) if x.numel() > c else torch.ones(c, dtype=x.dtype)
    per_pixel = x.shape[2]
    return Preparation("gaussian", n_features=ds.data.shape[1],
                       mean=mean.repeat_interleave(per_pixel).tolist(),
                       std=std.repeat_interleave(per_pixel).tolist())


def _build_conv(s: dict, x, gen, shape, device):
    from ..models import ConvRBM
    from ..training import CD, PCD
    from ..training.estimators import Sparsity

    c, height, width = shape
    if s["filter_size"] == "auto":  # recorded in run.json as the number it became
        s["filter_size"] = auto_filter_size(height, width, s["pool"])
    size, pool, k = s["filter_size"], s["pool"], s["filters"]
    if size > min(height, width):
        raise ValueError(f"--filter-size: expected at most the images' {height} x {width}, "
                         f"got {size}")
    maps = (height - size + 1, width - size + 1)
    if maps[0] % pool or maps[1] % pool:
        raise ValueError(f"--pool: {pool} does not divide the {maps[0]} x {maps[1]} hidden maps "
                         f"of {size} x {size} filters on {height} x {width} images (--filter-size "
                         f"{auto_filter_size(height, width, pool)} fits)")
    n_hidden = k * maps[0] * maps[1]
    if s["lr"] == "auto":  # recorded in run.json as the number it became
        s["lr"] = CONV_LR_PER_MAP / (maps[0] * maps[1]) * (
            CONV_GAUSSIAN_LR_SCALE if get_units(s["visible_units"]).spec() == "gaussian" else 1)
    checks.memory(5 * 4 * k * c * size * size + 4 * x.numel(),
                  f"--filters {k}: the model's tensors", device)
    _chains_memory(s, c * height * width + n_hidden, device)
    model = ConvRBM(shape, k, size, pool=None if pool == 1 else pool,
                    visible=get_units(s["visible_units"]).spec(), generator=gen)
    estimator = CD(s["k"]) if s["method"] == "cd" else PCD(s["k"], s["chains"])
    if s["sparsity"]:
        estimator = Sparsity(estimator, target=s["sparsity"], cost=s["sparsity_cost"])
    return model, estimator, x.reshape(-1, *shape)


def _describe_rbm(model) -> str:
    return (f"{model.n_visible}x{model.n_hidden} {model.visible.spec()}-{model.hidden.spec()} "
            f"RBM")


def _describe_bm(model) -> str:
    return f"{model.n_visible}+{model.n_hidden} unit {model.units.spec()} Boltzmann machine"


def _describe_conv(model) -> str:
    c, h, w = model.image_shape
    kh, kw = model.filter_shape
    pool = f", {model.pool}x{model.pool} probabilistic max-pooling" if model.pool else ""
    return (f"convolutional RBM ({model.n_filters} filters of {kh}x{kw} on {c}x{h}x{w} "
            f"{model.visible.spec()} images{pool})")


def _describe_dbn(model) -> str:
    return f"{'-'.join(map(str, model.sizes))} {model.visible.spec()} DBN"


def _describe_dbm(model) -> str:
    return f"{'-'.join(map(str, model.sizes))} DBM"


def _pictures_deep(m, s, meta, prep, folder: Path, gen) -> None:
    """A dbn's or dbm's filters.png (the bottom layer's weights) and samples.png (a dbn: Gibbs
    in the top RBM and a pass down; a dbm: odd/even Gibbs sweeps from random states; E[v | the
    layer above] shown)."""
    from .. import plots
    from ..models import DBN
    from .rbm import draw_deep, image_shape

    shape = image_shape(meta, m.n_visible)
    plots.filters(m.weight_0.detach(), shape, folder / "filters.png",
                  title=f"bottom-layer filters of {m.sizes[1]} hidden units")
    steps = s["sample_steps"]
    _, shown = draw_deep(m, 100, steps, gen)
    what = f"Gibbs samples of the top RBM after {steps} steps, passed down" \
        if isinstance(m, DBN) else f"odd/even Gibbs samples after {steps} sweeps"
    plots.sample_grid(prep.inverse(shown), shape, folder / "samples.png",
                      title=f"{what} (E[v | h_1])")


def _pictures_rbm(m, s, meta, prep, folder: Path, gen) -> None:
    from .. import plots
    from .rbm import draw_samples, image_shape

    shape = image_shape(meta, m.n_visible)
    plots.filters(m.weight.detach(), shape, folder / "filters.png",
                  title=f"filters of {m.n_hidden} hidden units")
    v, v_mean = draw_samples(m, 100, s["sample_steps"], gen)
    shown = v_mean if m.visible.name in ("bernoulli", "gaussian") else v
    plots.sample_grid(prep.inverse(shown), shape, folder / "samples.png",
                      title=f"Gibbs samples after {s['sample_steps']} steps (E[v|h])")


def _pictures_bm(m, s, meta, prep, folder: Path, gen) -> None:
    from .. import plots
    from ..experiments.bm_mnist import draw_samples as bm_samples
    from .rbm import image_shape

    shape = image_shape(meta, m.n_visible)
    if m.n_hidden:
        w = m.weight.detach()[: m.n_visible, m.n_visible:]
        plots.filters(w, shape, folder / "filters.png",
                      title=f"visible-hidden weights of {m.n_hidden} hidden units")
    shown = bm_samples(m, 100, max(s["sample_steps"], 50), seed=s["seed"] + 1)
    plots.sample_grid(prep.inverse(shown), shape, folder / "samples.png",
                      title=f"samples after {s['sample_steps']} sweeps")


def _pictures_conv(m, s, meta, prep, folder: Path, gen) -> None:
    from .. import plots
    from .rbm import draw_samples

    c, h, w = m.image_shape
    kh, kw = m.filter_shape
    plots.conv_filters(m.weight.detach(), folder / "filters.png",
                       title=f"{m.n_filters} filters of {kh}x{kw}")
    _, v_mean = draw_samples(m, 100, s["sample_steps"], gen)
    plots.sample_grid(prep.inverse(v_mean.reshape(v_mean.shape[0], -1)), (c * h, w),
                      folder / "samples.png",
                      title=f"Gibbs samples after {s['sample_steps']} steps (E[v|h])")


class _ConvFigures(Callback):
    """After every epoch: ``recon_error`` (mean squared difference per pixel between the first
    ``rows`` training images and E[v | E[h | v]]) and ``hidden_activity`` (their mean E[h | v],
    what --sparsity aims at) in the history. Draws no random numbers."""

    def __init__(self, data, rows: int = 1000):
        self.data = data[:rows]

    def on_epoch_end(self, state):
        model = state.model
        with torch.no_grad():
            x = self.data.to(device=model.weight.device, dtype=model.weight.dtype)
            h = model.hidden_mean(x, check=False)
            rec = model.visible_mean(h, check=False)
            state.history[-1]["recon_error"] = (x - rec).double().pow(2).mean().item()
            state.history[-1]["hidden_activity"] = h.double().mean().item()


@dataclasses.dataclass(frozen=True)
class ModelKind:
    """One kind of model ``boltzkit train`` trains: a row of :data:`MODEL_KINDS`.

    help : the --model help text; noun : how messages name it ("an rbm");
    methods : the --method values it takes; visible_units : the unit families its visible
    layer takes (empty: any); options : the settings of :data:`KIND_OPTIONS` it takes (the
    others are refused with one line); monitor : the held-out log-likelihood monitor is on by
    ``"default"``, on when ``"asked"`` for, or ``"never"`` available;
    load(s) -> (Dataset, image shape or None); prepare(s, ds, shape) -> Preparation;
    build(s, x, generator, shape, device) -> (model, estimator, training data);
    work(s, x, model) -> multiply-adds of one batch's product (the --threads rule);
    describe(model) -> text; pictures(model, s, meta, prep, folder, generator): filters.png
    and samples.png; callbacks(s, x) -> the kind's own per-epoch figures;
    stages(s, model, estimator, update, x, generator) -> the :class:`Stage` s of a run, in
    order (default: one, the model itself)."""

    help: str
    noun: str
    methods: tuple
    visible_units: tuple
    options: frozenset
    monitor: str
    load: object
    prepare: object
    build: object
    work: object
    describe: object
    pictures: object
    callbacks: object = lambda s, x: []
    stages: object = _one_stage


_DEEP_OPTIONS = frozenset({"hidden", "k", "features"})
MODEL_KINDS = {
    "rbm": ModelKind(
        help="a restricted Boltzmann machine", noun="an rbm", methods=("cd", "pcd", "pt"),
        visible_units=(), options=frozenset({"hidden", "hidden_units", "k", "replicas",
                                             "centering"}),
        monitor="default", load=_load_rows, prepare=_fit_preparation, build=_build_rbm,
        work=lambda s, x, m: s["batch_size"] * x.shape[1] * s["hidden"],
        describe=_describe_rbm, pictures=_pictures_rbm),
    "bm": ModelKind(
        help="a fully connected Boltzmann machine with binary units", noun="a bm",
        methods=("two-phase",), visible_units=("bernoulli", "spin"),
        options=frozenset({"hidden", "settle", "collect"}), monitor="asked", load=_load_rows,
        prepare=_fit_preparation, build=_build_bm,
        work=lambda s, x, m: s["batch_size"] * x.shape[1] * (x.shape[1] + s["hidden"]),
        describe=_describe_bm, pictures=_pictures_bm),
    "conv": ModelKind(
        help="a convolutional RBM with probabilistic max-pooling, on images", noun="a conv RBM",
        methods=("cd", "pcd"), visible_units=("bernoulli", "gaussian"),
        options=frozenset({"k", "filters", "filter_size", "pool", "sparsity", "sparsity_cost",
                           "image_shape"}),
        monitor="never", load=_load_images, prepare=_conv_preparation, build=_build_conv,
        work=lambda s, x, m: (s["batch_size"] * m.n_hidden * m.image_shape[0]
                              * math.prod(m.filter_shape)),
        describe=_describe_conv, pictures=_pictures_conv,
        callbacks=lambda s, x: [_ConvFigures(x)]),
    "dbn": ModelKind(
        help="a deep belief net: a stack of RBMs trained greedily, one layer at a time",
        noun="a dbn", methods=("cd", "pcd", "pt"), visible_units=(),
        options=_DEEP_OPTIONS | {"replicas", "centering"}, monitor="never", load=_load_rows,
        prepare=_fit_preparation, build=_build_dbn,
        work=lambda s, x, m: s["batch_size"] * max(a * b for a, b in zip(m.sizes, m.sizes[1:])),
        describe=_describe_dbn, pictures=_pictures_deep, stages=_stages_dbn),
    "dbm": ModelKind(
        help="a deep Boltzmann machine with binary units: greedy pre-training with doubled "
             "inputs, then joint training (mean-field positive phase, persistent chains)",
        noun="a dbm", methods=("pcd",), visible_units=("bernoulli",),
        options=_DEEP_OPTIONS | {"pretrain_epochs", "pretrain_lr", "mf_steps"},
        monitor="never", load=_load_rows, prepare=_fit_preparation, build=_build_dbm,
        work=lambda s, x, m: s["batch_size"] * sum(a * b for a, b in zip(m.sizes, m.sizes[1:])),
        describe=_describe_dbm, pictures=_pictures_deep, stages=_stages_dbm),
}


def _monitor(s: dict, prep, x, model) -> list:
    """The held-out log-likelihood monitor of a run (``[]`` when ``--monitor-every`` is 0): the
    held-out split, prepared as the training data were (its own generator, so that the
    training's random numbers stay as they were), the AIS base rates from the training data."""
    import numpy as np

    from .. import data as bdata
    from ..training import LikelihoodMonitor

    if not s["monitor_every"]:
        return []
    split = _held_out(s)
    held = bdata.load_dataset(s["data"], split).data
    seed = int(np.random.SeedSequence([s["seed"], 1]).generate_state(1, np.uint32)[0])
    rows = prep.transform(held[: s["monitor_rows"]], torch.Generator().manual_seed(seed),
                          for_likelihood=True, name=f"--data ({split} split)")
    monitor = LikelihoodMonitor(rows, every=s["monitor_every"], rows=s["monitor_rows"],
                                base=x, seed=s["seed"])
    try:
        monitor.check_model(model)
    except ValueError as err:
        raise ValueError(f"--monitor-every: {str(err).split(': ', 1)[-1]}") from None
    return [monitor]


def _need_bytes(model, n_chains: int) -> int:
    """About what the run's files take: the model file and the state file (parameters,
    momentum buffers, chains), each once more while its next version is written."""
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    width = (getattr(model, "n_visible", 0) + getattr(model, "n_hidden", 0)) or \
        sum(p.shape[-1] for p in model.parameters() if p.dim() == 1) or 1
    return 2 * (3 * params + n_chains * 2 * width * 4) + 2 ** 20


# -- the command -----------------------------------------------------------------------------
def train_command(args) -> int:
    """The command; under torchrun, in each of its processes (see the module docstring)."""
    from .. import distributed

    group = None
    if distributed.launched():
        timeout = distributed.DEFAULT_TIMEOUT if args.dist_timeout is None else args.dist_timeout
        if not (isinstance(timeout, float) and math.isfinite(timeout) and timeout > 0):
            if os.environ.get("RANK", "0") != "0":
                return 2  # process 0 says it
            raise ValueError(f"--dist-timeout: expected a number of seconds > 0, got {timeout}")
        try:
            group = distributed.init(timeout=timeout)
        except distributed.ProcessGroupError as err:
            print(f"boltzkit: error: {err}", file=sys.stderr)
            return 1
    try:
        return _command(args, group)
    except distributed.PeerSetupError:
        return 2  # the process that could not start said why
    except distributed.ProcessGroupError as err:
        print(f"boltzkit: error: {err}", file=sys.stderr)
        return 1
    except BaseException as err:
        said = isinstance(err, (ValueError, FileNotFoundError, FloatingPointError, OSError))
        if group is not None and not group.agreed:
            # a setup that failed here: every process learns it, the first one that failed says
            # why and the others stop quietly
            first = group.rank
            with contextlib.suppress(distributed.ProcessGroupError):
                first = group.agree(failed=True)
            if said and first != group.rank:
                return 2
        elif group is not None and not group.leader and said:
            return 2  # the same error in every process (fit's checks): process 0 says it
        raise
    finally:
        if group is not None:
            group.close()


def _command(args, group) -> int:
    given = _given(args)
    if args.resume is not None:
        if args.out is not None or args.overwrite:
            raise ValueError("--resume: the run folder is RUN itself; --out and --overwrite "
                             "do not apply")
        extra = sorted(set(given) - set(RESUME_OPTIONS))
        if extra:
            raise ValueError(f"--resume: the run's settings are in {Path(args.resume) / RUN_FILE}"
                             f"; only --epochs may change, got --{extra[0].replace('_', '-')}")
        folder = Path(args.resume)
        stored = _read_run(folder)
        if stored.get("model") == "dbn" and "epochs" in given and \
                given["epochs"] != stored.get("epochs", TRAIN_DEFAULTS["epochs"]):
            raise ValueError(f"--epochs: a dbn trains every layer for --epochs "
                             f"({stored.get('epochs', TRAIN_DEFAULTS['epochs'])} in this run), "
                             f"and a layer trained further would change the ones above it; "
                             f"start a new run instead")
        s = _resolve(dict(stored, **{k: given[k] for k in given if k == "epochs"}))
    else:
        s = _resolve(given)
        folder = Path(args.out) if args.out else _default_folder(s)
    _check(s)
    if group is not None and MODEL_KINDS[s["model"]].stages is not _one_stage:
        raise ValueError(f"--model {s['model']}: trains in one process (its layers one after "
                         f"another); start it without torchrun")
    device = checks.device(s["device"])
    if group is not None and device.type == "cuda":  # each process takes its own GPU
        if device.index is not None:
            raise ValueError(f"--device: under torchrun each process takes the GPU of its local "
                             f"rank; expected --device cuda, got {s['device']}")
        device = torch.device("cuda", group.local_rank)
    option = "--resume" if args.resume is not None else "--out"
    run = {"created": False, "empty": False}
    try:
        return _train(args, given, s, folder, device, option, run, group)
    except FloatingPointError:
        if run["empty"]:  # diverged before any epoch finished: nothing to keep
            _remove_run(folder, run["created"])
        raise
    except ProcessGroupError as err:
        if isinstance(err, PeerSetupError):
            raise
        raise ProcessGroupError(f"{err}; {_kept(folder)}") from None


def _kept(folder: Path) -> str:
    """What a run folder holds after a failure, and how to continue it (distributed runs)."""
    from ..training import TrainState

    path = folder / "train_state.safetensors"
    try:
        progress = TrainState.read_metadata(path)["progress"]
    except ValueError:
        return f"{folder} holds no checkpoint (start the run again)"
    where = f"epoch {progress.get('epoch')}" + (f", batch {progress.get('batch')}"
                                                 if progress.get("batch") else "")
    n = os.environ.get("WORLD_SIZE", "N")
    return (f"{folder} keeps its last checkpoint ({where}); continue with: torchrun "
            f"--nproc-per-node {n} -m boltzkit train --resume {folder}")


def _train(args, given, s, folder, device, option, run: dict, group=None) -> int:
    """The run itself, with its folder locked; ``run`` says what a failure should clean up.
    Under torchrun (``group``) process 0 alone locks, checks and writes the folder and prints;
    every process reads it (a resume), and all agree that they could start before training."""
    from ..distributed import rank_zero
    from ..io import FolderLock
    from ..training import Checkpoint, TrainState, fit

    lead = group is None or group.leader
    say = print if lead else (lambda *a, **k: None)
    with contextlib.ExitStack() as held:
        # a folder that exists is locked first: a live run there is named as such, before any
        # data are loaded
        try:
            locked = folder.is_dir()
        except OSError as err:  # a name the file system refuses (too long, say)
            raise ValueError(f"{option}: cannot use {folder} ({err.strerror or err})") from None
        if lead:
            if locked:
                held.enter_context(FolderLock(folder, what=option))
            if args.resume is None and _holds_run(folder) and not args.overwrite:
                raise ValueError(f"--out: {folder} holds a run already; continue it with "
                                 f"--resume {folder}, or start over with --overwrite")
            checks.output_folder(folder, option)
        ds, prep, x, model, estimator, update, gen = _build(s, device)
        kind = MODEL_KINDS[s["model"]]
        # the work of one product: a batch against the weights (a bm's are (n, n))
        apply_threads(args, kind.work(s, x, model), device)
        if group is not None:  # what fit would refuse, before the processes agree to start
            group.check_batch_size(s["batch_size"])
            group.local_estimator(estimator, x)
        monitor = _monitor(s, prep, x, model)
        replicas = (s["replicas"] or 10) if s["method"] == "pt" else 1
        if lead:
            checks.free_space(folder, _need_bytes(model, (s["chains"] or 100) * replicas),
                              option)
            run["created"] = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            if not locked:
                held.enter_context(FolderLock(folder, what=option))
        staged = kind.stages is not _one_stage
        # (a ConvRBM's images are drawn with their channels one above the other)
        picture = (model.image_shape[0] * model.image_shape[1], model.image_shape[2]) \
            if hasattr(model, "image_shape") else ds.image_shape
        meta = {"settings": s, "dataset": ds.name,
                "image_shape": list(picture) if picture else None}
        # run.json is written once fit has accepted the run (a resume it refuses changes
        # nothing), before the first batch
        # (the monitor first: its figures are in the history before it is written)
        # (process 0 writes run.json and metrics.json; every process takes part in the
        # checkpoints, which gather the chains of all)
        writer = (lambda cb: cb) if group is None else rank_zero
        over = "" if group is None else f" over {group.world_size} processes"
        history, seconds, trained, state = [], 0.0, [], None
        agreed, cleared = group is None, False
        if args.resume is not None and staged and not any(
                (folder / name / "train_state.safetensors").exists() for name in _stage_names(
                    folder)):
            say(f"resuming {folder}: no epoch had finished, starting from the beginning")
        elif staged and args.resume is None:
            say(f"training {_describe(model)} on {ds.name} ({x.shape[0]} rows), one layer at a "
                f"time -> {folder}")
        for stage in kind.stages(s, model, estimator, update, x, gen):
            where = folder if stage.name is None else folder / stage.name
            resume, finished, started = _stage_status(args, given, where, stage, folder, staged)
            if not agreed:
                group.agree()  # every process could set the run up (else: the first says why)
                agreed = True
            if args.overwrite and lead and not cleared:
                _remove_run_files(folder)
            cleared = True
            if finished:
                if not staged:
                    say(finished)
                    return 0
                done = TrainState.load(where / "train_state.safetensors", stage.model,
                                       stage.estimator)
                history += _tagged(done.history, stage.name)
                seconds += done.seconds
                trained.append(f"{stage.name} {done.epoch} epochs")
                continue
            if started:
                say(started)
            label = "" if stage.name is None else f"{stage.name}: "
            stage_meta = meta if stage.name is None else dict(meta, stage=stage.name)
            callbacks = [*(monitor if stage.name is None else []),
                         *(kind.callbacks(s, x) if stage.name is None else []),
                         writer(_RunFile(folder / RUN_FILE, s)),
                         Checkpoint(where, metadata=stage_meta,
                                    preparation=prep if stage.data_visible else None,
                                    model_file=stage.model_file),
                         writer(_MetricsWriter(folder / "metrics.json", s, history,
                                               stage.name))]
            say(f"{label or 'training '}{stage.title or _describe(model)} on "
                f"{stage.source.format(data=ds.name)} "
                f"({stage.data.shape[0]} rows), {stage.estimator}, {stage.epochs} epochs{over}"
                f" -> {where}")
            try:
                state = fit(stage.model, stage.data, estimator=stage.estimator,
                            update=stage.update, epochs=stage.epochs,
                            batch_size=s["batch_size"], lr=stage.lr,
                            lr_schedule=stage.lr_schedule, generator=stage.generator,
                            callbacks=callbacks, resume=resume,
                            init_visible_bias=stage.init_visible_bias,
                            progress=not (args.no_progress or False), distributed=group)
            except FloatingPointError:
                # (removed by train_command once the lock is released)
                run["empty"] = lead and args.resume is None and not history and \
                    not (where / "train_state.safetensors").exists()
                raise
            if state.interrupted:
                at = f"epoch {state.epoch}" + (f" and {state.batch} batches of the next"
                                               if state.batch else "")
                kept = (f"{where}/model.safetensors holds epoch {state.epoch}"
                        if state.epoch and stage.model_file else
                        f"{where} keeps epoch {state.epoch}" if state.epoch
                        else "no epoch had finished")
                if staged and history:
                    kept += "; the layers before it are kept"
                again = "boltzkit train" if group is None else \
                    f"torchrun --nproc-per-node {group.world_size} -m boltzkit train"
                if lead:
                    print(f"{state.signal or 'interrupted'}: {label}stopped after {at}; "
                          f"{kept}. Continue with: {again} --resume {folder}", file=sys.stderr)
                    _curves(history + _tagged(state.history, stage.name), folder)
                return 143 if state.signal == "SIGTERM" else 130
            history += _tagged(state.history, stage.name)
            seconds += state.seconds
            trained.append(f"{stage.name} {state.epoch} epochs")
        if not lead:
            return 0
        if staged:
            if state is None and (folder / "model.safetensors").exists():
                say(f"{folder}: the run has finished ({', '.join(trained)})"
                    + ("; train it further with --resume RUN --epochs N" if
                       s["model"] == "dbm" else ""))
                return 0
            from ..io import save

            save(model, folder / "model.safetensors", metadata=dict(meta, stages=trained),
                 preparation=prep)
        _pictures(model, s, meta, prep, folder, history)
    last = history[-1] if history else {}
    held = next((h for h in reversed(history) if "loglik" in h), None)
    figure = "" if held is None else (
        f", held-out log-likelihood {held['loglik']:.2f} nats"
        f"{'' if held is last else ' (epoch %d)' % held['epoch']} "
        + ("(exact)" if held.get("loglik_method") == "exact" else
           "(short forward AIS, optimistic; boltzkit evaluate gives the full figure)"))
    figure += (f", {last['stage'] + ' ' if 'stage' in last else ''}reconstruction error "
               f"{last['recon_error']:.4f} (a monitor, not the "
               f"objective)" if "recon_error" in last else
               f", exact log-likelihood {last['exact_loglik']:.4f}" if "exact_loglik" in last
               else f", mean |data - model| pair statistics {last['mean_abs_difference']:.4f}"
               if "mean_abs_difference" in last else "")
    done = f"{state.epoch} epochs" if not staged else ", ".join(trained)
    files = "model.safetensors, train_state.safetensors" if not staged else \
        f"model.safetensors, {', '.join(n + '/' for n in _stage_names(folder))}"
    print(f"done: {done} in {seconds:.1f} s{figure}; wrote {folder}/{files}, "
          f"metrics.json, pictures")
    return 0


def _describe(model) -> str:
    from ..models import DBM, DBN, BoltzmannMachine, ConvRBM

    kind = "bm" if isinstance(model, BoltzmannMachine) else \
        "conv" if isinstance(model, ConvRBM) else "dbn" if isinstance(model, DBN) else \
        "dbm" if isinstance(model, DBM) else "rbm"
    return MODEL_KINDS[kind].describe(model)


def _pictures(model, s, meta, prep, folder: Path, history) -> None:
    """filters.png, samples.png and curves.png of a finished run."""
    m = model.to("cpu")
    gen = torch.Generator().manual_seed(s["seed"] + 1)
    MODEL_KINDS[s["model"]].pictures(m, s, meta, prep, folder, gen)
    _curves(history, folder)


def _curves(history, folder: Path) -> None:
    """curves.png from the run's history (also of an interrupted run: the epochs it has; the
    stages of a dbn or dbm one after another)."""
    from .. import plots

    if history:
        plots.learning_curves(history, folder / "curves.png")
