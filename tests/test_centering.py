"""Centering (Melchior, Fischer & Wiskott 2016): the centered gradient against autograd in
centered coordinates on an enumerable RBM, the map's algebra (invertible, positive definite,
the identity at zero offsets), the wrapper's composition with its inner estimator, training
through ``fit``, bit-identical resume, the state's class, and bad input."""

from typing import NamedTuple

import numpy as np
import pytest
import torch

from boltzkit import RBM, BoltzmannMachine
from boltzkit.training import CD, PCD, SGD, Callback, Checkpoint, ExactGradient, TrainState, \
    TwoPhase, fit
from boltzkit.training.estimators import Centered, statistics_gradient
from boltzkit.training.estimators.centering import OFFSET_FIELDS, centered_gradient, \
    centered_state_type
from boltzkit.training.state import restore_estimator_state

from .conftest import gen


def binary(n, d, seed, p=0.35):
    return (torch.rand(n, d, generator=gen(seed)) < p).float()


def patterns(n, d, seed):
    """Rows near one of three random prototypes (each bit flipped with probability 0.1): data
    with structure for the hidden units to learn, unlike independent bits."""
    g = gen(seed)
    protos = (torch.rand(3, d, generator=g) < 0.5).float()
    rows = protos[torch.randint(0, 3, (n,), generator=g)]
    flip = (torch.rand(n, d, generator=g) < 0.1).float()
    return (rows + flip) % 2


def random_rbm(n_visible=6, n_hidden=4, seed=0, dtype=torch.float64):
    model = RBM(n_visible, n_hidden, init_std=0.8, generator=gen(seed), dtype=dtype)
    with torch.no_grad():
        model.visible_bias.copy_(torch.randn(n_visible, generator=gen(seed + 1), dtype=dtype))
        model.hidden_bias.copy_(torch.randn(n_hidden, generator=gen(seed + 2), dtype=dtype))
    return model


def mean_log_likelihood(w, a, b, data):
    """Exact mean log-likelihood of a Bernoulli RBM by enumerating every visible state, written
    out for autograd (independent of the library's exact module)."""
    n = w.shape[0]
    states = torch.tensor([[(i >> k) & 1 for k in range(n)] for i in range(2 ** n)],
                          dtype=w.dtype)

    def neg_free_energy(v):
        return v @ a + torch.nn.functional.softplus(b + v @ w).sum(1)

    return neg_free_energy(data).mean() - torch.logsumexp(neg_free_energy(states), 0)


def flat(grads):
    return torch.cat([grads["weight"].reshape(-1), grads["visible_bias"], grads["hidden_bias"]])


# -- the mathematics ------------------------------------------------------------------------------
def test_centered_direction_is_the_gradient_in_centered_coordinates():
    """The centered direction equals autograd's log-likelihood gradient with respect to the
    centered parameters (W_c, a_c, b_c), with a = a_c - W_c lam and b = b_c - W_cᵀ mu, mapped to
    the original parameters by ΔW = ΔW_c, Δa = Δa_c - ΔW_c lam, Δb = Δb_c - ΔW_cᵀ mu."""
    model = random_rbm()
    data = binary(40, 6, 3, 0.4).double()
    mu = torch.rand(6, generator=gen(4), dtype=torch.float64)
    lam = torch.rand(4, generator=gen(5), dtype=torch.float64)
    w, a, b = (p.detach() for p in (model.weight, model.visible_bias, model.hidden_bias))
    wc = w.clone().requires_grad_()
    ac = (a + w @ lam).requires_grad_()
    bc = (b + w.t() @ mu).requires_grad_()
    ll = mean_log_likelihood(wc, ac - wc @ lam, bc - wc.t() @ mu, data)
    gw, ga, gb = torch.autograd.grad(ll, (wc, ac, bc))
    # the centered ascent step in original coordinates; the loss gradient is its negative
    want = {"weight": -gw, "visible_bias": -(ga - gw @ lam), "hidden_bias": -(gb - gw.t() @ mu)}

    ordinary, _ = ExactGradient()(model, data)
    got = centered_gradient(ordinary, mu, lam)
    for k in want:  # float64 enumeration against float64 enumeration: agreement to rounding
        torch.testing.assert_close(got[k], want[k], rtol=1e-9, atol=1e-11)
    # the test has power: the centered direction is far from the ordinary one here
    assert (flat(got) - flat(ordinary)).abs().max() > 0.1 * flat(ordinary).abs().max()
    # and the ordinary gradient is autograd's in the original coordinates (the reference holds)
    wo, ao, bo = (t.clone().requires_grad_() for t in (w, a, b))
    go = torch.autograd.grad(mean_log_likelihood(wo, ao, bo, data), (wo, ao, bo))
    torch.testing.assert_close(flat(ordinary), -torch.cat([g.reshape(-1) for g in go]),
                               rtol=1e-9, atol=1e-11)


