"""scikit-learn estimators: a thin layer over :class:`boltzkit.RBM` and :func:`boltzkit.training.fit`.

:class:`RBMTransformer` follows scikit-learn's conventions (``__init__`` only stores its arguments;
what is learned ends in ``_``; ``random_state`` is resolved once in ``fit``) and takes the
parameters of ``sklearn.neural_network.BernoulliRBM``, so it can replace it in a ``Pipeline``::

    Pipeline([("rbm", RBMTransformer(n_components=100, learning_rate=0.06, n_iter=20)),
              ("logistic", LogisticRegression())])
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .models import RBM
from .training import CD, PCD, SGD, fit

__all__ = ["RBMTransformer"]


class RBMTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Restricted Boltzmann machine as a scikit-learn transformer.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    learning_rate : float, default=0.1
    batch_size : int, default=10
    n_iter : int, default=10
        Passes over the training data.
    verbose : int, default=0
        Show a progress bar when > 0.
    random_state : int, RandomState instance or None, default=None
    method : {"cd", "pcd"}, default="pcd"
        Contrastive divergence or persistent CD (BernoulliRBM uses PCD).
    k : int, default=1
        Gibbs steps per update.
    momentum : float, default=0.0
    weight_decay : float, default=0.0
    visible, hidden : str, default="bernoulli"
        Unit families (see :func:`boltzkit.units.get_units`).
    device : str, default="cpu"

    Attributes
    ----------
    model_ : boltzkit.RBM
    components_ : ndarray of shape (n_components, n_features)
        The weights, transposed as in BernoulliRBM.
    intercept_hidden_ : ndarray of shape (n_components,)
    intercept_visible_ : ndarray of shape (n_features,)
    n_features_in_ : int
    history_ : list of dict
        Per-epoch figures of the last ``fit``.

    Notes
    -----
    Bernoulli visible units take values in [0, 1]: grey values are used as probabilities during
    training, as in BernoulliRBM. ``partial_fit`` restarts the momentum at every call.
    """

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

    # -- helpers -------------------------------------------------------------------------------
    def _validate_params(self):
        for name in ("n_components", "batch_size", "n_iter", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if self.method not in ("cd", "pcd"):
            raise ValueError(f"method: expected 'cd' or 'pcd', got {self.method!r}")

    def _tensor(self, X, reset):
        """Validated X as a float32 tensor, and the numpy dtype results are returned in."""
        X = validate_data(self, X, reset=reset, dtype=(np.float64, np.float32),
                          accept_sparse=False)
        return torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device), X.dtype

    def _estimator(self):
        return CD(int(self.k)) if self.method == "cd" else PCD(int(self.k), int(self.batch_size))

    def _generator(self):
        return torch.Generator(device=self.device).manual_seed(int(self._seed_))

    def _publish(self):
        m = self.model_
        self.components_ = m.weight.detach().cpu().numpy().T.copy()
        self.intercept_hidden_ = m.hidden_bias.detach().cpu().numpy().copy()
        self.intercept_visible_ = m.visible_bias.detach().cpu().numpy().copy()
        self._n_features_out = self.n_components

    def _train(self, v, epochs, first):
        state = fit(self.model_, v, estimator=self._estimator(), epochs=epochs,
                    batch_size=int(self.batch_size), lr=float(self.learning_rate),
                    update=SGD(float(self.momentum), float(self.weight_decay)),
                    init_visible_bias=first, generator=self._gen_,
                    progress=bool(self.verbose))
        self.history_ = state.history
        self._publish()
        return self

    # -- scikit-learn API ----------------------------------------------------------------------
    def _start(self, n_features):
        """Resolve random_state once and make a fresh model: what fit (and a first
        partial_fit) begin with."""
        self._seed_ = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        self._gen_ = self._generator()
        self.model_ = RBM(n_features, int(self.n_components), self.visible, self.hidden,
                          generator=torch.Generator().manual_seed(int(self._seed_)))
        self.model_.to(self.device)

    def fit(self, X, y=None):
        """Fit the model to X of shape (n_samples, n_features). Returns self."""
        self._validate_params()
        v, _ = self._tensor(X, reset=True)
        self._start(v.shape[1])
        return self._train(v, int(self.n_iter), first=True)

    def partial_fit(self, X, y=None):
        """One pass of updates over X (in mini-batches). Returns self."""
        self._validate_params()
        first = not hasattr(self, "model_")
        v, _ = self._tensor(X, reset=first)
        if first:
            self._start(v.shape[1])
        return self._train(v, 1, first=first)

    @torch.no_grad()
    def transform(self, X):
        """Hidden activation probabilities E[h | v], shape (n_samples, n_components), in X's
        floating dtype."""
        check_is_fitted(self)
        v, dtype = self._tensor(X, reset=False)
        v = self.model_.check_visible(v, "X", relaxed=True)
        return self.model_.hidden_mean(v).cpu().numpy().astype(dtype, copy=False)

    @torch.no_grad()
    def score_samples(self, X):
        """Pseudo-log-likelihood of each row, shape (n_samples,), in nats.

        Unlike BernoulliRBM, which flips one randomly chosen unit per row and scales by the
        number of features (an unbiased but noisy estimate), this sums log p(v_i | v_-i) over
        every unit: deterministic and exact, at n_features times the cost. It is defined on the
        units' support only: binarise grey data first (a ValueError says so)."""
        from .evaluation import pseudo_likelihood

        check_is_fitted(self)
        v, dtype = self._tensor(X, reset=False)
        v = self.model_.check_visible(v, "X")
        return pseudo_likelihood(self.model_, v).cpu().numpy().astype(dtype, copy=False)

    @torch.no_grad()
    def gibbs(self, v):
        """One block-Gibbs step from visible states v (n_samples, n_features); returns the new
        visible sample, shape (n_samples, n_features)."""
        check_is_fitted(self)
        t, dtype = self._tensor(v, reset=False)
        t = self.model_.check_visible(t, "v", relaxed=True)
        return self.model_.gibbs_vhv(t, self._gen_)[1].cpu().numpy().astype(dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.visible == "bernoulli"
        return tags
