"""The portable fused linear cross-entropy against a float64 oracle, under the interpreter.

The cross-entropy oracle is the one of test_cross_entropy.py (loaded by path,
so the two files share one definition of the math)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

pytest.importorskip("triton")

from liger_kernel import losses
from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import dispatcher
from liger_kernel.triton import fused_linear_cross_entropy as flce_module
from liger_kernel.triton.fused_linear_cross_entropy import FusedLinearCrossEntropyFunction

_spec = importlib.util.spec_from_file_location("_triton_ce_oracle", Path(__file__).with_name("test_cross_entropy.py"))
_ce_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ce_tests)
ce_oracle = _ce_tests.oracle

SMALL_PROFILE = DeviceProfile(name="test", compute_units=2, programs_per_unit=2, max_block=64, max_num_warps=4)
ROWS, HIDDEN, VOCAB = 9, 16, 150


@pytest.fixture(autouse=True)
def small_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatcher, "profile", lambda device: SMALL_PROFILE)


def use_chunk_rows(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    monkeypatch.setattr(flce_module, "chunk_rows", lambda *sizes: rows)


def make_case(dtype: torch.dtype = torch.float32, seed: int = 0, rows: int = ROWS):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, HIDDEN, generator=generator).to(dtype)
    w = (torch.randn(VOCAB, HIDDEN, generator=generator) * 0.5).to(dtype)
    b = torch.randn(VOCAB, generator=generator).to(dtype)
    target = torch.randint(0, VOCAB, (rows,), generator=generator)
    target[::4] = -100
    class_weight = torch.rand(VOCAB, generator=generator) + 0.5
    return x, w, b, target, class_weight


def run_both(x, w, b, target, class_weight=None, grad_scale=None, accum_dtype=None, **options):
    """(ours, oracle): each (loss, z_loss, dx, dw, db)."""
    leaves = [t.clone().requires_grad_() if t is not None else None for t in (x, w, b)]
    loss, z_loss, _, _ = FusedLinearCrossEntropyFunction.apply(
        leaves[0], leaves[1], target, leaves[2], class_weight,
        options.get("ignore_index", -100), options.get("lse_square_scale", 0.0),
        options.get("label_smoothing", 0.0), options.get("reduction", "mean"), options.get("softcap"),
        True, accum_dtype, options.get("token_scaling", False),
    )  # fmt: skip
    refs = [t.double().requires_grad_() if t is not None else None for t in (x, w, b)]
    logits = refs[0] @ refs[1].t() + (refs[2] if refs[2] is not None else 0)
    ref_loss, ref_z = ce_oracle(logits, target, class_weight, **options)
    upstream = torch.ones_like(ref_loss) if grad_scale is None else grad_scale
    loss.backward(upstream.to(loss.dtype))
    ref_loss.backward(upstream.double())
    ours = (loss, z_loss, *[t.grad if t is not None else None for t in leaves])
    ref = (ref_loss.detach(), ref_z.detach(), *[t.grad if t is not None else None for t in refs])
    return ours, ref


def assert_all_close(ours, ref, atol=1e-5, rtol=1e-5):
    for got, want in zip(ours, ref):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got.double(), want, atol=atol, rtol=rtol)


OPTION_CASES = {
    "plain": {},
    "weight-smoothing": {"class_weight": True, "label_smoothing": 0.2},
    "z-loss-softcap": {"lse_square_scale": 0.03, "softcap": 6.0},
    "token-scaling": {"token_scaling": True, "label_smoothing": 0.1},
    "everything": {"class_weight": True, "label_smoothing": 0.1, "lse_square_scale": 0.01, "softcap": 4.0},
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_matches_oracle(case: str, reduction: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_chunk_rows(monkeypatch, 4)  # three chunks, the last one short
    options = dict(OPTION_CASES[case], reduction=reduction)
    use_class_weight = options.pop("class_weight", False)
    x, w, b, target, class_weight = make_case(seed=len(case))
    grad_scale = torch.rand(ROWS) + 0.5 if reduction == "none" else torch.tensor(0.7)
    ours, ref = run_both(x, w, b, target, class_weight if use_class_weight else None, grad_scale, **options)
    assert_all_close(ours, ref)


@pytest.mark.parametrize("rows_per_chunk", [1, 2, 5, ROWS])
def test_chunking_does_not_change_results(rows_per_chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x, w, b, target, class_weight = make_case(seed=11)
    options = {"label_smoothing": 0.05, "lse_square_scale": 0.02}
    use_chunk_rows(monkeypatch, ROWS)
    whole, _ = run_both(x, w, b, target, class_weight, **options)
    use_chunk_rows(monkeypatch, rows_per_chunk)
    chunked, _ = run_both(x, w, b, target, class_weight, **options)
    assert_all_close(chunked, [t.double() if t is not None else None for t in whole], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_skipping_ignored_rows_does_not_change_results(reduction: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering the kept rows (SKIP_IGNORED_ROWS) gives what the walk over every row gives."""
    use_chunk_rows(monkeypatch, 4)
    x, w, b, target, class_weight = make_case(seed=13)
    options = {"label_smoothing": 0.05, "lse_square_scale": 0.02, "reduction": reduction}
    grad_scale = torch.rand(ROWS) + 0.5 if reduction == "none" else None
    skipped, _ = run_both(x, w, b, target, class_weight, grad_scale, **options)
    monkeypatch.setattr(flce_module, "SKIP_IGNORED_ROWS", False)
    every_row, _ = run_both(x, w, b, target, class_weight, grad_scale, **options)
    assert_all_close(skipped, [t.double() if t is not None else None for t in every_row], atol=1e-6, rtol=1e-6)


