"""compare: biobench's results against backprop and against the paper.

It reads finished runs from the store and the presets of benchmarks.yaml; it never trains.

- `comparison()` builds the paper's table layout as a long pandas frame: one row per
  (dataset, protocol, method, architecture) with our best-epoch errors (mean and std over
  seeds), the published reference numbers, the difference, and the gap to BP on the same
  architecture. Runs are only compared within one protocol: same dataset, epochs, batch size
  and data settings; the algorithm and its hyperparameters are what differs between rows.
- Rows are grouped by the learning rule's family (backprop, feedback alignment, target
  propagation, other: registry.FAMILIES, in that order), then by the rule's own order, both
  read from the rule's registry entry, so a new rule (a plugin's too) joins its family's group
  with no edit here.
- References come from the presets of the reference suites (REFERENCE_SOURCES): the paper's
  (Bartunov et al. 2018), biotorch's CIFAR-10 ResNet-20 table (Sanfiz & Akrout 2021) and PCX's
  MLP and VGG-5 benchmark (Pinchetti et al. 2025, docs/references/pcx.md). A table names the
  source of its reference column (CITATIONS: whose work it is, for figures); biotorch's and
  PCX's presets use their own protocols, so their runs form tables of their own. A reference
  suite's preset without a number (a rule its source never measured) places its cell under
  that source with an empty reference.
- Each source declares how its numbers were selected from a run's epochs (SELECTIONS): the
  paper's and PCX's are the best test error over the epochs (best-test), biotorch's the test
  error at the epoch with the best validation error (best-val, its presets hold out 5,000
  training images). Every cell is scored the way its reference was, unless `select`
  overrides it; every column of a run's row (train, test, top-1, top-5) comes from that one
  selected epoch. A run that cannot be scored the reference's way (best-val without a
  validation split) is shown under best-test, its Δ left empty, with one line saying why.
- A search's trials are configurations tried, not measurements, and stay out; a study named
  with `studies` adds its best trial's run as a row of its own, "<method> (study NAME)",
  beside the plain runs of its protocol and the cell's reference.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from biobench.registry import ALGORITHMS, ARCHITECTURES, FAMILIES, load_all
from biobench.results.render import print_natural
from biobench.spec import Preset, Presets, load_presets, seedless_hash
from biobench.store.records import RunRecord, RunStatus
from biobench.text import printable

BASELINE = "bp"  # every rule's gap is measured to backprop on the same network and protocol
PAPER_SUITE = "paper"  # the presets whose references are the paper's published numbers
# How a run's epoch is chosen for its row: the lowest test top-1 error, the lowest validation
# top-1 error (needs --set val_split=N), or the last epoch. Titles and exports name it.
SELECTIONS = {
    "best-test": "best test epoch",
    "best-val": "best validation epoch",
    "final": "final epoch",
}
DEFAULT_SELECTION = "best-test"  # a cell with no reference: the paper's protocol


@dataclass(frozen=True)
class ReferenceSource:
    """A published table biobench compares with: the suite whose presets hold its numbers,
    whose work it is, and how its numbers were selected from a run's epochs."""

    name: str  # how a table names it: "paper"
    suite: str
    citation: str
    selection: str  # a key of SELECTIONS
    why: str  # the protocol in words, for a run that cannot be scored under it


REFERENCE_SOURCES = (
    ReferenceSource(
        "paper",
        PAPER_SUITE,
        "Bartunov et al., 2018",
        "best-test",
        "the paper reports the best test error over its epochs",
    ),
    ReferenceSource(
        "biotorch",
        "biotorch-cifar10",
        "Sanfiz & Akrout, 2021",
        "best-val",
        "biotorch reports the test error at the epoch best on 5,000 held-out training images",
    ),
    ReferenceSource(
        "pcx",
        "pcx",
        "Pinchetti et al., 2025",
        "best-test",
        "PCX reports each seed's best test accuracy over its epochs",
    ),
)
# Reference suites -> how a table names their source, first match wins.
REFERENCES = {source.suite: source.name for source in REFERENCE_SOURCES}
# Whose numbers each source's are, as a figure's legend names them.
CITATIONS = {source.name: source.citation for source in REFERENCE_SOURCES}
SOURCES = {source.name: source for source in REFERENCE_SOURCES}
MODES = {"parallel": "par", "alternating": "alt"}
METRICS = ("train_top1", "test_top1", "test_top5")


