"""Many biobench commands as cluster jobs: Slurm (or local processes) through submitit.

`submit(tasks, options)` takes one `biobench` argument list per task (one preset and seed of a
suite, one search worker) and submits them: on Slurm as one job array, one array task per
argument list, at most `workers` running at once; locally as `workers` processes that share the
list out. Every task runs `biobench ARGS` (the installed package: `biobench_command`) in a child
process and writes to the shared results database, so `biobench runs` sees the work as it lands.
Job logs (submitit's stdout, stderr and pickles, one set per task) go to `options.folder`, by
default $BIOBENCH_HOME/jobs/<date-time>; no file there holds a password: a task's arguments keep
their secrets masked, and the jobs inherit the real ones in environment variables.

Preemption and time limits: submitit asks Slurm for a signal (USR2) 90 s before the end; the
task then stops its child with SIGTERM (a run records itself `interrupted`, with its last
epoch's checkpoint) and requeues itself. A requeued task that had started a run resumes that
run (`biobench run --resume ID`): the child wrote the run id to a file named by
BIOBENCH_RUN_ID_FILE as soon as the run existed. No epoch is recorded twice or lost; the epoch
that was in progress is trained again from its start.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from biobench.errors import BiobenchError
from biobench.paths import home

RUN_ID_ENV = "BIOBENCH_RUN_ID_FILE"  # where `biobench run` writes the id of the run it made
SECRET_ENV = "BIOBENCH_JOB_SECRET_"  # + n: a secret of the tasks' arguments (a --db URL)
LAUNCHERS = ("slurm", "local")
_STOP_WAIT_S = 60  # how long a preempted task waits for its child to record the stop


@dataclass(frozen=True)
class Options:
    """How to submit: the launcher and what each job asks for."""

    launcher: str = "slurm"
    workers: int | None = None  # tasks running at once (Slurm: all the cluster allows)
    partition: str | None = None
    time: str | None = None  # Slurm's --time, e.g. 12:00:00 (default: the partition's)
    gpus_per_job: int = 0  # > 1: each task is a data-parallel run on that many GPUs
    nproc: int = 1  # processes per task (data parallel); at least gpus_per_job
    slurm_set: tuple[str, ...] = ()  # any other sbatch option, key=value
    folder: Path | None = None  # job logs
    name: str = "biobench"
    cpus_per_job: int | None = None

    def log_folder(self) -> Path:
        return (self.folder or home() / "jobs" / time.strftime("%Y%m%d-%H%M%S")).resolve()


# `python -m biobench` puts the working folder first on sys.path, so that a `biobench/` folder
# there (a checkout) shadows the installed package; `python -P` leaves it out, but only from
# Python 3.11. These entry points drop it on every version (unless PYTHONSAFEPATH already did).
_DROP_CWD = "import sys; sys.path[:1] == [''] and sys.path.pop(0)"
_ENTRY = f"{_DROP_CWD}; sys.argv[0] = 'biobench'; from biobench.cli import main; main()"
# submitit starts a job as `PYTHON -u -m submitit.core._submit FOLDER` in the folder it was
# submitted from, and unpickles the task (a biobench class) there: PYTHON is this.
_SUBMITIT_ENTRY = (
    f"{_DROP_CWD}; import runpy; sys.argv = sys.argv[3:]; "
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)"
)


def biobench_command(args: Sequence[str]) -> list[str]:
    """The command line that runs `biobench ARGS` with this Python and the installed biobench,
    whatever folder it starts in."""
    return [sys.executable, "-c", _ENTRY, *args]


def _submitit_python() -> str:
    """What submitit runs a job's Python as (followed by `-u -m submitit.core._submit ...`)."""
    return f"{shlex.quote(sys.executable)} -u -c {shlex.quote(_SUBMITIT_ENTRY)}"


def _signals_ignored() -> None:
    # Slurm signals every process of the job: only the task itself answers the preemption
    # signal (it stops the child with SIGTERM, then requeues).
    for name in ("SIGUSR1", "SIGUSR2"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)


def _private_folder(folder: Path) -> None:
    """Make the job folder, readable by its owner only (job logs name hosts, users, paths)."""
    existed = folder.exists()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed and folder.stat().st_mode & 0o077:  # a umask mkdir's mode cannot narrow
        folder.chmod(0o700)


