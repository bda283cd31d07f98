"""PCX's MLP (Pinchetti et al., ICLR 2025, arXiv:2407.01163): three GELU hidden layers of 128
units and a dense output, the network of PCX's MNIST and FashionMNIST benchmarks.

Matched to PCX's code, repository liukidar/pcx, examples/s4_1_discriminative_mode/models.py and
models_BP.py (class LinearModel, built by get_model("MLP") as input 784, hidden 128, 4 layers),
commit c722834e1970239336f4218ca03e964255853e88: Linear(784, 128), Linear(128, 128) twice,
Linear(128, 10), the activation after each but the last, biases everywhere (134,794
parameters on MNIST). PCX flattens the image into the first layer; biobench sizes it from the
dataset, so any image shape gets the same three hidden layers.

The activation is GELU in jax.nn.gelu's default tanh form, the one PCX's MNIST configurations
chose for PC-CE, PC-SE and BP-SE (hps/MLP/MNIST/*.yaml; its BP-CE run chose hard_tanh and its
iPC run leaky_relu). Weights are Glorot-uniform like every biobench net (PCX keeps equinox's
default initialisation).
"""

from __future__ import annotations

import math

from biobench.archs.stack import Layer, Stack
from biobench.nn import GELU, Dense, Identity, glorot_
from biobench.registry import ARCHITECTURES, DataInfo

HIDDEN = (128, 128, 128)


@ARCHITECTURES.register("mlp", aliases=("pcx-mlp",), label="MLP", order=50)
def mlp(info: DataInfo) -> Stack:
    """PCX's MLP: three GELU hidden layers of 128 units, a dense output."""
    widths = [math.prod(info.input_shape), *HIDDEN, info.num_classes]
    last = len(widths) - 2
    layers = [
        Layer(Dense(n_in, n_out), GELU() if i < last else Identity(), flatten=i == 0)
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
    ]
    return glorot_(Stack(layers, info))
