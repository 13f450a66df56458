"""``liger_kernel.transformers.trainer_integration._apply_liger_kernel``, the
name older Hugging Face Trainer releases import (as liger-kernel 0.8.x kept it)."""

from liger_kernel.transformers.monkey_patch import _apply_liger_kernel

__all__ = ["_apply_liger_kernel"]