def _hide_secrets(tasks: list[Task]) -> dict[str, str]:
    """Take the secrets (a --db URL's password...) out of the tasks' arguments: each task
    keeps the masked text, and the real one travels in an environment variable that the
    jobs inherit from the submitting process, so that no file submitit writes (its pickles
    in the job folder) holds a password. Returns those variables."""
    from biobench.store.urls import mask_url

    env: dict[str, str] = {}
    for task in tasks:
        for arg in (*task.argv, *(task.resume_args or ())):
            masked = mask_url(arg)
            if masked == arg:
                continue
            name = next((k for k, v in env.items() if v == arg), f"{SECRET_ENV}{len(env)}")
            if task.secrets.setdefault(masked, name) != name:
                raise BiobenchError(
                    f"two arguments of one task differ only in their secrets ({masked}); "
                    "give each job one database URL"
                )
            env[name] = arg
            task.argv = [masked if a == arg else a for a in task.argv]
            if task.resume_args is not None:
                task.resume_args = [masked if a == arg else a for a in task.resume_args]
    return env


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """`values` in this process's environment while the block submits (sbatch and submitit's
    local workers copy it), and no longer after."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _masked(argv: Sequence[str]) -> list[str]:
    """argv with every secret masked (parsed, as `biobench runs` shows a URL)."""
    from biobench.store.urls import mask_url

    return [mask_url(arg) for arg in argv]


@dataclass
class Task:
    """One `biobench` command, run as a child process of a submitit job; checkpointable."""

    argv: list[str]
    resume_args: list[str] | None = None  # for `run`: what `--resume ID` takes besides the id
    nproc: int = 1
    run_file: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # masked argument -> variable
    _child: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def command(self) -> list[str]:
        """The child's command line, with the secrets the job's environment holds."""
        args = self.args()
        for i, arg in enumerate(args):
            if arg in self.secrets:
                value = os.environ.get(self.secrets[arg])
                if value is None:
                    raise RuntimeError(
                        f"the job's environment lacks {self.secrets[arg]}, which holds {arg}: "
                        "jobs must inherit the submitting shell's environment (sbatch's "
                        "default --export=ALL)"
                    )
                args[i] = value
        return biobench_command(args)

    def args(self) -> list[str]:
        """The child's `biobench` arguments, its secrets masked."""
        argv = list(self.argv)
        note = Path(self.run_file) if self.run_file else None
        if self.resume_args is not None and note is not None and note.exists():
            argv = ["run", "--resume", note.read_text().strip(), *self.resume_args]
        if self.nproc > 1:
            argv += ["--nproc", str(self.nproc)]
        return argv

    def __call__(self) -> int:
        env = dict(os.environ)
        if self.run_file:
            env[RUN_ID_ENV] = self.run_file
        command = self.command()
        shown = " ".join(_masked(self.args()))  # the job log shows no password
        print("+ biobench", shown, flush=True)
        self._child = child = subprocess.Popen(command, env=env, preexec_fn=_signals_ignored)
        while True:
            # Waited for in short slices: a blocking wait() holds the lock `checkpoint` (a
            # signal handler in this same thread) needs to wait for the child in turn.
            try:
                code = child.wait(1.0)
                break
            except subprocess.TimeoutExpired:
                continue
        if code != 0:
            raise RuntimeError(f"`biobench {shown}` exited with status {code}")
        return code

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit when Slurm preempts the job or its time runs out."""
        import submitit

        child = self._child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)  # the run records `interrupted`, resumable
            try:
                child.wait(_STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        return submitit.helpers.DelayedSubmission(Task(*self._fields()))

    def _fields(self) -> tuple[list[str], list[str] | None, int, str, dict[str, str]]:
        return self.argv, self.resume_args, self.nproc, self.run_file, self.secrets

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_child": None}


@dataclass
class TaskList:
    """Several tasks in turn: one local worker's share."""

    tasks: list[Task]

    def __call__(self) -> int:
        failed = []
        for task in self.tasks:
            try:
                task()
            except RuntimeError as error:
                print(error, file=sys.stderr, flush=True)
                failed.append(" ".join(_masked(task.argv)))
        if failed:
            raise RuntimeError(f"{len(failed)} task(s) failed: {'; '.join(failed)}")
        return 0


