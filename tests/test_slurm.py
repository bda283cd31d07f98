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
from biobench.launch import Options, Task, minutes, progress, submit, wait
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


def test_the_job_folder_holding_the_tasks_is_private_to_its_owner(tmp_path: Path) -> None:
    # submitit pickles each task's argv into the folder, --db URL and its password included.
    folder = tmp_path / "jobs"
    (job,) = submit([["runs", "--db", SECRET_DB]], Options("local", folder=folder))
    wait([job], lambda now: None, poll_s=0.2)  # it fails: no server there; its files stay
    assert folder.stat().st_mode & 0o777 == 0o700
    assert any(b"hunter2" in f.read_bytes() for f in folder.rglob("*.pkl"))  # why it matters


def test_a_job_folder_open_to_others_is_refused_when_a_password_would_land_in_it(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(BiobenchError) as refused:
        submit([["runs", "--db", SECRET_DB]], Options("local", folder=shared))
    assert str(refused.value) == (
        f"the job folder {shared} is open to other users, and the jobs would keep the database "
        "password in it; chmod 700 it or pass another --jobs-dir"
    )
    assert list(shared.iterdir()) == []  # nothing submitted, nothing written
    plain = f"sqlite:///{tmp_path / 'results.db'}"
    (job,) = submit([["runs", "--db", plain]], Options("local", folder=shared))
    assert wait([job], lambda now: None, poll_s=0.2).failed == 0  # no secret: the user's folder


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
