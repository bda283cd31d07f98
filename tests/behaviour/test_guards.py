"""Guards on every number a user reads: the epoch row `fit` records, top-k errors, `check`'s
verdicts, which runs `compare` averages, and the store's filters.

Each test is built so that a one-line slip cannot pass it: train and test splits whose errors
differ in every metric, logits that rank every label second (top-1 error 100, top-5 error 0),
seeds whose mean and best disagree, values exactly on `reference ± tolerance` (exact in binary
floating point) and the next float beyond, and cells where "most runs", "newest" and "most
seeds" pick different specs.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import biobench.training.loop as loop
from biobench.data import Dataset, TensorSplit
from biobench.learners.base import Learner, WeightTransportError
from biobench.nn.ops import transpose
from biobench.registry import ALGORITHMS, ARCHITECTURES, DataInfo
from biobench.results.check import Verdict, check, check_store, describe, junit_xml
from biobench.results.compare import (
    Method,
    _arch_order,
    _num,
    _signed,
    comparison,
    latest_per_seed,
    method_of,
    protocol_of,
)
from biobench.spec import Preset, load_presets, resolve
from biobench.store import Store
from biobench.store.records import RunRecord, RunStatus
from biobench.training.loop import Diverged, Reporter, evaluate, fit
from biobench.training.metrics import accuracy, topk_correct
from support.records import bp_run, epoch_rows, run_record

CLASSES = 8

# -- a network whose logits are its input, and a learner that never changes it ----------------


class LogitsFromImages(nn.Module):
    """x (N, 1, 1, classes) -> logits (N, classes): the data decides every prediction."""

    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Parameter(torch.zeros(1))  # unused: lets a test make the weights NaN
        self.modes: list[tuple[bool, bool]] = []  # (training, grad enabled) at each call

    def forward(self, x: Tensor) -> Tensor:
        self.modes.append((self.training, torch.is_grad_enabled()))
        return x.flatten(1)


class StillLearner(Learner):
    """Records what the loop asks of it and learns nothing."""

    def __init__(self, phases: tuple[str, ...] = ("train",)) -> None:
        super().__init__(LogitsFromImages(), {})
        self.phases = phases
        self.calls: list[tuple[str, int]] = []  # (phase or "step", batch size)

    def epoch_phases(self, epoch: int) -> tuple[str, ...]:
        return self.phases

    def start_phase(self, phase: str) -> None:
        self.calls.append((phase, 0))

    def train_step(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        self.calls.append(("step", len(y)))
        return {}

    def logits(self, x: Tensor) -> Tensor:  # a plugin may forget torch.no_grad here
        return self.net(x)


def ranked(labels: list[int], ranks: list[int], classes: int = CLASSES) -> TensorSplit:
    """Images whose logits put sample i's label at position ranks[i] (0 = the best logit)."""
    rows = []
    for label, rank in zip(labels, ranks, strict=True):
        order = [c for c in range(classes) if c != label]
        order.insert(rank, label)
        logits = torch.empty(classes)
        for position, c in enumerate(order):
            logits[c] = float(classes - position)
        rows.append(logits)
    return TensorSplit(torch.stack(rows).view(len(rows), 1, 1, classes), torch.tensor(labels))


def logits_of(split: TensorSplit) -> Tensor:
    return split.x.flatten(1)


# Train: two labels first, two beyond the top 5 (top-1 and top-5 error 50). Test: every label
# second (top-1 error 100, top-5 error 0). A separate train-evaluation split: every label first.
TRAIN = ranked([0, 1, 2, 3], [0, 0, 6, 7])
TEST = ranked([4, 5, 6, 7], [1, 1, 1, 1])
TRAIN_EVAL = ranked([1, 2, 3], [0, 0, 0])


def dataset(train_eval: TensorSplit | None = None) -> Dataset:
    return Dataset("ranked", TRAIN, TEST, CLASSES, "tests", train_eval=train_eval)


class Recorder(Reporter):
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Any]:
        self.events.append(("epoch", epoch, epochs, batches))
        yield lambda images: self.events.append(("advance", images))

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        self.events.append(("done", epoch, epochs, row["test_top1"]))


