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
    # grey values are scored too (see test_score_samples_is_the_expectation_of_bernoulli_rbms)
    assert rbm.score_samples(x).shape == (200,)
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
    with pytest.raises(ValueError, match="'n_components' parameter of RBMTransformer must be"):
        RBMTransformer(n_components=0).fit(digits[0])
    fitted = RBMTransformer(n_components=5, n_iter=1, random_state=0).fit(digits[0][:50])
    with pytest.raises(ValueError, match="features"):
        fitted.transform(np.zeros((2, 3)))


# -- scikit-learn's generic checks -------------------------------------------------------------
# With Bernoulli visible units (the default) these checks fail on purpose, all for one reason:
# scikit-learn feeds data that it makes non-negative (the positive_only tag) but not bounded, and
# Bernoulli units take values in [0, 1] and refuse anything else with a ValueError naming X.
OUT_OF_RANGE = "the generic checks' data exceed 1; Bernoulli units take [0, 1] and refuse it"
EXPECTED_FAILURES = {name: OUT_OF_RANGE for name in (
    "check_estimators_overwrite_params", "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self", "check_readonly_memmap_input",
    "check_n_features_in_after_fitting", "check_estimators_dtypes", "check_pipeline_consistency",
    "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array", "check_transformer_general",
    "check_transformer_preserve_dtypes", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_dict_unchanged", "check_fit_idempotent",
    "check_fit_check_is_fitted", "check_n_features_in", "check_fit2d_predict1d",
    # these two accept a ValueError only if it speaks of the one sample / feature they feed;
    # ours speaks of the values (3 * uniform) instead
    "check_fit2d_1sample", "check_fit2d_1feature")}


def test_scikit_learn_estimator_checks_with_defaults():
    results = check_estimator(RBMTransformer(), on_fail=None,
                              expected_failed_checks=EXPECTED_FAILURES)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed
    xfailed = [r for r in results if r["status"] == "xfail"]
    # each expected failure happens, and happens for the stated reason only
    assert {r["check_name"] for r in xfailed} == set(EXPECTED_FAILURES)
    for r in xfailed:
        assert "X: bernoulli units take values in [0, 1]" in str(r["exception"]), r
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    # what the defaults must pass: the positive_only message, sparse input, parameter checks
    assert {"check_positive_only_tag_during_fit", "check_estimator_sparse_matrix",
            "check_estimator_sparse_array", "check_parameters_default_constructible",
            "check_no_attributes_set_in_init", "check_get_params_invariance"} <= passed