def minutes(limit: str) -> int:
    """A Slurm time limit (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) in whole minutes,
    as submitit wants it (it also times its requeue with it)."""
    days, _, clock = limit.strip().rpartition("-")
    parts = clock.split(":")
    try:
        if not days and len(parts) <= 2:  # MM or MM:SS
            values = [0, *map(int, parts)] if len(parts) == 2 else [0, int(parts[0]), 0]
        elif len(parts) <= 3:  # HH:MM:SS, or with days HH[:MM[:SS]]
            values = [*map(int, parts), *[0] * (3 - len(parts))]
        else:
            raise ValueError
        total = int(days or 0) * 86400 + values[0] * 3600 + values[1] * 60 + values[2]
    except ValueError:
        total = -1
    if total <= 0:
        raise BiobenchError(
            f"--slurm-time {limit!r} is not a Slurm time limit; give e.g. 12:00:00 or 2-00:00:00"
        )
    return -(-total // 60)


def _slurm_parameters(options: Options, count: int) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for item in options.slurm_set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BiobenchError(f"--slurm-set {item!r} is not key=value (an sbatch option)")
        extra[key.strip().replace("-", "_")] = value.strip()
    parameters: dict[str, Any] = {
        "slurm_job_name": options.name,
        "slurm_array_parallelism": options.workers or count,
        "slurm_additional_parameters": extra,
        "slurm_signal_delay_s": 90,
        "slurm_use_srun": True,
        "slurm_ntasks_per_node": 1,
    }
    if options.partition:
        parameters["slurm_partition"] = options.partition
    # No --time of ours unless asked: the partition's default limit applies (not submitit's 5).
    parameters["slurm_time"] = minutes(options.time) if options.time else None
    if options.gpus_per_job:
        parameters["slurm_gpus_per_node"] = options.gpus_per_job
    if options.cpus_per_job or options.nproc > 1:
        parameters["slurm_cpus_per_task"] = options.cpus_per_job or options.nproc
    return parameters


def submit(
    tasks: Sequence[Sequence[str]],
    options: Options,
    *,
    resume_args: Callable[[Sequence[str]], list[str] | None] | None = None,
) -> list[Any]:
    """Submit one job (array task) per argument list; returns the submitit jobs.

    `resume_args(argv)`, when given, says what a requeued task adds to `run --resume ID` to
    continue the run it had started (the database, device, data folder), or None when the
    task is not a run and simply starts again."""
    import submitit

    if options.launcher not in LAUNCHERS:
        raise BiobenchError(
            f"unknown launcher {options.launcher!r}; choose one of: {', '.join(LAUNCHERS)}"
        )
    if not tasks:
        raise BiobenchError("nothing to submit")
    folder = options.log_folder()
    _private_folder(folder)
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    made = [
        Task(
            list(argv),
            resume_args(argv) if resume_args else None,
            max(1, options.nproc, options.gpus_per_job),
            str(folder / "runs" / f"{uuid.uuid4().hex}.id"),
        )
        for argv in tasks
    ]
    secrets = _hide_secrets(made)
    if options.launcher == "local":
        with _environment(secrets):
            return _submit_local(made, options, folder)
    executor = submitit.AutoExecutor(
        folder=folder / "%j",
        cluster="slurm",
        slurm_max_num_timeout=10,
        slurm_python=_submitit_python(),
    )
    executor.update_parameters(**_slurm_parameters(options, len(made)))
    try:
        with _environment(secrets):
            return _array(executor, made)
    except subprocess.CalledProcessError as error:
        output = (error.output or b"").decode(errors="replace").strip()
        raise BiobenchError(f"sbatch refused the jobs: {output or error}") from None
    except FileNotFoundError as error:
        raise BiobenchError(
            f"{error.filename or 'sbatch'} not found: is this a Slurm login node? Use "
            "--launcher local to run the tasks here"
        ) from None


def _array(executor: Any, tasks: list[Task]) -> list[Any]:
    with executor.batch():
        jobs = [executor.submit(task) for task in tasks]
    return jobs


def _submit_local(tasks: list[Task], options: Options, folder: Path) -> list[Any]:
    import submitit

    workers = max(1, min(options.workers or 1, len(tasks)))
    gpus = options.gpus_per_job
    jobs = []
    for worker in range(workers):
        # The folder itself, not folder/%j as on Slurm: submitit's local worker would make a
        # folder named "%j" beside its own (each file's name starts with the worker's id).
        executor = submitit.LocalExecutor(folder=folder, python=_submitit_python())
        executor.update_parameters(
            timeout_min=60 * 24 * 365,  # a local worker runs until its share is done
            gpus_per_node=gpus,
            visible_gpus=tuple(range(worker * gpus, (worker + 1) * gpus)) if gpus else (),
        )
        jobs.append(executor.submit(TaskList(tasks[worker::workers])))
    return jobs


@dataclass(frozen=True)
class Progress:
    done: int
    failed: int
    total: int


def _on_queue(job_ids: set[str]) -> set[str]:
    """The job ids of `job_ids` Slurm still holds (pending, running or requeued)."""
    try:
        result = subprocess.run(
            # -r: one line per array task, pending ones too ("2_0", not "2_[0-1]").
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(sorted(job_ids))],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return set(job_ids)  # cannot tell: assume they are still there
    listed = set(result.stdout.split())
    return {job_id for job_id in job_ids if job_id in listed}


def progress(jobs: Sequence[Any]) -> Progress:
    """How many jobs ended and how many of those failed. A Slurm job that left the queue
    without a result (cancelled, killed, node failure) counts as failed."""
    done = failed = 0
    pending = []
    for job in jobs:
        if job.paths.result_pickle.exists() or (
            job.__class__.__name__ == "LocalJob" and job.done()
        ):
            done += 1
            failed += _failed(job)
        else:
            pending.append(job)
    slurm = [job for job in pending if job.__class__.__name__ != "LocalJob"]
    if slurm:
        left = _on_queue({job.job_id for job in slurm})
        for job in slurm:
            if job.job_id not in left and not job.paths.result_pickle.exists():
                done += 1
                failed += 1
    return Progress(done, failed, len(jobs))


def _failed(job: Any) -> int:
    try:
        return int(job.exception() is not None)
    except Exception:  # no result at all: the job died
        return 1


def wait(
    jobs: Sequence[Any], on_progress: Callable[[Progress], None], poll_s: float = 5.0
) -> Progress:
    """Block until every job ended, calling `on_progress` whenever the count changes."""
    last = None
    while True:
        now = progress(jobs)
        if now != last:
            on_progress(now)
            last = now
        if now.done == now.total:
            return now
        time.sleep(poll_s)
