"""benchmarks.yaml against a second, independent transcription of the paper's tables.

The tables below are pasted as the paper prints them (paper-notes §4-5) and parsed here, so a
slip in either transcription shows up as a mismatch.
"""

from __future__ import annotations

import re

import pytest

from biobench.spec import load_presets, resolve

TABLE_1A = """
| DTP parallel | 0.44 / 2.86 | 0.00 / 1.52 |
| DTP alternating | 0.00 / 1.83 | 0.00 / 1.46 |
| SDTP parallel | 1.14 / 3.52 | 0.00 / 1.98 |
| SDTP alternating | 0.00 / 2.28 | 0.00 / 1.90 |
| AO-SDTP parallel | 0.96 / 2.93 | 0.00 / 1.92 |
| AO-SDTP alternating | 0.00 / 1.86 | 0.00 / 1.91 |
| FA | 0.00 / 1.85 | 0.00 / 1.26 |
| DFA | 0.85 / 2.75 | 0.23 / 2.05 |
| BP | 0.00 / 1.48 | 0.00 / 1.17 |
| BP ConvNet | – | 0.00 / 1.01 |
"""
TABLE_1B = """
| DTP parallel | 59.45 / 59.14 | 28.69 / 39.47 |
| DTP alternating | 30.41 / 42.32 | 28.54 / 39.47 |
| SDTP parallel | 51.48 / 55.32 | 43.00 / 46.63 |
| SDTP alternating | 48.65 / 54.27 | 40.40 / 45.66 |
| AO-SDTP parallel | 4.28 / 47.11 | 32.67 / 40.05 |
| AO-SDTP alternating | 0.00 / 45.40 | 34.11 / 40.21 |
| FA | 25.62 / 41.97 | 17.46 / 37.44 |
| DFA | 33.35 / 47.80 | 32.74 / 44.41 |
| BP | 28.97 / 41.32 | 0.83 / 32.41 |
| BP ConvNet | – | 1.39 / 31.87 |
"""
TABLE_2 = (
    "DTP-par 98.34 / 94.56, DTP-alt 99.36 / 97.28, SDTP-par 99.28 / 97.15, "
    "FA 93.08 / 82.54, BP 71.43 / 49.07, BP-ConvNet 63.93 / 40.17"
)
TABLE_5_FORWARD = """
| MNIST FC | 7.57e-4, .99, .95, 1e-3 | 3.08e-4, .99, .99, 1e-4 | 4.02e-4, .99, .999, 1e-8 | 3.01e-4, .9, .95, 1e-4 | 1.52e-4, .9, .999, 1e-8 | – | 1.68e-4, .9, .999, 1e-4 | 1.649e-3, .9, .95, 1e-3 |
| MNIST LC | 9.05e-4, .9, .99, 1e-4 | 1.481e-3, .9, .99, 1e-4 | 1.45e-4, .9, .99, 1e-6 | 6.51e-4, .9, .99, 1e-4 | 1.33e-4, .9, .99, 1e-8 | 2.97e-4, .9, .99, 1e-8 | 2.19e-4, .9, .999, 1e-6 | 2.462e-3, .9, .99, 1e-4 |
| CIFAR FC | 1.2e-5, .9, .999, 1e-8 | 1.3e-5, .9, .999, 1e-8 | 1.29e-4, .9, .99, 1e-6 | 4.1e-5, .9, .99, 1e-4 | 1.9e-5, .9, .999, 1e-6 | – | 2.5e-5, .9, .99, 1e-4 | 5.0e-5, .9, .99, 1e-8 |
| CIFAR LC | 3.2e-5, .9, .99, 1e-6 | 3.6e-5, .9, .99, 1e-8 | 2.0e-5, .9, .99, 1e-4 | 1.09e-4, .9, .99, 1e-4 | 4.4e-5, .9, .999, 1e-6 | 1.33e-4, .9, .99, 1e-4 | 2.2e-5, .9, .999, 1e-8 | 4.0e-5, .9, .999, 1e-8 |
| ImageNet LC | 2.17e-4, .9, .99, 1e-6 | 1.01e-4, .9, .99, 1e-8 | 1.1e-5, .9, .999, 1e-6 | – | 2.4e-5, .9, .999, 1e-8 | 4.9e-5, .9, .99, 1e-8 | 4.3e-5, .9, .99, 1e-4 | – |
"""  # noqa: E501
TABLE_5_INVERSE = """
| MNIST FC | 7.68e-4, .99, .999, 1e-4; α .15008, σ .231758 | 4.593e-3, .99, .999, 1e-4; α .36133, σ .220444 | 1.101e-3, .99, .95, 1e-6; σ .213995 | 9.572e-3, .9, .95, 1e-3; σ .118267 |
| MNIST LC | 1.239e-3, .9, .999, 1e-4; α .116131, σ .310892 | 1.37e-4, .9, .999, 1e-6; α .099236, σ .366964 | 1.652e-3, .9, .999, 1e-4; σ .061555 | 3.741e-3, .9, .99, 1e-4; σ .134739 |
| CIFAR FC | 3.9e-5, .9, .99, 1e-6; α .125693, σ .172085 | 1.14e-4, .9, .99, 1e-4; α .169783, σ .134811 | 1.1e-5, .9, .99, 1e-6; σ .273341 | 1.4e-5, .9, .99, 1e-8; σ .125678 |
| CIFAR LC | 8.52e-4, .9, .999, 1e-4; α .189828, σ .208141 | 3.89e-4, .9, .999, 1e-8; α .146728, σ .094869 | 2.61e-4, .9, .999, 1e-6; σ .299769 | 1.1e-5, .9, .99, 1e-8; σ .023804 |
| ImageNet LC | 2.34e-4, .9, .999, 1e-6; α .163359, σ .03706 | 6.4e-5, .9, .999, 1e-8; α .192835, σ .097217 | 1.7e-4, .9, .999, 1e-8; σ .168522 | – |
"""  # noqa: E501
METHODS = {
    "DTP parallel": "dtp-par",
    "DTP alternating": "dtp-alt",
    "SDTP parallel": "sdtp-par",
    "SDTP alternating": "sdtp-alt",
    "AO-SDTP parallel": "ao-sdtp-par",
    "AO-SDTP alternating": "ao-sdtp-alt",
    "FA": "fa",
    "DFA": "dfa",
    "BP": "bp",
    "BP ConvNet": "conv-bp",
    "DTP-par": "dtp-par",
    "DTP-alt": "dtp-alt",
    "SDTP-par": "sdtp-par",
    "BP-ConvNet": "conv-bp",
}
FORWARD_COLUMNS = ["dtp-par", "dtp-alt", "sdtp-par", "sdtp-alt", "bp", "conv-bp", "fa", "dfa"]
CELLS = {
    "MNIST FC": ("mnist", "fc"),
    "MNIST LC": ("mnist", "lc"),
    "CIFAR FC": ("cifar10", "fc"),
    "CIFAR LC": ("cifar10", "lc"),
    "ImageNet LC": ("imagenet", "lc"),
}


