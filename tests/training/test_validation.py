"""--set val_split=N: a validation split held out of the training set, the same for every run,
evaluated every epoch into val_top1/val_top5/val_loss, never trained on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biobench.data.base import Dataset, TensorSplit
from biobench.errors import DataError
from biobench.spec import resolve
from biobench.store import Store
from biobench.training.runner import execute


def dataset(n: int = 50) -> Dataset:
    x = torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1)
    split = TensorSplit(x, torch.arange(n) % 3)
    return Dataset("toy", split, TensorSplit(x[:5], torch.arange(5) % 3), 3, "made here")


def test_the_held_out_samples_are_fixed_disjoint_and_in_order() -> None:
    held = dataset().hold_out(10)
    again = dataset().hold_out(10)
    train, val = held.train.x.flatten().tolist(), held.val.x.flatten().tolist()
    assert len(val) == 10 and len(train) == 40
    assert sorted(train + val) == list(range(50))  # every sample once: none trained on twice
    assert val == sorted(val) and train == sorted(train)
    assert val == again.val.x.flatten().tolist()  # the same for every run
    assert val != list(range(40, 50))  # a permutation, not the tail
    assert held.val.y.tolist() == [int(v) % 3 for v in val]  # labels stay with their images


@pytest.mark.parametrize("n", [0, 50, 51])
def test_a_hold_out_that_leaves_nothing_is_refused(n: int) -> None:
    with pytest.raises(DataError, match="hold out between 1 and 49"):
        dataset().hold_out(n)


def test_a_run_with_a_validation_split_records_it_every_epoch(sqlite_url: str) -> None:
    spec = resolve(
        algorithm="bp", architecture="fc", dataset="digits", epochs=2,
        overrides=["val_split=300"],
    )  # fmt: skip
    assert spec.spec_hash() != resolve(algorithm="bp", architecture="fc", dataset="digits",
                                       epochs=2).spec_hash()  # fmt: skip
    store = Store(sqlite_url)
    run_id = execute(spec, store=store, device=torch.device("cpu"), data_dir=Path("unused"))
    rows = store.epochs([run_id])
    assert all(0 <= row["val_top1"] <= 100 and row["val_loss"] > 0 for row in rows)
    assert all(row["val_top1"] != row["test_top1"] for row in rows)
    run = store.run(run_id)
    assert run.environment["val_size"] == 300
    assert run.environment["train_size"] == 1437 - 300
