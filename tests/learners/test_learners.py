"""Every learning algorithm on every architecture: identities, hand computations, one step,
and learning on the real offline dataset."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from biobench.archs import ARCHITECTURES, Layer, Stack, build_network
from biobench.learners.base import local_forward
from biobench.nn import Activation, Dense, Identity, LocallyConnected2d, ReLU, Tanh, glorot_
from biobench.registry import ALGORITHMS
from biobench.spec import resolve
from biobench.store import Store
from biobench.training.runner import execute
from support.learners import TINY, batch, bp_grads, grads_after_step, hparams, net64

NOT_BACKPROP = [e.name for e in ALGORITHMS.entries() if e.family != "backprop"]
# The networks built as Stacks of layers, which every rule trains
# (resnet20: tests/archs/test_resnet.py).
STACKS = [name for name in ARCHITECTURES.names() if ARCHITECTURES.entry(name).families is None]


def test_every_algorithm_of_the_paper_is_registered() -> None:
    assert set(ALGORITHMS.names()) >= {"bp", "fa", "dfa", "tp", "dtp", "sdtp", "ao-sdtp"}


@pytest.mark.parametrize("arch", STACKS)
def test_fa_with_feedback_equal_to_the_forward_weights_is_backprop(arch: str) -> None:
    x, y = batch()
    learner = ALGORITHMS.get("fa")(net64(arch), hparams("fa"))
    for feedback, layer in zip(learner.feedback, learner.net.layers[1:], strict=True):
        feedback.copy_(layer.op.weight.detach())
    expected = bp_grads(net64(arch), x, y)
    for got, want in zip(grads_after_step(learner, x, y), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


class ValidConv2d(torch.nn.Conv2d):
    """An op biobench does not ship: a convolution without padding, with its own transpose."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, input_size: tuple[int, int]) -> None:
        super().__init__(c_in, c_out, kernel)
        self.input_size = input_size

    def transpose(self, signal: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        shape = (signal.shape[0], weight.shape[1], *self.input_size)
        return torch.nn.grad.conv2d_input(shape, weight, signal, self.stride)


def custom_net(activation: type[Activation], seed: int = 0) -> Stack:
    """8x8 -> valid 3x3 conv (4 x 6x6) -> locally connected, stride 2 (5 x 3x3) -> 12 -> 10."""
    torch.manual_seed(seed)
    layers = [
        Layer(ValidConv2d(1, 4, 3, input_size=(8, 8)), activation()),
        Layer(LocallyConnected2d(4, 5, 3, 2, input_size=(6, 6)), activation()),
        Layer(Dense(45, 12), activation(), flatten=True),
        Layer(Dense(12, 10), Identity()),
    ]
    return glorot_(Stack(layers, TINY)).double()


@pytest.mark.parametrize("activation", [Tanh, ReLU])
def test_fa_equals_backprop_on_any_op_and_activation_that_bring_their_own(
    activation: type[Activation],
) -> None:
    x, y = batch()
    learner = ALGORITHMS.get("fa")(custom_net(activation), hparams("fa"))
    for feedback, layer in zip(learner.feedback, learner.net.layers[1:], strict=True):
        feedback.copy_(layer.op.weight.detach())
    expected = bp_grads(custom_net(activation), x, y)
    got = grads_after_step(learner, x, y)
    assert all(bool(g.abs().sum() > 0) for g in got)  # ReLU left every layer some signal
    for g, want in zip(got, expected, strict=True):
        torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-13)


