"""Autoencoders next to Boltzmann machines on MNIST: reconstruction, features for a linear
classifier, log-likelihoods, pictures (``boltzkit compare autoencoders``).

Data
----
MNIST's grey images in [0, 1] (``load_dataset("mnist")``): ``n_train`` training rows drawn at
random with the seed (all 60,000 in the full setting), the 10,000 test rows. Every model is
trained on the grey values (the RBMs, DBN and DBM take them as on-probabilities, as Hinton &
Salakhutdinov's pre-training does); log-likelihoods are of the test images binarised once by
sampling each pixel with its grey value as probability (the seed's draw).

Rows (each a model; the one-layer models share their hidden size ``hidden``)
---------------------------------------------------------------------------
``pixels``
    The 784 pixels themselves (a reference for the classifier; nothing to reconstruct).
``pca-<code>`` (``pca-30``), ``pca-2``
    Principal components of the training rows (an SVD of the centred data), as many as the deep
    autoencoder's code units, and two; reconstruction ``mean + codes Vᵀ``.
``rbm``
    A binary RBM 784-``hidden`` trained by CD-1 (SGD, momentum 0.5, weight decay 2e-4 on the
    weights): the bottom layer of the deep autoencoder's pre-training stack, the same model.
    Features E[h | v]; reconstruction E[v | E[h | v]].
``dbn``
    The bottom two RBMs of that stack (784-``hidden``-``deep[1]``) as a deep belief net.
    Features: the top layer's recognition means; reconstruction: up-pass of means, then
    down-pass of means.
``dbm``
    A DBM 784-``hidden``-``deep[1]``: greedy pre-training with Salakhutdinov & Hinton's doubled
    inputs (CD-1), then mean-field PCD (100 persistent chains, 10 mean-field sweeps).
    Features: the top layer's mean-field means (10 sweeps); reconstruction E[v | mu_1].
``ae``, ``dae``
    One-hidden-layer autoencoders 784-``hidden`` with tied weights and sigmoid units (plain
    Glorot-uniform initial weights), cross-entropy loss, Adam; ``dae`` with masking noise (a
    fraction ``corruption`` of the pixels set to 0, Vincent et al. 2008). Features: the code;
    reconstruction: the output.
``deep-ae-unrolled``
    The deep autoencoder 784-``deep``-``code`` (Hinton & Salakhutdinov 2006: 784-1000-500-250-30)
    unrolled from the pre-trained stack (CD-1, the top RBM with Gaussian, i.e. linear, hidden
    units, learning rate ``top_lr``), before fine-tuning.
``deep-ae``
    That network fine-tuned by backpropagation of the cross-entropy (Adam, mini-batches of
    ``batch_size``; the paper used conjugate gradients on batches of 1000).
``deep-ae-random``, ``deep-ae-glorot``
    The same network, same fine-tuning, from random weights instead of the pre-trained ones:
    Glorot-uniform weights scaled by 4 where they feed sigmoid units (the scale for deep
    sigmoid networks), and plain Glorot-uniform weights (see
    :mod:`boltzkit.models.autoencoder`).
``deep-ae-2``
    A 784-``deep``-2 version for the paper's picture of 2-D codes: the lower RBMs of the 30-D
    stack (shared) with its own top RBM 250-2, unrolled and fine-tuned alike.

Measures
--------
- Test reconstruction error: the squared error ``Σ_i (x_i - x̂_i)²`` per image, averaged over
  the test images (Hinton & Salakhutdinov's measure: 3.00 for their deep autoencoder, 13.87 for
  PCA with 30 components).
- Linear classifier on the features: scikit-learn's ``LogisticRegression`` (lbfgs,
  multinomial) on standardised features, its ``C`` chosen from ``classifier_C`` on a held-out
  fifth of the labelled rows and then refitted on all of them; test error in percent. Two
  protocols: every training row labelled, and ``few_labels`` labels (one class-balanced subset
  drawn with the seed, ``few_labels / 10`` per class).
- Test log-likelihood (nats per image, binarised test images; the first ``loglik_rows`` test
  images where that is set), two sides of a bracket where the
  model has one: RBM, log p(v) = -F(v) - log Z with log Z by forward AIS (optimistic) and by
  reverse AIS (RAISE, from ``raise_rows`` test rows; conservative); DBN, the variational lower
  bound (``dbn_samples`` draws of h_1 per image) with the top RBM's log Z by forward and by
  reverse AIS; DBM, the mean-field variational bound with forward-AIS log Z (the paper's
  figure; a forward AIS that misses modes makes it optimistic) and, where
  :func:`boltzkit.evaluation.dbm.raise_log_likelihood` is available, RAISE on ``raise_rows``
  test rows (conservative).

Pictures (PNG): ``compare-filters.png`` (the first 49 hidden units of the RBM, the autoencoder,
the denoising autoencoder, and PCA's first 49 components), ``compare-reconstructions.png`` (the
first test digit of each class and its reconstruction by each model), ``compare-codes-2d.png``
(the 2-D codes of test digits by PCA and by the 784-...-2 autoencoder, coloured by class),
``compare-curves.png`` (test reconstruction error during fine-tuning, pre-trained against
random start).

Files (written atomically into the output folder): ``results.json`` (settings, per row every
figure, per-stage seconds), ``table.md`` (the table), the pictures.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import torch

from .. import _validation as _v
from .._threads import torch_threads
from ..io import atomic_write

__all__ = ["Settings", "QUICK", "FULL", "ROWS", "run_autoencoder_comparison", "linear_probe",
           "pca", "format_table"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The sizes and budgets of a comparison (see the module docstring for what each row is).

    ``n_train``: training rows (None: all); ``n_test``: test rows (None: all); ``hidden``: the
    one-layer models' hidden units (and the first hidden layer of the DBN, DBM and deep
    autoencoder: ``deep[0]`` must equal it); ``deep``: the deep autoencoder's hidden layers below
    the code (``deep[1]`` is the DBN's and DBM's second layer); ``code``: its code units.
    ``rbm_epochs``, ``rbm_lr``, ``top_lr``: the pre-training stack (CD-1, momentum 0.5, weight
    decay 2e-4; ``top_lr`` for the Gaussian-hidden top RBM, whose weights start at N(0, 0.1²));
    ``ae_epochs``, ``ae_lr``, ``corruption``: the one-layer autoencoders (Adam);
    ``finetune_epochs``, ``finetune_lr``: the deep autoencoders (Adam); ``dbm_pretrain_epochs``,
    ``dbm_epochs``, ``dbm_lr``: the DBM; ``ais_betas``, ``ais_chains``, ``raise_rows``: the
    likelihood estimates (forward chains, reverse-AIS starting rows); ``dbn_samples``: draws of
    h_1 per image in the DBN bound; ``loglik_rows``: the test images whose log-likelihoods and
    bounds are averaged (None: all); ``few_labels``: the small labelled set;
    ``classifier_C``, ``classifier_max_iter``: the logistic regressions; ``codes_2d``: train
    the 784-...-2 autoencoder for the 2-D picture.
    """

    n_train: Optional[int] = None
    n_test: Optional[int] = None
    hidden: int = 1000
    deep: tuple = (1000, 500, 250)
    code: int = 30
    batch_size: int = 100
    rbm_epochs: int = 50
    rbm_lr: float = 0.05
    top_lr: float = 0.01
    ae_epochs: int = 50
    ae_lr: float = 1e-3
    corruption: float = 0.25
    finetune_epochs: int = 200
    finetune_lr: float = 1e-3
    dbm_pretrain_epochs: int = 50
    dbm_epochs: int = 50
    dbm_lr: float = 0.005
    ais_betas: int = 14500
    ais_chains: int = 100
    raise_rows: int = 1000
    dbn_samples: int = 100
    loglik_rows: Optional[int] = None
    few_labels: int = 1000
    classifier_C: tuple = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    classifier_max_iter: int = 500
    codes_2d: bool = True

    def checked(self) -> "Settings":
        """These settings, checked (one ``ValueError`` naming the field otherwise)."""
        if _v.integer(self.code, "code", 1) < 3:
            raise ValueError(f"code: expected at least 3 code units (the 2-D code is a row of "
                             f"its own), got {self.code}")
        for f in ("hidden", "batch_size", "rbm_epochs", "ae_epochs", "finetune_epochs",
                  "dbm_pretrain_epochs", "dbm_epochs", "dbn_samples", "classifier_max_iter"):
            _v.integer(getattr(self, f), f, 1)
        for f in ("n_train", "n_test", "loglik_rows"):
            if getattr(self, f) is not None:
                _v.integer(getattr(self, f), f, 2)
        _v.integer(self.ais_betas, "ais_betas", 1)
        _v.integer(self.ais_chains, "ais_chains", 2)
        _v.integer(self.raise_rows, "raise_rows", 2)
        few = _v.integer(self.few_labels, "few_labels", 20)
        if few % 10:
            raise ValueError(f"few_labels: expected a multiple of 10 (as many labels of each "
                             f"class), got {few}")
        for f in ("rbm_lr", "top_lr", "ae_lr", "finetune_lr", "dbm_lr"):
            _v.real(getattr(self, f), f, 0.0, strict_minimum=True)
        _v.real(self.corruption, "corruption", 0.0, 1.0, strict_maximum=True)
        if not isinstance(self.deep, (list, tuple)) or len(self.deep) < 2:
            raise ValueError(f"deep: expected at least two hidden layer sizes, got "
                             f"{self.deep!r}")
        for i, n in enumerate(self.deep):
            _v.integer(n, f"deep[{i}]", 1)
        if self.deep[0] != self.hidden:
            raise ValueError(f"deep: the first hidden layer is the RBM row's, expected "
                             f"deep[0] = hidden = {self.hidden}, got {self.deep[0]}")
        if not isinstance(self.classifier_C, (list, tuple)) or not self.classifier_C:
            raise ValueError(f"classifier_C: expected a non-empty list of numbers > 0, got "
                             f"{self.classifier_C!r}")
        for i, c in enumerate(self.classifier_C):
            _v.real(c, f"classifier_C[{i}]", 0.0, strict_minimum=True)
        _v.boolean(self.codes_2d, "codes_2d")
        return self


