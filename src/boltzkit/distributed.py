"""Data-parallel training over processes with ``torch.distributed`` (gloo on the CPU, nccl on
CUDA), launched by ``torchrun``.

::

    torchrun --nproc-per-node 2 -m boltzkit train --data binarized-mnist --hidden 500

or, from Python, in every process that ``torchrun`` starts::

    group = boltzkit.distributed.init()          # from torchrun's environment
    state = fit(model, data, ..., distributed=group, callbacks=[Checkpoint("runs/x")])
    group.close()

Design (and why)
----------------
*One group object, handed to* :func:`~boltzkit.training.fit` *as* ``distributed=``. Its
:meth:`Group.reduce` is fit's existing ``reduce`` seam; the rest (sharding, the chains' split,
the random streams, agreement on stopping, the per-process part of the training state) needs
the driver's knowledge of batches and state, so fit calls a few methods of the group at fixed
points rather than leaving the user to assemble a ``reduce``, a sampler and rank checks that
must agree with each other. (``DistributedDataParallel`` does not apply: nothing here is
differentiated by autograd; the statistics are the gradient.) :func:`init` joins torchrun's
processes, or takes a default process group the caller has initialised already.

- *The data.* Every process holds the whole data set and draws the same epoch order from the
  run's generator (seeded alike everywhere: checked when training starts). Each global batch of
  ``batch_size`` rows is cut into ``world_size`` contiguous shards of equal size (the first
  ``batch_size % world_size`` one row longer); process ``r`` trains on shard ``r``. A batch
  smaller than the number of processes (the last of an epoch can be) leaves some shards empty:
  those processes run their estimator on one row of the batch with weight 0, so that every
  process keeps the same sequence of collectives and random draws per update. Batches from a
  ``DataLoader`` are cut the same way: every process iterates the whole loader in the same
  order (simple and exact; it reads all the data in every process).
- *The statistics.* Each process's gradient is the mean over its shard; :meth:`Group.reduce`
  sums ``(n_r / n) * gradient_r`` over the processes with one ``all_reduce`` of one buffer per
  dtype, which is the gradient of the whole batch for every estimator whose gradient is a mean
  over the batch of positive statistics minus a mean of negative ones (CD, PCD, PT, the
  two-phase rule, the exact gradient). Every process applies the same sum, so the parameters
  stay identical, bit for bit, after every update (the update rule's buffers too); the
  parameters are broadcast from process 0 when training starts. The fused dense update is
  declined (it folds the update into the products before any sum could be taken).
- *Negative chains.* The global number of persistent chains (an estimator's ``n_chains``, or
  its default ``min(100, rows)``) is what the user sets; process ``r`` keeps its share (the
  first ``n_chains % world_size`` processes one more), so a global count below the number of
  processes is refused. With uneven shares the negative statistics are weighted by the data
  share: a convex combination of unbiased estimates, still unbiased. The two estimators whose
  statistics are not such a mean get what they need: :class:`~boltzkit.training.Centered`
  sums the batch means that move its offsets over the processes (one small ``all_reduce``:
  ``n_visible + n_hidden`` numbers), so the offsets, and with them the centered gradient, are
  those of the whole batch; :class:`~boltzkit.training.PT` sums its swap counters before
  re-spacing the ladder, so every process keeps the same ladder.
- *Random numbers.* The run's generator (the one ``fit`` is given) draws only the epoch order
  here; each process samples from a generator of its own, seeded from that generator's state
  and the process's rank (NumPy's ``SeedSequence``), without drawing from it. A one-process run
  has no group and uses its one generator for both, exactly as before.
- *Side effects.* Every process runs every callback, so monitors (which draw from generators
  of their own, seeded from the epoch) compute the same figures everywhere and a callback's
  ``state.stop`` means the same everywhere (it is also agreed on, with one small
  ``all_reduce`` per epoch); no process waits for a figure that process 0 alone would compute.
  What writes files writes on process 0 only:
  :class:`~boltzkit.training.Checkpoint` does so itself, and :func:`rank_zero` wraps any other
  callback (the command line's run.json and metrics.json writers). The same callbacks must be
  given everywhere (checked when training starts); the progress bar is shown by process 0.
- *The state file.* One file, written by process 0 (atomically, as before): the parameters,
  update buffers, epoch order and the run's generator as in a one-process file, and, per
  process ``r``, its chains (``rank<r>/estimator/<field>``) and its sampling generator
  (``rank<r>/generator``), gathered to process 0 at every checkpoint (the chains are small
  next to the weights); the metadata record ``world_size`` says how many. One file, not one per
  process, so that a kill can never leave processes' files from different updates. A
  one-process file is unchanged. A distributed run resumes over the same number of processes, bit-identically on
  the CPU (other counts are refused: the chains and random streams belong to their process).
  Every process reads the state file itself, so the run folder must be visible to all of them
  (one machine, or a shared file system).
- *Stopping.* Ctrl-C and SIGTERM are deferred by every process as before; whether any process
  has been asked to stop travels in the gradient buffer of the next update (three numbers), so
  all processes stop at the same batch boundary, at most one update after the signal (the
  same holds for ``state.interrupted`` set by a callback). torchrun passes a terminal's Ctrl-C
  on to processes that the terminal has already given it, so a second SIGINT within a second
  of the first counts as the same one; later, it interrupts at once, as in one process.
- *Failures.* Every collective runs under the group's timeout (default
  :data:`DEFAULT_TIMEOUT`). A process that dies makes the others' next collective fail at once
  (gloo sees the connection close) or after the timeout (a process that hangs); they raise
  :class:`ProcessGroupError`, one line saying where training stood. The failure strikes in the
  middle of an update or a checkpoint's gathering, so nothing is written from it: the run
  folder keeps the last complete checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
import os
from typing import Dict, List, Mapping, Optional

import torch

from . import _validation as check

__all__ = ["Group", "init", "launched", "rank_zero", "ProcessGroupError", "PeerSetupError",
           "DEFAULT_TIMEOUT", "shard_sizes"]

#: seconds a collective waits for the other processes before the run is given up
DEFAULT_TIMEOUT = 120.0
# the three numbers the gradient buffer carries: processes asked to stop, by SIGINT, by SIGTERM
_FLAGS = 3


class ProcessGroupError(RuntimeError):
    """A collective failed: another process died, or did not answer within the timeout."""


class PeerSetupError(ProcessGroupError):
    """Another process could not set up or start the run (its own message says why)."""


def launched() -> bool:
    """True in a process that ``torchrun`` started as one of several (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def shard_sizes(n: int, world_size: int) -> List[int]:
    """Rows of each process's shard of a batch of ``n`` rows: equal, the first ``n %
    world_size`` one longer."""
    base, extra = divmod(n, world_size)
    return [base + (r < extra) for r in range(world_size)]


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"distributed: expected the environment variable {name} that torchrun "
                         f"sets (an integer), got {value!r}") from None
    if out < 0:
        raise ValueError(f"distributed: expected {name} >= 0, got {out}")
    return out