def test_an_op_without_a_transpose_is_named_with_the_method_to_add() -> None:
    layers = [
        Layer(Dense(64, 12), Tanh(), flatten=True),
        Layer(torch.nn.Linear(12, 10), Identity()),  # FA needs the output op's transpose
    ]
    learner = ALGORITHMS.get("fa")(Stack(layers, TINY), hparams("fa"))
    x, y = batch()
    with pytest.raises(
        TypeError, match=r"Linear has no transposed op.*transpose\(signal, weight\)"
    ):
        learner.train_step(x.float(), y)


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_fa_with_random_feedback_is_not_backprop(arch: str) -> None:
    x, y = batch()
    got = grads_after_step(ALGORITHMS.get("fa")(net64(arch), hparams("fa")), x, y)
    want = bp_grads(net64(arch), x, y)
    torch.testing.assert_close(got[-1], want[-1], rtol=1e-10, atol=1e-13)  # output: exact
    assert not torch.allclose(got[0], want[0])  # the first layer's is not


def test_dfa_hidden_deltas_match_a_float64_hand_computation() -> None:
    x, y = batch()
    learner = ALGORITHMS.get("dfa")(net64("fc"), hparams("dfa"))
    W = [layer.op.weight.detach() for layer in learner.net.layers]
    b = [layer.op.bias.detach() for layer in learner.net.layers]
    h = [x.flatten(1)]
    for i in range(len(W) - 1):
        h.append(torch.tanh(h[-1] @ W[i].T + b[i]))
    logits = h[-1] @ W[-1].T + b[-1]
    e = (torch.softmax(logits, 1) - F.one_hot(y, 10).double()) / len(y)
    # delta_l = (D_l e) * tanh'(a_l); dW_l = delta_l^T h_{l-1}; db_l = sum over the batch.
    deltas = [(e @ D.T) * (1 - hl**2) for D, hl in zip(learner.feedback, h[1:], strict=True)]
    deltas.append(e)
    expected = []
    for delta, h_in in zip(deltas, h, strict=True):
        expected += [delta.T @ h_in, delta.sum(0)]
    for got, want in zip(grads_after_step(learner, x, y), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def fixed_tensors(learner) -> list[torch.Tensor]:
    """Everything a learner holds that must never train: feedback and random features."""
    return [
        *getattr(learner, "feedback", []),
        *([learner.features] if hasattr(learner, "features") else []),
    ]


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
def test_one_step_moves_what_learns_and_nothing_fixed(algorithm: str, arch: str) -> None:
    if not ARCHITECTURES.entry(arch).supports(ALGORITHMS.entry(algorithm)):
        pytest.skip(f"{arch} does not take {algorithm}'s family (refused before data loads)")
    torch.manual_seed(0)
    learner = ALGORITHMS.get(algorithm)(build_network(arch, TINY), hparams(algorithm))
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    trainable = [p.detach().clone() for p in learner.net.parameters()]
    inverses = [
        p.detach().clone() for p in getattr(learner, "inverses", torch.nn.Module()).parameters()
    ]
    fixed = [t.clone() for t in fixed_tensors(learner)]
    metrics = learner.train_step(x, y)
    assert torch.isfinite(metrics["loss"])
    moved = [
        not torch.equal(a, p) for a, p in zip(trainable, learner.net.parameters(), strict=True)
    ]
    assert all(moved), f"parameters that did not move: {moved}"
    if inverses:
        assert all(
            not torch.equal(a, p)
            for a, p in zip(inverses, learner.inverses.parameters(), strict=True)
        )
    assert all(torch.equal(a, t) for a, t in zip(fixed, fixed_tensors(learner), strict=True))
    assert torch.isfinite(learner.logits(x)).all()


@pytest.mark.parametrize("algorithm", NOT_BACKPROP)
def test_non_backprop_learners_run_each_layer_on_a_detached_input(algorithm: str) -> None:
    # local_forward is what rules out weight transport by construction: check its contract.
    net = build_network("fc", TINY)
    trace = local_forward(net, batch()[0].float())
    assert all(not h.requires_grad for h in trace.inputs)
    torch.testing.assert_close(trace.pre[-1], net(batch()[0].float()))


FEEDBACK = [e.name for e in ALGORITHMS.entries() if e.family == "feedback"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("arch", STACKS)
@pytest.mark.parametrize("algorithm", FEEDBACK)
def test_dense_layers_own_gradients_train_bit_for_bit_as_autograd_does(
    algorithm: str, arch: str, precision: str
) -> None:
    # A dense op gives delta^T h and sum(delta) itself, so its layer records no graph; the
    # weights after three steps equal, bit for bit, those of every gradient through autograd
    # (what --debug and alignment's probe take), in float32 as runs train and under bf16
    # autocast (bf16 products, fp32 gradients).
    from biobench.learners.base import autograd_everywhere, direct_layers
    from biobench.training.execution import autocast

    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    trained = []
    for everywhere in (False, True):
        torch.manual_seed(0)
        learner = ALGORITHMS.get(algorithm)(build_network(arch, TINY), hparams(algorithm))
        with autograd_everywhere() if everywhere else contextlib.nullcontext():
            assert any(direct_layers(learner.net)) is not everywhere
            for _ in range(3):
                with autocast(precision, x.device):
                    learner.train_step(x, y)
        params = list(learner.net.parameters())
        # the last step's gradients too: Adam's first steps hardly see a gradient's rounding
        trained.append([t.detach().clone() for p in params for t in (p, p.grad)])
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))


