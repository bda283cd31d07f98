"""Figures: learning curves of runs, and a bar chart of a comparison table (matplotlib, Agg)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from biobench.errors import BiobenchError
from biobench.files import atomic_write
from biobench.store.records import RunRecord

FORMATS = ("png", "pdf", "svg")  # what --out may end in


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none assumed
    import matplotlib.pyplot as plt

    return plt


def figure_format(out: Path) -> str:
    """The format --out's suffix names: png, pdf or svg; any other path is refused. A folder is
    left to `atomic_write`, which refuses it as a folder, whatever its name ends in."""
    kind = out.suffix[1:].lower()
    if kind not in FORMATS and not out.is_dir():
        raise BiobenchError(
            f"cannot write {out}: a figure's file name must end in .png, .pdf or .svg; "
            "choose another --out"
        )
    return kind


def _save(figure: Any, out: Path) -> None:
    # Written to a file object (a temporary file, renamed), so the format must be named.
    kind = figure_format(out)
    atomic_write(
        out,
        lambda handle: figure.savefig(handle, format=kind, dpi=120, bbox_inches="tight"),
        fix="choose another --out",
    )


def learning_curves(runs: list[RunRecord], epochs: list[dict[str, Any]], out: Path) -> None:
    """Test (solid) and train (dashed) top-1 error against epochs, one colour per run; top-5
    dotted where the runs have 1000 classes (ImageNet)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, run in enumerate(runs):
        rows = [r for r in epochs if r["run_id"] == run.id]
        if not rows:
            continue
        x = [r["epoch"] for r in rows]
        colour = f"C{index % 10}"
        label = f"#{run.id} {run.algorithm} / {run.architecture} / {run.dataset}"
        axis.plot(x, [r["test_top1"] for r in rows], color=colour, label=f"{label} test")
        axis.plot(
            x,
            [r["train_top1"] for r in rows],
            color=colour,
            linestyle="--",
            label=f"{label} train",
        )
        if run.dataset.startswith("imagenet"):
            axis.plot(
                x,
                [r["test_top5"] for r in rows],
                color=colour,
                linestyle=":",
                label=f"{label} test top-5",
            )
    axis.set_xlabel("epoch")
    axis.set_ylabel("error (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    _save(figure, out)
    plt.close(figure)


def comparison_bars(frame: pd.DataFrame, out: Path) -> None:
    """Our best test top-1 error per method and architecture, with the paper's as markers."""
    plt = _pyplot()
    groups = list(frame.groupby(["dataset", "protocol"], sort=False))
    figure, axes = plt.subplots(len(groups), 1, figsize=(10, 4 * len(groups)), squeeze=False)
    for axis, ((dataset, protocol), block) in zip(axes[:, 0], groups, strict=True):
        labels = list(dict.fromkeys(block["label"]))
        archs = list(dict.fromkeys(block["architecture"]))
        width = 0.8 / len(archs)
        for j, arch in enumerate(archs):
            rows = block[block["architecture"] == arch].set_index("label")
            xs = [i + j * width for i in range(len(labels))]
            ours = [rows["test_top1"].get(label, math.nan) for label in labels]
            errs = [rows["test_top1_std"].get(label, 0.0) for label in labels]
            axis.bar(xs, ours, width, yerr=errs, label=f"{arch} (biobench)", color=f"C{j}")
            paper = [rows["paper_test_top1"].get(label, math.nan) for label in labels]
            axis.scatter(
                xs,
                paper,
                marker="_",
                s=200,
                color="black",
                zorder=3,
                label="paper" if j == 0 else None,
            )
        axis.set_xticks([i + width * (len(archs) - 1) / 2 for i in range(len(labels))])
        axis.set_xticklabels(labels, rotation=30, ha="right")
        axis.set_ylabel("test top-1 error (%)")
        axis.set_title(f"{dataset}: {protocol}")
        axis.legend(fontsize="small")
    _save(figure, out)
    plt.close(figure)