def init(timeout: float = DEFAULT_TIMEOUT, backend: Optional[str] = None) -> "Group":
    """Join the processes ``torchrun`` started (its environment: ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), or use the default process group
    already initialised.

    Parameters
    ----------
    timeout : float
        Seconds a collective waits for the others before it fails (see the module docstring).
    backend : str, optional
        Default: ``"cpu:gloo,cuda:nccl"`` where CUDA and nccl are available (CPU tensors go
        through gloo, CUDA tensors through nccl; each process then uses the GPU of its
        ``LOCAL_RANK``), else ``"gloo"``. It must include gloo: the checks, agreements and
        the gathering of the chains are CPU tensors.

    Returns
    -------
    Group
    """
    import torch.distributed as dist

    timeout = check.real(timeout, "timeout", 0.0, strict_minimum=True)
    if not dist.is_available():
        raise ValueError("distributed: this PyTorch was built without torch.distributed")
    local = _env_int("LOCAL_RANK") if os.environ.get("LOCAL_RANK") else None
    if dist.is_initialized():
        backend = str(dist.get_backend())
    if backend is not None and "gloo" not in backend:
        raise ValueError(f"backend: expected one that includes gloo (the CPU collectives), "
                         f"such as 'gloo' or 'cpu:gloo,cuda:nccl', got {backend!r}")
    if dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), timeout, owner=False,
                     local_rank=local)
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name):
            raise ValueError(f"distributed: {name} is not set (start the processes with "
                             f"torchrun --nproc-per-node N ...)")
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if world < 1 or rank >= world:
        raise ValueError(f"distributed: expected 0 <= RANK < WORLD_SIZE, got RANK={rank}, "
                         f"WORLD_SIZE={world}")
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    if backend is None:
        backend = "cpu:gloo,cuda:nccl" if cuda else "gloo"
    local = rank if local is None else local
    if "nccl" in backend:
        torch.cuda.set_device(local % max(torch.cuda.device_count(), 1))
    try:
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout))
    except RuntimeError as err:  # the rendezvous failed (DistNetworkError, a timeout)
        said = " ".join(str(err).split())[:200]
        raise ProcessGroupError(f"distributed: process {rank} of {world} could not join the "
                                f"others at {os.environ['MASTER_ADDR']}:"
                                f"{os.environ['MASTER_PORT']} ({said})") from None
    return Group(rank, world, timeout, owner=True, local_rank=local)