def test_graph_capture_walks_every_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under a graph capture the kept rows are not counted (a capture may not
    synchronize), and the walk over every row gives the same results."""
    x, w, b, target, _ = make_case()
    assert losses.kept_rows(target, -100) is not None
    expected = run_both(x, w, b, target)[0]
    monkeypatch.setattr(losses, "stream_capturing", lambda device: True)
    assert losses.kept_rows(target, -100) is None
    captured = run_both(x, w, b, target)[0]
    for got, want in zip(captured, expected):
        if want is not None:
            torch.testing.assert_close(got, want)


def test_all_rows_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chunk_rows(monkeypatch, 4)
    x, w, b, target, _ = make_case(seed=14)
    ours, ref = run_both(x, w, b, torch.full_like(target, -100))
    assert_all_close(ours, ref)
    assert all(torch.count_nonzero(grad) == 0 for grad in ours[2:])


def test_hidden_from_a_linear_and_repeated_backward(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hidden states produced by another op (not a leaf), as in a model: that
    op's saved tensors are left alone. A second backward over the graph warns."""
    use_chunk_rows(monkeypatch, 4)
    x, w, _, target, _ = make_case(seed=15)
    projection = torch.nn.Linear(HIDDEN, HIDDEN).double()
    leaves = [x.double().requires_grad_(), w.double().requires_grad_()]
    hidden = projection(leaves[0])
    loss, *_ = FusedLinearCrossEntropyFunction.apply(hidden, leaves[1], target)
    loss.backward(retain_graph=True)
    refs = [t.detach().clone().requires_grad_() for t in leaves]
    ref, _ = ce_oracle(projection(refs[0]) @ refs[1].t(), target)
    ref.backward()
    for leaf, reference in zip(leaves, refs):
        torch.testing.assert_close(leaf.grad, reference.grad, atol=1e-9, rtol=1e-9)
    with pytest.warns(UserWarning, match="second backward"):
        loss.backward()