#: the paper's scale: all 60,000 training rows, 50 epochs of pre-training per RBM (the
#: Science paper's count), 200 epochs of fine-tuning (as the authors' code), 14,500 AIS steps
FULL = Settings()
#: minutes on one CPU thread: 10,000 training rows, 10 epochs everywhere (DBM 5 + 5),
#: 2,000 AIS steps, smaller classifier runs
QUICK = Settings(n_train=10000, rbm_epochs=10, ae_epochs=10, finetune_epochs=10,
                 dbm_pretrain_epochs=5, dbm_epochs=5, ais_betas=2000, raise_rows=100,
                 dbn_samples=10, loglik_rows=2000, classifier_max_iter=200)

#: the rows of the table, in order: (key, label); "pca-code" stands for ``pca-<code>``
ROWS = (("pixels", "pixels"), ("pca-code", "PCA, code-size components"),
        ("pca-2", "PCA, 2 components"),
        ("rbm", "RBM"), ("dbn", "DBN"), ("dbm", "DBM"), ("ae", "autoencoder (tied)"),
        ("dae", "denoising autoencoder (tied)"), ("deep-ae-unrolled", "deep AE, unrolled RBMs"),
        ("deep-ae", "deep AE, pre-trained + fine-tuned"),
        ("deep-ae-random", "deep AE, random init (Glorot x4) + fine-tuned"),
        ("deep-ae-glorot", "deep AE, random init (Glorot) + fine-tuned"),
        ("deep-ae-2", "deep AE (2-D code), pre-trained + fine-tuned"))


