"""RMSNorm modules that drop in for the Hugging Face ones.

    y = x / sqrt(mean(x**2) + eps) * (offset + weight)

computed by :class:`liger_kernel.ops.LigerRMSNormFunction` (see its docstring
for the casting modes). The family variants only change defaults: Gemma (1 to 3)
keeps ``weight`` zero-centred (offset 1, all math in fp32), Gemma-4, OLMo-2,
DeepSeek-V4 and GPT-OSS multiply by the weight itself before casting back
(casting "gemma", offset 0).
The Gemma variants take 0.8.5's signatures (``hidden_size`` for Gemma and
Gemma-2, ``dim`` for Gemma-3 and -4). GLM-4 and EXAONE-4 keep the Llama math
(casting "llama") but have post-norms, so they are not in place. Qwen3-Next and
MuseGlimmer's text decoder use Gemma's zero-centred ``(1 + weight)`` norm;
MuseGlimmer's other norms are Gemma-4's (the weight itself, or no weight).

``in_place=True`` lets a backend overwrite the incoming gradient with dx. That
is only safe when nothing else reads that gradient, so norms whose output feeds
a residual add directly (Gemma-2/3, OLMo-2/3, GLM-4 and EXAONE-4 post-norms)
use ``in_place=False``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from liger_kernel.ops import LigerRMSNormFunction

_INIT = {"ones": torch.ones, "zeros": torch.zeros}


class LigerRMSNorm(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "llama",
        init_fn: str = "ones",
        in_place: bool = True,
        row_mode: Any = None,
        elementwise_affine: bool = True,
    ) -> None:
        super().__init__()
        if init_fn not in _INIT:
            raise ValueError(f"init_fn must be one of {tuple(_INIT)}, got {init_fn!r}")
        self.weight = nn.Parameter(_INIT[init_fn](hidden_size)) if elementwise_affine else None
        self.variance_epsilon = eps
        self.offset = offset
        self.casting_mode = casting_mode
        self.in_place = in_place
        self.row_mode = row_mode

    @property
    def eps(self) -> float:
        """Gemma-style name of :attr:`variance_epsilon`."""
        return self.variance_epsilon

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return LigerRMSNormFunction.apply(
            hidden_states,
            self.weight,
            self.variance_epsilon,
            self.offset,
            self.casting_mode,
            self.in_place,
            self.row_mode,
        )

    def extra_repr(self) -> str:
        shape = tuple(self.weight.shape) if self.weight is not None else None
        return (
            f"{shape}, eps={self.variance_epsilon}, offset={self.offset}, "
            f"casting_mode={self.casting_mode!r}, in_place={self.in_place}"
        )


class LigerRMSNormForGemma(LigerRMSNorm):
    """Gemma: ``(1 + weight)``, weight initialised to zeros, fp32 throughout."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 1.0,
        casting_mode: str = "gemma",
        init_fn: str = "zeros",
        in_place: bool = True,
        row_mode: Any = None,
    ) -> None:
        super().__init__(hidden_size, eps, offset, casting_mode, init_fn, in_place, row_mode)


class LigerRMSNormForGemma2(LigerRMSNormForGemma):
    """Gemma-2: as Gemma, but post-norms feed residual adds, so not in place by default."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 1.0,
        casting_mode: str = "gemma",
        init_fn: str = "zeros",
        in_place: bool = False,
        row_mode: Any = None,
    ) -> None:
        super().__init__(hidden_size, eps, offset, casting_mode, init_fn, in_place, row_mode)


class LigerRMSNormForGemma3(LigerRMSNorm):
    """Gemma-3 (its q/k norms take ``dim``): Gemma's ``(1 + weight)`` math, not in place."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-6,
        offset: float = 1.0,
        casting_mode: str = "gemma",
        init_fn: str = "zeros",
        in_place: bool = False,
    ) -> None:
        super().__init__(dim, eps, offset, casting_mode, init_fn, in_place)


