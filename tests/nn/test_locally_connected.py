"""The locally-connected op against a slow, obvious reference, autograd, and conv2d.

The reference loops over output positions with explicit zero padding and per-position dot
products; it shares nothing with the implementation but the documented weight layout
(out_h, out_w, k_h, k_w, in_channels, out_channels).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from biobench.nn import (
    LocallyConnected2d,
    glorot_,
    glorot_fans,
    locally_connected2d,
    locally_connected2d_transpose,
    locally_connected2d_weight_grad,
    same_output_size,
)

F64 = torch.float64
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


class Case:
    """One LC geometry: batch, channels in/out, input (H, W), kernel (k_h, k_w), stride."""

    def __init__(
        self,
        n: int,
        c: int,
        o: int,
        size: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
    ) -> None:
        self.n, self.c, self.o = n, c, o
        self.h, self.w = size
        self.kh, self.kw = kernel
        self.sh, self.sw = stride
        self.oh, self.top, self.bottom = same_pads(self.h, self.kh, self.sh)
        self.ow, self.left, self.right = same_pads(self.w, self.kw, self.sw)

    @property
    def stride(self) -> tuple[int, int]:
        return self.sh, self.sw

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.oh, self.ow, self.kh, self.kw, self.c, self.o)

    def tensors(self, seed: int = 0, dtype: torch.dtype = F64) -> dict[str, Tensor]:
        gen = torch.Generator().manual_seed(seed)

        def draw(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=gen, dtype=dtype)

        return {
            "x": draw(self.n, self.c, self.h, self.w),
            "weight": draw(*self.weight_shape),
            "bias": draw(self.o, self.oh, self.ow),
            "g": draw(self.n, self.o, self.oh, self.ow),
        }

    def __repr__(self) -> str:
        return (
            f"n{self.n}-c{self.c}-o{self.o}-{self.h}x{self.w}"
            f"-k{self.kh}x{self.kw}-s{self.sh}x{self.sw}"
        )


CASES = [
    Case(1, 1, 2, (7, 7), (3, 3), (1, 1)),  # one channel, batch 1
    Case(2, 3, 4, (9, 6), (3, 3), (2, 2)),  # odd, non-square, kernel > stride
    Case(3, 2, 3, (11, 13), (5, 5), (3, 3)),
    Case(2, 2, 3, (10, 7), (4, 4), (4, 4)),  # kernel == stride
    Case(2, 3, 2, (9, 9), (2, 2), (4, 4)),  # kernel < stride
    Case(2, 2, 2, (8, 9), (3, 5), (1, 2)),  # rectangular kernel and stride
    Case(4, 3, 5, (5, 5), (7, 7), (1, 1)),  # kernel larger than the input
    Case(1, 2, 3, (13, 8), (3, 3), (3, 3)),
    Case(2, 1, 1, (6, 5), (1, 1), (1, 1)),
    Case(2, 3, 8, (32, 32), (5, 5), (2, 2)),  # a CIFAR-10 first layer, fewer channels
]
SMALL = [CASES[0], CASES[1], CASES[3], CASES[5]]
TINY = [Case(1, 2, 2, (5, 4), (3, 3), (2, 2)), Case(2, 1, 2, (4, 5), (2, 3), (1, 2))]


def padded(case: Case, x: Tensor) -> Tensor:
    h, w = case.h + case.top + case.bottom, case.w + case.left + case.right
    out = torch.zeros(case.n, case.c, h, w, dtype=x.dtype)
    out[:, :, case.top : case.top + case.h, case.left : case.left + case.w] = x
    return out


def window(case: Case, p: int, q: int) -> tuple[slice, slice]:
    return (
        slice(p * case.sh, p * case.sh + case.kh),
        slice(q * case.sw, q * case.sw + case.kw),
    )


def reference_forward(case: Case, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    xp = padded(case, x)
    out = torch.empty(case.n, case.o, case.oh, case.ow, dtype=x.dtype)
    for p in range(case.oh):
        for q in range(case.ow):
            rows, cols = window(case, p, q)
            patch = xp[:, :, rows, cols]  # (N, C, k_h, k_w)
            filt = weight[p, q]  # (k_h, k_w, C, O)
            out[:, :, p, q] = torch.einsum("ncij,ijco->no", patch, filt) + bias[:, p, q]
    return out


def reference_transpose(case: Case, g: Tensor, weight: Tensor) -> Tensor:
    xp = padded(case, torch.zeros(case.n, case.c, case.h, case.w, dtype=g.dtype))
    for p in range(case.oh):
        for q in range(case.ow):
            rows, cols = window(case, p, q)
            xp[:, :, rows, cols] += torch.einsum("no,ijco->ncij", g[:, :, p, q], weight[p, q])
    return xp[:, :, case.top : case.top + case.h, case.left : case.left + case.w]


def reference_weight_grad(case: Case, x: Tensor, g: Tensor) -> Tensor:
    xp = padded(case, x)
    out = torch.empty(case.weight_shape, dtype=x.dtype)
    for p in range(case.oh):
        for q in range(case.ow):
            rows, cols = window(case, p, q)
            out[p, q] = torch.einsum("ncij,no->ijco", xp[:, :, rows, cols], g[:, :, p, q])
    return out


def assert_close(actual: Tensor, expected: Tensor) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_matches_reference(case: Case) -> None:
    t = case.tensors()
    out = locally_connected2d(t["x"], t["weight"], t["bias"], case.stride)
    assert out.shape == (case.n, case.o, case.oh, case.ow)
    assert out.is_contiguous()
    assert_close(out, reference_forward(case, t["x"], t["weight"], t["bias"]))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_forward_without_bias(case: Case) -> None:
    t = case.tensors()
    out = locally_connected2d(t["x"], t["weight"], None, case.stride)
    assert_close(out, reference_forward(case, t["x"], t["weight"], torch.zeros_like(t["bias"])))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_transpose_matches_reference(case: Case) -> None:
    t = case.tensors()
    out = locally_connected2d_transpose(t["g"], t["weight"], (case.h, case.w), case.stride)
    assert out.shape == (case.n, case.c, case.h, case.w)
    assert_close(out, reference_transpose(case, t["g"], t["weight"]))


@pytest.mark.parametrize("spec", ["shape", "kernel"])
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_weight_grad_matches_reference(case: Case, spec: str) -> None:
    t = case.tensors()
    shape_or_kernel = case.weight_shape if spec == "shape" else (case.kh, case.kw)
    out = locally_connected2d_weight_grad(t["x"], t["g"], shape_or_kernel, case.stride)
    assert_close(out, reference_weight_grad(case, t["x"], t["g"]))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_backward_is_the_transpose_and_weight_grad(case: Case) -> None:
    t = case.tensors()
    x, weight, bias = (t[k].requires_grad_() for k in ("x", "weight", "bias"))
    out = locally_connected2d(x, weight, bias, case.stride)
    grad_x, grad_w, grad_b = torch.autograd.grad(out, (x, weight, bias), t["g"])
    assert_close(grad_x, reference_transpose(case, t["g"], weight.detach()))
    assert_close(grad_w, reference_weight_grad(case, x.detach(), t["g"]))
    assert_close(grad_b, t["g"].sum(0))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_transpose_is_the_vjp_for_any_weight(case: Case) -> None:
    t = case.tensors()
    feedback = case.tensors(seed=1)["weight"]  # not the forward's weight: FA's B, TP's V
    x = t["x"].requires_grad_()
    (vjp,) = torch.autograd.grad(locally_connected2d(x, feedback, None, case.stride), x, t["g"])
    transposed = locally_connected2d_transpose(t["g"], feedback, (case.h, case.w), case.stride)
    assert_close(transposed, vjp)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_adjoint_identity(case: Case) -> None:
    t = case.tensors()
    forward = locally_connected2d(t["x"], t["weight"], None, case.stride)
    transposed = locally_connected2d_transpose(t["g"], t["weight"], (case.h, case.w), case.stride)
    lhs = torch.dot(forward.flatten(), t["g"].flatten())
    rhs = torch.dot(t["x"].flatten(), transposed.flatten())
    assert_close(lhs, rhs)


@pytest.mark.parametrize("needs", ["x", "weight", "bias", "x+weight"])
def test_partial_gradients_and_what_is_saved(needs: str) -> None:
    """A first layer needs no input gradient, a frozen layer no weight gradient: each saves
    only what its backward uses, and never the unfolded patches."""
    case = CASES[2]
    t = case.tensors()
    wanted = needs.split("+")
    inputs = {k: t[k].requires_grad_(k in wanted) for k in ("x", "weight", "bias")}
    saved: list[Tensor] = []

    def pack(tensor: Tensor) -> Tensor:
        saved.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = locally_connected2d(inputs["x"], inputs["weight"], inputs["bias"], case.stride)
    expected = {"x": ["weight"], "weight": ["x"], "bias": [], "x+weight": ["x", "weight"]}
    assert [k for k in ("x", "weight") if any(s is inputs[k] for s in saved)] == expected[needs]
    assert len(saved) == len(expected[needs])
    grads = torch.autograd.grad(out, [inputs[k] for k in wanted], t["g"])
    references = {
        "x": lambda: reference_transpose(case, t["g"], t["weight"].detach()),
        "weight": lambda: reference_weight_grad(case, t["x"].detach(), t["g"]),
        "bias": lambda: t["g"].sum(0),
    }
    for name, grad in zip(wanted, grads, strict=True):
        assert_close(grad, references[name]())


@pytest.mark.parametrize("case", SMALL, ids=repr)
def test_gradcheck_forward(case: Case) -> None:
    t = case.tensors()
    inputs = tuple(t[k].requires_grad_() for k in ("x", "weight", "bias"))
    assert torch.autograd.gradcheck(
        lambda x, w, b: locally_connected2d(x, w, b, case.stride), inputs
    )


@pytest.mark.parametrize("case", TINY, ids=repr)
def test_gradgradcheck_forward(case: Case) -> None:
    t = case.tensors()
    inputs = tuple(t[k].requires_grad_() for k in ("x", "weight", "bias"))
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: locally_connected2d(x, w, b, case.stride), inputs
    )


@pytest.mark.parametrize("case", SMALL, ids=repr)
def test_gradcheck_transpose(case: Case) -> None:
    """A target-propagation inverse trains its weight V through the transposed op."""
    t = case.tensors()
    inputs = (t["g"].requires_grad_(), t["weight"].requires_grad_())
    assert torch.autograd.gradcheck(
        lambda g, v: locally_connected2d_transpose(g, v, (case.h, case.w), case.stride), inputs
    )


@pytest.mark.parametrize("case", SMALL, ids=repr)
def test_gradcheck_weight_grad(case: Case) -> None:
    t = case.tensors()
    inputs = (t["x"].requires_grad_(), t["g"].requires_grad_())
    assert torch.autograd.gradcheck(
        lambda x, g: locally_connected2d_weight_grad(x, g, (case.kh, case.kw), case.stride),
        inputs,
    )


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_tied_filters_equal_conv2d(case: Case) -> None:
    t = case.tensors()
    conv_weight = torch.randn(case.o, case.c, case.kh, case.kw, dtype=F64)
    tied = conv_weight.permute(2, 3, 1, 0).expand(case.oh, case.ow, -1, -1, -1, -1)
    conv_bias = torch.randn(case.o, dtype=F64)
    lc_bias = conv_bias[:, None, None].expand(-1, case.oh, case.ow)
    out = locally_connected2d(t["x"], tied, lc_bias, case.stride)
    same = F.pad(t["x"], (case.left, case.right, case.top, case.bottom))
    assert_close(out, F.conv2d(same, conv_weight, conv_bias, case.stride))


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_non_contiguous_input(layout: str) -> None:
    case = CASES[1]
    t = case.tensors()
    if layout == "channels_last":
        x = t["x"].to(memory_format=torch.channels_last)
    else:
        x = torch.cat([t["x"], t["x"]], dim=3)[..., ::2]
        t["x"] = x.contiguous()
    out = locally_connected2d(x, t["weight"], t["bias"], case.stride)
    assert_close(out, reference_forward(case, t["x"], t["weight"], t["bias"]))


@pytest.mark.parametrize(
    "size, kernel, stride, expected",
    [
        ((28, 28), 3, 2, (14, 14)),
        ((224, 224), 9, 4, (56, 56)),
        ((8, 8), 3, 1, (8, 8)),
        ((7, 9), (3, 1), (2, 3), (4, 3)),
        (13, 5, 4, (4, 4)),
    ],
)
def test_same_output_size(size, kernel, stride, expected) -> None:
    assert same_output_size(size, kernel, stride) == expected


ERRORS = {
    "weight-shape": (lambda t: locally_connected2d(t["x"], t["weight"][:-1], None, 2), "fit"),
    "bias-shape": (lambda t: locally_connected2d(t["x"], t["weight"], t["bias"][:-1], 2), "bias"),
    "channels": (lambda t: locally_connected2d(t["x"][:, :2], t["weight"], None, 2), "channels"),
    "dtype": (lambda t: locally_connected2d(t["x"], t["weight"].float(), None, 2), "dtype"),
    "stride": (lambda t: locally_connected2d(t["x"], t["weight"], None, 0), "stride"),
    "transpose-size": (
        lambda t: locally_connected2d_transpose(t["g"], t["weight"], (9, 8), 2),
        "does not fit",
    ),
    "transpose-grad": (
        lambda t: locally_connected2d_transpose(t["g"][:, :1], t["weight"], (9, 6), 2),
        "gradient",
    ),
    "weight-grad-shape": (
        lambda t: locally_connected2d_weight_grad(t["x"], t["g"], (4, 3, 3, 3, 3, 4), 2),
        "does not fit",
    ),
}


@pytest.mark.parametrize("error", ERRORS)
def test_bad_operands_are_explained(error: str) -> None:
    call, message = ERRORS[error]
    with pytest.raises((ValueError, TypeError), match=message):
        call(CASES[1].tensors())


# The module.

MNIST_LAYERS = [(1, 32, 3, 2, (28, 28)), (32, 64, 3, 2, (14, 14))]


@pytest.mark.parametrize("c, o, k, s, size", MNIST_LAYERS)
def test_module_parameter_shapes_and_count(c, o, k, s, size) -> None:
    layer = LocallyConnected2d(c, o, k, s, input_size=size)
    oh, ow = layer.output_size
    assert layer.weight.shape == (oh, ow, k, k, c, o)
    assert layer.bias.shape == (o, oh, ow)
    count = sum(p.numel() for p in layer.parameters())
    assert count == oh * ow * (k * k * c * o + o)


@pytest.mark.parametrize("bias", [True, False])
def test_module_attributes(bias: bool) -> None:
    layer = LocallyConnected2d(3, 5, (3, 5), (2, 1), input_size=(9, 6), bias=bias)
    assert layer.kernel_size == (3, 5) and layer.stride == (2, 1)
    assert layer.input_size == (9, 6) and layer.output_size == (5, 6)
    assert (layer.bias is not None) == bias
    assert len(list(layer.parameters())) == 1 + bias
    assert "output_size=(5, 6)" in repr(layer)


@pytest.mark.parametrize("reinit", ["reset_parameters", "glorot_"])
def test_module_glorot_init(reinit: str) -> None:
    layer = LocallyConnected2d(8, 16, 3, 2, input_size=(12, 12))
    assert layer.glorot_fans() == glorot_fans(layer) == (8 * 9, 16 * 9)
    with torch.no_grad():
        layer.bias.fill_(1.0)
    if reinit == "glorot_":
        glorot_(layer)
    else:
        layer.reset_parameters()
    bound = math.sqrt(6 / (8 * 9 + 16 * 9))
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.95 * bound
    assert abs(layer.weight.std().item() - bound / math.sqrt(3)) < 0.02 * bound
    assert torch.all(layer.bias == 0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_module_forward_and_backward(dtype: torch.dtype) -> None:
    case = Case(2, 3, 4, (9, 6), (3, 3), (2, 2))
    layer = LocallyConnected2d(3, 4, 3, 2, input_size=(9, 6), dtype=dtype)
    x = torch.randn(2, 3, 9, 6, dtype=dtype, requires_grad=True)
    out = layer(x)
    assert out.dtype == dtype and out.shape == (2, 4, 5, 3)
    expected = reference_forward(case, x.double(), layer.weight.double(), layer.bias.double())
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out.double(), expected, rtol=tol, atol=tol)
    out.square().sum().backward()
    assert layer.weight.grad.shape == layer.weight.shape and x.grad.shape == x.shape


def test_module_transpose_defaults_to_its_own_weight() -> None:
    layer = LocallyConnected2d(3, 4, 3, 2, input_size=(9, 6), dtype=F64)
    g = torch.randn(2, 4, 5, 3, dtype=F64)
    expected = locally_connected2d_transpose(g, layer.weight, (9, 6), 2)
    assert_close(layer.transpose(g), expected)
    feedback = torch.randn_like(layer.weight)
    assert_close(
        layer.transpose(g, feedback), locally_connected2d_transpose(g, feedback, (9, 6), 2)
    )


def test_module_rejects_the_wrong_input_size() -> None:
    layer = LocallyConnected2d(3, 4, 3, 2, input_size=(9, 6))
    with pytest.raises(ValueError, match="input size"):
        layer(torch.randn(1, 3, 9, 7))


# Mixed precision.


def autocast_check(device: str, dtype: torch.dtype) -> None:
    case = Case(4, 8, 16, (12, 10), (3, 3), (2, 2))
    t = {k: v.float().to(device) for k, v in case.tensors().items()}
    x, weight, bias = (t[k].requires_grad_() for k in ("x", "weight", "bias"))
    with torch.autocast(device, dtype=dtype):
        out = locally_connected2d(x, weight, bias, case.stride)
    assert out.dtype == dtype
    out.float().mul(t["g"]).sum().backward()
    assert x.grad.dtype == weight.grad.dtype == bias.grad.dtype == torch.float32
    cpu = {k: v.detach().double().cpu() for k, v in t.items()}
    expected = reference_forward(case, cpu["x"], cpu["weight"], cpu["bias"])
    scale = expected.abs().max().item()
    tol = dict(rtol=0, atol=0.02 * scale)
    torch.testing.assert_close(out.double().cpu(), expected, **tol)
    grad_w = reference_weight_grad(case, cpu["x"], cpu["g"])
    torch.testing.assert_close(
        weight.grad.double().cpu(), grad_w, rtol=0, atol=0.02 * grad_w.abs().max().item()
    )


def test_cpu_autocast_bf16() -> None:
    autocast_check("cpu", torch.bfloat16)


@CUDA
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast(dtype: torch.dtype) -> None:
    autocast_check("cuda", dtype)


@CUDA
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_cuda_matches_reference(case: Case) -> None:
    t = case.tensors()
    cuda = {k: v.cuda() for k, v in t.items()}
    out = locally_connected2d(cuda["x"], cuda["weight"], cuda["bias"], case.stride)
    assert_close(out.cpu(), reference_forward(case, t["x"], t["weight"], t["bias"]))
    transposed = locally_connected2d_transpose(
        cuda["g"], cuda["weight"], (case.h, case.w), case.stride
    )
    assert_close(transposed.cpu(), reference_transpose(case, t["g"], t["weight"]))
    grad_w = locally_connected2d_weight_grad(cuda["x"], cuda["g"], case.weight_shape, case.stride)
    assert_close(grad_w.cpu(), reference_weight_grad(case, t["x"], t["g"]))