def map_matrix(mu, lam):
    """The matrix of the linear map ordinary -> centered loss gradient (weight, then biases)."""
    nv, nh = mu.shape[0], lam.shape[0]
    size = nv * nh + nv + nh
    cols = []
    for i in range(size):
        e = torch.zeros(size, dtype=mu.dtype)
        e[i] = 1.0
        g = {"weight": e[:nv * nh].reshape(nv, nh), "visible_bias": e[nv * nh:nv * nh + nv],
             "hidden_bias": e[nv * nh + nv:]}
        cols.append(flat(centered_gradient(g, mu, lam)))
    return torch.stack(cols, 1)


def test_map_is_symmetric_positive_definite_so_fixed_points_stay():
    """The map is J Jᵀ (J: the Jacobian from centered to original coordinates): symmetric and
    positive definite, hence invertible (zero exactly where the ordinary gradient is zero) and
    a descent direction."""
    mu = torch.rand(6, generator=gen(6), dtype=torch.float64)
    lam = torch.rand(4, generator=gen(7), dtype=torch.float64)
    m = map_matrix(mu, lam)
    torch.testing.assert_close(m, m.t(), rtol=0, atol=1e-14)
    eig = torch.linalg.eigvalsh(m)
    assert eig.min() > 1e-3, eig.min()
    # J Jᵀ itself: J maps (W_c, a_c, b_c) to (W, a_c - W_c lam, b_c - W_cᵀ mu)
    nv, nh = 6, 4
    j = torch.eye(nv * nh + nv + nh, dtype=torch.float64)
    for i in range(nv):
        for k in range(nh):
            col = i * nh + k
            j[nv * nh + i, col] = -lam[k]
            j[nv * nh + nv + k, col] = -mu[i]
    torch.testing.assert_close(m, j @ j.t(), rtol=0, atol=1e-14)

    # a stationary point of the exact likelihood (W = 0, visible biases at the data's base
    # rates, any hidden biases) stays stationary, and elsewhere the direction descends
    data = binary(40, 6, 8, 0.4).double()
    model = random_rbm()
    g = flat(ExactGradient()(model, data)[0])
    c = flat(centered_gradient(ExactGradient()(model, data)[0], mu, lam))
    assert float(g @ c) > 0
    with torch.no_grad():
        model.weight.zero_()
        model.init_visible_bias(data)
    ordinary, _ = ExactGradient()(model, data)
    assert flat(ordinary).abs().max() < 1e-12
    assert flat(centered_gradient(ordinary, mu, lam)).abs().max() < 1e-12


