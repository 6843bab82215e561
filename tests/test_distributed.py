"""Data-parallel training over two processes (gloo on the CPU): boltzkit.distributed.

Each test starts its processes itself, as torchrun would (the environment variables RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT on a free port; one thread each), or through
torchrun itself for the command line's reference run, and waits for them with a time limit.

- library: with the exact gradient the parameters equal a one-process run on the same global
  batches to float64 rounding; with CD, PCD, PT and centered PCD the two processes end with
  identical parameters (PT with the same ladder, centering with the same offsets) and the exact
  log-likelihood matches one-process runs within the seed-to-seed spread; processes given
  generators seeded apart, too few chains or rows, are refused with one line;
- command line: process 0 alone writes the run folder; SIGTERM sent to process 1 alone stops
  both at the same batch boundary, and the run resumed over two processes ends with the model
  file of the uninterrupted run, bit for bit; a process that dies ends the other with one line
  within the timeout, the checkpoint on disk is the last finished epoch's and resumes to the
  same model; bad setups give one line from one process.
"""

import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from boltzkit import RBM
from boltzkit.distributed import Group, shard_sizes
from boltzkit.exact import rbm as exact_rbm
from boltzkit.training import CD, PCD, PT, SGD, Centered, ExactGradient, TrainState, fit

from .conftest import gen

SRC = str(Path(__file__).resolve().parents[1] / "src")
pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="this PyTorch has no torch.distributed with gloo")
LIMIT = 90  # seconds a launch may take (a busy machine); each takes a few


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(rank: int, world: int, port: int) -> dict:
    return dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", RANK=str(rank),
                LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port))


def launch(script: str, args, world: int = 2):
    """Run ``python -c script *args`` as ``world`` processes of one group; their completed
    processes (returncode, stdout, stderr), in rank order."""
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                              env=env(r, world, port), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(world)]
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=LIMIT)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return out


# -- the library ---------------------------------------------------------------------------------
def prototype_data(n=120, d=8, seed=1):
    """Rows near a binary pattern or its complement (each unit flipped with probability
    0.05): every unit is on half the time, so all there is to learn is in the weights."""
    g = gen(seed)
    p = (torch.rand(1, d, generator=g) < 0.5).float()
    rows = torch.cat([p, 1 - p])[torch.randint(0, 2, (n,), generator=g)]
    flip = torch.rand(n, d, generator=g) < 0.05
    return torch.where(flip, 1 - rows, rows)


EXACT = dict(epochs=3, batch_size=10, lr=0.2)  # 45 rows: the last batch of 5 splits 3 + 2
SAMPLED = dict(epochs=5, batch_size=20, lr=0.1)  # 120 rows: 6 updates an epoch
SEEDS = 8
ESTIMATORS = {"cd": lambda: CD(1), "pcd": lambda: PCD(1, n_chains=20),
              "pt": lambda: PT(1, n_chains=20, replicas=3, adapt_every=5),
              "centered-pcd": lambda: Centered(PCD(1, n_chains=20), rate=0.1)}


def exact_case():
    data = (torch.rand(45, 9, generator=gen(1), dtype=torch.float64) < 0.3).double()
    return RBM(9, 5, generator=gen(0), dtype=torch.float64), data


def train_exact(distributed=None):
    model, data = exact_case()
    fit(model, data, estimator=ExactGradient(), update=SGD(0.5, 1e-3), generator=gen(3),
        distributed=distributed, monitors=[], **EXACT)
    return model


def train_sampled(name, seed, distributed=None, lr=None):
    # (weights started at std 0.3: training climbs steadily from the first update, where
    # tiny weights would wait at the symmetric start for a random number of updates)
    model = RBM(8, 4, generator=gen(0), init_std=0.3)
    state = fit(model, prototype_data(), estimator=ESTIMATORS[name](), update=SGD(0.5),
                generator=gen(100 + seed), distributed=distributed, monitors=[],
                **dict(SAMPLED, lr=SAMPLED["lr"] if lr is None else lr))
    return model, state