@dataclass(frozen=True)
class Method:
    """A row of the comparison: a learning rule, and its mode where it has one (TP family)."""

    key: str  # dtp-alt, fa
    label: str  # DTP alternating, FA
    family: str
    order: tuple[int, int, str]


def method_of(algorithm: str, hparams: dict[str, Any]) -> Method:
    """The row a run or preset sits in, described by its learning rule's registry entry:
    label, family and order come from there, so a new rule needs no edit here."""
    if algorithm in ALGORITHMS:  # a run stored under a rule's earlier name (ddtp) joins it
        algorithm = ALGORITHMS.canonical(algorithm)
    entry = ALGORITHMS.entry(algorithm) if algorithm in ALGORITHMS else None
    label = printable(entry.display if entry else algorithm)  # a plugin's, or a stored name
    family = entry.family if entry else "other"
    rank = entry.order if entry else 10_000
    mode = hparams.get("mode")
    if mode is None:
        return Method(algorithm, label, family, (rank, 0, algorithm))
    choices = entry.hparams["mode"].choices or () if entry and "mode" in entry.hparams else ()
    position = list(choices).index(mode) if mode in choices else len(choices)
    key = f"{algorithm}-{MODES.get(mode, mode)}"
    return Method(key, f"{label} {mode}", family, (rank, position, key))


def _arch_order(architecture: str) -> int:
    return ARCHITECTURES.entry(architecture).order if architecture in ARCHITECTURES else 10_000


def protocol_of(spec: dict[str, Any]) -> str:
    settings = ",".join(f"{k}={v}" for k, v in sorted(spec.get("data_settings", {}).items()))
    epochs = spec["epochs"]
    return f"{epochs} epoch{'' if epochs == 1 else 's'}, batch {spec['batch_size']}" + (
        f", {settings}" if settings else ""
    )


def reference_protocol(config: Presets, preset: Preset) -> str:
    """The protocol a reference preset's number was measured under (`protocol_of`'s words)."""
    run = {**config.run_defaults(preset.dataset), **preset.run}
    return protocol_of({**run, "data_settings": preset.data_settings})


def check_selection(select: str | None) -> str | None:
    if select is not None and select not in SELECTIONS:
        from biobench.errors import SpecError

        raise SpecError(f"--select {select!r}: choose one of {', '.join(SELECTIONS)}")
    return select


def select_epoch(epochs: list[dict[str, Any]], selection: str) -> dict[str, Any] | None:
    """The epoch row a run is scored by (`epochs` in epoch order): the one with the lowest
    finite test (best-test) or validation (best-val) top-1 error, the earliest on a tie, or
    the last (final). None when no epoch can be chosen that way (best-val without a
    validation split, or no finite error)."""
    if selection == "final":
        return epochs[-1] if epochs else None
    key = "test_top1" if selection == "best-test" else "val_top1"
    scored = [row for row in epochs if row.get(key) is not None and math.isfinite(row[key])]
    return min(scored, key=lambda row: row[key]) if scored else None


def selected_errors(epochs: list[dict[str, Any]], selection: str) -> dict[str, float]:
    """Every metric of the selected epoch (NaN where it has none, or none was selected)."""
    row = select_epoch(epochs, selection)
    return {
        metric: math.nan if row is None or row.get(metric) is None else row[metric]
        for metric in METRICS
    }


@dataclass(frozen=True)
class _Cell:
    dataset: str
    protocol: str
    method: Method
    architecture: str
    study: str | None = None  # a study's best trial, a row of its own


def _family_order(family: str) -> int:
    return list(FAMILIES).index(family) if family in FAMILIES else len(FAMILIES)


def _reference(
    config: Presets, dataset: str, method: str, architecture: str
) -> tuple[Preset, str] | tuple[None, None]:
    """The published reference for a cell, and its source's name, from the reference suites;
    the preset's `reference` is empty where the source has no number for the cell."""
    for suite, source in REFERENCES.items():
        for name in config.suites.get(suite, []):
            preset = config.presets[name]
            if (preset.dataset, preset.architecture) == (dataset, architecture) and (
                method_of(preset.algorithm, preset.hparams).key == method
            ):
                return preset, source
    return None, None


def source_of(config: Presets, preset: str) -> ReferenceSource | None:
    """The reference source whose suite holds `preset` (the first, as `_reference` looks)."""
    return next((s for s in REFERENCE_SOURCES if preset in config.suites.get(s.suite, [])), None)