def test_zero_offsets_give_the_ordinary_gradient_exactly():
    model = RBM(12, 6, generator=gen(0))
    v = binary(20, 12, 1)
    for inner in (CD(1), PCD(2, n_chains=9)):
        state = inner.init_state(model, v, gen(2))
        grads, _ = inner(model, v, state, gen(3))
        same = centered_gradient(grads, torch.zeros(12), torch.zeros(6))
        for k in grads:
            assert torch.equal(same[k], grads[k]), k
    # end to end: spin hidden units with zero hidden biases and an all-zero batch keep both
    # offsets at 0 (data mean 0, E[h | 0] = tanh(0) = 0), so the wrapper is CD itself
    model = RBM(12, 6, hidden="spin", generator=gen(0))
    v = torch.zeros(20, 12)
    est = Centered(CD(1), rate=0.3)
    state = est.init_state(model, v, gen(2))
    assert torch.equal(state.visible_offset, torch.zeros(12))
    assert torch.equal(state.hidden_offset, torch.zeros(6))
    got, state = est(model, v, state, gen(3))
    want, _ = CD(1)(model, v, None, gen(3))
    assert torch.equal(state.hidden_offset, torch.zeros(6))
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert flat(want).abs().max() > 0  # not trivially zero


def test_wrapper_is_the_inner_statistics_centered_on_the_moved_offsets():
    """One call: the inner estimator's statistics (same generator stream), the offsets moved by
    ``rate`` toward this batch's means first, then the gradient centered on them."""
    model = RBM(12, 6, generator=gen(0))
    data, v = binary(130, 12, 1), binary(20, 12, 9)
    rate = 0.25
    for offsets in ("dd", "mm", "ad", "da"):
        est = Centered(PCD(2, n_chains=9), rate=rate, offsets=offsets)
        state = est.init_state(model, data, gen(2))
        assert torch.equal(state.visible_offset, data.mean(0))
        assert torch.equal(state.hidden_offset, torch.full((6,), 0.5))
        inner = PCD(2, n_chains=9)
        chains = inner.init_state(model, data, gen(2))
        for name in chains._fields:
            assert torch.equal(getattr(state, name), getattr(chains, name))
        grads, new = est(model, v, state, gen(3))
        stats, chains = inner.statistics(model, v, chains, gen(3))
        means = {"d": (stats.v_pos.mean(0), stats.h_pos.mean(0)),
                 "m": (stats.v_neg.mean(0), stats.h_neg.mean(0))}
        means["a"] = tuple(0.5 * (p + n) for p, n in zip(means["d"], means["m"]))
        mu = (1 - rate) * state.visible_offset + rate * means[offsets[0]][0]
        lam = (1 - rate) * state.hidden_offset + rate * means[offsets[1]][1]
        torch.testing.assert_close(new.visible_offset, mu, rtol=0, atol=1e-7)
        torch.testing.assert_close(new.hidden_offset, lam, rtol=0, atol=1e-7)
        for name in chains._fields:
            assert torch.equal(getattr(new, name), getattr(chains, name))
        want = centered_gradient(statistics_gradient(*stats), new.visible_offset,
                                 new.hidden_offset)
        for k in want:
            assert torch.equal(grads[k], want[k]), (offsets, k)


class TemperedState(NamedTuple):
    """A stand-in for another estimator's flat state (extra fields, other shapes)."""

    visible: torch.Tensor
    hidden: torch.Tensor
    hidden_mean: torch.Tensor
    betas: torch.Tensor
    step: torch.Tensor


class Tempered(PCD):
    """PCD with a state of another class and extra tensors: what a wrapped PT looks like."""

    state_type = TemperedState

    def init_state(self, model, data, generator=None):
        s = super().init_state(model, data, generator)
        return TemperedState(*s, torch.ones(3), torch.zeros((), dtype=torch.int64))

    def statistics(self, model, v, state=None, generator=None):
        stats, s = super().statistics(model, v, PCD.state_type(*state[:3]), generator)
        return stats, TemperedState(*s, state.betas, state.step + 1)

    def __repr__(self):
        return "Tempered()"


