"""Spec resolution: defaults from benchmarks.yaml, strict --set overrides, a stable hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobench.errors import SpecError
from biobench.spec import HParam, parse_seeds, resolve
from biobench.spec.params import LARGEST_INT


def spec(**kw):
    return resolve(**{"algorithm": "bp", "architecture": "fc", "dataset": "digits", **kw})


def test_mnist_fc_bp_takes_the_papers_table5_hyperparameters() -> None:
    resolved = resolve(algorithm="bp", architecture="fully-connected", dataset="mnist")
    assert resolved.architecture == "fc"  # aliases resolve to the canonical name
    adam = {"lr": 1.52e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert {name: resolved.hparams[name] for name in adam} == adam
    assert resolved.hparams["optimizer"] == "adam"  # and the declared defaults for the rest
    assert (resolved.epochs, resolved.batch_size, resolved.seed) == (500, 128, 0)


def test_command_line_values_override_the_defaults() -> None:
    resolved = spec(epochs=3, batch_size=7, seed=11, overrides=["lr=3e-4", "beta2=0.99"])
    assert (resolved.epochs, resolved.batch_size, resolved.seed) == (3, 7, 11)
    assert resolved.hparams["lr"] == 3e-4 and resolved.hparams["beta2"] == 0.99


def test_the_hash_identifies_the_experiment() -> None:
    assert spec().spec_hash() == spec().spec_hash()
    assert spec(seed=1).spec_hash() != spec().spec_hash()
    assert spec(overrides=["lr=0.002"]).spec_hash() != spec().spec_hash()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"algorithm": "dtpp"},
            "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, ",
        ),
        ({"architecture": "resnet"}, "architecture 'resnet'; choose one of: conv, fc, lc"),
        ({"dataset": "imagenet1k"}, "unknown dataset .imagenet1k."),
        ({"overrides": ["lr=fast"]}, "lr='fast' is not a float"),
        ({"overrides": ["lr=0"]}, "lr='0' is out of range"),
        ({"overrides": ["beta1=1.0"]}, r"beta1='1.0' is out of range.*\[0, 1\)"),
        ({"overrides": ["lr=nan"]}, "not finite"),
        ({"overrides": ["alpha=0.1"]}, "bp has no hyperparameter 'alpha'; valid: lr, beta1"),
        ({"overrides": ["lr"]}, "is not name=value"),
        ({"overrides": ["lr=1e-3", "lr=2e-3"]}, "given twice"),
        ({"epochs": 0}, "--epochs must be > 0"),
        ({"batch_size": -5}, "--batch-size must be > 0"),
        ({"seed": -1}, "--seed must be >= 0"),
        ({"seed": 2**31}, r"--seed must be <= 2147483647 \(the largest the results database"),
        ({"epochs": 10**20}, "--epochs must be <= 2147483647"),
        ({"batch_size": 2**31}, "--batch-size must be <= 2147483647"),
    ],
)
def test_bad_specs_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(**kwargs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["optimizer=sgd", "beta1=0.8"],
            "--set beta1=0.8 applies to optimizer=adam only (this run's optimizer is sgd); add "
            "--set optimizer=adam or drop beta1",
        ),
        (["optimizer=sgd", "eps=1e-6"], "--set eps=1e-06 applies to optimizer=adam only"),
        (["momentum=0.9"], "--set momentum=0.9 applies to optimizer=sgd only (this run's "),
        (["lr_gamma=0.5"], "--set lr_gamma=0.5 applies to lr_schedule=step only (this run's "),
        (
            ["lr_schedule=step", "lr_period=10"],
            "--set lr_period=10 applies to lr_schedule=cosine only (this run's lr_schedule is "
            "step); add --set lr_schedule=cosine or drop lr_period",
        ),
    ],
)
def test_a_setting_the_run_would_ignore_is_refused(overrides: list[str], message: str) -> None:
    with pytest.raises(SpecError) as refused:
        spec(overrides=overrides)
    assert str(refused.value).startswith(message), str(refused.value)


def test_the_default_search_space_leaves_out_what_the_fixed_settings_make_inapplicable() -> None:
    from biobench.registry import ALGORITHMS
    from biobench.spec.params import default_space

    params = ALGORITHMS.entry("bp").hparams
    assert {"beta2", "eps"} <= set(default_space(params))
    sgd = spec(overrides=["optimizer=sgd"]).hparams
    dropped = set(default_space(params)) - set(default_space(params, sgd))
    assert dropped == {"beta1", "beta2", "eps"}


BASE = "defaults: {seed: 0, epochs: 1, batch_size: 8}\n"
PRESET = "presets:\n  p1: {algorithm: bp, architecture: fc, dataset: digits, "


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (BASE + "preset: {}\n", "unknown key.*preset; allowed: defaults, presets, suites"),
        ("defaults: {seed: 0, epochs: 1, batchsize: 8}\n", "unknown key.*batchsize"),
        ("defaults: {seed: 0, epochs: one, batch_size: 8}\n", "must be an integer"),
        ("defaults: {seed: 0, epochs: 1}\n", "must set batch_size"),
        ("defaults: [1, 2\n", "not valid YAML"),
        (BASE + "hparams: {bp: {default: {lr: 1}}}\n", "unknown key.*hparams"),
        ("defaults: {seed: 0, epochs: 1, batch_size: 2147483648}\n", "batch_size must be <="),
        (
            BASE + PRESET + "hparams: {alpha: 1}, reference: {test_top1: 1}, tolerance: 1}\n",
            "presets.p1.hparams: bp has no hyperparameter 'alpha'",
        ),
        (
            BASE + PRESET + "hparams: {lr: -1}, reference: {test_top1: 1}, tolerance: 1}\n",
            "lr=-1 is out of range",
        ),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1, lr: 3}\n",
            "presets.p1: unknown key.*lr",
        ),
        (
            BASE + PRESET.replace("bp,", "bpp,") + "reference: {test_top1: 1}, tolerance: 1}\n",
            "presets.p1: unknown algorithm 'bpp'",
        ),
        (
            BASE + PRESET + "reference: {train_top1: 1}, tolerance: 1}\n",
            "must give test_top1",
        ),
        (BASE + PRESET + "reference: {test_top1: 101}, tolerance: 1}\n", "0-100"),
        *[
            (
                BASE + PRESET + f"reference: {{test_top1: 1}}, tolerance: {bad}}}\n",
                r"presets.p1.tolerance must be a number of points in \(0, 100\]",
            )
            for bad in ("-1", "0", ".nan", ".inf", "-.inf", "101", "true", "'1'")
        ],
        (BASE + PRESET + "reference: {test_top1: 1}}\n", "missing 'tolerance'"),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1}\nsuites: {g: [p2]}\n",
            "suites.g names 'p2', neither a preset nor a suite",
        ),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1}\n"
            "suites: {g: [p1, h], h: [g]}\n",
            r"suite 'g' includes itself \(g -> h -> g\); break the cycle",
        ),
        (BASE + "suites: {~: [p1]}\n", "a suite's name must be text, got None"),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1}\nsuites: {g: [[p1]]}\n",
            r"suites.g holds \['p1'\]; each entry must be the name of a preset or a suite",
        ),
        (BASE + "suites: {g: {p1: 1}}\n", "suites.g must be a non-empty list"),
        (BASE + "suites: &s {g: *s}\n", "is not valid YAML .alias \\*s is used inside its own"),
        (BASE + "suites: " + "[" * 500 + "]" * 500 + "\n", "values nested more than 64 deep"),
    ],
)
def test_a_malformed_benchmarks_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    path = tmp_path / "benchmarks.yaml"
    path.write_text(content)
    monkeypatch.setenv("BIOBENCH_BENCHMARKS", str(path))
    with pytest.raises(SpecError, match=message):
        spec()


def test_dataset_settings_travel_with_the_spec() -> None:
    resolved = resolve(
        algorithm="bp", architecture="fc", dataset="cifar10", overrides=["augment=true", "lr=1e-4"]
    )
    assert resolved.data_settings == {"augment": True} and resolved.hparams["lr"] == 1e-4
    plain = resolve(algorithm="bp", architecture="fc", dataset="cifar10")
    assert plain.spec_hash() != resolved.spec_hash()


def test_a_setting_of_another_dataset_is_refused() -> None:
    with pytest.raises(SpecError, match="has no hyperparameter 'augment'"):
        spec(overrides=["augment=true"])


def test_an_architecture_refuses_rules_outside_its_families_before_data_loads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from biobench.registry import ARCHITECTURES, ArchitectureEntry

    def build(info):  # never called: the pair is refused first
        raise AssertionError("built a network for an unsupported pair")

    entry = ArchitectureEntry(
        name="residual", target=build, families=("backprop", "feedback"), order=40
    )
    monkeypatch.setitem(ARCHITECTURES._entries, "residual", entry)
    with pytest.raises(SpecError) as refused:
        resolve(algorithm="dtp", architecture="residual", dataset="digits")
    assert str(refused.value) == (
        "architecture 'residual' supports backprop, feedback alignment rules only, not dtp "
        "(target propagation); use one of: fa, usf, brsf, frsf, kp, wm, dfa, drtp, bp"
    )
    assert resolve(algorithm="fa", architecture="residual", dataset="digits").algorithm == "fa"


def test_the_largest_database_integer_is_accepted() -> None:
    resolved = spec(seed=LARGEST_INT, epochs=LARGEST_INT, batch_size=LARGEST_INT)
    assert (resolved.seed, resolved.epochs, resolved.batch_size) == (LARGEST_INT,) * 3


FLOAT = HParam(float, "a rate", low=0, low_open=True)
COUNT = HParam(int, "a count", low=1)


@pytest.mark.parametrize(
    ("raw", "value"),
    [("3e-4", 3e-4), ("0.001", 0.001), ("10", 10.0), (".5", 0.5), ("5.", 5.0), ("+1E+3", 1e3)],
)
def test_a_float_is_an_ascii_decimal_literal(raw: str, value: float) -> None:
    assert FLOAT.parse("lr", raw) == value


@pytest.mark.parametrize(
    "raw",
    ["\uff11e-3", "1_0", "\u0661", "0x10", "1e", "e3", "1.2.3", "1 0", "", "[red]1", "½"],
)
def test_a_float_in_any_other_spelling_is_refused(raw: str) -> None:
    with pytest.raises(SpecError) as caught:
        FLOAT.parse("lr", raw)
    assert str(caught.value).startswith(f"lr={raw!r} is not a float; lr takes a float in")


@pytest.mark.parametrize("raw", ["1_000", "\uff12", "\u00b2", "2.0", "1e3", "0b1", "0x1"])
def test_an_int_in_any_other_spelling_is_refused(raw: str) -> None:
    with pytest.raises(SpecError, match="is not a int"):
        COUNT.parse("n", raw)


@pytest.mark.parametrize("raw", [str(2**63), 2**63, str(10**20)])
def test_an_int_beyond_64_bits_is_refused(raw: str | int) -> None:
    assert COUNT.parse("n", str(2**63 - 1)) == 2**63 - 1
    with pytest.raises(SpecError, match="does not fit in 64 bits"):
        COUNT.parse("n", raw)


def test_seeds_are_parsed_and_all_checked_before_any_runs() -> None:
    assert parse_seeds(" 0, 1 ,2,") == (0, 1, 2)
    assert parse_seeds(str(LARGEST_INT)) == (LARGEST_INT,)
    with pytest.raises(SpecError, match=f"--seeds must be <= {LARGEST_INT}"):
        parse_seeds(f"0,{LARGEST_INT + 1}")


@pytest.mark.parametrize("text", ["", ",", "0,-1", "0,+1", "0,\uff11", "0,1_0", "1,01", "0,x"])
def test_seeds_that_are_not_distinct_ascii_integers_are_refused(text: str) -> None:
    with pytest.raises(SpecError, match="is not a list of distinct non-negative integers"):
        parse_seeds(text)
