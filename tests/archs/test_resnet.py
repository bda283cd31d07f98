"""ResNet-20 and the feedback family on it: the network's size, the rerouted backward of its
convs and dense op (exact everywhere else), the weight-transport guard, every feedback rule's
step, and the target-propagation family refused before any data loads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from biobench.archs import ARCHITECTURES, DataInfo, build_network
from biobench.cli.app import app
from biobench.data.base import DataOptions
from biobench.errors import SpecError
from biobench.learners.base import output_error
from biobench.nn.feedback import FeedbackConv2d, FeedbackLinear, Port, WeightTransportError
from biobench.registry import ALGORITHMS, DATASETS
from biobench.spec import resolve
from support.learners import bp_grads, grads_after_step
from support.learners import resnet64 as net64

CIFAR = DataInfo("cifar10", (3, 32, 32), 10)
DIGITS = DataInfo("digits", (1, 8, 8), 10)
FEEDBACK = [e.name for e in ALGORITHMS.entries() if e.family == "feedback"]
REFUSED = [e.name for e in ALGORITHMS.entries() if e.family == "target-propagation"]


def defaults(algorithm: str, **given) -> dict:
    return {n: p.default for n, p in ALGORITHMS.entry(algorithm).hparams.items()} | given


def batch(n: int = 6, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=generator, dtype=torch.float64)
    return x, (torch.arange(n) + seed) % 10


# -- the network -------------------------------------------------------------------------------


def test_resnet20_on_cifar10_has_he_et_als_0_27_m_parameters_in_20_weighted_layers() -> None:
    net = build_network("resnet20", CIFAR)
    # 19 bias-free 3x3 convs (267,696), 19 batch norms (1,376), the dense output (650).
    assert net.num_parameters() == 269_722
    assert len(net.ops) == 20
    assert [type(op) for op in net.ops[:-1]] == [FeedbackConv2d] * 19
    assert isinstance(net.ops[-1], FeedbackLinear)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_resnet20_is_sized_from_the_dataset() -> None:
    net = build_network("resnet20", DIGITS)
    assert net.ops[0].input_shape == (1, 8, 8)
    assert net.ops[-1].input_shape == (64,)  # 8 -> 4 -> 2 pixels a side, then pooled
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_option_a_shortcuts_subsample_and_zero_pad_the_new_channels() -> None:
    block = build_network("resnet20", CIFAR).blocks[3]  # the first block of the 32-channel stage
    x = torch.randn(2, 16, 32, 32)
    out = block.shortcut(x)
    assert out.shape == (2, 32, 16, 16)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


# -- the rerouted backward ---------------------------------------------------------------------


def test_fa_with_feedback_equal_to_the_forward_weights_is_backprop_on_resnet20() -> None:
    # Only the convs' and dense op's input gradients are rerouted: with B = W (a copy, so
    # the guard lets it through) batch norm, ReLU, pooling and the skips must make it BP's.
    x, y = batch()
    learner = ALGORITHMS.get("fa")(net64(), defaults("fa"))
    for feedback, op in zip(learner.feedback, learner.ops[1:], strict=True):
        feedback.copy_(op.weight.detach())
    expected = bp_grads(net64(), x, y)
    got = grads_after_step(learner, x, y)
    assert len(got) == len(expected) == 2 * 19 + 19 + 2
    for g, want in zip(got, expected, strict=True):
        torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-13)


def test_fa_with_random_feedback_is_backprop_at_the_output_layer_only() -> None:
    x, y = batch()
    got = grads_after_step(ALGORITHMS.get("fa")(net64(), defaults("fa")), x, y)
    want = bp_grads(net64(), x, y)
    torch.testing.assert_close(got[-2:], want[-2:], rtol=1e-10, atol=1e-13)  # dense op: exact
    assert not torch.allclose(got[0], want[0])


@pytest.mark.parametrize(
    "op", [FeedbackConv2d(3, 5, 3, stride=2, padding=1), FeedbackLinear(7, 4)]
)
def test_a_rerouted_op_sends_its_signal_through_b_and_keeps_its_exact_weight_gradient(op) -> None:
    op = op.double()
    torch.manual_seed(0)
    shape = (4, 3, 9, 9) if isinstance(op, FeedbackConv2d) else (4, 7)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    out = op(x)  # plain: exact autograd
    g = torch.randn_like(out)
    exact_x, exact_w = torch.autograd.grad(out, (x, op.weight), g)
    B = torch.randn_like(op.weight)
    op.port = Port(weight=B)
    got_x, got_w = torch.autograd.grad(op(x), (x, op.weight), g)
    torch.testing.assert_close(got_w, exact_w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_x, op.input_grad(g, B, x.shape), rtol=0, atol=0)
    assert not torch.allclose(got_x, exact_x)
    with torch.no_grad():
        op.weight.copy_(B)
    torch.testing.assert_close(got_x, torch.autograd.grad(op.plain(x), x, g)[0])


def test_a_direct_signal_is_broadcast_over_every_output_position() -> None:
    op = FeedbackConv2d(2, 3, 3, padding=1).double()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    e = torch.randn(2, 10, dtype=torch.float64)
    B = torch.randn(10, 2, 3, 3, dtype=torch.float64)
    op.port = Port(weight=B, signal=e)
    (got,) = torch.autograd.grad(op(x).sum(), x)
    tiled = e[:, :, None, None].expand(2, 10, 5, 5)
    torch.testing.assert_close(got, torch.nn.grad.conv2d_input(x.shape, B, tiled, padding=1))


def test_dfa_on_resnet20_sends_each_op_a_projection_of_the_output_error() -> None:
    x, y = batch()
    learner = ALGORITHMS.get("dfa")(net64(), defaults("dfa"))
    shapes = [tuple(b.shape) for b in learner.feedback]
    assert shapes == [(10, *op.weight.shape[1:]) for op in learner.ops[1:]]
    captured = {}
    op = learner.ops[-2]  # the last conv: its input gradient is B e, whatever came from above
    op.register_full_backward_hook(lambda m, gin, gout: captured.update(gin=gin[0]))
    logits = learner.net(x)
    learner.train_step(x, y)
    e = output_error(logits, y)
    tiled = e[:, :, None, None].expand(-1, -1, *captured["gin"].shape[2:])
    want = torch.nn.grad.conv2d_input(captured["gin"].shape, learner.feedback[-2], tiled, 1, 1)
    torch.testing.assert_close(captured["gin"], want, rtol=1e-10, atol=1e-13)


# -- weight transport --------------------------------------------------------------------------


def test_the_forward_weight_itself_is_refused_as_feedback() -> None:
    x, y = batch()
    learner = ALGORITHMS.get("fa")(net64(), defaults("fa"))
    learner.feedback[3] = learner.ops[4].weight.detach()  # shares W's memory
    with pytest.raises(WeightTransportError, match="FeedbackConv2d is its forward weight"):
        learner.train_step(x, y)


@pytest.mark.parametrize("algorithm", ["fa", "dfa", "kp", "wm", "drtp"])
def test_no_input_gradient_reads_the_forward_weights(algorithm: str) -> None:
    # Overwrite every W between the forward and the backward pass: the weight is not saved
    # for backward (an in-place change of a saved tensor would raise), and the signals sent
    # below, hence every weight gradient, are the same.
    x, y = batch()
    runs = []
    for scramble in (False, True):
        learner = ALGORITHMS.get(algorithm)(net64(), defaults(algorithm))
        logits = learner.net(x)
        e = output_error(logits, y)
        learner.target = F.one_hot(y, 10).double() / len(y)  # DRTP's signal; others ignore it
        signal = learner.direct_signal(e)
        for l, port in enumerate(learner.ports, start=1):
            port.weight, port.signal = learner.feedback_weight(l), signal
        if scramble:
            with torch.no_grad():
                for op in learner.ops:
                    op.weight.normal_()
        torch.autograd.backward(logits, e)
        runs.append([op.weight.grad.clone() for op in learner.ops])
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# -- every feedback rule trains it -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["bp", *FEEDBACK])
def test_one_step_on_resnet20_moves_every_parameter_and_no_fixed_feedback(algorithm: str) -> None:
    torch.manual_seed(0)
    learner = ALGORITHMS.get(algorithm)(build_network("resnet20", DIGITS), defaults(algorithm))
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    before = [p.detach().clone() for p in learner.net.parameters()]
    fixed = [b.clone() for b in getattr(learner, "feedback", [])]
    learned = [b.clone() for b in getattr(learner, "learned", [])]
    assert torch.isfinite(learner.train_step(x, y)["loss"])
    after = list(learner.net.parameters())
    still = [i for i, (a, p) in enumerate(zip(before, after, strict=True)) if torch.equal(a, p)]
    assert not still, f"parameters that did not move: {still}"
    now = getattr(learner, "feedback", [])
    assert all(torch.equal(a, b) for a, b in zip(fixed, now, strict=True))
    now = getattr(learner, "learned", [])
    assert all(not torch.equal(a, b) for a, b in zip(learned, now, strict=True))
    assert all(port.weight is None for port in getattr(learner, "ports", []))


def test_kp_on_resnet20_shrinks_w_minus_b_by_exactly_one_minus_decay_a_step() -> None:
    lr, decay, steps = 1e-3, 2e-3, 3
    learner = ALGORITHMS.get("kp")(net64(), defaults("kp", lr=lr, kp_decay=decay))
    gaps = [op.weight.detach() - b for op, b in zip(learner.ops[1:], learner.learned, strict=True)]
    for step in range(steps):
        learner.train_step(*batch(seed=step))
    for gap, op, b in zip(gaps, learner.ops[1:], learner.learned, strict=True):
        now = op.weight.detach() - b
        torch.testing.assert_close(now, gap * (1 - decay) ** steps, rtol=1e-7, atol=1e-12)


def test_a_feedback_learner_on_resnet20_resumes_from_its_state_exactly() -> None:
    learner = ALGORITHMS.get("frsf")(net64(), defaults("frsf"))
    learner.train_step(*batch(seed=1))
    saved = io.BytesIO()  # through bytes, as a checkpoint: nothing shared with `learner`
    torch.save(learner.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed = ALGORITHMS.get("frsf")(net64(seed=5), defaults("frsf"))
    resumed.load_state_dict(state)
    for one in (learner, resumed):
        torch.manual_seed(9)
        one.train_step(*batch(seed=2))
    mine, theirs = learner.net.state_dict(), resumed.net.state_dict()
    for name, value in mine.items():  # parameters and batch-norm running statistics
        torch.testing.assert_close(theirs[name], value, rtol=0, atol=0)


# Measured (seed 0, CPU, digits, BP's defaults: Adam 1e-3, batch 32): test error 3.3% after
# 3 epochs (7-23 s an epoch on a shared 2-core CPU, hence slow); chance is 90%.
@pytest.mark.slow
def test_bp_learns_the_digits_on_the_digits_sized_resnet20() -> None:
    torch.manual_seed(0)
    data = DATASETS.get("digits")(DataOptions(root=Path("unused")))
    learner = ALGORITHMS.get("bp")(build_network("resnet20", DIGITS), defaults("bp"))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        for x, y in data.train.batches(32, generator):
            learner.train_step(x, y)
    learner.net.eval()
    x, y = next(data.test.batches(len(data.test)))
    error = (learner.logits(x).argmax(1) != y).double().mean().item() * 100
    assert error < 8, error


# -- refused before any data loads -------------------------------------------------------------


def test_resnet20_declares_the_families_that_train_it() -> None:
    assert ARCHITECTURES.entry("resnet20").families == ("backprop", "feedback")


@pytest.mark.parametrize("algorithm", REFUSED)
def test_target_propagation_on_resnet20_is_refused_before_data_loads(algorithm: str) -> None:
    # CIFAR-10 is not on this machine: a refusal that came after loading would say so.
    with pytest.raises(SpecError, match=r"supports backprop, feedback alignment rules only"):
        resolve(algorithm=algorithm, architecture="resnet20", dataset="cifar10")


def test_the_cli_refuses_dtp_on_resnet20_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["run", "--algo", "dtp", "--arch", "resnet20", "--data", "cifar10"]
        + ["--data-dir", str(tmp_path / "none"), "--db", f"sqlite:///{tmp_path / 'r.db'}"],
    )
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "resnet20" in lines[0] and "dtp" in lines[0], result.output
    assert "not found" not in result.output
