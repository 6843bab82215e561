"""The fast paths of the training loop compute what the plain ones do.

- fit folds the SGD update into the gradient products for CD/PCD (``Statistics`` + the fused
  step that ``SGD.fused`` offers); the reference is the textbook loop: the estimator's gradient
  handed to ``torch.optim.SGD``, on the same random numbers. In float64 the two agree to
  rounding (a float32 rounding difference could flip a Bernoulli draw and fork the chains).
- ``units.uniform`` draws float32 uniforms from 64-bit integer draws: same grid and
  distribution as ``torch.rand``.
- the unit checks take a one-pass min/max fast path and must still reject what they rejected.
"""

import math

import pytest
import torch

from boltzkit import RBM
from boltzkit.training import CD, PCD, SGD, fit
from boltzkit.units import Bernoulli, Gaussian, Spin, uniform

from .conftest import gen


def reference_fit(model, data, estimator, *, epochs, batch_size, lr, momentum, weight_decay,
                  seed):
    """fit's loop written with torch.optim.SGD and the estimator's gradient (no fast paths)."""
    g = gen(seed)
    model.init_visible_bias(data)
    params = [model.weight, model.visible_bias, model.hidden_bias]
    opt = torch.optim.SGD([{"params": params[:1], "weight_decay": weight_decay},
                           {"params": params[1:], "weight_decay": 0.0}],
                          lr=lr, momentum=momentum)
    n = data.shape[0]
    with torch.no_grad():
        chains = estimator.init_state(model, data, g)
        for _ in range(epochs):
            perm = torch.randperm(n, generator=g)
            for b in range(math.ceil(n / batch_size)):
                batch = data.index_select(0, perm[b * batch_size:(b + 1) * batch_size])
                grad, chains = estimator(model, batch, chains, g)
                for p, name in zip(params, ("weight", "visible_bias", "hidden_bias")):
                    p.grad = grad[name]
                opt.step()
    for p in params:
        p.grad = None


class PlainCD(CD):
    """Declines the fused path (with the same gradient): fit then takes the generic path."""

    dense_statistics = False


def binary_data(n, d, seed):
    return (torch.rand(n, d, generator=gen(seed), dtype=torch.float64) < 0.3).double()


@pytest.mark.parametrize("estimator", [CD(1), CD(2), PCD(1, n_chains=7), PlainCD(1)], ids=repr)
@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.0, 0.01), (0.5, 0.0),
                                                   (0.9, 0.01)])
def test_fit_update_equals_torch_sgd_on_the_estimator_gradient(estimator, momentum,
                                                                weight_decay):
    data = binary_data(45, 9, 1)  # 45 rows, batch 10: the last batch is smaller
    settings = dict(epochs=3, batch_size=10, lr=0.2, momentum=momentum,
                    weight_decay=weight_decay)
    fast = RBM(9, 5, generator=gen(0), dtype=torch.float64)
    ref = RBM(9, 5, generator=gen(0), dtype=torch.float64)
    fit(fast, data, estimator=estimator, generator=gen(3), epochs=3, batch_size=10, lr=0.2,
        update=SGD(momentum, weight_decay))
    reference_fit(ref, data, estimator, seed=3, **settings)
    start = RBM(9, 5, generator=gen(0), dtype=torch.float64)
    assert (ref.weight - start.weight).abs().max() > 1e-3  # training moved the weights
    for name in ("weight", "visible_bias", "hidden_bias"):
        torch.testing.assert_close(getattr(fast, name), getattr(ref, name), rtol=0, atol=1e-12)


def test_float32_fit_matches_reference_over_a_few_steps():
    data = binary_data(30, 12, 2).float()
    settings = dict(epochs=1, batch_size=10, lr=0.1, momentum=0.5, weight_decay=1e-3)
    fast, ref = RBM(12, 6, generator=gen(0)), RBM(12, 6, generator=gen(0))
    fit(fast, data, estimator=CD(1), generator=gen(4), epochs=1, batch_size=10, lr=0.1,
        update=SGD(0.5, 1e-3))
    reference_fit(ref, data, CD(1), seed=4, **settings)
    torch.testing.assert_close(fast.weight, ref.weight, rtol=0, atol=1e-6)