def run_fit(learner: Learner, data: Dataset, **kw: Any) -> list[tuple[int, dict[str, float]]]:
    rows: list[tuple[int, dict[str, float]]] = []
    fit(
        learner,
        data,
        batch_size=kw.pop("batch_size", 3),
        generator=torch.Generator().manual_seed(0),
        on_epoch=lambda epoch, row: rows.append((epoch, dict(row))),
        **{"epochs": 1, **kw},
    )
    return rows


# -- fit: which split each number of the epoch row comes from --------------------------------


@pytest.mark.parametrize("train_eval", [None, TRAIN_EVAL], ids=["train", "train_eval"])
def test_the_epoch_row_takes_test_numbers_from_the_test_split_and_train_numbers_from_train_eval(
    train_eval: TensorSplit | None,
) -> None:
    measured = TRAIN if train_eval is None else train_eval
    ((epoch, row),) = run_fit(StillLearner(), dataset(train_eval))
    assert epoch == 1
    assert (row["test_top1"], row["test_top5"]) == (100.0, 0.0)
    expected_train = (50.0, 50.0) if train_eval is None else (0.0, 0.0)
    assert (row["train_top1"], row["train_top5"]) == expected_train
    assert row["test_loss"] == pytest.approx(F.cross_entropy(logits_of(TEST), TEST.y).item())
    assert row["train_loss"] == pytest.approx(
        F.cross_entropy(logits_of(measured), measured.y).item()
    )


def test_the_epoch_row_times_training_alone_and_counts_every_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ticks = iter(range(100))
    monkeypatch.setattr(loop, "time", SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    ((_, row),) = run_fit(StillLearner(("inverse", "forward")), dataset())
    # perf_counter: 0 at the start, 1 after training, 2 after evaluating.
    assert row["wall_time"] == 2.0
    assert row["images_per_s"] == 2 * len(TRAIN) / 1.0
    batches = TRAIN.num_batches(3)
    assert row["step_ms"] == 1e3 / batches  # both passes of a batch: one step's cost
    assert row["eval_ms"] == 1e3
    assert set(row) == {
        "train_top1",
        "train_top5",
        "train_loss",
        "test_top1",
        "test_top5",
        "test_loss",
        "wall_time",
        "images_per_s",
        "step_ms",
        "eval_ms",
        "peak_memory_mb",  # StillLearner laps no phase: no step_ms_<phase>
    }


def test_fit_runs_epochs_from_start_epoch_through_epochs_with_every_phase_and_batch() -> None:
    learner = StillLearner(("inverse", "forward"))
    reporter = Recorder()
    order: list[tuple[str, int]] = []
    fit(
        learner,
        dataset(),
        epochs=3,
        start_epoch=2,
        batch_size=3,
        generator=torch.Generator().manual_seed(0),
        on_epoch=lambda epoch, row: order.append(("row", epoch)),
        on_checkpoint=lambda epoch: order.append(("checkpoint", epoch)),
        reporter=reporter,
    )
    assert order == [("row", 2), ("checkpoint", 2), ("row", 3), ("checkpoint", 3)]
    one_pass = [("step", 3), ("step", 1)]  # 4 training images in batches of 3
    epoch = [("inverse", 0), *one_pass, ("forward", 0), *one_pass]
    assert learner.calls == epoch + epoch
    advances = [("advance", 3), ("advance", 1)] * 2
    assert reporter.events == [
        ("epoch", 2, 3, 4),  # 2 batches x 2 passes
        *advances,
        ("done", 2, 3, 100.0),
        ("epoch", 3, 3, 4),
        *advances,
        ("done", 3, 3, 100.0),
    ]
    assert learner.net.training  # evaluation gave the training mode back


def nan_images(split: TensorSplit) -> TensorSplit:
    x = split.x.clone()
    x[0, 0, 0, 0] = math.nan
    return TensorSplit(x, split.y)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("train", "train loss is nan"),
        ("test", "test loss is nan"),
        ("weights", "weights spare are not finite"),
    ],
)
def test_a_diverged_epoch_is_recorded_then_training_stops_without_a_checkpoint(
    where: str, reason: str
) -> None:
    learner = StillLearner()
    data = dataset()
    if where == "train":
        data = replace(data, train=nan_images(TRAIN))
    elif where == "test":
        data = replace(data, test=nan_images(TEST))
    else:
        with torch.no_grad():
            learner.net.spare.fill_(math.nan)
    rows: list[int] = []
    checkpoints: list[int] = []
    with pytest.raises(Diverged, match=f"^diverged at epoch 1: {reason}$") as caught:
        fit(
            learner,
            data,
            epochs=3,
            batch_size=4,
            generator=torch.Generator().manual_seed(0),
            on_epoch=lambda epoch, row: rows.append(epoch),
            on_checkpoint=checkpoints.append,
        )
    assert caught.value.epoch == 1
    assert rows == [1] and checkpoints == []


