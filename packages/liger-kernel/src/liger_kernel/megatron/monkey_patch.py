"""Patch Megatron-Core so that models built afterwards use this project's ops.

Megatron picks its modules when a model is built: a layer spec names the norm
class (``LocalSpecProvider.layer_norm``), a transformer block fills its final
norm from ``transformer_block.LayerNormImpl``, the MLP's fused activation calls
``fused_bias_swiglu.SwiGLUFunction`` and the language model's loss calls one of
two vocabulary-parallel cross-entropy functions, each also bound by name into
the module that calls it. Patching replaces those names; a model built before
the patch keeps the modules it has.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

logger = logging.getLogger(__name__)

#: set on every replacement, so that applying the patch twice changes nothing
PATCH_MARKER = "__liger_patched__"

#: modules that bind a cross-entropy function into their own namespace
#: (``from ... import``), as (module, attribute); each exists in some
#: Megatron-Core versions only
FUSED_CROSS_ENTROPY_CALL_SITES = (
    ("megatron.core.models.common.language_module.language_module", "fused_vocab_parallel_cross_entropy"),
    ("megatron.core.models.backends", "_fused_ce"),
)
UNFUSED_CROSS_ENTROPY_CALL_SITES = (("megatron.core.tensor_parallel", "vocab_parallel_cross_entropy"),)

#: (owner, attribute, original) of every replacement made, in order
_replaced: list[tuple[Any, str, Any]] = []


def apply_liger_kernel_to_megatron(rms_norm: bool = True, cross_entropy: bool = False, swiglu: bool = False) -> None:
    """Route Megatron-Core models built from now on through this project's ops.

    Args:
        rms_norm: RMSNorm slots of the local (non-TransformerEngine) spec, the
            per-layer norms (``LocalSpecProvider.layer_norm(rms_norm=True)``, the
            q/k norms among them) and the block's final norm where it is
            Megatron's pure-torch norm, become
            :class:`~liger_kernel.megatron.LigerMegatronRMSNorm` whenever
            ``config.normalization`` is "RMSNorm" (other configs keep Megatron's
            norm). TransformerEngine and Apex norms are left alone: TE fuses its
            norm into the next linear layer.
        cross_entropy: the fused (``fused_vocab_parallel_cross_entropy``) and the
            unfused (``tensor_parallel.vocab_parallel_cross_entropy``) losses
            become :class:`~liger_kernel.megatron.LigerMegatronCrossEntropy`, with
            Megatron's defaults; the unfused one takes its tensor-parallel group
            from Megatron's ``parallel_state`` as Megatron's does.
        swiglu: ``fused_bias_swiglu.SwiGLUFunction`` (the dense MLP and MoE
            shared experts with ``bias_activation_fusion``, no bias) becomes the
            ``swiglu`` op. Calls with ``fp8_input_store`` or ``cpu_offload_input``
            run Megatron's own function (logged once each): the op keeps its own
            saved tensors. The biased and the routing-weighted variants are not
            patched.

    Apply it before building the model. Applying it again changes nothing;
    :func:`revert_liger_kernel_to_megatron` undoes it.
    """
    _require_megatron()
    if rms_norm:
        _patch_layer_norm_spec()
        _patch_block_layer_norm()
    if cross_entropy:
        _patch_fused_cross_entropy()
        _patch_unfused_cross_entropy()
    if swiglu:
        _patch_swiglu()


def revert_liger_kernel_to_megatron() -> None:
    """Put back every Megatron-Core attribute :func:`apply_liger_kernel_to_megatron` replaced."""
    while _replaced:
        owner, attribute, original = _replaced.pop()
        setattr(owner, attribute, original)


def _require_megatron() -> None:
    try:
        import megatron.core  # noqa: F401
    except ImportError as exc:
        raise ImportError("apply_liger_kernel_to_megatron needs Megatron-Core: pip install megatron-core") from exc


def _replace(owner: Any, attribute: str, replacement: Any) -> None:
    original = getattr(owner, attribute)
    setattr(replacement, PATCH_MARKER, True)
    replacement.__wrapped__ = original
    setattr(owner, attribute, replacement)
    _replaced.append((owner, attribute, original))


def _is_patched(value: Any) -> bool:
    return bool(getattr(value, PATCH_MARKER, False))


def _rebind(call_sites: tuple[tuple[str, str], ...], original: Any, replacement: Any) -> None:
    """Point every call site that still holds ``original`` at ``replacement``;
    a call site holding something else (another framework's function) is kept."""
    for module_name, attribute in call_sites:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if getattr(module, attribute, None) is original:
            _replace(module, attribute, replacement)


def _rms_norm_or(stock: Any) -> type:
    """A norm class for Megatron's specs: LigerMegatronRMSNorm when the config
    asks for RMSNorm, else ``stock`` built as Megatron would."""
    from liger_kernel.megatron.rms_norm import LigerMegatronRMSNorm

    class LigerRMSNormOrStock:
        def __new__(cls, config: Any, hidden_size: int, eps: float = 1e-5, **kwargs: Any) -> Any:
            if getattr(config, "normalization", None) == "RMSNorm":
                return LigerMegatronRMSNorm(config=config, hidden_size=hidden_size, eps=eps, **kwargs)
            return stock(config=config, hidden_size=hidden_size, eps=eps, **kwargs)

    LigerRMSNormOrStock.__qualname__ = f"LigerRMSNormOr{getattr(stock, '__name__', 'Stock')}"
    return LigerRMSNormOrStock


def _patch_layer_norm_spec() -> None:
    from megatron.core.models import backends

    provider = backends.LocalSpecProvider
    if _is_patched(provider.layer_norm):
        return
    stock_layer_norm = provider.layer_norm

    def layer_norm(self: Any, rms_norm: bool = False, for_qk: bool = False, **kwargs: Any) -> type:
        # the stock method runs first: it also sets Megatron's module-level norm choice
        stock = stock_layer_norm(self, rms_norm=rms_norm, for_qk=for_qk, **kwargs)
        return _rms_norm_or(stock) if rms_norm else stock

    _replace(provider, "layer_norm", layer_norm)
    logger.info("Megatron-Core: LocalSpecProvider.layer_norm(rms_norm=True) builds LigerMegatronRMSNorm")


def _patch_block_layer_norm() -> None:
    from megatron.core.transformer import transformer_block
    from megatron.core.transformer.torch_norm import WrappedTorchNorm

    stock = transformer_block.LayerNormImpl
    if _is_patched(stock):
        return
    if stock is not WrappedTorchNorm:
        logger.info(
            "Megatron-Core: the block's final norm is %s (TransformerEngine or Apex), left as it is",
            getattr(stock, "__name__", stock),
        )
        return
    _replace(transformer_block, "LayerNormImpl", _rms_norm_or(stock))
    logger.info("Megatron-Core: transformer_block.LayerNormImpl builds LigerMegatronRMSNorm for RMSNorm configs")


def _patch_fused_cross_entropy() -> None:
    import megatron.core.fusions.fused_cross_entropy as fused

    if _is_patched(fused.fused_vocab_parallel_cross_entropy):
        return
    original = fused.fused_vocab_parallel_cross_entropy

    from liger_kernel.megatron.cross_entropy import LigerMegatronCrossEntropy

    loss = LigerMegatronCrossEntropy()

    def fused_vocab_parallel_cross_entropy(vocab_parallel_logits: Any, target: Any, tp_group: Any = None) -> Any:
        return loss(vocab_parallel_logits, target, tp_group=tp_group)

    _replace(fused, "fused_vocab_parallel_cross_entropy", fused_vocab_parallel_cross_entropy)
    _rebind(FUSED_CROSS_ENTROPY_CALL_SITES, original, fused_vocab_parallel_cross_entropy)
    logger.info("Megatron-Core: fused_vocab_parallel_cross_entropy is LigerMegatronCrossEntropy")


def _megatron_tp_group() -> Any:
    """Megatron's tensor-parallel group, as its unfused loss uses it (None before
    Megatron's model parallelism is initialized: one rank)."""
    from megatron.core import parallel_state

    if not parallel_state.model_parallel_is_initialized():
        return None
    return parallel_state.get_tensor_model_parallel_group()


def _patch_unfused_cross_entropy() -> None:
    import megatron.core.tensor_parallel.cross_entropy as unfused

    if _is_patched(unfused.vocab_parallel_cross_entropy):
        return
    original = unfused.vocab_parallel_cross_entropy

    from liger_kernel.megatron.cross_entropy import LigerMegatronCrossEntropy

    losses: dict[float, LigerMegatronCrossEntropy] = {}

    def vocab_parallel_cross_entropy(
        vocab_parallel_logits: Any, target: Any, label_smoothing: float = 0.0, tp_group: Any = None
    ) -> Any:
        loss = losses.get(label_smoothing)
        if loss is None:
            loss = losses.setdefault(label_smoothing, LigerMegatronCrossEntropy(label_smoothing=label_smoothing))
        group = tp_group if tp_group is not None else _megatron_tp_group()
        return loss(vocab_parallel_logits, target, tp_group=group)

    _replace(unfused, "vocab_parallel_cross_entropy", vocab_parallel_cross_entropy)
    _rebind(UNFUSED_CROSS_ENTROPY_CALL_SITES, original, vocab_parallel_cross_entropy)
    logger.info("Megatron-Core: tensor_parallel.vocab_parallel_cross_entropy is LigerMegatronCrossEntropy")


def _patch_swiglu() -> None:
    import megatron.core.fusions.fused_bias_swiglu as fused

    if _is_patched(fused.SwiGLUFunction):
        return
    stock = fused.SwiGLUFunction

    from liger_kernel.megatron.swiglu import unsupported_reason
    from liger_kernel.ops import LigerFusedGateUpSiLUMulFunction

    logged: set[str] = set()

    class LigerSwiGLUFunction:
        """``SwiGLUFunction.apply(input, fp8_input_store, cpu_offload_input)`` on the swiglu op."""

        @staticmethod
        def apply(input: Any, fp8_input_store: bool = False, cpu_offload_input: bool = False) -> Any:
            reason = unsupported_reason(None, fp8_input_store, cpu_offload_input)
            if reason is None:
                return LigerFusedGateUpSiLUMulFunction.apply(input)
            if reason not in logged:
                logged.add(reason)
                logger.info("Megatron-Core SwiGLU with %s runs Megatron's own SwiGLUFunction", reason)
            return stock.apply(input, fp8_input_store, cpu_offload_input)

    _replace(fused, "SwiGLUFunction", LigerSwiGLUFunction)
    logger.info("Megatron-Core: fused_bias_swiglu.SwiGLUFunction is the swiglu op")