def test_direct_layer_gradients_take_autograds_dtypes_under_autocast() -> None:
    # An fp32 delta arriving at a bf16 output (a CUDA softmax's error) is rounded to bf16, and
    # the product's input taken as the forward saw it, before the product, as autograd does;
    # the gradient lands in the fp32 parameter's dtype.
    from biobench.learners.base import layer_grads, local_forward

    net = build_network("fc", TINY)
    x = batch(8)[0].float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trace = local_forward(net, x)
    generator = torch.Generator().manual_seed(3)
    deltas = [torch.randn(a.shape, generator=generator) / 3 for a in trace.pre]
    assert all(a.dtype == torch.bfloat16 for a in trace.pre)
    got = []
    for direct in (True, False):
        net.zero_grad(set_to_none=True)
        layer_grads(net, trace, deltas, [direct] * len(net.layers))
        got.append([p.grad for p in net.parameters()])
    assert all(g.dtype == torch.float32 for g in got[0])
    assert all(torch.equal(a, b) for a, b in zip(*got, strict=True))


def test_a_dense_ops_own_gradients_equal_autograds() -> None:
    generator = torch.Generator().manual_seed(0)
    op = Dense(7, 5).double()
    h = torch.randn(4, 7, dtype=torch.float64, generator=generator)
    delta = torch.randn(4, 5, dtype=torch.float64, generator=generator)
    expected = torch.autograd.grad(op(h), [op.weight, op.bias], delta)
    given = op.weight_grads(h, delta)
    assert all(a is b for (a, _), b in zip(given, [op.weight, op.bias], strict=True))
    for (_, got), want in zip(given, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


# Measured on the offline digits (1,437 train / 360 test, chance 90% error), the rules'
# declared default hyperparameters, seed 0: best test top-1 error after the epochs below.
# bp 2.5 (4 ep), fa 6.1, dfa 4.7, dtp 7.2, sdtp 9.2, ao-sdtp 8.6 (5 ep); the thresholds leave
# headroom for other CPUs' float rounding.
LEARNS = [
    ("bp", 4, 8.0),
    ("fa", 5, 15.0),
    ("dfa", 5, 15.0),
    ("dtp", 5, 15.0),
    ("sdtp", 5, 20.0),
    ("ao-sdtp", 5, 20.0),
]


@pytest.mark.parametrize(("algorithm", "epochs", "threshold"), LEARNS)
def test_every_algorithm_learns_the_offline_digits(
    algorithm: str, epochs: int, threshold: float, sqlite_url: str
) -> None:
    spec = resolve(algorithm=algorithm, architecture="fc", dataset="digits", epochs=epochs)
    store = Store(sqlite_url)
    run_id = execute(spec, store=store, device=torch.device("cpu"), data_dir=Path("unused"))
    assert store.run(run_id).best_test_top1 < threshold