# -- evaluate and topk_correct: top-1 and top-5 are different counts -------------------------


def test_a_label_ranked_second_is_a_top5_hit_and_a_top1_miss_in_evaluate() -> None:
    result = evaluate(StillLearner(), TEST)
    assert (result.top1, result.top5) == (100.0, 0.0)


def test_a_label_ranked_second_is_a_top5_hit_and_a_top1_miss_in_topk_correct() -> None:
    counts = topk_correct(logits_of(TEST), TEST.y, (1, 2, 5))
    assert [int(c) for c in counts] == [0, 4, 4]


def test_topk_correct_counts_each_k_separately() -> None:
    split = ranked([0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 4, 5, 7, 0])
    counts = topk_correct(logits_of(split), split.y, (5, 1, 2, 3, 6, 8, 20))
    assert [int(c) for c in counts] == [5, 2, 3, 4, 6, 7, 7]


def test_top1_and_top5_are_what_topk_correct_and_accuracy_count_by_default() -> None:
    split = ranked([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 4, 5, 1, 0, 7, 2])
    assert [int(c) for c in topk_correct(logits_of(split), split.y)] == [2, 6]
    assert accuracy(logits_of(split), split.y) == [25.0, 75.0]


@pytest.mark.parametrize(
    ("logits", "target", "shapes"),
    [
        (torch.zeros(4, 3, 1), torch.zeros(4, dtype=torch.long), "(4, 3, 1) and (4,)"),
        (torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long), "(4, 3) and (4, 1)"),
        (torch.zeros(4, 3), torch.zeros(3, dtype=torch.long), "(4, 3) and (3,)"),
    ],
)
def test_topk_correct_refuses_mismatched_shapes_naming_both(
    logits: Tensor, target: Tensor, shapes: str
) -> None:
    expected = f"expected logits (N, classes) and targets (N,), got {shapes}"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        topk_correct(logits, target)


def test_accuracy_of_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="^accuracy of an empty batch is undefined$"):
        accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


@pytest.mark.parametrize("batch_size", [1, 3, 7, 1024])
def test_evaluate_sums_hits_and_loss_over_every_batch(batch_size: int) -> None:
    # top-1 hits: samples 0 and 6; top-5 hits: 0, 1, 2, 3, 6 (rank 5 and 7 miss both).
    split = ranked([0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 4, 5, 7, 0])
    result = evaluate(StillLearner(), split, batch_size=batch_size)
    assert result.top1 == pytest.approx(100.0 * (1 - 2 / 7))
    assert result.top5 == pytest.approx(100.0 * (1 - 5 / 7))
    assert result.loss == pytest.approx(F.cross_entropy(logits_of(split), split.y).item())


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_runs_the_net_in_eval_mode_without_autograd_and_gives_its_mode_back(
    training: bool,
) -> None:
    learner = StillLearner()
    learner.net.train(training)
    evaluate(learner, TEST, batch_size=2)
    assert learner.net.modes == [(False, False), (False, False)]
    assert learner.net.training is training


def test_evaluate_refuses_an_empty_split() -> None:
    empty = TensorSplit(torch.zeros(0, 1, 1, CLASSES), torch.zeros(0))
    with pytest.raises(ValueError, match="^cannot evaluate an empty split$"):
        evaluate(StillLearner(), empty)


# -- the weight-transport guard: what it refuses, and what it cannot see ---------------------