LIBRARY = textwrap.dedent("""
    import sys
    import torch
    from safetensors.torch import save_file
    from boltzkit import distributed
    from tests import test_distributed as t

    group = distributed.init(timeout=30)
    out = {}
    model = t.train_exact(group)
    out.update({f"exact/{k}": v for k, v in model.state_dict().items()})
    out["exact/bytes"] = torch.tensor([group.bytes_reduced, group.reductions])
    for name in t.ESTIMATORS:
        for seed in range(t.SEEDS):
            model, state = t.train_sampled(name, seed, group)
            out.update({f"{name}/{seed}/{k}": v for k, v in model.state_dict().items()})
            if name == "pt":  # the ladder, adapted from the swap counts of both
                out[f"pt/{seed}/betas"] = state.estimator_state.betas
            if name == "centered-pcd":  # the offsets, moved by the whole batches' means
                out[f"{name}/{seed}/mu"] = state.estimator_state.visible_offset
                out[f"{name}/{seed}/lam"] = state.estimator_state.hidden_offset
    save_file({k: v.contiguous() for k, v in out.items()}, f"{sys.argv[1]}/rank{group.rank}.st")
    model, data = t.exact_case()
    try:  # generators seeded apart: refused before the first update, in both processes
        t.fit(model, data, estimator=t.ExactGradient(), generator=t.gen(group.rank),
              distributed=group)
    except ValueError as err:
        open(f"{sys.argv[1]}/rank{group.rank}.txt", "w").write(str(err))
    group.close()
""")


@pytest.fixture(scope="module")
def library_runs(tmp_path_factory):
    """Every library case trained over two processes: each process's tensors."""
    folder = tmp_path_factory.mktemp("library")
    script = f"import sys; sys.path.insert(0, {str(Path(SRC).parent)!r})\n" + LIBRARY
    done = launch(script, [folder])
    for p in done:
        assert p.returncode == 0, p.stderr[-3000:]
    for r in range(2):
        assert (folder / f"rank{r}.txt").read_text() == (
            "distributed: the 2 processes were given different generator states (seed the "
            "generator alike in every process)")
    return [load_file(folder / f"rank{r}.st") for r in range(2)]


def test_exact_gradient_equals_one_process_to_rounding(library_runs):
    ranks = library_runs
    one = train_exact()
    start, _ = exact_case()
    for name, p in one.named_parameters():
        a, b = ranks[0][f"exact/{name}"], ranks[1][f"exact/{name}"]
        assert torch.equal(a, b), name  # every update applied the same sum everywhere
        # The two runs see the same batches in the same order and the exact gradient draws
        # nothing; they differ only in how the data statistics are summed: two shards' means
        # weighted by n_r / n and added, against one mean over the batch. In float64 that is
        # a relative difference of a few 1e-16 per update, carried through 15 updates of step
        # 0.2 with momentum 0.5 (a gain of at most 1 / (1 - 0.5) = 2): the sum stays below
        # 1e-14, and atol 1e-12 leaves a margin of 100. A plain average of the shards (weights
        # 1/2, 1/2) would be wrong on the last batch of each epoch (3 + 2 rows) by
        # 0.1 |g_0 - g_1| ~ 1e-2, and a process training on the wrong rows by as much.
        assert torch.allclose(a, p.detach(), rtol=0, atol=1e-12), name
        assert (p - getattr(start, name)).abs().max() > 1e-2  # training moved it
    # one all-reduce per update (15) of the 9 x 5 + 9 + 5 parameters' gradient and 3 stop
    # flags, float64
    assert ranks[0]["exact/bytes"].tolist() == [15 * (45 + 14 + 3) * 8, 15]


def mean_loglik(model, data) -> float:
    log_z = exact_rbm.log_partition(model)
    return float(-exact_rbm.free_energy(model, data).mean()) - log_z


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_sampled_estimators_keep_ranks_identical_and_match_one_process(name, library_runs):
    ranks = library_runs
    data = prototype_data()
    dist_ll, one_ll, slow_ll = [], [], []
    for seed in range(SEEDS):
        keys = [k for k in ranks[0] if k.startswith(f"{name}/{seed}/")]
        assert keys
        for k in keys:  # the same parameters (PT's ladder, the centering offsets), bit for bit
            assert torch.equal(ranks[0][k], ranks[1][k]), k
        model = RBM(8, 4)
        model.load_state_dict({k.split("/")[-1]: ranks[0][k] for k in keys
                               if k.split("/")[-1] in ("weight", "visible_bias", "hidden_bias")})
        dist_ll.append(mean_loglik(model, data))
        one_ll.append(mean_loglik(train_sampled(name, seed)[0], data))
        slow_ll.append(mean_loglik(train_sampled(name, seed, lr=SAMPLED["lr"] / 2)[0], data))
    if name == "pt":
        betas = ranks[0]["pt/0/betas"]
        assert not torch.equal(betas, torch.tensor([1.0, 0.5, 0.0]))  # the ladder adapted
    # Both runs draw from the same distribution of trajectories (the same batches; the global
    # number of chains split 10 + 10; only the random numbers differ), so their final mean
    # log-likelihoods over SEEDS seeds differ by a two-sample z statistic: the difference of
    # the means over its standard error sqrt(s1^2/n + s2^2/n), with the seed-to-seed spreads
    # measured here. |z| < 4.5 fails a correct implementation with probability < 1e-5 (t with
    # 14 degrees of freedom: about 5e-4, still rare).
    d, o = np.array(dist_ll), np.array(one_ll)
    se = math.sqrt(d.var(ddof=1) / SEEDS + o.var(ddof=1) / SEEDS) + 1e-6
    assert abs(d.mean() - o.mean()) < 4.5 * se, (d, o)
    # power: a sum that came out half as large (a reduce averaging twice, say) trains like
    # half the learning rate, and that the same comparison tells apart: after 30 updates the
    # log-likelihood is still climbing, and half the rate ends about 0.2 nats lower, 30 to 60
    # standard errors when this test was written
    s = np.array(slow_ll)
    se_slow = math.sqrt(s.var(ddof=1) / SEEDS + o.var(ddof=1) / SEEDS) + 1e-6
    assert abs(s.mean() - o.mean()) > 4.5 * se_slow, (s, o)