def _digest(*parts) -> List[float]:
    """Two 26-bit integers from the SHA-256 of ``parts``, as floats (exact in the float64
    vector the processes compare)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
    d = h.digest()
    return [float(int.from_bytes(d[:4], "little") >> 6),
            float(int.from_bytes(d[4:8], "little") >> 6)]


class Group:
    """The processes of one data-parallel run, from the point of view of one of them (made by
    :func:`init`; see the module docstring for what it does).

    Attributes
    ----------
    rank : int
        This process's number, 0 .. ``world_size - 1`` (process 0 writes the run folder).
    local_rank : int
        Its number on its machine (``LOCAL_RANK``; the GPU it uses).
    world_size : int
        Processes in the run.
    timeout : float
        Seconds a collective waits.
    bytes_reduced : int
        Bytes of statistics this process has all-reduced so far: the gradient buffers of
        :meth:`reduce`, centering's batch means, PT's swap counts (the payload, not what the
        wire carries; the checks at the start and the stop agreed on per epoch are left out).
    reductions : int
        Calls of :meth:`reduce` (updates) so far.
    agreed : bool
        Whether :meth:`agree` has run (the command line agrees once before training).
    failed : bool
        Set once a collective has failed, a process could not start, or training ended by an
        exception (nothing collective is tried afterwards).
    interrupted : bool
        Whether the processes agreed to stop at this batch boundary (Ctrl-C or SIGTERM on any
        of them); ``signal`` names the signal (``"SIGTERM"`` when any process got one).
    """

    def __init__(self, rank: int, world_size: int, timeout: float = DEFAULT_TIMEOUT,
                 owner: bool = False, local_rank: Optional[int] = None):
        self.rank, self.world_size, self.timeout = int(rank), int(world_size), float(timeout)
        self.local_rank = self.rank if local_rank is None else int(local_rank)
        self.owner = owner
        self.bytes_reduced = self.reductions = 0
        self.failed = False
        self.interrupted, self.signal = False, None
        self.agreed = False
        self._weight = 1.0
        self._state = None  # the TrainState of the run in progress (its local stop request)

    def __repr__(self):
        return f"Group(rank={self.rank}, world_size={self.world_size})"

    @property
    def leader(self) -> bool:
        """True on process 0, the one that writes."""
        return self.rank == 0

    def close(self) -> None:
        """Leave the process group (when :func:`init` created it)."""
        import torch.distributed as dist

        if self.owner and dist.is_initialized():
            dist.destroy_process_group()
        self.owner = False

    # -- collectives: every process calls them in the same order ------------------------------
    def _where(self) -> str:
        s = self._state
        if s is None:
            return "before training started"
        return (f"in epoch {s.epoch + 1}" + (f", after batch {s.batch}" if s.batch else "")
                + f" (update {s.step + 1})")

    def _run(self, what: str, fn):
        if self.failed:
            raise ProcessGroupError(f"distributed: process {self.rank} of {self.world_size}: "
                                    f"the process group has already failed")
        try:
            return fn()
        except RuntimeError as err:  # gloo/nccl errors (DistBackendError is one)
            self.failed = True
            said = " ".join(str(err).split())
            said = said.split("] ", 1)[-1].split(". ")[0][:160]  # gloo's first sentence
            raise ProcessGroupError(
                f"distributed: process {self.rank} of {self.world_size}: {what} failed "
                f"{self._where()}: another process died or did not answer within "
                f"{self.timeout:g} s ({said})") from None

    def all_reduce(self, tensor: torch.Tensor, what: str = "a reduction") -> torch.Tensor:
        """Sum ``tensor`` (any shape) over the processes, in place; returns it."""
        import torch.distributed as dist

        self._run(what, lambda: dist.all_reduce(tensor))
        return tensor

    def any(self, flag: bool, what: str = "agreeing on stopping") -> bool:
        """Whether ``flag`` is true on any process."""
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64)
        return bool(self.all_reduce(t, what)[0] > 0)

    def broadcast_(self, tensors, what: str = "the broadcast of the parameters") -> None:
        """Overwrite ``tensors`` (a sequence) with process 0's values."""
        import torch.distributed as dist

        for t in tensors:
            buf = t.detach().contiguous()
            self._run(what, lambda: dist.broadcast(buf, 0))
            if buf.data_ptr() != t.data_ptr():
                t.copy_(buf)

    def all_gather_bytes(self, blob: bytes, what: str = "gathering the chains") -> List[bytes]:
        """Every process's ``blob``, in rank order (CPU tensors: gloo)."""
        import torch.distributed as dist

        n = torch.tensor([len(blob)], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        self._run(what, lambda: dist.all_gather(sizes, n))
        top = max(int(s) for s in sizes)
        buf = torch.zeros(top, dtype=torch.uint8)
        if blob:
            buf[:len(blob)] = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        out = [torch.empty(top, dtype=torch.uint8) for _ in range(self.world_size)]
        self._run(what, lambda: dist.all_gather(out, buf))
        return [bytes(o[:int(s)].numpy().tobytes()) for o, s in zip(out, sizes)]

    def agree(self, failed: bool = False) -> int:
        """Tell every process whether this one could set the run up (call it once, at the same
        point everywhere). Returns the lowest rank that failed (``world_size``: none); on a
        process that did not fail, another's failure raises :class:`PeerSetupError`."""
        slots = torch.zeros(self.world_size, dtype=torch.float64)
        slots[self.rank] = 1.0 if failed else 0.0
        self.all_reduce(slots, "agreeing that every process could start")
        self.agreed = True
        bad = [r for r in range(self.world_size) if slots[r] > 0]
        first = bad[0] if bad else self.world_size
        self.failed = bool(bad)  # nothing collective is tried after a process gave up
        if bad and not failed:
            raise PeerSetupError(f"distributed: process {first} of {self.world_size} could "
                                 f"not start the run (its message says why)")
        return first

    @contextlib.contextmanager
    def agreement(self):
        """Run a block that may fail on some processes (callbacks' ``on_fit_start``); then
        every process learns whether all succeeded (:meth:`agree`)."""
        try:
            yield
        except BaseException:
            if not self.failed:
                with contextlib.suppress(ProcessGroupError):
                    self.agree(failed=True)
            raise
        self.agree()

    # -- what fit calls -----------------------------------------------------------------------
    def check_batch_size(self, batch_size: int) -> None:
        """One ValueError line unless every process gets rows of every full batch."""
        if batch_size < self.world_size:
            raise ValueError(f"batch_size: a run over {self.world_size} processes needs at "
                             f"least one row per process in every batch, expected "
                             f"batch_size >= {self.world_size}, got {batch_size}")

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's rows of a global ``batch`` ``(n, n_visible)``: ``(n_r, n_visible)``
        (one row, weighted 0, when the batch has fewer rows than processes); remembers the
        weight ``n_r / n`` that :meth:`reduce` applies."""
        n = batch.shape[0]
        sizes = shard_sizes(n, self.world_size)
        start = sum(sizes[:self.rank])
        mine = sizes[self.rank]
        if mine == 0:
            self._weight = 0.0
            return batch[:1]
        self._weight = mine / n
        return batch[start:start + mine]

    def reduce(self, grads: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The gradient of the whole batch: ``sum_r (n_r / n) * grads_r`` over the processes,
        with one ``all_reduce`` per dtype (the seam :func:`~boltzkit.training.fit` calls).
        The first buffer also carries this process's stop request, so that all of them agree
        on :attr:`interrupted`.

        Parameters
        ----------
        grads : mapping of name -> tensor
            This process's gradient on its shard (never modified).

        Returns
        -------
        dict of name -> tensor, the same shapes
        """
        names = sorted(grads)
        by_dtype: Dict[torch.dtype, list] = {}
        for k in names:
            by_dtype.setdefault(grads[k].dtype, []).append(k)
        s = self._state
        asked = bool(s is not None and s.interrupted)
        sig = getattr(s, "signal", None)
        flags = [1.0 if asked else 0.0, 1.0 if asked and sig == "SIGINT" else 0.0,
                 1.0 if asked and sig == "SIGTERM" else 0.0]
        out, first = {}, True
        for dtype, keys in by_dtype.items():
            sizes = [grads[k].numel() for k in keys]
            extra = _FLAGS if first else 0
            device = grads[keys[0]].device
            buf = torch.empty(sum(sizes) + extra, dtype=dtype, device=device)
            at = 0
            for k, m in zip(keys, sizes):
                torch.mul(grads[k].reshape(-1), self._weight, out=buf[at:at + m])
                at += m
            if first:
                buf[at:] = torch.tensor(flags, dtype=dtype)
            self.all_reduce(buf, "the reduction of the gradient")
            self.bytes_reduced += buf.numel() * buf.element_size()
            at = 0
            for k, m in zip(keys, sizes):
                out[k] = buf[at:at + m].view(grads[k].shape)
                at += m
            if first:
                stop, by_int, by_term = (float(x) for x in buf[at:].tolist())
                if stop > 0 and not self.interrupted:
                    self.interrupted = True
                    self.signal = "SIGTERM" if by_term > 0 else "SIGINT" if by_int > 0 \
                        else None
            first = False
        self.reductions += 1
        return out

    def local_estimator(self, estimator, rows: torch.Tensor) -> "_Local":
        """What this process runs in place of ``estimator``: a copy holding this process's
        share of the persistent chains (ValueError when there are fewer chains than
        processes), with the collectives that centering and tempering need. ``rows``
        ``(m, n_visible)``: the data the chains start from (their default number is
        ``min(100, m)``, as in one process)."""
        return _Local(_share(estimator, rows, self.rank, self.world_size), self)

    def sampling_generator(self, generator: torch.Generator) -> torch.Generator:
        """A generator for this process's sampling, on ``generator``'s device, seeded from its
        state and the rank (``generator`` is not drawn from)."""
        import numpy as np

        words = np.frombuffer(hashlib.sha256(bytes(generator.get_state().numpy())).digest(),
                              dtype=np.uint32)
        seq = np.random.SeedSequence([*words.tolist(), self.rank, 0xB017])
        hi, lo = seq.generate_state(2, np.uint32)
        g = torch.Generator(device=generator.device)
        g.manual_seed(((int(hi) << 32) | int(lo)) >> 1)
        return g

    def start(self, state, callbacks, resumed: bool) -> None:
        """Where fit begins (after the state is made or loaded, before any callback): checks
        that every process was given the same data, settings, generator, position and
        callbacks (one ValueError line, the same everywhere), and copies process 0's
        parameters and update buffers to all (a fresh run)."""
        state.distributed, self._state = self, state
        self.interrupted, self.signal = False, None
        config = dict(state.config)
        data = config.pop("data", None)
        checks = [("data", _digest(json.dumps(data, default=str))),
                  ("settings", _digest(json.dumps(config, sort_keys=True, default=str))),
                  ("generator states", _digest(bytes(state.generator.get_state().numpy()))),
                  ("positions in the run", [float(state.epoch), float(state.batch),
                                            float(state.step), float(state.epochs)]),
                  ("callbacks", _digest(*[type(cb).__name__ for cb in callbacks])),
                  ("models", _digest(*[f"{k}{tuple(p.shape)}{p.dtype}" for k, p in
                                       state.model.named_parameters()]))]
        flat = [x for _, values in checks for x in values]
        v = torch.tensor(flat + [-x for x in flat], dtype=torch.float64)
        import torch.distributed as dist

        self._run("checking that the processes agree",
                  lambda: dist.all_reduce(v, op=dist.ReduceOp.MAX))
        top, low = v[:len(flat)], -v[len(flat):]
        at = 0
        for name, values in checks:
            m = len(values)
            if not torch.equal(top[at:at + m], low[at:at + m]):
                hint = {"generator states": " (seed the generator alike in every process)",
                        "callbacks": " (give the same callbacks everywhere; wrap writers in "
                                     "boltzkit.distributed.rank_zero)"}.get(name, "")
                raise ValueError(f"distributed: the {self.world_size} processes were given "
                                 f"different {name}{hint}")
            at += m
        if not resumed:
            params = [p for _, p in state.model.named_parameters()]
            buffers = [state.update_state[k] for k in sorted(state.update_state)]
            self.broadcast_(params + buffers)

    def resume(self, state, estimator) -> None:
        """Take this process's chains and sampling generator out of a loaded state (ValueError
        when it was saved by another number of processes)."""
        if state.shards is not None:
            shard = state.shards[self.rank]
            state.estimator_state = shard["estimator_state"]
            state.sampling_generator = shard["generator"]
            state.shards = None
        elif state.sampling_generator is None:
            raise ValueError("resume: this state has no sampling generator of this process "
                             "(it was not made by a distributed run)")

    def gather_shards(self, state) -> Optional[list]:
        """Every process's chains and sampling generator, on process 0 (``None`` elsewhere):
        a list, in rank order, of ``{"estimator/<field>": tensor, "generator": state bytes}``
        (what :meth:`TrainState.save <boltzkit.training.TrainState.save>` takes as
        ``shards``). Every process must call it."""
        from safetensors.torch import load, save

        est = state.estimator_state
        tensors = {} if est is None else {f"estimator/{k}": getattr(est, k)
                                          for k in est._fields}
        tensors["generator"] = state.sampling_generator.get_state()
        blob = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
        blobs = self.all_gather_bytes(blob)
        return [load(b) for b in blobs] if self.leader else None


# -- the estimator as one process runs it ------------------------------------------------------
def _share(estimator, rows, rank: int, world: int):
    """A copy of ``estimator`` with this process's share of its persistent chains (the
    estimator itself when it keeps none)."""
    from .training.estimators import Centered

    if isinstance(estimator, Centered):
        inner = _share(estimator.estimator, rows, rank, world)
        if inner is estimator.estimator:
            return estimator
        out = copy.copy(estimator)
        out.estimator = inner
        return out
    if not hasattr(estimator, "n_chains"):
        return estimator
    n = estimator.n_chains
    if n is None:
        if getattr(estimator, "state_type", None) is None or \
                not getattr(estimator, "persistent", True):
            return estimator  # fresh chains from each shard: nothing to split
        n = min(100, rows.shape[0])
    if n < world:
        raise ValueError(f"n_chains: a run over {world} processes needs at least one chain "
                         f"per process, expected n_chains >= {world}, got {n}")
    out = copy.copy(estimator)
    out.n_chains = shard_sizes(n, world)[rank]
    return out


class _Local:
    """``estimator`` with this process's share of chains; ``__call__`` returns this process's
    gradient (before :meth:`Group.reduce`), having made the collectives that centering and
    tempering need."""

    def __init__(self, estimator, group: Group):
        self.estimator, self.group = estimator, group

    @property
    def state_type(self):
        return getattr(self.estimator, "state_type", None)

    def init_state(self, model, data, generator=None):
        return self.estimator.init_state(model, data, generator)

    def __call__(self, model, v, state=None, generator=None):
        from .training.estimators import PT, Centered, statistics_gradient

        est = self.estimator
        if isinstance(est, Centered):
            return self._centered(est, model, v, state, generator)
        if isinstance(est, PT) and est.adapt_every is not None:
            stats, state = self._tempering(est, model, v, state, generator)
            return statistics_gradient(*stats, model=model), state
        return est(model, v, state, generator)

    def _statistics(self, est, model, v, state, generator):
        from .training.estimators import PT

        if isinstance(est, PT) and est.adapt_every is not None:
            return self._tempering(est, model, v, state, generator)
        return est.statistics(model, v, state, generator)

    def _tempering(self, pt, model, v, state, generator):
        """PT's statistics, the swap counters summed over the processes before the ladder is
        re-spaced (so that every process keeps the same ladder)."""
        from .samplers import tempering
        from .training.estimators import Statistics

        if state is None:
            state = pt.init_state(model, v, generator)
        h_pos = model.hidden_mean(v, check=False)
        for _ in range(pt.k):
            state, _ = tempering.step(model, state, generator)
        if int(state.step) % (pt.adapt_every * pt.k) == 0:
            m = state.attempted.numel()
            counts = self.group.all_reduce(torch.cat([state.attempted, state.accepted]),
                                           "the reduction of the swap counts")
            self.group.bytes_reduced += counts.numel() * counts.element_size()
            betas = tempering.adapt_ladder(state.betas, counts[m:] / counts[:m])
            state = tempering.reset_counts(state._replace(betas=betas.to(state.betas)))
        n = state.visible.shape[0] // state.betas.shape[0]
        return Statistics(v, h_pos, state.visible[:n], state.hidden_mean[:n]), state

    def _centered(self, est, model, v, state, generator):
        """Centered's gradient with the offsets moved by the batch means of the whole batch
        (summed over the processes with the shard weights)."""
        from .training.estimators import statistics_gradient
        from .training.estimators.centering import OFFSET_FIELDS, centered_gradient

        kind = est.state_type
        if state is None:
            state = est.init_state(model, v, generator)
        inner_type = getattr(est.estimator, "state_type", None)
        n_inner = len(state) - len(OFFSET_FIELDS)
        inner = inner_type(*state[:n_inner]) if inner_type is not None else None
        stats, inner = self._statistics(est.estimator, model, v, inner, generator)
        means = est._batch_means(model, stats)  # this shard's, by Centered's own rule
        nv = means[0].numel()
        both = torch.cat(means).mul_(self.group._weight)
        both = self.group.all_reduce(both, "the reduction of the centering means")
        self.group.bytes_reduced += both.numel() * both.element_size()
        rate = est.rate
        mu = state.visible_offset.mul(1.0 - rate).add_(both[:nv], alpha=rate)
        lam = state.hidden_offset.mul(1.0 - rate).add_(both[nv:], alpha=rate)
        grads = centered_gradient(statistics_gradient(*stats, model=model), mu, lam)
        return grads, kind(*(tuple(inner) if inner is not None else ()), mu, lam)


# -- callbacks -----------------------------------------------------------------------------
def rank_zero(callback):
    """``callback`` run on process 0 only (and as it is in a one-process run): for callbacks
    that write files or print. Give the wrapped callback to every process."""
    from .training.callbacks import Callback

    class RankZero(Callback):
        def __init__(self, inner):
            self.inner = inner

        def _call(self, hook, state):
            group = getattr(state, "distributed", None)
            if group is None or group.leader:
                getattr(self.inner, hook)(state)

        def on_fit_start(self, state):
            self._call("on_fit_start", state)

        def on_batch_end(self, state):
            self._call("on_batch_end", state)

        def on_epoch_end(self, state):
            self._call("on_epoch_end", state)

        def on_fit_end(self, state):
            self._call("on_fit_end", state)

        def __repr__(self):
            return f"rank_zero({self.inner!r})"

    return RankZero(callback)