def test_the_transport_guard_refuses_ws_memory_but_cannot_see_a_copy_of_its_values() -> None:
    """The README's claim, to its boundary: a feedback weight in W's own memory is refused
    wherever a rule passes it (transpose), but W's values copied into a tensor of the rule's
    own are indistinguishable from a learned B, and carry backprop's signal without an error."""
    torch.manual_seed(0)
    top = ARCHITECTURES.get("fc")(DataInfo("digits", (1, 8, 8), 10)).layers[-1]
    weight, delta = top.op.weight, torch.randn(4, 10)
    for feedback in (weight, weight.detach(), weight.detach().t().t(), weight.detach()[:, :5]):
        with pytest.raises(WeightTransportError, match="Dense is its forward weight"):
            transpose(top.op, delta, feedback)
    copied = transpose(top.op, delta, weight.detach().clone())  # no error: the boundary
    torch.testing.assert_close(copied, delta @ weight.detach(), rtol=0, atol=0)


# -- records for check and compare, without a database ---------------------------------------


# -- check: the mean over seeds against reference ± tolerance --------------------------------

PRESET = "mnist-fc-bp"
REFERENCE, TOLERANCE = 2.0, 0.5  # the bounds 1.5 and 2.5 are exact in binary floating point


def preset() -> Preset:
    return replace(
        load_presets().preset(PRESET), reference={"test_top1": REFERENCE}, tolerance=TOLERANCE
    )


def verdict_of(runs: list[RunRecord]) -> Verdict:
    (verdict,) = check([preset()], runs, {PRESET: resolve(preset=PRESET).to_dict()})
    return verdict


def seeds(*bests: float) -> list[RunRecord]:
    return [
        run_record(i + 1, resolve(preset=PRESET, seed=i), best_test_top1=b)
        for i, b in enumerate(bests)
    ]


@pytest.mark.parametrize(
    ("bests", "verdict", "mean"),
    [
        ((2.0, 3.5), "regressed", 2.75),  # the best seed alone would pass
        ((1.5, 3.0), "pass", 2.25),  # the worst seed alone would regress
        ((2.5, 1.0), "pass", 1.75),  # the best seed alone would improve
        ((1.0, 1.25, 1.5), "improved", 1.25),  # the worst seed alone would pass
    ],
)
def test_check_judges_a_preset_by_the_mean_over_its_seeds(
    bests: tuple[float, ...], verdict: str, mean: float
) -> None:
    result = verdict_of(seeds(*bests))
    assert (result.verdict, result.measured, result.runs) == (verdict, mean, len(bests))
    assert (result.reference, result.tolerance) == (REFERENCE, TOLERANCE)
    assert result.detail == "run(s) " + ", ".join(str(i + 1) for i in range(len(bests)))


@pytest.mark.parametrize(
    ("measured", "verdict"),
    [
        (REFERENCE + TOLERANCE, "pass"),
        (math.nextafter(REFERENCE + TOLERANCE, math.inf), "regressed"),
        (REFERENCE - TOLERANCE, "pass"),
        (math.nextafter(REFERENCE - TOLERANCE, -math.inf), "improved"),
        (REFERENCE, "pass"),
        (math.nan, "regressed"),
        (math.inf, "regressed"),
    ],
)
def test_check_flips_its_verdict_just_beyond_reference_plus_or_minus_tolerance(
    measured: float, verdict: str
) -> None:
    assert REFERENCE + TOLERANCE == 2.5 and REFERENCE - TOLERANCE == 1.5  # exact
    assert verdict_of(seeds(measured)).verdict == verdict


def test_check_counts_only_finished_runs_of_the_presets_current_spec_with_a_number() -> None:
    current = resolve(preset=PRESET, seed=3)
    runs = [
        run_record(1, current, best_test_top1=2.0),
        run_record(2, current, status=RunStatus.failed, best_test_top1=9.0),
        run_record(3, current, status=RunStatus.lost, best_test_top1=9.0),
        run_record(4, resolve(preset=PRESET, epochs=3), best_test_top1=9.0),  # an edited preset
        run_record(5, resolve(preset="mnist-fc-fa"), best_test_top1=9.0),  # another preset
        run_record(6, current, best_test_top1=None),  # finished before its first epoch
        run_record(7, resolve(preset=PRESET, seed=4), best_test_top1=3.0),
    ]
    result = verdict_of(runs)
    assert (result.verdict, result.measured, result.runs) == ("pass", 2.5, 2)
    assert result.detail == "run(s) 1, 7"


