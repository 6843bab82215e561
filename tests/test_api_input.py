"""Bad input to the Python API: one ValueError naming the argument (one test per mechanism,
the examples as cases), and the PyTorch conventions a user expects of an nn.Module."""

import math

import numpy as np
import pytest
import torch

from boltzkit import RBM, BoltzmannMachine
from boltzkit.training import CD, SGD, fit

from .conftest import gen


@pytest.fixture
def rbm():
    return RBM(6, 4, generator=gen(0))


def methods(m):
    """Every public method of an RBM that takes a batch of visible (or hidden) states."""
    h = torch.zeros(3, 4)
    return {
        "free_energy": lambda v: m.free_energy(v),
        "hidden_mean": lambda v: m.hidden_mean(v),
        "sample_hidden": lambda v: m.sample_hidden(v, gen(1)),
        "gibbs_vhv": lambda v: m.gibbs_vhv(v, gen(1)),
        "reconstruct": lambda v: m.reconstruct(v),
        "energy": lambda v: m.energy(v, h),
        "forward": lambda v: m(v),
    }


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(3, 5), r"v: expected shape \(n, 6\), got \(3, 5\)"),
    (torch.zeros(6), r"v: expected shape \(n, 6\), got \(6,\)"),
    (torch.full((3, 6), float("nan")), "v: expected finite values, found NaN"),
    (torch.full((3, 6), 255.0), "v: bernoulli units take values in"),
    (torch.zeros(3, 6, dtype=torch.complex64), "v: expected real numbers"),
    (np.zeros((3, 6), dtype=complex), "v: expected real numbers"),
    ("not data", "v: expected a tensor of shape"),
    (torch.zeros(0, 6), "v: expected at least one row"),
])
def test_low_level_methods_check_their_input(rbm, bad, message):
    for name, call in methods(rbm).items():
        with pytest.raises(ValueError, match=message):
            call(bad)


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(3, 6), r"h: expected shape \(n, 4\), got \(3, 6\)"),
    (torch.full((3, 4), float("inf")), "h: expected finite values, found inf"),
    (torch.full((3, 4), -0.5), "h: bernoulli units take values in"),
])
def test_hidden_side_methods_check_their_input(rbm, bad, message):
    for call in (lambda h: rbm.visible_mean(h), lambda h: rbm.sample_visible(h, gen(1)),
                 lambda h: rbm.free_energy_hidden(h), lambda h: rbm.gibbs_hvh(h, gen(1)),
                 lambda h: rbm.energy(torch.zeros(3, 6), h)):
        with pytest.raises(ValueError, match=message):
            call(bad)


def test_inputs_in_other_dtypes_and_containers_are_converted(rbm):
    v = (torch.rand(5, 6, generator=gen(2)) < 0.5).float()
    want = rbm.free_energy(v)
    for other in (v.double(), v.to(torch.int64), v.bool(), v.numpy(), v.numpy().astype(np.int8)):
        torch.testing.assert_close(rbm.free_energy(other), want, rtol=0, atol=0)
    # a float64 model given float32 input computes in float64
    m64 = RBM(6, 4, generator=gen(0), dtype=torch.float64)
    assert m64.free_energy(v).dtype == torch.float64
    # grey values in [0, 1] are fine for the conditionals and free energies (mean-field input)
    assert torch.isfinite(rbm.free_energy(torch.full((2, 6), 0.3))).all()


def test_the_unchecked_path_is_the_same_arithmetic(rbm):
    v = (torch.rand(5, 6, generator=gen(3)) < 0.5).float()
    assert torch.equal(rbm.hidden_mean(v), rbm.hidden_mean(v, check=False))
    assert torch.equal(rbm.free_energy(v), rbm.free_energy(v, check=False))


@pytest.mark.parametrize("kwargs,message", [
    ({"n_visible": 0}, "n_visible: expected a positive integer"),
    ({"n_hidden": 2.5}, "n_hidden: expected a positive integer"),
    ({"n_hidden": True}, "n_hidden: expected a positive integer"),
    ({"init_std": float("nan")}, "init_std: expected a finite number >= 0"),
    ({"init_std": -1.0}, "init_std: expected a finite number >= 0"),
    ({"generator": 3}, "generator: expected a torch.Generator"),
])
def test_constructor_arguments(kwargs, message):
    sizes = {"n_visible": 6, "n_hidden": 4}
    sizes.update({k: v for k, v in kwargs.items() if k in sizes})
    rest = {k: v for k, v in kwargs.items() if k not in sizes}
    with pytest.raises(ValueError, match=message):
        RBM(sizes["n_visible"], sizes["n_hidden"], **rest)


def test_numpy_numbers_are_numbers():
    m = RBM(np.int64(6), np.int32(4), init_std=np.float32(0.01))
    assert (m.n_visible, m.n_hidden) == (6, 4) and isinstance(m.n_visible, int)
    x = (torch.rand(40, 6, generator=gen(4)) < 0.5).float()
    fit(m, x, estimator=CD(np.int64(1)), update=SGD(np.float32(0.5), np.float64(1e-4)),
        epochs=np.int64(1), batch_size=np.int32(10), lr=np.float32(0.1))


def test_default_initial_weights_are_reproducible():
    # no global random state: the same model on every run unless a generator says otherwise
    torch.manual_seed(123)
    a = RBM(64, 32)
    torch.manual_seed(456)
    b = RBM(64, 32)
    assert torch.equal(a.weight, b.weight)
    assert not torch.equal(a.weight, RBM(64, 32, generator=gen(1)).weight)
    assert BoltzmannMachine(5, 3, init_std=0.1).weight.equal(
        BoltzmannMachine(5, 3, init_std=0.1).weight)


def test_forward_is_the_free_energy_and_functional_call_works(rbm):
    v = (torch.rand(4, 6, generator=gen(5)) < 0.5).float()
    assert torch.equal(rbm(v), rbm.free_energy(v))
    params = {k: p.detach().clone().requires_grad_(True) for k, p in rbm.named_parameters()}
    out = torch.func.functional_call(rbm, params, (v,))
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params.values())


@pytest.mark.parametrize("model,data,message", [
    ("an rbm", torch.zeros(4, 6), "model: expected a boltzkit model"),
    (None, torch.zeros(4, 6), "model: expected a boltzkit model"),
    (torch.nn.Linear(6, 4), torch.zeros(4, 6), "model: expected a boltzkit model"),
    (RBM(6, 4), "data", "data: expected a tensor"),
    (RBM(6, 4), [[0, 1]], "data: expected a tensor"),
])
def test_fit_names_wrong_objects(model, data, message):
    with pytest.raises(ValueError, match=message):
        fit(model, data, epochs=1)


def test_fit_takes_numpy_data():
    x = (np.random.default_rng(0).random((30, 6)) < 0.5).astype(np.float64)
    a, b = RBM(6, 4), RBM(6, 4)
    fit(a, x, epochs=1, batch_size=10, generator=gen(1))
    fit(b, torch.from_numpy(x).float(), epochs=1, batch_size=10, generator=gen(1))
    assert torch.equal(a.weight, b.weight)
    assert not math.isnan(float(a.weight.sum()))


def test_a_state_dict_of_another_configuration_is_refused():
    a = RBM(6, 4)
    with pytest.raises(ValueError, match="state_dict: comes from a RBM"):
        RBM(6, 4, "spin", "bernoulli").load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="state_dict: comes from a BoltzmannMachine"):
        BoltzmannMachine(4, 2, "spin").load_state_dict(BoltzmannMachine(4, 2).state_dict())
    b = RBM(6, 4, generator=gen(3))
    b.load_state_dict(a.state_dict())  # the same configuration loads
    assert torch.equal(a.weight, b.weight)


def test_fit_names_a_wrong_callback():
    with pytest.raises(ValueError, match="callbacks: expected Callback objects"):
        fit(RBM(6, 4), torch.zeros(4, 6), epochs=1, callbacks=["progress"])


def test_the_package_ships_its_type_hints():
    from importlib import resources

    assert resources.files("boltzkit").joinpath("py.typed").is_file()


@pytest.mark.parametrize("bad,message", [
    (torch.zeros(3, 7), r"s: expected shape \(n, 8\), got \(3, 7\)"),
    (torch.zeros(8), r"s: expected shape \(n, 8\), got \(8,\)"),
    (torch.full((3, 8), float("nan")), "s: expected finite values, found NaN"),
    (torch.full((3, 8), 3.0), "s: bernoulli units take values in"),
    (np.zeros((3, 8), dtype=complex), "s: expected real numbers"),
    ([[0.0] * 8], "s: expected a tensor of shape"),
])
def test_boltzmann_machine_methods_check_their_input(bad, message):
    bm = BoltzmannMachine(5, 3, init_std=0.1)
    for call in (bm.energy, bm.field, bm.conditional_mean):
        with pytest.raises(ValueError, match=message):
            call(bad)
    s = (torch.rand(4, 8, generator=gen(6)) < 0.5).float()
    assert torch.equal(bm.energy(s.numpy()), bm.energy(s, check=False))


