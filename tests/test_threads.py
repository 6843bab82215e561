"""The thread-count option: parsing, the auto rule's range, and that nothing changes torch's
setting unless asked (no timing here: see benchmarks/bench_threads.py)."""

import os

import pytest
import torch

from boltzkit import _threads
from boltzkit._threads import (SMALL_WORK, auto_threads, idle_cores, parse_threads,
                               resolve_threads, set_threads, torch_threads)
from boltzkit.cli import main


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.parametrize("value, expected", [(1, 1), (3, 3), ("2", 2), (" 4 ", 4),
                                             ("auto", "auto"), ("AUTO", "auto")])
def test_parse_accepts(value, expected):
    assert parse_threads(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "-1", "x", "", "1.5", 1.0, 2.5, True, None,
                                   [2]])
def test_parse_refuses_with_one_line(value):
    with pytest.raises(ValueError) as err:
        parse_threads(value, "--threads")
    message = str(err.value)
    assert message.startswith("--threads: expected a positive integer or auto, got ")
    assert "\n" not in message


def test_auto_is_a_valid_count():
    n = auto_threads()
    assert isinstance(n, int) and 1 <= n <= cores()
    assert resolve_threads("auto") in range(1, cores() + 1)
    assert 0.0 <= idle_cores(0.01) <= cores()


def test_auto_small_work_is_one_thread():
    assert auto_threads(work=SMALL_WORK - 1) == 1
    assert 1 <= auto_threads(work=100 * 784 * 500) <= cores()


def test_auto_follows_idle_cores(monkeypatch):
    monkeypatch.setattr(_threads, "_cores", lambda: {0, 1, 2, 3})
    for idle, want in [(4.0, 4), (3.1, 3), (2.8, 3), (0.2, 1), (0.0, 1)]:
        monkeypatch.setattr(_threads, "idle_cores", lambda interval=0.1, v=idle: v)
        assert auto_threads() == want, idle
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's processes share them
    monkeypatch.setattr(_threads, "idle_cores", lambda interval=0.1: 4.0)
    assert auto_threads() == 2


def test_idle_cores_without_proc_stat(monkeypatch):
    monkeypatch.setattr(_threads, "_cpu_times", lambda: None)
    assert 0.0 <= idle_cores() <= cores()


def test_library_calls_leave_the_setting_alone():
    before = torch.get_num_threads()
    resolve_threads("auto")
    auto_threads(work=1e9)
    idle_cores(0.01)
    assert torch.get_num_threads() == before
    with torch_threads("auto", work=1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(2, device="meta"):  # not the CPU: left alone
        assert torch.get_num_threads() == before


def test_set_threads_sets_when_asked():
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    n = set_threads("auto")
    assert torch.get_num_threads() == n and 1 <= n <= cores()
    with pytest.raises(ValueError, match="threads: expected a positive integer or auto"):
        set_threads(0)


@pytest.mark.parametrize("bad", ["0", "-1", "x"])
@pytest.mark.parametrize("command", [["train"], ["evaluate", "m.safetensors"],
                                     ["sample", "m.safetensors", "--out", "s.npy"]])
def test_cli_refuses_bad_threads(tmp_path, monkeypatch, capsys, command, bad):
    monkeypatch.chdir(tmp_path)
    assert main(command + ["--threads", bad]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"boltzkit: error: --threads: expected a positive integer or auto, got "
                   f"{bad!r}"]
    assert not list(tmp_path.iterdir())  # refused before any work


def test_cli_train_keeps_the_callers_setting(tmp_path, capsys):
    torch.set_num_threads(1)
    args = ["train", "--epochs", "1", "--hidden", "4", "--monitor-every", "0", "--no-progress",
            "--out", str(tmp_path / "run")]
    assert main(args + ["--threads", "2"]) == 0
    assert torch.get_num_threads() == 1
    assert main(args + ["--overwrite", "--threads", "auto"]) == 0
    assert torch.get_num_threads() == 1


def test_cli_train_applies_the_option_with_its_work(tmp_path, monkeypatch, capsys):
    calls = []
    real = _threads.set_threads
    monkeypatch.setattr(_threads, "set_threads",
                        lambda value, work=None: calls.append((value, work)) or real(value, work))
    args = ["train", "--epochs", "1", "--hidden", "4", "--monitor-every", "0", "--no-progress",
            "--out", str(tmp_path / "run")]
    assert main(args) == 0
    # digits: 64 pixels, batch 20 (fewer than 10,000 rows), 4 hidden units
    assert calls == [("auto", 20 * 64 * 4)]
    assert main(args + ["--overwrite", "--threads", "1"]) == 0
    assert calls[-1] == (1, 20 * 64 * 4)
