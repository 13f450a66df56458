"""Patching Hugging Face Transformers models to use the Liger ops.

``apply_liger_kernel_to_<family>(...)`` takes explicit keyword switches, one per
op, and works at two levels:

- **Classes** (always): in ``transformers.models.<family>.modeling_<family>`` it
  replaces the RMSNorm and MLP class names with the Liger modules (models built
  afterwards get them), the module function ``apply_rotary_pos_emb`` (attention
  looks it up on every call, so existing models use it too), the MoE experts'
  ``_apply_gate``, and ``<Family>ForCausalLM.forward`` (fused linear
  cross-entropy) or its ``loss_function`` (cross-entropy).
- **An instance** (``model=``): converts that model's existing RMSNorm and MLP
  modules in place by switching their ``__class__`` to the Liger module and
  setting the few plain attributes it adds (eps, offset, casting mode). The
  parameters are the same objects, so weights, devices, dtypes, optimizer
  state and tied weights are kept; the state-dict keys do not change.

Every class-level replacement is recorded; :func:`revert_liger_kernel_patches`
puts the stock Transformers objects back (models converted in place keep
their Liger modules).

``MODEL_TYPE_TO_APPLY_LIGER_FN`` maps ``config.model_type`` to the patch
function; :func:`_apply_liger_kernel` and :func:`_apply_liger_kernel_to_instance`
(which Transformers' ``Trainer`` calls for ``use_liger_kernel=True``) look it up
and pass on only the keyword arguments it accepts.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from liger_kernel.transformers.geglu import LigerGEGLUMLP
from liger_kernel.transformers.rms_norm import (
    LigerRMSNorm,
    LigerRMSNormForGemma,
    LigerRMSNormForGemma2,
    LigerRMSNormForOlmo2,
)
from liger_kernel.transformers.rope import liger_rotary_pos_emb
from liger_kernel.transformers.swiglu import LigerPhi3SwiGLUMLP, LigerSwiGLUMLP, liger_experts_apply_gate

logger = logging.getLogger(__name__)

SUPPORTED_TRANSFORMERS = (">=4.52", "<6")
INSTALL_HINT = "pip install 'liger-core[transformers]'  (or: pip install 'transformers>=4.52,<6')"


def _require_transformers() -> None:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"liger_kernel.transformers patches Hugging Face Transformers models, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        ) from exc
    major_minor = tuple(int(part) for part in transformers.__version__.split(".")[:2] if part.isdigit())
    if major_minor < (4, 52) or major_minor >= (6,):
        logger.warning(
            "transformers %s is outside the range liger_kernel.transformers supports (%s); patching may fail",
            transformers.__version__,
            ",".join(SUPPORTED_TRANSFORMERS),
        )


# -- recording and undoing class-level replacements ---------------------------

_MISSING = object()
_originals: dict[tuple[int, str], tuple[Any, str, Any]] = {}


def _replace(owner: Any, name: str, value: Any) -> None:
    """``setattr(owner, name, value)``, remembering what was there first."""
    key = (id(owner), name)
    if key not in _originals:
        _originals[key] = (owner, name, vars(owner).get(name, _MISSING))
    setattr(owner, name, value)


def _original(owner: Any, name: str) -> Any:
    """The stock object at ``owner.name``, even if it has been replaced."""
    recorded = _originals.get((id(owner), name))
    return getattr(owner, name) if recorded is None else recorded[2]


def revert_liger_kernel_patches() -> None:
    """Undo every class-level replacement made by the patch functions, so that
    models built afterwards are stock Transformers models again."""
    for owner, name, value in reversed(list(_originals.values())):
        if value is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
    _originals.clear()


# -- converting an existing model's modules in place --------------------------

#: nn.Module's own bookkeeping (parameters, hooks, training flag): never copied
#: from the template, so the converted module keeps its hooks and state
_MODULE_INTERNALS = frozenset(vars(nn.Module()))


def _adopt(module: nn.Module, liger_cls: type[nn.Module], *args: Any, **kwargs: Any) -> None:
    """Turn ``module`` into a ``liger_cls`` in place, keeping its parameters.

    A throw-away ``liger_cls(*args, **kwargs)`` built on the meta device
    supplies the plain attributes the Liger module reads; its parameter names
    must match the module's, so no weight is dropped or invented.
    """
    with torch.device("meta"):
        template = liger_cls(*args, **kwargs)
    wanted = {name for name, _ in template.named_parameters()}
    have = {name for name, _ in module.named_parameters()}
    if wanted != have:
        raise TypeError(
            f"cannot convert {type(module).__name__} to {liger_cls.__name__}: parameters {sorted(have)} "
            f"do not match {sorted(wanted)}"
        )
    for name in [n for n, child in module.named_children() if n not in template._modules]:
        if any(True for _ in module._modules[name].parameters()):
            raise TypeError(f"cannot convert {type(module).__name__}: submodule {name!r} holds parameters")
        del module._modules[name]
    for name, value in vars(template).items():
        if name not in _MODULE_INTERNALS:
            module.__dict__[name] = value
    for name in [n for n in vars(module) if isinstance(getattr(liger_cls, n, None), property)]:
        del module.__dict__[name]
    module.__class__ = liger_cls


def _convert_rms_norms(model: nn.Module, stock_cls: type, liger_cls: type[LigerRMSNorm]) -> int:
    count = 0
    for module in model.modules():
        if type(module) is stock_cls:
            eps = getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6))
            _adopt(module, liger_cls, module.weight.shape[0], eps)
            count += 1
    return count


def _convert_mlps(model: nn.Module, stock_cls: type, liger_cls: type[nn.Module]) -> int:
    count = 0
    for module in model.modules():
        if type(module) is stock_cls:
            config = getattr(module, "config", None) or model.config
            if liger_cls is LigerSwiGLUMLP:
                _adopt(module, liger_cls, config, intermediate_size=module.gate_proj.out_features)
            else:
                _adopt(module, liger_cls, config)
            count += 1
    return count


# -- one family ---------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """Where a family's pieces live in Transformers, and their Liger counterparts."""

    module: str
    causal_lm: str
    rms_norm: str
    liger_rms_norm: type[LigerRMSNorm]
    mlp: str | None = None
    liger_mlp: type[nn.Module] | None = None
    experts: str | None = None
    moe: bool = False

    def modeling(self) -> Any:
        _require_transformers()
        return importlib.import_module(self.module)


