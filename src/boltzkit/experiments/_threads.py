"""A context manager for torch's CPU thread count, shared by the Boltzmann machine experiments."""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: Optional[int]):
    """Run the block with ``n`` intra-op CPU threads, restoring the previous number afterwards
    (``None``: leave it alone). Sequential sampling issues many small operations; on a busy
    machine their thread synchronisation can cost far more than the arithmetic."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads: expected a positive integer, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
