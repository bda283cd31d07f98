"""compare and check: biobench's results against backprop and against the paper.

Both read finished runs from the store and the presets of benchmarks.yaml; neither trains.

- `comparison()` builds the paper's table layout as a long pandas frame: one row per
  (dataset, protocol, method, architecture) with our best-epoch errors (mean and std over
  seeds), the paper's numbers, the difference, and the gap to BP on the same architecture.
  Runs are only compared within one protocol: same dataset, epochs, batch size and data
  settings; the algorithm and its hyperparameters are what differs between rows.
- `check()` gives one verdict per preset: pass, regressed, improved or missing.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pandas as pd
from rich.table import Table

from biobench.spec import Benchmarks, Preset, load_benchmarks, resolve, seedless_hash

MODES = {"parallel": "par", "alternating": "alt"}
METHOD_ORDER = [
    "dtp-par",
    "dtp-alt",
    "sdtp-par",
    "sdtp-alt",
    "ao-sdtp-par",
    "ao-sdtp-alt",
    "tp-par",
    "tp-alt",
    "fa",
    "dfa",
    "bp",
    "conv-bp",
]
METHOD_LABELS = {
    "dtp-par": "DTP parallel",
    "dtp-alt": "DTP alternating",
    "sdtp-par": "SDTP parallel",
    "sdtp-alt": "SDTP alternating",
    "ao-sdtp-par": "AO-SDTP parallel",
    "ao-sdtp-alt": "AO-SDTP alternating",
    "tp-par": "TP parallel",
    "tp-alt": "TP alternating",
    "fa": "FA",
    "dfa": "DFA",
    "bp": "BP",
    "conv-bp": "BP ConvNet",
}
METRICS = ("train_top1", "test_top1", "test_top5")


def method_of(algorithm: str, architecture: str, hparams: dict[str, Any]) -> tuple[str, str]:
    """(method, table column) of a run: BP on the conv net is the paper's BP-ConvNet row,
    shown in the LC column; TP-family methods carry their mode."""
    if algorithm == "bp" and architecture == "conv":
        return "conv-bp", "lc"
    mode = hparams.get("mode")
    return (f"{algorithm}-{MODES[mode]}" if mode else algorithm), architecture


def protocol_of(spec: dict[str, Any]) -> str:
    settings = ",".join(f"{k}={v}" for k, v in sorted(spec.get("data_settings", {}).items()))
    return f"{spec['epochs']} epochs, batch {spec['batch_size']}" + (
        f", {settings}" if settings else ""
    )


def best_errors(epochs: list[dict[str, Any]], final: bool) -> dict[str, float]:
    """Per metric, the lowest value over epochs (the paper's protocol) or the last epoch's."""
    out = {}
    for metric in METRICS:
        values = [row[metric] for row in epochs if row[metric] is not None]
        finite = [v for v in values if math.isfinite(v)]
        if final:
            out[metric] = values[-1] if values else math.nan
        else:
            out[metric] = min(finite) if finite else math.nan
    return out


@dataclass(frozen=True)
class _Cell:
    dataset: str
    protocol: str
    method: str
    column: str


def _paper_reference(config: Benchmarks, dataset: str, method: str, column: str) -> Preset | None:
    for preset in config.presets.values():
        if preset.name.startswith("smoke-") or preset.dataset != dataset:
            continue
        p_method, p_column = method_of(preset.algorithm, preset.architecture, preset.hparams)
        if (p_method, p_column) == (method, column):
            return preset
    return None


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def comparison(
    runs: list[dict[str, Any]],
    epochs: list[dict[str, Any]],
    config: Benchmarks,
    *,
    dataset: str | None = None,
    architecture: str | None = None,
    final: bool = False,
) -> pd.DataFrame:
    """The long comparison frame (see the module docstring); empty when nothing matches."""
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in epochs:
        by_run[row["run_id"]].append(row)
    cells: dict[_Cell, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run["status"] != "finished" or not by_run[run["id"]]:
            continue
        if dataset and run["dataset"] != dataset:
            continue
        method, column = method_of(run["algorithm"], run["architecture"], run["hparams"])
        if architecture and column != architecture and run["architecture"] != architecture:
            continue
        cell = _Cell(run["dataset"], protocol_of(run["spec"]), method, column)
        cells[cell][seedless_hash(run["spec"])].append(run)

    records = []
    for cell, groups in cells.items():
        # Several specs in one cell (say, two learning rates): the one with most runs, newest.
        chosen = max(groups.values(), key=lambda rs: (len(rs), max(r["id"] for r in rs)))
        errors = [best_errors(by_run[r["id"]], final) for r in chosen]
        record: dict[str, Any] = {
            "dataset": cell.dataset,
            "protocol": cell.protocol,
            "method": cell.method,
            "label": METHOD_LABELS.get(cell.method, cell.method),
            "architecture": cell.column,
            "runs": len(chosen),
            "other_specs": len(groups) - 1,
            "run_ids": ",".join(str(r["id"]) for r in sorted(chosen, key=lambda r: r["id"])),
        }
        for metric in METRICS:
            record[metric], record[f"{metric}_std"] = _mean_std([e[metric] for e in errors])
        paper = _paper_reference(config, cell.dataset, cell.method, cell.column)
        for metric in METRICS:
            record[f"paper_{metric}"] = (
                paper.reference.get(metric, math.nan) if paper else math.nan
            )
        record["delta_test_top1"] = record["test_top1"] - record["paper_test_top1"]
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    bp = {
        (r["dataset"], r["protocol"], r["architecture"]): r["test_top1"]
        for r in records
        if r["method"] == "bp"
    }
    frame["gap_to_bp"] = [
        r["test_top1"] - bp.get((r["dataset"], r["protocol"], r["architecture"]), math.nan)
        for r in records
    ]
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    frame["_order"] = frame["method"].map(lambda m: order.get(m, len(order)))
    frame = frame.sort_values(["dataset", "protocol", "_order", "method", "architecture"])
    return frame.drop(columns="_order").reset_index(drop=True)


def load_comparison(
    store: Any,
    datasets: set[str] | None = None,
    architecture: str | None = None,
    final: bool = False,
) -> pd.DataFrame:
    """`comparison()` over the runs of a Store, optionally of some datasets only."""
    runs = [r for r in store.runs() if datasets is None or r["dataset"] in datasets]
    epochs = store.epochs([r["id"] for r in runs])
    return comparison(runs, epochs, load_benchmarks(), architecture=architecture, final=final)


# -- check ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    benchmark: str
    verdict: str
    reference: float
    tolerance: float
    measured: float | None  # mean best test top-1 over the matching runs
    runs: int
    detail: str


def check(
    presets: Iterable[Preset], runs: list[dict[str, Any]], specs: dict[str, dict[str, Any]]
) -> list[Verdict]:
    """Each preset's finished runs (whose spec is the preset's current one, any seed) against
    its reference test top-1 error: within tolerance passes, above regresses, below improves.

    `specs` maps preset name -> its resolved spec dict, so runs of an edited preset, whose
    numbers no longer say anything about it, do not count.
    """
    verdicts = []
    for preset in presets:
        wanted = seedless_hash(specs[preset.name])
        matching = [
            r
            for r in runs
            if r["benchmark"] == preset.name
            and r["status"] == "finished"
            and seedless_hash(r["spec"]) == wanted
            and r["best_test_top1"] is not None
        ]
        reference = preset.reference["test_top1"]
        if not matching:
            stale = sum(r["benchmark"] == preset.name for r in runs)
            detail = (
                f"{stale} run(s), none finished with the preset's current spec (edited preset, "
                "options overridden, or still running)"
                if stale
                else "no finished run"
            )
            verdicts.append(
                Verdict(
                    preset.name,
                    "missing",
                    reference,
                    preset.tolerance,
                    None,
                    0,
                    f"{detail}; `biobench run --bench {preset.name}`",
                )
            )
            continue
        measured = statistics.fmean(r["best_test_top1"] for r in matching)
        if not math.isfinite(measured) or measured > reference + preset.tolerance:
            verdict = "regressed"
        elif measured < reference - preset.tolerance:
            verdict = "improved"
        else:
            verdict = "pass"
        ids = ", ".join(str(r["id"]) for r in matching)
        verdicts.append(
            Verdict(
                preset.name,
                verdict,
                reference,
                preset.tolerance,
                measured,
                len(matching),
                f"run(s) {ids}",
            )
        )
    return verdicts


def check_store(store: Any, names: list[str] | None) -> list[Verdict]:
    """Verdicts for the named presets, or for every preset that has a run (names=None)."""
    config = load_benchmarks()
    presets = (
        [config.preset(n) for n in names] if names is not None else list(config.presets.values())
    )
    specs = {p.name: resolve(benchmark=p.name).to_dict() for p in presets}
    verdicts = check(presets, store.runs(), specs)
    if names is None:  # checking everything: presets never run are not news
        verdicts = [v for v in verdicts if v.verdict != "missing"]
    return verdicts


def junit_xml(verdicts: list[Verdict], fail_missing: bool) -> str:
    """A JUnit XML report: one test case per benchmark, regressions (and, when asked,
    missing results) as failures."""
    failing = {"regressed"} | ({"missing"} if fail_missing else set())
    suite = ElementTree.Element(
        "testsuite",
        name="biobench check",
        tests=str(len(verdicts)),
        failures=str(sum(v.verdict in failing for v in verdicts)),
        skipped=str(sum(v.verdict == "missing" and not fail_missing for v in verdicts)),
    )
    for v in verdicts:
        case = ElementTree.SubElement(suite, "testcase", classname="biobench", name=v.benchmark)
        message = f"{v.verdict}: {describe(v)}"
        if v.verdict in failing:
            ElementTree.SubElement(case, "failure", message=message, type=v.verdict)
        elif v.verdict == "missing":
            ElementTree.SubElement(case, "skipped", message=message)
        else:
            ElementTree.SubElement(case, "system-out").text = message
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def describe(v: Verdict) -> str:
    if v.measured is None:
        return v.detail
    return (
        f"test top-1 {v.measured:.2f}% vs reference {v.reference:.2f}% ± {v.tolerance:g} "
        f"({v.detail})"
    )


# -- rendering --------------------------------------------------------------------------------


def _num(value: float, std: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:.2f}"
    return f"{text}±{std:.2f}" if std is not None and math.isfinite(std) and std > 0 else text


def _signed(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _has_top5(block: pd.DataFrame) -> bool:
    return bool(block["paper_test_top5"].notna().any() or block["dataset"].eq("imagenet").any())


def comparison_tables(frame: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per dataset and protocol, in the paper's layout: methods down,
    architectures across, each with our train/test error, the paper's, Δ and the gap to BP."""
    tables = []
    for (dataset, protocol), block in frame.groupby(["dataset", "protocol"], sort=False):
        top5 = _has_top5(block)
        archs = list(dict.fromkeys(block["architecture"]))
        header = ["method"]
        for arch in archs:
            header += [
                f"{arch} train",
                f"{arch} test" + (" top-1/5" if top5 else ""),
                f"{arch} paper",
                f"{arch} Δ",
                f"{arch} vs BP",
            ]
        rows = []
        for label, method_rows in block.groupby("label", sort=False):
            row = [str(label)]
            for arch in archs:
                match = method_rows[method_rows["architecture"] == arch]
                if match.empty:
                    row += ["", "", "", "", ""]
                    continue
                r = match.iloc[0]
                test = _num(r["test_top1"], r["test_top1_std"])
                paper = _num(r["paper_test_top1"])
                if top5:
                    test += f" / {_num(r['test_top5'], r['test_top5_std'])}"
                    paper += f" / {_num(r['paper_test_top5'])}"
                else:
                    paper = f"{_num(r['paper_train_top1'])} / {paper}"
                runs = f" (n={r['runs']})" if r["runs"] > 1 else ""
                row += [
                    _num(r["train_top1"], r["train_top1_std"]),
                    test + runs,
                    paper,
                    _signed(r["delta_test_top1"]),
                    _signed(r["gap_to_bp"]),
                ]
            rows.append(row)
        tables.append((f"{dataset}: {protocol} (errors in %, best epoch)", header, rows))
    return tables


def rich_tables(frame: pd.DataFrame) -> list[Table]:
    tables = []
    for title, header, rows in comparison_tables(frame):
        table = Table(title=title, title_justify="left", box=None, pad_edge=False)
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def render_markdown(frame: pd.DataFrame) -> str:
    parts = []
    for title, header, rows in comparison_tables(frame):
        lines = [
            f"### {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def render_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", indent=2, double_precision=15) + "\n"