@pytest.mark.parametrize("make,message", [
    (lambda: RBM(6, 3, generator="g"), "generator: expected a torch.Generator"),
    (lambda: BoltzmannMachine(4, 2, init_std=0.1, generator="g"), "generator: expected"),
    (lambda: RBM(6, 3, device="nonsense"), "device: expected cpu, cuda or cuda:N"),
    (lambda: RBM(6, 3, dtype=torch.int32), "dtype: expected torch.float32 or torch.float64"),
    (lambda: RBM(6, 3, dtype=torch.complex64), "dtype: expected torch.float32"),
    (lambda: BoltzmannMachine(4, 2, dtype=torch.int64), "dtype: expected torch.float32"),
    (lambda: RBM(10 ** 7, 10 ** 7), r"RBM\(10000000, 10000000\): its weights would take"),
    (lambda: BoltzmannMachine(10 ** 6, 10 ** 6), "its weights would take about"),
    (lambda: BoltzmannMachine(4, 2, visible_hidden="no"), "visible_hidden: expected True or"),
])
def test_model_constructors_name_their_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_hopfield_arguments():
    from boltzkit import Hopfield

    with pytest.raises(ValueError, match=r"Hopfield\(10000000\): its weights"):
        Hopfield(10 ** 7)
    net = Hopfield(8)
    with pytest.raises(ValueError, match="patterns: expected real"):
        net.store(torch.ones(2, 8, dtype=torch.complex64))
    net.store(torch.ones(1, 8))
    with pytest.raises(ValueError, match="callback: expected a function"):
        net.recall(torch.ones(1, 8), callback=5)
    net.recall(torch.ones(1, 8), max_sweeps=np.int64(3))


@pytest.mark.parametrize("beta", [float("nan"), -1.0, float("inf"),
                                  torch.tensor([float("nan"), 1.0]), torch.tensor([1.0, -2.0])])
def test_inverse_temperatures_are_checked(rbm, beta):
    with pytest.raises(ValueError, match="beta: expected"):
        rbm.free_energy(torch.zeros(2, 6), beta=beta)


