"""ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2), as biotorch benchmarks it.

A 3x3 conv of 16 channels with batch norm and ReLU, then three stages of three basic blocks
(16, 32 and 64 channels; the second and third stages start with stride 2), global average
pooling and a dense output layer: 19 convolutions and 1 dense layer, 0.27 M parameters on
CIFAR-10 (269,722). A basic block is conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU. Where a
block changes the shape, its shortcut is He et al.'s option A, as in biotorch's
models/small_resnet.py (after Idelbayev's pytorch_resnet_cifar10): the input subsampled by 2
and zero-padded with the new channels, so shortcuts have no weights. Convolutions have no bias
(batch norm follows each); weights are Glorot-uniform (biotorch's `init: xavier`), BN starts
at scale 1, shift 0.

The network is sized from the dataset: any number of input channels, any image side (8x8
digits: 8, 4, 2 pixels a side through the stages), any number of classes.

Which rules train it: backprop (plain autograd) and the feedback family, whose feedback
replaces the backward of each conv and dense op while batch norm, ReLU and the skip
connections keep their exact backward (biobench.nn.feedback). The target-propagation family
needs an invertible layer-by-layer stack and is refused before any data loads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from biobench.nn import glorot_
from biobench.nn.feedback import FeedbackConv2d, FeedbackLinear, feedback_ops
from biobench.registry import ARCHITECTURES, DataInfo

STAGES = ((16, 1), (32, 2), (64, 2))  # (channels, stride of the first block)
BLOCKS = 3  # per stage: 6 * 3 + 2 = 20 weighted layers


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> FeedbackConv2d:
    return FeedbackConv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), nn.BatchNorm2d(c_out)
        self.stride, self.pad = stride, c_out - c_in

    def shortcut(self, x: Tensor) -> Tensor:
        """Option A: identity, or subsample and zero-pad the new channels (no weights)."""
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """He et al.'s CIFAR ResNet: a stem, 3 stages of basic blocks, pooling, a dense output."""

    def __init__(self, info: DataInfo, blocks: int = BLOCKS) -> None:
        super().__init__()
        self.info = info
        channels = STAGES[0][0]
        self.stem = conv3x3(info.input_shape[0], channels)
        self.bn = nn.BatchNorm2d(channels)
        stages = []
        for width, stride in STAGES:
            for i in range(blocks):
                stages.append(BasicBlock(channels, width, stride if i == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*stages)
        self.fc = FeedbackLinear(channels, info.num_classes)
        glorot_(self)
        self._record_shapes()

    @property
    def ops(self) -> list[nn.Module]:
        """The weighted ops in forward order (stem first, dense output last): what a
        feedback rule gives feedback weights to."""
        return feedback_ops(self)

    def _record_shapes(self) -> None:
        """One sample through the net records every op's per-sample input shape."""
        hooks = [
            op.register_forward_pre_hook(
                lambda op, args: setattr(op, "input_shape", tuple(args[0].shape[1:]))
            )
            for op in self.ops
        ]
        was_training = self.training
        self.eval()
        with torch.no_grad():
            self(torch.zeros(1, *self.info.input_shape))
        self.train(was_training)
        for hook in hooks:
            hook.remove()

    def forward(self, x: Tensor) -> Tensor:
        out = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(out.mean((2, 3)))  # global average pooling

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@ARCHITECTURES.register(
    "resnet20",
    aliases=("resnet-20",),
    label="ResNet-20",
    order=40,
    families=("backprop", "feedback"),
    layered=False,
)
def resnet20(info: DataInfo) -> ResNet:
    """ResNet-20 (He et al.'s CIFAR net, option-A shortcuts, BN): BP and feedback rules."""
    return ResNet(info)
