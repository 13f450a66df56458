"""The portable Triton cross-entropy against a float64 oracle, under the interpreter.

Rows are wider than the profile's block (max_block=64 here) so every row is
walked in several vocabulary blocks, as on a GPU with a 128k vocabulary.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

pytest.importorskip("triton")

from liger_kernel.backend import DeviceProfile
from liger_kernel.dispatch import dispatcher
from liger_kernel.triton import cross_entropy as ce_module
from liger_kernel.triton.cross_entropy import CrossEntropyFunction

SMALL_PROFILE = DeviceProfile(name="test", compute_units=2, programs_per_unit=2, max_block=64, max_num_warps=4)


@pytest.fixture(autouse=True)
def small_profile(monkeypatch: pytest.MonkeyPatch) -> DeviceProfile:
    monkeypatch.setattr(dispatcher, "profile", lambda device: SMALL_PROFILE)
    return SMALL_PROFILE


def oracle(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    lse_square_scale: float = 0.0,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    softcap: float | None = None,
    token_scaling: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, z_loss) in float64, differentiable with respect to ``logits``."""
    x = logits.double()
    if softcap is not None:
        x = softcap * torch.tanh(x / softcap)
    vocab = x.shape[1]
    w = torch.ones(vocab, dtype=torch.float64) if weight is None else weight.double()
    kept = target != ignore_index
    safe_target = torch.where(kept, target, 0).long()
    logp = torch.log_softmax(x, dim=-1)
    nll = -logp.gather(1, safe_target[:, None])[:, 0]
    smooth = -(logp * w).sum(-1)
    ce = (1 - label_smoothing) * w[safe_target] * nll + label_smoothing / vocab * smooth
    z = lse_square_scale * torch.logsumexp(x, dim=-1) ** 2
    if token_scaling:
        scale = torch.exp(-nll).detach()
        ce, z = ce * scale, z * scale
    ce, z = ce * kept, z * kept
    if reduction == "none":
        return ce + z, z
    if reduction == "sum":
        return ce.sum() + z.sum(), z.sum()
    ce_divisor = (w[safe_target] * kept).sum()
    z_divisor = kept.sum().double()
    ce = ce.sum() / torch.where(ce_divisor == 0, 1.0, ce_divisor)
    z = z.sum() / torch.where(z_divisor == 0, 1.0, z_divisor)
    return ce + z, z


def make_case(rows: int, vocab: int, dtype: torch.dtype, seed: int, ignore_index: int = -100, every: int = 3):
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(rows, vocab, generator=generator) * 3).to(dtype)
    target = torch.randint(0, vocab, (rows,), generator=generator)
    target[::every] = ignore_index
    weight = torch.rand(vocab, generator=generator) + 0.5
    return logits, target, weight


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {
        # float options reach the kernel as fp32 scalars, hence 1e-7 for float64
        torch.float64: {"atol": 1e-7, "rtol": 1e-7},
        torch.float32: {"atol": 1e-5, "rtol": 1e-5},
        torch.bfloat16: {"atol": 2e-2, "rtol": 2e-2},
        torch.float16: {"atol": 2e-3, "rtol": 2e-3},
    }[dtype]


def run_both(logits, target, weight=None, grad_scale=None, **options):
    """(ours, oracle) as dicts of loss, z_loss, grad."""
    x = logits.clone().requires_grad_()
    loss, z_loss, _, _ = CrossEntropyFunction.apply(
        x, target, weight, options.get("ignore_index", -100), options.get("lse_square_scale", 0.0),
        options.get("label_smoothing", 0.0), options.get("reduction", "mean"), options.get("softcap"), True,
    )  # fmt: skip
    reference = logits.double().requires_grad_()
    ref_loss, ref_z = oracle(reference, target, weight, **options)
    upstream = torch.ones_like(ref_loss) if grad_scale is None else grad_scale
    loss.backward(upstream.to(loss.dtype))
    ref_loss.backward(upstream.double())
    return (loss, z_loss, x.grad), (ref_loss, ref_z, reference.grad)


