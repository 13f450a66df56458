"""Llama 4's text rotary embedding with the signature of Transformers'
``apply_rotary_emb`` (``transformers.models.llama4.modeling_llama4``), through
:class:`liger_kernel.ops.LigerLlama4RopeFunction`.

xq (batch, seq, heads, head_dim) and xk (batch, seq, kv_heads, head_dim) are
read as complex pairs (x[2j], x[2j+1]) and multiplied by ``freqs_cis``, the
complex (batch, seq, head_dim / 2) output of ``Llama4TextRotaryEmbedding``
(the op's contract states the math and the other accepted forms).

Llama 4's vision tower rotates with ``vision_apply_rotary_emb`` (a 2-D
frequency layout of its own); it is not this op's math and stays stock here.
"""

from __future__ import annotations

from types import ModuleType

import torch

from liger_kernel.ops import LigerLlama4RopeFunction


def liger_llama4_text_rotary_pos_emb(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for Llama 4's ``apply_rotary_emb``: ``(xq', xk')`` in the dtypes of xq and xk."""
    return LigerLlama4RopeFunction.apply(xq, xk, freqs_cis)


def apply_liger_llama4_rope_full(modeling_module: ModuleType) -> None:
    """Replace ``modeling_module.apply_rotary_emb`` (Llama 4's text attention
    looks it up on every call, so existing models use it too) with
    :func:`liger_llama4_text_rotary_pos_emb`; undone by
    ``liger_kernel.transformers.revert_liger_kernel_patches``. The vision
    rotary function is left stock (module docstring)."""
    from liger_kernel.transformers.monkey_patch import _replace

    if not callable(getattr(modeling_module, "apply_rotary_emb", None)):
        raise AttributeError(
            f"{getattr(modeling_module, '__name__', modeling_module)!r} has no apply_rotary_emb to replace; "
            "pass transformers.models.llama4.modeling_llama4"
        )
    _replace(modeling_module, "apply_rotary_emb", liger_llama4_text_rotary_pos_emb)
