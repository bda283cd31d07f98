"""Spec resolution: defaults from benchmarks.yaml, strict --set overrides, a stable hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobench.errors import SpecError
from biobench.spec import resolve


def spec(**kw):
    return resolve(**{"algorithm": "bp", "architecture": "fc", "dataset": "digits", **kw})


def test_mnist_fc_bp_takes_the_papers_table5_hyperparameters() -> None:
    resolved = resolve(algorithm="bp", architecture="fully-connected", dataset="mnist")
    assert resolved.architecture == "fc"  # aliases resolve to the canonical name
    assert resolved.hparams == {"lr": 1.52e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
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
            "unknown algorithm 'dtpp'; choose one of: ao-sdtp, bp, dfa, dtp, ",
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
    ],
)
def test_bad_specs_say_what_is_wrong(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec(**kwargs)


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
        (
            BASE + PRESET + "hparams: {momentum: 1}, reference: {test_top1: 1}, tolerance: 1}\n",
            "presets.p1.hparams: bp has no hyperparameter 'momentum'",
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
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: -1}\n",
            "tolerance must be a positive",
        ),
        (BASE + PRESET + "reference: {test_top1: 1}}\n", "missing 'tolerance'"),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1}\nsuites: {g: [p2]}\n",
            "suites.g names 'p2', neither a preset nor a suite",
        ),
        (
            BASE + PRESET + "reference: {test_top1: 1}, tolerance: 1}\n"
            "suites: {g: [p1, h], h: [g]}\n",
            "includes itself",
        ),
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
        "(target propagation); use one of: fa, dfa, bp"
    )
    assert resolve(algorithm="fa", architecture="residual", dataset="digits").algorithm == "fa"
