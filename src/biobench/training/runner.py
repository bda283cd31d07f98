"""From a resolved spec to a finished run row: the glue between library and results database.

Everything that can fail because of user input (the database URL, the dataset files, the
network for this dataset) is checked before the run row is created, so bad input never leaves a
half-made run behind. Once the row exists, the run ends `finished`, `failed` (with the error),
`interrupted` (Ctrl-C or SIGTERM) or `diverged`, never `running`; a process killed outright
leaves a heartbeat that goes stale, and reads show the run as `lost`. Every epoch ends with a
checkpoint, so `resume()` continues any stopped run exactly where it was.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biobench.archs import DataInfo, Stack, build_network
from biobench.data import DataOptions, Dataset, load_dataset
from biobench.errors import BiobenchError, LeaseLost
from biobench.learners.base import Learner
from biobench.paths import default_checkpoint_dir, default_data_dir
from biobench.registry import ALGORITHMS
from biobench.spec import RunSpec, load_presets, resolve
from biobench.store import RunRecord, RunStatus, Store
from biobench.store.store import heartbeat_interval
from biobench.training import checkpoint, cost, distributed
from biobench.training.alignment import Probe
from biobench.training.environment import DEVICES, environment, resolve_device  # noqa: F401
from biobench.training.loop import Diverged, Reporter, fit
from biobench.training.sink import SPOOL, EpochSink, import_spool


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make `kill PID` end a run like Ctrl-C does: marked interrupted, not left running."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Job:
    """Everything one run trains with, built from its spec."""

    spec: RunSpec
    data: Dataset
    net: Stack
    learner: Learner
    generator: torch.Generator


def prepare(spec: RunSpec, device: torch.device, data_dir: Path, download: bool) -> Job:
    options = DataOptions(root=data_dir, download=download, settings=spec.data_settings)
    data = load_dataset(spec.dataset, options)
    if spec.setting("val_split"):
        data = data.hold_out(spec.setting("val_split"))
    torch.manual_seed(spec.seed)  # initialisation depends on the seed only
    net = build_network(
        spec.architecture, DataInfo(data.name, data.input_shape, data.num_classes)
    ).to(device)
    learner = ALGORITHMS.get(spec.algorithm)(net, spec.hparams)
    generator = torch.Generator().manual_seed(spec.seed)  # data order depends on the seed only
    return Job(spec, data.to(device), net, learner, generator)


def _run_folder(checkpoint_dir: Path | None, spec: RunSpec) -> Path:
    """A new, empty folder for the run's checkpoints, absolute so that a resume from another
    working directory finds it; an unusable --checkpoint-dir is refused before the run row
    exists."""
    base = (checkpoint_dir or default_checkpoint_dir()).expanduser().resolve()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    name = f"{stamp}-{spec.algorithm}-{spec.architecture}-{spec.dataset}-{uuid.uuid4().hex[:8]}"
    folder = base / name
    try:
        folder.mkdir(parents=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise BiobenchError(
            f"cannot keep checkpoints in {base}: {error.strerror or error}; pass "
            "--checkpoint-dir DIR with a writable folder (or set BIOBENCH_CHECKPOINT_DIR)"
        ) from None
    return folder


def execute(
    spec: RunSpec,
    *,
    store: Store,
    device: torch.device,
    data_dir: Path,
    download: bool = False,
    reporter: Reporter | None = None,
    checkpoint_dir: Path | None = None,
    keep_checkpoint: str = "last",
    group: distributed.Group | None = None,
) -> int:
    """Train `spec` and record it in `store`; returns the run id. Everything a user can get
    wrong (data, network, checkpoint folder) is checked before the run row is made. With
    `group`, this process is one rank of a data-parallel run (rank 0 makes the row).

    `keep_checkpoint` (checkpoint.KEEP) is what the run keeps once finished, recorded with it:
    called from Python, the trained network stays loadable unless `none` is asked for;
    `biobench run` (`run_request`) asks for checkpoint.DEFAULT_KEEP."""
    data_dir = data_dir.expanduser().resolve()
    world = group.world if group else 1
    if spec.batch_size < world:
        raise BiobenchError(
            f"--batch-size {spec.batch_size} is smaller than the {world} processes sharing it"
        )
    job = prepare(spec, device, data_dir, download)
    env = environment(device)
    env.update(
        dataset_source=job.data.source,
        data_dir=str(data_dir),  # a resume finds the data where this run found it
        parameters=job.net.num_parameters(),
        train_size=len(job.data.train),
        train_eval_size=len(job.data.train_eval_split),
        test_size=len(job.data.test),
        val_size=len(job.data.val) if job.data.val is not None else 0,
        pid=os.getpid(),
        keep_checkpoint=keep_checkpoint,  # a resume finishes the run as it was asked to
        world_size=world,
    )
    owner = uuid.uuid4().hex  # this process's lease on the run: only it writes the run

    def create() -> tuple[int, Path]:
        x, y = next(iter(job.data.train.batches(spec.batch_size)))
        flops = cost.flops_per_step(job.learner, x, y)  # the first batch: no random draw
        return _create(spec, store, device, env, checkpoint_dir, owner, flops)

    run_id, folder = distributed.leader_first(group, create)
    (reporter or Reporter()).run_started(run_id, job.spec, job.net.num_parameters(), 1, device)
    _train(run_id, owner, job, store, folder, reporter, start=1, keep=keep_checkpoint, group=group)
    return run_id


def _create(
    spec: RunSpec,
    store: Store,
    device: torch.device,
    env: dict[str, Any],
    checkpoint_dir: Path | None,
    owner: str,
    flops: float | None = None,
) -> tuple[int, Path]:
    """The run's checkpoint folder and row (the run id)."""
    note = os.environ.get(RUN_ID_FILE)
    if note:  # a run whose id cannot be noted would be lost to a requeued job
        _check_writable(Path(note))
    folder = _run_folder(checkpoint_dir, spec)
    try:
        run_id = store.create_run(
            **spec.run_fields(),
            device=env["device_name"] if device.type == "cuda" else "cpu",
            host=env["host"],
            git_sha=env["git_sha"],
            torch_version=env["torch"],
            biobench_version=env["biobench"],
            environment=env,
            checkpoint=str(folder),
            owner=owner,
            pid=os.getpid(),
            world_size=env["world_size"],
            flops_per_step=flops,
        )
    except BaseException:
        folder.rmdir()  # still empty: nothing of a run that was never recorded stays behind
        raise
    if note:  # a requeued cluster job resumes it
        Path(note).write_text(str(run_id))
    return run_id, folder


