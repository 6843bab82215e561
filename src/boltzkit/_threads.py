"""A context manager for torch's CPU thread count, for code that issues many small operations
(asynchronous Hopfield recall, sequential Gibbs sweeps, the encoder experiment).

Splitting a tiny operation over threads never pays, and on a busy machine every parallel region
waits for all its threads to be scheduled: on a shared, oversubscribed 2-core machine a
(3, 162, 60) x (3, 60, 60) product took 12 ms with two threads against 0.08 ms with one, and
Hopfield recall and encoder cycles ran up to 100 times slower. The setting is process-wide, so it
is changed only for the duration of the block and restored afterwards, and only for CPU work.
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: Optional[int], device=None):
    """Run the block with ``n`` intra-op CPU threads, restoring the previous number afterwards
    (``None``, or a ``device`` that is not the CPU: leave it alone)."""
    if n is None or (device is not None and torch.device(device).type != "cpu"):
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
