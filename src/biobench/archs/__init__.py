"""The paper's networks, built as Stacks. Each module registers a builder in ARCHITECTURES."""

from __future__ import annotations

from biobench.archs import fc, lc
from biobench.archs.stack import DataInfo, Layer, Stack
from biobench.registry import ARCHITECTURES


def build_network(name: str, info: DataInfo) -> Stack:
    return ARCHITECTURES.get(name)(info)


__all__ = ["ARCHITECTURES", "DataInfo", "Layer", "Stack", "build_network", "fc", "lc"]
