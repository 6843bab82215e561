"""Tests that need a CUDA device (skipped without one); run by the lead's consolidated GPU check.

Each section names the part of boltzkit it checks on the GPU."""

import pytest
import torch

from boltzkit.exact import boltzmann as ex
from boltzkit.experiments import encoder
from boltzkit.samplers import sequential as sq

from .test_boltzmann import chi_square, make_bm

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


# -- fully connected Boltzmann machine: sequential Gibbs sampler and the encoder experiment ------


@cuda
@pytest.mark.parametrize("order", ["fixed", "random"])
def test_blocked_sweep_equals_naive_on_cuda(order):
    bm = make_bm(5, 8, "spin", std=0.7, dtype=torch.float64).cuda()
    g0 = torch.Generator(device="cuda").manual_seed(3)
    st = sq.init(bm, sq.random_states(bm, 40, g0))
    g1 = torch.Generator(device="cuda").manual_seed(9)
    g2 = torch.Generator(device="cuda").manual_seed(9)
    a = b = st
    for _ in range(4):
        a = sq.step(bm, a, g1, clamp="visible", order=order, block_size=5, temperature=0.8)
        b = sq.naive_step(bm, b, g2, clamp="visible", order=order, block_size=5,
                          temperature=0.8)
        assert torch.equal(a.states, b.states)
    assert a.states.is_cuda


@cuda
@pytest.mark.parametrize("order", ["random", "probes"])
def test_gibbs_on_cuda_reproduces_exact_distribution(order):
    """As the CPU test: 20000 chains, 25 sweeps, χ² against the exact distribution."""
    bm = make_bm(4, 6, "bernoulli", std=0.8).cuda()
    g = torch.Generator(device="cuda").manual_seed(11)
    st = sq.init(bm, sq.random_states(bm, 20000, g))
    s = sq.run(bm, st, 25, g, order=order, block_size=4).states.cpu()
    counts = torch.bincount(ex.state_index(s), minlength=1024)
    stat, limit = chi_square(counts, ex.distribution(bm).cpu())
    assert stat < limit, (stat, limit)


@cuda
@pytest.mark.parametrize("method", ["paper", "fast"])
def test_encoder_runs_on_cuda(method):
    res = encoder.run_encoder("4-2-4", runs=4, max_cycles=3, method=method, device="cuda")
    assert res["cycles_run"] == 3 and len(res["cycles"]) == 4
