import math

import pytest
import torch

from boltzkit.units import Bernoulli, Gaussian, Softmax, Spin, enumerate_states, get_units

from .conftest import gen

DISCRETE = [Bernoulli(), Spin(), Softmax(), Softmax(2)]
ALL = DISCRETE + [Gaussian()]


def brute_log_partition(units, field, beta):
    """log sum over every joint state of exp(beta t·s - base(s)), for a small layer."""
    states = units.states(field.shape[1], dtype=torch.float64)
    return torch.logsumexp(beta * field.double() @ states.t() - units.base(states), dim=1)


@pytest.mark.parametrize("units", DISCRETE, ids=repr)
@pytest.mark.parametrize("beta", [1.0, 0.3])
def test_log_partition_matches_enumeration(units, beta):
    field = torch.randn(5, 4, generator=gen(1), dtype=torch.float64) * 3
    assert torch.allclose(units.log_partition(field, beta), brute_log_partition(units, field, beta),
                          atol=1e-10)


def test_gaussian_log_partition_matches_quadrature():
    field = torch.tensor([[0.7, -1.3]], dtype=torch.float64)
    s = torch.linspace(-15, 15, 30001, dtype=torch.float64)
    ds = s[1] - s[0]
    per_unit = [torch.logsumexp(0.5 * t * s - 0.5 * s * s, 0) + math.log(ds) for t in field[0]]
    assert Gaussian().log_partition(field, beta=0.5).item() == pytest.approx(
        sum(per_unit).item(), abs=1e-8)


@pytest.mark.parametrize("units", ALL, ids=repr)
def test_mean_is_gradient_of_log_partition(units):
    # d/dt log sum_s exp(beta t s - base(s)) = beta E[s]
    field = torch.randn(3, 4, generator=gen(2), dtype=torch.float64, requires_grad=True)
    beta = 0.7
    units.log_partition(field, beta).sum().backward()
    assert torch.allclose(field.grad, beta * units.mean(field.detach(), beta), atol=1e-10)


@pytest.mark.parametrize("units", ALL, ids=repr)
def test_sample_mean_matches_mean(units):
    n = 40000
    field = torch.randn(1, 4, generator=gen(3)).expand(n, 4)
    s = units.sample(field, gen(4))
    units.check(s, "sample") if units.discrete else None
    # each coordinate has variance <= 1 (binary, spin, one-hot) or exactly 1 (Gaussian):
    # the sample mean is within 5 standard errors of the truth with probability > 1 - 6e-7
    assert (s.mean(0) - units.mean(field[:1])[0]).abs().max() < 5 / math.sqrt(n)


@pytest.mark.parametrize("units,n_units,count", [(Bernoulli(), 5, 32), (Spin(), 3, 8),
                                                 (Softmax(3), 6, 9), (Softmax(), 4, 4)], ids=str)
def test_states_enumerate_the_support_once(units, n_units, count):
    states = torch.cat(list(enumerate_states(units, n_units, chunk_size=3)))
    assert states.shape == (count, n_units)
    assert len({tuple(r.tolist()) for r in states}) == count
    units.check(states, "states")


def test_checks_name_the_problem():
    with pytest.raises(ValueError, match=r"v: bernoulli units take values in \{0, 1\}, found 0.5"):
        Bernoulli().check(torch.tensor([[0.0, 0.5]]), "v")
    Bernoulli().check(torch.tensor([[0.0, 0.5]]), "v", relaxed=True)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Bernoulli().check(torch.tensor([[2.0]]), "v", relaxed=True)
    with pytest.raises(ValueError, match="v: expected finite values, found NaN"):
        Gaussian().check(torch.tensor([[float("nan")]]), "v")
    with pytest.raises(ValueError, match="found inf"):
        Spin().check(torch.tensor([[float("inf")]]), "v")
    with pytest.raises(ValueError, match=r"spin units take values in \{-1, \+1\}, found 0"):
        Spin().check(torch.tensor([[0.0, 1.0]]), "v")
    with pytest.raises(ValueError, match="exactly one unit on"):
        Softmax(2).check(torch.tensor([[1.0, 1.0, 0.0, 1.0]]), "v")
    with pytest.raises(ValueError, match="multiple of 3"):
        Softmax(3).check_size(4, "n_visible")


def test_get_units_parses_and_rejects():
    assert get_units("softmax:4") == Softmax(4)
    assert get_units("binary") == Bernoulli()
    assert get_units(Spin()) == Spin()
    for bad in ("relu", "softmax:x", 3):
        with pytest.raises(ValueError, match="units: expected one of"):
            get_units(bad)


@pytest.mark.parametrize("units", ALL, ids=repr)
def test_init_bias_reproduces_data_mean(units):
    data = units.sample(torch.randn(1, 4, generator=gen(5)).expand(2000, 4), gen(6))
    mean = data.mean(0)
    assert torch.allclose(units.mean(units.init_bias(mean)[None])[0], mean, atol=2e-3)


def test_no_overflow_for_huge_fields():
    field = torch.tensor([[1e4, -1e4, 80.0]])
    for units in (Bernoulli(), Spin(), Softmax()):
        assert torch.isfinite(units.log_partition(field)).all()
        assert torch.isfinite(units.mean(field)).all()