def name(dataset: str, arch: str, method: str) -> str:
    return f"{dataset}-conv-bp" if method == "conv-bp" else f"{dataset}-{arch}-{method}"


def rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.strip().splitlines()]


def expected_references() -> dict[str, dict[str, float]]:
    out = {}
    for dataset, table in (("mnist", TABLE_1A), ("cifar10", TABLE_1B)):
        for method, *cells in rows(table):
            for arch, cell in zip(("fc", "lc"), cells, strict=True):
                if cell != "–":
                    train, test = (float(v) for v in cell.split("/"))
                    out[name(dataset, arch, METHODS[method])] = {
                        "train_top1": train,
                        "test_top1": test,
                    }
    for method, top1, top5 in re.findall(r"([\w-]+) ([\d.]+) / ([\d.]+)", TABLE_2):
        out[name("imagenet", "lc", METHODS[method])] = {
            "test_top1": float(top1),
            "test_top5": float(top5),
        }
    return out


def adam(text: str, prefix: str = "") -> dict[str, float]:
    lr, b1, b2, eps = (float(v) for v in text.split(","))
    return {f"{prefix}lr": lr, f"{prefix}beta1": b1, f"{prefix}beta2": b2, f"{prefix}eps": eps}


def expected_hparams() -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    inverse = {
        cell: dict(zip(["dtp-par", "dtp-alt", "sdtp-par", "sdtp-alt"], values, strict=True))
        for cell, *values in rows(TABLE_5_INVERSE)
    }
    for cell, *values in rows(TABLE_5_FORWARD):
        dataset, arch = CELLS[cell]
        for column, text in zip(FORWARD_COLUMNS, values, strict=True):
            if text == "–":
                continue
            methods = [column] + ([f"ao-{column}"] if column.startswith("sdtp") else [])
            for method in methods:
                hp: dict[str, object] = adam(text)
                if "-" in column and column != "conv-bp":
                    adam_text, _, rest = inverse[cell][column].partition(";")
                    hp.update(adam(adam_text, "inverse_"))
                    hp.update(
                        {
                            "alpha" if k == "α" else "sigma": float(v)
                            for k, v in re.findall(r"([ασ]) ([\d.]+)", rest)
                        }
                    )
                    hp["mode"] = "parallel" if column.endswith("par") else "alternating"
                    if method.startswith("ao-"):
                        hp["aux_units"] = 512
                out[name(dataset, arch, method)] = hp
    return out


REFERENCES = expected_references()
HPARAMS = {k: v for k, v in expected_hparams().items() if k in REFERENCES}