RUN_ID_FILE = "BIOBENCH_RUN_ID_FILE"  # launch/: where a job's `biobench run` notes its run id


def _check_writable(note: Path) -> None:
    """Refuse a run id file that cannot be written, leaving no file behind."""
    existed = note.exists()
    try:
        with note.open("a"):
            pass
        if not existed:
            note.unlink()
    except OSError as error:
        raise BiobenchError(
            f"cannot write the run id to {note} ({RUN_ID_FILE}): "
            f"{error.strerror or error}; point it at a writable file"
        ) from None


def stored_place(run: RunRecord) -> tuple[str | None, Path | None]:
    """The device and the data folder a run was started with (None when not recorded)."""
    data_dir = run.environment.get("data_dir")
    return run.environment.get("device"), Path(data_dir) if data_dir else None


def resume(
    run_id: int,
    *,
    store: Store,
    device: torch.device,
    data_dir: Path,
    download: bool = False,
    reporter: Reporter | None = None,
    group: distributed.Group | None = None,
) -> int:
    """Continue a stopped run from its last complete epoch, into the same run row.

    Only one process may do so: taking the run's lease is one compare-and-set in the
    database, and a resume that does not get it is refused. With `group`, rank 0 does all
    that and the other ranks restore the same checkpoint; any number of processes may
    continue a run, whatever number trained it so far."""
    data_dir = data_dir.expanduser().resolve()
    claimed: list[Job] = []
    fields, folder, start, owner, keep = distributed.leader_first(
        group, lambda: _claim(run_id, store, device, data_dir, download, claimed)
    )
    if claimed:
        job = claimed[0]
    else:  # another rank: the same network, restored from the same checkpoint
        job = prepare(RunSpec(**fields), device, data_dir, download)
        payload = checkpoint.load(folder, device)
        if payload is not None:
            checkpoint.restore(payload, job.learner, job.generator, folder=folder)
    (reporter or Reporter()).run_started(run_id, job.spec, job.net.num_parameters(), start, device)
    _train(run_id, owner, job, store, folder, reporter, start=start, keep=keep, group=group)
    return run_id