@pytest.mark.parametrize(
    ("statuses", "detail"),
    [
        ((), "no finished run; `biobench run --preset mnist-fc-bp`"),
        (
            (RunStatus.running, RunStatus.failed),
            "2 run(s), none finished with the preset's current spec (edited preset, options "
            "overridden, or still running); `biobench run --preset mnist-fc-bp`",
        ),
    ],
)
def test_check_says_why_a_preset_is_missing(statuses: tuple[RunStatus, ...], detail: str) -> None:
    runs = [run_record(i, resolve(preset=PRESET), status=s) for i, s in enumerate(statuses, 1)]
    result = verdict_of(runs)
    assert (result.verdict, result.measured, result.runs, result.detail) == (
        "missing",
        None,
        0,
        detail,
    )


def test_checking_every_preset_leaves_out_those_never_run_and_naming_one_keeps_it(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    run_id = store.create_run(**resolve(preset=PRESET).run_fields(), device="cpu", environment={})
    store.write_epoch(run_id, 1, {"test_top1": 1.5})  # mnist-fc-bp: 1.48 ± 0.5
    store.set_status(run_id, "finished")
    assert [(v.preset, v.verdict) for v in check_store(store, None)] == [(PRESET, "pass")]
    named = check_store(store, ["mnist-fc-fa", PRESET])
    assert [(v.preset, v.verdict) for v in named] == [("mnist-fc-fa", "missing"), (PRESET, "pass")]


VERDICTS = [
    Verdict("a", "pass", 1.48, 0.5, 1.5, 2, "run(s) 1, 2"),
    Verdict("b", "regressed", 1.26, 0.5, 9.0, 1, "run(s) 3"),
    Verdict("c", "improved", 2.0, 0.25, 1.0, 1, "run(s) 4"),
    Verdict("d", "missing", 1.0, 0.5, None, 0, "no finished run; `biobench run --preset d`"),
]


def test_describe_states_the_measured_mean_the_reference_and_the_tolerance() -> None:
    assert [describe(v) for v in VERDICTS] == [
        "test top-1 1.50% vs reference 1.48% ± 0.5 (run(s) 1, 2)",
        "test top-1 9.00% vs reference 1.26% ± 0.5 (run(s) 3)",
        "test top-1 1.00% vs reference 2.00% ± 0.25 (run(s) 4)",
        "no finished run; `biobench run --preset d`",
    ]


@pytest.mark.parametrize("fail_missing", [False, True])
def test_the_junit_report_fails_regressions_and_missing_results_only_when_asked(
    fail_missing: bool,
) -> None:
    text = junit_xml(VERDICTS, fail_missing)
    assert text.startswith("<?xml ")  # a declaration, then the suite
    suite = ElementTree.fromstring(text.split("\n", 1)[1])
    assert (suite.tag, suite.get("name"), suite.get("tests")) == (
        "testsuite",
        "biobench check",
        "4",
    )
    assert (suite.get("failures"), suite.get("skipped")) == (
        ("2", "0") if fail_missing else ("1", "1")
    )
    assert [case.tag for case in suite] == ["testcase"] * 4
    cases = {case.get("name"): case for case in suite}
    assert [c.get("classname") for c in cases.values()] == ["biobench"] * 4
    outcome = {
        name: [(e.tag, e.get("type"), e.get("message"), e.text) for e in case]
        for name, case in cases.items()
    }
    assert outcome == {
        "a": [("system-out", None, None, f"pass: {describe(VERDICTS[0])}")],
        "b": [("failure", "regressed", f"regressed: {describe(VERDICTS[1])}", None)],
        "c": [("system-out", None, None, f"improved: {describe(VERDICTS[2])}")],
        "d": [
            ("failure", "missing", f"missing: {describe(VERDICTS[3])}", None)
            if fail_missing
            else ("skipped", None, f"missing: {describe(VERDICTS[3])}", None)
        ],
    }


# -- compare: which runs of a cell are averaged ----------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "hparams", "key", "label", "family", "position"),
    [
        ("dtp", {"mode": "parallel"}, "dtp-par", "DTP parallel", "target-propagation", 0),
        ("dtp", {"mode": "alternating"}, "dtp-alt", "DTP alternating", "target-propagation", 1),
        ("dtp", {"mode": "sideways"}, "dtp-sideways", "DTP sideways", "target-propagation", 2),
        ("bp", {"lr": 0.1}, "bp", "BP", "backprop", 0),
    ],
)
def test_a_rules_row_is_named_grouped_and_ordered_by_its_registry_entry_and_mode(
    algorithm: str, hparams: dict[str, Any], key: str, label: str, family: str, position: int
) -> None:
    rank = ALGORITHMS.entry(algorithm).order
    assert method_of(algorithm, hparams) == Method(key, label, family, (rank, position, key))