def test_scikit_learn_estimator_checks_with_gaussian_units():
    # what the README claims: every generic check passes with Gaussian visible units at the
    # learning rate they need (the other parameters left at their defaults)
    results = check_estimator(RBMTransformer(visible="gaussian", learning_rate=0.01),
                              on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert not failed


def test_gaussian_units_need_a_smaller_learning_rate():
    # why the README says learning_rate=0.01 for Gaussian units: at BernoulliRBM's default 0.1
    # a 256-unit Gaussian-Bernoulli RBM runs away even on standardised data
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    from boltzkit.training import DivergenceError

    x = StandardScaler().fit_transform(load_iris().data)
    with pytest.raises(DivergenceError, match="lower the learning rate, currently 0.1"):
        RBMTransformer(visible="gaussian", random_state=0).fit(x)
    h = RBMTransformer(visible="gaussian", learning_rate=0.01, random_state=0).fit_transform(x)
    assert np.isfinite(h).all()


def test_parameters_are_validated_by_scikit_learn(digits):
    from sklearn.base import BaseEstimator
    from sklearn.utils._param_validation import InvalidParameterError

    # scikit-learn's own mechanism, not a hand-written override
    assert RBMTransformer._validate_params is BaseEstimator._validate_params
    x = digits[0][:20]
    with pytest.raises(InvalidParameterError, match=r"The 'learning_rate' parameter of "
                       r"RBMTransformer must be a float in the range \(0.0, inf\)\. Got 'fast'"):
        RBMTransformer(learning_rate="fast").fit(x)
    for bad in (dict(method="sgd"), dict(momentum=1.0), dict(n_iter=-1), dict(k=0),
                dict(batch_size=2.5), dict(weight_decay=-1e-4), dict(verbose=-1),
                dict(random_state="seed"), dict(learning_rate=float("inf"))):
        name = next(iter(bad))
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            RBMTransformer(**bad).fit(x)
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
            RBMTransformer(**bad).partial_fit(x)
    with pytest.raises(ValueError, match="visible: expected one of"):
        RBMTransformer(visible="binomial").fit(x)
    with pytest.raises(ValueError, match="device: cannot use 'abacus'"):
        RBMTransformer(device="abacus").fit(x)
    # n_iter=0 is allowed, as in BernoulliRBM: initialised, not trained
    rbm = RBMTransformer(n_components=3, n_iter=0, random_state=0).fit(x)
    assert rbm.history_ == [] and rbm.h_samples_.shape == (10, 3)
    assert np.abs(rbm.components_).max() < 0.1  # the initial N(0, 0.01) weights


# -- partial_fit: the persistent chains, momentum and generator carry over ------------------------
def test_fit_initial_state_warm_starts_the_chains_and_momentum(digits):
    import torch

    from boltzkit import RBM
    from boltzkit.training import PCD, SGD, fit

    x = torch.tensor(digits[0][:100], dtype=torch.float32)

    def run(epochs, model=None, gen=None, **kw):
        model = model or RBM(64, 8, generator=torch.Generator().manual_seed(0))
        gen = gen or torch.Generator().manual_seed(1)
        return fit(model, x, estimator=PCD(1, 10), update=SGD(0.5), epochs=epochs,
                   batch_size=10, lr=0.05, generator=gen, monitors=[], **kw)

    whole = run(2)
    first = run(1)
    buffers = {k: v.clone() for k, v in first.update_state.items()}
    chains = first.estimator_state
    second = run(1, model=first.model, gen=first.generator, initial_state=first,
                 init_visible_bias=False)
    # the two halves are the run done at once, bit for bit: chains, momentum and the
    # generator's stream all continued (nothing re-initialised)
    for k, p in whole.model.state_dict().items():
        assert torch.equal(second.model.state_dict()[k], p), k
    assert torch.equal(second.estimator_state.visible, whole.estimator_state.visible)
    assert torch.equal(second.update_state["weight"], whole.update_state["weight"])
    # the earlier state is left as it was (its buffers were copied, its chains not replaced)
    assert first.estimator_state is chains
    assert all(torch.equal(first.update_state[k], b) for k, b in buffers.items())
    # the generator defaults to the earlier run's; other data is fine (no resume check)
    third = fit(first.model, x[:30], estimator=PCD(1, 10), update=SGD(0.5), epochs=1,
                batch_size=10, lr=0.05, monitors=[], initial_state=second)
    assert third.generator is second.generator and third.epoch == 1
    with pytest.raises(ValueError, match="initial_state: expected either resume"):
        run(3, initial_state=first, resume=whole)
    with pytest.raises(ValueError, match="initial_state: expected a TrainState"):
        run(1, initial_state={"estimator_state": chains})
    wrong = run(1)
    wrong.update_state = {"weight": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match="initial_state: update buffer 'weight'"):
        run(1, initial_state=wrong)


def test_partial_fit_keeps_the_persistent_chains(digits, monkeypatch):
    from boltzkit.training import PCD

    x = digits[0][:300]
    inits = []
    original = PCD.init_state

    def counting(self, *args, **kwargs):
        inits.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PCD, "init_state", counting)
    rbm = RBMTransformer(n_components=10, batch_size=20, momentum=0.5, random_state=0)
    previous = None
    for batch in np.array_split(x, 15):
        rbm.partial_fit(batch)
        assert rbm.h_samples_.shape == (20, 10)
        assert set(np.unique(rbm.h_samples_)) <= {0.0, 1.0}
        if previous is not None:
            assert not np.array_equal(previous, rbm.h_samples_)  # the chains move
        previous = rbm.h_samples_.copy()
    assert len(inits) == 1  # made once, kept for 15 calls (was: once per call)
    assert rbm._state_.update_state  # momentum buffers kept as well
    # a pass of partial_fit is a pass of fit: two calls on X are fit(X) with n_iter=2, bit for
    # bit (initial weights, chains, momentum buffers and generator stream all carried over)
    a = RBMTransformer(n_components=10, batch_size=20, momentum=0.5, n_iter=2,
                       random_state=3).fit(x)
    b = RBMTransformer(n_components=10, batch_size=20, momentum=0.5, random_state=3)
    b.partial_fit(x).partial_fit(x)
    np.testing.assert_array_equal(a.components_, b.components_)
    np.testing.assert_array_equal(a.h_samples_, b.h_samples_)
    # fit, then partial_fit, continues fit's chains; a new fit starts afresh
    inits.clear()
    a.partial_fit(x[:20])
    assert not inits
    a.fit(x)
    assert len(inits) == 1
    # CD keeps no chains: no h_samples_
    assert not hasattr(RBMTransformer(n_components=4, method="cd", n_iter=1).fit(x),
                       "h_samples_")


