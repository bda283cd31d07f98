"""Top-k accuracy, as timm and torchvision compute it, with k clamped to the class count."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def topk_correct(logits: Tensor, target: Tensor, topk: Sequence[int] = (1, 5)) -> list[Tensor]:
    """Number of samples whose label is among the k highest logits, for each k.

    k larger than the number of classes counts as the number of classes (every sample is correct
    in its top-k then), so top-5 is well defined for a 2-class problem.
    """
    if logits.ndim != 2 or target.ndim != 1 or len(logits) != len(target):
        raise ValueError(
            f"expected logits (N, classes) and targets (N,), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    num_classes = logits.shape[1]
    kmax = min(max(topk), num_classes)
    top = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hits = top.eq(target.unsqueeze(1))  # at most one True per row
    cumulative = hits.cumsum(dim=1)
    return [cumulative[:, min(k, num_classes) - 1].sum() for k in topk]


def accuracy(logits: Tensor, target: Tensor, topk: Sequence[int] = (1, 5)) -> list[float]:
    """Top-k accuracy in percent for each k (an empty batch raises)."""
    if len(target) == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    with torch.no_grad():
        return [100.0 * float(c) / len(target) for c in topk_correct(logits, target, topk)]