@pytest.mark.parametrize(
    ("hparams", "key", "label"),
    [
        ({}, "mystery", "mystery"),
        ({"mode": "fast"}, "mystery-fast", "mystery fast"),
        ({"mode": "parallel"}, "mystery-par", "mystery parallel"),
    ],
)
def test_a_rule_no_longer_registered_still_gets_a_row_after_every_known_one(
    hparams: dict[str, Any], key: str, label: str
) -> None:
    assert method_of("mystery", hparams) == Method(key, label, "other", (10_000, 0, key))
    assert max(entry.order for entry in ALGORITHMS.entries()) < 10_000


def test_architectures_are_ordered_by_their_registry_entry_unknown_ones_last() -> None:
    known = [ARCHITECTURES.entry(a).order for a in ("fc", "lc", "conv")]
    assert [_arch_order(a) for a in ("fc", "lc", "conv", "mystery")] == [*known, 10_000]
    assert known == sorted(known) and max(known) < 10_000


def compare_one_cell(runs: list[RunRecord], errors: dict[int, list[float]]) -> dict[str, Any]:
    frame = comparison(runs, epoch_rows(errors), load_presets())
    assert len(frame) == 1, frame
    return frame.iloc[0].to_dict()


def test_a_cell_with_several_specs_shows_the_one_with_most_seeds_even_if_older() -> None:
    runs = [bp_run(1, 0), bp_run(2, 1), bp_run(3, 0, lr="0.002")]
    row = compare_one_cell(runs, {1: [1.0], 2: [3.0], 3: [9.0]})
    assert (row["run_ids"], row["runs"], row["other_specs"]) == ("1,2", 2, 1)
    assert (row["test_top1"], row["test_top1_std"]) == (2.0, pytest.approx(math.sqrt(2)))


def test_a_cell_with_specs_of_as_many_seeds_shows_the_newest() -> None:
    runs = [bp_run(1, 0), bp_run(2, 0, lr="0.002"), bp_run(3, 5, lr="0.003")]
    row = compare_one_cell(runs, {1: [1.0], 2: [9.0], 3: [4.0]})
    assert (row["run_ids"], row["test_top1"], row["other_specs"]) == ("3", 4.0, 2)


def test_repeats_of_a_seed_count_once_when_a_cell_picks_its_spec() -> None:
    # lr=0.001: seeds 0 and 1 (older); lr=0.002: seed 0 three times (more runs, newer).
    runs = [bp_run(1, 0), bp_run(2, 1), *(bp_run(i, 0, lr="0.002") for i in (3, 4, 5))]
    row = compare_one_cell(runs, {1: [1.0], 2: [2.0], 3: [7.0], 4: [8.0], 5: [9.0]})
    assert (row["run_ids"], row["runs"], row["test_top1"]) == ("1,2", 2, 1.5)


def test_a_repeated_seed_is_one_sample_its_newest_run() -> None:
    runs = [bp_run(4, 0), bp_run(2, 0), bp_run(3, 1)]
    row = compare_one_cell(runs, {2: [5.0], 3: [3.0], 4: [1.0]})
    assert (row["run_ids"], row["runs"], row["test_top1"]) == ("3,4", 2, 2.0)
    assert [r.id for r in latest_per_seed(runs)] == [3, 4]


def test_a_cell_ignores_runs_that_did_not_finish_or_have_no_epoch() -> None:
    runs = [
        bp_run(1, 0),
        replace(bp_run(2, 1), status=RunStatus.failed),
        replace(bp_run(3, 2), status=RunStatus.lost),
        bp_run(4, 3),  # finished without an epoch row
    ]
    row = compare_one_cell(runs, {1: [1.0], 2: [5.0], 3: [5.0]})
    assert (row["run_ids"], row["test_top1"]) == ("1", 1.0)


