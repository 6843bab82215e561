"""Bad command-line input: one line naming the option or file, exit status 2, before any work
starts and without leaving files behind. One test per mechanism, the examples as cases."""

import numpy as np
import pytest
import torch

from boltzkit.cli import main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    run = tmp_path_factory.mktemp("model") / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--hidden", "4", "--no-progress",
                 "--sample-steps", "1"]) == 0
    return str(run / "model.safetensors")


def refused(capsys, args, needle):
    assert main(args) == 2, args
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("boltzkit: error:") and needle in err[0], err


def commands(model_file, tmp_path):
    """One invocation of each command that takes the option under test."""
    return {
        "train": ["train", "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress"],
        "sample": ["sample", model_file, "--out", str(tmp_path / "s.npy"), "--steps", "1"],
        "evaluate": ["evaluate", model_file, "--log-z", "exact"],
        "encoder": ["encoder", "4-2-4", "--runs", "2", "--max-cycles", "1"],
    }


@pytest.mark.parametrize("name", ["bogus", "mps", "meta", "cuda:x", "cpu:zero"])
def test_devices(name, model_file, tmp_path, capsys):
    for args in commands(model_file, tmp_path).values():
        refused(capsys, args + ["--device", name], "--device: expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        for args in commands(model_file, tmp_path).values():
            refused(capsys, args + ["--device", "cuda"], "this PyTorch has no CUDA device")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", ["-1", "18446744073709551615", str(2 ** 63)])
def test_seeds(seed, model_file, tmp_path, capsys):
    cmds = dict(commands(model_file, tmp_path),
                hopfield=["hopfield", "spurious", "--n", "10", "--starts", "5"],
                toy=["toy", "--epochs", "1"])
    for args in cmds.values():
        refused(capsys, args + ["--seed", seed], "--seed: expected an integer in [0, 2^63)")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,needle", [
    (["train", "--hidden", "2000000000"], "--hidden 2000000000: the model's tensors would take about"),
    (["train", "--model", "bm", "--hidden", "1000000"], "--hidden 1000000: the model's tensors"),
    (["sample", "MODEL", "--n", "10000000000", "--out", "OUT/s.npy"], "--n 10000000000: the sam"),
    (["encoder", "100000-2-100000"], "encoder 100000-2-100000 with --runs 250: the machines"),
    (["hopfield", "capacity", "--n", "1000000", "--out", "OUT/cap"], "--n 1000000 and --loads up"),
    (["hopfield", "capacity", "--loads", "0.5,1e9", "--out", "OUT/cap"], "--loads up to 200000000001"),
    (["train", "--method", "pcd", "--chains", "1000000000000"], "--chains 1000000000000: the ch"),
    (["evaluate", "MODEL", "--chains", "1000000000000"], "--chains 1000000000000: the AIS"),
    (["evaluate", "MODEL", "--betas", "34000000000"], "--betas 34000000000: the annealing"),
    (["toy", "--chains", "1000000000000"], "--chains 1000000000000: the chains"),
    (["bm", "mnist", "--hidden", "100000000", "--out", "OUT/bm"], "--hidden 100000000: the mach"),
    (["hopfield", "spurious", "--n", "1000000"], "--n 1000000 with --n-patterns 10 and --starts 2000"),
])
def test_impossible_sizes(args, needle, model_file, tmp_path, capsys):
    args = [a.replace("MODEL", model_file).replace("OUT", str(tmp_path)) for a in args]
    if args[0] == "train":
        args += ["--out", str(tmp_path / "run")]
    refused(capsys, args, needle)
    assert list(tmp_path.iterdir()) == []  # nothing created, nothing left


