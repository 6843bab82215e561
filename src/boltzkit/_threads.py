"""Torch's CPU thread count: a context manager for code that issues many small operations, and
the ``auto`` rule the commands' ``--threads`` option uses.

Splitting a tiny operation over threads never pays, and on a busy machine every parallel region
waits for all its threads to be scheduled: on a shared, oversubscribed 2-core machine a
(3, 162, 60) x (3, 60, 60) product took 12 ms with two threads against 0.08 ms with one, and
Hopfield recall and encoder cycles ran up to 100 times slower. The setting is process-wide, so
:func:`torch_threads` changes it only for the duration of the block and restores it afterwards,
and only for CPU work; :func:`set_threads` changes it for good, and only when called.

The ``auto`` rule (:func:`auto_threads`, measured by ``benchmarks/bench_threads.py``): as many
threads as the cores this process may run on that are idle now, at least one, with the idle
share of each core read from the kernel's counters over a short interval (``/proc/stat``; where
they cannot be read, the 1-minute load average instead); and one thread whatever the load when
the work per operation is small (fewer than :data:`SMALL_WORK` multiply-adds per matrix product,
about a batch of 100 against a 100 x 100 weight matrix), where a second thread gains little on
a quiet machine and loses several fold on a busy one. Processes started together by torchrun
(``LOCAL_WORLD_SIZE``) share the idle cores.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Optional, Union

import torch

__all__ = ["torch_threads", "parse_threads", "auto_threads", "resolve_threads", "set_threads",
           "idle_cores", "SMALL_WORK"]

# multiply-adds per matrix product below which one thread is chosen whatever the load
SMALL_WORK = 1_000_000
# seconds over which the idle share of the cores is measured
PROBE_S = 0.1


def parse_threads(value, name: str = "threads") -> Union[int, str]:
    """``value`` checked as a thread count: a positive integer (also as text), or ``"auto"``.

    Parameters
    ----------
    value : int or str
        What the user gave.
    name : str
        The argument's name in the error message.

    Returns
    -------
    int or str
        The count, or ``"auto"``.

    Raises
    ------
    ValueError
        ``"<name>: expected a positive integer or auto, got <value>"`` for anything else
        (0, negative numbers, booleans, floats, other text).
    """
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) >= 1:
            return int(text)
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"{name}: expected a positive integer or auto, got {value!r}")


def _cores() -> set:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def _cpu_times() -> Optional[dict]:
    """``{cpu: (idle, total)}`` jiffies from ``/proc/stat``, or None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        head, _, rest = line.partition(" ")
        if head.startswith("cpu") and head[3:].isdigit():
            fields = [int(v) for v in rest.split()]
            if len(fields) >= 4:
                idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
                out[int(head[3:])] = (idle, sum(fields[:8]))
    return out or None


def idle_cores(interval: float = PROBE_S) -> float:
    """How many of the cores this process may run on are idle now.

    Parameters
    ----------
    interval : float
        Seconds over which the kernel's per-core counters are compared (the caller sleeps
        that long).

    Returns
    -------
    float
        The sum over those cores of their idle share, in ``[0, cores]``; where the counters
        cannot be read, the cores less the 1-minute load average (which lags: a process that
        started seconds ago is not in it yet).
    """
    cores = _cores()
    before = _cpu_times()
    if before is not None and cores & set(before):
        time.sleep(interval)
        after = _cpu_times() or {}
        idle = 0.0
        for cpu in cores & set(before) & set(after):
            d_total = after[cpu][1] - before[cpu][1]
            d_idle = after[cpu][0] - before[cpu][0]
            idle += min(1.0, max(0.0, d_idle / d_total)) if d_total > 0 else 1.0
        return idle
    try:
        load = os.getloadavg()[0]
    except (OSError, AttributeError):
        return float(len(cores))
    return max(0.0, len(cores) - load)


def auto_threads(work: Optional[float] = None, interval: float = PROBE_S) -> int:
    """The thread count the ``auto`` rule gives (see the module docstring).

    Parameters
    ----------
    work : float, optional
        Multiply-adds of the typical matrix product of the job (e.g. batch x visible x
        hidden); below :data:`SMALL_WORK`, one thread. ``None``: not known, decide by the load
        alone.
    interval : float
        Seconds the idle cores are measured over.

    Returns
    -------
    int
        A count in ``[1, cores this process may run on]``.
    """
    cores = len(_cores())
    if cores <= 1 or (work is not None and work < SMALL_WORK):
        return 1
    # a core counts as free when at least 3/4 of it is idle
    free = int(math.floor(idle_cores(interval) + 0.25))
    # the processes torchrun started on this machine share the free cores
    try:
        local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        local = 1
    return max(1, min(cores, free) // local)


def resolve_threads(value="auto", work: Optional[float] = None, name: str = "threads") -> int:
    """A thread count from a positive integer or ``"auto"`` (checked by :func:`parse_threads`,
    ``auto`` resolved by :func:`auto_threads` with ``work``); changes nothing."""
    value = parse_threads(value, name)
    return auto_threads(work) if value == "auto" else value


def set_threads(value="auto", work: Optional[float] = None) -> int:
    """Set torch's intra-op CPU thread count for the rest of the process.

    Parameters
    ----------
    value : int or "auto"
        A positive count, or ``"auto"`` (the rule of the module docstring, measured now).
    work : float, optional
        Multiply-adds of the job's typical matrix product, for ``auto`` (see
        :func:`auto_threads`).

    Returns
    -------
    int
        The count set (``torch.get_num_threads()`` afterwards).
    """
    n = resolve_threads(value, work)
    torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def torch_threads(n, device=None, work: Optional[float] = None):
    """Run the block with ``n`` intra-op CPU threads (a positive integer or ``"auto"``, resolved
    with ``work`` as in :func:`auto_threads`), restoring the previous number afterwards
    (``None``, or a ``device`` that is not the CPU: leave it alone)."""
    if n is None or (device is not None and torch.device(device).type != "cpu"):
        yield
        return
    if not isinstance(n, (int, str)) or isinstance(n, bool):
        raise ValueError(f"threads: expected a positive integer or auto, got {n!r}")
    n = resolve_threads(n, work)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
