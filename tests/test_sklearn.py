import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import BernoulliRBM
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import check_estimator
from threadpoolctl import threadpool_limits

from boltzkit.sklearn import RBMTransformer


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return train_test_split(x / 16.0, y, test_size=0.3, random_state=0)


def pipeline_accuracy(rbm, digits):
    x_train, x_test, y_train, y_test = digits
    pipe = Pipeline([("rbm", rbm), ("logistic", LogisticRegression(C=10, max_iter=300))])
    # OpenBLAS threads fighting torch's OpenMP threads for 2 cores made lbfgs 50x slower here
    with threadpool_limits(1, user_api="blas"):
        return pipe.fit(x_train, y_train).score(x_test, y_test)


def test_replaces_bernoulli_rbm_in_a_pipeline(digits):
    settings = dict(n_components=100, learning_rate=0.06, n_iter=10, batch_size=10,
                    random_state=0)
    ours = pipeline_accuracy(RBMTransformer(**settings), digits)
    theirs = pipeline_accuracy(BernoulliRBM(**settings), digits)
    # both learn features a linear classifier can use (chance is 0.1); ours is not worse by
    # more than the spread one sees between random seeds of the same model (a few points)
    assert ours > 0.85 and ours > theirs - 0.03, (ours, theirs)


def test_api_shapes_and_dtypes(digits):
    x = digits[0][:200]
    rbm = RBMTransformer(n_components=12, n_iter=2, random_state=1).fit(x)
    assert rbm.components_.shape == (12, 64)
    assert rbm.intercept_hidden_.shape == (12,) and rbm.intercept_visible_.shape == (64,)
    h = rbm.transform(x)
    assert h.shape == (200, 12) and h.dtype == np.float64 and ((h >= 0) & (h <= 1)).all()
    assert rbm.transform(x.astype(np.float32)).dtype == np.float32
    v = rbm.gibbs((x > 0.5).astype(np.float64))
    assert v.shape == x.shape and set(np.unique(v)) <= {0.0, 1.0}
    assert list(rbm.get_feature_names_out()) == [f"rbmtransformer{i}" for i in range(12)]
    assert len(rbm.history_) == 2
    binary = (x > 0.5) * 1.0
    from boltzkit.evaluation import pseudo_likelihood
    import torch
    expected = pseudo_likelihood(rbm.model_, torch.tensor(binary, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(rbm.score_samples(binary), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"X: bernoulli units take values in \{0, 1\}"):
        rbm.score_samples(x)  # grey values: no pseudo-likelihood
    # equal random_state, equal model; clone keeps the parameters only
    again = clone(rbm).fit(x)
    np.testing.assert_array_equal(again.components_, rbm.components_)


def test_partial_fit_updates_in_place(digits):
    x = digits[0][:300]
    rbm = RBMTransformer(n_components=10, batch_size=20, random_state=0)
    rbm.partial_fit(x[:150])
    first = rbm.components_.copy()
    rbm.partial_fit(x[150:])
    assert rbm.components_.shape == (10, 64) and not np.allclose(first, rbm.components_)


def test_rejects_bad_input(digits):
    rbm = RBMTransformer(n_components=5, n_iter=1, random_state=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rbm.fit(digits[0] * 16)  # raw 0..16 pixels: outside the units' support
    with pytest.raises(ValueError, match="NaN"):
        rbm.fit(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="n_components: expected a positive integer"):
        RBMTransformer(n_components=0).fit(digits[0])
    fitted = RBMTransformer(n_components=5, n_iter=1, random_state=0).fit(digits[0][:50])
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.zeros((2, 3)))


def test_scikit_learn_estimator_checks():
    # Bernoulli visible units reject values outside [0, 1] on purpose (scikit-learn's generic
    # checks feed unbounded data), so the generic checks run with Gaussian visible units.
    results = check_estimator(RBMTransformer(n_components=4, n_iter=2, random_state=0,
                                             visible="gaussian", learning_rate=0.01),
                              on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed
