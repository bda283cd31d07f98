"""Terminal progress for training: a bar during each epoch, one summary line after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from biobench.training.loop import Reporter


def epoch_line(epoch: int, epochs: int, row: dict[str, float]) -> str:
    """One line per epoch: top-1/top-5 error (%) and loss on train and test, throughput."""
    return (
        f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
        f"  train {row['train_top1']:5.2f}/{row['train_top5']:5.2f}% loss {row['train_loss']:.4f}"
        f"  test {row['test_top1']:5.2f}/{row['test_top5']:5.2f}% loss {row['test_loss']:.4f}"
        f"  {row['images_per_s']:,.0f} img/s {row['wall_time']:.1f}s"
    )


class RichReporter(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console

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
        )
        with progress:
            task = progress.add_task("train", total=batches)
            yield lambda images: progress.advance(task)

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        self.console.print(epoch_line(epoch, epochs, row), highlight=False)