def _claim(
    run_id: int,
    store: Store,
    device: torch.device,
    data_dir: Path,
    download: bool,
    claimed: list[Job],
) -> tuple[dict[str, Any], Path, int, str, str]:
    """Check that the run can be resumed, restore its checkpoint into a new job (appended to
    `claimed`) and take its lease: (spec fields, folder, first epoch, lease owner, keep)."""
    run = store.run(run_id)
    if not run.status.resumable:
        why = {
            "running": "is still running (its process is alive and its heartbeat fresh)",
            "finished": "already finished",
            "diverged": "diverged; resuming repeats that",
        }
        resumable = ", ".join(s.value for s in RunStatus if s.resumable)
        raise BiobenchError(
            f"run {run_id} {why.get(run.status.value, run.status.value)}; only {resumable} "
            "runs can be resumed"
        )
    spec = RunSpec(**run.spec)
    if spec.spec_hash() != run.spec_hash:
        raise BiobenchError(f"run {run_id}'s stored spec does not match its hash; not resuming")
    folder = Path(run.checkpoint) if run.checkpoint else None
    if folder is None:
        raise BiobenchError(f"run {run_id} was made before checkpoints existed; start it anew")
    job = prepare(spec, device, data_dir, download)
    spool = folder / SPOOL
    if spool.exists():  # rows the database missed before the process died: deliver them first
        import_spool(store, spool)
        run = store.run(run_id)
        if not run.status.resumable:  # the file held the run's end
            raise BiobenchError(
                f"run {run_id} has {run.status.value} (the rows and status in {spool} were "
                "imported); there is nothing to resume"
            )
    payload = checkpoint.load(folder, device)
    if payload is None and run.epochs_done > 1:  # 1: killed before its first checkpoint
        raise BiobenchError(
            f"run {run_id} has {run.epochs_done} epoch(s) but no checkpoint in {folder}; "
            "it cannot be resumed exactly (was the folder moved or deleted?)"
        )
    start = 1
    if payload is not None:
        checkpoint.check_belongs(payload, folder, run)
        start = checkpoint.restore(payload, job.learner, job.generator, folder=folder) + 1
    owner = uuid.uuid4().hex
    if not store.take_lease(run, owner, os.getpid(), distributed.world_size()):
        taken = store.run(run_id)
        raise BiobenchError(
            f"run {run_id} is being resumed by another process (pid {taken.pid} on "
            f"{taken.host}); not resuming"
        )
    claimed.append(job)
    keep = run.environment.get("keep_checkpoint", checkpoint.DEFAULT_KEEP)
    return run.spec, folder, start, owner, keep


def _probe(job: Job) -> Probe | None:
    """The batch alignment is measured on, when the run measures it (`--set alignment`)."""
    spec = job.spec
    if not spec.setting("alignment"):
        return None
    return Probe.draw(job.data.train, spec.setting("alignment_batch"), spec.seed)


