"""What mutation testing of training/runner.py (a random sample of its mutants) found unguarded:
the device and process count a run's row records, the reporter a resume reports to, and the
defaults a library caller of `Request` gets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from biobench.errors import BiobenchError
from biobench.spec import resolve
from biobench.store import Store
from biobench.training.loop import Reporter
from biobench.training.runner import (
    Request,
    check_resume,
    execute,
    plan,
    resume,
    run_request,
)

CPU = dict(device=torch.device("cpu"), data_dir=Path("unused"))


class Recorder(Reporter):
    """Records what a run or suite reports; Ctrl-C before the first batch of epoch `stop`."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.started, self.specs, self.failed = stop, [], [], []

    def spec_started(self, index: int, total: int, spec: Any) -> None:
        self.specs.append((index, total, spec.seed))

    def spec_failed(self, name: str, error: BaseException) -> None:
        self.failed.append(name)

    def run_started(self, run_id: int, spec: Any, parameters: int, first: int, device: Any):
        self.started.append((run_id, first))

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Callable[[int], None]]:
        if epoch == self.stop:
            raise KeyboardInterrupt
        yield lambda images: None


def test_a_one_process_cpu_run_records_cpu_and_one_process_and_takes_batches_of_one(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1)
    run = store.run(execute(spec, store=store, **CPU))
    assert (run.device, run.world_size, run.environment["world_size"]) == ("cpu", 1, 1)
    one = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1, batch_size=1)
    assert store.run(execute(one, store=store, **CPU)).status.value == "finished"


def test_a_resume_reports_to_the_callers_reporter_from_the_epoch_it_continues_at(
    sqlite_url: str,
) -> None:
    # `biobench run --resume` says "resuming at epoch N" through the reporter it passes.
    store = Store(sqlite_url)
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=2)
    first = Recorder(stop=2)
    with pytest.raises(KeyboardInterrupt):
        execute(spec, store=store, reporter=first, **CPU)
    (run_id, _), again = first.started[0], Recorder()
    resume(run_id, store=store, reporter=again, **CPU)
    assert first.started == [(run_id, 1)] and again.started == [(run_id, 2)]


def test_a_request_with_no_options_plans_the_default_run() -> None:
    # `biobench run` with nothing else, called from Python: BP on the fc net over the digits.
    (spec,) = plan(Request())
    assert spec == resolve(algorithm="bp", architecture="fc", dataset="digits")
    assert (spec.epochs, spec.batch_size, spec.seed) == (30, 32, 0)


def test_a_resume_request_with_no_other_option_is_accepted_and_any_other_refused() -> None:
    check_resume(Request(resume=3))
    for given, flag in (
        (dict(preset="smoke-digits-fc-bp"), "--preset"),
        (dict(suite="smoke"), "--suite"),
        (dict(batch_size=8), "--batch-size"),
        (dict(overrides=("lr=0.1",)), "--set"),
        (dict(keep_checkpoint="none"), "--keep-checkpoint"),
    ):
        with pytest.raises(BiobenchError) as refused:
            check_resume(Request(resume=3, **given))
        assert str(refused.value) == f"--resume continues a run with its own spec; drop {flag}"


def test_a_preset_with_names_of_its_own_names_every_one_to_drop() -> None:
    request = Request(preset="smoke-digits-fc-bp", algorithm="bp", architecture="fc")
    with pytest.raises(BiobenchError) as refused:
        plan(request)
    assert str(refused.value) == (
        "--preset sets the algorithm, architecture and dataset; drop --algo, --arch"
    )


def test_an_unknown_keep_checkpoint_names_the_choices(sqlite_url: str) -> None:
    with pytest.raises(BiobenchError) as refused:
        run_request(Request(keep_checkpoint="all"), store=Store(sqlite_url))
    assert str(refused.value) == "unknown --keep-checkpoint 'all'; choose one of: last, none"


def test_a_suite_counts_its_specs_from_one_and_goes_on_past_a_failed_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    store, shown = Store(sqlite_url), Recorder()
    request = Request(dataset="synthetic", epochs=1, seeds=(0, 1))
    done = run_request(request, store=store, device="cpu", reporter=shown)
    assert shown.specs == [(1, 2, 0), (2, 2, 1)] and len(done.run_ids) == 2
    missing = Request(dataset="mnist", epochs=1, seeds=(0, 1))  # no MNIST files: both fail
    where = dict(store=store, device="cpu", data_dir=tmp_path, reporter=shown)
    assert run_request(missing, **where).failed == ["bp / fc / mnist (seed 0)",
                                                    "bp / fc / mnist (seed 1)"]  # fmt: skip
    with pytest.raises(BiobenchError, match="MNIST"):
        run_request(missing, **where, keep_going=False)
    assert len(store.runs()) == 2  # the failed specs made no row
