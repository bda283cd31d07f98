"""Data-parallel runs on real gloo processes on the CPU (training/distributed.py).

Equivalence: two ranks, each stepping on its part of every batch, must end where one process
ends stepping on whole batches. Both run in float64: in float32 the sums of the two ranks'
gradients differ from one process's in the last bits, and Adam's g / sqrt(v) can blow such a
difference up to a whole step wherever a gradient is close to zero; in float64 the parameters
agree to 1e-9 after several steps. The batches include one not divisible by two ranks (7) and
one smaller than the world (1 sample: one rank takes a stand-in with no weight).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from biobench.archs import DataInfo, build_network
from biobench.data.base import Shard
from biobench.registry import ALGORITHMS
from biobench.store import Store
from biobench.training.distributed import Group, Parallel, batches, leave

BATCHES = (16, 16, 7, 1)  # global batch sizes, in order
STEPS_SEED = 3
SHAPE = (1, 8, 8)

# (algorithm, architecture, hyperparameters): sigma=0 where the rule's noise is per sample,
# since two ranks draw other noise than one process (in distribution the same).
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "bp-fc": ("bp", "fc", {}),
    "bp-conv": ("bp", "conv", {}),
    "bp-lc": ("bp", "lc", {}),
    "fa-fc": ("fa", "fc", {}),
    "fa-lc": ("fa", "lc", {}),
    "dfa-conv": ("dfa", "conv", {}),
    "dtp-alt-fc": ("dtp", "fc", {"sigma": 0.0, "mode": "alternating"}),
    "dtp-par-lc": ("dtp", "lc", {"sigma": 0.0, "mode": "parallel"}),
    "sdtp-par-conv": ("sdtp", "conv", {"sigma": 0.0, "mode": "parallel"}),
    "ao-sdtp-fc": ("ao-sdtp", "fc", {"sigma": 0.0, "mode": "parallel", "aux_units": 16}),
    "kp-fc": ("kp", "fc", {}),
    "drtp-fc": ("drtp", "fc", {}),
    "usf-conv": ("usf", "conv", {}),
    "wm-fc": ("wm", "fc", {}),  # mirror noise: ranks agree, one process differs
    "brsf-fc": ("brsf", "fc", {}),  # magnitudes drawn per rank: ranks agree on the weights
    "pc-lc": ("pc", "lc", {"energy": "ce"}),
    "pc-fixed-conv": ("pc", "conv", {"fixed_prediction": True}),
    "ipc-fc": ("ipc", "fc", {}),  # T optimiser steps a minibatch, each averaged over ranks
}
NOISY = {"wm-fc", "brsf-fc"}


def _learner(case: str) -> Any:
    algorithm, architecture, hp = CASES[case]
    torch.manual_seed(0)
    net = build_network(architecture, DataInfo("digits", SHAPE, 10))
    learner = ALGORITHMS.get(algorithm)
    values = {name: param.default for name, param in learner.hparams.items()} | hp
    return learner(net, values)


def _batches(sizes: tuple[int, ...] = BATCHES) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(STEPS_SEED)
    return [
        (
            torch.rand(n, *SHAPE, generator=generator),
            torch.randint(0, 10, (n,), generator=generator),
        )
        for n in sizes
    ]


def _train(
    case: str, shard: Shard | None, group: Group | None, sizes: tuple[int, ...] = BATCHES
) -> dict[str, torch.Tensor]:
    learner = _learner(case)
    parallel = Parallel(learner, group) if group else None
    if parallel:
        parallel.diverge_rng()
    for phase in learner.epoch_phases(1):
        learner.start_phase(phase)
        for x, y in _batches(sizes):
            if shard is None:
                learner.train_step(x, y)
                continue
            lo, hi = shard.bounds(len(y))
            assert parallel is not None
            with parallel.step(shard.size(len(y)), len(y)):
                learner.train_step(x[lo:hi], y[lo:hi])
    return _flat_state(learner)


def _flat_state(learner: Any) -> dict[str, torch.Tensor]:
    state = {f"net.{k}": v.clone() for k, v in learner.net.state_dict().items()}
    for name in ("feedback", "learned"):
        for i, tensor in enumerate(getattr(learner, name, []) or []):
            state[f"{name}.{i}"] = tensor.clone()
    if hasattr(learner, "inverses"):
        state |= {f"inverse.{k}": v.clone() for k, v in learner.inverses.state_dict().items()}
    return state


def _rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    group = Group(rank, world, rank, torch.device("cpu"))
    results = {case: _train(case, group.shard, group) for case in CASES}
    torch.save(results, Path(out) / f"rank{rank}.pt")
    leave()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every case trained by two gloo ranks (one spawn for all), each rank's final state."""
    out = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


