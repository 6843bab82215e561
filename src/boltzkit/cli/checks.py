"""Checks the commands share, each raising one ``ValueError`` line that names the option: made
before any work starts (before data are loaded, models built or files written).

- :func:`device`: ``cpu``, ``cuda``, ``cuda:N`` that this machine has;
- :func:`seed`: a seed ``torch.Generator.manual_seed`` takes (0 <= seed < 2^63);
- :func:`output_file` / :func:`output_folder`: a file that can be written with one of the
  expected suffixes (its folder creatable and writable, not a folder itself), a folder that can
  be created and written;
- :func:`memory`: refuse a size whose tensors cannot fit in the device's memory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import torch

__all__ = ["device", "seed", "output_file", "output_folder", "memory", "available_memory",
           "free_space"]

MAX_SEED = 2 ** 63


def device(name, option: str = "--device") -> torch.device:
    """The torch device ``name`` names, if this machine has it."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{option}: expected cpu, cuda or cuda:N, got {name!r}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{option}: expected cpu, cuda or cuda:N, got {name!r}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option}: {name} asked for, but this PyTorch has no CUDA device")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"{option}: {name} asked for, this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    return dev


def seed(value, option: str = "--seed") -> int:
    """A seed a torch generator takes."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_SEED:
        raise ValueError(f"{option}: expected an integer in [0, 2^63), got {value}")
    return value


def _writable_folder(folder: Path, option: str, what: str) -> None:
    """Check that a file can be written in ``folder``, creating it (and its parents) for the
    probe and removing again what the probe created: a command refused later leaves nothing
    behind. (Root may write where permissions say no: the probe write settles it.)"""
    from ..io import atomic_write

    created = []
    top = folder
    while not top.exists() and top != top.parent:
        created.append(top)
        top = top.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / ".write-check") as tmp:
            tmp.write_bytes(b"")
        (folder / ".write-check").unlink()
    except OSError as err:
        raise ValueError(f"{option}: cannot write {what} {folder} ({err.strerror or err})") \
            from None
    finally:
        for made in created:  # deepest first
            try:
                made.rmdir()
            except OSError:
                break


def output_file(path, option: str, suffixes: Sequence[str]) -> Path:
    """``path`` as a file this command may write: one of ``suffixes``, not a folder, in a folder
    that exists or can be made and is writable."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise ValueError(f"{option}: expected a file ending in {' or '.join(suffixes)}, got "
                         f"{path}")
    if p.is_dir():
        raise ValueError(f"{option}: {path} is a folder, expected a file to write")
    _writable_folder(p.parent if str(p.parent) else Path("."), option, "to the folder of")
    return p


def output_folder(path, option: str) -> Path:
    """``path`` as a folder this command may write into (checked by a probe write)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option}: {path} is a file, expected a folder")
    _writable_folder(p, option, "the folder")
    return p


def available_memory(dev: torch.device) -> int:
    """Bytes that tensors on ``dev`` can still take (free GPU memory, or the machine's
    available memory)."""
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def memory(n_bytes: float, what: str, dev: torch.device = torch.device("cpu")) -> None:
    """Refuse, before allocating anything, work whose tensors need more than the device has."""
    have = available_memory(dev)
    if n_bytes > have:
        raise ValueError(f"{what} would take about {_size(n_bytes)}, and {dev} has "
                         f"{_size(have)} available")


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def free_space(folder: Path, n_bytes: int, option: str) -> None:
    """Refuse when ``folder``'s file system (that of its nearest existing ancestor, if it is
    still to be made) has less than ``n_bytes`` free."""
    where = Path(folder)
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    if free < n_bytes:
        raise ValueError(f"{option}: {folder} has {_size(free)} free, the files need about "
                         f"{_size(n_bytes)}")
