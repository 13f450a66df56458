"""Per-token cross-entropy and total variation distance from a teacher, over one
pass of the logits (distillation objectives that mix a hard-label term with a
distribution distance).

For each row r of the student logits s and teacher logits u (rows, V), with
P = softmax(s_r), Q = softmax(u_r) and the class index y = target[r]:
    ce_r  = logsumexp(s_r) - s_ry
    tvd_r = 0.5 * sum_j |P_j - Q_j|          (as liger_kernel.ops.tvd, on the softmaxes)
both 0 on a row whose target is ``ignore_index``. Both come back unreduced,
(rows,) in float32 (float64 for float64 logits), so that the caller owns the
masking, weighting and normalization (a divisor summed over a data-parallel
group, say). A target outside [0, V) that is not ignored is an IndexError
where it can be checked without a host synchronization (on the CPU, or with
LIGER_KERNEL_CHECK_INDICES=1); elsewhere its row comes out NaN.

Backward reaches the student only, with g_ce and g_tvd the incoming gradients
of the row, sigma_j = sign(P_j - Q_j) (0 at a tie, as torch.abs's gradient) and
Sigma = sum_j P_j * sigma_j:
    dce/ds_j  = P_j - [j == y]
    dtvd/ds_j = 0.5 * P_j * (sigma_j - Sigma)
    ds_rj = g_ce * dce/ds_j + g_tvd * dtvd/ds_j          (0 on ignored rows)
in the student logits' dtype. The teacher takes no gradient: teacher logits that
require grad while autograd records are refused (detach them). Backends keep
O(rows) state (the two log-sum-exps, Sigma) and read the logits again in backward.
"""

from __future__ import annotations

import torch

from liger_kernel.ops._contract import (
    INDEX_DTYPES,
    DispatchedFunction,
    require_indices_in_range,
    require_int,
    require_ndim,
    require_no_grad,
    require_same_device,
    require_shape,
    require_tensor,
)
from liger_kernel.ops.kl_div import loss_dtype


class LigerFusedCETVDFunction(DispatchedFunction):
    op = "fused_ce_tvd"
    backward_reads = ("student_logits", "teacher_logits", "target")

    @staticmethod
    def outputs(student_logits, teacher_logits, *_):
        dtype = loss_dtype(student_logits.dtype, teacher_logits.dtype)
        rows = (student_logits.shape[0],)
        return ((rows, dtype), (rows, dtype))

    @staticmethod
    def check(
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor,
        target: torch.Tensor,
        ignore_index: int = -100,
    ) -> None:
        require_tensor("student_logits", student_logits)
        require_tensor("teacher_logits", teacher_logits)
        require_ndim("student_logits", student_logits, (2,))
        if student_logits.shape[1] == 0:
            raise ValueError(f"student_logits has shape {tuple(student_logits.shape)}: the vocabulary is empty")
        require_shape("teacher_logits", teacher_logits, tuple(student_logits.shape), "the shape of student_logits")
        require_tensor("target", target, INDEX_DTYPES)
        require_shape("target", target, (student_logits.shape[0],), "one class index per row of student_logits")
        require_int("ignore_index", ignore_index)
        require_same_device(
            "student_logits",
            {"student_logits": student_logits, "teacher_logits": teacher_logits, "target": target},
        )
        require_no_grad("teacher_logits", teacher_logits, "student_logits")
        require_indices_in_range("target", target, student_logits.shape[1], "a class index", ignored=ignore_index)