@pytest.fixture(scope="module")
def one_process() -> dict[str, Any]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return {case: _train(case, None, None) for case in CASES}
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(set(CASES) - NOISY))
def test_two_ranks_compute_what_one_process_computes(
    case: str, two_ranks: list[dict[str, Any]], one_process: dict[str, Any]
) -> None:
    parallel, single = two_ranks[0][case], one_process[case]
    assert parallel.keys() == single.keys()
    for name in single:
        torch.testing.assert_close(parallel[name], single[name], rtol=1e-9, atol=1e-12, msg=name)
    moved = _flat_state(_learner(case))
    assert any(not torch.equal(moved[k].double(), single[k]) for k in single), "nothing learned"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_ranks_hold_identical_state(case: str, two_ranks: list[dict[str, Any]]) -> None:
    """Whatever a rule draws per rank, the weights and feedback stay the same on every rank
    (WM's learned B included: it is averaged, not left to drift apart)."""
    first, second = two_ranks[0][case], two_ranks[1][case]
    for name in first:
        assert torch.equal(first[name], second[name]), name


def _uneven_rank(rank: int, world: int, port: int, out: str, sizes: tuple[int, ...]) -> None:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    group = Group(rank, world, rank, torch.device("cpu"))
    torch.save(_train("bp-fc", group.shard, group, sizes), Path(out) / f"rank{rank}.pt")
    leave()


@pytest.mark.slow
@pytest.mark.parametrize(("world", "sizes"), [(3, (64, 64)), (2, (16, 7, 1))])
def test_a_batch_that_does_not_split_evenly_weights_each_rank_by_its_share(
    world: int, sizes: tuple[int, ...], tmp_path: Path
) -> None:
    # 64 on 3 ranks is 22 + 21 + 21, 7 on 2 is 4 + 3: weighting each rank 1 / world, not
    # n_r / n, moves the update. A last batch of 1 leaves rank 1 a stand-in sample that must
    # weigh nothing (being sample 0 again, it hides a 1 / world weight by itself).
    mp.spawn(_uneven_rank, args=(world, _free_port(), str(tmp_path), sizes), nprocs=world)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        single = _train("bp-fc", None, None, sizes)
    finally:
        torch.set_default_dtype(previous)
    for rank in range(world):
        parallel = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name in single:
            torch.testing.assert_close(parallel[name], single[name], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("n", "world"), [(16, 2), (7, 2), (1, 2), (10, 3), (2, 3), (128, 8)])
def test_shards_cover_a_batch_once(n: int, world: int) -> None:
    shards = [Shard(rank, world) for rank in range(world)]
    assert sum(s.size(n) for s in shards) == n
    covered = [i for s in shards if s.size(n) for i in range(*s.bounds(n))]
    assert covered == list(range(n))
    assert all(s.bounds(n) == (0, 1) for s in shards if not s.size(n))


# -- whole runs through the CLI -----------------------------------------------------------


def _biobench(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "biobench", *args],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
        timeout=kw.pop("timeout", 180),
        **kw,
    )


class WholeBatches:
    """A plugin's split whose `batches` takes no `shard`: it can only load whole batches."""

    def __init__(self, n: int) -> None:
        self.x, self.y = torch.arange(n, dtype=torch.float32).view(n, 1), torch.arange(n)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, batch_size: int, generator: Any) -> Any:
        for start in range(0, len(self), batch_size):
            yield self.x[start : start + batch_size], self.y[start : start + batch_size]


def test_a_split_that_cannot_shard_is_cut_so_each_rank_trains_on_its_own_part() -> None:
    split = WholeBatches(10)
    parts = [list(batches(split, 4, None, Shard(rank, 2))) for rank in range(2)]
    assert [[y.tolist() for _, y, _, _ in part] for part in parts] == [
        [[0, 1], [4, 5], [8]],
        [[2, 3], [6, 7], [9]],
    ]
    assert [[(own, count) for _, _, own, count in part] for part in parts] == [
        [(2, 4), (2, 4), (1, 2)],
        [(2, 4), (2, 4), (1, 2)],
    ]