def test_uniform_is_torch_rand_distribution_on_the_float32_grid():
    a = uniform((1000, 1001), gen(5))
    assert a.shape == (1000, 1001) and a.dtype == torch.float32
    assert torch.equal(a, uniform((1000, 1001), gen(5)))  # equal seeds, equal draws
    assert not torch.equal(a, uniform((1000, 1001), gen(6)))
    assert a.min() >= 0 and a.max() < 1
    assert torch.equal(a * 2 ** 24, (a * 2 ** 24).round())  # the grid k / 2^24, like torch.rand
    n = a.numel()
    # mean 1/2 and variance 1/12 of U(0,1): standard errors sqrt(1/12/n) and sqrt(1/180/n);
    # 5 standard errors keep a false alarm below 1e-6
    assert abs(a.mean().item() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(a.var().item() - 1 / 12) < 5 * math.sqrt(1 / 180 / n)
    # the two halves of each 64-bit draw (entries 2i, 2i+1) are uncorrelated: the sample
    # correlation of m pairs has standard error 1/sqrt(m)
    f = a.flatten()
    pairs = torch.stack([f[0::2], f[1::2]])
    assert abs(torch.corrcoef(pairs)[0, 1].item()) < 5 / math.sqrt(pairs.shape[1])
    assert uniform((3, 5), gen(0)).shape == (3, 5)  # odd sizes
    assert uniform((0, 4), gen(0)).shape == (0, 4)
    assert uniform((4,), gen(0), dtype=torch.float64).dtype == torch.float64  # torch.rand there


@pytest.mark.parametrize("units", [Bernoulli(), Spin()], ids=repr)
def test_draws_have_the_right_frequencies(units):
    p = torch.linspace(0.0, 1.0, 11).repeat(20000, 1)  # 20000 draws per probability
    mean = p if isinstance(units, Bernoulli) else 2 * p - 1
    s = units.sample_from_mean(mean, gen(7))
    on = (s == 1).double().mean(0)
    assert set(s.unique().tolist()) <= ({0.0, 1.0} if isinstance(units, Bernoulli) else {-1.0, 1.0})
    # each frequency has standard error <= 0.5/sqrt(20000) = 0.0035; 5 of them: < 1e-6 false alarms
    assert (on - p[0].double()).abs().max().item() < 5 * 0.5 / math.sqrt(20000)
    assert on[0] == 0 and on[-1] == 1  # p = 0 never on, p = 1 always on


def test_draws_accept_means_that_require_grad():
    m = RBM(6, 3, generator=gen(0))
    h = m.sample_hidden(torch.ones(2, 6), gen(1))  # outside no_grad: mean requires grad
    assert h.shape == (2, 3) and not h.requires_grad


def test_fast_checks_still_reject_bad_values():
    big = torch.zeros(200, 300)
    for value, relaxed, match in [(float("nan"), True, "NaN"), (float("inf"), True, "inf"),
                                  (float("nan"), False, "NaN"), (2.0, True, "found 2"),
                                  (-1e-7, True, "found -1e-07"), (0.5, False, "found 0.5")]:
        x = big.clone()
        x[123, 45] = value
        with pytest.raises(ValueError, match=match):
            Bernoulli().check(x, "data", relaxed=relaxed)
    Bernoulli().check(torch.full((5, 4), 0.5), "data", relaxed=True)
    Bernoulli().check(torch.ones(5, 4), "data")
    # finite values whose sum overflows are still finite
    Gaussian().check(torch.full((10,), 3e38), "x")
    x = torch.full((10,), 3e38)
    x[3] = -float("inf")
    with pytest.raises(ValueError, match="inf"):
        Gaussian().check(x, "x")