def _family(name: str, prefix: str, **kwargs: Any) -> Family:
    kwargs.setdefault("liger_rms_norm", LigerRMSNorm)
    return Family(
        module=f"transformers.models.{name}.modeling_{name}",
        causal_lm=f"{prefix}ForCausalLM",
        rms_norm=f"{prefix}RMSNorm",
        **kwargs,
    )


FAMILIES: dict[str, Family] = {
    "llama": _family("llama", "Llama", mlp="LlamaMLP", liger_mlp=LigerSwiGLUMLP),
    "mistral": _family("mistral", "Mistral", mlp="MistralMLP", liger_mlp=LigerSwiGLUMLP),
    "mixtral": _family("mixtral", "Mixtral", experts="MixtralExperts", moe=True),
    "qwen2": _family("qwen2", "Qwen2", mlp="Qwen2MLP", liger_mlp=LigerSwiGLUMLP),
    "qwen3": _family("qwen3", "Qwen3", mlp="Qwen3MLP", liger_mlp=LigerSwiGLUMLP),
    "qwen3_moe": _family(
        "qwen3_moe", "Qwen3Moe", mlp="Qwen3MoeMLP", liger_mlp=LigerSwiGLUMLP, experts="Qwen3MoeExperts", moe=True
    ),
    "gemma": _family("gemma", "Gemma", liger_rms_norm=LigerRMSNormForGemma, mlp="GemmaMLP", liger_mlp=LigerGEGLUMLP),
    "gemma2": _family(
        "gemma2", "Gemma2", liger_rms_norm=LigerRMSNormForGemma2, mlp="Gemma2MLP", liger_mlp=LigerGEGLUMLP
    ),
    "gemma3_text": _family(
        "gemma3", "Gemma3", liger_rms_norm=LigerRMSNormForGemma2, mlp="Gemma3MLP", liger_mlp=LigerGEGLUMLP
    ),
    "phi3": _family("phi3", "Phi3", mlp="Phi3MLP", liger_mlp=LigerPhi3SwiGLUMLP),
    "granite": _family("granite", "Granite", mlp="GraniteMLP", liger_mlp=LigerSwiGLUMLP),
    "olmo2": _family("olmo2", "Olmo2", liger_rms_norm=LigerRMSNormForOlmo2, mlp="Olmo2MLP", liger_mlp=LigerSwiGLUMLP),
}


