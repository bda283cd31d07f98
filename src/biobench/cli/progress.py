"""What `biobench run` shows: a banner per run, a bar during each epoch, one summary line after
each epoch and each run, a rule between the presets of a suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from biobench.text import printable
from biobench.training.loop import Reporter


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def epoch_line(epoch: int, epochs: int, row: dict[str, float]) -> str:
    """One line per epoch: top-1 and top-5 error (%), each named, and loss on train and test,
    throughput."""
    split = {
        name: f"{name} top-1 {row[f'{name}_top1']:5.2f}% top-5 {row[f'{name}_top5']:5.2f}%"
        f" loss {row[f'{name}_loss']:.4f}"
        for name in ("train", "test")
    }
    return (
        f"epoch {epoch:>{len(str(epochs))}}/{epochs}  {split['train']}  {split['test']}"
        f"  {row['images_per_s']:,.0f} img/s {row['wall_time']:.1f}s"
    )


class RichReporter(Reporter):
    def __init__(self, console: Console, errors: Console, db_url: str) -> None:
        self.console, self.errors, self.db_url = console, errors, db_url
        self.run_id: int | None = None  # the run training now: what a Ctrl-C would stop

    def _say(self, text: str) -> None:
        """A line that may hold a preset's name or an error's text, shown escaped."""
        self.console.print(printable(text), highlight=False, markup=False)

    def spec_started(self, index: int, total: int, spec: Any) -> None:
        self.run_id = None
        name = spec.preset or f"{spec.algorithm} / {spec.architecture} / {spec.dataset}"
        self.console.rule(escape(printable(f"[{index}/{total}] {name}, seed {spec.seed}")))

    def run_started(
        self, run_id: int, spec: Any, parameters: int, first_epoch: int, device: Any
    ) -> None:
        self.run_id = run_id
        name = f" [{spec.preset}]" if spec.preset else ""
        resumed = f", resuming at epoch {first_epoch}" if first_epoch > 1 else ""
        self._say(
            f"run {run_id}{name}: {spec.algorithm} / {spec.architecture} / {spec.dataset}, "
            f"{plural(parameters, 'parameter')}, {plural(spec.epochs, 'epoch')} of batch "
            f"{spec.batch_size} on {device}, seed {spec.seed}{resumed} -> {self.db_url}"
        )

    def run_ended(self, run: Any) -> None:
        self.run_id = None
        best = run.best_test_top1
        best_text = f"{best:.2f}%" if best is not None else "-"
        self._say(
            f"run {run.id} {run.status}: best test top-1 error {best_text}"
            + (f" ({run.error})" if run.error else "")
        )

    def spec_failed(self, name: str, error: BaseException) -> None:
        self.run_id = None
        self.errors.print(
            f"[bold red]error:[/] {escape(printable(f'{name}: {error}'))}", highlight=False
        )

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Callable[[int], None]]:
        progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("batches"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.console.is_terminal,  # a log file gets the epoch lines only
        )
        with progress:
            task = progress.add_task("train", total=batches)
            yield lambda images: progress.advance(task)

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        self._say(epoch_line(epoch, epochs, row))
