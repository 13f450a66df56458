"""The per-token GRPO loss on Triton (math: :mod:`liger_kernel.ops.grpo_loss`).

The vocabulary passes are the selected-token log-softmax kernels of
:mod:`liger_kernel.triton.selective_log_softmax`: the forward reads each kept
row of the logits once (lse and the token's logp), the backward reads it again
and writes the gradient, over the logits' storage with ``inplace`` where the
contract allows it. The GRPO math between them runs on (B, L) tensors, shared
by every backend (:func:`liger_kernel.losses.grpo_loss_function`): it is a few
elementwise operations per token against the two passes over B * L * V logits.
"""

from __future__ import annotations

from liger_kernel.losses import grpo_loss_function
from liger_kernel.triton.selective_log_softmax import TritonSelectedLogProb

GrpoLossFunction = grpo_loss_function(TritonSelectedLogProb, "GrpoLossFunction")
