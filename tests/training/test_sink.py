"""Gaps a mutation run over training/sink.py showed (tools/mutation.sh): what happens to a run's
epoch rows and final status when the database goes away, on a store that fails on demand (no
server needed), and what `biobench import` accepts from the spool file left behind.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biobench.errors import BiobenchError, LeaseLost, StoreError
from biobench.spec import resolve
from biobench.store import RunGone, RunStatus, Store
from biobench.store.models import METRIC_COLUMNS
from biobench.training.sink import SPOOL, EpochSink, import_spool, read_spool
from support.store import ENDED

URL = "postgresql://u:***@db.example/results"


class FlakyStore:
    """Records what reaches the database; while `up` is False every write fails to connect."""

    display_url = URL

    def __init__(self, up: bool = True, lease_lost: bool = False) -> None:
        self.up, self.lease_lost = up, lease_lost
        self.rows: list[tuple[int, int, dict, str | None]] = []
        self.statuses: list[tuple[int, str, str | None, str | None]] = []

    def _check(self) -> None:
        if self.lease_lost:
            raise LeaseLost("run 7 was taken over by another process")
        if not self.up:
            raise StoreError(f"cannot reach database {URL}: connection refused")

    def write_epoch(self, run_id: int, epoch: int, row: dict, *, owner: str | None = None) -> None:
        self._check()
        self.rows.append((run_id, epoch, dict(row), owner))

    def set_status(
        self, run_id: int, status: Any, error: str | None = None, *, owner: str | None = None
    ) -> None:
        self._check()
        self.statuses.append((run_id, str(status), error, owner))


def sink_for(store: FlakyStore, tmp_path: Path) -> EpochSink:
    return EpochSink(store, 7, tmp_path / "run" / SPOOL, "hash", "owner")  # type: ignore[arg-type]


def row(top1: float) -> dict[str, float]:
    return {"test_top1": top1, "train_top1": top1 / 2, "test_loss": 1.5}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sink's waits on a fake clock: returns the pauses it took, in seconds."""
    now = [0.0]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(
        "biobench.retry.time", SimpleNamespace(monotonic=lambda: now[0], sleep=sleep)
    )
    return pauses


