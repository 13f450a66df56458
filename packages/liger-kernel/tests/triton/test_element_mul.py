"""element_mul_kernel (offered by liger_kernel.ops.utils) scales rows in place."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.parametrize("block", [4, 64])
def test_element_mul_scales_each_row_in_place(block):
    from liger_kernel.ops.utils import element_mul_kernel

    x = torch.randn(3, 10)
    expected = x * 2.5
    grad = torch.tensor(2.5)
    element_mul_kernel[(x.shape[0],)](x, x.stride(0), grad, x.shape[1], BLOCK_SIZE=block)
    torch.testing.assert_close(x, expected)


def test_element_mul_follows_the_column_stride():
    from liger_kernel.ops.utils import element_mul_kernel

    base = torch.randn(10, 3)
    x = base.t()  # rows 1 apart, columns 3 apart
    expected = base.t() * -1.0
    element_mul_kernel[(3,)](x, x.stride(0), torch.tensor(-1.0), 10, BLOCK_SIZE=4, X_col_stride=x.stride(1))
    torch.testing.assert_close(x, expected)
