"""A tidy disk: removing runs (`biobench rm`) and checkpoint folders no run points at
(`biobench gc`). No torch here.

Only what training writes into a run's folder is ever deleted: its checkpoint, its spool file
and the temporary files of an interrupted write. A folder holding anything else is left whole,
so a wrong path in a database, or a --checkpoint-dir that is someone's home folder, never costs
a user a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from biobench.errors import BiobenchError
from biobench.store import RunRecord, RunStatus, Store
from biobench.training.sink import SPOOL

CHECKPOINT = "last.pt"  # training/checkpoint.py's FILE (that module imports torch)
# A run folder, as training names it: <YYYYmmdd-HHMMSS>-<algorithm>-<arch>-<dataset>-<8 hex>.
RUN_FOLDER = re.compile(r"\d{8}-\d{6}-.+-[0-9a-f]{8}")
# What files.atomic_write leaves if the process dies mid-write: .<name>.<8 hex>.tmp
PARTIAL_WRITE = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")


@dataclass(frozen=True)
class Removal:
    """What became of one folder: `removed` (with the bytes freed), `absent` (nothing was
    there) or `kept` (it holds files biobench did not write, named in `why`)."""

    folder: Path
    outcome: str
    size: int = 0
    why: str = ""


def _ours(path: Path) -> bool:
    return (
        path.is_file()
        and not path.is_symlink()
        and (path.name in (CHECKPOINT, SPOOL) or PARTIAL_WRITE.fullmatch(path.name) is not None)
    )


def folder_size(folder: Path) -> int:
    """Bytes in a run folder's files (0 when it is gone)."""
    if not folder.is_dir():
        return 0
    return sum(entry.stat().st_size for entry in folder.iterdir() if entry.is_file())


def remove_folder(folder: Path) -> Removal:
    """Delete a run folder's files, then the folder; see the module docstring for what is
    never deleted."""
    if not folder.exists() and not folder.is_symlink():
        return Removal(folder, "absent")
    if folder.is_symlink() or not folder.is_dir():
        return Removal(folder, "kept", why="not a folder biobench made")
    entries = list(folder.iterdir())
    foreign = [entry.name for entry in entries if not _ours(entry)]
    if foreign:
        return Removal(
            folder, "kept", why=f"it holds {foreign[0]!r}, which biobench did not write"
        )
    size = sum(entry.stat().st_size for entry in entries)
    for entry in entries:
        entry.unlink()
    folder.rmdir()
    return Removal(folder, "removed", size)


def runs_to_remove(store: Store, run_ids: list[int]) -> list[RunRecord]:
    """The runs `biobench rm` would remove, oldest first; an unknown id, or a run a process
    is still training, is refused before anything is deleted."""
    runs = sorted(store.runs(sorted(set(run_ids))), key=lambda run: run.id)
    missing = sorted(set(run_ids) - {run.id for run in runs})
    if missing:
        raise BiobenchError(
            f"no run with id {missing[0]} in {store.display_url}; `biobench runs` lists them"
        )
    running = [run for run in runs if run.status is RunStatus.running]  # `lost` may go
    if running:
        run = running[0]
        where = f" (pid {run.pid} on {run.host})" if run.pid and run.host else ""
        raise BiobenchError(
            f"run {run.id} is still running{where}; stop it first (Ctrl-C, or kill its "
            "process), then remove it"
        )
    return runs


def remove_runs(store: Store, runs: list[RunRecord]) -> list[Removal | None]:
    """Delete the runs' rows (epochs with them), then their checkpoint folders (None for a run
    that has none). Rows first: a folder left behind is then one `biobench gc` finds."""
    store.delete_runs([run.id for run in runs])
    return [remove_folder(Path(run.checkpoint)) if run.checkpoint else None for run in runs]


def orphan_folders(store: Store, checkpoint_dir: Path) -> list[Path]:
    """Run folders under `checkpoint_dir` that no run in `store` points at, by name."""
    base = checkpoint_dir.expanduser().resolve()
    if not base.is_dir():
        return []
    pointed = {Path(run.checkpoint).resolve() for run in store.runs() if run.checkpoint}
    return sorted(
        folder
        for folder in base.iterdir()
        if RUN_FOLDER.fullmatch(folder.name)
        and folder.is_dir()
        and not folder.is_symlink()
        and folder not in pointed
    )


def remove_orphans(store: Store, folders: list[Path]) -> list[Removal]:
    """Delete these folders, but none that a run points at now: a run may have begun in one
    since `orphan_folders` looked (while the user read the prompt)."""
    pointed = {Path(run.checkpoint).resolve() for run in store.runs() if run.checkpoint}
    return [remove_folder(folder) for folder in folders if folder not in pointed]


def size_text(size: int) -> str:
    """Bytes as people read them: 120 B, 4.3 MB, 1.2 GB."""
    amount, unit = float(size), "B"
    for larger in ("kB", "MB", "GB", "TB"):
        if amount < 1000:
            break
        amount, unit = amount / 1000, larger
    return f"{size} B" if unit == "B" else f"{amount:.1f} {unit}"