def test_state_type_is_one_flat_class_per_inner_state(tmp_path):
    a, b = Centered(PCD()), Centered(PCD(3, n_chains=5), rate=0.5)
    assert a.state_type is b.state_type is centered_state_type(PCD.state_type)
    assert a.state_type.__name__ == "CenteredGibbsState"
    assert a.state_type._fields == PCD.state_type._fields + OFFSET_FIELDS
    assert Centered(CD()).state_type.__name__ == "CenteredOffsets"
    assert Centered(CD()).state_type._fields == OFFSET_FIELDS
    est = Centered(Tempered(1, n_chains=7))
    kind = est.state_type
    assert kind.__name__ == "CenteredTemperedState"
    assert kind._fields == TemperedState._fields + OFFSET_FIELDS
    # the other estimator's state is carried through, and saved and restored like any other
    data = binary(130, 12, 1)
    model = RBM(12, 6, generator=gen(0))
    state = fit(model, data, estimator=est, update=SGD(0.5), epochs=2, batch_size=20, lr=0.1,
                generator=gen(2))
    assert isinstance(state.estimator_state, kind)
    assert int(state.estimator_state.step) == 14
    state.save(tmp_path / "s.safetensors")
    back = TrainState.load(tmp_path / "s.safetensors", RBM(12, 6), est)
    assert type(back.estimator_state) is kind
    for name in kind._fields:
        assert torch.equal(getattr(back.estimator_state, name),
                           getattr(state.estimator_state, name)), name
    with pytest.raises(ValueError, match="holds a CenteredTemperedState estimator state"):
        restore_estimator_state(Centered(PCD()), {"type": "CenteredTemperedState",
                                                  "fields": dict(back.estimator_state._asdict())})


# -- training -------------------------------------------------------------------------------------
CASES = {
    "pcd": lambda: Centered(PCD(2, n_chains=9), rate=0.05),
    "cd": lambda: Centered(CD(1), rate=0.05),
}
EPOCHS = 4


def train(case, epochs=EPOCHS, callbacks=(), resume=None):
    model = RBM(12, 6, generator=gen(0))
    state = fit(model, binary(130, 12, 1), estimator=CASES[case](), update=SGD(0.5, 1e-3),
                epochs=epochs, batch_size=20, lr=0.1, generator=gen(2),
                callbacks=list(callbacks), resume=resume)
    return model, state


