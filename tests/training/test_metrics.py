from __future__ import annotations

import pytest
import torch

from biobench.training.metrics import accuracy, topk_correct


def test_top1_and_top5_count_the_label_among_the_best_logits() -> None:
    logits = torch.tensor(
        [
            [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # label 6 is top-1
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # label 4 is 5th best
            [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0],  # label 6 is last: neither
            [0.0, 9.0, 0.5, 0.4, 0.3, 0.2, 0.1],  # label 0 is last: neither
        ]
    )
    target = torch.tensor([6, 4, 6, 0])
    assert accuracy(logits, target, topk=(1, 5)) == [25.0, 50.0]


@pytest.mark.parametrize("num_classes", [2, 3, 4])
def test_k_is_clamped_to_the_number_of_classes(num_classes: int) -> None:
    logits = torch.randn(8, num_classes, generator=torch.Generator().manual_seed(0))
    target = torch.arange(8) % num_classes
    top1, top5 = accuracy(logits, target, topk=(1, 5))
    assert top5 == 100.0
    assert top1 == pytest.approx(100.0 * (logits.argmax(1) == target).float().mean().item())


def test_topk_correct_returns_counts_not_percentages() -> None:
    logits = torch.eye(3)
    assert [int(c) for c in topk_correct(logits, torch.tensor([0, 1, 0]), (1, 2))] == [2, 3]


def test_empty_batch_and_shape_mismatch_are_rejected() -> None:
    with pytest.raises(ValueError):
        accuracy(torch.zeros(0, 10), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError):
        accuracy(torch.zeros(4, 10), torch.zeros(3, dtype=torch.long))


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
