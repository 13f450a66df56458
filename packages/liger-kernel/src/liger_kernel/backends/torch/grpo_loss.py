"""The per-token GRPO loss in pure PyTorch (math: :mod:`liger_kernel.ops.grpo_loss`):
the shared per-token math of :func:`liger_kernel.losses.grpo_loss_function` over the
PyTorch vocabulary passes of :mod:`liger_kernel.backends.torch.selective_log_softmax`."""

from __future__ import annotations

from liger_kernel.backends.torch.selective_log_softmax import TorchSelectedLogProb
from liger_kernel.losses import grpo_loss_function

GrpoLossFunction = grpo_loss_function(TorchSelectedLogProb, "GrpoLossFunction")