def test_bf16_with_float32_accumulation(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chunk_rows(monkeypatch, 3)
    x, w, b, target, _ = make_case(torch.bfloat16, seed=4)
    ours, ref = run_both(x, w, b, target, accum_dtype=torch.float32, label_smoothing=0.1)
    for grad, source in zip(ours[2:], (x, w, b)):
        assert grad.dtype == source.dtype
    assert_all_close(ours, ref, atol=3e-2, rtol=3e-2)


def test_float32_accumulation_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """An accum dtype other than the GEMM dtype walks dweight in vocabulary slices."""
    use_chunk_rows(monkeypatch, 2)
    x, w, b, target, _ = make_case(torch.float32, seed=6)
    ours, ref = run_both(x, w, b, target, accum_dtype=torch.float64)
    assert_all_close(ours, ref)


def test_no_grad_inputs_and_extras() -> None:
    x, w, b, target, _ = make_case(seed=8)
    loss, z_loss, token_accuracy, predicted = FusedLinearCrossEntropyFunction.apply(
        x, w, target, b, None, -100, 0.0, 0.0, "mean", None, False, None, False, True, True
    )
    logits = x.double() @ w.double().t() + b.double()
    ref, _ = ce_oracle(logits, target)
    kept = target != -100
    argmax = logits.argmax(-1)
    torch.testing.assert_close(loss.double(), ref, atol=1e-5, rtol=1e-5)
    assert z_loss is None
    assert torch.equal(predicted, torch.where(kept, argmax, -1))
    torch.testing.assert_close(token_accuracy, (((argmax == target) & kept).sum() / kept.sum()).float())


def test_only_weight_requires_grad(monkeypatch: pytest.MonkeyPatch) -> None:
    use_chunk_rows(monkeypatch, 4)
    x, w, _, target, _ = make_case(seed=9)
    leaf = w.clone().requires_grad_()
    loss, *_ = FusedLinearCrossEntropyFunction.apply(x, leaf, target)
    loss.backward()
    reference = w.double().requires_grad_()
    ref, _ = ce_oracle(x.double() @ reference.t(), target)
    ref.backward()
    torch.testing.assert_close(leaf.grad.double(), reference.grad, atol=1e-5, rtol=1e-5)


def test_chunk_rows_rule() -> None:
    rows = losses.chunk_rows(8192, 4096, 128256, 2)
    assert rows == 512  # the TARGETS.md shape: 125 MiB of bf16 logits
    assert rows * 128256 <= 2 * 8192 * 4096
    assert losses.chunk_rows(8192, 4096, 128256, 1) == 256
    assert losses.chunk_rows(5, 16, 150, 2) == 5
    assert losses.chunk_rows(100_000, 8, 1_000_000, 2) == losses.CHUNK_ROW_MULTIPLE
    assert losses.chunk_rows(8192, 4096, 128256, 2, row_multiple=16, min_rows=640) == 640


def test_chunks_are_sized_by_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunk ratio is the device profile's lm_head_chunk_ratio (tuning data
    of the backend), not a constant of this module."""
    seen = []
    sized = flce_module.chunk_rows

    def recording(n_rows: int, hidden: int, vocab: int, ratio: int, multiple: int, fewest: int) -> int:
        seen.append((ratio, multiple, fewest))
        return sized(n_rows, hidden, vocab, ratio, multiple, fewest)

    monkeypatch.setattr(flce_module, "chunk_rows", recording)
    tuned = replace(SMALL_PROFILE, lm_head_chunk_ratio=7, lm_head_row_multiple=8, lm_head_min_rows=3)
    monkeypatch.setattr(dispatcher, "profile", lambda device: tuned)
    x, w, b, target, _ = make_case(seed=10)
    run_both(x, w, b, target)
    assert seen and set(seen) == {(7, 8, 3)}


def test_autocast_runs_the_gemms_in_autocast_dtype() -> None:
    x, w, _, target, _ = make_case(seed=12)
    leaves = [x.clone().requires_grad_(), w.clone().requires_grad_()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, *_ = FusedLinearCrossEntropyFunction.apply(leaves[0], leaves[1], target)
    loss.backward()
    refs = [t.to(torch.bfloat16).double().requires_grad_() for t in (x, w)]
    ref, _ = ce_oracle(refs[0] @ refs[1].t(), target)
    ref.backward()
    assert [leaf.grad.dtype for leaf in leaves] == [torch.float32, torch.float32]
    torch.testing.assert_close(loss.double(), ref.detach(), atol=2e-2, rtol=2e-2)
    for leaf, reference in zip(leaves, refs):
        torch.testing.assert_close(leaf.grad.double(), reference.grad, atol=2e-2, rtol=2e-2)
