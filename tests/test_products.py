"""The CPU product routes (boltzkit._products): every route computes the same product as
``torch.addmm`` (float32 routes to float32 rounding; bf16 to bfloat16 rounding of the operands
and the result), the rules send small, autograd and non-float32 products to BLAS, and
training and resume behave alike on each route."""

import pytest
import torch

import boltzkit
from boltzkit import RBM, _products
from boltzkit.evaluation import ais
from boltzkit.training import PCD, SGD, Checkpoint, fit

from .conftest import gen

ONEDNN = _products.onednn_available()
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this PyTorch has no oneDNN linear")
# big enough for the oneDNN route: 64 x 256 x 128 = 2.1e6 multiply-adds
N, K, M = 64, 256, 128


@pytest.fixture
def mode():
    """Sets a products mode for one test and restores the previous one after it."""
    before = _products.get_products()
    yield _products.set_products
    _products.set_products(before)


def operands(seed=0):
    g = gen(seed)
    return (torch.randn(N, K, generator=g), torch.randn(K, M, generator=g),
            torch.randn(M, generator=g), torch.randn(N, M, generator=g))


def exact(bias, a, b, alpha=1.0):
    return (bias.double() + alpha * (a.double() @ b.double())).float()


# tolerance: float32 products of K terms of size ~1 (sqrt(K) * 2^-24 relative per term, with
# margin); bf16 rounds each operand (2^-9 relative) and the result: a few 2^-9 of sqrt(K)
TOL = {"auto": 1e-4, "blas": 1e-4, "bf16": 6 * 2.0 ** -9 * K ** 0.5}


@pytest.mark.parametrize("name", ["auto", "blas", pytest.param("bf16", marks=needs_onednn)])
def test_every_route_computes_the_product(mode, name):
    mode(name)
    a, b, bias, bias2 = operands()
    cases = [
        (_products.addmm(bias, a, b), exact(bias, a, b)),
        (_products.addmm(bias, a, b, alpha=-0.3), exact(bias, a, b, -0.3)),
        (_products.addmm(bias2, a, b), exact(bias2, a, b)),                # a (n, m) bias
        (_products.addmm(bias, a.t().contiguous().t(), b.t().contiguous().t()),
         exact(bias, a, b)),                                              # transposed views
        (_products.mm(a, b), exact(torch.zeros(M), a, b)),
    ]
    for got, want in cases:
        assert got.dtype == torch.float32 and got.shape == want.shape
        assert (got - want).abs().max() <= TOL[name] * max(1.0, float(want.abs().max()) / 10)