@contextmanager
def _heartbeat(store: Store, run_id: int, owner: str) -> Iterator[None]:
    """Refresh the run's heartbeat from a thread, so a long epoch is not mistaken for a lost
    run. A database hiccup here is harmless (the next beat or epoch row will do); a lost
    lease is found by the next epoch row, which then stops the run."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat_interval()):
            with suppress(BiobenchError):
                store.heartbeat(run_id, owner=owner)

    thread = threading.Thread(target=beat, name=f"biobench-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _train(
    run_id: int,
    owner: str,
    job: Job,
    store: Store,
    folder: Path,
    reporter: Reporter | None,
    *,
    start: int,
    keep: str,
    group: distributed.Group | None = None,
) -> None:
    """Train from epoch `start` on; a finished run keeps its checkpoint as `keep` says."""
    spec = job.spec
    sink = EpochSink(store, run_id, folder / SPOOL, spec.spec_hash(), owner)
    leader = group is None or group.leader  # the one process that writes the run
    parallel = distributed.Parallel(job.learner, group) if group else None
    if parallel:
        parallel.diverge_rng()

    def save(epoch: int) -> None:
        checkpoint.save(
            folder,
            run_id=run_id,
            epoch=epoch,
            spec_hash=spec.spec_hash(),
            learner=job.learner,
            generator=job.generator,
        )

    try:
        beat = _heartbeat(store, run_id, owner) if leader else nullcontext()
        with _sigterm_as_interrupt(), beat:
            fit(
                job.learner,
                job.data,
                epochs=spec.epochs,
                batch_size=spec.batch_size,
                generator=job.generator,
                on_epoch=distributed.agreed(group, sink.write),
                on_checkpoint=distributed.agreed(group, save),
                reporter=reporter,
                start_epoch=start,
                parallel=parallel,
                probe=_probe(job),
                precision=spec.setting("precision"),
                compile=spec.setting("compile"),
            )
    except (LeaseLost, distributed.PeerStopped):
        raise  # another process owns the run now: write nothing more, not even a status
    except Diverged as diverged:
        if leader:
            sink.close(RunStatus.diverged, str(diverged))
        return
    except KeyboardInterrupt:
        if leader:
            sink.close(RunStatus.interrupted, "interrupted by the user (Ctrl-C or SIGTERM)")
        raise
    except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError from 2.5 on
        message = (
            f"out of GPU memory with batch size {spec.batch_size}; lower it, e.g. "
            f"--batch-size {max(1, spec.batch_size // 2)}"
        )
        if leader:
            sink.close(RunStatus.failed, message)
        raise BiobenchError(message) from None
    except BaseException as error:
        if leader:
            with distributed.no_sigterm() if group else nullcontext():
                sink.close(RunStatus.failed, f"{type(error).__name__}: {error}")
        raise
    finally:
        if parallel:
            parallel.close()
    if leader:
        sink.close(RunStatus.finished)  # raises, keeping the checkpoint, if unrecorded
        if keep == "none":
            checkpoint.discard(folder)


# -- what `biobench run` asks for ------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One `biobench run`: a spec by names, a preset, a suite, or a resume, with options."""

    algorithm: str | None = None
    architecture: str | None = None
    dataset: str | None = None
    preset: str | None = None
    suite: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    seeds: tuple[int, ...] | None = None
    overrides: tuple[str, ...] = ()
    checkpoint_dir: Path | None = None
    keep_checkpoint: str | None = None  # checkpoint.KEEP; None: checkpoint.DEFAULT_KEEP
    resume: int | None = None


# Options a resume cannot take: the run continues with its own spec and folder.
_RESUME_FIXED = (
    ("--algo", "algorithm"),
    ("--arch", "architecture"),
    ("--data", "dataset"),
    ("--preset", "preset"),
    ("--suite", "suite"),
    ("--epochs", "epochs"),
    ("--batch-size", "batch_size"),
    ("--seed", "seed"),
    ("--seeds", "seeds"),
    ("--set", "overrides"),
    ("--checkpoint-dir", "checkpoint_dir"),
    ("--keep-checkpoint", "keep_checkpoint"),  # the run's own choice, recorded when it began
)