@pytest.mark.slow
def test_nproc_run_matches_one_process_run(sqlite_url: str) -> None:
    common = ("run", "--algo", "bp", "--data", "digits", "--epochs", "2", "--batch-size", "25")
    one = _biobench(*common, "--device", "cpu", "--db", sqlite_url)
    assert one.returncode == 0, one.stderr
    two = _biobench(*common, "--device", "cpu", "--db", sqlite_url, "--nproc", "2")
    assert two.returncode == 0, two.stderr
    store = Store(sqlite_url)
    single, parallel = sorted(store.runs(), key=lambda r: r.id)
    assert (single.world_size, parallel.world_size) == (1, 2)
    assert parallel.status.value == "finished"
    rows = {r["run_id"]: r for r in store.epochs() if r["epoch"] == 2}
    a, b = rows[single.id], rows[parallel.id]
    one_image = 100 / 360 + 1e-9  # the digits test set has 360 images
    assert abs(a["test_top1"] - b["test_top1"]) <= one_image
    assert abs(a["train_top1"] - b["train_top1"]) <= 100 / 1437 + 1e-9
    assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)


@pytest.mark.slow
def test_nproc_started_beside_a_biobench_checkout_runs_the_installed_package(
    sqlite_url: str, tmp_path: Path
) -> None:
    # `python -m biobench` in each rank would import ./biobench (a checkout) instead.
    from biobench.launch import biobench_command

    (tmp_path / "biobench").mkdir()
    (tmp_path / "biobench" / "__init__.py").write_text("raise ImportError('the wrong one')\n")
    args = ["run", "--algo", "bp", "--data", "synthetic", "--epochs", "1", "--device", "cpu"]
    result = subprocess.run(
        biobench_command([*args, "--db", sqlite_url, "--nproc", "2"]),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    (run,) = Store(sqlite_url).runs()
    assert (run.world_size, run.status.value) == (2, "finished")


def _counting_rank(rank: int, world: int, port: int, url: str, out: str) -> None:
    """Rank `rank` of a 2-process `execute`, recording the batch size of every step it takes."""
    from biobench.spec import resolve
    from biobench.training import loop
    from biobench.training.runner import execute

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    seen: list[int] = []
    step = loop._Execution.train_step

    def counted(self: Any, x: torch.Tensor, y: torch.Tensor) -> None:
        seen.append(len(y))
        step(self, x, y)

    loop._Execution.train_step = counted  # a spy: the step itself runs as ever
    execute(
        resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1, batch_size=100),
        store=Store(url),
        device=torch.device("cpu"),
        data_dir=Path(out),
        checkpoint_dir=Path(out),
        group=Group(rank, world, rank, torch.device("cpu")),
    )
    (Path(out) / f"seen{rank}").write_text(" ".join(map(str, seen)))
    leave()


@pytest.mark.slow
def test_each_rank_of_a_run_trains_on_its_half_of_every_batch(
    sqlite_url: str, tmp_path: Path
) -> None:
    # Two ranks each stepping on whole batches end exactly where one process does, so the
    # equivalence tests cannot tell a data-parallel run from two copies of one: count.
    Store(sqlite_url)
    mp.spawn(_counting_rank, args=(2, _free_port(), sqlite_url, str(tmp_path)), nprocs=2)
    for rank in range(2):
        assert (tmp_path / f"seen{rank}").read_text() == " ".join(["50"] * 10)
    (run,) = Store(sqlite_url).runs()
    assert (run.world_size, run.status.value, run.epochs_done) == (2, "finished", 1)


def _crashing_rank(rank: int, world: int, port: int, url: str, out: str) -> None:
    """Rank `rank` of a 2-process `execute` whose rank 0 cannot write its checkpoint (a
    folder stands where the file goes). Writes what each rank raised."""
    from biobench.spec import resolve
    from biobench.training import checkpoint
    from biobench.training.loop import Reporter
    from biobench.training.runner import execute

    class Breaker(Reporter):
        def run_started(self, run_id: int, *args: Any) -> None:
            if rank == 0:
                (next(Path(out, "ck").iterdir()) / checkpoint.FILE).mkdir()

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        execute(
            resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=2),
            store=Store(url),
            device=torch.device("cpu"),
            data_dir=Path(out),
            checkpoint_dir=Path(out, "ck"),
            reporter=Breaker(),
            group=Group(rank, world, rank, torch.device("cpu")),
        )
    except Exception as error:
        (Path(out) / f"error{rank}").write_text(f"{type(error).__name__}\n{error}")
    leave()


@pytest.mark.slow
def test_when_rank_0_cannot_write_every_rank_says_rank_0s_error_in_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    Store(sqlite_url)
    mp.spawn(_crashing_rank, args=(2, _free_port(), sqlite_url, str(tmp_path)), nprocs=2)
    kind, said = (tmp_path / "error0").read_text().split("\n", 1)
    peer_kind, peer_said = (tmp_path / "error1").read_text().split("\n", 1)
    assert kind == "BiobenchError" and said.startswith("cannot write "), said
    assert (peer_kind, peer_said) == ("PeerStopped", f"rank 0 stopped: {said}")
    assert "\n" not in said
    (run,) = Store(sqlite_url).runs()
    assert run.status.value == "failed" and said in (run.error or "")


