"""Per-epoch checkpoints: everything needed to continue a run exactly where it stopped.

One file per run folder, `last.pt`, replaced atomically at the end of every epoch (written
beside it, fsynced, renamed), holding the learner's full state (network, feedback matrices,
inverses, every optimiser, the alternating phase), the RNG states of torch (CPU and CUDA),
numpy and Python, and the data-order generator. It holds only tensors, numbers, strings,
lists and dicts, so it loads with `torch.load(weights_only=True)`: opening a checkpoint never
unpickles arbitrary objects.
"""

from __future__ import annotations

import pickle
import random
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from biobench.errors import BiobenchError
from biobench.files import atomic_write
from biobench.learners.base import Learner
from biobench.spec import canonical_hash
from biobench.store.records import RunRecord

FORMAT = 1
FILE = "last.pt"
KEYS = ("epoch", "spec_hash", "learner", "rng", "generator")  # run_id: from biobench 0.2 on
# What a finished run keeps (`run --keep-checkpoint`): its last checkpoint, or nothing. A stopped,
# failed or diverged run always keeps its own, to resume from or to look into.
KEEP = ("last", "none")
DEFAULT_KEEP = "none"  # a finished run is never resumed, and an ImageNet checkpoint is GBs


def _rng_state() -> dict[str, Any]:
    key, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "key": key,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached": cached,
        },
        "python": {"version": version, "state": list(state), "gauss_next": gauss_next},
    }


