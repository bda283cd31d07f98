"""Properties that hold for every input, checked with Hypothesis on generated ones.

- top-k error never rises with k, and top-k counts match a brute-force ranking;
- a comparison's gap to BP is zero for BP itself, and otherwise the difference to BP's row;
- a `--set` value (and --epochs/--batch-size/--seed) always beats the preset's;
- HParam.parse round-trips every valid value and refuses every value out of range;
- a run interrupted at any moment and resumed stores the uninterrupted run's numbers.

Examples are few and small (fast, deterministic enough for CI); no example database is kept.
"""

from __future__ import annotations

import functools
import math
import string
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from biobench.data import TensorSplit
from biobench.errors import SpecError
from biobench.learners.base import EpochList
from biobench.registry import ALGORITHMS, DATASETS, load_all
from biobench.results.compare import comparison
from biobench.spec import HParam, load_presets, resolve
from biobench.spec.params import LARGEST_INT
from biobench.store import Store
from biobench.store.records import RunRecord, RunStatus
from biobench.training.loop import Reporter, evaluate
from biobench.training.metrics import accuracy, topk_correct
from biobench.training.runner import execute, resume
from support.learners import StillLearner
from support.records import CREATED, run_record

FAST = settings(max_examples=50, deadline=None, database=None)
INT64 = 2**63 - 1

load_all()


# -- top-k -----------------------------------------------------------------------------------


@st.composite
def logits_and_labels(draw: st.DrawFn, distinct: bool = False) -> tuple[Tensor, Tensor]:
    """(N, classes) logits, with ties unless `distinct`, and labels in range."""
    n = draw(st.integers(1, 6))
    classes = draw(st.integers(1, 12))
    if distinct:
        rows = [draw(st.permutations(range(classes))) for _ in range(n)]
    else:
        rows = [
            draw(st.lists(st.integers(-2, 2), min_size=classes, max_size=classes))
            for _ in range(n)
        ]
    labels = draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n))
    return torch.tensor(rows, dtype=torch.float32), torch.tensor(labels)


@FAST
@given(logits_and_labels())
def test_topk_error_never_rises_with_k(case: tuple[Tensor, Tensor]) -> None:
    logits, labels = case
    classes = logits.shape[1]
    ks = list(range(1, classes + 3))
    errors = [100.0 - a for a in accuracy(logits, labels, ks)]
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:], strict=False))
    assert all(e == 0.0 for k, e in zip(ks, errors, strict=True) if k >= classes)
    assert all(0.0 <= e <= 100.0 for e in errors)


@FAST
@given(logits_and_labels(distinct=True), st.lists(st.integers(1, 14), min_size=1, max_size=5))
def test_topk_correct_counts_labels_ranked_above_k(
    case: tuple[Tensor, Tensor], ks: list[int]
) -> None:
    logits, labels = case
    # a label's rank: how many logits of its row beat it (distinct logits: no ties)
    ranks = [int((row > row[label]).sum()) for row, label in zip(logits, labels, strict=True)]
    expected = [sum(rank < k for rank in ranks) for k in ks]
    assert [int(c) for c in topk_correct(logits, labels, ks)] == expected


@FAST
@given(logits_and_labels(), st.integers(1, 8))
def test_evaluate_does_not_depend_on_the_batch_size(
    case: tuple[Tensor, Tensor], batch_size: int
) -> None:
    logits, labels = case
    split = TensorSplit(logits.view(len(logits), 1, 1, -1), labels)
    whole, batched = evaluate(StillLearner(), split), evaluate(StillLearner(), split, batch_size)
    assert (batched.top1, batched.top5) == (whole.top1, whole.top5)
    assert batched.loss == pytest.approx(whole.loss, rel=1e-5)
    assert batched.top5 <= batched.top1


# -- compare: the gap to BP ------------------------------------------------------------------

METHODS = [("bp", None), ("fa", None), ("dtp", "alternating"), ("dtp", "parallel")]


@functools.cache
def spec_dict(method: int, architecture: str, seed: int, epochs: int) -> Any:
    algorithm, mode = METHODS[method]
    return resolve(
        algorithm=algorithm,
        architecture=architecture,
        dataset="mnist",
        seed=seed,
        epochs=epochs,
        overrides=[f"mode={mode}"] if mode else [],
    )