# -- pieces -------------------------------------------------------------------------------------
def pca(x: torch.Tensor, k: int):
    """The first ``k`` principal components of ``x`` ``(n, d)``: ``(mean (d,), components
    (k, d))``, components orthonormal, by an SVD of the centred rows in float64."""
    k = _v.integer(k, "k", 1)
    if k > min(x.shape):
        raise ValueError(f"k: expected at most {min(x.shape)} components, got {k}")
    mean = x.double().mean(0)
    _, _, vh = torch.linalg.svd(x.double() - mean, full_matrices=False)
    return mean.to(x.dtype), vh[:k].to(x.dtype)


def _class_balanced(labels: torch.Tensor, n: int, generator) -> torch.Tensor:
    """Indices of ``n // 10`` rows of each of the 10 classes, drawn without replacement."""
    per = n // 10
    picks = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < per:
            raise ValueError(f"few_labels: class {c} has {idx.numel()} labelled training rows, "
                             f"{per} needed")
        picks.append(idx[torch.randperm(idx.numel(), generator=generator)[:per]])
    return torch.cat(picks)


def linear_probe(train_x, train_y, test_x, test_y, *, Cs=(0.001, 0.01, 0.1, 1.0, 10.0, 100.0),
                 max_iter: int = 200, seed: int = 0) -> dict:
    """Test error of scikit-learn's ``LogisticRegression`` on features.

    Features are standardised (mean and scale of the training rows); ``C`` is chosen from
    ``Cs`` by accuracy on a random fifth of the training rows held out (``seed``), the others
    fitted, each fit warm-started from the one before; the chosen model is then refitted on all
    training rows. Returns ``{"error": test error in percent, "C": chosen, "validation_error":
    percent, "n_iter": iterations of the last fit, "converged": bool}``."""
    import copy

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr = np.asarray(train_x, dtype=np.float64)
    ytr = np.asarray(train_y)
    xte = np.asarray(test_x, dtype=np.float64)
    yte = np.asarray(test_y)
    rng = np.random.default_rng(seed)
    order = rng.permutation(xtr.shape[0])
    n_val = max(1, xtr.shape[0] // 5)
    val, fit_rows = order[:n_val], order[n_val:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaler = StandardScaler().fit(xtr[fit_rows])
        a, b = scaler.transform(xtr[fit_rows]), scaler.transform(xtr[val])
        clf = LogisticRegression(max_iter=max_iter, warm_start=True)
        best = None
        for c in sorted(Cs):
            clf.set_params(C=float(c))
            clf.fit(a, ytr[fit_rows])
            err = 1.0 - clf.score(b, ytr[val])
            if best is None or err < best[0]:
                best = (err, float(c), copy.deepcopy(clf))
        scaler = StandardScaler().fit(xtr)
        final = best[2]
        final.fit(scaler.transform(xtr), ytr)
    n_iter = int(np.max(final.n_iter_))
    return {"error": 100.0 * (1.0 - final.score(scaler.transform(xte), yte)), "C": best[1],
            "validation_error": 100.0 * best[0], "n_iter": n_iter,
            "converged": n_iter < max_iter}


def _generator(seed: int, offset: int) -> torch.Generator:
    """The generator of one part of the run: the run's seed shifted by a fixed offset, so that
    every row draws the same numbers whatever else runs."""
    return torch.Generator().manual_seed((seed + 1000 * offset) % (2 ** 63))


class _Seconds(NamedTuple):
    """Wall and CPU seconds (they add)."""

    wall: float = 0.0
    cpu: float = 0.0

    def __add__(self, other):
        return _Seconds(self.wall + other.wall, self.cpu + other.cpu)

    def __radd__(self, other):  # sum() starts at 0
        return self if other == 0 else self + other


class _Clock:
    """Wall and CPU seconds of a block (``.wall``, ``.cpu``, ``.seconds``)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.seconds = _Seconds(self.wall, self.cpu)
        return False


def _mnist(n_train, n_test, seed):
    from ..data import load_dataset

    tr, te = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    n = tr.data.shape[0] if n_train is None else n_train
    if n > tr.data.shape[0]:
        raise ValueError(f"n_train: MNIST has {tr.data.shape[0]} training rows, got {n}")
    idx = torch.randperm(tr.data.shape[0], generator=_generator(seed, 1))[:n]
    m = te.data.shape[0] if n_test is None else min(n_test, te.data.shape[0])
    return tr.data[idx], tr.labels[idx], te.data[:m], te.labels[:m], tr.image_shape


def _check_data(data):
    """``data`` = (x_train, y_train, x_test, y_test, image_shape), checked."""
    if not isinstance(data, (tuple, list)) or len(data) != 5:
        raise ValueError("data: expected (x_train, y_train, x_test, y_test, image_shape)")
    xtr, ytr, xte, yte, shape = data
    from ..data import as_tensor

    xtr, xte = as_tensor(xtr, "data[0]"), as_tensor(xte, "data[2]")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"data: training rows have {xtr.shape[1]} features, test rows "
                         f"{xte.shape[1]}")
    if float(xtr.min()) < 0 or float(xtr.max()) > 1 or float(xte.min()) < 0 or \
            float(xte.max()) > 1:
        raise ValueError("data: expected grey values in [0, 1]")
    ytr, yte = torch.as_tensor(ytr).long().flatten(), torch.as_tensor(yte).long().flatten()
    if ytr.shape[0] != xtr.shape[0] or yte.shape[0] != xte.shape[0]:
        raise ValueError("data: expected one label per row")
    if int(ytr.min()) < 0 or int(ytr.max()) > 9 or int(yte.min()) < 0 or int(yte.max()) > 9:
        raise ValueError("data: expected labels 0..9")
    h, w = (int(s) for s in shape)
    if h * w != xtr.shape[1]:
        raise ValueError(f"data: image_shape {shape} does not hold {xtr.shape[1]} pixels")
    return xtr, ytr, xte, yte, (h, w)


# -- the run ------------------------------------------------------------------------------------
def run_autoencoder_comparison(out_dir, *, quick: bool = False,
                               settings: Optional[Settings] = None, seed: int = 0, data=None,
                               log: Optional[Callable[[str], None]] = None,
                               threads=1) -> dict:
    """Train every row of the module docstring, measure it, draw the pictures and write
    ``results.json``, ``table.md`` and the PNGs into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder (created).
    quick : bool
        :data:`QUICK` instead of :data:`FULL` (when ``settings`` is not given).
    settings : Settings, optional
        Explicit settings (``dataclasses.replace(QUICK, n_train=...)``, say).
    seed : int
        Every random choice (training rows, initial weights, orders, noise, AIS, the labelled
        subset) derives from it.
    data : (x_train, y_train, x_test, y_test, image_shape), optional
        Other data than MNIST (grey values in [0, 1], labels 0..9); ``n_train`` / ``n_test``
        then do not apply.
    log : callable(str), optional
        Progress lines.
    threads : int, "auto" or None
        torch's (and the classifier's BLAS) CPU threads during the run (default 1; None leaves
        the settings alone).

    Returns
    -------
    dict: what ``results.json`` holds (``settings``, ``rows`` {key: figures}, ``seconds``).
    """
    settings = (settings or (QUICK if quick else FULL))
    if not isinstance(settings, Settings):
        raise ValueError(f"settings: expected a boltzkit.experiments.compare.Settings, got "
                         f"{type(settings).__name__}")
    settings = settings.checked()
    seed = _v.seed(seed)
    say = log or (lambda line: None)
    from ..io import check_writable_folder

    # probed now, made once the data are loaded: a refused run leaves no folder behind
    out = check_writable_folder(out_dir, "out_dir: cannot write the folder")
    limits = _blas_threads(threads)
    with torch_threads(threads), limits:
        return _run(out, settings, seed, data, say)


def _blas_threads(threads):
    import contextlib

    if threads is None or threads == "auto":
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return contextlib.nullcontext()
    return threadpool_limits(int(threads))


def _run(out: Path, s: Settings, seed: int, data, say) -> dict:
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if data is None:
        xtr, ytr, xte, yte, shape = _mnist(s.n_train, s.n_test, seed)
        source = "mnist"
    else:
        xtr, ytr, xte, yte, shape = _check_data(data)
        source = "user data"
    if s.few_labels > xtr.shape[0]:
        raise ValueError(f"few_labels: expected at most the {xtr.shape[0]} training rows, got "
                         f"{s.few_labels}")
    if s.code > min(xtr.shape):
        raise ValueError(f"code: PCA with {s.code} components needs at least as many training "
                         f"rows and features, got {tuple(xtr.shape)}")
    few = _class_balanced(ytr, s.few_labels, _generator(seed, 2))
    out.mkdir(parents=True, exist_ok=True)
    test_bin = torch.bernoulli(xte, generator=_generator(seed, 3))
    if s.loglik_rows is not None:
        test_bin = test_bin[:s.loglik_rows]
    say(f"data: {xtr.shape[0]} training and {xte.shape[0]} test images ({source}), seed {seed}")
    rows, extra = {}, {}

    def add(key, *, features, recon, seconds, **more):
        """``seconds``: (wall, CPU) seconds of the training the row needs."""
        rows[key] = {"features": features, "recon": recon, "seconds": seconds, **more}

    # -- PCA and pixels
    add("pixels", features=(xtr, xte), recon=None, seconds=_Seconds())
    with _Clock() as c:
        mean, comps = pca(xtr, min(max(s.code, 49), min(xtr.shape)))
    for k in (s.code, 2):
        v = comps[:k]
        add(f"pca-{k}", features=((xtr - mean) @ v.t(), (xte - mean) @ v.t()),
            recon=(xte - mean) @ v.t() @ v + mean, seconds=c.seconds, code_units=k)
    extra["pca_components"] = comps[:49]

    # -- the pre-training stack (its bottom RBM is the RBM row, its bottom two the DBN)
    from ..models import Autoencoder, DBN
    from ..training import SGD
    from ..training.autoencoders import fit_autoencoder, pretrain_rbms

    sizes = [xtr.shape[1], *s.deep, s.code]
    g = _generator(seed, 4)
    say(f"pre-training the stack {'-'.join(map(str, sizes))} (CD-1, {s.rbm_epochs} epochs per "
        f"RBM) ...")
    stack, layer_s = [], []
    for l in range(len(sizes) - 1):  # one RBM at a time, to time each
        last = l == len(sizes) - 2
        with _Clock() as c:
            stack = pretrain_rbms(xtr, sizes[:l + 2], epochs=s.rbm_epochs,
                                  batch_size=s.batch_size, lr=s.rbm_lr,
                                  top_lr=s.top_lr if last else s.rbm_lr,
                                  update=SGD(0.5, 2e-4), top_init_std=0.1 if last else None,
                                  generator=g, below=stack,
                                  top="gaussian" if last else "bernoulli")
        layer_s.append(c.seconds)
        say(f"  RBM {sizes[l]}-{sizes[l + 1]}: {c.wall:.1f} s ({c.cpu:.1f} CPU s)")
    rbm = stack[0]
    with torch.no_grad():
        add("rbm", features=(rbm.hidden_mean(xtr), rbm.hidden_mean(xte)),
            recon=rbm.visible_mean(rbm.hidden_mean(xte)), seconds=layer_s[0],
            code_units=s.hidden)
        dbn = DBN(sizes[:3])
        dbn.set_rbm(0, stack[0])
        dbn.set_rbm(1, stack[1])
        top_te = dbn.transform(xte)
        add("dbn", features=(dbn.transform(xtr), top_te),
            recon=dbn.down_mean(0, dbn.down_mean(1, top_te)), seconds=layer_s[0] + layer_s[1],
            code_units=s.deep[1])
    pre_s = sum(layer_s, _Seconds())
    unrolled = Autoencoder.unroll(stack)
    with torch.no_grad():
        add("deep-ae-unrolled", features=(unrolled.encode(xtr), unrolled.encode(xte)),
            recon=unrolled(xte), seconds=pre_s, code_units=s.code)

    # -- deep autoencoders, fine-tuned
    curves = {}

    def finetune(key, model, offset, start_seconds, label):
        say(f"fine-tuning {label} ({s.finetune_epochs} epochs, Adam lr {s.finetune_lr:g}) ...")
        e0 = float(model.reconstruction_error(xte).mean())
        with _Clock() as c:
            hist = fit_autoencoder(model, xtr, epochs=s.finetune_epochs,
                                   batch_size=s.batch_size, lr=s.finetune_lr,
                                   generator=_generator(seed, offset), validation=xte,
                                   log=lambda line: say("  " + line))
        curves[key] = [e0] + [h["validation_error"] for h in hist]
        with torch.no_grad():
            add(key, features=(model.encode(xtr), model.encode(xte)), recon=model(xte),
                seconds=start_seconds + c.seconds, code_units=model.n_code,
                epoch_cpu_seconds=c.cpu / s.finetune_epochs)
        return model

    finetune("deep-ae", Autoencoder.unroll(stack), 5, pre_s, "the pre-trained deep AE")
    for key, scale, offset in (("deep-ae-random", 4.0, 6), ("deep-ae-glorot", 1.0, 16)):
        finetune(key, Autoencoder(sizes, code="linear", tied=False, sigmoid_scale=scale,
                                  generator=_generator(seed, offset)), offset + 1, _Seconds(),
                 f"the deep AE from random weights (Glorot x{scale:g})")
    if s.codes_2d:
        with _Clock() as c:
            stack2 = pretrain_rbms(xtr, sizes[:-1] + [2], epochs=s.rbm_epochs,
                                   batch_size=s.batch_size, lr=s.rbm_lr, top_lr=s.top_lr,
                                   update=SGD(0.5, 2e-4), top_init_std=0.1,
                                   generator=_generator(seed, 8), below=stack[:-1])
        finetune("deep-ae-2", Autoencoder.unroll(stack2), 9, sum(layer_s[:-1]) + c.seconds,
                 "the deep AE with a 2-D code")

    # -- one-layer autoencoders
    for key, corruption, offset in (("ae", 0.0, 10), ("dae", s.corruption, 12)):
        model = Autoencoder([xtr.shape[1], s.hidden], corruption=corruption,
                            generator=_generator(seed, offset))
        say(f"training the {'denoising ' if corruption else ''}autoencoder "
            f"{xtr.shape[1]}-{s.hidden} ({s.ae_epochs} epochs) ...")
        with _Clock() as c:
            fit_autoencoder(model, xtr, epochs=s.ae_epochs, batch_size=s.batch_size,
                            lr=s.ae_lr, generator=_generator(seed, offset + 1),
                            log=lambda line: say("  " + line))
        with torch.no_grad():
            add(key, features=(model.encode(xtr), model.encode(xte)), recon=model(xte),
                seconds=c.seconds, code_units=s.hidden, corruption=corruption,
                epoch_cpu_seconds=c.cpu / s.ae_epochs)
        extra[f"{key}_filters"] = model.weight_0.detach().t()[:49].clone()
    extra["rbm_filters"] = rbm.weight.detach().t()[:49].clone()

    # -- the DBM
    dbm = _train_dbm(xtr, s, seed, say)
    from ..samplers import dbm as dbm_sampler

    with torch.no_grad():
        mu_tr = dbm_sampler.mean_field(dbm["model"], xtr, 10)
        mu_te = dbm_sampler.mean_field(dbm["model"], xte, 10)
        recon = torch.sigmoid(torch.addmm(dbm["model"].bias_0, mu_te[1],
                                          dbm["model"].weight_0.t()))
    add("dbm", features=(mu_tr[-1], mu_te[-1]), recon=recon, seconds=dbm["seconds"],
        code_units=s.deep[1], pretrain_seconds=dbm["pretrain_seconds"])

    # -- likelihoods
    say(f"log-likelihoods of {test_bin.shape[0]} binarised test images ({s.ais_betas} AIS "
        f"steps, {s.ais_chains} forward chains, reverse from {s.raise_rows} test rows) ...")
    with _Clock() as c:
        rows["rbm"]["loglik"] = _rbm_loglik(rbm, xtr, test_bin, s, seed)
    rows["rbm"]["loglik"]["seconds"] = c.wall
    with _Clock() as c:
        rows["dbn"]["loglik"] = _dbn_loglik(dbn, xtr, test_bin, s, seed)
    rows["dbn"]["loglik"]["seconds"] = c.wall
    with _Clock() as c:
        rows["dbm"]["loglik"] = _dbm_loglik(dbm["model"], xtr, test_bin, s, seed)
    rows["dbm"]["loglik"]["seconds"] = c.wall
    for key in ("rbm", "dbn", "dbm"):
        ll = rows[key]["loglik"]
        say(f"  {key}: forward {ll['forward']:.2f}" +
            (f", reverse {ll['reverse']:.2f}" if ll.get("reverse") is not None else "") +
            f" nats ({ll['seconds']:.1f} s)")

    # -- reconstruction errors and classifiers
    say(f"linear classifiers ({xtr.shape[0]} and {s.few_labels} labels) ...")
    results = {}
    for key, label in ROWS:
        if key == "pca-code":
            key, label = f"pca-{s.code}", f"PCA, {s.code} components"
        if key not in rows:
            continue
        r = rows[key]
        ftr, fte = (t.detach().float().numpy() for t in r["features"])
        res = {"label": label, "code_units": r.get("code_units", ftr.shape[1]),
               "train_seconds": round(r["seconds"].wall, 1),
               "train_cpu_seconds": round(r["seconds"].cpu, 1)}
        if r["recon"] is not None:
            err = (xte - r["recon"].detach()).pow(2).sum(1)
            res["test_squared_error"] = float(err.mean())
            res["test_squared_error_std_error"] = float(err.std() / math.sqrt(err.numel()))
        with _Clock() as c:
            res["classifier_all"] = linear_probe(
                ftr, ytr.numpy(), fte, yte.numpy(), Cs=s.classifier_C,
                max_iter=s.classifier_max_iter, seed=seed)
            res["classifier_few"] = linear_probe(
                ftr[few.numpy()], ytr[few].numpy(), fte, yte.numpy(), Cs=s.classifier_C,
                max_iter=s.classifier_max_iter, seed=seed)
        res["classifier_seconds"] = round(c.wall, 1)
        for k in ("loglik", "epoch_cpu_seconds", "pretrain_seconds", "corruption"):
            if k in r:
                res[k] = r[k]
        results[key] = res
        say(f"  {key}: " + (f"squared error {res['test_squared_error']:.2f}, "
                            if "test_squared_error" in res else "") +
            f"test error {res['classifier_all']['error']:.2f}% (all labels), "
            f"{res['classifier_few']['error']:.2f}% ({s.few_labels} labels) "
            f"({c.wall:.1f} s)")

    # -- pictures
    say("pictures ...")
    _filters_figure(extra, shape, out / "compare-filters.png")
    picks = [int(torch.nonzero(yte == c).flatten()[0]) for c in range(10)
             if bool((yte == c).any())]
    recon_rows = {"test digits": xte[picks]}
    for key in (f"pca-{s.code}", "deep-ae-unrolled", "deep-ae", "deep-ae-random",
                "deep-ae-glorot", "rbm", "dbn", "dbm", "ae", "dae"):
        if key in rows and rows[key]["recon"] is not None:
            recon_rows[_short(key, s.code)] = rows[key]["recon"][picks].detach().clamp(0, 1)
    from ..plots import image_rows

    image_rows(recon_rows, shape, out / "compare-reconstructions.png")
    if "deep-ae-2" in rows:
        _codes_figure(rows["pca-2"]["features"][1], rows["deep-ae-2"]["features"][1], yte,
                      out / "compare-codes-2d.png")
    _curves_figure(curves, results.get(f"pca-{s.code}", {}).get("test_squared_error"),
                   s.code, out / "compare-curves.png")

    total = time.perf_counter() - t_start
    result = {"settings": {**_jsonable(dataclasses.asdict(s)), "seed": seed, "data": source,
                           "n_train": int(xtr.shape[0]), "n_test": int(xte.shape[0])},
              "rows": results, "curves": curves, "seconds": round(total, 1),
              "cpu_seconds": round(time.process_time() - cpu_start, 1),
              "stack_seconds": [round(t.wall, 1) for t in layer_s],
              "stack_cpu_seconds": [round(t.cpu, 1) for t in layer_s]}
    with atomic_write(out / "results.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    with atomic_write(out / "table.md") as tmp:
        tmp.write_text(format_table(result) + "\n")
    say(f"done in {total:.0f} s")
    return result


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _short(key: str, code: int) -> str:
    return {f"pca-{code}": f"PCA-{code}", "deep-ae": "deep AE", "deep-ae-random":
            "deep AE, random (Glorot x4)", "deep-ae-glorot": "deep AE, random (Glorot)",
            "deep-ae-unrolled": "unrolled, not fine-tuned", "rbm": "RBM",
            "dbn": "DBN", "dbm": "DBM", "ae": "autoencoder", "dae": "denoising AE"}[key]


def _train_dbm(xtr, s: Settings, seed: int, say) -> dict:
    from ..training import SGD, fit
    from ..training.estimators.dbm import MeanFieldPCD
    from ..training.greedy import pretrain_dbm

    sizes = [xtr.shape[1], s.hidden, s.deep[1]]
    g = _generator(seed, 14)
    say(f"training the DBM {'-'.join(map(str, sizes))} ({s.dbm_pretrain_epochs} epochs of "
        f"pre-training per module, {s.dbm_epochs} of mean-field PCD) ...")
    with _Clock() as c1:
        model = pretrain_dbm(xtr, sizes, epochs=s.dbm_pretrain_epochs, batch_size=s.batch_size,
                             lr=s.rbm_lr, update=SGD(0.5, 2e-4), generator=g)
    with _Clock() as c2:
        fit(model, xtr, estimator=MeanFieldPCD(k=1, n_chains=100, mf_steps=10),
            update=SGD(0.5, 1e-4), epochs=s.dbm_epochs, batch_size=s.batch_size, lr=s.dbm_lr,
            lr_schedule="linear", generator=g, monitors=[])
    say(f"  pre-training {c1.wall:.1f} s, joint training {c2.wall:.1f} s ({c1.cpu + c2.cpu:.1f} "
        f"CPU s)")
    return {"model": model, "seconds": c1.seconds + c2.seconds, "pretrain_seconds": c1.wall}


def _bracket(forward: float, reverse: Optional[float], **more) -> dict:
    return {"forward": forward, "reverse": reverse, **more}


def _rbm_loglik(rbm, xtr, test_bin, s: Settings, seed: int) -> dict:
    from ..evaluation import ais, log_likelihood, reverse_ais

    fwd = ais(rbm, base=xtr, n_chains=s.ais_chains, betas=s.ais_betas,
              generator=_generator(seed, 20))
    rev = reverse_ais(rbm, test_bin, base=xtr, n_chains=s.raise_rows, betas=s.ais_betas,
                      generator=_generator(seed, 21))
    lf, lr = log_likelihood(rbm, test_bin, fwd), log_likelihood(rbm, test_bin, rev)
    return _bracket(lf.mean, lr.mean, std_error=lf.std_error, log_z_forward=fwd.log_z,
                    log_z_reverse=rev.log_z, ess=fwd.ess,
                    what="log p(v) with log Z by forward AIS / by reverse AIS (RAISE)")


def _dbn_loglik(dbn, xtr, test_bin, s: Settings, seed: int) -> dict:
    from ..evaluation import ais, reverse_ais
    from ..evaluation.dbn import variational_bound

    top = dbn.rbm(1)
    with torch.no_grad():
        h_tr = dbn.up_mean(0, xtr)
        h_te = torch.bernoulli(dbn.up_mean(0, test_bin), generator=_generator(seed, 22))
    fwd = ais(top, base=h_tr, n_chains=s.ais_chains, betas=s.ais_betas,
              generator=_generator(seed, 23))
    rev = reverse_ais(top, h_te, base=h_tr, n_chains=s.raise_rows, betas=s.ais_betas,
                      generator=_generator(seed, 24))
    bound0 = variational_bound(dbn, test_bin, 0.0, n_samples=s.dbn_samples,
                               generator=_generator(seed, 25))
    se = float(bound0.std() / math.sqrt(bound0.numel()))
    b = float(bound0.mean())
    return _bracket(b - fwd.log_z, b - rev.log_z, std_error=se, log_z_forward=fwd.log_z,
                    log_z_reverse=rev.log_z, ess=fwd.ess,
                    what="variational bound with the top RBM's log Z by forward AIS / by "
                         "reverse AIS")


def _dbm_loglik(model, xtr, test_bin, s: Settings, seed: int) -> dict:
    from ..evaluation import dbm as edbm

    fwd = edbm.ais(model, base=xtr, n_chains=s.ais_chains, betas=s.ais_betas,
                   generator=_generator(seed, 26))
    bound = edbm.variational_bound(model, test_bin, fwd.log_z)
    out = _bracket(float(bound.mean()), None,
                   std_error=float(bound.std() / math.sqrt(bound.numel())),
                   log_z_forward=fwd.log_z, ess=fwd.ess,
                   what="mean-field variational bound with log Z by forward AIS")
    raise_ll = getattr(edbm, "raise_log_likelihood", None)
    if raise_ll is not None:
        rows = torch.randperm(test_bin.shape[0], generator=_generator(seed, 27))[:s.raise_rows]
        per_row, _ = raise_ll(model, test_bin[rows], base=xtr, betas=s.ais_betas,
                              generator=_generator(seed, 28))
        out["reverse"] = float(per_row.mean())
        out["reverse_std_error"] = float(per_row.std() / math.sqrt(per_row.numel()))
        out["reverse_rows"] = int(per_row.numel())
        out["what"] += f" / RAISE on {per_row.numel()} test rows"
    return out


# -- pictures -----------------------------------------------------------------------------------
def _figure(w, h):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path, mode: str = "L") -> Path:
    """Write ``fig`` as a PNG in grey levels (``mode="L"``) or with an adaptive palette of 256
    colours (``"P"``): a quarter of the RGBA file's raw size, which keeps pictures of noisy
    filters small."""
    import numpy as np
    from PIL import Image

    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    img = Image.fromarray(rgba[..., :3].copy())
    img = img.convert("L") if mode == "L" else img.quantize(256)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return path


def _filters_figure(extra: dict, shape, path: Path) -> Path:
    from ..plots import tile_images

    panels = [("RBM", extra["rbm_filters"]), ("autoencoder", extra["ae_filters"]),
              ("denoising autoencoder", extra["dae_filters"]),
              ("PCA components", extra["pca_components"])]
    fig = _figure(3.0 * len(panels), 3.4)
    for k, (title, w) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        ax.imshow(tile_images(w, shape, n_cols=7, normalize="each"), cmap="gray",
                  interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle("Weights of the first 49 hidden units (PCA: the first 49 components)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, path)


def _codes_figure(pca2, ae2, labels, path: Path, n: int = 5000) -> Path:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    fig = _figure(10.0, 4.8)
    y = labels[:n].numpy()
    for k, (title, z) in enumerate((("PCA, first two components", pca2),
                                    ("deep autoencoder, 2-D code", ae2))):
        ax = fig.add_subplot(1, 2, k + 1)
        z = z[:n].detach().numpy()
        for c in range(10):
            m = y == c
            ax.scatter(z[m, 0], z[m, 1], s=2, color=cmap(c), label=str(c), alpha=0.7,
                       linewidths=0, rasterized=True)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.legend(markerscale=5, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
              frameon=False)
    fig.suptitle(f"Codes of {min(n, len(y))} test digits, coloured by class", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _save(fig, path, "P")


def _curves_figure(curves: dict, pca_error, code: int, path: Path) -> Path:
    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    names = {"deep-ae": "pre-trained (unrolled RBMs)",
             "deep-ae-random": "random weights (Glorot x4)",
             "deep-ae-glorot": "random weights (Glorot)", "deep-ae-2": "pre-trained, 2-D code"}
    for key, ys in curves.items():
        ax.plot(range(len(ys)), ys, marker="o", ms=3, label=names.get(key, key))
    if pca_error is not None:
        ax.axhline(pca_error, color="grey", ls="--", label=f"PCA, {code} components")
    ax.set_xlabel("epochs of fine-tuning")
    ax.set_ylabel("test squared error per image")
    ax.set_yscale("log")
    ax.set_title("Deep autoencoder: what pre-training buys", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, "P")


# -- the table ----------------------------------------------------------------------------------
def _num(x, fmt="{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


def format_table(result: dict) -> str:
    """The comparison as a Markdown table (what ``table.md`` holds)."""
    st = result["settings"]
    lines = [f"| model | code units | test squared error per image | test error %, "
             f"{st['n_train']} labels | test error %, {st['few_labels']} labels | test "
             f"log-likelihood, nats (forward / reverse) | train CPU s |",
             "|---|---|---|---|---|---|---|"]
    for key, r in result["rows"].items():
        ll = r.get("loglik")
        lls = "–" if ll is None else (
            f"{ll['forward']:.2f} / {_num(ll.get('reverse'))}")
        se = r.get("test_squared_error")
        lines.append(
            f"| {r['label']} | {r['code_units']} | {_num(se)} | "
            f"{r['classifier_all']['error']:.2f} | {r['classifier_few']['error']:.2f} | {lls} | "
            f"{r['train_cpu_seconds']:.0f} |")
    return "\n".join(lines)
