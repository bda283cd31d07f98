"""Figures: learning curves of runs, and a bar chart of a comparison table (matplotlib, Agg)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from biobench.errors import BiobenchError
from biobench.files import atomic_write
from biobench.store.records import RunRecord

FORMATS = ("png", "pdf", "svg")  # what --out may end in
Drawer = TypeVar("Drawer", bound=Callable[..., None])


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, none assumed
    import matplotlib.pyplot as plt

    return plt


def plain_text(draw: Drawer) -> Drawer:
    """Draw with every text set as written: labels and titles carry names users chose (a
    study's, a preset's, a plugin's), and matplotlib's mathtext would read `$...$`, `_` and `\\`
    in them as TeX: changing what the figure says, or crashing it on TeX it cannot parse.
    matplotlib reads the setting when each text is made, ticks included, which happens up to
    the figure's drawing, so the whole drawer runs under it."""

    @functools.wraps(draw)
    def drawn(*args: Any, **kwargs: Any) -> None:
        import matplotlib

        with matplotlib.rc_context({"text.parse_math": False}):
            draw(*args, **kwargs)

    return drawn  # type: ignore[return-value]


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


@plain_text
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


# Okabe & Ito's colour-blind-safe palette: one colour per architecture, in registry order, so
# fc, lc and conv look the same in every panel and every figure. All eight of its colours
# (black last): the six registered networks and two more get a colour of their own.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# The spread over seeds and the published numbers must not be mistaken for each other: thin grey
# error bars, hollow marks; each source of reference numbers its own mark shape, named with
# its citation in the legend (the paper's diamonds, biotorch's squares).
SPREAD = {"color": "0.3", "linewidth": 0.8}
PAPER_MARK = {
    "linestyle": "none",
    "marker": "D",
    "markersize": 5.5,
    "markerfacecolor": "white",
    "markeredgecolor": "black",
}
SOURCE_MARKERS = {"paper": "D", "biotorch": "s"}  # a source not listed here: circles


def reference_mark(source: str) -> dict[str, Any]:
    return {**PAPER_MARK, "marker": SOURCE_MARKERS.get(source, "o")}


def reference_label(source: str) -> str:
    """How the legend names a source of reference numbers: "paper (Bartunov et al., 2018)"."""
    from biobench.results.compare import CITATIONS

    return f"{source} ({CITATIONS[source]})" if source in CITATIONS else source


def architecture_colours(architectures: list[str]) -> dict[str, str]:
    """A fixed colour per architecture: by its place in the registry (plugins included), then
    any the registry no longer knows, by name."""
    from biobench.registry import ARCHITECTURES, load_all

    load_all()
    known = [e.name for e in sorted(ARCHITECTURES.entries(), key=lambda e: e.order)]
    ordered = known + sorted(set(architectures) - set(known))
    return {arch: PALETTE[i % len(PALETTE)] for i, arch in enumerate(ordered)}


@plain_text
def comparison_bars(frame: pd.DataFrame, out: Path) -> None:
    """Our test top-1 error per method (groups) and architecture (bars, one colour each across
    panels), ±1 std over seeds as thin grey error bars, the reference numbers as hollow marks
    (the paper's diamonds, biotorch's squares: the legend names each source); one panel per
    dataset and protocol, one legend outside them all."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt = _pyplot()
    colours = architecture_colours(list(frame["architecture"].unique()))
    groups = list(frame.groupby(["dataset", "protocol"], sort=False))
    most = max(block["label"].nunique() for _, block in groups)
    # One bar width in every panel, so a panel with fewer architectures has no fatter bars.
    width = 0.8 / max(block["architecture"].nunique() for _, block in groups)
    figure, axes = plt.subplots(
        len(groups),
        1,
        figsize=(max(6.0, 1.2 * most + 2.5), 3.6 * len(groups)),
        squeeze=False,
        layout="constrained",  # makes room for rotated labels, titles and the legend
    )
    shown: set[str] = set()  # architectures drawn anywhere, for the legend
    sources: dict[str, None] = {}  # sources of the reference marks drawn, in order
    has_std = False
    for axis, ((dataset, protocol), block) in zip(axes[:, 0], groups, strict=True):
        labels = list(dict.fromkeys(block["label"]))
        archs = [a for a in colours if a in set(block["architecture"])]
        for j, arch in enumerate(archs):
            rows = block[block["architecture"] == arch].set_index("label")
            xs = [i + width * (j - (len(archs) - 1) / 2) for i in range(len(labels))]
            ours = [rows["test_top1"].get(label, math.nan) for label in labels]
            spread = [rows["test_top1_std"].get(label, math.nan) for label in labels]
            paper = [rows["paper_test_top1"].get(label, math.nan) for label in labels]
            source = [rows["reference"].get(label) for label in labels]
            axis.bar(xs, ours, width * 0.92, color=colours[arch], zorder=2)
            axis.errorbar(
                xs,
                ours,
                yerr=spread,
                fmt="none",
                ecolor=SPREAD["color"],
                elinewidth=SPREAD["linewidth"],
                capsize=2,
                zorder=3,
            )
            for name in dict.fromkeys(s for s in source if isinstance(s, str)):
                marks = [v if s == name else math.nan for v, s in zip(paper, source, strict=True)]
                if any(math.isfinite(v) for v in marks):
                    axis.plot(xs, marks, zorder=4, **reference_mark(name))
                    sources[name] = None
            shown.add(arch)
            has_std |= any(math.isfinite(v) for v in spread)
        axis.set_xticks(range(len(labels)))
        axis.set_xticklabels(labels, rotation=30, ha="right", rotation_mode="anchor")
        axis.set_xlim(-0.6, len(labels) - 0.4)
        axis.set_ylim(bottom=0)
        axis.set_ylabel("test top-1 error (%)")
        axis.set_title(f"{dataset}: {protocol}", loc="left")
        axis.grid(axis="y", alpha=0.3, zorder=0)
        axis.spines[["top", "right"]].set_visible(False)
    handles: list[Any] = [
        Patch(color=c, label=arch) for arch, c in colours.items() if arch in shown
    ]
    if has_std:
        handles.append(Line2D([], [], label="±1 std over seeds", **SPREAD))
    known = list(SOURCE_MARKERS)
    for name in sorted(sources, key=lambda n: (known.index(n) if n in known else len(known), n)):
        handles.append(Line2D([], [], label=reference_label(name), **reference_mark(name)))
    legend = figure.legend(handles=handles, loc="outside right upper", frameon=False)
    _clear_of_legend(figure, legend, list(axes[:, 0]))
    _save(figure, out)
    plt.close(figure)


def _clear_of_legend(figure: Any, legend: Any, axes: list[Any]) -> None:
    """Widen the figure until no panel's title (a protocol can be long: "250 epochs, batch
    128, augment=True") runs under the legend: the axes take the extra width, the legend
    moves right by as much."""
    figure.canvas.draw()  # lays the figure out, so that the extents below are final
    renderer = figure.canvas.get_renderer()
    right = max(axis.get_tightbbox(renderer).x1 for axis in axes)  # titles included
    overlap = right - legend.get_window_extent(renderer).x0
    if overlap > 0:
        figure.set_figwidth(figure.get_figwidth() + overlap / figure.dpi + 0.15)
