"""The paper's networks and PCX's MLP and VGG-5, built as Stacks, and ResNet-20 (a residual
net, not a Stack). Each
module registers a builder in ARCHITECTURES, with `refuses(info)` saying which input shapes it
cannot build a network for and `families` which learning-rule families can train it."""

from __future__ import annotations

from biobench.archs import fc, lc, mlp, resnet, vgg
from biobench.archs.resnet import ResNet
from biobench.archs.stack import Layer, Stack
from biobench.errors import SpecError
from biobench.registry import ARCHITECTURES, DataInfo


def build_network(name: str, info: DataInfo) -> Stack | ResNet:
    entry = ARCHITECTURES.entry(name)
    reason = entry.refuses(info) if entry.refuses is not None else None
    if reason is not None:
        raise SpecError(
            f"architecture {entry.name!r} has no network for dataset {info.name!r}: {reason}"
        )
    return entry.target(info)


__all__ = [
    "ARCHITECTURES",
    "DataInfo",
    "Layer",
    "ResNet",
    "Stack",
    "build_network",
    "fc",
    "lc",
    "mlp",
    "resnet",
    "vgg",
]