def test_the_best_epoch_of_each_run_skips_non_finite_epochs_and_final_takes_the_last() -> None:
    runs = [bp_run(1, 0)]
    errors = {1: [4.0, 2.0, math.nan, 3.0]}
    best = comparison(runs, epoch_rows(errors), load_presets()).iloc[0]
    final = comparison(runs, epoch_rows(errors), load_presets(), final=True).iloc[0]
    assert (best["test_top1"], best["train_top1"], best["test_top5"]) == (2.0, 1.0, 0.5)
    assert (final["test_top1"], final["train_top1"], final["test_top5"]) == (3.0, 1.5, 0.75)


def test_gap_to_bp_and_delta_to_the_paper_use_the_same_network_and_protocol() -> None:
    def run(run_id: int, algorithm: str, architecture: str, **kw: Any) -> RunRecord:
        spec = resolve(algorithm=algorithm, architecture=architecture, dataset="mnist", **kw)
        return run_record(run_id, spec)

    runs = [
        run(1, "bp", "fc"),
        run(2, "fa", "fc"),
        run(3, "fa", "lc"),  # no BP on lc
        run(4, "bp", "fc", epochs=3),  # another protocol
        run(5, "fa", "fc", epochs=3),
    ]
    frame = comparison(
        runs, epoch_rows({1: [1.5], 2: [2.25], 3: [4.0], 4: [8.0], 5: [9.0]}), load_presets()
    )
    rows = {
        (r["method"], r["architecture"], int(r["protocol"].split()[0])): r
        for _, r in frame.iterrows()
    }
    assert rows[("bp", "fc", 500)]["gap_to_bp"] == 0.0
    assert rows[("fa", "fc", 500)]["gap_to_bp"] == 0.75
    assert math.isnan(rows[("fa", "lc", 500)]["gap_to_bp"])
    assert rows[("fa", "fc", 3)]["gap_to_bp"] == 1.0  # to BP of its own protocol
    paper = load_presets().preset("mnist-fc-fa").reference["test_top1"]
    assert rows[("fa", "fc", 500)]["delta_test_top1"] == pytest.approx(2.25 - paper)


def test_the_comparison_frame_has_one_column_per_number_and_a_plain_index() -> None:
    frame = comparison([bp_run(1, 0)], epoch_rows({1: [1.0]}), load_presets())
    assert list(frame.columns) == [
        "dataset",
        "protocol",
        "method",
        "label",
        "family",
        "architecture",
        "runs",
        "other_specs",
        "run_ids",
        "train_top1",
        "train_top1_std",
        "test_top1",
        "test_top1_std",
        "test_top5",
        "test_top5_std",
        "paper_train_top1",
        "paper_test_top1",
        "paper_test_top5",
        "delta_test_top1",
        "reference_protocol",  # what the paper_* numbers were measured under
        "selection",  # which epoch the row's errors are from: best-test, best-val or final
        "reference_selection",  # how the reference's numbers were selected
        "unscored",  # why the row is not scored against its reference (else empty)
        "construction",  # whose construction of the rule on this network, if not its paper's
        "gap_to_bp",
        "reference",  # whose published numbers the paper_* columns hold: paper, biotorch
    ]
    assert list(frame.index) == [0]
    assert frame.iloc[0]["family"] == "backprop"


def test_comparison_keeps_only_the_dataset_and_architecture_asked_for() -> None:
    def run(run_id: int, dataset: str, architecture: str) -> RunRecord:
        return run_record(
            run_id, resolve(algorithm="bp", architecture=architecture, dataset=dataset)
        )

    # The digits run comes first: a filter that stopped at the first mismatch would drop all.
    runs = [run(1, "digits", "fc"), run(2, "mnist", "lc"), run(3, "mnist", "fc")]
    epochs = epoch_rows({1: [1.0], 2: [2.0], 3: [3.0]})

    def run_ids(**kw: str) -> list[str]:
        return sorted(comparison(runs, epochs, load_presets(), **kw)["run_ids"])

    assert run_ids(dataset="mnist") == ["2", "3"]
    assert run_ids(architecture="fc") == ["1", "3"]
    assert run_ids(dataset="mnist", architecture="fc") == ["3"]
    assert run_ids() == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("spec", "protocol"),
    [
        ({"epochs": 500, "batch_size": 128}, "500 epochs, batch 128"),
        ({"epochs": 3, "batch_size": 8, "data_settings": {}}, "3 epochs, batch 8"),
        (
            {"epochs": 3, "batch_size": 8, "data_settings": {"workers": 2, "augment": True}},
            "3 epochs, batch 8, augment=True,workers=2",
        ),
    ],
)
def test_a_protocol_names_epochs_batch_size_and_data_settings_in_order(
    spec: dict[str, Any], protocol: str
) -> None:
    assert protocol_of(spec) == protocol


