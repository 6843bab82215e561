"""Model files against corrupt and hostile input: every file below is written by hand (safetensors
directly, or by editing header bytes), and every one must be refused by ``boltzkit.load`` with a
one-line ``ValueError`` naming the file (and the key or tensor at fault), without building a model
the file's own tensors do not justify. The command line turns each into ``boltzkit: error: ...``
and exit status 2."""

import json
import math
import pickle
import struct
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import boltzkit
from boltzkit.cli import main
from boltzkit.cli.rbm import image_shape
from boltzkit.io import read_metadata
from boltzkit.models import BoltzmannMachine, Hopfield, RBM
from boltzkit.training import TrainState

from .conftest import gen


# -- writing files by hand ---------------------------------------------------------------------
def rbm_tensors(nv=4, nh=3, dtype=torch.float32):
    return {"weight": torch.randn(nv, nh, generator=gen(0)).to(dtype) * 0.1,
            "visible_bias": torch.zeros(nv, dtype=dtype),
            "hidden_bias": torch.zeros(nh, dtype=dtype)}


def rbm_config(nv=4, nh=3, **more):
    return {"n_visible": nv, "n_hidden": nh, "visible": "bernoulli", "hidden": "bernoulli",
            **more}


def bm_tensors(n=4, stack=None):
    c = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0]],
                     dtype=torch.bool)[:n, :n]
    bm = BoltzmannMachine(2, n - 2, connectivity=c, init_std=0.5, n_machines=stack,
                          generator=gen(1))
    return {k: v.clone() for k, v in bm.state_dict().items()}, bm.config()


def hopfield_tensors(n=6, p=2):
    xi = torch.where(torch.rand(p, n, generator=gen(2)) < 0.5, -1.0, 1.0)
    net = Hopfield(n).store(xi)
    return {k: v.clone() for k, v in net.state_dict().items()}, net.config()


