"""`biobench run --launcher slurm|local`: real jobs through submitit.

Slurm tests use the single-node Slurm that `.ci/slurm start` brings up (it exports SLURM_CONF and
BIOBENCH_TEST_SLURM); without it they are skipped, except under CI, where a missing Slurm is a
failure. No sbatch is mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from biobench.errors import BiobenchError
from biobench.launch import (
    SECRET_ENV,
    Options,
    Task,
    biobench_command,
    minutes,
    progress,
    submit,
    wait,
)
from biobench.launch.runs import Place, task_argvs
from biobench.store import Store
from biobench.training.runner import Request

SLURM_ENV = "BIOBENCH_TEST_SLURM"


@pytest.fixture
def slurm() -> None:
    if not os.environ.get(SLURM_ENV):
        if os.environ.get("CI"):
            pytest.fail(f"{SLURM_ENV} is not set under CI: .ci/run must start Slurm")
        pytest.skip(f'{SLURM_ENV} not set (start one with `eval "$(bash .ci/slurm start)"`)')


def _biobench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "biobench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _runs(url: str) -> list[Any]:
    return sorted(Store(url).runs(), key=lambda run: run.seed)


def test_a_suite_becomes_one_task_per_preset_and_seed(tmp_path: Path) -> None:
    request = Request(preset="smoke-digits-fc-bp", seeds=(0, 1, 2), epochs=1)
    argvs = task_argvs(request, Place(db="sqlite:///x.db", device="cpu"))
    assert [argv[argv.index("--seed") + 1] for argv in argvs] == ["0", "1", "2"]
    assert all(argv[:3] == ["run", "--preset", "smoke-digits-fc-bp"] for argv in argvs)
    assert all(argv[-4:] == ["--db", "sqlite:///x.db", "--device", "cpu"] for argv in argvs)


def test_a_requeued_task_resumes_the_run_it_started(tmp_path: Path) -> None:
    note = tmp_path / "run.id"
    task = Task(["run", "--preset", "p"], ["--db", "u"], 2, str(note))
    assert task.command()[3:] == ["run", "--preset", "p", "--nproc", "2"]
    note.write_text("17\n")
    assert task.command()[3:] == ["run", "--resume", "17", "--db", "u", "--nproc", "2"]


def test_a_tasks_log_and_error_mask_the_database_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = Task(["run", "--algo", "nope", "--db", "postgresql://me:hunter2@127.0.0.1:1/x"])
    with pytest.raises(RuntimeError) as failed:
        task()  # refused before any database is opened
    shown = capsys.readouterr().out + str(failed.value)
    assert "hunter2" not in shown and shown.count("postgresql://me:***@127.0.0.1:1/x") == 2


SECRET_DB = "postgresql://me:hunter2@127.0.0.1:1/x"


@pytest.mark.parametrize("existing", [None, 0o755])
def test_no_file_of_a_job_holds_the_database_password(
    tmp_path: Path, existing: int | None
) -> None:
    # submitit pickles each task into the job folder: its --db URL is masked there, and the
    # real one reaches the job in an environment variable it inherits.
    folder = tmp_path / "jobs"
    if existing is not None:  # the user's own folder, open to others: nothing secret lands
        folder.mkdir(mode=existing)
        folder.chmod(existing)
    tasks = [["runs", "--db", SECRET_DB], ["run", "--preset", "p", "--db=" + SECRET_DB]]
    jobs = submit(tasks, Options("local", folder=folder, workers=2))
    assert not any(name.startswith(SECRET_ENV) for name in os.environ)  # only the jobs'
    assert wait(jobs, lambda now: None, poll_s=0.2).failed == 2  # no server there
    assert folder.stat().st_mode & 0o777 == (existing or 0o700)
    files = [f for f in folder.rglob("*") if f.is_file()]
    assert any(f.name.endswith("_submitted.pkl") for f in files)
    assert not any(b"hunter2" in f.read_bytes() for f in files)
    assert not (folder / "%j").exists()  # no stray folder beside the workers' files
    logs = "".join(f.read_text() for f in files if f.name.endswith(("_log.out", "_log.err")))
    assert "+ biobench runs --db postgresql://me:***@127.0.0.1:1/x" in logs
    assert "cannot reach database postgresql+psycopg://me:***@127.0.0.1:1/x" in logs  # it ran
    assert "lacks" not in logs


def test_a_task_without_its_secret_in_the_environment_says_so(tmp_path: Path) -> None:
    masked = "postgresql://me:***@h/x"
    task = Task(["runs", "--db", masked], secrets={masked: f"{SECRET_ENV}0"})
    with pytest.raises(RuntimeError, match=f"the job's environment lacks {SECRET_ENV}0"):
        task.command()


def _checkout_beside(folder: Path) -> Path:
    """A folder holding a `biobench/` that is not the installed package (a source checkout)."""
    (folder / "biobench").mkdir(parents=True)
    (folder / "biobench" / "__init__.py").write_text("raise ImportError('the wrong biobench')\n")
    return folder


def test_a_task_runs_the_installed_biobench_whatever_folder_it_starts_in(tmp_path: Path) -> None:
    # `python -m biobench` would import ./biobench first; `-P` does not exist before 3.11.
    result = subprocess.run(
        biobench_command(["list", "algorithms"]),
        cwd=_checkout_beside(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "bp" in result.stdout, result.stderr


@pytest.mark.slow
def test_a_local_launcher_started_beside_a_biobench_checkout_runs_its_tasks(
    sqlite_url: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        biobench_command(
            [
                "run",
                "--algo",
                "bp",
                "--data",
                "synthetic",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--db",
                sqlite_url,
                "--launcher",
                "local",
                "--jobs-dir",
                str(tmp_path / "jobs"),
                "--wait",
            ]
        ),  # fmt: skip
        cwd=_checkout_beside(tmp_path / "here"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert [run.status.value for run in Store(sqlite_url).runs()] == ["finished"]
    assert not (tmp_path / "jobs" / "%j").exists()


@pytest.mark.parametrize(
    ("limit", "expected"),
    [("12:00:00", 720), ("90", 90), ("1:30", 2), ("2-00:00:00", 2880), ("1-12", 2160)],
)
def test_slurm_time_limits_in_minutes(limit: str, expected: int) -> None:
    assert minutes(limit) == expected


@pytest.mark.parametrize("limit", ["", "soon", "1:2:3:4", "0:00"])
def test_a_bad_slurm_time_is_refused(limit: str) -> None:
    with pytest.raises(BiobenchError, match="--slurm-time"):
        minutes(limit)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_every_task_lands_in_the_database_once(
    launcher: str, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    if launcher == "slurm":
        request.getfixturevalue("slurm")
    Store(sqlite_url)
    result = _biobench(
        "run", "--preset", "smoke-digits-fc-bp", "--seeds", "0,1", "--epochs", "1",
        "--device", "cpu", "--db", sqlite_url, "--launcher", launcher, "--workers", "2", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 2 run(s)" in result.stdout
    runs = _runs(sqlite_url)
    assert [(run.seed, run.status.value, run.epochs_done) for run in runs] == [
        (0, "finished", 1),
        (1, "finished", 1),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_search_workers_as_jobs_share_one_study(
    launcher: str, sqlite_url: str, request: pytest.FixtureRequest
) -> None:
    if launcher == "slurm":
        request.getfixturevalue("slurm")
    Store(sqlite_url)
    result = _biobench(
        "search", "--study", "jobs", "--algo", "bp", "--arch", "fc", "--data", "digits",
        "--trials", "4", "--epochs", "1", "--device", "cpu", "--db", sqlite_url,
        "--launcher", launcher, "--workers", "2", "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "submitted 2 search worker(s) for study 'jobs'" in result.stdout
    runs = Store(sqlite_url).runs(study="jobs")
    assert sorted(run.trial for run in runs) == [0, 1, 2, 3]  # each trial once, none more
    assert all(run.status.value == "finished" and run.epochs_done == 1 for run in runs)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_a_job_reaches_a_database_whose_password_no_file_holds(
    launcher: str, postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # The job has only the masked URL on disk; the real one reaches it through the environment
    # it inherits (sbatch's, or the local worker's), or the task stops saying what it lacks.
    if launcher == "slurm":
        request.getfixturevalue("slurm")
    from sqlalchemy.engine import make_url

    password = make_url(postgres_url).password
    assert password
    Store(postgres_url)
    jobs = tmp_path / "jobs"
    result = _biobench(
        "run", "--preset", "smoke-digits-fc-bp", "--epochs", "1", "--device", "cpu",
        "--db", postgres_url, "--launcher", launcher, "--jobs-dir", str(jobs), "--wait",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = Store(postgres_url).runs()
    assert run.status.value == "finished"
    secret = f":{password}@".encode()  # the URL's; "secret" alone is also a field's name
    assert not any(secret in f.read_bytes() for f in jobs.rglob("*") if f.is_file())


@pytest.mark.slow
def test_wait_exits_1_when_a_job_fails(sqlite_url: str, tmp_path: Path) -> None:
    result = _biobench(
        "run", "--data", "mnist", "--data-dir", str(tmp_path / "nothing"), "--epochs", "1",
        "--device", "cpu", "--db", sqlite_url, "--launcher", "local", "--wait",
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 of 1 job(s) failed" in result.stderr


@pytest.mark.slow
def test_a_preempted_job_requeues_and_resumes(
    slurm: None, sqlite_url: str, tmp_path: Path
) -> None:
    epochs = 15
    Store(sqlite_url)
    request = Request(preset="smoke-digits-fc-bp", epochs=epochs)
    place = Place(db=sqlite_url, device="cpu")
    options = Options(launcher="slurm", folder=tmp_path / "jobs")
    (job,) = submit(task_argvs(request, place), options, resume_args=lambda argv: place.args())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = Store(sqlite_url).runs()
        if runs and runs[0].epochs_done >= 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the job never trained two epochs; log in {job.paths.stdout}")
    # What Slurm sends before preempting a job or ending its time (submitit's signal).
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    final = wait([job], lambda now: None, poll_s=1.0)
    assert final.failed == 0, job.paths.stderr.read_text()
    (run,) = Store(sqlite_url).runs()
    assert run.status.value == "finished" and run.epochs_done == epochs
    epochs_seen = [row["epoch"] for row in Store(sqlite_url).epochs([run.id])]
    assert sorted(epochs_seen) == list(range(1, epochs + 1))
    log = job.paths.stdout.read_text()
    assert f"--resume {run.id}" in log  # the requeued task continued the run it had made
    assert progress([job]).done == 1