def test_rows_go_to_the_database_at_once_while_it_is_up(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    store = FlakyStore()
    sink = sink_for(store, tmp_path)
    sink.write(1, row(50.0))
    sink.write(2, row(40.0))
    assert store.rows == [(7, 1, row(50.0), "owner"), (7, 2, row(40.0), "owner")]
    sink.close(RunStatus.finished)
    assert store.statuses == [(7, "finished", None, "owner")]
    assert not sink.spool.exists() and capsys.readouterr().err == ""


def test_rows_kept_while_the_database_is_down_arrive_in_order_and_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    store = FlakyStore(up=False)
    sink = sink_for(store, tmp_path)
    sink.write(1, {**row(50.0), "test_loss": math.nan})
    sink.write(2, {**row(40.0), "test_loss": math.inf})
    # The spool file holds every pending row (NaN and inf spelt as JSON can), no status yet.
    assert json.loads(sink.spool.read_text()) == {
        "run_id": 7,
        "spec_hash": "hash",
        "epochs": {
            "1": {"test_top1": 50.0, "train_top1": 25.0, "test_loss": "nan"},
            "2": {"test_top1": 40.0, "train_top1": 20.0, "test_loss": "inf"},
        },
        "status": None,
        "error": None,
    }
    err = capsys.readouterr().err
    assert err.count("warning:") == 1  # said once, not once per epoch
    assert err.startswith(f"warning: cannot reach database {URL}: connection refused; ")
    assert f"epoch rows are kept in {sink.spool} and retried" in err
    store.up = True
    sink.write(3, row(30.0))
    assert [(epoch, r["test_top1"]) for _, epoch, r, _ in store.rows] == [
        (1, 50.0),
        (2, 40.0),
        (3, 30.0),
    ]
    assert math.isnan(store.rows[0][2]["test_loss"]) and store.rows[1][2]["test_loss"] == math.inf
    sink.write(4, row(20.0))
    assert [epoch for _, epoch, _, _ in store.rows] == [1, 2, 3, 4]
    sink.close(RunStatus.finished)
    assert store.statuses == [(7, "finished", None, "owner")]
    assert not sink.spool.exists()


def test_a_lost_lease_stops_training_and_keeps_nothing(tmp_path: Path) -> None:
    sink = sink_for(FlakyStore(lease_lost=True), tmp_path)
    with pytest.raises(LeaseLost):
        sink.write(1, row(50.0))
    assert not sink.spool.exists()


def test_close_waits_the_configured_time_backing_off_from_one_to_fifteen_seconds(
    tmp_path: Path, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOBENCH_DB_WAIT", "60")
    sink = sink_for(FlakyStore(up=False), tmp_path)
    sink.write(1, row(50.0))
    with pytest.raises(BiobenchError):
        sink.close(RunStatus.finished)
    # A database back within a second is seen within a second; it is tried at least every
    # 15 s, and the wait ends at BIOBENCH_DB_WAIT, not before and not after.
    assert clock[0] == 1.0 and max(clock) == 15.0 and sum(clock) == 60.0
    assert clock == sorted(clock)


def test_close_delivers_rows_then_status_once_the_database_is_back(
    tmp_path: Path,
    clock: list[float],
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = FlakyStore(up=False)
    sink = sink_for(store, tmp_path)
    sink.write(1, row(50.0))

    def back_after_two_pauses(seconds: float) -> None:
        clock.append(seconds)
        store.up = len(clock) >= 2

    monkeypatch.setattr("biobench.retry.time.sleep", back_after_two_pauses)
    sink.close(RunStatus.failed, "boom")
    assert [epoch for _, epoch, _, _ in store.rows] == [1]
    assert store.statuses == [(7, "failed", "boom", "owner")]
    assert not sink.spool.exists()
    err = capsys.readouterr().err
    assert err.count("waiting up to 120 s for the database") == 1
    assert (
        f"{URL} to record the run's end (failed); Ctrl-C stops waiting and keeps the rows in "
        f"{sink.spool}\n"
    ) in err


def test_a_database_that_never_returns_leaves_rows_and_status_to_import(
    tmp_path: Path, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BIOBENCH_DB_WAIT", "3")
    store = FlakyStore(up=False)
    sink = sink_for(store, tmp_path)
    sink.write(1, row(50.0))
    sink.write(2, row(40.0))
    with pytest.raises(BiobenchError) as caught:
        sink.close(RunStatus.diverged, "train loss is nan")
    spool = sink.spool
    assert str(caught.value) == (
        f"the database {URL} stayed unreachable: 2 epoch row(s) and the run's final status "
        f"(diverged) are in {spool}; once it is back, run `biobench import {spool} --db URL`"
    )
    assert read_spool(spool) == (
        7,
        "hash",
        {1: row(50.0), 2: row(40.0)},
        "diverged",
        "train loss is nan",
    )
    assert store.rows == [] and store.statuses == []


metric = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**53), 2**53),
)


@settings(max_examples=40, deadline=None, database=None)
@given(
    st.dictionaries(
        st.integers(1, 2**31 - 1),
        st.dictionaries(st.sampled_from(METRIC_COLUMNS), metric, max_size=4),
        min_size=1,
        max_size=4,
    )
)
def test_every_row_spooled_reads_back_as_written(rows: dict[int, dict[str, Any]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        sink = EpochSink(FlakyStore(up=False), 3, Path(folder) / SPOOL, "h")  # type: ignore[arg-type]
        for epoch, metrics in rows.items():
            sink.write(epoch, metrics)
        run_id, spec_hash, read, status, error = read_spool(sink.spool)
    assert (run_id, spec_hash, status, error) == (3, "h", None, None)
    assert sorted(read) == sorted(rows)
    for epoch, metrics in rows.items():
        assert set(read[epoch]) == set(metrics)
        for key, value in metrics.items():
            got = read[epoch][key]
            if value is None:
                assert got is None
            elif math.isnan(value):
                assert math.isnan(got)
            else:
                assert got == float(value) and type(got) is float


# -- read_spool: what `biobench import` accepts --------------------------------------------------

GOOD = {"run_id": 7, "spec_hash": "hash", "epochs": {"1": {"test_top1": 5.0}}}


def spool_file(tmp_path: Path, content: Any) -> Path:
    path = tmp_path / SPOOL
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("run_id", 2**63 - 1),
        ("status", "finished"),
        ("status", "failed"),
        ("status", "interrupted"),
        ("status", "diverged"),
        ("status", None),
        ("error", "boom"),
        ("epochs", {"2147483647": {}}),
        ("epochs", {"1": {"test_top1": "NaN", "test_top5": "-INF", "test_loss": "Inf"}}),
        ("epochs", {"1": {"test_top1": 3, "test_loss": None}}),
        ("epochs", {"1": dict.fromkeys(METRIC_COLUMNS, 1.0)}),  # a whole epoch row
    ],
)
def test_a_valid_spool_file_is_read(tmp_path: Path, change: str, value: Any) -> None:
    content = {**GOOD, change: value}
    run_id, spec_hash, epochs, status, error = read_spool(spool_file(tmp_path, content))
    assert (run_id, spec_hash) == (content["run_id"], "hash")
    assert (status, error) == (content.get("status"), content.get("error"))
    expected = {int(k): v for k, v in content["epochs"].items()}
    assert epochs.keys() == expected.keys()
    for epoch, metrics in expected.items():
        for key, value in metrics.items():
            if isinstance(value, str):
                value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}[value.lower()]
            got = epochs[epoch][key]
            assert got is None if value is None else (got == value or math.isnan(got))
            assert value is None or type(got) is float


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"run_id": 0}, "run_id 0 is not a run id"),
        ({"run_id": 2**63}, f"run_id {2**63} is not a run id"),
        ({"run_id": True}, "run_id True is not a run id"),
        ({"run_id": "7"}, "run_id '7' is not a run id"),
        ({"spec_hash": 1}, "spec_hash is not a string"),
        ({"epochs": []}, "epochs is not a mapping of epoch -> metrics"),
        ({"epochs": {"0": {}}}, "epoch '0' is not an epoch number"),
        ({"epochs": {"2147483648": {}}}, "epoch '2147483648' is not an epoch number"),
        ({"epochs": {"-1": {}}}, "epoch '-1' is not an epoch number"),
        ({"epochs": {"\u0661": {}}}, "epoch '\u0661' is not an epoch number"),
        ({"epochs": {"1": {"test_top1": True}}}, "epoch 1 test_top1 is True, not a number"),
        ({"epochs": {"1": {"test_top1": "nanx"}}}, "epoch 1 test_top1 is 'nanx', not a number"),
        ({"epochs": {"1": {"accuracy": 1.0}}}, "epoch 1 must map metric names (train_top1, "),
        ({"status": "running"}, "status 'running' is not one of finished, failed, interrupted, "),
        ({"status": "lost"}, "status 'lost' is not one of"),
        ({"error": 3}, "error is not a string"),
        ({"spec_hash": None, "extra": 1}, "its keys must be run_id, spec_hash, epochs (and "),
    ],
)
def test_a_spool_file_out_of_shape_is_refused_whole(
    tmp_path: Path, change: dict, problem: str
) -> None:
    path = spool_file(tmp_path, {**GOOD, **change})
    with pytest.raises(BiobenchError) as caught:
        read_spool(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is not a valid spool file: {problem}")
    assert message.endswith("; nothing imported")


@pytest.mark.parametrize("missing", ["run_id", "spec_hash", "epochs"])
def test_a_spool_file_needs_its_run_hash_and_epochs(tmp_path: Path, missing: str) -> None:
    content = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(BiobenchError, match="its keys must be run_id, spec_hash, epochs"):
        read_spool(spool_file(tmp_path, content))


@pytest.mark.parametrize(
    ("content", "problem"),
    [("[1, 2]", "is not a valid spool file: its keys"), ("{", "is not a biobench spool file")],
)
def test_a_file_that_is_not_a_spool_is_refused(tmp_path: Path, content: str, problem: str) -> None:
    path = spool_file(tmp_path, content)
    with pytest.raises(BiobenchError, match=f"^{path} {problem}"):
        read_spool(path)


def test_an_unreadable_spool_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BiobenchError) as error:
        read_spool(tmp_path)
    assert str(error.value) == (
        f"cannot read {tmp_path}: it is a directory, not a regular file; pass the pending.json "
        "a run left"
    )


