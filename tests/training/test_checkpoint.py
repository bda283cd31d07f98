"""Gaps a mutation run over training/checkpoint.py showed (tools/mutation.sh): a checkpoint
saved and restored puts back every random stream and the data order, so a resumed run draws
what the uninterrupted run would; a broken or foreign file is named, never half-used; a finished
run's folder goes only when nothing else is in it.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from biobench.errors import BiobenchError
from biobench.learners.base import Learner
from biobench.spec import canonical_hash, resolve
from biobench.store import RunStatus, Store
from biobench.training import checkpoint
from biobench.training.runner import _sigterm_as_interrupt
from support.faults import disk_full_in_our_write, disk_full_in_torchs_zip_writer
from support.records import run_record


class Tiny(Learner):
    def __init__(self, seed: int) -> None:
        torch.manual_seed(seed)
        super().__init__(nn.Sequential(nn.Linear(3, 2)), {})

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        return {}


def draws(generator: torch.Generator) -> tuple:
    """One number from every random stream a run uses, and the next data order."""
    return (
        torch.rand(3).tolist(),
        np.random.rand(2).tolist(),
        np.random.randn(),  # numpy's cached Gaussian is part of its state
        random.random(),
        random.gauss(0, 1),  # so is Python's
        torch.randperm(10, generator=generator).tolist(),
    )


def test_restore_puts_back_the_weights_every_random_stream_and_the_data_order(
    tmp_path: Path,
) -> None:
    learner, generator = Tiny(seed=0), torch.Generator().manual_seed(5)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn(), random.gauss(0, 1)  # leave a Gaussian cached in both
    generator.manual_seed(4), torch.randperm(10, generator=generator)
    checkpoint.save(
        tmp_path, run_id=7, epoch=3, spec_hash="h", learner=learner, generator=generator
    )
    expected = draws(generator)
    weights = [p.detach().clone() for p in learner.net.parameters()]

    resumed, other = Tiny(seed=9), torch.Generator().manual_seed(0)
    torch.manual_seed(11), np.random.seed(12), random.seed(13)
    payload = checkpoint.load(tmp_path, torch.device("cpu"))
    assert payload is not None and (payload["run_id"], payload["epoch"]) == (7, 3)
    assert payload["spec_hash"] == "h"
    assert checkpoint.restore(payload, resumed, other, folder=tmp_path) == 3
    assert draws(other) == expected
    for a, b in zip(weights, resumed.net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_run_that_never_finished_an_epoch_has_no_checkpoint(tmp_path: Path) -> None:
    assert checkpoint.load(tmp_path, torch.device("cpu")) is None


def test_an_unreadable_checkpoint_is_named_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / checkpoint.FILE
    target.write_bytes(b"")  # a disk that filled up before the first checkpoint was whole
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"checkpoint {target} is unreadable (EOFError); the run cannot be resumed"
    )
    target.write_bytes(b"not a checkpoint")  # torch's message advises weights_only=False
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"checkpoint {target} is unreadable (not only tensors, numbers, strings, lists and "
        "dicts, and biobench unpickles nothing else); the run cannot be resumed"
    )
    target.write_bytes(b"PK\x03\x04 a zip archive cut short")  # torch's message: one line
    with pytest.raises(Exception) as torchs:
        torch.load(target, weights_only=True)
    (first, *_) = str(torchs.value).strip().splitlines()
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"checkpoint {target} is unreadable ({first}); the run cannot be resumed"
    )


@pytest.mark.parametrize("payload", [[1, 2], {"epoch": 1}, {"format": 2, "epoch": 1}])
def test_a_file_of_another_format_is_refused(tmp_path: Path, payload: object) -> None:
    torch.save(payload, tmp_path / checkpoint.FILE)
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"{tmp_path / checkpoint.FILE} is not a biobench checkpoint of format 1"
    )


def test_a_checkpoint_lacking_keys_names_each(tmp_path: Path) -> None:
    torch.save({"format": 1, "epoch": 2, "rng": {}}, tmp_path / checkpoint.FILE)
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"checkpoint {tmp_path / checkpoint.FILE} lacks spec_hash, learner, generator; it "
        "cannot be resumed from"
    )


def test_discard_removes_the_checkpoint_and_its_folder_but_no_other_file(
    tmp_path: Path,
) -> None:
    alone, shared = tmp_path / "alone", tmp_path / "shared"
    for folder in (alone, shared):
        folder.mkdir()
        (folder / checkpoint.FILE).write_bytes(b"x")
    (shared / "notes.txt").write_text("mine")
    checkpoint.discard(alone)
    checkpoint.discard(shared)
    checkpoint.discard(tmp_path / "never-made")  # nothing to do, no error
    emptied = tmp_path / "emptied"  # its checkpoint already removed (`biobench rm`, by hand)
    emptied.mkdir()
    checkpoint.discard(emptied)
    assert not alone.exists() and not emptied.exists()
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("disk_full", [disk_full_in_our_write, disk_full_in_torchs_zip_writer])
def test_a_full_disk_keeps_the_previous_checkpoint_and_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, disk_full
) -> None:
    learner, generator = Tiny(seed=0), torch.Generator().manual_seed(5)
    save = {"run_id": 7, "spec_hash": "h", "learner": learner, "generator": generator}
    checkpoint.save(tmp_path, epoch=3, **save)
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(BiobenchError) as caught:
        checkpoint.save(tmp_path, epoch=4, **save)
    assert str(caught.value) == (
        f"cannot write {tmp_path / checkpoint.FILE}: No space left on device; free some space "
        "or pass --checkpoint-dir on another disk"
    )
    monkeypatch.undo()
    payload = checkpoint.load(tmp_path, torch.device("cpu"))
    assert payload is not None and payload["epoch"] == 3
    assert [p.name for p in tmp_path.iterdir()] == [checkpoint.FILE]


def test_a_checkpoint_of_another_run_or_spec_is_refused_naming_both(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = Store(sqlite_url)
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic")
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    store.write_epoch(run_id, 1, {"test_top1": 50.0})
    run = store.run(run_id)
    payload = {"run_id": run_id, "spec_hash": run.spec_hash, "epoch": 1}
    checkpoint.check_belongs(payload, tmp_path, run)
    with pytest.raises(BiobenchError) as caught:
        checkpoint.check_belongs({**payload, "run_id": run_id + 1}, tmp_path, run)
    assert str(caught.value) == (
        f"checkpoint in {tmp_path} is run {run_id + 1}'s, not run {run_id}'s; not resuming"
    )
    with pytest.raises(BiobenchError) as caught:
        checkpoint.check_belongs({**payload, "spec_hash": "0" * 64}, tmp_path, run)
    assert str(caught.value) == f"checkpoint in {tmp_path} belongs to another spec; not resuming"


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_checkpoint_write_waits_for_it_and_leaves_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, number: int
) -> None:
    # Ctrl-C or `kill` while torch writes the file used to break its zip writer: the run ended
    # as "internal error: RuntimeError: [enforce fail at inline_container.cc]", marked failed.
    write = torch.save

    def interrupted(payload: object, handle: BinaryIO) -> None:
        os.kill(os.getpid(), number)  # arrives while the file is being written
        write(payload, handle)

    monkeypatch.setattr(torch, "save", interrupted)
    learner = Tiny(seed=0)
    with _sigterm_as_interrupt(), pytest.raises(KeyboardInterrupt):
        checkpoint.save(
            tmp_path, run_id=7, epoch=3, spec_hash="h", learner=learner,
            generator=torch.Generator(),
        )  # fmt: skip
    monkeypatch.undo()
    payload = checkpoint.load(tmp_path, torch.device("cpu"))
    assert payload is not None and payload["epoch"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back


def _bp_job():
    from biobench.training.runner import prepare

    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", batch_size=8)
    return prepare(spec, torch.device("cpu"), Path("unused"), False)


@pytest.fixture
def saved_payload(tmp_path: Path) -> dict:
    """A checkpoint of a BP learner after one step (its Adam state filled), as loaded."""
    job = _bp_job()
    x, y = next(iter(job.data.train.batches(8)))
    job.learner.train_step(x, y)
    checkpoint.save(
        tmp_path, run_id=1, epoch=1, spec_hash="h", learner=job.learner, generator=job.generator
    )
    return torch.load(tmp_path / checkpoint.FILE, weights_only=True)


def _set(payload: dict, path: str, value: object) -> None:
    *parents, last = path.split("/")
    for key in parents:
        payload = payload[int(key) if key.isdigit() else key]
    if value is KeyError:
        del payload[last]
    else:
        payload[int(last) if last.isdigit() else last] = value


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        ("epoch", "3", "epoch is a str, not an epoch number"),
        ("epoch", True, "epoch is True, not an epoch number"),
        ("epoch", 0, "epoch is 0, not an epoch number"),
        ("run_id", 1.5, "run_id is 1.5, not a run id"),
        ("spec_hash", None, "spec_hash is None, not a string"),
        ("rng/numpy", KeyError, "rng is a dict, not a mapping of torch, cuda, numpy, python"),
        (
            "rng/torch",
            torch.zeros(5056),
            "rng.torch is a float32 tensor of shape (5056,), not a uint8 tensor of shape (5056,)",
        ),
        ("rng/cuda", [torch.zeros(3)], "rng.cuda is a list, not a list of CUDA generator states"),
        ("rng/python/state", [1, 2, 3], "rng.python.state is a list, not a list of 625"),
        ("rng/python/state/0", "x", "rng.python.state[0] is a str, not a number"),
        ("rng/numpy/pos", None, "rng.numpy.pos is None, not a number"),
        ("rng/python/gauss_next", "x", "rng.python.gauss_next is a str, not a number or None"),
        ("generator", "x", "generator is a str, not a uint8 tensor of shape (5056,)"),
    ],
)
def test_a_malformed_checkpoint_is_refused_in_one_line_on_load(
    tmp_path: Path, saved_payload: dict, path: str, value: object, problem: str
) -> None:
    _set(saved_payload, path, value)
    torch.save(saved_payload, tmp_path / checkpoint.FILE)
    with pytest.raises(BiobenchError) as caught:
        checkpoint.load(tmp_path, torch.device("cpu"))
    assert str(caught.value) == (
        f"checkpoint {tmp_path / checkpoint.FILE} is malformed: {problem}; it cannot be resumed "
        "from"
    )


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            "learner/net/layers.0.op.weight",
            torch.zeros(256, 63),
            "learner.net.layers.0.op.weight is a float32 tensor of shape (256, 63), not a "
            "float32 tensor of shape (256, 64)",
        ),
        (
            "learner/net/layers.5.op.bias",
            torch.zeros(10, dtype=torch.float64),
            "learner.net.layers.5.op.bias is a float64 tensor of shape (10,), not a float32 "
            "tensor of shape (10,)",
        ),
        ("learner/net", KeyError, "learner is a dict, not a mapping of net, optimizers"),
        (
            "learner/optimizers/forward/state/0/exp_avg",
            torch.zeros(3),
            "learner.optimizers.forward.state[0].exp_avg is a float32 tensor of shape (3,), not "
            "of its parameter's shape (256, 64)",
        ),
        (
            "learner/optimizers/forward/state/99",
            {},
            "learner.optimizers.forward.state holds 99, not one of its parameters",
        ),
        (
            "learner/optimizers/forward/param_groups",
            [],
            "learner.optimizers.forward.param_groups is a list, not a list of 1",
        ),
        (
            "learner/optimizers/forward/param_groups/0/lr",
            "fast",
            "learner.optimizers.forward.param_groups[0].lr is a str, not a number",
        ),
        # Laid out right, refused by what it is restored into.
        ("rng/python/state/624", 1000, "invalid state"),
        ("rng/python/state/0", -1, "can't convert negative value to unsigned int"),
        (
            "rng/numpy/key",
            "PCG64",
            "set_state can only be used with legacy MT19937 state instances.",
        ),
    ],
)
def test_a_checkpoint_that_does_not_fit_the_run_is_refused_in_one_line_on_restore(
    tmp_path: Path, saved_payload: dict, path: str, value: object, problem: str
) -> None:
    _set(saved_payload, path, value)
    torch.save(saved_payload, tmp_path / checkpoint.FILE)
    payload = checkpoint.load(tmp_path, torch.device("cpu"))
    job = _bp_job()
    with pytest.raises(BiobenchError) as caught:
        checkpoint.restore(payload, job.learner, job.generator, folder=tmp_path)
    assert str(caught.value) == (
        f"checkpoint in {tmp_path} does not fit this run ({problem}); it cannot be resumed from"
    )


@pytest.mark.parametrize("saved_gauss", [None, 0.5])
@pytest.mark.parametrize("own_gauss", [False, True])
def test_the_untouched_checkpoint_restores(
    tmp_path: Path, saved_payload: dict, saved_gauss: float | None, own_gauss: bool
) -> None:
    # Python's cached Gaussian is there or not, in the file and in this process alike.
    saved_payload["rng"]["python"]["gauss_next"] = saved_gauss
    random.seed(0)
    if own_gauss:
        random.gauss(0, 1)
    torch.save(saved_payload, tmp_path / checkpoint.FILE)
    payload = checkpoint.load(tmp_path, torch.device("cpu"))
    job = _bp_job()
    assert checkpoint.restore(payload, job.learner, job.generator, folder=tmp_path) == 1


def test_resume_accepts_the_runs_checkpoint_and_only_it(tmp_path: Path) -> None:
    spec = resolve(preset="mnist-fc-bp")
    run = run_record(7, spec, status=RunStatus.interrupted, epochs_done=3)
    payload = {"run_id": 7, "spec_hash": spec.spec_hash(), "epoch": 3}
    checkpoint.check_belongs(payload, tmp_path, run)
    # Rows are written before the checkpoint: one row more than the checkpoint's epoch is the
    # run killed between the two, still resumable; two more, or one fewer, is not its checkpoint.
    checkpoint.check_belongs({**payload, "epoch": 2}, tmp_path, run)
    for epoch in (1, 4):
        with pytest.raises(BiobenchError, match=f"is at epoch {epoch} but run 7 has 3 epoch"):
            checkpoint.check_belongs({**payload, "epoch": epoch}, tmp_path, run)
    # Written before checkpoints named their run: no run_id, accepted by its spec and epoch.
    checkpoint.check_belongs({k: v for k, v in payload.items() if k != "run_id"}, tmp_path, run)
    with pytest.raises(BiobenchError, match="is run 8's, not run 7's; not resuming"):
        checkpoint.check_belongs({**payload, "run_id": 8}, tmp_path, run)
    other = resolve(preset="mnist-fc-bp", seed=1).spec_hash()
    with pytest.raises(BiobenchError, match="belongs to another spec; not resuming"):
        checkpoint.check_belongs({**payload, "spec_hash": other}, tmp_path, run)


def test_resume_accepts_a_checkpoint_hashed_before_presets_were_named_so(tmp_path: Path) -> None:
    # Runs recorded before schema 0003 hashed their spec with the preset under "benchmark".
    spec = resolve(preset="mnist-fc-bp")
    legacy = {("benchmark" if key == "preset" else key): v for key, v in spec.to_dict().items()}
    payload = {"run_id": 7, "spec_hash": canonical_hash(legacy), "epoch": 3}
    checkpoint.check_belongs(
        payload, tmp_path, run_record(7, spec, status=RunStatus.interrupted, epochs_done=3)
    )
