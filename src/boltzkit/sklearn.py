"""scikit-learn estimators: a thin layer over boltzkit.RBM and boltzkit.training.fit.

:class:`RBMTransformer` follows scikit-learn's conventions (``__init__`` only stores its arguments;
parameters are declared in ``_parameter_constraints`` and checked by scikit-learn's own
``_validate_params``; what is learned ends in ``_``; ``random_state`` is resolved once per
``fit``) and takes the parameters of ``sklearn.neural_network.BernoulliRBM``, so it can replace it
in a ``Pipeline``::

    Pipeline([("rbm", RBMTransformer(n_components=100, learning_rate=0.06, n_iter=20)),
              ("logistic", LogisticRegression())])

Requires scikit-learn >= 1.6 (``sklearn.utils.validation.validate_data`` and
``__sklearn_tags__`` appeared in 1.6).
"""

from __future__ import annotations

import sys
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .models import RBM
from .training import CD, PCD, SGD, Callback, TrainState, fit
from .units import Bernoulli, Spin, Units, get_units

__all__ = ["RBMTransformer"]

# entries of a densified block of sparse rows (transform, score_samples): 32 MB of float32
_BLOCK_ENTRIES = 2 ** 23


class RBMTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Restricted Boltzmann machine as a scikit-learn transformer, in place of
    ``sklearn.neural_network.BernoulliRBM``.

    Training is persistent contrastive divergence by default (``method="pcd"``, ``k=1``, as many
    persistent chains as ``batch_size``), which is what BernoulliRBM does (it calls it
    stochastic maximum likelihood), so that swapping this class into a pipeline changes no
    learning rule. The command line (``boltzkit train``) keeps CD-1 as its own default, its
    cheap first run, with PCD one flag away (``--method pcd``); a drop-in keeps
    BernoulliRBM's.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    learning_rate : float, default=0.1
        Step size (> 0). Gaussian visible units need a smaller one (about 0.01, Hinton's
        practical guide, section 13.2): at 0.1 they diverge (``DivergenceError``).
    batch_size : int, default=10
        Rows per update, and the number of persistent chains.
    n_iter : int, default=10
        Passes over the training data (0: initialise only, as BernoulliRBM allows).
    verbose : int, default=0
        > 0: after every pass of ``fit``, BernoulliRBM's line on stdout, ``[RBMTransformer]
        Iteration i, pseudo-likelihood = ..., time = ...s`` (the pseudo-likelihood is the mean
        stochastic estimate over the training data, drawn from a generator of its own so that
        printing never changes what is learned; also stored in ``history_``). > 1: a progress
        bar as well.
    random_state : int, RandomState instance or None, default=None
        Resolved once per ``fit`` (or first ``partial_fit``) into the seed of the initial
        weights and of every draw made in training and in ``gibbs``.
    method : {"cd", "pcd"}, default="pcd"
        Contrastive divergence, or persistent CD (BernoulliRBM's rule).
    k : int, default=1
        Gibbs steps per update.
    momentum : float in [0, 1), default=0.0
    weight_decay : float >= 0, default=0.0
        L2 penalty on the weights.
    visible, hidden : str or boltzkit.units.Units, default="bernoulli"
        Unit families (see :func:`boltzkit.units.get_units`).
    device : str or torch.device, default="cpu"

    Attributes
    ----------
    model_ : boltzkit.RBM
    components_ : ndarray of shape (n_components, n_features)
        The weights, transposed as in BernoulliRBM.
    intercept_hidden_ : ndarray of shape (n_components,)
    intercept_visible_ : ndarray of shape (n_features,)
    h_samples_ : ndarray of shape (n_chains, n_components)
        Hidden states of the persistent chains (``method="pcd"`` only; ``n_chains`` is the
        ``batch_size`` the chains were made with), as in BernoulliRBM.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when X had string column names.
    history_ : list of dict
        Per-pass figures of the last ``fit`` or ``partial_fit`` call.

    The learned attributes are in the dtype of the last training data (float32 or float64);
    the model itself computes in float32.

    Notes
    -----
    Where it differs from BernoulliRBM, on purpose:

    - *Values outside the units' support are refused* (ValueError naming ``X``): Bernoulli
      visible units take [0, 1], grey values being used as probabilities in training (as in
      BernoulliRBM, which accepts any number without a word).
    - *Sparse matrices* (any ``scipy.sparse`` format) are accepted everywhere and densified:
      ``fit`` and ``partial_fit`` densify the whole matrix once, as float32 (4 bytes per entry:
      60000 x 784 is 188 MB), because the training driver draws its mini-batches from one dense
      tensor; ``transform`` and ``score_samples`` densify blocks of about 32 MB of rows;
      ``gibbs`` returns a dense array of the input's size anyway and densifies it at once.
    - ``partial_fit(X)`` makes one pass over X in mini-batches of ``batch_size`` (as
      ``MLPClassifier.partial_fit`` does); BernoulliRBM makes a single update with all of X as
      one batch. The two agree when X has at most ``batch_size`` rows, the usual streaming use.
      The persistent chains, the momentum buffers and the generator carry over from call to
      call (and from ``fit`` to a later ``partial_fit``).
    - ``score_samples`` is deterministic: it sums ``log sigmoid(F(v') - F(v))`` over *every*
      unit i (F the free energy, v' = v with ``v_i -> 1 - v_i``), exactly the expectation of
      what BernoulliRBM returns (the same term for one random unit per row, times
      n_features). On binary rows that is the pseudo-log-likelihood ``sum_i log p(v_i |
      v_-i)``; grey rows in [0, 1] get the same formula, as in BernoulliRBM (a proxy there,
      not a probability: binarise first for a pseudo-likelihood proper).
    - The visible biases start at the training data's base rates (Hinton's practical guide,
      section 8), BernoulliRBM's at zero; the random numbers are torch's, so equal seeds do not
      give BernoulliRBM's numbers.
    - ``gibbs`` returns the new visible states as floats in the input's dtype (BernoulliRBM: a
      boolean array).
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "random_state": ["random_state"],
        "method": [StrOptions({"cd", "pcd"})],
        "k": [Interval(Integral, 1, None, closed="left")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "visible": [str, Units],
        "hidden": [str, Units],
        "device": [str, torch.device],
    }

    def __init__(self, n_components=256, *, learning_rate=0.1, batch_size=10, n_iter=10,
                 verbose=0, random_state=None, method="pcd", k=1, momentum=0.0,
                 weight_decay=0.0, visible="bernoulli", hidden="bernoulli", device="cpu"):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.verbose = verbose
        self.random_state = random_state
        self.method = method
        self.k = k
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.visible = visible
        self.hidden = hidden
        self.device = device

    # -- checks --------------------------------------------------------------------------------
    def _settings(self):
        """Validate the parameters (scikit-learn's constraints, then what only boltzkit can
        judge: unit names, the device). Returns the visible and hidden families."""
        self._validate_params()
        families = []
        for name in ("visible", "hidden"):
            try:
                families.append(get_units(getattr(self, name)))
            except ValueError as err:
                msg = str(err)
                msg = msg[len("units: "):] if msg.startswith("units: ") else msg
                raise ValueError(f"{name}: {msg}") from None
        try:
            torch.empty(0, device=self.device)
        except (RuntimeError, AssertionError, ValueError, TypeError) as err:
            raise ValueError(f"device: cannot use {self.device!r} ({err})") from None
        return families

    def _validate(self, X, reset):
        """X validated by scikit-learn (2-D, finite, feature count and names): a float32 or
        float64 ndarray, or a CSR matrix."""
        return validate_data(self, X, reset=reset, accept_sparse="csr",
                             dtype=(np.float64, np.float32))

    def _dense(self, X, name="X", relaxed=True, units=None):
        """Rows of validated X as a float32 tensor on the device, checked against the visible
        units' support (``relaxed``: its convex hull, grey values for binary units)."""
        if sp.issparse(X):
            arr = X.astype(np.float32).toarray()
        else:  # a view of float32 input when it can be one (nothing writes into it)
            arr = np.require(X, np.float32, ["C", "W"])
        v = torch.from_numpy(arr).to(self.device)
        units = units if units is not None else self.model_.visible
        try:
            units.check(v, name, relaxed)
        except ValueError as err:
            if isinstance(units, Bernoulli) and v.numel() and bool(v.min() < 0):
                # scikit-learn's wording for estimators tagged positive_only
                raise ValueError(f"{err} (Negative values in data passed to "
                                 f"{type(self).__name__})") from None
            raise
        return v

    def _blocks(self, X, relaxed):
        """Checked tensors of blocks of rows of X: one block for dense X, blocks of about
        32 MB densified in turn for sparse X."""
        if not sp.issparse(X):
            yield self._dense(X, relaxed=relaxed)
            return
        rows = max(1, _BLOCK_ENTRIES // max(X.shape[1], 1))
        for s in range(0, X.shape[0], rows):
            yield self._dense(X[s:s + rows], relaxed=relaxed)

    # -- training ------------------------------------------------------------------------------
    def _estimator(self):
        return CD(int(self.k)) if self.method == "cd" else PCD(int(self.k), int(self.batch_size))

    def _start(self, n_features, visible, hidden):
        """Resolve random_state once and make a fresh model, generator and no training state:
        what fit (and a first partial_fit) begin with."""
        self._seed_ = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._gen_ = torch.Generator(device=self.device).manual_seed(self._seed_)
        self.model_ = RBM(n_features, int(self.n_components), visible, hidden,
                          generator=torch.Generator().manual_seed(self._seed_))
        self.model_.to(self.device)
        self._state_ = None

    def _train(self, v, epochs, first, report):
        callbacks = [_IterationReport(self, v)] if report and self.verbose else []
        state = fit(self.model_, v, estimator=self._estimator(), epochs=epochs,
                    batch_size=int(self.batch_size), lr=float(self.learning_rate),
                    update=SGD(float(self.momentum), float(self.weight_decay)),
                    init_visible_bias=first, generator=self._gen_, callbacks=callbacks,
                    progress=self.verbose > 1, initial_state=self._state_)
        self._state_ = state
        self.history_ = state.history
        if state.interrupted:
            # the driver stopped at a batch boundary (Ctrl-C / SIGTERM); a pipeline must not go
            # on with a half-trained model as if nothing happened
            raise KeyboardInterrupt(f"RBMTransformer: training interrupted "
                                    f"({state.signal or 'SIGINT'}) after {state.step} updates")

    def _publish(self, dtype):
        m = self.model_
        self.components_ = m.weight.detach().cpu().numpy().T.astype(dtype)
        self.intercept_hidden_ = m.hidden_bias.detach().cpu().numpy().astype(dtype)
        self.intercept_visible_ = m.visible_bias.detach().cpu().numpy().astype(dtype)
        chains = getattr(self._state_, "estimator_state", None)
        if hasattr(chains, "hidden"):
            self.h_samples_ = chains.hidden.detach().cpu().numpy().astype(dtype)
        elif hasattr(self, "h_samples_"):
            del self.h_samples_  # trained on with CD: no chains any more
        self._n_features_out = m.n_hidden

    # -- scikit-learn API ----------------------------------------------------------------------
    def fit(self, X, y=None):
        """Fit the model to X, array-like or sparse matrix of shape (n_samples, n_features),
        values in the visible units' support (or its convex hull). Returns self."""
        visible, hidden = self._settings()
        X = self._validate(X, reset=True)
        v = self._dense(X, units=visible)
        self._start(v.shape[1], visible, hidden)
        try:
            if self.n_iter == 0:  # initialise only; the chains exist for a later partial_fit
                with torch.no_grad():
                    self.model_.init_visible_bias(v)
                    chains = self._estimator().init_state(self.model_, v, self._gen_)
                self._state_ = TrainState(model=self.model_, generator=self._gen_, epochs=0,
                                          estimator_state=chains)
                self.history_ = []
            else:
                self._train(v, int(self.n_iter), first=True, report=True)
        finally:  # also after a divergence (the model is back at its last finished pass)
            self._publish(X.dtype)
        return self

    def partial_fit(self, X, y=None):
        """One pass of updates over X (in mini-batches of ``batch_size``), continuing the
        model, the persistent chains, the momentum buffers and the generator of earlier calls
        (the first call on an unfitted estimator starts them). Returns self."""
        visible, hidden = self._settings()
        first = not hasattr(self, "model_")
        X = self._validate(X, reset=first)
        v = self._dense(X, units=visible if first else self.model_.visible)
        if first:
            self._start(v.shape[1], visible, hidden)
        try:
            self._train(v, 1, first=first, report=False)
        finally:
            self._publish(X.dtype)
        return self

    @torch.no_grad()
    def transform(self, X):
        """Hidden activation probabilities E[h | v], shape (n_samples, n_components), in X's
        floating dtype (float32 or float64). X may be sparse."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        h = torch.cat([self.model_.hidden_mean(v) for v in self._blocks(X, relaxed=True)])
        return h.cpu().numpy().astype(X.dtype, copy=False)

    def _two_state(self):
        return isinstance(self.model_.visible, (Bernoulli, Spin))

    @torch.no_grad()
    def _pseudo_log_likelihood(self, v, generator=None):
        """Per-row pseudo-log-likelihood of the tensor ``v`` (n, n_features), shape (n,):
        exact (every unit) without ``generator``, else the stochastic one-unit estimate times
        n_features. Two-state visible units also take grey rows (the flip formula)."""
        from .evaluation import pseudo_likelihood

        m = self.model_
        if not self._two_state():
            return pseudo_likelihood(m, v, generator)
        # the flip formula of evaluation.pseudo_likelihood, evaluated without its support check
        # (grey rows; see score_samples), through its own helper
        from .evaluation.likelihood import _pl_binary

        idx = None
        if generator is not None:
            idx = torch.randint(0, m.n_visible, (v.shape[0],), generator=generator,
                                device=generator.device).to(v.device)
        return _pl_binary(m, v, m.weight.detach(), m.visible_bias.detach(),
                          m.hidden_bias.detach(), idx)

    def score_samples(self, X):
        """Pseudo-log-likelihood of each row, shape (n_samples,), in nats, X's floating dtype.

        ``sum_i log sigmoid(F(v') - F(v))`` over every visible unit i, where F is the free
        energy and v' is v with unit i flipped (``1 - v_i`` for Bernoulli, ``-v_i`` for spin
        units): on binary rows the exact ``sum_i log p(v_i | v_-i)``; on grey rows in [0, 1]
        the same formula (what BernoulliRBM computes there). BernoulliRBM returns a random
        estimate of it (one random unit per row, times n_features); this returns its
        expectation, deterministically, at n_features times the cost. Gaussian and softmax
        visible units need rows on their support. X may be sparse."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        relaxed = self._two_state()
        out = [self._pseudo_log_likelihood(v) for v in self._blocks(X, relaxed=relaxed)]
        return torch.cat(out).cpu().numpy().astype(X.dtype, copy=False)

    @torch.no_grad()
    def gibbs(self, v):
        """One block-Gibbs step from visible states v (n_samples, n_features), dense or sparse,
        values in [0, 1] for Bernoulli units; returns the new visible sample, a dense array of
        shape (n_samples, n_features) in v's floating dtype. Draws from the training
        generator."""
        check_is_fitted(self)
        X = self._validate(v, reset=False)
        t = self._dense(X, name="v")
        return self.model_.gibbs_vhv(t, self._gen_)[1].cpu().numpy().astype(X.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            binary = isinstance(get_units(self.visible), Bernoulli)
        except ValueError:
            binary = False
        tags.input_tags.positive_only = binary
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class _IterationReport(Callback):
    """BernoulliRBM's verbose line after every epoch (stdout): the pass, the mean stochastic
    pseudo-log-likelihood of the training data (also put in the epoch's history entry as
    ``pseudo_likelihood``) and the pass's training time. Its draws come from a generator of its
    own, seeded from the estimator's seed: verbose output never changes what is learned."""

    def __init__(self, owner: RBMTransformer, v: torch.Tensor):
        self.owner, self.v = owner, v
        self.generator = torch.Generator(device=v.device).manual_seed(owner._seed_ ^ 0x5EED)
        self.last = 0.0

    def on_fit_start(self, state):
        self.last = state.seconds

    def on_epoch_end(self, state):
        try:
            pl = float(self.owner._pseudo_log_likelihood(self.v, self.generator).mean())
        except ValueError:  # e.g. grey rows for softmax units: no pseudo-likelihood
            pl = float("nan")
        state.history[-1]["pseudo_likelihood"] = pl
        print(f"[{type(self.owner).__name__}] Iteration {state.epoch}, pseudo-likelihood = "
              f"{pl:.2f}, time = {state.seconds - self.last:.2f}s", file=sys.stdout, flush=True)
        self.last = state.seconds