# -- import_spool: into which run, and when ------------------------------------------------------


def stored_run(sqlite_url: str, status: str | None) -> tuple[Store, int, str]:
    store = Store(sqlite_url)
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic")
    run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
    store.write_epoch(run_id, 1, {"test_top1": 60.0})
    if status is not None:
        store.set_status(run_id, status)
    return store, run_id, store.run(run_id).spec_hash


def test_import_writes_the_rows_and_the_final_status(sqlite_url: str, tmp_path: Path) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, "interrupted")
    content = {
        "run_id": run_id,
        "spec_hash": spec_hash,
        "epochs": {"3": {"test_top1": 30.0}, "2": {"test_loss": "nan"}},
        "status": "failed",
        "error": "boom",
    }
    assert import_spool(store, spool_file(tmp_path, content)) == (run_id, 2, "failed")
    rows = store.epochs([run_id])
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert math.isnan(rows[1]["test_loss"]) and rows[2]["test_top1"] == 30.0
    run = store.run(run_id)
    assert (run.status, run.error) == ("failed", "boom")


def test_import_into_a_run_of_another_spec_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, "interrupted")
    path = spool_file(tmp_path, {"run_id": run_id, "spec_hash": "f" * 64, "epochs": {}})
    with pytest.raises(BiobenchError) as caught:
        import_spool(store, path)
    assert str(caught.value) == (
        f"{path} belongs to another run {run_id} (spec ffffffffffff, the database's is "
        f"{spec_hash[:12]}); is this the right --db?"
    )
    assert store.run(run_id).status == "interrupted"