@pytest.mark.parametrize("name", ["auto", "blas", pytest.param("bf16", marks=needs_onednn)])
@pytest.mark.parametrize("beta", [0.0, 1.0, 0.7])
def test_add_outer_sums_the_pairs_into_the_output(mode, name, beta):
    mode(name)
    g = gen(3)
    a1, a2 = torch.randn(N, K, generator=g), torch.randn(N // 2, K, generator=g)
    b1, b2 = torch.rand(N, M, generator=g), torch.rand(N // 2, M, generator=g)
    start = torch.randn(K, M, generator=g)
    out = start.clone() if beta else torch.full((K, M), float("nan"))  # beta 0: ignored
    got = _products.add_outer_(out, [(a1, b1), (a2, b2)], [0.5, -2.0], beta=beta)
    assert got is out
    want = (0.5 * a1.double().t() @ b1.double() - 2.0 * a2.double().t() @ b2.double())
    if beta:
        want = want + beta * start.double()
    assert torch.isfinite(out).all()
    assert (out.double() - want).abs().max() <= TOL[name] * float(want.abs().max()) / 4


def test_the_rules_choose_the_route(mode):
    a, b, bias, _ = operands()
    mode("auto")
    big = "onednn" if ONEDNN else "blas"
    assert _products.route(a, b) == big
    assert _products.route(a[:2], b) == "blas"                     # under MIN_MACS
    assert _products.route(a.double(), b.double()) == "blas"       # float64 stays on BLAS
    w = b.clone().requires_grad_()
    assert _products.route(a, w) == "blas"                         # autograd needs BLAS
    with torch.no_grad():
        assert _products.route(a, w) == big
    mode("blas")
    assert _products.route(a, b) == "blas"
    if ONEDNN:
        mode("bf16")
        assert _products.route(a, b) == "bf16"
        assert _products.route(a[:2], b) == "blas"


def test_autograd_flows_through_the_products(mode):
    """A product that needs a graph takes BLAS, so gradients are right on every route."""
    a, b, bias, _ = operands()
    for name in ("auto", "bf16") if ONEDNN else ("auto",):
        mode(name)
        w = b.clone().requires_grad_()
        _products.addmm(bias, a, w).sum().backward()
        assert torch.allclose(w.grad, a.sum(0, keepdim=True).t().expand(K, M), atol=1e-4)


def test_bad_modes_get_one_line(mode, monkeypatch):
    with pytest.raises(ValueError, match="products: expected one of auto, blas, bf16"):
        mode("fast")
    with pytest.raises(ValueError, match="expected one of"):
        mode(16)
    monkeypatch.setenv("BOLTZKIT_PRODUCTS", "fp8")
    monkeypatch.setitem(_products._state, "mode", None)
    with pytest.raises(ValueError, match="BOLTZKIT_PRODUCTS='fp8'"):
        _products.get_products()
    monkeypatch.setenv("BOLTZKIT_PRODUCTS", "blas")
    assert _products.get_products() == "blas"


def test_without_onednn_everything_falls_back_to_blas(mode, monkeypatch):
    monkeypatch.setitem(_products._state, "onednn", False)
    a, b, bias, _ = operands()
    mode("auto")
    assert _products.route(a, b) == "blas"
    assert torch.equal(_products.addmm(bias, a, b), torch.addmm(bias, a, b))
    with pytest.raises(ValueError, match="bf16 products need oneDNN"):
        mode("bf16")


def data(n=400, d=K, seed=1):
    return (torch.rand(n, d, generator=gen(seed)) < 0.3).float()


def train(x, epochs=2, resume=None, callbacks=()):
    return fit(RBM(K, M, generator=gen(0)), x, estimator=PCD(1, n_chains=N), update=SGD(0.5), epochs=epochs,
               batch_size=N, lr=0.05, generator=gen(2), resume=resume, callbacks=callbacks,
               progress=False)


@pytest.mark.parametrize("name", ["auto", pytest.param("bf16", marks=needs_onednn)])
def test_training_on_a_route_matches_blas_and_resumes_bit_identically(mode, name, tmp_path,
                                                                     monkeypatch):
    x = data()
    mode("blas")
    ref = train(x).model
    mode(name)
    paths = []
    dnn = _products._dnn
    monkeypatch.setattr(_products, "_dnn", lambda a, b, bias, path: (paths.append(path),
                                                                    dnn(a, b, bias, path))[1])
    whole = train(x, epochs=4).model
    if ONEDNN:  # the fields, the statistics and the update all took the route
        assert len(paths) >= 4 * 7 * 4 and set(paths) == {"onednn" if name == "auto" else name}
    # two epochs, a checkpoint, then two more from the file: bit for bit the run in one go
    train(x, epochs=2, callbacks=[Checkpoint(tmp_path)])
    resumed = train(x, epochs=4, resume=tmp_path).model
    for n, p in whole.named_parameters():
        assert torch.equal(p, dict(resumed.named_parameters())[n]), n
    with torch.no_grad():
        two = train(x).model
    # the same arithmetic as BLAS up to rounding: after 2 epochs (14 updates) of PCD the
    # weights agree closely (bf16 rounding moves them further, still far below their scale)
    tol = 1e-3 if name == "auto" else 2e-2
    w_two, w_ref = two.weight.detach(), ref.weight.detach()
    assert (w_two - w_ref).abs().max() <= tol * max(1.0, float(w_ref.abs().max()))
    assert not torch.equal(w_two, w_ref) or not ONEDNN  # really another route


@needs_onednn
def test_ais_on_the_onednn_route_agrees_with_blas(mode):
    """The annealer's products take the fast route (100 chains x 256 x 128); the estimate
    equals the BLAS one to float rounding, with the same generator."""
    model = RBM(K, M, generator=gen(5))
    with torch.no_grad():
        model.weight.mul_(3.0)
    results = {}
    for name in ("blas", "auto"):
        mode(name)
        results[name] = ais(model, n_chains=100, betas=300, generator=gen(6)).log_z
    assert abs(results["auto"] - results["blas"]) < 1e-3


def test_the_cli_takes_products(tmp_path, capsys):
    from boltzkit.cli import main

    assert main(["train", "--epochs", "1", "--products", "blas", "--out",
                 str(tmp_path / "r")]) == 0
    assert boltzkit.get_products() == _products.get_products()
    with pytest.raises(SystemExit):
        main(["train", "--products", "fp8", "--out", str(tmp_path / "s")])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err