def _request_rank(rank: int, world: int, port: int, url: str, out: str, case: str) -> None:
    """Rank `rank` of a `biobench run` as a launcher starts it (RANK, WORLD_SIZE, MASTER_*);
    case "failed": rank 0 cannot write its checkpoint; "caller's group": the caller made the
    process group first (the Python API). Writes whether the rank is still in a process group
    once the run is over."""
    from biobench.training import checkpoint
    from biobench.training.loop import Reporter
    from biobench.training.runner import Request, run_request

    class Breaker(Reporter):
        def run_started(self, run_id: int, *args: Any) -> None:
            if rank == 0 and case == "failed":
                (next(Path(out, "ck").iterdir()) / checkpoint.FILE).mkdir()

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if case == "caller's group":
        dist.init_process_group("gloo")
    request = Request(
        algorithm="bp",
        architecture="fc",
        dataset="synthetic",
        epochs=2,
        checkpoint_dir=Path(out, "ck"),
    )
    try:
        run_request(
            request, store=Store(url), device="cpu", data_dir=Path(out), reporter=Breaker()
        )
    except Exception as error:
        (Path(out) / f"error{rank}").write_text(type(error).__name__)
    (Path(out) / f"grouped{rank}").write_text(str(dist.is_initialized()))
    leave()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["finished", "failed", "caller's group"])
def test_every_rank_leaves_the_process_group_it_made_however_the_run_ends(
    sqlite_url: str, tmp_path: Path, case: str
) -> None:
    # Left to the interpreter's exit, gloo's threads can abort a rank whose run is over
    # (distributed.leave): each rank must be out of the group it made before it returns, and
    # must leave a group its caller made to the caller.
    Store(sqlite_url)
    mp.spawn(_request_rank, args=(2, _free_port(), sqlite_url, str(tmp_path), case), nprocs=2)
    grouped = [(tmp_path / f"grouped{rank}").read_text() for rank in range(2)]
    assert grouped == [str(case == "caller's group")] * 2
    errors = sorted(path.read_text() for path in tmp_path.glob("error*"))
    assert errors == (["BiobenchError", "PeerStopped"] if case == "failed" else [])
    (run,) = Store(sqlite_url).runs()
    assert run.status.value == ("failed" if case == "failed" else "finished")


def _rank_pids(marker: str, rank: int) -> list[int]:
    """Processes started for this test (their BIOBENCH_HOME) that are rank `rank`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"BIOBENCH_HOME={marker}".encode() in environ and f"RANK={rank}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_and_one_process_resumes_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    env = dict(os.environ, BIOBENCH_DIST_TIMEOUT="20")
    epochs = 4
    store = Store(sqlite_url)  # the schema exists before the run starts: polls read it
    args = ("run", "--algo", "bp", "--data", "digits", "--epochs", str(epochs), "--device")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "biobench", *args, "cpu", "--batch-size", "16", "--db"]
        + [sqlite_url, "--nproc", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            runs = store.runs()
            if runs and runs[0].epochs_done >= 1:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never recorded an epoch")
        pids = _rank_pids(os.environ["BIOBENCH_HOME"], 1)
        assert len(pids) == 1
        started = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        launcher.wait(timeout=60)
        ended = time.monotonic() - started
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    run = Store(sqlite_url).run(runs[0].id)
    assert run.status.value == "failed", (run.status, run.error, launcher.stderr.read())
    assert run.world_size == 2 and 1 <= run.epochs_done < epochs
    assert "PeerLost: a process of this 2-process run stopped" in (run.error or "")
    assert ended < 30, ended
    resumed = _biobench("run", "--resume", str(run.id), "--db", sqlite_url, env=env)
    assert resumed.returncode == 0, resumed.stderr
    run = Store(sqlite_url).run(run.id)
    assert run.status.value == "finished" and run.epochs_done == epochs
    assert run.world_size == 1  # the row says how many processes train it now
    assert sorted(r["epoch"] for r in Store(sqlite_url).epochs([run.id])) == list(
        range(1, epochs + 1)
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--algo", "nope"], "error: unknown algorithm 'nope'"),
        (["--db", "postgresql://u:pw@127.0.0.1:1/x"], "error: cannot reach database"),
    ],
)
def test_bad_input_with_nproc_is_one_line_before_any_process_starts(
    args: list[str], said: str
) -> None:
    from typer.testing import CliRunner

    from biobench.cli import app

    result = CliRunner().invoke(app, ["run", "--nproc", "2", "--epochs", "1", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith(said) and result.stderr.count("\n") == 1, result.stderr
    assert "pw@" not in result.stderr
