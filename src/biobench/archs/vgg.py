"""VGG-5, the convolutional network of PCX's benchmark (Pinchetti et al., "Benchmarking
Predictive Coding Networks -- Made Simple", ICLR 2025, arXiv:2407.01163), as a Stack.

Matched to PCX's code, repository liukidar/pcx (the paper's library), folder
examples/s4_1_discriminative_mode, files models.py (class VGG5, the PC net) and models_BP.py
(class VGG5, its BP twin), commit c722834e1970239336f4218ca03e964255853e88:

| layer | op (PCX)                                   | then              | output (32x32 input) |
|-------|--------------------------------------------|-------------------|----------------------|
| 1     | Conv2d(C, 128, kernel 3, stride 1, pad 1)  | act, MaxPool2d(2) | 128 x 16 x 16        |
| 2     | Conv2d(128, 256, kernel 3, pad 1)          | act, MaxPool2d(2) | 256 x 8 x 8          |
| 3     | Conv2d(256, 512, kernel 3, pad 1)          | act, MaxPool2d(2) | 512 x 4 x 4          |
| 4     | Conv2d(512, 512, kernel 3, pad 1)          | act, MaxPool2d(2) | 512 x 2 x 2          |
| 5     | Linear(512 * (side // 16)^2, classes)      | (the logits)      | classes              |

Every conv and the linear layer have a bias (equinox's default, which pcax.nn wraps). On
CIFAR-10 that is 3,859,210 parameters; on MNIST's one channel and 28x28 (28, 14, 7, 3, 1
pixels a side, max pooling dropping the odd row) 3,841,546. PCX hard-codes 3 input channels
(it runs VGG-5 on colour data only: CIFAR-10, CIFAR-100, Tiny ImageNet); biobench takes the
dataset's.

The activation is GELU in jax.nn.gelu's default tanh form: PCX tunes it per run (its
hyperparameter files hps/VGG5/CIFAR10/*.yaml choose gelu for PC-CE, PC-SE, BP-CE and BP-SE,
hard_tanh for iPC); biobench's network has one, the one most of them chose. PCX's padding
of 1 is biobench's SameConv2d at kernel 3, stride 1. (A third-party reimplementation reads
the paper's architecture table as giving the fourth conv padding 0, hence a 1x1 map and a
dense layer of 512 inputs; biobench follows the code above, which PCX's published
configurations trained: docs/references/pcx.md.)

Each layer's max pooling sits inside its op (biobench.nn.MaxPooled), picking in each window
the unit with the largest activated value, so the layer computes exactly PCX's
maxpool(act(conv(x))) while keeping the shape every rule walks, h = f(op(x)): BP, the feedback
family (the op's transpose routes the signal to the pooled units' positions) and the target-
propagation family (an inverse maps a layer's pooled output back through the same switches)
all train it. The units of a layer are the pooled ones, where PCX puts its value nodes.

biobench choice: a map smaller than the 2x2 window is not pooled (the 8x8 digits pool to 4,
2 and 1 pixels a side and the fourth conv runs on 1x1, unpooled), so small offline images get
the same network; images over 64 pixels a side are refused (PCX's largest is Tiny
ImageNet at 56; at 224 the dense head alone would hold 100 M weights per 1,000 classes).
"""

from __future__ import annotations

import math

from biobench.archs.stack import Layer, Stack
from biobench.nn import GELU, Dense, Identity, MaxPooled, SameConv2d, glorot_
from biobench.registry import ARCHITECTURES, DataInfo

CHANNELS = (128, 256, 512, 512)  # the four conv layers of PCX's VGG5, kernel 3, pad 1
KERNEL = 3
POOL = 2
MAX_SIDE = 64


def refuses(info: DataInfo) -> str | None:
    _, height, width = info.input_shape
    if max(height, width) <= MAX_SIDE:
        return None
    return (
        f"vgg5 takes images of at most {MAX_SIDE} pixels a side (PCX's largest is Tiny "
        f"ImageNet's 56) and these are {height}x{width}: downsample them or use conv"
    )


@ARCHITECTURES.register("vgg5", aliases=("vgg-5",), label="VGG-5", order=55, refuses=refuses)
def vgg5(info: DataInfo) -> Stack:
    """PCX's VGG-5: four 3x3 conv-GELU-maxpool blocks (128, 256, 512, 512), a dense output."""
    channels, size = info.input_shape[0], tuple(info.input_shape[1:])
    layers = []
    for out_channels in CHANNELS:
        activation = GELU()
        op = SameConv2d(channels, out_channels, KERNEL, input_size=size)
        if min(op.output_size) >= POOL:
            op = MaxPooled(op, POOL, activation=activation)
        layers.append(Layer(op, activation))
        channels, size = out_channels, op.output_size
    width = channels * math.prod(size)
    layers.append(Layer(Dense(width, info.num_classes), Identity(), flatten=True))
    return glorot_(Stack(layers, info))
