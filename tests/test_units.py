import math

import pytest
import torch

from boltzkit.units import Bernoulli, Gaussian, Softmax, Spin, enumerate_states, get_units, \
    register_units, row_beta, unregister_units

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


# -- tensor beta ----------------------------------------------------------------------------------
# one inverse temperature per row, including the float 1.0 path (no multiply) and beta = 0
ROW_BETAS = [0.0, 0.3, 1.0, 2.5, 0.7, 1.0]
BETA_FAMILIES = ALL + [Softmax(3)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("units", BETA_FAMILIES, ids=repr)
def test_per_row_beta_equals_per_row_scalar_beta(units, dtype):
    n = len(ROW_BETAS)
    field = torch.randn(n, 6, generator=gen(11), dtype=dtype) * 3
    # beta given in float64 on purpose: the family brings it to the field's dtype
    beta = torch.tensor(ROW_BETAS, dtype=torch.float64)[:, None]  # (n, 1)
    mean = units.mean(field, beta)
    logpart = units.log_partition(field, beta)
    draws = units.sample(field, gen(12), beta)
    assert mean.shape == draws.shape == field.shape and mean.dtype == dtype
    assert logpart.shape == (n,)
    for i, b in enumerate(ROW_BETAS):
        # the same batch at the scalar beta_i: row i sees the same products (IEEE multiplication
        # rounds once, whether the factor comes from a scalar or a tensor) and, with the same
        # generator state, the same random numbers, so the rows agree exactly
        assert torch.equal(mean[i], units.mean(field, b)[i])
        assert torch.equal(draws[i], units.sample(field, gen(12), b)[i])
        # a row sum: equal up to summation rounding (a few ulps)
        torch.testing.assert_close(logpart[i], units.log_partition(field, b)[i],
                                   rtol=4 * torch.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("units", BETA_FAMILIES, ids=repr)
def test_stacked_beta_equals_per_machine_scalar_beta(units):
    # a stack of R = 3 layers (R, n, n_units), one inverse temperature per machine (R, 1, 1)
    betas = [0.2, 1.0, 1.7]
    field = torch.randn(3, 4, 6, generator=gen(13), dtype=torch.float64)
    beta = torch.tensor(betas, dtype=torch.float64).reshape(3, 1, 1)
    mean, logpart = units.mean(field, beta), units.log_partition(field, beta)
    assert mean.shape == field.shape and logpart.shape == (3, 4)
    for r, b in enumerate(betas):
        assert torch.equal(mean[r], units.mean(field, b)[r])
        torch.testing.assert_close(logpart[r], units.log_partition(field, b)[r], rtol=1e-15,
                                   atol=0)


@pytest.mark.parametrize("units", ALL, ids=repr)
def test_tensor_beta_keeps_the_gradient_identity(units):
    # d/dt logpart(t, beta) = beta E_beta[s | t], row by row with a per-row beta
    field = torch.randn(4, 4, generator=gen(14), dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([[0.5], [1.0], [2.0], [0.0]], dtype=torch.float64)
    units.log_partition(field, beta).sum().backward()
    assert torch.allclose(field.grad, beta * units.mean(field.detach(), beta), atol=1e-10)


def test_gaussian_and_spin_log_partition_with_tensor_beta():
    # Gaussian: (beta t)^2/2 + log(2 pi)/2 per unit; spin: log 2 cosh |beta t| (stable for huge t)
    field = torch.tensor([[1.5, -2.0], [1e4, -1e4]], dtype=torch.float64)
    beta = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    x = field * beta
    want = (0.5 * x * x).sum(-1) + math.log(2 * math.pi)
    assert torch.allclose(Gaussian().log_partition(field, beta), want, rtol=1e-14)
    spin = Spin().log_partition(field, beta)
    assert torch.allclose(spin[0], torch.log(2 * torch.cosh(x[0])).sum(), rtol=1e-14)
    assert spin[1].item() == pytest.approx(2 * 2e4 + 2 * math.log1p(math.exp(-4e4)), rel=1e-14)


def test_bad_beta_names_beta():
    field = torch.zeros(3, 4)
    with pytest.raises(ValueError, match=r"beta: expected .* shape \(3, 4\).* got shape \(4, 1\)"):
        Bernoulli().mean(field, torch.ones(4, 1))
    with pytest.raises(ValueError, match="beta:"):  # would broadcast the field to (2, 3, 4)
        Gaussian().log_partition(field, torch.ones(2, 1, 1))
    assert row_beta(0.5, 3) == 0.5
    assert row_beta(torch.ones(3), 3).shape == (3, 1)
    for bad in (torch.ones(2), torch.ones(3, 1), "hot", True):
        with pytest.raises(ValueError, match=r"beta: expected a number or a tensor of shape "
                                             r"\(3,\)"):
            row_beta(bad, 3)


# -- registered families ---------------------------------------------------------------------------
class _Tiny(Bernoulli):
    name = "tiny"

    def __init__(self, arg=None):
        self.arg = arg

    def spec(self):
        return "tiny" if self.arg is None else f"tiny:{self.arg}"


def test_register_units_lets_get_units_rebuild_a_family():
    with pytest.raises(ValueError, match="units: expected one of"):
        get_units("tiny")
    register_units("tiny", _Tiny)
    try:
        assert isinstance(get_units("tiny"), _Tiny) and get_units("Tiny:3").arg == "3"
        with pytest.raises(ValueError, match="already registered"):
            register_units("tiny", _Tiny)
        with pytest.raises(ValueError, match="units: expected one of .*tiny"):
            get_units("tinier")
    finally:
        unregister_units("tiny")
    with pytest.raises(ValueError, match="units: expected one of"):
        get_units("tiny")
    for bad in ("bernoulli", "binary", "a:b", "Upper", ""):
        with pytest.raises(ValueError, match="name:"):
            register_units(bad, _Tiny)
    with pytest.raises(ValueError, match="factory:"):
        register_units("tiny", 3)
    with pytest.raises(ValueError, match="name: no unit family"):
        unregister_units("tiny")
    assert Bernoulli().init_parameters(4) == {}  # the built-in families own nothing