def run_algorithm(run: RunRecord) -> str:
    return ALGORITHMS.canonical(run.algorithm) if run.algorithm in ALGORITHMS else run.algorithm


def construction(algorithm: str, architecture: str) -> str | None:
    """Where biobench's construction of `algorithm` on `architecture` comes from, when that is
    not the rule's own paper (the learner's `constructions`); None otherwise."""
    if algorithm not in ALGORITHMS:
        return None
    return getattr(ALGORITHMS.get(algorithm), "constructions", {}).get(architecture)


def _has_val(epochs: list[dict[str, Any]]) -> bool:
    return select_epoch(epochs, "best-val") is not None


def latest_per_seed(runs: list[RunRecord]) -> list[RunRecord]:
    """One run per seed, the newest: a repeated or resumed seed is one sample, not two."""
    newest: dict[int, RunRecord] = {}
    for run in runs:
        if run.seed not in newest or run.id > newest[run.seed].id:
            newest[run.seed] = run
    return sorted(newest.values(), key=lambda r: r.id)


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std of the finite values; the std of one value is unknown (NaN, an
    empty CSV cell, null in JSON), not 0."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan


def comparison(
    runs: list[RunRecord],
    epochs: list[dict[str, Any]],
    config: Presets,
    *,
    dataset: str | None = None,
    architecture: str | None = None,
    final: bool = False,
    studies: dict[int, str] | None = None,
    select: str | None = None,
) -> pd.DataFrame:
    """The long comparison frame (see the module docstring); empty when nothing matches.

    `select` (a key of SELECTIONS) scores every cell that way; None scores each cell the way
    its reference was (best-test where it has none). `final=True` is `select="final"`.
    `studies` maps the run of a study's best trial to the study's name: each is a row of its
    own, and the frame then has a `study` column (empty for plain runs)."""
    select = "final" if final else check_selection(select)
    studies = studies or {}
    by_run: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in epochs:
        by_run[row["run_id"]].append(row)
    cells: dict[_Cell, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        if run.status != RunStatus.finished or not by_run[run.id]:
            continue
        if dataset and run.dataset != dataset:
            continue
        if architecture and run.architecture != architecture:
            continue
        method = method_of(run.algorithm, run.hparams)
        study = studies.get(run.id)
        if study is not None:
            method = replace(method, label=f"{method.label} (study {printable(study)})")
        cell = _Cell(run.dataset, protocol_of(run.spec), method, run.architecture, study)
        cells[cell][seedless_hash(run.spec)].append(run)

    records = []
    for cell, groups in cells.items():
        # Several specs in one cell (say, two learning rates): the one with most seeds, newest.
        chosen = latest_per_seed(
            max(groups.values(), key=lambda rs: (len({r.seed for r in rs}), max(r.id for r in rs)))
        )
        paper, source = _reference(config, cell.dataset, cell.method.key, cell.architecture)
        wanted = select or (SOURCES[source].selection if source else DEFAULT_SELECTION)
        selection, unscored = wanted, None
        if any(select_epoch(by_run[r.id], wanted) is None for r in chosen):
            # Shown the paper's way, but not held to a reference selected otherwise.
            selection = DEFAULT_SELECTION if wanted == "best-val" else wanted
            if wanted == "best-val":
                why = SOURCES[source].why if source else "--select best-val"
                unscored = (
                    f"run(s) {', '.join(str(r.id) for r in chosen if not _has_val(by_run[r.id]))}"
                    f" have no validation split ({why}): shown at their best test epoch, not "
                    "scored; run with --set val_split=5000"
                )
        errors = [selected_errors(by_run[r.id], selection) for r in chosen]
        record: dict[str, Any] = {
            "dataset": cell.dataset,
            "protocol": cell.protocol,
            "method": cell.method.key,
            "label": cell.method.label,
            "family": cell.method.family,
            "architecture": cell.architecture,
            "runs": len(chosen),
            "other_specs": len(groups) - 1,
            "run_ids": ",".join(str(r.id) for r in chosen),
            "_order": (
                _family_order(cell.method.family),
                *cell.method.order,
                cell.study or "",  # a study's row right below its rule's plain one
                _arch_order(cell.architecture),
            ),
            "study": cell.study,
        }
        for metric in METRICS:
            record[metric], record[f"{metric}_std"] = _mean_std([e[metric] for e in errors])
        for metric in METRICS:
            record[f"paper_{metric}"] = (
                paper.reference.get(metric, math.nan) if paper else math.nan
            )
        record["delta_test_top1"] = (
            math.nan if unscored else record["test_top1"] - record["paper_test_top1"]
        )
        record["reference_protocol"] = reference_protocol(config, paper) if paper else None
        record["selection"] = selection
        record["reference_selection"] = SOURCES[source].selection if source else None
        record["unscored"] = unscored
        record["construction"] = construction(run_algorithm(chosen[0]), cell.architecture)
        record["reference"] = source
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return frame
    # BP of the same kind: plain runs for a plain row, a study's best (the lowest, if BP was
    # searched twice) for a study's row; the other kind where that one is missing.
    bp: dict[bool, dict[tuple[str, str, str], float]] = {False: {}, True: {}}
    for r in records:
        if r["method"] == BASELINE:
            kind = bp[r["study"] is not None]
            key = (r["dataset"], r["protocol"], r["architecture"])
            if key not in kind or r["test_top1"] < kind[key]:
                kind[key] = r["test_top1"]
    gaps = []
    for r in records:
        key, tuned = (r["dataset"], r["protocol"], r["architecture"]), r["study"] is not None
        baseline = bp[tuned].get(key, bp[not tuned].get(key, math.nan))
        gaps.append(r["test_top1"] - baseline)
    frame["gap_to_bp"] = gaps
    frame = frame.sort_values(["dataset", "protocol", "_order"], kind="stable")
    last = (["study"] if studies else []) + ["reference"]
    frame = frame[[c for c in frame.columns if c not in ("reference", "study")] + last]
    return frame.drop(columns="_order").reset_index(drop=True)


def load_comparison(
    store: Any,
    datasets: set[str] | None = None,
    architecture: str | None = None,
    final: bool = False,
    *,
    run_ids: list[int] | None = None,
    studies: list[str] | None = None,
    select: str | None = None,
) -> pd.DataFrame:
    """`comparison()` over the runs of a Store, optionally of some datasets or runs only;
    `select` and `final` as comparison's.

    The trials of a search (`biobench search`, runs with a `study`) are left out unless named
    by `run_ids`: they are configurations tried, not measurements of a cell, and the last trial
    to finish would otherwise stand for the cell. `biobench study NAME` shows them.

    `studies`: each named study's best trial (`biobench study NAME`, first row) as a row of its
    own, and only the tables (dataset and protocol) that hold one, with the plain runs of that
    protocol beside it; `datasets` and `architecture` narrow those plain runs."""
    load_all()  # labels, families and orders come from the registries, plugins included
    best: dict[int, str] = {}
    if studies:
        from biobench.search.report import best_run  # Optuna, only when a study is asked for

        for name in dict.fromkeys(studies):
            best[best_run(name, store)[1].id] = name
    runs = [
        r
        for r in store.runs(run_ids)
        if r.id in best
        or (
            (datasets is None or r.dataset in datasets)
            and (architecture is None or r.architecture == architecture)
            and (run_ids is not None or r.study is None)
        )
    ]
    epochs = store.epochs([r.id for r in runs])
    frame = comparison(runs, epochs, load_presets(), final=final, studies=best, select=select)
    if not studies or frame.empty:
        return frame
    tables = frame.loc[frame["study"].notna(), ["dataset", "protocol"]].drop_duplicates()
    frame = frame.merge(tables, on=["dataset", "protocol"])  # keeps the frame's row order
    return frame.reset_index(drop=True)


# -- rendering --------------------------------------------------------------------------------


def _num(value: float, std: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    text = f"{value:.2f}"
    # A spread of 0 (seeds that agree) is shown: it is a measurement, unlike one seed's.
    return f"{text}±{std:.2f}" if std is not None and math.isfinite(std) else text


def _signed(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _has_top5(block: pd.DataFrame) -> bool:
    return bool(block["paper_test_top5"].notna().any() or block["dataset"].eq("imagenet").any())


def comparison_tables(
    frame: pd.DataFrame, final: bool = False
) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) per dataset and protocol, in the paper's layout: methods down,
    grouped by family, architectures across, each with our train/test error, the published
    reference (the paper's, or biotorch's where the column says so), Δ and the gap to BP.
    The title names the epoch each run's errors are from (its `selection`; `final` is kept
    for callers that pass it, the frame says the same). A reference measured under another
    protocol (the paper's 500 epochs beside a 3-epoch run) is marked `*`, and the title says
    which protocol that was; a run that could not be scored the reference's way is marked `†`,
    and a line after the title's first says why; a rule on a network where biobench's
    construction is not the rule's own paper's is marked `‡`, with a line saying whose."""
    tables = []
    for (dataset, protocol), block in frame.groupby(["dataset", "protocol"], sort=False):
        top5 = _has_top5(block)
        elsewhere = _measured_elsewhere(block, protocol)
        archs = list(dict.fromkeys(block["architecture"]))
        sources = block["reference"].dropna() if "reference" in block else []
        source = sources.iloc[0] if len(sources) else "paper"
        header = ["family", "method"]
        for arch in archs:
            header += [
                f"{arch} train",
                f"{arch} test" + (" top-1/5" if top5 else ""),
                f"{arch} {source}",
                f"{arch} Δ",
                f"{arch} vs BP",
            ]
        rows = []
        shown = None
        for label, method_rows in block.groupby("label", sort=False):
            family = method_rows["family"].iloc[0]
            row = ["" if family == shown else FAMILIES.get(family, family), str(label)]
            shown = family
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
                paper += "*" if elsewhere[r.name] else ""
                paper += "†" if _unscored(r) else ""
                test += "‡" if isinstance(r.get("construction"), str) else ""
                runs = f" (n={r['runs']})" if r["runs"] > 1 else ""
                others = int(r["other_specs"])
                runs += f" +{others}" if others else ""
                row += [
                    _num(r["train_top1"], r["train_top1_std"]),
                    test + runs,
                    paper,
                    _signed(r["delta_test_top1"]),
                    _signed(r["gap_to_bp"]),
                ]
            rows.append(row)
        other = sorted(set(block.loc[elsewhere, "reference_protocol"]))
        note = f"; * {source}: {' / '.join(other)}" if other else ""
        which = " / ".join(SELECTIONS[s] for s in dict.fromkeys(_selections(block, final)))
        title = f"{dataset}: {protocol} (errors in %, {which}{note})"
        for _, r in block.iterrows():
            if _unscored(r):
                title += f"\n† {r['label']} on {r['architecture']}: {r['unscored']}"
        hidden = block[block["other_specs"] > 0]
        if len(hidden):
            title += (
                "\n+N: N other settings of the rule ran in this cell and are not shown (the row "
                "is the setting with most seeds, then the newest); `biobench runs` lists them, "
                "`compare --format csv` counts them as other_specs"
            )
        for _, r in block.iterrows():
            if isinstance(r.get("construction"), str):
                title += f"\n‡ {r['label']} on {r['architecture']}: {r['construction']}"
        tables.append((title, header, rows))
    return tables


def _selections(block: pd.DataFrame, final: bool) -> list[str]:
    if "selection" not in block:  # a frame from before selections: best or final epoch
        return ["final" if final else DEFAULT_SELECTION]
    return list(block["selection"])


def _unscored(row: pd.Series) -> bool:
    return isinstance(row.get("unscored"), str)


def _measured_elsewhere(block: pd.DataFrame, protocol: str) -> pd.Series:
    """Per row: its reference number was measured under a protocol other than `protocol`."""
    theirs = block["reference_protocol"]
    return theirs.notna() & theirs.ne(protocol) & block["paper_test_top1"].notna()


def rich_tables(frame: pd.DataFrame, final: bool = False) -> list[Table]:
    tables = []
    for title, header, rows in comparison_tables(frame, final):
        title, _, notes = title.partition("\n")
        table = Table(
            title=escape(title),
            caption=escape(notes) or None,
            title_justify="left",
            caption_justify="left",
            box=None,
            pad_edge=False,
        )
        for i, column in enumerate(header):
            table.add_column(column, justify="left" if i < 2 else "right", no_wrap=i < 2)
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))  # names are the user's: not markup
        tables.append(table)
    return tables


def print_tables(console: Console, frame: pd.DataFrame, final: bool = False) -> None:
    """The comparison tables, each at its natural width: a cell is never wrapped or cut, so a
    narrow terminal wraps whole lines and a pipe gets one line per row."""
    for table in rich_tables(frame, final):
        print_natural(console, table)


def render_markdown(frame: pd.DataFrame, final: bool = False) -> str:
    parts = []
    for title, header, rows in comparison_tables(frame, final):
        title, _, notes = title.partition("\n")
        lines = [
            f"### {title}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        if notes:
            lines += ["", *notes.split("\n")]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def render_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", indent=2, double_precision=15) + "\n"
