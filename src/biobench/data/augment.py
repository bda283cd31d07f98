"""Batch augmentations applied on the training device to shuffled (training) batches.

Each takes a float batch (N, C, H, W) and the run's seeded CPU generator. All randomness is drawn
on the CPU from that generator and only then moved to the batch's device, so an augmented epoch
is the same on a GPU as on the CPU for the same seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """A random (H, W) crop of each zero-padded image, then a horizontal flip with probability 1/2.

    The batch comes already normalised (TensorSplit scales before it augments), so the zero
    border is the dataset's mean colour rather than black; the usual CIFAR recipe pads raw pixels
    with black, and the difference is immaterial for training.
    """
    n, _, height, width = x.shape
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    if x.is_cuda:  # pinned and non-blocking: a pageable copy would wait for the GPU each batch
        offsets, flips = (t.pin_memory().to(x.device, non_blocking=True) for t in (offsets, flips))
    else:
        offsets, flips = offsets.to(x.device), flips.to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    rows = offsets[:, :1] + torch.arange(height, device=x.device)  # (N, H)
    cols = offsets[:, 1:] + torch.arange(width, device=x.device)  # (N, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    # One gather over the flattened padded planes crops and flips every sample at once.
    index = (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)  # (N, H*W)
    index = index[:, None, :].expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, index).view_as(x)
