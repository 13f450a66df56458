"""kl_div and tvd run the portable kernels on the NPU: under the strict mock
they must walk a wide row in blocks whose unified-buffer bytes, as the
calibration counts them (what the compiler allocates), fit the profile's budget."""

import pytest
import torch

import liger_kernel.ops as public
from liger_conformance.mocks import npu as npu_mock
from liger_kernel.triton.kl_div import streaming_launch

WIDTH = 20_000  # several blocks


def _block_within_budget(run):
    with npu_mock.active():
        from liger_kernel.dispatch import device_profile

        profile = device_profile(torch.device("cpu"))
        block = streaming_launch(profile, 2, WIDTH).block
        npu_mock.monitor.peak = 0
        result = run()
        assert 0 < npu_mock.monitor.peak <= profile.onchip_bytes
        return block, result


@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_kl_div_walks_the_row_within_its_tile_budget(reduction):
    y_pred = torch.randn(2, WIDTH).log_softmax(-1).requires_grad_()
    y_true = torch.randn(2, WIDTH).softmax(-1)

    def run():
        loss = public.LigerKLDivLossFunction.apply(y_pred, y_true, reduction)
        loss.backward(torch.ones_like(loss))
        return loss

    block, loss = _block_within_budget(run)
    pointwise = y_true * (y_true.clamp(min=1e-10).log() - y_pred.detach())
    expected = pointwise if reduction == "none" else pointwise.sum() / 2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    divisor = 1 if reduction == "none" else 2
    torch.testing.assert_close(y_pred.grad, -y_true / divisor)
    assert block < WIDTH


@pytest.mark.parametrize("reduction", ["none", "batchmean"])
def test_tvd_walks_the_row_within_its_tile_budget(reduction):
    p = torch.randn(2, WIDTH).softmax(-1).requires_grad_()
    q = torch.randn(2, WIDTH).softmax(-1).requires_grad_()

    def run():
        loss = public.LigerTVDLossFunction.apply(p, q, torch.tensor([5, -100]), reduction)
        loss.backward(torch.ones_like(loss))
        return loss

    block, loss = _block_within_budget(run)
    pointwise = 0.5 * (p.detach() - q.detach()).abs()
    pointwise[1] = 0.0
    expected = pointwise if reduction == "none" else pointwise.sum()
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    expected_grad = 0.5 * torch.sign(p.detach() - q.detach())
    expected_grad[1] = 0.0
    torch.testing.assert_close(p.grad, expected_grad)
    torch.testing.assert_close(q.grad, -expected_grad)
    assert block < WIDTH
