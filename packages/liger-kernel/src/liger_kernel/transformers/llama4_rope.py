"""Llama 4's text rotary embedding with the signature of Transformers'
``apply_rotary_emb`` (``transformers.models.llama4.modeling_llama4``), through
:class:`liger_kernel.ops.LigerLlama4RopeFunction`.

xq (batch, seq, heads, head_dim) and xk (batch, seq, kv_heads, head_dim) are
read as complex pairs (x[2j], x[2j+1]) and multiplied by ``freqs_cis``, the
complex (batch, seq, head_dim / 2) output of ``Llama4TextRotaryEmbedding``
(the op's contract states the math and the other accepted forms).

Llama 4's vision tower rotates with ``vision_apply_rotary_emb``: the same
complex multiply, with query and key (tiles, patches, heads, head_dim) and one
(patches, 1, head_dim / 2) frequency table for every tile; it goes through the
same op as :func:`liger_llama4_vision_rotary_pos_emb`
(:func:`liger_kernel.ops.llama4_rope.llama4_vision_rope` states the layout,
the real tables of a model cast to a real dtype, and the rounding).
"""

from __future__ import annotations

from types import ModuleType

import torch

from liger_kernel.ops import LigerLlama4RopeFunction
from liger_kernel.ops.llama4_rope import llama4_vision_rope


def liger_llama4_text_rotary_pos_emb(
    xq: torch.Tensor, xk: torch.Tensor, freqs_cis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for Llama 4's ``apply_rotary_emb``: ``(xq', xk')`` in the dtypes of xq and xk."""
    return LigerLlama4RopeFunction.apply(xq, xk, freqs_cis)


def liger_llama4_vision_rotary_pos_emb(
    query: torch.Tensor, key: torch.Tensor, freqs_ci: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for Llama 4's ``vision_apply_rotary_emb``: ``(query', key')`` in the
    dtypes of query and key, computed as there."""
    return llama4_vision_rope(query, key, freqs_ci)


def apply_liger_llama4_rope_full(modeling_module: ModuleType) -> None:
    """Replace ``modeling_module.apply_rotary_emb`` with
    :func:`liger_llama4_text_rotary_pos_emb` and, where the module has it,
    ``vision_apply_rotary_emb`` with :func:`liger_llama4_vision_rotary_pos_emb`
    (Llama 4's attention looks them up on every call, so existing models use
    them too); undone by ``liger_kernel.transformers.revert_liger_kernel_patches``."""
    from liger_kernel.transformers.monkey_patch import _replace

    if not callable(getattr(modeling_module, "apply_rotary_emb", None)):
        raise AttributeError(
            f"{getattr(modeling_module, '__name__', modeling_module)!r} has no apply_rotary_emb to replace; "
            "pass transformers.models.llama4.modeling_llama4"
        )
    _replace(modeling_module, "apply_rotary_emb", liger_llama4_text_rotary_pos_emb)
    if callable(getattr(modeling_module, "vision_apply_rotary_emb", None)):
        _replace(modeling_module, "vision_apply_rotary_emb", liger_llama4_vision_rotary_pos_emb)
