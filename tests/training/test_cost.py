"""Cost and alignment as a run records them: every epoch's time per step by phase, evaluation
time and peak memory, the run's FLOPs per step (exact for a dense net), and per-layer alignment
rows, which survive the spool file and never change what the run learns."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from biobench.archs import ARCHITECTURES
from biobench.errors import BiobenchError
from biobench.registry import ALGORITHMS
from biobench.spec import load_presets, resolve
from biobench.store import Store
from biobench.store.models import COST_COLUMNS, LAYER_COLUMNS
from biobench.training.environment import default_threads
from biobench.training.runner import execute
from biobench.training.sink import EpochSink, import_spool, read_spool
from support.learners import TINY, batch, hparams


def train(url: str, algorithm: str = "bp", arch: str = "fc", *sets: str, **kw) -> int:
    spec = resolve(
        algorithm=algorithm, architecture=arch, dataset="digits", overrides=list(sets), **kw
    )
    return execute(spec, store=Store(url), device=torch.device("cpu"), data_dir=Path("unused"))


def test_bp_flops_per_step_are_the_dense_layers_multiply_adds(sqlite_url: str) -> None:
    run_id = train(sqlite_url, "bp", "fc", epochs=1, batch_size=32)
    store = Store(sqlite_url)
    sizes = [(p.shape[1], p.shape[0]) for p in _weights(store, run_id)]
    n = 32
    forward = sum(2 * n * fan_in * fan_out for fan_in, fan_out in sizes)
    weight_grads = forward
    input_grads = forward - 2 * n * sizes[0][0] * sizes[0][1]  # none for the data
    assert store.run(run_id).flops_per_step == forward + weight_grads + input_grads


def _weights(store: Store, run_id: int) -> list[torch.Tensor]:
    payload = torch.load(Path(store.run(run_id).checkpoint) / "last.pt", weights_only=True)
    net = payload["learner"]["net"]
    return [v for k, v in net.items() if k.endswith("op.weight")]


@pytest.mark.parametrize(("algorithm", "phases"), [
    ("bp", {"forward", "signal", "update"}),
    ("fa", {"forward", "signal", "update"}),
    ("dtp", {"forward", "inverse", "signal", "update"}),
    ("wm", {"forward", "signal", "update", "inverse"}),
])  # fmt: skip
def test_every_epoch_says_what_it_cost_by_phase(
    sqlite_url: str, algorithm: str, phases: set[str]
) -> None:
    run_id = train(sqlite_url, algorithm, "fc", epochs=2, batch_size=64)
    store = Store(sqlite_url)
    for row in store.epochs([run_id]):
        timed = {p for p in ("forward", "signal", "update", "inverse") if row[f"step_ms_{p}"]}
        assert timed == phases
        assert all(row[f"step_ms_{p}"] > 0 for p in phases)
        # the phases are parts of a step: together no more than the step (loop overhead aside)
        assert sum(row[f"step_ms_{p}"] for p in phases) <= row["step_ms"] * 1.001
        assert row["eval_ms"] > 0 and row["peak_memory_mb"] > 50  # torch alone takes more
    rows = store.layer_metrics([run_id])
    depth = len(_weights(store, run_id))
    assert [(r["epoch"], r["layer"]) for r in rows] == [
        (e, l) for e in (1, 2) for l in range(1, depth + 1)
    ]


def test_an_alternating_epoch_costs_both_passes_per_batch(sqlite_url: str) -> None:
    run_id = train(sqlite_url, "dtp", "fc", "mode=alternating", epochs=1, batch_size=64)
    (row,) = Store(sqlite_url).epochs([run_id])
    # the inverse pass's own forward pass counts too: forward is timed on both passes
    assert row["step_ms_inverse"] > 0 and row["step_ms_update"] > 0


def test_alignment_off_writes_no_layer_rows(sqlite_url: str) -> None:
    run_id = train(sqlite_url, "fa", "fc", "alignment=false", epochs=1)
    store = Store(sqlite_url)
    assert store.layer_metrics([run_id]) == []
    assert store.run(run_id).spec["options"] == {"alignment": False}
    with pytest.raises(
        Exception,
        match="every run takes precision, val_split, alignment, alignment_batch, compile",
    ):
        resolve(algorithm="fa", architecture="fc", dataset="digits", overrides=["alignmnt=0"])


def test_layer_rows_go_through_the_spool_file(sqlite_url: str, tmp_path: Path) -> None:
    run_id = train(sqlite_url, "fa", "fc", epochs=2)
    store = Store(sqlite_url)
    store.set_status(run_id, "interrupted")  # a spool only ever completes a run that stopped
    row, _ = store.epochs([run_id])
    layers = store.layer_metrics([run_id])
    metrics = {k: row[k] for k in ("train_top1", "test_top1", "test_loss", "step_ms")}
    nan_layer = {k: layers[0][k] for k in ("layer", "name", *LAYER_COLUMNS)}
    nan_layer["update_angle"] = math.nan
    sink = EpochSink(store, run_id, tmp_path / "pending.json", store.run(run_id).spec_hash)
    sink.pending[2] = {**metrics, "layers": [nan_layer]}
    sink._spool("finished", None)
    _, _, epochs, _, _ = read_spool(tmp_path / "pending.json")
    assert math.isnan(epochs[2]["layers"][0]["update_angle"])
    import_spool(store, tmp_path / "pending.json")
    (written,) = [r for r in store.layer_metrics([run_id]) if r["epoch"] == 2]
    assert written["name"] == nan_layer["name"] and math.isnan(written["update_angle"])
    # A layer row with a key the schema lacks is refused whole, nothing written
    bad = json.loads((tmp_path / "pending.json").read_text())
    bad["epochs"]["2"]["layers"][0]["angle"] = 1.0
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(BiobenchError, match="layers must map layer, name, update_angle"):
        read_spool(tmp_path / "bad.json")


SMOKE = load_presets().suite("smoke")


@pytest.mark.slow
@pytest.mark.parametrize("preset", SMOKE)
def test_smoke_presets_record_alignment_and_cost_and_learn_the_same_without(
    sqlite_url: str, preset: str
) -> None:
    store = Store(sqlite_url)
    runs = {}
    for sets in ([], ["alignment=false"]):
        spec = resolve(preset=preset, epochs=1, overrides=sets)
        runs[bool(sets)] = execute(
            spec, store=store, device=torch.device("cpu"), data_dir=Path("unused")
        )
    (with_rows,), (without,) = (store.epochs([runs[off]]) for off in (False, True))
    for key in with_rows:
        if key not in (*COST_COLUMNS, "recorded_at", "run_id"):
            assert with_rows[key] == without[key] or (
                with_rows[key] is None and without[key] is None
            ), key
    assert with_rows["step_ms"] > 0 and store.run(runs[False]).flops_per_step > 0
    layers = store.layer_metrics([runs[False]])
    spec = resolve(preset=preset)
    assert len(layers) >= 3 and all(row["update_angle"] is not None for row in layers)
    if ALGORITHMS.entry(spec.algorithm).family == "backprop":
        assert all(row["update_angle"] < 1e-2 for row in layers)
    assert ARCHITECTURES.entry(spec.architecture)


def test_the_transport_guard_walks_each_graph_once_unless_debugging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from biobench.archs import build_network
    from biobench.learners import base
    from biobench.nn import Dense

    base.check_every_step(False)  # as a run without --debug sets it
    walks = []
    real = base.reachable_parameters
    monkeypatch.setattr(base, "reachable_parameters", lambda out: walks.append(1) or real(out))
    torch.manual_seed(0)
    # The LC net: its LC layers' gradients go through autograd; its dense layers compute
    # their own (no graph to walk) except under --debug.
    learner = ALGORITHMS.get("fa")(build_network("locally-connected", TINY), hparams("fa"))
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    learner.train_step(x, y)
    first = len(walks)
    dense = sum(isinstance(layer.op, Dense) for layer in learner.net.layers)
    assert first == len(learner.net.layers) - dense > 0
    learner.train_step(x, y)
    assert len(walks) == first  # the same graphs: not walked again
    base.check_every_step(True)
    try:
        learner.train_step(x, y)
        assert len(walks) == first + len(learner.net.layers)  # --debug: every graph, each step
    finally:
        base.check_every_step(False)


def test_the_commands_show_plot_export_and_compare_alignment_and_cost(
    sqlite_url: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from biobench.cli import app

    cli = CliRunner()
    ids = {name: train(sqlite_url, name, "fc", epochs=2) for name in ("fa", "bp")}
    db = ["--db", sqlite_url]
    shown = cli.invoke(app, ["show", str(ids["fa"]), "--alignment", *db])
    assert shown.exit_code == 0, shown.output
    assert "update angle to BP's gradient" in shown.output
    assert "angle between feedback B and W^T" in shown.output
    plain = cli.invoke(app, ["show", str(ids["bp"]), "--alignment", *db]).output
    assert "angle between feedback" not in plain  # BP has no feedback weights
    out = tmp_path / "align.png"
    drawn = cli.invoke(app, ["plot", str(ids["fa"]), "--alignment", "--out", str(out), *db])
    assert drawn.exit_code == 0 and out.stat().st_size > 0
    two = cli.invoke(app, ["plot", str(ids["fa"]), str(ids["bp"]), "--alignment", *db])
    assert two.exit_code != 0 and "--alignment draws one run" in two.output
    long = cli.invoke(app, ["export", "--layers", "--run", str(ids["fa"]), *db]).output
    lines = long.strip().splitlines()
    assert lines[0] == "run_id,epoch,layer,name,update_angle,signal_cosine,weight_angle"
    assert len(lines) == 1 + 2 * 6  # 2 epochs x 6 layers of the digits FC net
    nested = json.loads(cli.invoke(app, ["export", "--format", "json", *db]).output)
    for run in nested["runs"]:
        assert [len(row["layers"]) for row in run["epoch_rows"]] == [6, 6]
    cost = cli.invoke(app, ["compare", "--cost", "--format", "json", *db])
    rows = {row["algorithm"]: row for row in json.loads(cost.output)}
    assert rows["bp"]["step_vs_bp"] == 1.0 and rows["bp"]["update_angle"] < 1e-3
    assert rows["fa"]["step_vs_bp"] == pytest.approx(rows["fa"]["step_ms"] / rows["bp"]["step_ms"])
    assert rows["fa"]["update_angle"] > 1.0
    table = cli.invoke(app, ["compare", "--cost", *db], env={"COLUMNS": "160"}).output
    assert table.index("BP") < table.index("FA")  # backprop first, then the families
    markdown = cli.invoke(app, ["compare", "--cost", "--format", "markdown", *db]).output
    lines = markdown.splitlines()  # the same table, as Markdown: no box drawing
    assert lines[0].startswith("### digits / fc: cost on cpu, batch ") and lines[1] == ""
    header = "method | runs | ms/step | IQR | x BP | eval ms | peak RSS MB | x BP | GFLOP"
    assert lines[2] == f"| {header} | update° | threads | load |"
    assert lines[3] == "|---|" + "---:|" * 11
    assert [line.split(" | ")[:2] for line in lines[4:]] == [["| BP", "1"], ["| FA", "1"]]


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """A run sets torch's threads for its process: put them back for the tests after."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("given", "local_world"),
    [(["--threads", "1"], None), ([], "2")],
    ids=["given", "cores-per-process"],
)
def test_a_run_records_its_threads_and_the_machines_load(
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    torch_threads: None,
    given: list[str],
    local_world: str | None,
) -> None:
    """Two cores here: --threads 1 is one thread, and so is the default for each of two
    processes of a run on this machine (torchrun's LOCAL_WORLD_SIZE), where torch alone would
    take both cores in each."""
    from typer.testing import CliRunner

    from biobench.cli import app

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    if local_world:
        monkeypatch.setenv("LOCAL_WORLD_SIZE", local_world)
    ran = CliRunner().invoke(
        app, ["run", "--data", "synthetic", "--epochs", "1", "--db", sqlite_url, *given]
    )
    assert ran.exit_code == 0, ran.output
    (run,) = Store(sqlite_url).runs()
    assert (run.environment["threads"], run.environment["cpus"]) == (1, 2)
    load = run.environment["load"]
    assert len(load) == 3 and all(isinstance(v, float) and v >= 0 for v in load)


@pytest.mark.parametrize(("processes", "threads"), [(1, 8), (3, 2), (16, 1)])
def test_the_default_threads_share_the_cores_this_process_may_use(
    monkeypatch: pytest.MonkeyPatch, processes: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # the machine's, not this process's
    assert default_threads(processes) == threads
