"""One search worker: runs a study's trials until it holds its number of finished ones.

Any number of workers (terminals, machines, cluster jobs) may run one study: Optuna hands out
trials from the database. A worker starts a trial only while the finished and running ones fall
short of the target, and a trial that a race made surplus (another worker asked at the same
moment) stops before it trains, so the study ends with exactly `--trials` finished. A trial is an
ordinary biobench run, linked by `runs.study` and `runs.trial`; its objective is the run's best
test top-1 error over its epochs (the paper's protocol). A diverged run fails its trial and the
search goes on. A worker killed outright stops beating: once its heartbeat is stale another
worker fails the trial, and it is run again, resuming the run from its checkpoint. Ctrl-C marks
the run interrupted and queues the trial again at once.

With screening (`--screen-epochs E --promote K`), every trial pauses after E epochs (its run
left `interrupted`, with its checkpoint); once all are in, the K best are resumed to `--epochs`
in the same run rows, by whichever workers are there.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from biobench.errors import BiobenchError
from biobench.search.space import suggest
from biobench.search.study import StudySpec, objective_of, open_study, retry_callback
from biobench.store import RunStatus, Store
from biobench.store.store import heartbeat_interval
from biobench.training import runner
from biobench.training.loop import Reporter

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class Surplus(Exception):
    """The study already had its trials when this one was handed out."""


class Failed(Exception):
    """The trial's run diverged: the trial fails, the search goes on."""


class Paused(Exception):
    """Screening: the run stops before this epoch, its checkpoint saved."""


class _TrialStore:
    """The store, with the trial's columns added to the run row it creates."""

    def __init__(self, store: Store, **fields: Any) -> None:
        self._store, self._fields = store, fields

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def create_run(self, **fields: Any) -> int:
        return self._store.create_run(**fields, **self._fields)


