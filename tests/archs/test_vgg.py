"""PCX's VGG-5 (biobench.archs.vgg) and MLP (biobench.archs.mlp), and the pieces they
brought: max pooling inside an op (biobench.nn.MaxPooled) and the GELU activation. Every rule
takes a step on both in tests/test_learners.py, whose parametrisations cover every registered
architecture."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from biobench.archs import ARCHITECTURES, DataInfo, build_network
from biobench.nn import GELU, Dense, Identity, MaxPooled, SameConv2d
from biobench.registry import ALGORITHMS
from biobench.spec import resolve
from biobench.store import Store
from biobench.training.runner import execute

MNIST = DataInfo("mnist", (1, 28, 28), 10)
CIFAR10 = DataInfo("cifar10", (3, 32, 32), 10)
# PCX's VGG5 (liukidar/pcx, examples/s4_1_discriminative_mode/models.py): 3x3 convs of these
# widths, each followed by the activation and a 2x2 max pool, then one dense layer.
PCX_CHANNELS = [128, 256, 512, 512]


def pcx_parameters(info: DataInfo) -> int:
    """By hand from PCX's layer list: conv weights c_in * c_out * 3 * 3 plus a bias each, then
    Linear(512 * (side // 16)^2, classes) with its bias (floor pooling: 28, 14, 7, 3, 1)."""
    total, c_in = 0, info.input_shape[0]
    for c_out in PCX_CHANNELS:
        total += c_in * c_out * 9 + c_out
        c_in = c_out
    side = info.input_shape[1]
    for _ in PCX_CHANNELS:
        side //= 2
    return total + 512 * side * side * info.num_classes + info.num_classes


@pytest.mark.parametrize(
    ("info", "shapes"),
    [
        (MNIST, [(128, 14, 14), (256, 7, 7), (512, 3, 3), (512, 1, 1), (10,)]),
        (CIFAR10, [(128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2), (10,)]),
        # biobench's choice for small images: the fourth conv runs on 1x1, unpooled.
        (
            DataInfo("digits", (1, 8, 8), 10),
            [(128, 4, 4), (256, 2, 2), (512, 1, 1), (512, 1, 1), (10,)],
        ),
    ],
    ids=["mnist", "cifar10", "digits"],
)
def test_layers_are_pcx_blocks_of_conv_and_pool(info: DataInfo, shapes: list) -> None:
    net = build_network("vgg5", info)
    assert [layer.output_shape for layer in net.layers] == shapes
    assert net(torch.zeros(2, *info.input_shape)).shape == (2, 10)
    convs = [layer.op.op if isinstance(layer.op, MaxPooled) else layer.op for layer in net.layers]
    assert [(c.kernel_size, c.stride, c.pad) for c in convs[:4]] == [(3, 1, (1, 1, 1, 1))] * 4
    assert all(isinstance(layer.activation, GELU) for layer in net.layers[:4])
    assert isinstance(net.layers[-1].op, Dense) and isinstance(net.layers[-1].activation, Identity)


@pytest.mark.parametrize(
    ("info", "expected"), [(CIFAR10, 3_859_210), (MNIST, 3_841_546)], ids=["cifar10", "mnist"]
)
def test_parameter_count_is_pcx_s(info: DataInfo, expected: int) -> None:
    assert pcx_parameters(info) == expected
    with torch.device("meta"):
        assert build_network("vgg5", info).num_parameters() == expected


def test_mlp_is_pcx_s_784_128_128_128_10() -> None:
    net = build_network("mlp", MNIST)
    assert [layer.op.weight.shape for layer in net.layers] == [
        (128, 784),
        (128, 128),
        (128, 128),
        (10, 128),
    ]
    assert [type(layer.activation) for layer in net.layers] == [GELU, GELU, GELU, Identity]
    by_hand = (784 * 128 + 128) + 2 * (128 * 128 + 128) + (128 * 10 + 10)
    assert net.num_parameters() == by_hand == 134_794


def test_images_over_64_pixels_are_refused_before_building() -> None:
    reason = ARCHITECTURES.entry("vgg5").refuses(DataInfo("imagenet", (3, 224, 224), 1000))
    assert "at most 64 pixels a side" in reason
    assert ARCHITECTURES.entry("vgg5").refuses(DataInfo("in64", (3, 64, 64), 1000)) is None


def test_every_rule_may_train_vgg5() -> None:
    entry = ARCHITECTURES.entry("vgg5")
    assert all(entry.supports(rule) for rule in ALGORITHMS.entries())


# -- the layer computes PCX's maxpool(act(conv(x))) exactly -----------------------------------


def pooled(size: tuple[int, int], seed: int = 0) -> MaxPooled:
    torch.manual_seed(seed)
    return MaxPooled(SameConv2d(2, 3, 3, input_size=size), 2, activation=GELU()).double()


@pytest.mark.parametrize("size", [(8, 8), (7, 9)], ids=["even", "odd"])
def test_activated_pooled_op_is_pooling_after_the_activation(size: tuple[int, int]) -> None:
    op = pooled(size)
    # Shifted down so many windows hold only negative pre-activations, where GELU is not
    # monotone and pooling before the activation would pick a different unit.
    x = torch.randn(4, 2, *size, dtype=torch.float64) - 1.5
    a = F.conv2d(x, op.op.weight, op.op.bias, padding=1)
    expected = F.max_pool2d(F.gelu(a, approximate="tanh"), 2)
    torch.testing.assert_close(GELU()(op(x)), expected, rtol=0, atol=0)
    before = F.gelu(F.max_pool2d(a, 2), approximate="tanh")
    assert not torch.allclose(before, expected)  # the case the selection is there for


@pytest.mark.parametrize("size", [(8, 8), (7, 9)], ids=["even", "odd"])
def test_pooled_transpose_is_the_ops_vjp(size: tuple[int, int]) -> None:
    op = pooled(size)
    x = torch.randn(3, 2, *size, dtype=torch.float64, requires_grad=True)
    out = op(x)
    g = torch.randn_like(out)
    (vjp,) = torch.autograd.grad(out, x, g)
    torch.testing.assert_close(op.transpose(g, op.weight.detach().clone()), vjp)
    # Any weight of the op's shape: the transpose is linear in it, the pool's routing fixed.
    other = torch.randn_like(op.weight)
    direct = op.op.transpose(F.max_unpool2d(g, op.switches, 2, output_size=op.pooled_from), other)
    torch.testing.assert_close(op.transpose(g, other), direct)


def test_transpose_without_a_forward_on_that_batch_is_refused() -> None:
    op = pooled((8, 8))
    op(torch.zeros(2, 2, 8, 8, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="forward pass on the same batch"):
        op.transpose(torch.zeros(5, 3, 4, 4, dtype=torch.float64), op.weight.detach().clone())


def test_gelu_derivative_is_autograds() -> None:
    a = torch.linspace(-6, 6, 2001, dtype=torch.float64, requires_grad=True)
    h = GELU()(a)
    (expected,) = torch.autograd.grad(h.sum(), a)
    torch.testing.assert_close(GELU().derivative(a.detach(), h.detach()), expected)
    c = math.sqrt(2 / math.pi)
    by_hand = 0.5 * a * (1 + torch.tanh(c * (a + 0.044715 * a**3)))
    torch.testing.assert_close(h, by_hand)


# -- every rule on PCX's MNIST-sized network (odd maps: 7 -> 3 -> 1) ----------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_every_rule_takes_a_finite_step_at_mnist_size(algorithm: str) -> None:
    torch.manual_seed(0)
    declared = ALGORITHMS.entry(algorithm).hparams
    hp = {name: param.default for name, param in declared.items()}
    hp.update({k: v for k, v in {"mode": "parallel", "aux_units": 16}.items() if k in declared})
    learner = ALGORITHMS.get(algorithm)(build_network("vgg5", MNIST), hp)
    x, y = torch.randn(3, *MNIST.input_shape), torch.tensor([0, 3, 7])
    before = [p.detach().clone() for p in learner.net.parameters()]
    metrics = learner.train_step(x, y)
    assert torch.isfinite(metrics["loss"])
    assert all(torch.isfinite(p).all() for p in learner.net.parameters())
    assert any(
        not torch.equal(a, p) for a, p in zip(before, learner.net.parameters(), strict=True)
    )
    assert torch.isfinite(learner.logits(x)).all()


@pytest.mark.slow
def test_bp_on_vgg5_learns_the_digits(sqlite_url: str) -> None:
    spec = resolve(algorithm="bp", architecture="vgg5", dataset="digits", epochs=3)
    store = Store(sqlite_url)
    run_id = execute(spec, store=store, device=torch.device("cpu"), data_dir=Path("unused"))
    assert store.run(run_id).best_test_top1 < 10.0