@pytest.mark.parametrize("args,needle", [
    (["sample", "MODEL", "--out", "OUT/dir.png"], "is a folder, expected a file"),
    (["sample", "MODEL", "--out", "OUT/file/s.png"], "--out: cannot write to the folder of"),
    (["sample", "MODEL", "--out", "OUT/s.txt"], "--out: expected a file ending in .npy or .png"),
    (["hopfield", "recall", "--out", "OUT/r.txt"], "--out: expected a file ending in .png"),
    (["hopfield", "capacity", "--out", "OUT/file"], "--out: OUT/file is a file, expected a"),
    (["encoder", "4-2-4", "--plot", "OUT/x.txt"], "--plot: expected a file ending in .png"),
    (["bm", "mnist", "--out", "OUT/file/x"], "--out: cannot write the folder"),
    (["train", "--out", "OUT/file/run"], "--out: cannot write the folder"),
])
def test_output_paths(args, needle, model_file, tmp_path, capsys):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "file").write_text("in the way")
    args = [a.replace("MODEL", model_file).replace("OUT", str(tmp_path)) for a in args]
    refused(capsys, args, needle.replace("OUT", str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.png", "file"]


def test_data_files(tmp_path, capsys):
    def train(path):
        return ["train", "--data", str(path), "--out", str(tmp_path / "run"), "--epochs", "1",
                "--hidden", "2", "--no-progress", "--sample-steps", "1", "--overwrite"]

    x = (np.arange(24).reshape(6, 4) % 2).astype(np.float32)
    np.savez(tmp_path / "a.npz", x=x)
    (tmp_path / "a.npz").rename(tmp_path / "zip.npy")
    refused(capsys, train(tmp_path / "zip.npy"), "zip.npy is a .npz (zip) archive")
    (tmp_path / "text.npy").write_text("1,0\n0,1\n")
    refused(capsys, train(tmp_path / "text.npy"), "text.npy is not a .npy file")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(capsys, train(tmp_path / "obj.npy"), "obj.npy holds Python objects")
    (tmp_path / "gap.csv").write_text("1,,0,1\n0,1,1,0\n")  # an empty field is not a header
    refused(capsys, train(tmp_path / "gap.csv"), "gap.csv is not a numeric comma-separated")
    # accepted: big-endian arrays, a Latin-1 header, a UTF-8 header with a BOM
    np.save(tmp_path / "big.npy", x.astype(">f4"))
    assert main(train(tmp_path / "big.npy")) == 0
    (tmp_path / "latin.csv").write_bytes("café,b,c,d\n".encode("latin-1") +
                                         b"1,0,1,0\n0,1,0,1\n")
    assert main(train(tmp_path / "latin.csv")) == 0
    (tmp_path / "bom.csv").write_bytes("\ufeffa,b,c,d\n1,0,1,0\n0,1,0,1\n".encode("utf-8"))
    assert main(train(tmp_path / "bom.csv")) == 0
    capsys.readouterr()


def test_hopfield_recall_asks_for_more_images_than_there_are(capsys, tmp_path):
    refused(capsys, ["hopfield", "recall", "--dataset", "digits", "--n-patterns", "1798",
                     "--out", str(tmp_path / "r.png")], "--n-patterns: digits (all) has 1797")


@pytest.mark.parametrize("args,needle", [
    ([], "expected a command: train, sample"),
    (["hopfield"], "expected a command: capacity, recall, spurious"),
    (["bm"], "expected an experiment: mnist"),
    (["toy", "--chains", "0"], "--chains: expected a positive integer"),
    (["toy", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--visible-units", "foo"], "--visible-units: expected one of"),
    (["train", "--hidden-units", "softmax:abc"], "--hidden-units: expected one of"),
    (["train", "--method", "cd", "--chains", "50"], "--chains: --method cd starts its chains"),
    (["train", "--visible-units", "gaussian", "--binarize", "sample"], "--binarize: gaussian"),
    (["train", "--model", "bm", "--rule", "sign", "--momentum", "0.9"], "--momentum: --rule sign"),
    (["train", "--out", "OUT/" + "n" * 300], "--out: cannot use"),
])
def test_options_are_named(args, needle, tmp_path, capsys):
    args = [a.replace("OUT", str(tmp_path)) for a in args]
    refused(capsys, args, needle)


def test_a_hand_edited_or_foreign_run_is_refused_unchanged(tmp_path, capsys):
    import json

    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--epochs", "1", "--hidden", "2", "--no-progress",
                 "--sample-steps", "1"]) == 0
    record = json.loads((run / "run.json").read_text())
    for key, value, needle in [("model", "xyz", "--model: expected one of rbm, bm"),
                               ("lr_schedule", "wobbly", "--lr-schedule: expected one of"),
                               ("hidden", "4", "--hidden: expected a positive integer")]:
        edited = dict(record, settings=dict(record["settings"], **{key: value}))
        (run / "run.json").write_text(json.dumps(edited))
        before = (run / "run.json").read_bytes()
        refused(capsys, ["train", "--resume", str(run)], needle)
        assert (run / "run.json").read_bytes() == before
    # a training state from another run: refused, and run.json is left as it was
    other = tmp_path / "other"
    assert main(["train", "--out", str(other), "--epochs", "1", "--hidden", "3", "--no-progress",
                 "--sample-steps", "1"]) == 0
    (run / "run.json").write_text(json.dumps(record))
    (other / "train_state.safetensors").replace(run / "train_state.safetensors")
    before = (run / "run.json").read_bytes()
    refused(capsys, ["train", "--resume", str(run), "--epochs", "2"], "belongs to a RBM")
    assert (run / "run.json").read_bytes() == before


def test_a_run_that_diverges_before_any_epoch_leaves_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    refused(capsys, ["train", "--out", str(run), "--lr", "1e30", "--no-progress"],
            "training diverged in epoch 1")
    assert not run.exists()


def test_a_machine_without_hidden_units_trains(tmp_path, capsys):
    x = (np.random.default_rng(0).random((30, 6)) < 0.5).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["train", "--model", "bm", "--hidden", "0", "--data", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "run"), "--epochs", "2", "--settle", "1", "--collect",
                 "1", "--no-progress", "--sample-steps", "1"]) == 0


def test_an_npy_header_promising_more_than_the_file_holds(tmp_path, capsys):
    import numpy.lib.format as npf

    with open(tmp_path / "huge.npy", "wb") as f:
        npf.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                       "shape": (4_000_000_000_000, 4)})
        f.write(b"\0" * 64)
    refused(capsys, ["train", "--data", str(tmp_path / "huge.npy"), "--out",
                     str(tmp_path / "run")], "huge.npy is truncated: its header says")