def test_there_is_one_preset_per_cell_of_tables_1_and_2() -> None:
    config = load_presets()
    paper = {k for k in config.presets if not k.startswith("smoke-")}
    paper -= set(config.suites["biotorch-cifar10"]) | set(config.suites["pcx"])
    assert paper == set(REFERENCES) == set(config.suites["paper"])
    assert len(paper) == 44


# biotorch's Benchmarks.md, CIFAR-10 ResNet-20 (SGD) column (Sanfiz & Akrout 2021).
BIOTORCH = {"bp": 8.63, "fa": 32.16, "dfa": 45.94, "usf": 10.05, "brsf": 11.02, "frsf": 11.2}


@pytest.mark.parametrize("algorithm", sorted(BIOTORCH))
def test_the_biotorch_presets_carry_its_numbers_and_protocol(algorithm: str) -> None:
    config = load_presets()
    preset = config.presets[f"cifar10-resnet20-{algorithm}"]
    assert preset.name in config.suites["biotorch-cifar10"]
    assert preset.reference == {"test_top1": BIOTORCH[algorithm]}
    spec = resolve(preset=preset.name)
    assert (spec.architecture, spec.dataset, spec.epochs, spec.batch_size) == (
        "resnet20",
        "cifar10",
        250,
        128,
    )
    assert spec.data_settings == {"augment": True}
    lr = 0.001 if algorithm == "dfa" else 0.1
    expected = {"optimizer": "sgd", "lr": lr, "momentum": 0.9, "weight_decay": 1e-4}
    expected |= {"lr_schedule": "step", "lr_milestones": "100,150,200", "lr_gamma": 0.1}
    assert {name: spec.hparams[name] for name in expected} == expected


@pytest.mark.parametrize(("algorithm", "lr"), [("kp", 0.1), ("wm", 0.1), ("drtp", 0.001)])
def test_the_rules_biotorch_never_measured_run_its_protocol_without_a_reference(
    algorithm: str, lr: float
) -> None:
    config = load_presets()
    preset = config.presets[f"cifar10-resnet20-{algorithm}"]
    assert preset.name in config.suites["biotorch-cifar10"]
    assert (preset.reference, preset.tolerance, preset.has_reference) == ({}, None, False)
    spec, bp = resolve(preset=preset.name), resolve(preset="cifar10-resnet20-bp")
    assert (spec.epochs, spec.batch_size, spec.data_settings) == (250, 128, {"augment": True})
    protocol = {"lr": lr} | {k: bp.hparams[k] for k in ("optimizer", "momentum", "weight_decay")}
    protocol |= {k: bp.hparams[k] for k in ("lr_schedule", "lr_milestones", "lr_gamma")}
    assert {name: spec.hparams[name] for name in protocol} == protocol


@pytest.mark.parametrize("preset", sorted(REFERENCES))
def test_reference_numbers_are_the_papers(preset: str) -> None:
    assert load_presets().presets[preset].reference == REFERENCES[preset]


@pytest.mark.parametrize("preset", sorted(HPARAMS))
def test_hyperparameters_are_table_5(preset: str) -> None:
    assert load_presets().presets[preset].hparams == HPARAMS[preset]


@pytest.mark.parametrize("preset", sorted(load_presets().presets))
def test_every_preset_resolves_to_a_valid_spec(preset: str) -> None:
    spec = resolve(preset=preset)
    assert spec.preset == preset
    if preset in load_presets().suites["paper"]:
        assert spec.epochs == (50 if preset.startswith("imagenet") else 500)
        assert spec.batch_size == (256 if preset.startswith("imagenet") else 128)


def test_groups() -> None:
    groups = load_presets().suites
    assert len(groups["paper-mnist"]) == len(groups["paper-cifar10"]) == 19
    assert len(groups["paper-imagenet"]) == 6 and len(groups["paper"]) == 44
    assert groups["smoke"] and all(p.startswith("smoke-") for p in groups["smoke"])


def test_a_plain_run_takes_the_papers_values_for_its_cell_and_mode() -> None:
    alternating = resolve(algorithm="dtp", architecture="fc", dataset="mnist")
    parallel = resolve(
        algorithm="dtp", architecture="fc", dataset="mnist", overrides=["mode=parallel"]
    )
    # The paper's values, plus the declared default of what the paper does not set.
    assert alternating.hparams == {**HPARAMS["mnist-fc-dtp-alt"], "alpha_scale": "sample"}
    assert alternating.preset is None
    assert parallel.hparams == {**HPARAMS["mnist-fc-dtp-par"], "alpha_scale": "sample"}


def test_command_line_options_override_a_preset() -> None:
    spec = resolve(preset="cifar10-lc-fa", epochs=3, seed=4, overrides=["lr=1e-3"])
    assert (spec.epochs, spec.seed, spec.hparams["lr"]) == (3, 4, 1e-3)
    assert spec.hparams["eps"] == 1e-8 and spec.preset == "cifar10-lc-fa"