def record(run_id: int, method: int, architecture: str, seed: int, epochs: int) -> RunRecord:
    return run_record(run_id, spec_dict(method, architecture, seed, epochs), finished_at=CREATED)


ERROR = st.one_of(st.floats(0.0, 100.0), st.just(math.nan))
RUN = st.tuples(
    st.integers(0, len(METHODS) - 1),
    st.sampled_from(["fc", "lc"]),
    st.integers(0, 2),  # seed
    st.sampled_from([3, 500]),  # two protocols
    st.lists(ERROR, min_size=1, max_size=3),  # test top-1 error per epoch
)


@FAST
@given(st.lists(RUN, min_size=1, max_size=8))
def test_the_gap_to_bp_is_zero_for_bp_and_the_difference_to_bp_otherwise(
    drawn: list[tuple[int, str, int, int, list[float]]],
) -> None:
    runs, epochs = [], []
    for run_id, (method, architecture, seed, n_epochs, errors) in enumerate(drawn, 1):
        runs.append(record(run_id, method, architecture, seed, n_epochs))
        epochs += [
            {"run_id": run_id, "train_top1": e, "test_top1": e, "test_top5": e} for e in errors
        ]
    frame = comparison(runs, epochs, load_presets())
    bp = {
        (r["protocol"], r["architecture"]): r["test_top1"]
        for _, r in frame.iterrows()
        if r["method"] == "bp"
    }
    for _, row in frame.iterrows():
        if row["method"] == "bp":
            expected = 0.0 if math.isfinite(row["test_top1"]) else math.nan
        else:
            baseline = bp.get((row["protocol"], row["architecture"]), math.nan)
            expected = row["test_top1"] - baseline
        assert row["gap_to_bp"] == expected or (
            math.isnan(row["gap_to_bp"]) and math.isnan(expected)
        )


# -- hyperparameters: parsing and precedence -------------------------------------------------


def int_bounds(param: HParam) -> tuple[int, int]:
    """The smallest and largest valid int (within 64 bits)."""
    low, high = -INT64, INT64
    if param.low is not None:
        low = max(low, math.floor(param.low) + 1 if param.low_open else math.ceil(param.low))
    if param.high is not None:
        high = min(high, math.ceil(param.high) - 1 if param.high_open else math.floor(param.high))
    return low, high


