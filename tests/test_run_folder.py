"""The run folder of ``boltzkit train``: one run per folder, checked before training, no
temporary file left behind, divergence stopped with one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from boltzkit.cli import main
from boltzkit.io import FolderLock, atomic_write

QUICK = ["--epochs", "2", "--hidden", "8", "--no-progress", "--sample-steps", "5"]


def train(out, *extra):
    return main(["train", "--out", str(out), *QUICK, *extra])


def one_error_line(capsys, needle):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("boltzkit: error:") and needle in err[0], err
    return err[0]


def test_a_folder_in_use_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    with FolderLock(run, what="--out"):  # as if another process were training there
        assert train(run) == 2
    one_error_line(capsys, "is in use by another boltzkit process")
    assert not (run / "model.safetensors").exists()
    assert not (run / ".lock").exists()  # released and removed
    assert train(run) == 0
    capsys.readouterr()
    # a live run's folder (it holds run.json already) is named as in use, for --resume too
    with FolderLock(run):
        assert train(run) == 2
        one_error_line(capsys, f"--out: {run} is in use by another boltzkit process (pid")
        assert main(["train", "--resume", str(run)]) == 2
        one_error_line(capsys, f"--resume: {run} is in use")


def test_a_finished_run_is_reused_only_on_request(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    first = (run / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert train(run) == 2
    one_error_line(capsys, f"--resume {run}, or start over with --overwrite")
    assert (run / "model.safetensors").read_bytes() == first
    assert train(run, "--overwrite", "--seed", "1") == 0
    assert (run / "model.safetensors").read_bytes() != first
    # --resume of a finished run says so; --epochs trains it further
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "has finished its 2 epochs" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-progress"]) == 0
    history = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    settings = json.loads((run / "run.json").read_text())["settings"]
    assert settings["epochs"] == 3 and settings["seed"] == 1


def test_resume_takes_its_settings_from_the_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--lr", "0.5"]) == 2
    one_error_line(capsys, "only --epochs may change, got --lr")
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    one_error_line(capsys, "is not a folder")
    (tmp_path / "empty").mkdir()
    assert main(["train", "--resume", str(tmp_path / "empty")]) == 2
    one_error_line(capsys, "not a boltzkit run folder (no run.json)")
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    one_error_line(capsys, "epochs")


def test_an_unwritable_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    assert train(blocker / "run") == 2
    one_error_line(capsys, f"--out: cannot write the folder {blocker / 'run'}")
    assert capsys.readouterr().out == ""  # nothing was trained
    # a full disk, as the folder's free space says
    import boltzkit.cli.checks as checks

    monkeypatch.setattr(checks.shutil, "disk_usage",
                        lambda p: type("Usage", (), {"free": 1000})())
    assert train(tmp_path / "full") == 2
    one_error_line(capsys, "has 1000 B free, the files need about")
    assert not (tmp_path / "full" / "model.safetensors").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_folder_is_refused_before_training(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert train(ro / "run") == 2
        one_error_line(capsys, "--out: cannot write the folder")
    finally:
        ro.chmod(0o700)


def test_a_refused_option_creates_no_folder(tmp_path, capsys):
    assert train(tmp_path / "run", "--hidden", "0") == 2
    one_error_line(capsys, "--hidden")
    assert not (tmp_path / "run").exists()


def test_runaway_learning_rate_stops_with_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--out", str(run), "--lr", "100", "--no-progress"]) == 2
    line = one_error_line(capsys, "training diverged in epoch 1")
    assert "lower the learning rate, currently 100" in line
    assert not (run / "model.safetensors").exists()  # no good epoch: nothing labelled as one


def test_atomic_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "x.json"
    # a writer killed mid-write (its process is gone) left its temporary file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".x.json.{dead}.abcdefgh.tmp.json"
    stale.write_text("half")
    mine = tmp_path / f".x.json.{os.getpid()}.zzzzzzzz.tmp.json"  # a live writer's: kept
    mine.write_text("busy")
    with atomic_write(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}" and not stale.exists() and mine.exists()
    mine.unlink()
    # a failed write cleans up after itself: an error inside, or a rename that fails
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError
    (tmp_path / "adir.png").mkdir()
    with pytest.raises(ValueError, match="adir.png: is a folder, expected a file"):
        with atomic_write(tmp_path / "adir.png") as tmp:
            tmp.write_bytes(b"png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.png", "x.json"]


def test_python_dash_m_boltzkit():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    out = subprocess.run([sys.executable, "-m", "boltzkit", "--version"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("boltzkit ")


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`boltzkit ... | head`: when the reader of the output has gone, the command stops with
    the status of SIGPIPE (141) and no error line or traceback."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    read, write = os.pipe()
    os.close(read)
    try:
        out = subprocess.run([sys.executable, "-m", "boltzkit", "train", "--epochs", "1",
                              "--out", str(tmp_path / "run"), "--no-progress"], stdout=write,
                             stderr=subprocess.PIPE, env=env, timeout=120)
    finally:
        os.close(write)
    assert out.returncode == 141 and out.stderr == b""