def _patch(
    family: Family,
    rope: bool,
    cross_entropy: bool,
    fused_linear_cross_entropy: bool,
    rms_norm: bool,
    mlp: bool,
    model: nn.Module | None,
) -> None:
    if cross_entropy and fused_linear_cross_entropy:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True")
    from liger_kernel.transformers.model.causal_lm import (
        causal_lm_forward,
        liger_causal_lm_loss,
        moe_causal_lm_forward,
    )

    modeling = family.modeling()
    causal_lm_cls = getattr(modeling, family.causal_lm)
    stock_rms_norm = _original(modeling, family.rms_norm)
    stock_mlp = _original(modeling, family.mlp) if family.mlp else None

    if rope:
        _replace(modeling, "apply_rotary_pos_emb", liger_rotary_pos_emb)
    if rms_norm:
        _replace(modeling, family.rms_norm, family.liger_rms_norm)
    if mlp:
        if family.mlp:
            _replace(modeling, family.mlp, family.liger_mlp)
        experts_cls = getattr(modeling, family.experts, None) if family.experts else None
        if experts_cls is not None:
            _replace(experts_cls, "_apply_gate", liger_experts_apply_gate)
        elif family.experts:
            # Transformers releases before the fused experts modules keep one MLP per expert.
            logger.info("%s has no %s; the experts' SwiGLU is left stock", family.module, family.experts)
    if fused_linear_cross_entropy:
        _replace(causal_lm_cls, "forward", moe_causal_lm_forward if family.moe else causal_lm_forward)
    if cross_entropy:
        _replace(causal_lm_cls, "_loss_function", staticmethod(liger_causal_lm_loss))

    # The forward and the loss are class attributes that every existing
    # instance (and subclass) already sees; only modules need converting.
    if model is None:
        return
    if rms_norm:
        _convert_rms_norms(model, stock_rms_norm, family.liger_rms_norm)
    if mlp and stock_mlp is not None:
        _convert_mlps(model, stock_mlp, family.liger_mlp)


# -- the public patch functions ----------------------------------------------
# Explicit keyword parameters (no **kwargs): frameworks read their signatures.