def plan(request: Request) -> list[RunSpec]:
    """The specs a request runs, in order: each preset of a suite (or the one spec), once per
    seed. Conflicting options are refused here, before anything is written."""
    named = [
        flag
        for flag, value in (
            ("--algo", request.algorithm),
            ("--arch", request.architecture),
            ("--data", request.dataset),
            ("--preset", request.preset),
            ("--suite", request.suite),
        )
        if value is not None
    ]
    if request.preset and request.suite:
        raise BiobenchError("give --preset or --suite, not both")
    if (request.preset or request.suite) and len(named) > 1:
        raise BiobenchError(
            f"{'--preset' if request.preset else '--suite'} sets the algorithm, "
            f"architecture and dataset; drop {', '.join(named[:-1])}"
        )
    if request.seed is not None and request.seeds is not None:
        raise BiobenchError("give --seed or --seeds, not both")
    names = load_presets().suite(request.suite) if request.suite else [request.preset]
    seeds = request.seeds if request.seeds is not None else (request.seed,)
    return [
        resolve(
            preset=name,
            algorithm=None if name else request.algorithm or "bp",
            architecture=None if name else request.architecture or "fc",
            dataset=None if name else request.dataset or "digits",
            seed=seed,
            epochs=request.epochs,
            batch_size=request.batch_size,
            overrides=list(request.overrides),
        )
        for name in names
        for seed in seeds
    ]


def check_resume(request: Request) -> None:
    given = [flag for flag, key in _RESUME_FIXED if getattr(request, key) not in (None, ())]
    if given:
        raise BiobenchError(f"--resume continues a run with its own spec; drop {', '.join(given)}")


@dataclass(frozen=True)
class Outcome:
    """What a request ran: the run ids it made, and the specs that failed (suites go on)."""

    specs: list[RunSpec]
    run_ids: list[int]
    failed: list[str]


def run_request(
    request: Request,
    *,
    store: Store,
    device: str | None = None,
    data_dir: Path | None = None,
    download: bool = False,
    reporter: Reporter | None = None,
    keep_going: bool = True,
) -> Outcome:
    """Carry out a `biobench run`: resume one run, or train every planned spec in turn.

    `device` and `data_dir` default to `auto` and the default data folder; a resume takes the
    run's own unless they are given. With several specs a failed one is reported and the rest
    still run (`keep_going`); the caller decides what the failures mean. With one, its error
    propagates.
    """
    reporter = reporter or Reporter()
    keep = request.keep_checkpoint or checkpoint.DEFAULT_KEEP
    if keep not in checkpoint.KEEP:
        raise BiobenchError(
            f"unknown --keep-checkpoint {keep!r}; choose one of: {', '.join(checkpoint.KEEP)}"
        )
    if request.resume is not None:
        check_resume(request)
        stored_device, stored_data = stored_place(store.run(request.resume))
        wanted = resolve_device(device or stored_device or "auto")
        with distributed.joined(wanted) as (group, place):
            run_id = resume(
                request.resume,
                store=store,
                device=place,
                data_dir=data_dir or stored_data or default_data_dir(),
                download=download,
                reporter=reporter,
                group=group,
            )
        reporter.run_ended(store.run(run_id))
        return Outcome([], [run_id], [])
    with distributed.joined(resolve_device(device or "auto")) as (group, place):
        options = dict(
            store=store,
            device=place,
            group=group,
            data_dir=data_dir or default_data_dir(),
            download=download,
        )
        specs = plan(request)
        run_ids, failed = [], []
        for index, spec in enumerate(specs, 1):
            if len(specs) > 1:
                reporter.spec_started(index, len(specs), spec)
            try:
                run_id = execute(
                    spec,
                    reporter=reporter,
                    checkpoint_dir=request.checkpoint_dir,
                    keep_checkpoint=keep,
                    **options,
                )
            except Exception as error:  # one failed preset does not stop the suite
                if len(specs) == 1 or not keep_going:
                    raise
                name = spec.preset or f"{spec.algorithm} / {spec.architecture} / {spec.dataset}"
                reporter.spec_failed(name, error)
                failed.append(f"{name} (seed {spec.seed})")
                continue
            run_ids.append(run_id)
            reporter.run_ended(store.run(run_id))
    return Outcome(specs, run_ids, failed)
