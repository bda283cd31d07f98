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
from biobench.training.runner import Request, check_resume, execute, plan, resume

CPU = dict(device=torch.device("cpu"), data_dir=Path("unused"))


class Recorder(Reporter):
    """Records run_started's first epoch; Ctrl-C before the first batch of epoch `stop`."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.started = stop, []

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
        (dict(batch_size=8), "--batch-size"),
        (dict(overrides=("lr=0.1",)), "--set"),
        (dict(keep_checkpoint="none"), "--keep-checkpoint"),
    ):
        with pytest.raises(BiobenchError) as refused:
            check_resume(Request(resume=3, **given))
        assert str(refused.value) == f"--resume continues a run with its own spec; drop {flag}"