# -- sparse input, grey values -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csr", "csc", "lil", "coo"])
def test_sparse_input_is_accepted_and_equals_dense(digits, fmt, monkeypatch):
    import scipy.sparse as sp

    import boltzkit.sklearn as bs

    x = digits[0][:120]
    xs = sp.random(1, 1, format=fmt)  # the format's class
    xs = type(xs)(x)
    settings = dict(n_components=8, n_iter=2, random_state=0)
    dense = RBMTransformer(**settings).fit(x)
    sparse = RBMTransformer(**settings).fit(xs)
    np.testing.assert_array_equal(dense.components_, sparse.components_)
    np.testing.assert_array_equal(dense.transform(x), sparse.transform(xs))
    np.testing.assert_array_equal(dense.score_samples(x), sparse.score_samples(xs))
    np.testing.assert_array_equal(dense.gibbs(x), sparse.gibbs(xs))
    partial = RBMTransformer(**settings).partial_fit(xs)
    np.testing.assert_array_equal(partial.components_,
                                  RBMTransformer(**settings).partial_fit(x).components_)
    # transform and score_samples densify sparse X block by block: same rows, same answers
    monkeypatch.setattr(bs, "_BLOCK_ENTRIES", 64 * 7)  # blocks of 7 rows
    np.testing.assert_allclose(sparse.transform(xs), dense.transform(x), rtol=1e-6)
    np.testing.assert_allclose(sparse.score_samples(xs), dense.score_samples(x), rtol=1e-6)
    with pytest.raises(ValueError, match="X: bernoulli units take values in"):
        sparse.transform(xs * 2.0)


def free_energy64(v, w, a, b):
    """BernoulliRBM's free energy, F(v) = -v.a - sum_j softplus(b_j + v.W_j), in float64."""
    return -v @ a - np.logaddexp(0, v @ w.T + b).sum(1)


def test_score_samples_is_the_expectation_of_bernoulli_rbms(digits):
    # BernoulliRBM.score_samples flips one random unit i per row (v_i -> 1 - v_i, also on grey
    # values) and returns n_features * log sigmoid(F(flipped) - F(v)); the expectation over i is
    # the sum over all units, which is what ours returns
    x = digits[0][:20]
    rbm = RBMTransformer(n_components=16, n_iter=3, random_state=0).fit(digits[0])
    w, a, b = (np.asarray(t, np.float64) for t in (rbm.components_, rbm.intercept_visible_,
                                                    rbm.intercept_hidden_))
    expected = np.zeros(len(x))
    for i in range(x.shape[1]):
        flipped = x.copy()
        flipped[:, i] = 1 - flipped[:, i]
        expected -= np.logaddexp(0, free_energy64(x, w, a, b) - free_energy64(flipped, w, a, b))
    ours = rbm.score_samples(x)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    # and against BernoulliRBM's own code, given our parameters: the mean of its random
    # estimates over R seeds agrees with ours. Per row z = (mean - ours) / standard error (from
    # the estimates' own spread) is about N(0, 1), so sum z^2 over the 20 rows is about
    # chi-square(20), below 52 with probability 1 - 1e-4. Power: scoring the binarised rows
    # instead (what the old score_samples required) gives sum z^2 near 200 at this R.
    theirs = BernoulliRBM(n_components=16, n_iter=0).fit(x)
    theirs.components_, theirs.intercept_visible_, theirs.intercept_hidden_ = w, a, b
    R = 1000
    draws = np.array([theirs.set_params(random_state=s).score_samples(x) for s in range(R)])
    z = (draws.mean(0) - ours) / (draws.std(0, ddof=1) / np.sqrt(R))
    assert (z ** 2).sum() < 52, z


def test_verbose_prints_bernoulli_rbms_line_and_learns_the_same(digits, capsys):
    import re

    x = digits[0][:200]
    quiet = RBMTransformer(n_components=8, n_iter=3, random_state=0).fit(x)
    capsys.readouterr()
    loud = RBMTransformer(n_components=8, n_iter=3, random_state=0, verbose=1).fit(x)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines, 1):
        assert re.fullmatch(rf"\[RBMTransformer\] Iteration {i}, pseudo-likelihood = "
                            r"-\d+\.\d\d, time = \d+\.\d\ds", line), line
    # printing draws from its own generator: the model learned is the same
    np.testing.assert_array_equal(quiet.components_, loud.components_)
    assert all(isinstance(h["pseudo_likelihood"], float) for h in loud.history_)


def test_an_interrupted_fit_raises_instead_of_returning_half_trained(digits, monkeypatch):
    import boltzkit.sklearn as bs

    real = bs.fit

    def interrupted(*args, **kwargs):  # what the driver hands back after Ctrl-C / SIGTERM
        state = real(*args, **kwargs)
        state.interrupted, state.signal = True, "SIGTERM"
        return state

    monkeypatch.setattr(bs, "fit", interrupted)
    rbm = RBMTransformer(n_components=4, n_iter=1, random_state=0)
    with pytest.raises(KeyboardInterrupt, match="interrupted \\(SIGTERM\\)"):
        rbm.fit(digits[0][:50])
    assert rbm.components_.shape == (4, 64)  # what was learned is still published