@pytest.mark.parametrize(
    ("value", "std", "text"),
    [
        (1.234, None, "1.23"),
        (1.5, 0.0, "1.50±0.00"),  # two identical seeds: a spread of 0, measured (issue 27)
        (1.5, math.nan, "1.50"),  # one seed: its spread is unknown
        (1.5, 0.144, "1.50±0.14"),
        (math.nan, 0.1, "–"),
        (math.inf, None, "–"),
        (None, None, "–"),
    ],
)
def test_a_table_number_has_two_decimals_and_a_spread_whenever_one_was_measured(
    value: float | None, std: float | None, text: str
) -> None:
    assert _num(value, std) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "+0.00"), (0.674, "+0.67"), (-0.5, "-0.50"), (math.nan, "–"), (None, "–")],
)
def test_a_difference_is_signed_with_two_decimals(value: float | None, text: str) -> None:
    assert _signed(value) == text  # type: ignore[arg-type]


# -- the store's filters ---------------------------------------------------------------------

LONG_AGO = datetime(2000, 1, 1, tzinfo=timezone.utc)


def new_run(store: Store, algorithm: str = "bp", **fields: Any) -> int:
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="digits", epochs=2)
    return store.create_run(**spec.run_fields(), device="cpu", environment={}, **fields)


@pytest.fixture
def filled(db_url: str) -> Store:
    """Runs 1..6: lost, finished bp, lost, finished fa, running (alive), failed fa."""
    store = Store(db_url)
    new_run(store, heartbeat_at=LONG_AGO)  # 1: its heartbeat stopped long ago: lost
    store.set_status(new_run(store), "finished")  # 2
    new_run(store, "fa", heartbeat_at=LONG_AGO)  # 3: lost
    store.set_status(new_run(store, "fa"), "finished")  # 4
    new_run(store)  # 5: running, heartbeat fresh
    store.set_status(new_run(store, "fa"), "failed", "boom")  # 6
    for run_id, tests in {2: [5.0, 3.0, 4.0], 4: [7.0]}.items():
        for epoch, test in enumerate(tests, 1):
            store.write_epoch(run_id, epoch, {"test_top1": test, "test_top5": test / 2})
    return store


def ids(runs: list[RunRecord]) -> list[int]:
    return [r.id for r in runs]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [6, 5, 4, 3, 2, 1]),
        ({"limit": 2}, [6, 5]),
        ({"status": "lost"}, [3, 1]),
        ({"status": "lost", "limit": 1}, [3]),  # the newest lost run, though runs 4-6 are newer
        ({"status": RunStatus.lost, "limit": 5}, [3, 1]),
        ({"status": "running"}, [5]),  # a lost run is not running
        ({"status": "finished", "limit": 1}, [4]),
        ({"status": "failed", "limit": 1}, [6]),
        ({"status": "interrupted"}, []),
        ({"algorithm": "fa"}, [6, 4, 3]),
        ({"algorithm": "fa", "status": "finished"}, [4]),
        ({"algorithm": "fa", "limit": 1}, [6]),
        ({"algorithm": "bp", "status": "lost", "limit": 1}, [1]),
        ({"algorithm": "dtp"}, []),
        ({"run_ids": [1, 4, 5], "status": "lost"}, [1]),
        ({"run_ids": [2, 4], "limit": 1}, [4]),
    ],
)
def test_store_runs_filters_newest_first(
    filled: Store, kwargs: dict[str, Any], expected: list[int]
) -> None:
    assert ids(filled.runs(**kwargs)) == expected


def test_store_runs_summarise_each_runs_epochs(filled: Store) -> None:
    by_id = {r.id: r for r in filled.runs()}
    assert (by_id[2].epochs_done, by_id[2].best_test_top1, by_id[2].best_test_top5) == (
        3,
        3.0,
        1.5,
    )
    assert (by_id[4].epochs_done, by_id[4].best_test_top1) == (1, 7.0)
    assert (by_id[1].epochs_done, by_id[1].best_test_top1) == (0, None)
    assert by_id[6].error == "boom"
