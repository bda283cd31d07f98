"""check: each preset's finished runs against its reference numbers, with a verdict CI can use
(pass, improved, regressed or missing), and the same as a JUnit XML report.

A preset with no reference (a rule its source never measured, a user's preset) gets the
verdict "no reference": never a failure, never a pass, and said as such beside its measured
error, so a table of verdicts never reads as if it had been checked.

Each run's error is its test top-1 error at the epoch its preset's reference source selects
(compare.SELECTIONS: the paper's best test epoch, biotorch's best validation epoch), or at the
epoch `select` names for every preset."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any
from xml.etree import ElementTree

from biobench.spec import Preset, load_presets, resolve, seedless_hash
from biobench.store.records import RunRecord, RunStatus
from biobench.text import xml_text

NO_REFERENCE = "no reference"
VERDICTS = ("pass", "improved", "regressed", "missing", NO_REFERENCE)  # in the summary's order


@dataclass(frozen=True)
class Verdict:
    preset: str
    verdict: str  # pass, improved, regressed, missing, or "no reference"
    reference: float | None  # None: the preset has no reference
    tolerance: float | None
    measured: float | None  # mean best test top-1 over the matching runs
    runs: int
    detail: str


def check(
    presets: Iterable[Preset],
    runs: list[RunRecord],
    specs: dict[str, dict[str, Any]],
    scores: dict[str, dict[int, float | None]] | None = None,
) -> list[Verdict]:
    """Each preset's finished runs (whose spec is the preset's current one, any seed) against
    its reference test top-1 error: within tolerance passes, above regresses, below improves;
    a preset without a reference is "no reference", with its runs' error when it has some.

    `specs` maps preset name -> its resolved spec dict, so runs of an edited preset, whose
    numbers no longer say anything about it, do not count. `scores` maps preset name -> run
    id -> the run's test top-1 error at its selected epoch (None: it has no such epoch); by
    default a run's score is its best test error.
    """
    verdicts = []
    for preset in presets:
        wanted = seedless_hash(specs[preset.name])
        mine = (scores or {}).get(preset.name)
        matching = [
            (r if mine is None else replace(r, best_test_top1=mine.get(r.id)))
            for r in runs
            if r.preset == preset.name
            and r.status == RunStatus.finished
            and seedless_hash(r.spec) == wanted
        ]
        matching = [r for r in matching if r.best_test_top1 is not None]
        reference = preset.reference.get("test_top1")
        if reference is None or preset.tolerance is None:
            measured = statistics.fmean(r.best_test_top1 for r in matching) if matching else None
            ids = ", ".join(str(r.id) for r in matching)
            ran = f"run(s) {ids}" if matching else "no finished run"
            verdicts.append(
                Verdict(
                    preset.name,
                    NO_REFERENCE,
                    None,
                    None,
                    measured,
                    len(matching),
                    f"{ran}; the preset has no reference number to check against",
                )
            )
            continue
        if not matching:
            stale = sum(r.preset == preset.name for r in runs)
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
                    f"{detail}; `biobench run --preset {preset.name}`",
                )
            )
            continue
        measured = statistics.fmean(r.best_test_top1 for r in matching)
        # Each verdict but regressed needs a comparison to hold, and every comparison with a
        # NaN is false: an error or tolerance that is not a number never passes.
        if math.isfinite(measured) and measured < reference - preset.tolerance:
            verdict = "improved"
        elif math.isfinite(measured) and measured <= reference + preset.tolerance:
            verdict = "pass"
        else:
            verdict = "regressed"
        ids = ", ".join(str(r.id) for r in matching)
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


def check_store(store: Any, names: list[str] | None, select: str | None = None) -> list[Verdict]:
    """Verdicts for the named presets, or for every preset that has a run (names=None), each
    run scored at the epoch its preset's reference selects (or `select`'s)."""
    from biobench.results.compare import (
        DEFAULT_SELECTION,
        check_selection,
        select_epoch,
        source_of,
    )

    check_selection(select)
    config = load_presets()
    presets = (
        [config.preset(n) for n in names] if names is not None else list(config.presets.values())
    )
    specs = {p.name: resolve(preset=p.name).to_dict() for p in presets}
    runs = store.runs()
    wanted = {p.name for p in presets}
    finished = [r for r in runs if r.preset in wanted and r.status == RunStatus.finished]
    epochs: dict[int, list[dict[str, Any]]] = {}
    for row in store.epochs([r.id for r in finished]):
        epochs.setdefault(row["run_id"], []).append(row)
    scores: dict[str, dict[int, float | None]] = {p.name: {} for p in presets}
    for preset in presets:
        source = source_of(config, preset.name)
        selection = select or (source.selection if source else DEFAULT_SELECTION)
        for run in (r for r in finished if r.preset == preset.name):
            row = select_epoch(epochs.get(run.id, []), selection)
            scores[preset.name][run.id] = None if row is None else row["test_top1"]
    verdicts = check(presets, runs, specs, scores)
    if names is None:  # checking everything: presets never run are not news
        verdicts = [v for v in verdicts if v.runs]
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
        skipped=str(
            sum(
                (v.verdict == "missing" and not fail_missing) or v.verdict == NO_REFERENCE
                for v in verdicts
            )
        ),
    )
    for v in verdicts:  # ElementTree escapes markup; xml_text what XML 1.0 cannot hold
        name = xml_text(v.preset)
        case = ElementTree.SubElement(suite, "testcase", classname="biobench", name=name)
        message = xml_text(f"{v.verdict}: {describe(v)}")
        if v.verdict in failing:
            ElementTree.SubElement(case, "failure", message=message, type=v.verdict)
        elif v.verdict in ("missing", NO_REFERENCE):
            ElementTree.SubElement(case, "skipped", message=message)
        else:
            ElementTree.SubElement(case, "system-out").text = message
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True)


def describe(v: Verdict) -> str:
    if v.measured is None:
        return v.detail
    if v.reference is None:
        return f"test top-1 {v.measured:.2f}% ({v.detail})"
    return (
        f"test top-1 {v.measured:.2f}% vs reference {v.reference:.2f}% ± {v.tolerance:g} "
        f"({v.detail})"
    )