def apply_liger_kernel_to_llama(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Llama: RoPE, RMSNorm, SwiGLU MLP and the fused linear cross-entropy
    loss (or the plain cross-entropy loss). With ``model=``, also convert that
    model's existing modules in place."""
    _patch(FAMILIES["llama"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_mistral(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Mistral (as :func:`apply_liger_kernel_to_llama`)."""
    _patch(FAMILIES["mistral"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_mixtral(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Mixtral. ``swiglu`` covers the experts' gate (``_apply_gate``,
    used by the grouped_mm and batched_mm experts implementations); the fused
    loss keeps the router load-balancing loss."""
    _patch(FAMILIES["mixtral"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_qwen2(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Qwen2 (as :func:`apply_liger_kernel_to_llama`)."""
    _patch(FAMILIES["qwen2"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_qwen3(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Qwen3; ``rms_norm`` includes the per-head q/k norms."""
    _patch(FAMILIES["qwen3"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_qwen3_moe(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Qwen3-MoE: dense MLP layers and the experts' gate (see Mixtral)."""
    _patch(FAMILIES["qwen3_moe"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_gemma(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    geglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Gemma: RMSNorm with offset 1 and "gemma" casting, GEGLU MLP."""
    _patch(FAMILIES["gemma"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, geglu, model)


def apply_liger_kernel_to_gemma2(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    geglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Gemma-2; the fused loss applies ``final_logit_softcapping``."""
    _patch(FAMILIES["gemma2"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, geglu, model)


def apply_liger_kernel_to_gemma3_text(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    geglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch the Gemma-3 text model (``Gemma3ForCausalLM``), q/k norms included."""
    _patch(FAMILIES["gemma3_text"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, geglu, model)


def apply_liger_kernel_to_phi3(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Phi-3: fused gate_up SwiGLU MLP; RoPE handles partial rotary."""
    _patch(FAMILIES["phi3"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_granite(
    rope: bool = True,
    cross_entropy: bool = True,
    fused_linear_cross_entropy: bool = False,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Granite. Cross-entropy by default; the fused loss, if chosen,
    divides by ``logits_scaling`` as the stock head does."""
    _patch(FAMILIES["granite"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


def apply_liger_kernel_to_olmo2(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch OLMo-2: post-norms and full-width q/k norms (casting "gemma")."""
    _patch(FAMILIES["olmo2"], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, swiglu, model)


MODEL_TYPE_TO_APPLY_LIGER_FN: dict[str, Callable[..., None]] = {
    "llama": apply_liger_kernel_to_llama,
    "mistral": apply_liger_kernel_to_mistral,
    "mixtral": apply_liger_kernel_to_mixtral,
    "qwen2": apply_liger_kernel_to_qwen2,
    "qwen3": apply_liger_kernel_to_qwen3,
    "qwen3_moe": apply_liger_kernel_to_qwen3_moe,
    "gemma": apply_liger_kernel_to_gemma,
    "gemma2": apply_liger_kernel_to_gemma2,
    "gemma3_text": apply_liger_kernel_to_gemma3_text,
    "phi3": apply_liger_kernel_to_phi3,
    "granite": apply_liger_kernel_to_granite,
    "olmo2": apply_liger_kernel_to_olmo2,
}


def _accepted(apply_fn: Callable[..., None], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(apply_fn).parameters
    accepted = {key: value for key, value in kwargs.items() if key in params}
    ignored = sorted(set(kwargs) - set(accepted))
    if ignored:
        logger.info("%s does not take %s; ignored", apply_fn.__name__, ", ".join(ignored))
    return accepted


def _apply_liger_kernel(model_type: str = "", **kwargs: Any) -> None:
    """Patch the Transformers classes of ``model_type`` (``config.model_type``)."""
    apply_fn = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type)
    if apply_fn is None:
        logger.warning(
            "model type %r has no Liger patch; supported: %s", model_type, ", ".join(MODEL_TYPE_TO_APPLY_LIGER_FN)
        )
        return
    kwargs.pop("model", None)
    apply_fn(**_accepted(apply_fn, kwargs))


def _apply_liger_kernel_to_instance(model: nn.Module, **kwargs: Any) -> None:
    """Patch ``model`` in place (and its family's classes), by ``model.config.model_type``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    apply_fn = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type) if model_type else None
    if apply_fn is None:
        logger.warning(
            "model type %r has no Liger patch; the model is left unchanged (supported: %s)",
            model_type,
            ", ".join(MODEL_TYPE_TO_APPLY_LIGER_FN),
        )
        return
    apply_fn(model=model, **_accepted(apply_fn, kwargs))