class LigerRMSNormForGemma4(LigerRMSNorm):
    """Gemma-4: unlike Gemma-3, the weight multiplies directly (offset 0, ones at
    init), fp32 throughout. ``with_scale=False`` is Gemma-4's scale-free norm
    (its attention value norm): no weight at all, ``y = x * rstd`` through the
    same op (which takes no weight for that)."""

    def __init__(
        self,
        dim: int,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "gemma",
        init_fn: str = "ones",
        in_place: bool = False,
        with_scale: bool = True,
    ) -> None:
        super().__init__(dim, eps, offset, casting_mode, init_fn, in_place, elementwise_affine=with_scale)
        self.with_scale = with_scale


class LigerRMSNormForOlmo2(LigerRMSNorm):
    """OLMo-2 (and DeepSeek-V4, whose norms keep fp32 weights): ``(weight * x_normed)``
    cast once at the end; post-norms, so not in place."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__(hidden_size, eps, offset=0.0, casting_mode="gemma", in_place=False)


class LigerRMSNormForGlm4(LigerRMSNorm):
    """GLM-4 (and EXAONE-4): Llama's math, ``weight * x_normed.to(input_dtype)``
    (casting "llama"); their post-norms feed residual adds, so not in place."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "llama",
        init_fn: str = "ones",
        in_place: bool = False,
        row_mode: Any = None,
    ) -> None:
        super().__init__(hidden_size, eps, offset, casting_mode, init_fn, in_place, row_mode)


class LigerRMSNormForQwen3Next(LigerRMSNorm):
    """Qwen3-Next's ``Qwen3NextRMSNorm`` (layer norms, per-head q/k norms, final
    norm): Gemma's ``(1 + weight)`` in fp32, weight initialised to zeros; not in
    place (0.8.5's default). The gated norm of its linear-attention blocks,
    ``norm(x) * silu(gate)``, is not this op and stays stock."""

    def __init__(
        self,
        hidden_size: int,
        eps: float = 1e-6,
        offset: float = 1.0,
        casting_mode: str = "gemma",
        init_fn: str = "zeros",
        in_place: bool = False,
        row_mode: Any = None,
    ) -> None:
        super().__init__(hidden_size, eps, offset, casting_mode, init_fn, in_place, row_mode)


class LigerRMSNormForMuseGlimmerTextCentered(LigerRMSNormForQwen3Next):
    """MuseGlimmer's ``MuseGlimmerTextCenteredRMSNorm`` (the four norms of each
    text decoder layer): Gemma's ``(1 + weight)`` math, zeros at init; two of
    them are post-norms feeding residual adds, so not in place."""


class LigerRMSNormForMuseGlimmer(LigerRMSNormForGemma4):
    """MuseGlimmer's ``MuseGlimmerRMSNorm``: the weight itself (offset 0, ones at
    init), fp32 throughout, cast back once (casting "gemma"). ``with_scale=False``
    (its q/k norm, the embedding norm and the perception-embedding norm) has no
    weight and no width (``dim=None``): ``y = x * rstd``."""

    def __init__(
        self,
        dim: int | None = None,
        eps: float = 1e-6,
        offset: float = 0.0,
        casting_mode: str = "gemma",
        init_fn: str = "ones",
        in_place: bool = False,
        with_scale: bool = True,
    ) -> None:
        if with_scale and dim is None:
            raise ValueError("LigerRMSNormForMuseGlimmer needs dim when with_scale=True")
        super().__init__(dim, eps, offset, casting_mode, init_fn, in_place, with_scale)  # type: ignore[arg-type]


class LigerRMSNormForGptOss(LigerRMSNorm):
    """GPT-OSS: ``(weight * x_normed)`` in fp32, cast once at the end (casting
    "gemma", offset 0), as OLMo-2; unlike OLMo-2's post-norms, GPT-OSS's norms
    feed projections (attention, the router and experts, the head), never a
    residual add, so in place as Llama's."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__(hidden_size, eps, offset=0.0, casting_mode="gemma", in_place=True)


class LigerL2NormForLlama4(LigerRMSNorm):
    """Llama 4's ``Llama4TextL2Norm`` (the per-head q/k norm of its RoPE layers):
    despite its name an RMSNorm without weight, ``x * rsqrt(mean(x**2) + eps)``
    in fp32 cast to the input dtype, which is the RMSNorm op without W
    (casting "llama"). Its signature is the stock one: ``eps`` only."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__(0, eps, casting_mode="llama", in_place=False, elementwise_affine=False)