class TrialReporter(Reporter):
    """Passes the run's progress on to `inner`, and to the trial: its run id as soon as the
    run exists, each epoch's test error (for pruners); pauses before epoch `pause_before`."""

    def __init__(
        self,
        inner: Reporter,
        trial: optuna.Trial | None,
        pause_before: int | None,
        prune: bool,
        column: str = "test_top1",
        relink: Store | None = None,
    ) -> None:
        self.inner, self.trial, self.pause_before, self.prune = inner, trial, pause_before, prune
        self.column = column  # the epoch row's value the trial is judged by
        self.relink = relink  # a retry: the resumed run's row then names this trial
        self.run_id: int | None = None

    def spec_started(self, index: int, total: int, spec: Any) -> None:
        self.inner.spec_started(index, total, spec)

    def run_started(
        self, run_id: int, spec: Any, parameters: int, first_epoch: int, device: Any
    ) -> None:
        self.run_id = run_id
        if self.trial is not None:
            self.trial.set_user_attr("run_id", run_id)
            if self.relink is not None:  # the run is this process's now (its lease taken)
                self.relink.set_trial(run_id, self.trial.number)
        self.inner.run_started(run_id, spec, parameters, first_epoch, device)

    def run_ended(self, run: Any) -> None:
        self.inner.run_ended(run)

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Callable[[int], None]]:
        if self.pause_before is not None and epoch >= self.pause_before:
            raise Paused(f"paused after epoch {epoch - 1} of {epochs} (screening)")
        with self.inner.epoch(epoch, epochs, batches) as advance:
            yield advance

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        self.inner.epoch_done(epoch, epochs, row)
        if self.trial is not None and self.prune:
            self.trial.report(row[self.column], epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")


@dataclass
class Worker:
    """Where and how this process trains its trials."""

    name: str
    spec: StudySpec
    store: Store
    device: torch.device
    data_dir: Path
    download: bool = False
    checkpoint_dir: Path | None = None
    reporter: Reporter = field(default_factory=Reporter)
    say: Callable[[str], None] = lambda line: None
    trial_number: int | None = None  # the trial training now: what a Ctrl-C stops
    requeued: int | None = None  # the trial a Ctrl-C put back in the study

    # -- one trial -----------------------------------------------------------------------------

    def objective(self, trial: optuna.Trial, target: int) -> float:
        study = trial.study
        ahead = [
            t
            for t in study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
            if t.number < trial.number
        ]
        if len(ahead) >= target:
            trial.set_user_attr("surplus", True)
            self.say(f"trial {trial.number} not needed: study {self.name} has its {target}")
            raise Surplus(f"study {self.name} already had its {target} trials")
        self.trial_number = trial.number
        values = suggest(trial, self.spec.dists(), self.spec.kinds())
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in values.items()
            if k in self.spec.searched()
        )
        self.say(f"trial {trial.number} of study {self.name}: {shown or 'no searched values'}")
        prune = self.spec.pruner != "none"
        pause = self.spec.screen_epochs + 1 if self.spec.screen_epochs else None
        earlier = self._earlier_run(study, trial)
        relink = self.store if earlier is not None else None
        reporter = TrialReporter(self.reporter, trial, pause, prune, self.spec.column, relink)
        try:
            if earlier is not None:
                trial.set_user_attr("run_id", earlier)
                self._resume(earlier, reporter)
            else:
                runner.execute(
                    self.spec.run_spec(values),
                    store=_TrialStore(self.store, study=self.name, trial=trial.number),  # type: ignore[arg-type]
                    device=self.device,
                    data_dir=self.data_dir,
                    download=self.download,
                    reporter=reporter,
                    checkpoint_dir=self.checkpoint_dir,
                    keep_checkpoint="none",  # a paused run keeps its own until it finishes
                )
        except Paused as paused:
            self._mark(reporter.run_id, f"{paused}: study {self.name}, trial {trial.number}")
        except optuna.TrialPruned as pruned:
            self._mark(reporter.run_id, f"{pruned} by the {self.spec.pruner} pruner")
            raise
        assert reporter.run_id is not None
        run = self.store.run(reporter.run_id)
        self.reporter.run_ended(run)
        if run.status == RunStatus.diverged:
            trial.set_user_attr("diverged", run.error)
            self.say(f"trial {trial.number} failed: run {run.id} {run.error}; the search goes on")
            raise Failed(f"run {run.id} {run.error}")
        return objective_of(self.store, run, self.spec)

    def _earlier_run(self, study: optuna.Study, trial: optuna.Trial) -> int | None:
        """The run a retried trial left behind, when it can be continued."""
        frozen = study._storage.get_trial(trial._trial_id)
        first = frozen.system_attrs.get("failed_trial")
        if first is None:
            return None
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        run_id = by_number[first].user_attrs.get("run_id") if first in by_number else None
        if run_id is None:
            return None
        run = self.store.run(run_id)
        return run_id if run.status.resumable and run.checkpoint else None

    def _resume(self, run_id: int, reporter: Reporter) -> None:
        runner.resume(
            run_id,
            store=self.store,
            device=self.device,
            data_dir=self.data_dir,
            download=self.download,
            reporter=reporter,
        )

    def _mark(self, run_id: int | None, why: str) -> None:
        """A paused or pruned run: interrupted (resumable), not failed."""
        if run_id is not None:
            self.store.set_status(run_id, RunStatus.interrupted, why)

    # -- the study -----------------------------------------------------------------------------

    def run(self, trials: int) -> optuna.Study:
        """Run trials until the study has `trials` finished, then (screening) promote."""
        study = open_study(self.name, self.spec, self.store)
        poll = min(5.0, max(0.2, heartbeat_interval()))
        while True:
            optuna.storages.fail_stale_trials(study)
            states = [t.state for t in study.get_trials(deepcopy=False)]
            done = sum(state in FINISHED for state in states)
            if done >= trials:
                break
            if done + states.count(TrialState.RUNNING) >= trials:
                time.sleep(poll * random.uniform(0.5, 1.0))  # others train the last ones
                continue
            try:
                study.optimize(
                    lambda trial: self.objective(trial, trials),
                    n_trials=1,
                    catch=(Surplus, Failed),
                )
            except KeyboardInterrupt:
                self._requeue(study)
                raise
            finally:
                self.trial_number = None
        if self.spec.promote:
            self.promote(study)
        return study

    def _requeue(self, study: optuna.Study) -> None:
        """Ctrl-C: the trial failed (Optuna), its run is interrupted; queue it again."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if trial.number == self.trial_number:
                retry_callback()(study, trial)
                self.requeued = trial.number

    def promote(self, study: optuna.Study) -> list[int]:
        """Continue the `promote` best screened trials' runs to the full epochs; returns the
        ids of those this worker trained. A run another worker is on is left to it."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best = sorted(complete, key=lambda t: (t.value, t.number))[: self.spec.promote]
        trained = []
        for trial in best:
            run_id = trial.user_attrs.get("run_id")
            if run_id is None or not self.store.run(run_id).status.resumable:
                continue
            self.say(f"promoting trial {trial.number} (run {run_id}) to {self.spec.epochs} epochs")
            reporter = TrialReporter(self.reporter, None, None, False)
            try:
                self._resume(run_id, reporter)
            except BiobenchError as error:
                if "another process" in str(error):  # another worker took it first
                    continue
                raise
            self.reporter.run_ended(self.store.run(run_id))
            trained.append(run_id)
        return trained