def test_import_waits_for_a_running_run_unless_the_file_has_its_last_word(
    sqlite_url: str, tmp_path: Path
) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, None)
    content = {"run_id": run_id, "spec_hash": spec_hash, "epochs": {"2": {"test_top1": 5.0}}}
    path = spool_file(tmp_path, content)
    with pytest.raises(BiobenchError) as caught:
        import_spool(store, path)
    assert str(caught.value) == (
        f"run {run_id} is still running (its process is alive); import {path} once it has stopped"
    )
    assert store.run(run_id).epochs_done == 1
    path = spool_file(tmp_path, {**content, "status": "finished", "error": None})
    assert import_spool(store, path) == (run_id, 1, "finished")
    assert store.run(run_id).status == "finished" and store.run(run_id).epochs_done == 2


def test_ctrl_c_while_waiting_spools_the_run_as_interrupted_by_the_user(
    tmp_path: Path, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("biobench.retry.time.sleep", interrupt)
    sink = sink_for(FlakyStore(up=False), tmp_path)
    sink.write(1, row(50.0))
    with pytest.raises(BiobenchError, match=r"final status \(interrupted\) are in"):
        sink.close(RunStatus.finished)
    assert read_spool(sink.spool)[3:] == (
        "interrupted",
        "interrupted by the user (Ctrl-C or SIGTERM)",
    )


LAYER = {"layer": 1, "name": "0.weight"}


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"test_top1": -0.5}, "epoch 2 test_top1 is -0.5, not an error from 0 to 100 %"),
        ({"train_top5": 100.5}, "epoch 2 train_top5 is 100.5, not an error from 0 to 100 %"),
        ({"val_top1": "nan"}, "epoch 2 val_top1 is nan, not an error from 0 to 100 %"),
        ({"test_top1": "inf"}, "epoch 2 test_top1 is inf, not an error from 0 to 100 %"),
        ({"test_loss": -1.0}, "epoch 2 test_loss is -1.0, not a loss of 0 or more"),
        ({"test_loss": "-inf"}, "epoch 2 test_loss is -inf, not a loss of 0 or more"),
        ({"step_ms": -3.0}, "epoch 2 step_ms is -3.0, not a measurement of 0 or more"),
        (
            {"peak_memory_mb": "nan"},
            "epoch 2 peak_memory_mb is nan, not a measurement of 0 or more",
        ),
        (
            {"layers": [{**LAYER, "update_angle": 181.0}]},
            "epoch 2 layer 1 update_angle is 181.0, not an angle from 0 to 180 degrees",
        ),
        (
            {"layers": [{**LAYER, "signal_cosine": -1.5}]},
            "epoch 2 layer 1 signal_cosine is -1.5, not a cosine from -1 to 1",
        ),
    ],
)
def test_import_refuses_values_training_cannot_have_written(
    sqlite_url: str, tmp_path: Path, row: dict, problem: str
) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, "interrupted")
    good = {"test_top1": 0.0, "test_loss": "inf", "step_ms": 0.0}  # the bounds: accepted
    content = {"run_id": run_id, "spec_hash": spec_hash, "status": "failed"}
    path = spool_file(tmp_path, {**content, "epochs": {"2": {**good, **row}}})
    with pytest.raises(BiobenchError) as caught:
        import_spool(store, path)
    assert str(caught.value) == f"{path} is not a valid spool file: {problem}; nothing imported"
    assert store.run(run_id).status == "interrupted" and store.run(run_id).epochs_done == 1
    layers = [{**LAYER, "update_angle": 180.0, "signal_cosine": -1.0, "weight_angle": 0.0}]
    path = spool_file(tmp_path, {**content, "epochs": {"2": {**good, "layers": layers}}})
    assert import_spool(store, path) == (run_id, 1, "failed")