def tensors(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference():
    out = {}
    for case in CASES:
        model, state = train(case)
        out[case] = (tensors(model), state.estimator_state)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_fit_trains_a_centered_rbm(case):
    from boltzkit.evaluation import exact_log_likelihood

    data = patterns(200, 12, 1)
    model = RBM(12, 6, generator=gen(0))
    start = RBM(12, 6, generator=gen(0))
    start.init_visible_bias(data)
    state = fit(model, data, estimator=CASES[case](), update=SGD(0.5), epochs=30,
                batch_size=20, lr=0.1, generator=gen(2))
    assert state.finished and state.grads is not None  # the general path, never the fused one
    offsets = state.estimator_state
    assert type(offsets).__name__ == ("CenteredGibbsState" if case == "pcd" else "CenteredOffsets")
    # 300 updates at rate 0.05 pull the visible offsets from the data mean toward batch means
    # (of the same data: they stay close) and the hidden ones from 0.5 toward E[h | v]
    assert (offsets.visible_offset - data.mean(0)).abs().max() < 0.1
    assert not torch.equal(offsets.hidden_offset, torch.full((6,), 0.5))
    # three prototypes with 10% noise: the true distribution's log-likelihood is about
    # -(12 H(0.1) + log 3) = -5.0 nats a row, independent bits at the base rates (where
    # training starts) -7.1; ask for most of the 2.1 nats between them
    gain = exact_log_likelihood(model, data).mean - exact_log_likelihood(start, data).mean
    assert gain > 1.5, gain


@pytest.mark.parametrize("case", list(CASES))
def test_resume_between_epochs_is_bit_identical(case, reference, tmp_path):
    _, first = train(case, epochs=2, callbacks=[Checkpoint(tmp_path)])
    assert first.finished
    model, state = train(case, callbacks=[Checkpoint(tmp_path)], resume=tmp_path)
    assert state.epoch == EPOCHS
    assert_same(tensors(model), reference[case][0])
    for name in state.estimator_state._fields:  # the offsets too
        assert torch.equal(getattr(state.estimator_state, name),
                           getattr(reference[case][1], name)), name


@pytest.mark.parametrize("case", list(CASES))
def test_resume_mid_epoch_is_bit_identical(case, reference, tmp_path):
    class Stop(Callback):
        def on_batch_end(self, state):
            if state.step == 11:
                state.interrupted = True

    _, state = train(case, callbacks=[Checkpoint(tmp_path), Stop()])
    assert state.interrupted and state.batch > 0
    model, done = train(case, resume=tmp_path)
    assert done.finished
    assert_same(tensors(model), reference[case][0])


def test_resume_refuses_another_rate(tmp_path):
    train("pcd", epochs=1, callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match=r"resume: the run was trained with estimator=Centered"
                                         r"\(PCD\(k=2, n_chains=9\), rate=0\.05"):
        fit(RBM(12, 6), binary(130, 12, 1), estimator=Centered(PCD(2, n_chains=9), rate=0.06),
            update=SGD(0.5, 1e-3), epochs=3, batch_size=20, lr=0.1, resume=tmp_path)


def test_declines_the_fused_path_and_delegates_checks():
    model = RBM(12, 6)
    est = Centered(CD(1))
    assert est.dense_statistics is False and SGD().fused(est, model) is None
    assert SGD().fused(CD(1), model) is not None  # (the fused path exists for CD itself)
    grey = torch.full((4, 12), 0.3)  # CD takes grey values as probabilities; so does Centered(CD)
    assert torch.equal(est.check_data(model, grey), grey)
    with pytest.raises(ValueError, match="data"):
        Centered(CD(1)).check_data(model, torch.full((4, 12), 1.5))


# -- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("inner, match", [
    ("pcd", "estimator: expected a gradient estimator"),
    (PCD, r"estimator: expected an estimator object such as PCD\(\.\.\.\)"),
    (ExactGradient(), r"estimator: Centered needs an RBM estimator offering statistics.*"
                      r"got ExactGradient\(\)"),
    (TwoPhase(), "estimator: Centered needs an RBM estimator offering statistics"),
    (Centered(CD()), "estimator: Centered needs an RBM estimator offering statistics"),
])
def test_refuses_what_is_not_an_rbm_estimator_with_statistics(inner, match):
    with pytest.raises(ValueError, match=match) as err:
        Centered(inner)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("rate", [0, 0.0, 1.5, float("nan"), float("inf"), -0.1, True, "0.1",
                                  None])
def test_refuses_a_rate_outside_0_1(rate):
    with pytest.raises(ValueError, match=r"rate: expected a finite number > 0 and <= 1, got") \
            as err:
        Centered(CD(), rate=rate)
    assert "\n" not in str(err.value)


def test_accepts_rates_in_0_1():
    assert Centered(CD(), rate=1).rate == 1.0
    assert Centered(CD(), rate=np.float32(0.5)).rate == 0.5
    assert repr(Centered(PCD(2), rate=0.01)) == \
        "Centered(PCD(k=2, n_chains=None), rate=0.01, offsets='dd')"


@pytest.mark.parametrize("offsets", ["d", "ddd", "dx", "DD", 2, None])
def test_refuses_unknown_offset_variants(offsets):
    with pytest.raises(ValueError, match="offsets: expected two letters"):
        Centered(CD(), offsets=offsets)


def test_refuses_models_other_than_rbms_and_foreign_states():
    machine = BoltzmannMachine(6, 3)
    with pytest.raises(ValueError, match=r"model: Centered\(CD\(k=1\).* centers RBMs, got a "
                                         r"BoltzmannMachine"):
        fit(machine, binary(30, 6, 1), estimator=Centered(CD()), epochs=1)
    model = RBM(12, 6)
    est = Centered(PCD(1, n_chains=5))
    chains = PCD(1, n_chains=5).init_state(model, binary(20, 12, 1), gen(0))
    with pytest.raises(ValueError, match="state: expected a CenteredGibbsState"):
        est(model, binary(20, 12, 1), chains, gen(0))