def write(path, tensors, config, model="RBM", **meta):
    """A model file as boltzkit would write it, but with any content; ``config`` and the other
    records go in as they are when they are strings (raw JSON text), else through json.dumps."""
    records = {"config": config, **meta}
    metadata = {"format": "boltzkit", "format_version": "1", "model": model}
    metadata.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in records.items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def edit_header(path, change):
    """Rewrite a safetensors file's header (the JSON after the 8-byte length) by ``change``,
    a function from the header text to the new text; the tensor bytes stay."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    text = change(raw[8:8 + n].decode())
    body = text.encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body + raw[8 + n:])
    return path


def refused(path, *needles, read=boltzkit.load):
    """``read(path)`` raises a one-line ValueError naming the file and every needle."""
    with pytest.raises(ValueError) as err:
        read(path)
    message = str(err.value)
    assert message.startswith(f"model file: {path}"), message
    assert "\n" not in message and len(message) < 500 + len(str(path)), message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.fixture
def allocations(monkeypatch):
    """Records the element counts of every tensor torch's factories are asked for, and every
    model constructed, while a test runs."""
    record = {"numel": [], "built": []}

    def counted(factory):
        def wrapper(*args, **kwargs):
            dims = args[0] if args and isinstance(args[0], (tuple, list, torch.Size)) else \
                [a for a in args if isinstance(a, int)]
            record["numel"].append(math.prod(int(d) for d in dims))
            return factory(*args, **kwargs)
        return wrapper

    for name in ("empty", "zeros", "ones", "randn", "rand", "full"):
        monkeypatch.setattr(torch, name, counted(getattr(torch, name)))
    for cls in (RBM, BoltzmannMachine, Hopfield):
        init = cls.__init__

        def built(self, *args, _init=init, _cls=cls, **kwargs):
            record["built"].append((_cls.__name__, args))
            _init(self, *args, **kwargs)
        monkeypatch.setattr(cls, "__init__", built)
    return record


# -- 1. the configuration against the header, before anything is built ------------------------
HUGE = 1048576


@pytest.mark.parametrize("model, tensors, config, needle", [
    ("RBM", rbm_tensors(), rbm_config(HUGE, HUGE), "'weight' has shape (4, 3), expected "
                                                   "(1048576, 1048576)"),
    ("RBM", rbm_tensors(), rbm_config(23170, 23170), "expected (23170, 23170)"),  # 2.1 GB
    ("RBM", rbm_tensors(), rbm_config(4, 10 ** 12), "'weight' has shape (4, 3)"),
    ("RBM", rbm_tensors(), rbm_config(2 ** 70, 3), "'weight' has shape (4, 3)"),
    ("RBM", rbm_tensors(), rbm_config(10 ** 4000, 3), "expected (1000000"),  # clipped
    ("RBM", rbm_tensors(), rbm_config(3, 4), "'weight' has shape (4, 3), expected (3, 4)"),
    ("BoltzmannMachine", bm_tensors()[0], dict(bm_tensors()[1], n_hidden=HUGE),
     "expected (1048578, 1048578)"),
    ("BoltzmannMachine", bm_tensors()[0], dict(bm_tensors()[1], n_machines=HUGE),
     "expected (1048576, 4, 4)"),
    ("Hopfield", hopfield_tensors()[0], dict(hopfield_tensors()[1], n_units=HUGE),
     "expected (1048576, 1048576)"),
    ("Hopfield", hopfield_tensors()[0], dict(hopfield_tensors()[1], n_patterns=10 ** 9),
     "'patterns' has shape (2, 6), expected (1000000000, 6)"),
])
def test_sizes_are_checked_against_the_tensors_before_the_model_is_built(
        tmp_path, allocations, model, tensors, config, needle):
    path = write(tmp_path / "big.safetensors", tensors, config, model)
    refused(path, needle)
    assert allocations["built"] == []  # refused before any model was made
    assert max(allocations["numel"], default=0) <= 100


@pytest.mark.parametrize("config, needle", [
    (rbm_config(0, 3), "config['n_visible']: expected an integer >= 1, got 0"),
    (rbm_config(-4, 3), "config['n_visible']: expected an integer >= 1, got -4"),
    (rbm_config(64.7, 3), "config['n_visible']: expected an integer >= 1, got 64.7"),
    (rbm_config(4.0, 3), "config['n_visible']: expected an integer >= 1, got 4.0"),
    (rbm_config(True, 3), "config['n_visible']: expected an integer >= 1, got True"),
    (rbm_config("4", 3), "config['n_visible']: expected an integer >= 1, got '4'"),
    (rbm_config(None, 3), "config['n_visible']: expected an integer >= 1, got None"),
    (rbm_config([4], 3), "config['n_visible']: expected an integer >= 1, got [4]"),
    ({"n_hidden": 3}, "config['n_visible']: missing"),
    (rbm_config(n_hiden=3), "has no setting 'n_hiden'"),
    ('{"n_visible": 1e999999, "n_hidden": 3}', "out of range"),
    ("[4, 3]", "expected a JSON object, got list"),
])
def test_sizes_must_be_positive_integers(tmp_path, allocations, config, needle):
    path = write(tmp_path / "m.safetensors", rbm_tensors(), config)
    refused(path, "configuration" if needle != "out of range" else "metadata", needle)
    assert allocations["built"] == []


def test_tensor_names_are_checked_too(tmp_path, allocations):
    t = rbm_tensors()
    path = write(tmp_path / "a.safetensors", {"weight": t["weight"]}, rbm_config())
    refused(path, "lacks the tensor 'hidden_bias' its configuration implies")
    assert allocations["built"] == []
    path = write(tmp_path / "b.safetensors", dict(t, junk=torch.zeros(2)), rbm_config())
    refused(path, "holds tensors ['hidden_bias', 'junk', 'visible_bias', 'weight'], expected "
                  "['hidden_bias', 'visible_bias', 'weight']")
    many = {f"t{i:04d}": torch.zeros(1) for i in range(2000)}
    path = write(tmp_path / "c.safetensors", dict(t, **many), rbm_config())
    assert "(2003 in all)" in refused(path)  # the message names a few, not all 2003


def test_good_files_still_load_and_round_trip(tmp_path, monkeypatch):
    def no_pickle(*a, **k):
        raise AssertionError("unpickling while reading a model file")
    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(torch, "load", no_pickle)
    rbm = RBM(6, 3, "softmax:3", "spin", generator=gen(3), dtype=torch.float64)
    bm = BoltzmannMachine(3, 2, init_std=0.3, n_machines=4, generator=gen(4))
    net = Hopfield(8, "storkey").store(torch.where(torch.rand(3, 8, generator=gen(5)) < 0.5,
                                                   -1.0, 1.0))
    for i, model in enumerate((rbm, bm, net)):
        path = boltzkit.save(model, tmp_path / f"{i}.safetensors", metadata={"epoch": 2})
        back = boltzkit.load(path)
        assert type(back) is type(model) and back.config() == model.config()
        for k, t in model.state_dict().items():
            assert back.state_dict()[k].dtype == t.dtype and torch.equal(back.state_dict()[k], t)
        back.validate()


# -- 2. JSON records that are not JSON, nest too deep or hold absurd numbers ------------------
DEEP = "[" * 100000 + "]" * 100000
NESTED = "[" * 150 + "]" * 150  # parses, but deeper than any record boltzkit writes
BIG_INT = "1" * 10 ** 6


@pytest.mark.parametrize("record", ["config", "extra", "preparation"])
@pytest.mark.parametrize("text, needle", [
    (DEEP, "nested more than 100 levels deep"),
    (NESTED, "nested more than 100 levels deep"),
    ("1e999999", "out of range"),
    ('{"a": -1e400}', "out of range"),
    (BIG_INT, "an integer of 1000000 digits"),
    ('{"n": -' + BIG_INT + "}", "an integer of 1000000 digits"),
    ("{not json", "Expecting property name"),
    ("", "Expecting value"),
])
def test_corrupt_json_records(tmp_path, record, text, needle):
    meta = {"config": rbm_config(), record: text}
    path = write(tmp_path / "j.safetensors", rbm_tensors(), **meta)
    what = "preparation record" if record == "preparation" else "metadata"
    for read in (read_metadata, boltzkit.load):
        refused(path, f"has corrupt {what}", needle, read=read)


def test_the_digit_limit_holds_without_pythons_own(tmp_path):
    path = write(tmp_path / "j.safetensors", rbm_tensors(), rbm_config(),
                 extra='{"seed": ' + "9" * 5000 + "}")
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # no limit of Python's: boltzkit's own still refuses
    try:
        refused(path, "an integer of 5000 digits", read=read_metadata)
    finally:
        sys.set_int_max_str_digits(old)
    refused(path, "an integer of 5000 digits", read=read_metadata)


@pytest.mark.parametrize("change, needle", [
    (lambda h: h.replace('"format":"boltzkit"', '"format":{"x":1}'), "not a readable"),
    (lambda h: "[" * 100000 + "]" * 100000, "not a readable"),
    (lambda h: h[: len(h) // 2], "not a readable"),
    (lambda h: h.replace('"format_version":"1"', '"format_version":"7"'), "format version '7'"),
    (lambda h: h.replace('"model":"RBM"', '"model":"' + "X" * 100000 + '"'), "XXX..."),
])
def test_edited_headers(tmp_path, change, needle):
    path = write(tmp_path / "h.safetensors", rbm_tensors(), rbm_config())
    edit_header(path, lambda h: change(h.replace(", ", ",").replace(": ", ":")))
    refused(path, needle)


# -- 3. dtypes: float32 and float64 only, finite also after a cast ----------------------------
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float8_e4m3fn,
                                   torch.float8_e5m2, torch.complex64, torch.int64, torch.int8,
                                   torch.bool])
def test_only_float32_and_float64_tensors(tmp_path, allocations, dtype):
    t = rbm_tensors()
    t["weight"] = t["weight"].to(dtype)
    if dtype == torch.complex64:  # NaN in the real part: the finite check must not be passed
        t["weight"][0, 0] = complex(math.nan, 0.0)
    path = write(tmp_path / "d.safetensors", t, rbm_config())
    name = str(dtype).replace("torch.", "")
    refused(path, f"tensor 'weight' is {name}, expected float32 or float64")
    assert allocations["built"] == []


@pytest.mark.parametrize("model, name", [("BoltzmannMachine", "mask"),
                                         ("Hopfield", "patterns")])
def test_buffers_too(tmp_path, model, name):
    t, config = bm_tensors() if model == "BoltzmannMachine" else hopfield_tensors()
    t[name] = t[name].to(torch.int8)
    refused(write(tmp_path / "b.safetensors", t, config, model), f"tensor {name!r} is int8")


@pytest.mark.parametrize("value, dtype, needle", [
    (math.nan, torch.float32, "tensor 'weight' holds NaN or inf"),
    (-math.inf, torch.float64, "tensor 'weight' holds NaN or inf"),
    (1e300, torch.float64, "tensor 'weight' holds values too large for float32 (up to 1e+300)"),
])
def test_finite_after_the_cast(tmp_path, value, dtype, needle):
    t = rbm_tensors()  # float32 biases: a float64 weight is cast to float32
    t["weight"] = t["weight"].to(dtype)
    t["weight"][1, 2] = value
    refused(write(tmp_path / "f.safetensors", t, rbm_config()), needle)


def test_an_all_float64_file_keeps_its_precision(tmp_path):
    t = rbm_tensors(dtype=torch.float64)
    t["weight"][0, 0] = 1e300
    m = boltzkit.load(write(tmp_path / "f.safetensors", t, rbm_config()))
    assert m.weight.dtype == torch.float64 and m.weight[0, 0] == 1e300


# -- 4. extra metadata ------------------------------------------------------------------------
@pytest.mark.parametrize("text, kind", [('"a string"', "str"), ("[1, 2]", "list"),
                                        ("42", "int"), ("null", "NoneType")])
def test_extra_must_be_an_object(tmp_path, text, kind):
    path = write(tmp_path / "e.safetensors", rbm_tensors(), rbm_config(), extra=text)
    for read in (read_metadata, boltzkit.load):
        refused(path, f"invalid extra metadata (expected a JSON object, got {kind})", read=read)


@pytest.mark.parametrize("shape", ["abc", 5, [2], [2, "x"], [True, 4], [-2, -2], [3, 3],
                                   [2, 2, 1], {"h": 2}, [2.0, 2.0], None, [4, 0]])
def test_a_stored_image_shape_that_does_not_fit_is_ignored(shape):
    assert image_shape({"image_shape": shape}, 4) == (2, 2)
    assert image_shape({"image_shape": shape}, 6) == (1, 6)
    assert image_shape({"image_shape": [1, 4]}, 4) == (1, 4)
    assert image_shape("not a dict", 9) == (3, 3)


def test_known_keys_of_wrong_types_are_tolerated(tmp_path, capsys):
    extra = {"image_shape": "abc", "epoch": "last", "settings": [1, 2], "dataset": 7}
    path = write(tmp_path / "e.safetensors", rbm_tensors(), rbm_config(), extra=extra)
    assert read_metadata(path)["extra"] == extra  # the caller's record, returned as it is
    assert boltzkit.load(path).n_visible == 4
    out = tmp_path / "x.png"
    assert main(["sample", str(path), "--n", "4", "--steps", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 0


# -- 5. inconsistent models -------------------------------------------------------------------
def _bm(change):
    t, config = bm_tensors()
    change(t, config)
    return t, config


def _asymmetric(t, config):
    t["weight"][0, 1] += 0.25


def _diagonal(t, config):
    t["weight"][2, 2] = 0.5


def _mask_half(t, config):
    t["mask"][0, 1] = t["mask"][1, 0] = 0.5


def _mask_asymmetric(t, config):
    t["mask"][0, 2] = 1.0


def _mask_diagonal(t, config):
    t["mask"][1, 1] = 1.0


def _off_mask(t, config):
    t["weight"][0, 2] = t["weight"][2, 0] = 0.3


@pytest.mark.parametrize("change, needle", [
    (_asymmetric, "tensor 'weight': expected a symmetric matrix, w[i, j] and w[j, i] differ "
                  "by up to 0.25"),
    (_diagonal, "tensor 'weight': expected a zero diagonal (no unit acts on itself), found 0.5 "
                "at (2,)"),
    (_mask_half, "tensor 'mask': expected values 0 and 1 (1 where two units connect), found 0.5 "
                 "at (0, 1)"),
    (_mask_asymmetric, "tensor 'mask': expected a symmetric matrix"),
    (_mask_diagonal, "tensor 'mask': expected a zero diagonal"),
    (_off_mask, "tensor 'weight': expected zero where the mask has no connection, found 0.3 at "
                "(0, 2)"),
    (lambda t, c: c.update(units="gaussian"), "config['units']: a BoltzmannMachine takes binary "
                                              "units"),
    (lambda t, c: c.update(units="spinny"), "units: expected one of"),
    (lambda t, c: c.update(units=["spin"]), "config['units']: expected the name of a unit family"),
    (lambda t, c: c.update(units="s" * 10 ** 6), "expected the name of a unit family, got 'sss"),
    (lambda t, c: c.update(n_hidden=2.0), "config['n_hidden']: expected an integer >= 0, got 2.0"),
    (lambda t, c: c.update(n_hidden=False), "config['n_hidden']: expected an integer >= 0"),
    (lambda t, c: c.update(visible_visible=1), "config['visible_visible']: expected true or "
                                               "false, got 1"),
    (lambda t, c: c.update(temperature=0), "config['temperature']: expected a finite number > 0"),
    (lambda t, c: c.update(temperature=True), "config['temperature']: expected a finite number"),
    (lambda t, c: c.update(temperature="1"), "config['temperature']: expected a finite number"),
    (lambda t, c: c.update(n_machines=0), "config['n_machines']: expected an integer >= 1"),
])
def test_inconsistent_boltzmann_machines(tmp_path, change, needle):
    t, config = _bm(change)
    refused(write(tmp_path / "bm.safetensors", t, config, "BoltzmannMachine"), needle)


def test_every_machine_of_a_stack_is_checked(tmp_path):
    t, config = bm_tensors(stack=3)
    t["weight"][2, 1, 0] += 1.0
    refused(write(tmp_path / "s.safetensors", t, config, "BoltzmannMachine"),
            "tensor 'weight': expected a symmetric matrix")


def _hopfield(change):
    t, config = hopfield_tensors()
    change(t, config)
    return t, config


@pytest.mark.parametrize("change, needle", [
    (lambda t, c: t["weight"].__setitem__((0, 1), 9.0), "tensor 'weight': expected a symmetric"),
    (lambda t, c: t["weight"].__setitem__((3, 3), -1.0), "tensor 'weight': expected a zero "
                                                         "diagonal"),
    (lambda t, c: t["patterns"].__setitem__((1, 4), 0.0), "tensor 'patterns': expected ±1 "
                                                          "values, found 0 at (1, 4)"),
    (lambda t, c: c.update(rule="delta"), "config['rule']: expected one of hebbian, storkey, "
                                          "pseudoinverse, got 'delta'"),
    (lambda t, c: c.update(n_patterns=2.5), "config['n_patterns']: expected an integer >= 0"),
    (lambda t, c: c.update(n_patterns=-1), "config['n_patterns']: expected an integer >= 0"),
    (lambda t, c: c.update(n_units=6.0), "config['n_units']: expected an integer >= 1"),
    (lambda t, c: c.update(n_units=True), "config['n_units']: expected an integer >= 1"),
])
def test_inconsistent_hopfield_networks(tmp_path, change, needle):
    t, config = _hopfield(change)
    refused(write(tmp_path / "h.safetensors", t, config, "Hopfield"), needle)


@pytest.mark.parametrize("config, needle", [
    (rbm_config(visible="gaussianx"), "units: expected one of"),
    (rbm_config(hidden=7), "config['hidden']: expected the name of a unit family, got 7"),
    (rbm_config(visible="softmax:3"), "config['n_visible']: softmax groups of 3 units"),
    (rbm_config(visible="softmax:0"), "units: expected one of"),
    (rbm_config(visible="softmax:" + "9" * 90), "softmax groups of 9999"),
])
def test_inconsistent_rbms(tmp_path, config, needle):
    refused(write(tmp_path / "r.safetensors", rbm_tensors(), config), needle)


def test_a_small_asymmetry_from_rounding_is_accepted(tmp_path):
    x = torch.randn(5, 3, generator=gen(6))
    w = x @ x.t()  # symmetric up to rounding, as a user might set it
    w.fill_diagonal_(0.0)
    net = Hopfield(5)
    net.weight.copy_(w)
    net.validate()
    assert torch.equal(boltzkit.load(boltzkit.save(net, tmp_path / "h.safetensors")).weight, w)


def test_validate_checks_a_model_in_memory():
    bm = BoltzmannMachine(3, 1, init_std=0.2, generator=gen(7))
    bm.validate()
    with torch.no_grad():
        bm.weight[0, 1] = 1.0
    with pytest.raises(ValueError, match="tensor 'weight': expected a symmetric matrix"):
        bm.validate()
    bm.constrain_()
    bm.validate()


# -- the training state reads tensors through the same check ----------------------------------
def _state_file(tmp_path, model, change):
    path = TrainState(model=model, generator=gen(8), epochs=1).save(tmp_path / "s.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    change(tensors)
    save_file(tensors, str(path), metadata=meta)
    return path


def _set(name, value):
    return lambda t: t.__setitem__(name, value)


@pytest.mark.parametrize("model, change, needle", [
    (lambda: RBM(4, 3), _set("model/weight", torch.zeros(4, 3, dtype=torch.float16)),
     "tensor 'weight' is float16, expected float32 or float64"),
    (lambda: RBM(4, 3), _set("model/weight", torch.zeros(4, 3, dtype=torch.bfloat16)),
     "tensor 'weight' is bfloat16, expected float32 or float64"),
    (lambda: RBM(4, 3), _set("model/weight", torch.full((4, 3), complex(math.nan, 0))),
     "tensor 'weight' is complex64, expected float32 or float64"),
    (lambda: RBM(4, 3), _set("model/weight", torch.full((4, 3), 1e300, dtype=torch.float64)),
     "tensor 'weight' is float64 (4, 3), the model has float32 (4, 3)"),
    (lambda: RBM(4, 3), _set("model/weight", torch.zeros(4000, 3)),
     "tensor 'weight' is float32 (4000, 3), the model has float32 (4, 3)"),
    (lambda: RBM(4, 3), _set("model/hidden_bias", torch.tensor([0.0, math.inf, 0.0])),
     "tensor 'hidden_bias' holds NaN or inf"),
    (lambda: RBM(4, 3), _set("update/weight", torch.full((4, 3), 1e300, dtype=torch.float64)),
     "tensor 'update/weight' holds values too large for float32"),
    (lambda: BoltzmannMachine(3, 1), _set("model/weight", torch.triu(torch.ones(4, 4), 1)),
     "tensor 'weight': expected a symmetric matrix"),
])
def test_training_state_tensors_are_checked_alike(tmp_path, model, change, needle):
    model = model()
    path = _state_file(tmp_path, model, change)
    with pytest.raises(ValueError) as err:
        TrainState.load(path, model)
    message = str(err.value)
    assert message.startswith(f"training state: {path}") and "\n" not in message, message
    assert needle in message, message


# -- the command line ---------------------------------------------------------------------------
def _bad_files(tmp_path):
    t = rbm_tensors()
    complex_t = dict(t, weight=t["weight"].to(torch.complex64))
    return {
        "huge": write(tmp_path / "huge.safetensors", t, rbm_config(HUGE, HUGE)),
        "float": write(tmp_path / "float.safetensors", t, rbm_config(64.7, 3)),
        "deep": write(tmp_path / "deep.safetensors", t, DEEP),
        "overflow": write(tmp_path / "overflow.safetensors", t, rbm_config(), extra="1e999999"),
        "digits": write(tmp_path / "digits.safetensors", t, rbm_config(), extra=BIG_INT),
        "complex": write(tmp_path / "complex.safetensors", complex_t, rbm_config()),
        "extra": write(tmp_path / "extra.safetensors", t, rbm_config(), extra='"a string"'),
    }


@pytest.mark.parametrize("command", [["sample", "--out", "x.png"], ["evaluate"]])
def test_the_command_line_gives_one_line_and_status_2(tmp_path, capsys, command):
    for name, path in _bad_files(tmp_path).items():
        capsys.readouterr()
        argv = [command[0], str(path), *command[1:]]
        if command[0] == "sample":
            argv[-1] = str(tmp_path / "x.png")
        assert main(argv) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"boltzkit: error: model file: {path}") and err.count("\n") == 1, \
            (name, err)
    assert not (tmp_path / "x.png").exists()


def test_the_installed_command_too(tmp_path):
    path = _bad_files(tmp_path)["digits"]  # Python's own digit-limit error named no file
    done = subprocess.run([sys.executable, "-m", "boltzkit", "sample", str(path), "--out",
                           str(tmp_path / "x.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"boltzkit: error: model file: {path} has corrupt metadata")
    assert done.stderr.count("\n") == 1