def test_fit_checks_what_it_is_given(rbm, tmp_path):
    from boltzkit.training import PCD, TwoPhase, Checkpoint

    x = torch.zeros(20, 6)
    bm = BoltzmannMachine(4, 2)
    cases = [
        (lambda: fit(rbm, x, estimator=TwoPhase(), epochs=1), "model: the two-phase rule"),
        (lambda: fit(bm, torch.zeros(20, 4), estimator=CD(1), epochs=1), "model: CD"),
        (lambda: fit(rbm, x, estimator=CD, epochs=1), "estimator: expected an estimator object"),
        (lambda: fit(rbm, x, generator="g", epochs=1), "generator: expected a torch.Generator"),
        (lambda: fit(rbm, x, resume=5, epochs=1), "resume: expected a TrainState"),
        (lambda: fit(rbm, x, lr_schedule=lambda t: float("nan"), epochs=1),
         "lr_schedule: expected a finite multiplier >= 0, got nan"),
        (lambda: fit(rbm, x, lr_schedule=lambda t: -1.0, epochs=1), "lr_schedule: expected"),
        (lambda: TwoPhase(persistent="no"), "persistent: expected True or False"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    # one callback on its own is taken as a list of one
    fit(rbm, x, epochs=1, callbacks=Checkpoint(tmp_path))
    assert (tmp_path / "model.safetensors").exists()


def test_save_refuses_what_load_would(rbm, tmp_path):
    import boltzkit

    nan = RBM(6, 3)
    with torch.no_grad():
        nan.weight[0, 0] = float("nan")
    (tmp_path / "x.safetensors").mkdir()
    (tmp_path / "afile").write_text("in the way")
    cases = [
        (lambda: boltzkit.save(nan, tmp_path / "m.safetensors"), "tensor 'weight' holds NaN"),
        (lambda: boltzkit.save(RBM(6, 3).half(), tmp_path / "m.safetensors"), "float16"),
        (lambda: boltzkit.save(rbm, tmp_path / "m.safetensors", metadata="abc"),
         "metadata: expected a dict"),
        (lambda: boltzkit.save(rbm, tmp_path / "m.safetensors", metadata={"a": object()}),
         "metadata: expected JSON values"),
        (lambda: boltzkit.save(rbm, None), "path: expected a file path"),
        (lambda: boltzkit.save(rbm, tmp_path / "x.safetensors"), "is a folder"),
        (lambda: boltzkit.save(rbm, tmp_path / "afile" / "m.safetensors"), "cannot write there"),
        (lambda: boltzkit.load(None), "path: expected a file path"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "x.safetensors"]
    boltzkit.save(rbm, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="device: expected cpu, cuda or cuda:N"):
        boltzkit.load(tmp_path / "m.safetensors", device="nonsense")


def test_samplers_check_their_inputs(rbm):
    from boltzkit.samplers import gibbs

    for bad, message in [(torch.zeros(2, 5), r"visible: expected shape \(n, 6\)"),
                         (torch.full((2, 6), float("nan")), "visible: expected finite"),
                         (torch.full((2, 6), 255.0), "visible: bernoulli units take values")]:
        with pytest.raises(ValueError, match=message):
            gibbs.init(rbm, bad, gen(0))
    with pytest.raises(ValueError, match="generator: expected a torch.Generator"):
        gibbs.init(rbm, torch.zeros(2, 6), "g")
    state = gibbs.init(rbm, torch.zeros(2, 6), gen(0))
    with pytest.raises(ValueError, match="n_steps: expected an integer >= 0"):
        gibbs.run(rbm, state, -1, gen(0))
    with pytest.raises(ValueError, match="state: expected a GibbsState"):
        gibbs.run(rbm, "state", 1, gen(0))


def test_train_state_load_names_its_arguments(tmp_path):
    from boltzkit.training import Checkpoint, TrainState

    m = RBM(6, 3)
    fit(m, torch.zeros(20, 6), epochs=1, callbacks=[Checkpoint(tmp_path)])
    with pytest.raises(ValueError, match="model: expected the boltzkit model"):
        TrainState.load(tmp_path, "rbm")
    assert TrainState.load(tmp_path, RBM(6, 3)).epoch == 1  # a run folder, as fit takes


def test_sequential_sampler_arguments():
    from boltzkit.samplers import sequential as sq

    bm = BoltzmannMachine(4, 2)
    s = sq.random_states(bm, np.int64(3), gen(0))  # NumPy sizes are sizes
    st = sq.run(bm, sq.init(bm, s), np.int64(2), gen(0))
    assert st.states.shape == (3, 6)
    for call, message in [(lambda: sq.random_states(bm, 3, gen(0), p_on=2.0), "p_on: expected"),
                          (lambda: sq.step(bm, "state", gen(0)), "state: expected a Sequential"),
                          (lambda: sq.init(RBM(4, 2), torch.zeros(2, 6)), "model: sequential")]:
        with pytest.raises(ValueError, match=message):
            call()


def test_a_folder_given_as_a_file_is_named(tmp_path):
    import boltzkit
    from boltzkit.data import load_dataset

    (tmp_path / "d.csv").mkdir()
    (tmp_path / "m.safetensors").mkdir()
    with pytest.raises(ValueError, match="d.csv is a folder, expected a file"):
        load_dataset(str(tmp_path / "d.csv"))
    with pytest.raises(ValueError, match="m.safetensors is a folder, expected a file"):
        boltzkit.load(tmp_path / "m.safetensors")


def test_huge_chain_counts_are_refused_before_allocating():
    from boltzkit.training import PCD, TwoPhase

    with pytest.raises(ValueError, match="n_chains 1000000000000: the persistent chains"):
        fit(RBM(6, 3), torch.zeros(10, 6), estimator=PCD(1, n_chains=10 ** 12), epochs=1)
    with pytest.raises(ValueError, match="n_chains 1000000000000: the chains"):
        fit(BoltzmannMachine(4, 2), torch.zeros(10, 4), estimator=TwoPhase(n_chains=10 ** 12),
            epochs=1)
    from boltzkit.samplers import gibbs
    with pytest.raises(ValueError, match="state: expected a GibbsState"):
        gibbs.step(RBM(6, 3), "state", gen(0))