def test_shards_and_bad_setups_give_one_clear_line():
    assert shard_sizes(5, 2) == [3, 2] and shard_sizes(1, 3) == [1, 0, 0]
    g = Group(rank=1, world_size=2)  # no collective runs before these checks
    batch = torch.arange(10.0).view(5, 2)
    assert torch.equal(g.shard(batch), batch[3:]) and g._weight == 2 / 5
    last = Group(2, 3)  # a batch of one row: processes 1 and 2 get it with weight 0
    assert torch.equal(last.shard(batch[:1]), batch[:1]) and last._weight == 0.0
    data = prototype_data()
    model = RBM(8, 4, generator=gen(0))
    with pytest.raises(ValueError, match=r"^batch_size: a run over 2 processes needs at least "
                                         r"one row per process"):
        fit(model, data, batch_size=1, distributed=g)
    with pytest.raises(ValueError, match=r"^n_chains: a run over 2 processes needs at least "
                                         r"one chain per process, expected n_chains >= 2, got 1"):
        fit(model, data, estimator=PCD(1, n_chains=1), distributed=g)
    with pytest.raises(ValueError, match=r"^reduce: a distributed run sums"):
        fit(model, data, reduce=lambda x: x, distributed=g)
    with pytest.raises(ValueError, match=r"^distributed: expected a boltzkit.distributed.Group"):
        fit(model, data, distributed="gloo")


# -- the command line ----------------------------------------------------------------------------
CLI = textwrap.dedent("""
    import os, signal, sys
    import pathlib
    import boltzkit.io, boltzkit.plots
    from boltzkit import training
    from boltzkit.cli import main

    rank = int(os.environ["RANK"])
    mode, who, when = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if rank != 0:  # only process 0 may write
        def refuse(*args, **kwargs):
            raise AssertionError(f"process {rank} wrote {args[:1]}")
        boltzkit.io.atomic_write = boltzkit.plots.atomic_write = refuse
        pathlib.Path.mkdir = pathlib.Path.unlink = pathlib.Path.write_text = refuse
        boltzkit.io.FolderLock.__enter__ = refuse
    if rank == who:
        def on_batch_end(self, state):
            if state.step == when:
                if mode == "term":  # SIGTERM to this process only
                    os.kill(os.getpid(), signal.SIGTERM)
                elif mode == "die":
                    os._exit(3)
        training.Callback.on_batch_end = on_batch_end
    sys.exit(main(sys.argv[4:]))
""")


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "binary.npy"
    np.save(path, prototype_data(120, 10, 7).numpy())
    return path


def cli_args(data, out, *extra):
    # 120 rows by 20: 6 updates an epoch; centered PCD (the rbm default) with 8 chains, 4 each
    return ["train", "--data", str(data), "--hidden", "5", "--epochs", "3", "--batch-size",
            "20", "--chains", "8", "--out", str(out), "--no-progress", "--sample-steps", "5",
            "--dist-timeout", "20", *extra]