OPTION_CASES = {
    "plain": {},
    "weight": {"weight": True},
    "smoothing": {"label_smoothing": 0.2},
    "weight-smoothing": {"weight": True, "label_smoothing": 0.3},
    "z-loss": {"lse_square_scale": 0.05},
    "softcap": {"softcap": 4.0},
    "everything": {"weight": True, "label_smoothing": 0.1, "lse_square_scale": 0.02, "softcap": 5.0},
    "ignore-a-class": {"ignore_index": 2},
}


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_matches_oracle(case: str, reduction: str) -> None:
    options = dict(OPTION_CASES[case], reduction=reduction)
    use_weight = options.pop("weight", False)
    rows, vocab = (7, 150) if reduction == "mean" else (3, 97)
    ignore_index = options.get("ignore_index", -100)
    logits, target, weight = make_case(rows, vocab, torch.float32, seed=len(case), ignore_index=ignore_index)
    grad_scale = torch.rand(rows) + 0.5 if reduction == "none" else torch.tensor(1.7)
    ours, ref = run_both(logits, target, weight if use_weight else None, grad_scale=grad_scale, **options)
    for got, want in zip(ours, ref):
        torch.testing.assert_close(got.double(), want.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_dtypes(dtype: torch.dtype) -> None:
    logits, target, weight = make_case(5, 130, dtype, seed=3)
    options = {"label_smoothing": 0.1, "lse_square_scale": 0.01}
    (loss, z_loss, grad), (ref_loss, ref_z, ref_grad) = run_both(logits, target, weight, **options)
    assert loss.dtype == torch.promote_types(dtype, torch.float32) and grad.dtype == dtype
    torch.testing.assert_close(loss.double(), ref_loss.detach(), **tolerance(dtype))
    torch.testing.assert_close(z_loss.double(), ref_z.detach(), **tolerance(dtype))
    torch.testing.assert_close(grad.double(), ref_grad, **tolerance(dtype))


def test_oracle_is_torchs_weighted_smoothed_cross_entropy() -> None:
    logits, target, weight = make_case(6, 40, torch.float64, seed=5)
    for reduction in ("mean", "sum", "none"):
        expected = torch.nn.functional.cross_entropy(
            logits, target, weight=weight.double(), label_smoothing=0.25, reduction=reduction
        )
        got, _ = oracle(logits, target, weight, label_smoothing=0.25, reduction=reduction)
        torch.testing.assert_close(got, expected)


def test_single_block_and_single_column_rows() -> None:
    for rows, vocab in ((1, 33), (4, 1), (2, 64)):
        logits, target, weight = make_case(rows, vocab, torch.float32, seed=vocab, every=5)
        ours, ref = run_both(logits, target, weight, label_smoothing=0.1, softcap=2.0)
        for got, want in zip(ours, ref):
            torch.testing.assert_close(got.double(), want.detach(), atol=1e-5, rtol=1e-5)


def test_every_row_ignored_gives_zero_not_nan() -> None:
    logits, target, weight = make_case(4, 70, torch.float32, seed=1)
    target[:] = -100
    for reduction in ("mean", "sum"):
        x = logits.clone().requires_grad_()
        loss, z_loss, accuracy, predicted = CrossEntropyFunction.apply(
            x, target, weight, -100, 0.1, 0.2, reduction, None, True, True, True
        )
        loss.backward()
        assert loss.item() == 0.0 and z_loss.item() == 0.0 and accuracy.item() == 0.0
        assert torch.equal(predicted, torch.full((4,), -1))
        assert torch.count_nonzero(x.grad) == 0


def test_predicted_tokens_and_accuracy() -> None:
    logits, target, _ = make_case(9, 200, torch.float32, seed=7, every=4)
    argmax = logits.argmax(-1)
    target[1] = argmax[1]
    target[2] = argmax[2]
    logits[5, 3] = logits[5, 150] = logits[5].max() + 1  # a tie: the first index wins, as in torch
    argmax = logits.argmax(-1)
    _, z_loss, accuracy, predicted = CrossEntropyFunction.apply(
        logits, target, None, -100, 0.0, 0.0, "mean", 3.0, False, True, True
    )
    kept = target != -100
    assert z_loss is None
    assert predicted.dtype == torch.int64
    assert torch.equal(predicted, torch.where(kept, argmax, -1))
    expected = ((argmax == target) & kept).sum() / kept.sum()
    torch.testing.assert_close(accuracy, expected.float())


def test_input_without_grad_is_not_written() -> None:
    logits, target, weight = make_case(5, 90, torch.float32, seed=2)
    before = logits.clone()
    loss, *_ = CrossEntropyFunction.apply(logits, target, weight, -100, 0.0, 0.1)
    ref, _ = oracle(logits, target, weight, label_smoothing=0.1)
    assert torch.equal(logits, before)
    torch.testing.assert_close(loss.double(), ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("passed", ["leaf", "non_leaf", "view_of_leaf"])
def test_gradient_placement(passed: str) -> None:
    """Only a non-leaf input takes its gradient in place (the op contract's
    ``overwrites``); the gradient reaching the leaf is the same either way,
    and for a non-leaf it is the input's own storage."""
    logits, target, weight = make_case(4, 120, torch.float32, seed=9)
    _, ref = run_both(logits, target, weight, label_smoothing=0.1)
    leaf = logits.clone().requires_grad_()
    x = {"leaf": leaf, "non_leaf": leaf.clone(), "view_of_leaf": leaf[:, :]}[passed]
    loss, *_ = CrossEntropyFunction.apply(x, target, weight, -100, 0.0, 0.1)
    loss.backward()
    torch.testing.assert_close(leaf.grad.double(), ref[2], atol=1e-5, rtol=1e-5)
    assert torch.equal(leaf.detach(), logits)
    if passed == "non_leaf":
        assert leaf.grad.data_ptr() == x.data_ptr()


def test_no_grad_mode_does_not_write_the_input() -> None:
    logits, target, _ = make_case(3, 100, torch.float32, seed=6)
    x = logits.clone().requires_grad_()
    with torch.no_grad():
        loss, *_ = CrossEntropyFunction.apply(x, target, None)
    ref, _ = oracle(logits, target)
    assert torch.equal(x.detach(), logits)
    torch.testing.assert_close(loss.double(), ref, atol=1e-6, rtol=1e-6)


def test_non_contiguous_input_and_int32_target() -> None:
    wide, target, weight = make_case(6, 180, torch.float32, seed=4)
    target, weight = target % 90, weight[:90]
    target[::3] = -100
    x = wide.clone().requires_grad_()
    loss, *_ = CrossEntropyFunction.apply(x[:, ::2], target.int(), weight, -100, 0.0, 0.2)
    loss.backward()
    reference = wide[:, ::2].double().requires_grad_()
    ref, _ = oracle(reference, target, weight, label_smoothing=0.2)
    ref.backward()
    assert torch.equal(x.detach(), wide)  # the kernel wrote into a contiguous copy
    torch.testing.assert_close(loss.double(), ref.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x.grad[:, ::2].double(), reference.grad, atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(x.grad[:, 1::2]) == 0


def test_scale_rows_skips_unit_scale_and_scales_the_rest() -> None:
    grad = torch.randn(5, 100)
    scale = torch.tensor([1.0, 2.0, 1.0, -0.5, 0.0])
    expected = grad * scale[:, None]
    ce_module.scale_rows_(grad, scale)
    torch.testing.assert_close(grad, expected)
    grad2 = torch.randn(3, 70)
    expected2 = grad2 * 3.0
    ce_module.scale_rows_(grad2, torch.tensor(3.0))
    torch.testing.assert_close(grad2, expected2)


def test_vocab_block_respects_profile(small_profile: DeviceProfile) -> None:
    launch = ce_module.vocab_launch(9, 300, torch.device("cpu"), 4)
    assert launch.block == small_profile.max_block
    assert launch.grid == min(9, small_profile.compute_units * small_profile.vocab_programs_per_unit)
    narrow = ce_module.vocab_launch(1, 20, torch.device("cpu"), 4)
    assert narrow.block == 32 and narrow.grid == 1
