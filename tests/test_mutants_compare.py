"""Gaps a mutation run over results/compare.py showed (tools/mutation.sh): which rows the
comparison tables show, in which order, and what their cells read.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from biobench.results.compare import (
    comparison,
    comparison_tables,
    load_comparison,
    render_csv,
    render_markdown,
)
from biobench.search import report
from biobench.spec import load_presets, resolve
from biobench.store import Store
from biobench.store.records import RunRecord
from test_guards import bp_run, epoch_rows, record


def test_a_studys_row_sits_right_below_its_rules_plain_row_whatever_the_studys_name() -> None:
    # "A" sorts before any placeholder in uppercase letters: the plain row's key must be ""
    runs = [bp_run(1, 0), bp_run(2, 0, lr="0.002")]
    frame = comparison(runs, epoch_rows({1: [1.0], 2: [2.0]}), load_presets(), studies={2: "A"})
    assert list(frame["label"]) == ["BP", "BP (study A)"]


def test_a_studys_gap_is_to_the_best_of_two_bp_studies_of_its_protocol() -> None:
    # BP searched twice (studies b1 and b2): a tuned FA row is measured against the lower BP
    runs = [bp_run(1, 0), bp_run(2, 0, lr="0.002"), bp_run(3, 0, lr="0.003")]
    runs.append(record(4, resolve(algorithm="fa", architecture="fc", dataset="mnist")))
    errors = epoch_rows({1: [50.0], 2: [40.0], 3: [44.0], 4: [45.0]})
    studies = {2: "b1", 3: "b2", 4: "f"}
    frame = comparison(runs, errors, load_presets(), studies=studies)
    gaps = dict(zip(frame["label"], frame["gap_to_bp"], strict=True))
    assert gaps == {"BP": 0.0, "BP (study b1)": 0.0, "BP (study b2)": 4.0, "FA (study f)": 5.0}


def header_and_rows(runs: list, errors: dict[int, list[float]]) -> tuple[list[str], list]:
    ((_, header, rows),) = comparison_tables(comparison(runs, epoch_rows(errors), load_presets()))
    return header, rows


def test_an_imagenet_table_shows_top5_even_where_no_reference_has_a_top5_number() -> None:
    # DFA, which the paper did not run on ImageNet: no reference, yet top-1 / top-5 errors
    spec = resolve(algorithm="dfa", architecture="lc", dataset="imagenet", epochs=3)
    header, rows = header_and_rows([record(1, spec)], {1: [72.0]})
    assert header[3] == "lc test top-1/5"
    assert rows == [["feedback alignment", "DFA", "36.00", "72.00 / 18.00", "– / –", "–", "–"]]


def test_a_table_with_no_reference_names_its_reference_column_paper() -> None:
    spec = resolve(algorithm="bp", architecture="fc", dataset="synthetic", epochs=1)
    header, rows = header_and_rows([record(1, spec)], {1: [2.0]})
    assert header == ["family", "method", "fc train", "fc test", "fc paper", "fc Δ", "fc vs BP"]
    assert rows == [["backprop", "BP", "1.00", "2.00", "– / –", "–", "+0.00"]]


def test_a_table_of_one_biotorch_cell_names_biotorch_as_its_source() -> None:
    header, _ = header_and_rows([record(1, resolve(preset="cifar10-resnet20-bp"))], {1: [9.0]})
    assert header[4] == "resnet20 biotorch"


def two_tables() -> pd.DataFrame:
    runs = [
        bp_run(1, 0),
        record(2, resolve(algorithm="bp", architecture="fc", dataset="synthetic")),
    ]
    return comparison(runs, epoch_rows({1: [1.0], 2: [2.0]}), load_presets())


def test_markdown_separates_two_tables_by_one_blank_line() -> None:
    text = render_markdown(two_tables())
    first, second = text.split("\n\n### ")
    assert first.startswith("### mnist: ") and first.endswith(" |")
    assert second.startswith("synthetic: ") and second.endswith(" |\n")


def test_the_csv_export_has_no_index_column() -> None:
    lines = render_csv(two_tables()).splitlines()
    assert lines[0].startswith("dataset,protocol,method,")
    assert [line.split(",")[0] for line in lines[1:]] == ["mnist", "synthetic"]


def test_compare_of_a_study_shows_only_its_tables_with_no_index_column(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(sqlite_url)

    def add(test: float, **spec_kw: Any) -> RunRecord:
        spec = resolve(algorithm="bp", architecture="fc", **spec_kw)
        run_id = store.create_run(**spec.run_fields(), device="cpu", environment={})
        store.write_epoch(run_id, 1, {"train_top1": 0.0, "test_top1": test, "test_top5": 0.0})
        store.set_status(run_id, "finished")
        (run,) = store.runs([run_id])
        return run

    add(1.0, dataset="mnist")  # a table with no study: left out
    add(50.0, dataset="synthetic", epochs=1)
    best = add(40.0, dataset="synthetic", epochs=1, overrides=["lr=1e-4"])
    monkeypatch.setattr(report, "best_run", lambda name, _: ({}, best) if name == "s" else None)
    frame = load_comparison(store, studies=["s"])
    assert list(zip(frame["dataset"], frame["label"], strict=True)) == [
        ("synthetic", "BP"),
        ("synthetic", "BP (study s)"),
    ]
    assert "index" not in frame.columns and list(frame.columns[-2:]) == ["study", "reference"]
    assert list(frame.index) == [0, 1]