def valid_values(param: HParam) -> st.SearchStrategy[Any]:
    if param.choices is not None:
        return st.sampled_from(param.choices)
    if param.kind is bool:
        return st.booleans()
    if param.kind is int:
        return st.integers(*int_bounds(param))
    if param.kind is float:
        return st.floats(
            min_value=param.low,
            max_value=param.high,
            exclude_min=param.low is not None and param.low_open,
            exclude_max=param.high is not None and param.high_open,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(param, EpochList):  # increasing epochs, in their one spelling
        epochs = st.lists(st.integers(1, 10_000), min_size=1, unique=True)
        return epochs.map(lambda e: ",".join(map(str, sorted(e))))
    if param.kind is str:
        return st.text(string.ascii_letters + string.digits + "-_.", min_size=1)
    raise NotImplementedError(f"no strategy for {param.kind.__name__} settings: add one here")


def as_text(value: Any) -> str:
    """How a user writes the value after `--set name=`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def out_of_range(param: HParam) -> st.SearchStrategy[Any]:
    """Values of the right type beyond a bound (the bound itself when it is open)."""
    options = []
    if param.kind is float:
        finite = {"allow_nan": False, "allow_infinity": False}
        if param.low is not None:
            low = param.low
            options.append(
                st.floats(max_value=low, **finite).filter(
                    lambda v: v < low or (param.low_open and v == low)
                )
            )
        if param.high is not None:
            high = param.high
            options.append(
                st.floats(min_value=high, **finite).filter(
                    lambda v: v > high or (param.high_open and v == high)
                )
            )
    elif param.kind is int:
        low, high = int_bounds(param)
        if param.low is not None:
            options.append(st.integers(-INT64, low - 1))
        if param.high is not None:
            options.append(st.integers(high + 1, INT64))
    return st.one_of(options)


def every_hparam() -> list[Any]:
    cases = []
    for entry in ALGORITHMS.entries():
        for name, param in entry.hparams.items():
            cases.append(pytest.param(name, param, id=f"{entry.name}.{name}"))
    for entry in DATASETS.entries():
        for name, param in entry.settings.items():
            cases.append(pytest.param(name, param, id=f"{entry.name}.{name}"))
    return cases


BOUNDED = [
    case
    for case in every_hparam()
    if case.values[1].kind in (int, float)
    and case.values[1].choices is None
    and (case.values[1].low is not None or case.values[1].high is not None)
]


@pytest.mark.parametrize(("name", "param"), every_hparam())
@FAST
@given(data=st.data())
def test_hparam_parse_round_trips_every_valid_value(
    name: str, param: HParam, data: st.DataObject
) -> None:
    value = data.draw(valid_values(param))
    for raw in (as_text(value), value):
        parsed = param.parse(name, raw)
        assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("name", "param"), BOUNDED)
@FAST
@given(data=st.data())
def test_hparam_parse_refuses_every_value_out_of_range(
    name: str, param: HParam, data: st.DataObject
) -> None:
    value = data.draw(out_of_range(param))
    for raw in (as_text(value), value):
        with pytest.raises(SpecError, match="out of range|64 bits"):
            param.parse(name, raw)


@FAST
@given(
    low=st.floats(-1e6, 1e6),
    width=st.floats(0.0, 1e6),
    low_open=st.booleans(),
    high_open=st.booleans(),
    data=st.data(),
)
def test_hparam_parse_accepts_exactly_the_declared_interval(
    low: float, width: float, low_open: bool, high_open: bool, data: st.DataObject
) -> None:
    high = low + width
    param = HParam(
        float, "a test setting", low=low, high=high, low_open=low_open, high_open=high_open
    )
    value = data.draw(
        st.one_of(st.sampled_from([low, high]), st.floats(low - 1, high + 1)), label="value"
    )
    inside = (low < value or (value == low and not low_open)) and (
        value < high or (value == high and not high_open)
    )
    if inside:
        assert param.parse("x", as_text(value)) == value
    else:
        with pytest.raises(SpecError, match="out of range"):
            param.parse("x", as_text(value))


PRESETS = sorted(load_presets().presets)


@FAST
@given(data=st.data())
def test_a_set_value_always_beats_the_preset(data: st.DataObject) -> None:
    preset = load_presets().preset(data.draw(st.sampled_from(PRESETS), label="preset"))
    hparams = ALGORITHMS.entry(preset.algorithm).hparams
    schema = {**DATASETS.entry(preset.dataset).settings, **hparams}
    spec = resolve(preset=preset.name)

    def applies(name: str) -> bool:  # a setting the preset's other choices leave in force
        rule = schema[name].applies
        return rule is None or spec.hparams.get(rule[0]) in rule[1]

    name = data.draw(st.sampled_from(sorted(n for n in schema if applies(n))), label="name")
    value = data.draw(valid_values(schema[name]), label="value")
    spec = resolve(preset=preset.name, overrides=[f"{name}={as_text(value)}"])
    plain = resolve(preset=preset.name)
    where, other = (
        ("hparams", "data_settings") if name in hparams else ("data_settings", "hparams")
    )
    got = getattr(spec, where)[name]
    assert got == value and type(got) is type(value)
    rest = {k: v for k, v in getattr(spec, where).items() if k != name}
    assert rest == {k: v for k, v in getattr(plain, where).items() if k != name}
    assert getattr(spec, other) == getattr(plain, other)
    assert spec.preset == preset.name


# No shipped preset sets a dataset setting: these do, every one their datasets declare.
SETTING_PRESETS = """\
defaults: {seed: 0, epochs: 5, batch_size: 8}
presets:
  cifar10-augmented:
    algorithm: bp
    architecture: fc
    dataset: cifar10
    data_settings: {augment: true}
    reference: {test_top1: 50}
    tolerance: 1
  imagenet-three-workers:
    algorithm: fa
    architecture: lc
    dataset: imagenet
    hparams: {lr: 0.25}
    data_settings: {augment: false, workers: 3}
    reference: {test_top1: 50, test_top5: 20}
    tolerance: 1
"""


@pytest.fixture(scope="module")
def setting_presets(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("presets") / "benchmarks.yaml"
    path.write_text(SETTING_PRESETS)
    return str(path)


@FAST
@given(data=st.data())
def test_a_set_dataset_setting_always_beats_the_presets(
    setting_presets: str, data: st.DataObject
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOBENCH_BENCHMARKS", setting_presets)
        names = sorted(load_presets().presets)
        preset = load_presets().preset(data.draw(st.sampled_from(names), label="preset"))
        settings = DATASETS.entry(preset.dataset).settings
        assert set(preset.data_settings) == set(settings)
        name = data.draw(st.sampled_from(sorted(settings)), label="name")
        value = data.draw(valid_values(settings[name]), label="value")
        spec = resolve(preset=preset.name, overrides=[f"{name}={as_text(value)}"])
        assert spec.data_settings == {**preset.data_settings, name: value}
        assert spec.hparams == resolve(preset=preset.name).hparams


@FAST
@given(
    preset=st.sampled_from(PRESETS),
    epochs=st.integers(1, LARGEST_INT),
    batch_size=st.integers(1, LARGEST_INT),
    seed=st.integers(0, LARGEST_INT),
)
def test_run_options_always_beat_the_preset(
    preset: str, epochs: int, batch_size: int, seed: int
) -> None:
    spec = resolve(preset=preset, epochs=epochs, batch_size=batch_size, seed=seed)
    assert (spec.epochs, spec.batch_size, spec.seed) == (epochs, batch_size, seed)
    assert spec.hparams == resolve(preset=preset).hparams


# -- resume ----------------------------------------------------------------------------------

RESUMABLE = [  # (rule, --set): one optimiser, two (kp), a global feedback path, both TP modes
    ("bp", []),
    ("fa", []),
    ("kp", []),
    ("dfa", []),
    ("dtp", []),
    ("dtp", ["mode=alternating"]),
]
RESULTS = ("train_top1", "train_top5", "train_loss", "test_top1", "test_top5", "test_loss")


class Interrupt(Reporter):
    """Ctrl-C at one moment of a run: before batch `batch` of `epoch` (None: right after that
    epoch's row is written, before its checkpoint is)."""

    def __init__(self, epoch: int, batch: int | None) -> None:
        self.at, self.batch = epoch, batch

    @contextmanager
    def epoch(self, epoch: int, epochs: int, batches: int) -> Iterator[Callable[[int], None]]:
        seen = iter(range(batches + 1))

        def advance(images: int) -> None:
            if epoch == self.at and next(seen) + 1 == self.batch:
                raise KeyboardInterrupt

        yield advance

    def epoch_done(self, epoch: int, epochs: int, row: dict[str, float]) -> None:
        if epoch == self.at and self.batch is None:
            raise KeyboardInterrupt


@pytest.mark.slow
@settings(max_examples=12, deadline=None, database=None)
@given(
    rule=st.sampled_from(RESUMABLE),
    epochs=st.integers(1, 3),
    data=st.data(),
)
def test_a_run_interrupted_anywhere_then_resumed_stores_the_uninterrupted_runs_numbers(
    rule: tuple[str, list[str]], epochs: int, data: st.DataObject
) -> None:
    # Ctrl-C mid-batch loop, or between an epoch's row and its checkpoint (the row is then
    # written twice), in any epoch: `biobench run --resume` must end with the same rows.
    algorithm, overrides = rule
    at = data.draw(st.integers(1, epochs), label="interrupted epoch")
    batch = data.draw(st.one_of(st.none(), st.integers(1, 4)), label="before batch")
    seed = data.draw(st.integers(0, 3), label="seed")
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="synthetic",
                   epochs=epochs, batch_size=250, seed=seed, overrides=overrides)  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        store = Store(f"sqlite:///{scratch}/results.db")
        where = dict(device=torch.device("cpu"), data_dir=Path(scratch))
        whole = execute(spec, store=store, checkpoint_dir=Path(scratch), **where)
        with pytest.raises(KeyboardInterrupt):
            execute(spec, store=store, checkpoint_dir=Path(scratch),
                    reporter=Interrupt(at, batch), **where)  # fmt: skip
        cut = store.runs()[0]
        assert cut.status == RunStatus.interrupted and cut.epochs_done == at - (batch is not None)
        resume(cut.id, store=store, **where)
        assert store.run(cut.id).status == RunStatus.finished

        def results(run_id: int) -> list[tuple]:
            return [(e["epoch"], *(e[m] for m in RESULTS)) for e in store.epochs([run_id])]

        assert results(cut.id) == results(whole)
        assert [e["epoch"] for e in store.epochs([whole])] == list(range(1, epochs + 1))