def test_import_refuses_an_epoch_past_the_runs_count(sqlite_url: str, tmp_path: Path) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, "interrupted")
    epochs = store.run(run_id).epochs
    content = {"run_id": run_id, "spec_hash": spec_hash, "epochs": {str(epochs + 1): {}}}
    path = spool_file(tmp_path, content)
    with pytest.raises(BiobenchError) as caught:
        import_spool(store, path)
    assert str(caught.value) == (
        f"{path} is not a valid spool file: epoch {epochs + 1} is past the run's {epochs} "
        "epoch(s); nothing imported"
    )
    path = spool_file(tmp_path, {**content, "epochs": {str(epochs): {}}})
    assert import_spool(store, path) == (run_id, 1, None)


@pytest.mark.parametrize("status", ["finished", "diverged"])
def test_a_run_that_ended_for_good_is_never_rewritten(
    sqlite_url: str, tmp_path: Path, status: str
) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, status)
    content = {"run_id": run_id, "spec_hash": spec_hash, "epochs": {"1": {"test_top1": 99.0}}}
    path = spool_file(tmp_path, {**content, "status": "failed", "error": "boom"})
    with pytest.raises(BiobenchError) as caught:
        import_spool(store, path)
    assert str(caught.value) == (
        f"run {run_id} has {status}: its rows and status are final, and {path} would rewrite "
        "them; nothing imported"
    )
    run = store.run(run_id)
    assert (run.status, run.error, run.best_test_top1) == (status, None, 60.0)