@pytest.fixture(scope="module")
def cli_reference(cli_data, tmp_path_factory):
    """The uninterrupted run over two processes, started by torchrun itself."""
    run = tmp_path_factory.mktemp("reference") / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", str(free_port()), "-m", "boltzkit"]
    done = subprocess.run(torchrun + cli_args(cli_data, run), capture_output=True, text=True,
                          timeout=LIMIT, env=dict(os.environ, PYTHONPATH=SRC,
                                                  OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: 3 epochs") == 1  # process 0 prints, process 1 does not
    return load_file(run / "model.safetensors")


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_writes_from_rank_zero_stops_together_and_resumes_bit_identically(
        cli_data, cli_reference, tmp_path):
    run = tmp_path / "run"
    # SIGTERM to process 1 alone after update 9 (epoch 2, batch 3): the flag reaches process 0
    # with the gradient of update 10, and both stop after it
    done = launch(CLI, ["term", 1, 9, *cli_args(cli_data, run)])
    assert [p.returncode for p in done] == [143, 143], [p.stderr[-2000:] for p in done]
    assert "stopped after epoch 1 and 4 batches" in done[0].stderr
    assert "torchrun --nproc-per-node 2 -m boltzkit train --resume" in done[0].stderr
    assert done[1].stdout == "" and done[1].stderr == ""  # process 1 wrote and said nothing
    assert sorted(p.name for p in run.iterdir()) == [
        "curves.png", "metrics.json", "model.safetensors", "run.json", "train_state.safetensors"]
    meta = TrainState.read_metadata(run / "train_state.safetensors")
    assert (meta["progress"]["epoch"], meta["progress"]["batch"]) == (1, 4)
    assert meta["world_size"] == 2
    # one process cannot continue it
    model = RBM(10, 5)
    with pytest.raises(ValueError, match="resume: the run was trained over 2 processes, this "
                                         "call runs over 1"):
        fit(model, prototype_data(120, 10, 7), resume=run)
    resumed = launch(CLI, ["none", 0, 0, "train", "--resume", str(run), "--no-progress",
                           "--dist-timeout", "20"])
    assert [p.returncode for p in resumed] == [0, 0], [p.stderr[-2000:] for p in resumed]
    assert "resuming" in resumed[0].stdout and resumed[1].stdout == ""
    assert_same(load_file(run / "model.safetensors"), cli_reference)


def test_a_process_that_dies_ends_the_other_with_one_line_and_the_checkpoint_intact(
        cli_data, cli_reference, tmp_path):
    run = tmp_path / "run"
    # process 1 dies after update 14 (epoch 3, batch 2); epoch 2 was checkpointed
    done = launch(CLI, ["die", 1, 14, *cli_args(cli_data, run)])
    assert done[1].returncode == 3
    assert done[0].returncode == 1, done[0].stderr[-2000:]
    lines = [line for line in done[0].stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("boltzkit: error: distributed: process 0 "
                                                   "of 2: the reduction of ")
    assert ("failed in epoch 3, after batch 2 (update 15): another process died or did not "
            "answer within 20 s") in lines[0]
    assert f"{run} keeps its last checkpoint (epoch 2)" in lines[0]
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]
    meta = TrainState.read_metadata(run / "train_state.safetensors")
    assert (meta["progress"]["epoch"], meta["progress"]["batch"]) == (2, 0)
    # the checkpoint is whole: resumed over two processes it ends where the reference did
    resumed = launch(CLI, ["none", 0, 0, "train", "--resume", str(run), "--no-progress"])
    assert [p.returncode for p in resumed] == [0, 0], [p.stderr[-2000:] for p in resumed]
    assert_same(load_file(run / "model.safetensors"), cli_reference)


@pytest.mark.parametrize("case", ["chains", "folder"])
def test_cli_bad_setup_is_one_line_from_one_process(case, cli_data, tmp_path):
    run = tmp_path / "run"
    if case == "chains":  # refused by every process alike: process 0 says it
        extra = ["--chains", "1"]
        message = ("boltzkit: error: --chains: a run over 2 processes needs at least one chain "
                   "per process, expected n_chains >= 2, got 1")
    else:  # refused by process 0 alone (it checks the folder): process 1 stops quietly
        run.mkdir()
        (run / "run.json").write_text("{}")
        extra = []
        message = (f"boltzkit: error: --out: {run} holds a run already; continue it with "
                   f"--resume {run}, or start over with --overwrite")
    done = launch(CLI, ["none", 0, 0, *cli_args(cli_data, run, *extra)])
    assert [p.returncode for p in done] == [2, 2]
    said = [line for p in done for line in (p.stdout + p.stderr).splitlines() if line.strip()]
    assert said == [message]
    # nothing written: no folder made, the one there untouched
    assert not run.exists() if case == "chains" else [p.name for p in run.iterdir()] == ["run.json"]
