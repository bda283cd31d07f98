"""Precision and compile (training/execution.py): bf16 keeps fp32 master weights and a correct
LC op, tf32 is scoped to the run, precision is part of the experiment and compile is not, and
a step that cannot be compiled runs eagerly with one line saying so."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from biobench.archs import ARCHITECTURES, build_network
from biobench.errors import SpecError
from biobench.nn.functional import locally_connected2d
from biobench.registry import ALGORITHMS
from biobench.spec import resolve
from biobench.store import Store
from biobench.training import execution
from biobench.training.runner import execute
from support.learners import TINY, batch, hparams


@pytest.mark.parametrize("algorithm", ALGORITHMS.names())
@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_a_bf16_step_keeps_fp32_weights_and_stays_finite(algorithm: str, arch: str) -> None:
    if not ARCHITECTURES.entry(arch).supports(ALGORITHMS.entry(algorithm)):
        pytest.skip(f"{arch} does not take {algorithm}'s family")
    torch.manual_seed(0)
    learner = ALGORITHMS.get(algorithm)(build_network(arch, TINY), hparams(algorithm))
    x, y = (t.float() if t.is_floating_point() else t for t in batch(8))
    before = [p.detach().clone() for p in learner.net.parameters()]
    with execution.autocast("bf16", torch.device("cpu")):
        learner.train_step(x, y)
    after = list(learner.net.parameters())
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, p) for a, p in zip(before, after, strict=True))


def test_the_lc_op_under_bf16_autocast_matches_fp32_to_bf16_accuracy() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 8, 8, generator=generator, requires_grad=True)
    # (out_h, out_w, k_h, k_w, C, O): 'same' padding, stride 1
    weight = (torch.randn(8, 8, 3, 3, 3, 6, generator=generator) * 0.1).requires_grad_(True)

    def run() -> tuple[torch.Tensor, ...]:
        out = locally_connected2d(x, weight, None, stride=1)
        (out.float() ** 2).sum().backward()
        grads = (x.grad.clone(), weight.grad.clone())
        x.grad = weight.grad = None
        return out.float(), *grads

    exact = run()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = run()
    assert low[0].dtype == torch.float32 and low[2].dtype == torch.float32  # grads: fp32
    for got, want in zip(low, exact, strict=True):
        error = (got - want).norm() / want.norm()
        assert error < 3e-2, float(error)


def test_tf32_is_scoped_to_the_run() -> None:
    before = torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()
    with execution.matmul_precision("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision()) == before


def test_precision_is_part_of_the_experiment_and_compile_is_not() -> None:
    plain = resolve(algorithm="bp", architecture="fc", dataset="digits")
    bf16 = resolve(
        algorithm="bp", architecture="fc", dataset="digits", overrides=["precision=bf16"]
    )
    fast = resolve(algorithm="bp", architecture="fc", dataset="digits", overrides=["compile=true"])
    assert bf16.spec_hash() != plain.spec_hash() == fast.spec_hash()
    assert "settings" not in plain.to_dict() and bf16.to_dict()["settings"] == {
        "precision": "bf16"
    }
    assert fast.setting("compile") is True and plain.setting("precision") == "fp32"
    with pytest.raises(SpecError, match="fp32, tf32, bf16"):
        resolve(algorithm="bp", architecture="fc", dataset="digits", overrides=["precision=fp16"])


def test_a_step_that_cannot_compile_runs_eagerly_saying_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(fn):  # what an inductor without a C++ compiler does at the first call
        def call(*args):
            raise RuntimeError("InductorError: no C++ compiler\nmore detail")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    calls = []
    step = execution.compiled(lambda x: calls.append(x) or x * 2, "the training step")
    assert [step(1), step(2)] == [2, 4] and calls == [1, 2]
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "--compile: the training step runs eagerly (RuntimeError: InductorError: no C++ compiler)"
    ]


def test_a_bf16_run_records_its_precision(sqlite_url: str) -> None:
    spec = resolve(
        algorithm="fa", architecture="fc", dataset="digits", epochs=1, overrides=["precision=bf16"]
    )
    store = Store(sqlite_url)
    run_id = execute(spec, store=store, device=torch.device("cpu"), data_dir=Path("unused"))
    run = store.run(run_id)
    assert run.status == "finished" and run.spec["settings"] == {"precision": "bf16"}
    assert run.best_test_top1 < 50  # it learns


@pytest.mark.slow
def test_a_compiled_run_learns_like_an_eager_one(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    best = {}
    for sets in ([], ["compile=true"]):
        spec = resolve(
            algorithm="bp", architecture="fc", dataset="digits", epochs=1, overrides=sets
        )
        run_id = execute(spec, store=store, device=torch.device("cpu"), data_dir=Path("unused"))
        best[bool(sets)] = store.run(run_id).best_test_top1
    assert best[True] == pytest.approx(best[False], abs=1.0)


def test_a_layer_local_rules_step_stays_eager_under_compile(
    capsys: pytest.CaptureFixture[str],
) -> None:
    torch.manual_seed(0)
    fa = ALGORITHMS.get("fa")(build_network("fc", TINY), hparams("fa"))
    assert execution.compiled_step(fa) == fa.train_step
    assert "FeedbackAlignment runs eagerly" in capsys.readouterr().err
    bp = ALGORITHMS.get("bp")(build_network("fc", TINY), hparams("bp"))
    assert execution.compiled_step(bp) != bp.train_step
    assert capsys.readouterr().err == ""
