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

import shutil
from pathlib import Path
from typing import Sequence

import torch

from .. import _validation as _v

__all__ = ["device", "seed", "output_file", "output_folder", "memory", "free_space"]

def device(name, option: str = "--device") -> torch.device:
    """The torch device ``name`` names, if this machine has it."""
    return _v.device(name, option)


def seed(value, option: str = "--seed") -> int:
    """A seed a torch generator takes."""
    return _v.seed(value, option)


def _writable_folder(folder: Path, option: str, what: str) -> None:
    """Check that a file can be written in ``folder``, leaving nothing behind."""
    from ..io import check_writable_folder

    check_writable_folder(folder, f"{option}: cannot write {what}")


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


def memory(n_bytes: float, what: str, dev: torch.device = torch.device("cpu")) -> None:
    """Refuse, before allocating anything, work whose tensors need more than the device has."""
    _v.memory(n_bytes, what, dev)


_size = _v.size_text


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
