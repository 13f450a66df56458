"""The UB calibration: the fitted costs against the compiler's bytes they were fitted to,
their lookup by the planner, and the strict NPU mock counting launches by them."""

import pytest
import torch

import liger_kernel.ops as public
from liger_conformance.mocks import npu as npu_mock
from liger_kernel_ascend import ub_calibration
from liger_kernel_ascend.tiling import UB_BYTES_A2, onchip_budget

#: how far the planner's estimate may lie from the compiler's allocation (the compile-ascend lane's bound)
TOLERANCE = 0.05
VARIANTS = [
    (kernel, variant) for kernel, entry in sorted(ub_calibration.table().items()) for variant in entry["variants"]
]


def _id(item):
    kernel, variant = item
    flags = "-".join(f"{k}={v}" for k, v in variant["constants"].items())
    return f"{kernel.rsplit('.', 1)[1]}-{variant['dtype']}-{flags}"


@pytest.mark.parametrize("item", VARIANTS, ids=_id)
def test_each_fitted_cost_is_within_five_percent_of_the_compiler_at_every_measured_tile(item):
    _, variant = item
    cost = ub_calibration.variant_cost(variant)
    # three widths at least to interpolate over: cross-entropy with every option and the gradient
    # written keeps only 16, 64 and 256 (from 1024 on the compiler stops double-buffering to fit)
    assert len(variant["measured"]) >= 3
    for outer, inner, compiled in variant["measured"]:
        assert abs(cost.bytes(outer, inner) / compiled - 1) <= TOLERANCE, (outer, inner, compiled)


def test_every_kernel_names_its_tile_axes_and_the_planner_finds_its_variants():
    for kernel, variant in VARIANTS:
        axes = ub_calibration.tiles(kernel)
        assert axes is not None and axes.inner
        found = ub_calibration.calibrated_cost(kernel, variant["dtype"], variant["constants"])
        assert found == ub_calibration.variant_cost(variant)


def test_an_uncalibrated_variant_is_sized_above_every_calibrated_one_and_logged(caplog):
    kernel = "liger_kernel_ascend.ops.cross_entropy._cross_entropy_kernel"
    known = [ub_calibration.variant_cost(v) for k, v in VARIANTS if k == kernel and v["dtype"] == "bf16"]
    odd = {"HAS_WEIGHT": True, "NOT_A_FLAG": 1}
    with caplog.at_level("WARNING", logger="liger_kernel"):
        fallback = ub_calibration.cost(kernel, "bf16", odd)
    assert "has no unified-buffer calibration" in caplog.text
    for block in (16, 1024, 8192):
        assert all(fallback.bytes(1, block) >= cost.bytes(1, block) for cost in known)


def test_torch_dtypes_map_to_the_names_of_kernel_signatures():
    assert ub_calibration.triton_dtype(torch.bfloat16) == "bf16"
    assert ub_calibration.triton_dtype(torch.float32) == "fp32"
    assert ub_calibration.triton_dtype(torch.float16) == "fp16"


def test_the_mock_refuses_a_launch_whose_calibrated_bytes_exceed_the_unified_buffer():
    a = torch.randn(64)
    c = torch.empty_like(a)
    kernel = "liger_kernel_ascend.ops.gates._gate_forward"
    needed = ub_calibration.launch_bytes(kernel, "fp32", {"GATE": 0, "SCALED": False, "BLOCK": 16384})
    assert needed > UB_BYTES_A2
    with npu_mock.active():
        # the kernels' module checks at import that triton is triton-ascend, which the mock stands in for
        from liger_kernel_ascend.ops.gates import _gate_forward

        assert ub_calibration.kernel_name(_gate_forward) == kernel
        with pytest.raises(npu_mock.UBOverflowError, match=f"requires {needed * 8} bits while 1572864 bits"):
            _gate_forward[(1,)](a, a, c, 64, 1.0, 1.0, GATE=0, SCALED=False, BLOCK=16384)
        npu_mock.monitor.peak = 0
        _gate_forward[(1,)](a, a, c, 64, 1.0, 1.0, GATE=0, SCALED=False, BLOCK=64)
        assert npu_mock.monitor.peak == ub_calibration.launch_bytes(
            kernel, "fp32", {"GATE": 0, "SCALED": False, "BLOCK": 64}
        )
    torch.testing.assert_close(c, torch.nn.functional.silu(a) * a)


def test_cross_entropy_with_every_option_at_once_fits_at_a_128k_vocabulary():
    # softcap, smoothing, class weights, z-loss and predicted tokens together: the variant whose
    # buffers the compiler packs tightest; it must fit the planner's budget, counted as the compiler does
    vocab = 128_256
    logits = (torch.randn(2, vocab) * 4).to(torch.bfloat16).requires_grad_()
    target = torch.tensor([5, vocab - 1])
    weight = torch.rand(vocab) + 0.5
    with npu_mock.active():
        npu_mock.monitor.peak = 0
        loss, _, _, predicted = public.LigerCrossEntropyFunction.apply(
            logits, target, weight, -100, 1e-4, 0.1, "mean", 30.0, True, True, True
        )
        loss.backward()
        peak = npu_mock.monitor.peak
    assert 0.5 * onchip_budget(UB_BYTES_A2) < peak <= onchip_budget(UB_BYTES_A2)
    capped = 30.0 * torch.tanh(logits.detach().float() / 30.0)
    torch.testing.assert_close(predicted, capped.argmax(-1))
    assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()
