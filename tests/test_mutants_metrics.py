"""Tests for the gaps a mutation run (tools/mutation.sh) showed in training/metrics.py: what the
default k are, and which inputs are refused with their shapes named.
"""

from __future__ import annotations

import pytest
import torch

from biobench.training.metrics import accuracy, topk_correct

# label 0 is the 5th best of 7 in row 0, the 6th in row 1, the best in row 2; label 2 is the
# 2nd best in row 3.
LOGITS = torch.tensor(
    [
        [3.0, 7.0, 6.0, 5.0, 4.0, 2.0, 1.0],
        [2.0, 7.0, 6.0, 5.0, 4.0, 3.0, 1.0],
        [9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        [1.0, 9.0, 8.0, 3.0, 4.0, 5.0, 6.0],
    ]
)
TARGET = torch.tensor([0, 0, 0, 2])


def test_by_default_top1_and_top5_are_computed() -> None:
    assert [int(c) for c in topk_correct(LOGITS, TARGET)] == [1, 3]
    assert accuracy(LOGITS, TARGET) == [25.0, 75.0]


@pytest.mark.parametrize(
    ("logits", "target", "shapes"),
    [
        (torch.zeros(4, 7, 1), torch.zeros(4, dtype=torch.long), r"\(4, 7, 1\) and \(4,\)"),
        (torch.zeros(4, 7), torch.zeros(4, 1, dtype=torch.long), r"\(4, 7\) and \(4, 1\)"),
        (torch.zeros(7), torch.zeros(7, dtype=torch.long), r"\(7,\) and \(7,\)"),
    ],
)
def test_logits_or_targets_of_the_wrong_rank_are_refused_naming_both_shapes(
    logits: torch.Tensor, target: torch.Tensor, shapes: str
) -> None:
    with pytest.raises(ValueError, match=r"^expected logits \(N, classes\) and targets \(N,\), "):
        topk_correct(logits, target)
    with pytest.raises(ValueError, match=f"got {shapes}$"):
        accuracy(logits, target)