def _restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(
        (n["key"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


HELD = (signal.SIGINT, signal.SIGTERM)


def save(
    folder: Path,
    *,
    run_id: int,
    epoch: int,
    spec_hash: str,
    learner: Learner,
    generator: torch.Generator,
) -> None:
    payload = {
        "format": FORMAT,
        "run_id": run_id,  # a checkpoint names its run: a copied one is refused on resume
        "epoch": epoch,
        "spec_hash": spec_hash,
        "learner": learner.state_dict(),
        "rng": _rng_state(),
        "generator": generator.get_state(),
    }
    # A crash or a full disk leaves the previous checkpoint whole; Ctrl-C or SIGTERM waits for
    # the write to end (else torch's zip writer fails on it as an internal error, not an
    # interrupt, and the run is marked failed).
    with interrupts_held():
        atomic_write(
            folder / FILE,
            lambda handle: _write(payload, handle),
            fix="free some space or pass --checkpoint-dir on another disk",
        )


def _write(payload: dict[str, Any], handle: BinaryIO) -> None:
    """torch.save, raising the OSError of a failed write (a full disk) as itself: torch's zip
    writer turns it into a RuntimeError ("unexpected pos ..."), which would end the run as an
    internal error."""
    try:
        torch.save(payload, handle)
    except RuntimeError as error:
        cause = error.__context__
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__context__
        if cause is None:
            raise
        raise cause from None


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs, then deliver them to the handlers that
    were in place (Ctrl-C's KeyboardInterrupt, the runner's SIGTERM-as-interrupt)."""
    held: list[int] = []
    try:
        previous = {s: signal.signal(s, lambda n, _: held.append(n)) for s in HELD}
    except ValueError:  # not the main thread: signals are the main thread's
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(held):
            signal.raise_signal(number)


def discard(folder: Path) -> None:
    """Delete a finished run's checkpoint, then its folder if nothing else is left in it.

    The run's status is recorded by then, so a file that cannot be removed costs disk space
    only (`biobench rm` can still remove it); it does not fail the run."""
    with suppress(OSError):
        (folder / FILE).unlink(missing_ok=True)
        folder.rmdir()


def load(folder: Path, device: torch.device) -> dict[str, Any] | None:
    """The last checkpoint in `folder`, or None when the run never finished an epoch."""
    target = folder / FILE
    if not target.exists():
        return None
    try:
        payload = torch.load(target, map_location=device, weights_only=True)
    except pickle.UnpicklingError:  # torch's text advises weights_only=False: never
        raise BiobenchError(
            f"checkpoint {target} is unreadable (not only tensors, numbers, strings, lists and "
            "dicts, and biobench unpickles nothing else); the run cannot be resumed"
        ) from None
    except Exception as error:  # a truncated or foreign file: say which and stop
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BiobenchError(
            f"checkpoint {target} is unreadable ({first}); the run cannot be resumed"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BiobenchError(f"{target} is not a biobench checkpoint of format {FORMAT}")
    missing = [key for key in KEYS if key not in payload]
    if missing:
        raise BiobenchError(
            f"checkpoint {target} lacks {', '.join(missing)}; it cannot be resumed from"
        )
    try:
        _check_fields(payload)
        _check_like(payload["rng"], _rng_template(), "rng")
        _check_like(payload["generator"], torch.Generator().get_state(), "generator")
    except ValueError as problem:
        raise BiobenchError(
            f"checkpoint {target} is malformed: {problem}; it cannot be resumed from"
        ) from None
    return payload


def _check_fields(payload: dict[str, Any]) -> None:
    epoch, owner = payload["epoch"], payload.get("run_id")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 < epoch < 2**31:
        raise ValueError(f"epoch is {_kind(epoch)}, not an epoch number")
    if owner is not None and (isinstance(owner, bool) or not isinstance(owner, int)):
        raise ValueError(f"run_id is {_kind(owner)}, not a run id")
    if not isinstance(payload["spec_hash"], str):
        raise ValueError(f"spec_hash is {_kind(payload['spec_hash'])}, not a string")


def _kind(value: Any) -> str:
    """A short description of `value`, never its (possibly huge or hostile) content."""
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, int | float | bool) or value is None:
        return repr(value)
    return f"a {type(value).__name__}"


class _NumberOrNone:
    """Stands for a value that is a number or None in a fresh state."""


def _rng_template() -> dict[str, Any]:
    """The layout of a checkpoint's "rng": this process's, whose cached Gaussian may be
    absent where the saved one's is not, or the other way round."""
    template = _rng_state()
    template["python"]["gauss_next"] = _NumberOrNone()
    return template


class _ParamShapes(dict):
    """Stands for an optimiser's per-parameter state in a fresh learner's state (empty before
    its first step): parameter index -> the parameter's shape."""


def _check_like(saved: Any, fresh: Any, where: str) -> None:
    """Raise ValueError naming `where` unless `saved` is laid out as `fresh` (the same state
    made anew for this run): mappings with its keys, lists of its length, tensors of its shape
    and dtype, numbers for numbers; an optimiser's per-parameter state holds tensors of its
    parameters' shapes."""
    if isinstance(fresh, _ParamShapes):
        _check_optimizer_state(saved, fresh, where)
    elif isinstance(fresh, _NumberOrNone):
        if saved is not None and (isinstance(saved, bool) or not isinstance(saved, int | float)):
            raise ValueError(f"{where} is {_kind(saved)}, not a number or None")
    elif isinstance(fresh, torch.Tensor):
        if (
            not isinstance(saved, torch.Tensor)
            or saved.shape != fresh.shape
            or saved.dtype != fresh.dtype
        ):
            raise ValueError(f"{where} is {_kind(saved)}, not {_kind(fresh)}")
    elif isinstance(fresh, dict):
        if not isinstance(saved, dict) or not set(fresh) <= set(saved):
            keys = ", ".join(map(str, fresh))
            raise ValueError(f"{where} is {_kind(saved)}, not a mapping of {keys}")
        for key, value in fresh.items():
            if where == "rng" and key == "cuda":  # as many as the saving machine had GPUs
                _check_cuda_states(saved[key])
            else:
                _check_like(saved[key], value, f"{where}.{key}")
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple) or len(saved) != len(fresh):
            raise ValueError(f"{where} is {_kind(saved)}, not a list of {len(fresh)}")
        for i, (mine, theirs) in enumerate(zip(saved, fresh, strict=True)):
            _check_like(mine, theirs, f"{where}[{i}]")
    elif isinstance(fresh, bool):
        if not isinstance(saved, bool):
            raise ValueError(f"{where} is {_kind(saved)}, not true or false")
    elif isinstance(fresh, int | float):
        if isinstance(saved, bool) or not isinstance(saved, int | float):
            raise ValueError(f"{where} is {_kind(saved)}, not a number")
    elif isinstance(fresh, str) and not isinstance(saved, str):
        raise ValueError(f"{where} is {_kind(saved)}, not a string")


def _check_cuda_states(saved: Any) -> None:
    if not isinstance(saved, list) or not all(
        isinstance(s, torch.Tensor) and s.dtype == torch.uint8 and s.dim() == 1 for s in saved
    ):
        raise ValueError(f"rng.cuda is {_kind(saved)}, not a list of CUDA generator states")


def _check_optimizer_state(saved: Any, shapes: _ParamShapes, where: str) -> None:
    if not isinstance(saved, dict):
        raise ValueError(f"{where} is {_kind(saved)}, not a mapping")
    for index, values in saved.items():
        if isinstance(index, bool) or index not in shapes or not isinstance(values, dict):
            raise ValueError(f"{where} holds {_kind(index)}, not one of its parameters")
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.dim() and value.shape != shapes[index]:
                raise ValueError(
                    f"{where}[{index}].{name} is {_kind(value)}, not of its parameter's shape "
                    f"{tuple(shapes[index])}"
                )


def check_belongs(payload: dict[str, Any], folder: Path, run: RunRecord) -> None:
    """Refuse a checkpoint that is not this run's last one: another run's (copied in), another
    spec's, or one whose epoch does not meet the run's epoch rows."""
    owner = payload.get("run_id")  # absent in checkpoints written before biobench 0.2
    if owner is not None and owner != run.id:
        raise BiobenchError(
            f"checkpoint in {folder} is run {owner}'s, not run {run.id}'s; not resuming"
        )
    # Runs recorded before schema 0003 hashed their spec with the preset under "benchmark".
    legacy = {("benchmark" if key == "preset" else key): v for key, v in run.spec.items()}
    if payload.get("spec_hash") not in (run.spec_hash, canonical_hash(legacy)):
        raise BiobenchError(f"checkpoint in {folder} belongs to another spec; not resuming")
    epoch = int(payload["epoch"])
    # Rows are written before each checkpoint, so a run killed between the two has one more.
    if not epoch <= run.epochs_done <= epoch + 1:
        raise BiobenchError(
            f"checkpoint in {folder} is at epoch {epoch} but run {run.id} has "
            f"{run.epochs_done} epoch row(s); it is not this run's checkpoint, not resuming"
        )


def _learner_state(learner: Learner) -> dict[str, Any]:
    """The state a checkpoint of this learner holds, laid out as a fresh one holds it."""
    state = learner.state_dict()
    saved = state.get("optimizers")  # a plugin's learner may keep its state otherwise
    for key, optimizer in learner.optimizers().items():
        if isinstance(saved, dict) and isinstance(saved.get(key), dict):
            params = [p for group in optimizer.param_groups for p in group["params"]]
            saved[key]["state"] = _ParamShapes((i, p.shape) for i, p in enumerate(params))
    return state


def restore(
    payload: dict[str, Any], learner: Learner, generator: torch.Generator, *, folder: Path
) -> int:
    """Put the learner, the RNGs and the data order back; returns the last finished epoch.
    A checkpoint that does not fit this run's learner is refused before anything is put back."""
    fresh = _learner_state(learner)
    try:
        _check_like(payload["learner"], fresh, "learner")
        learner.load_state_dict(payload["learner"])
        _restore_rng(payload["rng"])
        generator.set_state(payload["generator"].cpu())
    except Exception as error:  # what a learner's own load_state_dict or a RNG refuses
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BiobenchError(
            f"checkpoint in {folder} does not fit this run ({first.rstrip(':')}); it cannot "
            "be resumed from"
        ) from None
    return int(payload["epoch"])