@pytest.mark.parametrize(
    ("keep", "status", "left"),
    [
        ("none", "finished", None),  # the run's folder goes with its checkpoint
        ("none", "interrupted", ["last.pt"]),  # kept to resume from
        ("last", "finished", ["last.pt"]),
    ],
)
def test_import_deletes_the_runs_spool_and_keeps_the_checkpoint_as_asked(
    sqlite_url: str, tmp_path: Path, keep: str, status: str, left: list[str] | None
) -> None:
    store = Store(sqlite_url)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "last.pt").write_bytes(b"a checkpoint")
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic")
    run_id = store.create_run(
        **spec.run_fields(), device="cpu", environment={"keep_checkpoint": keep},
        checkpoint=str(folder),
    )  # fmt: skip
    store.set_status(run_id, "failed")  # its process gone, the database back
    content = {"run_id": run_id, "spec_hash": spec.spec_hash(), "status": status}
    path = spool_file(folder, {**content, "epochs": {"1": {"test_top1": 50.0}}})
    assert import_spool(store, path) == (run_id, 1, status)
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == left


def test_a_spool_elsewhere_than_the_runs_folder_is_left_alone(
    sqlite_url: str, tmp_path: Path
) -> None:
    store, run_id, spec_hash = stored_run(sqlite_url, "interrupted")
    content = {"run_id": run_id, "spec_hash": spec_hash, "epochs": {}, "status": "finished"}
    path = spool_file(tmp_path, content)
    import_spool(store, path)
    assert path.exists()


def test_a_layer_row_may_leave_out_a_measure(tmp_path: Path) -> None:
    # It used to be a KeyError (an internal error) on import.
    content = {**GOOD, "epochs": {"1": {"layers": [{**LAYER, "update_angle": 3.0}]}}}
    epochs = read_spool(spool_file(tmp_path, content))[2]
    assert epochs[1]["layers"] == [
        {**LAYER, "update_angle": 3.0, "signal_cosine": None, "weight_angle": None}
    ]


@pytest.mark.parametrize("when", ["an epoch row", "the run's end"])
def test_a_database_gone_for_good_is_not_waited_for_and_every_row_is_spooled(
    tmp_path: Path, clock: list[float], monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    store = FlakyStore()
    sink = sink_for(store, tmp_path)
    sink.write(1, row(50.0))

    def gone(*args: Any, **kwargs: Any) -> None:
        raise RunGone("the database file x.db is no longer the one biobench opened")

    if when == "an epoch row":
        monkeypatch.setattr(store, "write_epoch", gone)
        with pytest.raises(RunGone):
            sink.write(2, row(40.0))
    else:
        sink.write(2, row(40.0))
        monkeypatch.setattr(store, "set_status", gone)
    with pytest.raises(BiobenchError) as caught:
        sink.close(RunStatus.failed, "boom")
    assert clock == []  # no wait for what will not come back
    assert str(caught.value) == (
        "the database file x.db is no longer the one biobench opened: run 7 stops, its 2 epoch "
        f"row(s) and its end (failed) kept in {sink.spool} and its checkpoint beside it; with "
        f"the run's database back in place, run `biobench import {sink.spool} --db URL`"
    )
    run_id, _, epochs, status, error = read_spool(sink.spool)
    assert (run_id, sorted(epochs), status, error) == (7, [1, 2], "failed", "boom")


def test_a_spool_file_may_end_a_run_only_with_a_status_that_ends_it(tmp_path: Path) -> None:
    spool = tmp_path / "pending.json"
    for status in (*ENDED, None):
        spool.write_text(
            json.dumps({"run_id": 1, "spec_hash": "ab", "epochs": {}, "status": status})
        )
        assert read_spool(spool) == (1, "ab", {}, status, None)
    for status in ("running", "lost"):
        spool.write_text(
            json.dumps({"run_id": 1, "spec_hash": "ab", "epochs": {}, "status": status})
        )
        with pytest.raises(BiobenchError, match=f"status '{status}' is not one of finished, "):
            read_spool(spool)
