"""Patching Hugging Face Transformers models to use the Liger ops.

Each family is one row of :data:`FAMILIES` (a :class:`Family`: its class-name
prefix and the Liger modules it takes); ``apply_liger_kernel_to_<model_type>``
is generated from the row, with explicit keyword switches, one per op, and
works at two levels:

- **Classes** (always): in ``transformers.models.<family>.modeling_<family>`` it
  replaces the RMSNorm and MLP class names with the Liger modules (models built
  afterwards get them), the module function ``apply_rotary_pos_emb`` (attention
  looks it up on every call, so existing models use it too), the MoE experts'
  ``forward`` (:class:`liger_kernel.ops.LigerFusedMoEFunction` over the
  module's own stacked weights: existing models use it too), and
  ``<Family>ForCausalLM.forward`` (fused linear
  cross-entropy) or its ``loss_function`` (cross-entropy).
- **An instance** (``model=``): converts that model's existing RMSNorm and MLP
  modules in place by switching their ``__class__`` to the Liger module and
  setting the few plain attributes it adds (eps, offset, casting mode). The
  parameters and sub-modules are the same objects, so weights, devices,
  dtypes, optimizer state and tied weights are kept, the state-dict keys do
  not change, and projections wrapped by PEFT (LoRA) or a quantization
  library stay wrapped: the Liger MLP calls ``self.gate_proj(x)`` whatever
  ``gate_proj`` is. Patching before or after ``peft.get_peft_model`` works.

The vision-language families are rows of :data:`VISION_LANGUAGE` (a
:class:`VisionLanguageFamily`: the text family whose patch the language model
takes, the vision tower's norms and MLPs that match an op, the
``ForConditionalGeneration`` forward with the fused loss); their patch
functions are generated the same way. A family neither table can describe
(hybrids, Pixtral's head-less encoder) gets a hand-written function registered
with :func:`patch_function`.

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
import importlib.metadata
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from liger_kernel.transformers._generated import compile_function
from liger_kernel.transformers.geglu import LigerGEGLUMLP, LigerGEGLUMLPForGemma4
from liger_kernel.transformers.llama4_rope import liger_llama4_text_rotary_pos_emb, liger_llama4_vision_rotary_pos_emb
from liger_kernel.transformers.relu_squared import LigerReLUSquared
from liger_kernel.transformers.rms_norm import (
    LigerL2NormForLlama4,
    LigerRMSNorm,
    LigerRMSNormForGemma,
    LigerRMSNormForGemma2,
    LigerRMSNormForGemma3,
    LigerRMSNormForGemma4,
    LigerRMSNormForGlm4,
    LigerRMSNormForGptOss,
    LigerRMSNormForOlmo2,
    LigerRMSNormForQwen3Next,
)
from liger_kernel.transformers.rope import (
    liger_rotary_pos_emb,
    liger_rotary_pos_emb_gpt_oss,
    liger_rotary_pos_emb_vision,
)
from liger_kernel.transformers.swiglu import (
    LigerFalconH1SwiGLUMLP,
    LigerHunyuanV1SwiGLUMLP,
    LigerPhi3SwiGLUMLP,
    LigerSwiGLUMLP,
    liger_experts_apply_gate,
    liger_experts_forward,
    liger_gpt_oss_experts_apply_gate,
)
from liger_kernel.utils import PEFT_AVAILABLE  # noqa: F401 (0.8.5 offers it here)

logger = logging.getLogger(__name__)

SUPPORTED_TRANSFORMERS = (">=4.52", "<6")
INSTALL_HINT = "pip install 'liger-kernel[transformers]'  (or: pip install 'transformers>=4.52,<6')"

#: liger-kernel 0.8.5's version constants, read when first asked for (this
#: module imports without Transformers; these need it installed):
#: ``transformer_version`` (the installed Transformers, a ``packaging`` Version),
#: ``MIN_SUPPORTED_TRANSFORMERS_VERSION`` (this project's floor, the lower bound
#: of :data:`SUPPORTED_TRANSFORMERS`) and ``IS_TRANSFORMERS_V5_OR_LATER``. Where
#: 0.8.5 refused to import below its floor, this module warns when it patches.
_VERSION_CONSTANTS = ("transformer_version", "MIN_SUPPORTED_TRANSFORMERS_VERSION", "IS_TRANSFORMERS_V5_OR_LATER")


def _version_constants() -> dict[str, Any]:
    try:
        installed = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ImportError(f"Transformers is not installed. Install it with: {INSTALL_HINT}") from exc
    from packaging.version import Version  # a dependency of Transformers

    transformer_version = Version(installed)
    return {
        "transformer_version": transformer_version,
        "MIN_SUPPORTED_TRANSFORMERS_VERSION": Version(SUPPORTED_TRANSFORMERS[0].removeprefix(">=")),
        "IS_TRANSFORMERS_V5_OR_LATER": transformer_version >= Version("5.0.0"),
    }


def __getattr__(name: str) -> Any:
    if name in _VERSION_CONSTANTS:
        constants = _version_constants()
        globals().update(constants)  # computed once; later lookups find the module attributes
        return constants[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _require_transformers() -> None:
    try:
        import transformers
    except ImportError as exc:
        raise ImportError(
            f"liger_kernel.transformers patches Hugging Face Transformers models, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        ) from exc
    versions = _version_constants()
    installed = versions["transformer_version"]
    if installed < versions["MIN_SUPPORTED_TRANSFORMERS_VERSION"] or installed.major >= 6:
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
    """Turn ``module`` into a ``liger_cls`` in place: change what it computes,
    keep what it holds.

    A throw-away ``liger_cls(*args, **kwargs)`` built on the meta device
    supplies the plain attributes the Liger module reads (eps, offset, config).
    The module keeps its own parameters and its own sub-modules, whatever they
    are: a LoRA layer or a quantized linear in place of a projection is called
    by the Liger forward just as the stock forward called it. What is checked
    is that nothing is dropped or invented: the module's direct parameters are
    the template's, it has every sub-module the Liger forward calls, and a
    sub-module the Liger forward never calls holds no parameters.
    """
    with torch.device("meta"):
        template = liger_cls(*args, **kwargs)
    wanted = set(template._parameters)
    have = set(module._parameters)
    if wanted != have:
        raise TypeError(
            f"cannot convert {type(module).__name__} to {liger_cls.__name__}: its own parameters {sorted(have)} "
            f"do not match {sorted(wanted)}"
        )
    missing = [name for name in template._modules if module._modules.get(name) is None]
    if missing:
        raise TypeError(f"cannot convert {type(module).__name__} to {liger_cls.__name__}: it has no {missing}")
    unused = [
        name
        for name, child in module.named_children()
        if name not in template._modules and any(True for _ in child.parameters())
    ]
    if unused:
        raise TypeError(
            f"cannot convert {type(module).__name__} to {liger_cls.__name__}: sub-modules {unused} hold "
            "parameters the Liger forward would not use"
        )
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
            weight = getattr(module, "weight", None)
            if weight is None:  # a scale-free norm (Gemma-4's and MuseGlimmer's with_scale=False)
                _adopt(module, liger_cls, None, eps, with_scale=False)
            else:
                _adopt(module, liger_cls, weight.shape[0], eps)
            count += 1
    return count


def _convert_weightless_norms(model: nn.Module, stock_cls: type, liger_cls: type[nn.Module]) -> int:
    count = 0
    for module in model.modules():
        if type(module) is stock_cls:
            _adopt(module, liger_cls, getattr(module, "eps", getattr(module, "variance_epsilon", 1e-6)))
            count += 1
    return count


def _convert_mlps(model: nn.Module, stock_cls: type, liger_cls: type[nn.Module]) -> int:
    parameters = inspect.signature(liger_cls).parameters
    count = 0
    for module in model.modules():
        if type(module) is stock_cls:
            config = getattr(module, "config", None) or model.config
            kwargs = {}
            if "intermediate_size" in parameters:
                # a wrapped projection (LoRA, quantized) still reports its width
                kwargs["intermediate_size"] = getattr(module.gate_proj, "out_features", None)
            if "layer_idx" in parameters:
                kwargs["layer_idx"] = getattr(module, "layer_idx", None)
            _adopt(module, liger_cls, config, **kwargs)
            count += 1
    return count


# -- the family table -----------------------------------------------------------

#: rope op -> (the Transformers module function it replaces, its Liger drop-in)
ROPE_FUNCTIONS: dict[str, tuple[str, Callable[..., Any]]] = {
    "rope": ("apply_rotary_pos_emb", liger_rotary_pos_emb),
    "llama4_rope": ("apply_rotary_emb", liger_llama4_text_rotary_pos_emb),
}
#: a vision tower's module-level rotary function -> its drop-in (the ``rope`` switch of a
#: vision-language family replaces each one its modeling module has; the attention looks
#: it up per call, so models built before the patch take it too)
VISION_ROPE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "apply_rotary_pos_emb_vision": liger_rotary_pos_emb_vision,
    "vision_apply_rotary_emb": liger_llama4_vision_rotary_pos_emb,
}


@dataclass(frozen=True)
class Family:
    """One row of :data:`FAMILIES`: a decoder family laid out the way most of
    Transformers is, and the Liger modules that replace its pieces.

    Transformers' names follow from ``model_type`` and ``prefix``: the module
    ``transformers.models.<package>.modeling_<package>`` (``package`` defaults
    to ``model_type``) holds ``<prefix>ForCausalLM``, ``<prefix>RMSNorm``,
    ``<prefix>MLP`` when ``liger_mlp`` is given and ``<prefix>Experts`` when
    ``moe`` is set. The patch function is ``apply_liger_kernel_to_<model_type>``.

    ``liger_rope=False`` says the family's ``apply_rotary_pos_emb`` is not the
    math the Liger RoPE op computes (GLM-4 rotates interleaved pairs): its
    ``rope`` switch defaults to False, and ``rope=True`` leaves it stock with a
    warning rather than patching in something numerically different.
    ``liger_activation=False`` says the same of the gated activation of its MLPs
    and experts (DeepSeek-V4 clamps gate and up by ``swiglu_limit``): the MLP
    switch defaults to False and True leaves them stock with a warning.

    ``rotary_pos_emb`` and ``experts_gate`` replace ``apply_rotary_pos_emb``
    and ``<prefix>Experts._apply_gate`` where the family's differ from the
    usual (GPT-OSS: half-width cos/sin, the clamped gate); ``mlp_default`` is
    the default of the MLP switch.

    Where Transformers names a family otherwise: ``causal_lm_prefix`` gives the
    ``<causal_lm_prefix>ForCausalLM`` class (Llama 4's text model is
    ``Llama4ForCausalLM`` beside ``Llama4Text*`` modules); ``rope_op`` picks the
    rotary op and so the module function it replaces (:data:`ROPE_FUNCTIONS`);
    ``weightless_norm`` names a weightless RMSNorm class the ``rms_norm``
    switch replaces too, by :class:`LigerL2NormForLlama4`; ``router_logits``
    says the stock forward returns the router logits but adds no
    load-balancing loss, so the fused forward passes them on and adds none.
    ``text_model_type`` is the ``model_type`` of the family's text-only config
    where it has its own (Qwen3.5's ``qwen3_5_text``): the same patch function
    is registered for it, so a text-only model reaches it too.
    """

    model_type: str
    prefix: str
    liger_rms_norm: type[LigerRMSNorm] = LigerRMSNorm
    #: replaces the dense MLP; None: the family has none to replace
    liger_mlp: type[nn.Module] | None = None
    #: mixture of experts: the experts' forward and the causal-LM forward that keeps the router loss
    moe: bool = False
    package: str | None = None
    #: the loss the patch function installs by default: plain cross-entropy
    #: (the logits stay materialized) instead of the fused linear one
    plain_cross_entropy: bool = False
    #: the family's rotary embedding is the one the Liger RoPE op computes
    liger_rope: bool = True
    #: the gated activation of its MLPs and experts is the one the Liger SwiGLU/GEGLU op computes
    liger_activation: bool = True
    doc: str | None = None
    #: the ``rope`` switch's default where 0.8.5's differs from ``liger_rope``
    #: (Qwen3-Next: the op computes its partial rotary, but 0.8.5 left it off)
    rope_default: bool | None = None
    #: Transformers' MLP class where it is not ``<prefix>MLP`` (Gemma-4's ``Gemma4TextMLP``)
    mlp_class: str | None = None
    #: ``"module:attr"`` of the ``ForCausalLM.forward`` to install where the family's
    #: output has fields of its own (Gemma-4); default: the shared causal-LM forward
    forward: str | None = None
    #: installed as ``apply_rotary_pos_emb`` (None: :func:`liger_rotary_pos_emb`)
    rotary_pos_emb: Callable[..., Any] | None = None
    #: installed as the experts' ``_apply_gate`` (None: :func:`liger_experts_apply_gate`)
    experts_gate: Callable[..., Any] | None = None
    #: the default of the MLP switch (``swiglu``/``geglu``) of the patch function
    mlp_default: bool = True
    causal_lm_prefix: str | None = None
    rope_op: str = "rope"
    weightless_norm: str | None = None
    router_logits: bool = False
    text_model_type: str | None = None

    @property
    def module(self) -> str:
        package = self.package or self.model_type
        return f"transformers.models.{package}.modeling_{package}"

    @property
    def causal_lm(self) -> str:
        return f"{self.causal_lm_prefix or self.prefix}ForCausalLM"

    @property
    def rope_function(self) -> str:
        """The module function the ``rope`` switch replaces."""
        return ROPE_FUNCTIONS[self.rope_op][0]

    @property
    def rms_norm(self) -> str:
        return f"{self.prefix}RMSNorm"

    @property
    def mlp(self) -> str | None:
        if self.liger_mlp is None:
            return None
        return self.mlp_class or f"{self.prefix}MLP"

    @property
    def experts(self) -> str | None:
        return f"{self.prefix}Experts" if self.moe else None

    @property
    def mlp_switch(self) -> str:
        """The patch function's keyword for the MLP (its activation's name)."""
        return "geglu" if self.liger_mlp is not None and issubclass(self.liger_mlp, LigerGEGLUMLP) else "swiglu"

    @property
    def function_name(self) -> str:
        return f"apply_liger_kernel_to_{self.model_type}"

    def modeling(self) -> Any:
        _require_transformers()
        return importlib.import_module(self.module)

    def lm_forward(self) -> Callable[..., Any]:
        """The ``ForCausalLM.forward`` the fused loss installs."""
        from liger_kernel.transformers.model.causal_lm import (
            causal_lm_forward,
            moe_causal_lm_forward,
            routed_causal_lm_forward,
        )

        if self.forward is not None:
            module, attr = self.forward.split(":")
            return getattr(importlib.import_module(module), attr)
        if self.moe:
            return moe_causal_lm_forward
        return routed_causal_lm_forward if self.router_logits else causal_lm_forward


def _patch(
    family: Family,
    rope: bool,
    cross_entropy: bool,
    fused_linear_cross_entropy: bool,
    rms_norm: bool,
    mlp: bool,
    model: nn.Module | None,
) -> None:
    """What every generated patch function does (hand-written ones may call it
    for their text decoder)."""
    if cross_entropy and fused_linear_cross_entropy:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True")
    modeling = family.modeling()
    # looked up before patching: the instance conversion finds modules by their stock class
    stock_rms_norm = _original(modeling, family.rms_norm)
    stock_mlp = _original(modeling, family.mlp) if family.mlp else None
    stock_weightless = _original(modeling, family.weightless_norm) if family.weightless_norm else None

    if rope and not family.liger_rope:
        logger.warning(
            "%s: its rotary embedding is not the one the Liger RoPE op computes; rope=True is ignored and it "
            "stays stock",
            family.function_name,
        )
    elif rope:
        function_name, liger_function = ROPE_FUNCTIONS[family.rope_op]
        _replace(modeling, function_name, family.rotary_pos_emb or liger_function)
    if rms_norm:
        _replace(modeling, family.rms_norm, family.liger_rms_norm)
        if family.weightless_norm:
            _replace(modeling, family.weightless_norm, LigerL2NormForLlama4)
    if mlp and not family.liger_activation:
        logger.warning(
            "%s: its MLPs' gated activation is not the one the Liger %s op computes; %s=True is ignored and "
            "they stay stock",
            family.function_name,
            family.mlp_switch.upper(),
            family.mlp_switch,
        )
        mlp = False
    if mlp:
        _patch_mlp(family, modeling)
    _patch_loss(family, modeling, cross_entropy, fused_linear_cross_entropy)

    # The forward and the loss are class attributes that every existing
    # instance (and subclass) already sees; only modules need converting.
    if model is None:
        return
    if rms_norm:
        _convert_rms_norms(model, stock_rms_norm, family.liger_rms_norm)
        if stock_weightless is not None:
            _convert_weightless_norms(model, stock_weightless, LigerL2NormForLlama4)
    if mlp and stock_mlp is not None:
        _convert_mlps(model, stock_mlp, family.liger_mlp)


def _patch_mlp(family: Family, modeling: Any) -> None:
    if family.mlp:
        _replace(modeling, family.mlp, family.liger_mlp)
    if not family.experts:
        return
    experts_cls = getattr(modeling, family.experts, None)
    if experts_cls is None:
        # Transformers releases before the fused experts modules keep one MLP per expert.
        logger.info("%s has no %s; the experts are left stock", family.module, family.experts)
        return
    if family.experts_gate is not None:
        # experts of another computation than the fused op's (GPT-OSS: biases, interleaved gate and up,
        # a clamped gate) keep their stock forward; only their gate is the family's op
        _replace(experts_cls, "_apply_gate", family.experts_gate)
        return
    _replace(experts_cls, "forward", liger_experts_forward(_original(experts_cls, "forward")))
    if getattr(_original(experts_cls, "_apply_gate"), "__name__", None) == "_default_apply_gate":
        # a layout the fused op does not compute (expert parallel, say) runs stock, with this gate
        _replace(experts_cls, "_apply_gate", liger_experts_apply_gate)


def _patch_loss(family: Family, modeling: Any, cross_entropy: bool, fused_linear_cross_entropy: bool) -> None:
    from liger_kernel.transformers.model.causal_lm import liger_causal_lm_loss

    if not (cross_entropy or fused_linear_cross_entropy):
        return  # a vision-language family's text decoder may have no ForCausalLM of its own
    causal_lm_cls = getattr(modeling, family.causal_lm)
    if fused_linear_cross_entropy:
        _replace(causal_lm_cls, "forward", family.lm_forward())
    if cross_entropy:
        _replace(causal_lm_cls, "_loss_function", staticmethod(liger_causal_lm_loss))


# -- the public patch functions ------------------------------------------------

#: model_type -> the patch function of that family
MODEL_TYPE_TO_APPLY_LIGER_FN: dict[str, Callable[..., None]] = {}
#: name -> patch function: the ``apply_liger_kernel_to_*`` names this module
#: (and ``liger_kernel.transformers``) exports
PATCH_FUNCTIONS: dict[str, Callable[..., None]] = {}

_Patcher = TypeVar("_Patcher", bound=Callable[..., None])


def patch_function(*model_types: str) -> Callable[[_Patcher], _Patcher]:
    """Register a hand-written patch function for ``model_types``.

    This is the hook for a family :class:`Family` cannot describe: a
    vision-language model (a vision tower, a multimodal RoPE, a
    ``ForConditionalGeneration`` head), a hybrid whose layers are not all
    attention blocks, a family whose classes Transformers names otherwise. Write
    the function in this module, below :data:`FAMILIES`, with explicit keyword
    parameters (frameworks read them with ``inspect.signature``) ending in
    ``model: nn.Module | None = None``; make every class-level change through
    ``_replace`` so that :func:`revert_liger_kernel_patches` undoes it, and call
    ``_patch`` with a :class:`Family` for the parts that are a plain decoder::

        @patch_function("qwen2_vl")
        def apply_liger_kernel_to_qwen2_vl(rope: bool = True, ..., model: nn.Module | None = None) -> None:
            ...

    It becomes ``liger_kernel.transformers.<name>`` and the
    ``MODEL_TYPE_TO_APPLY_LIGER_FN`` entry of each model type, exactly as a
    table row's generated function does.
    Each model type also needs its row in ``models_table.ROWS`` (the README's
    supported-models table).
    """

    def register(function: _Patcher) -> _Patcher:
        parameters = inspect.signature(function).parameters
        loose = [p.name for p in parameters.values() if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if loose or "model" not in parameters:
            raise TypeError(
                f"patch function {function.__name__} must take explicit keyword parameters ending in model=None "
                f"(frameworks read its signature); it has {'*' + ', *'.join(loose) if loose else 'no model'}"
            )
        taken = [t for t in model_types if t in MODEL_TYPE_TO_APPLY_LIGER_FN]
        if taken or function.__name__ in PATCH_FUNCTIONS:
            raise ValueError(f"patch function {function.__name__}: {taken or function.__name__} already registered")
        for model_type in model_types:
            MODEL_TYPE_TO_APPLY_LIGER_FN[model_type] = function
        PATCH_FUNCTIONS[function.__name__] = function
        globals()[function.__name__] = function
        return function

    return register


# The functions of the table's rows are written out as source and compiled, as
# dataclasses writes __init__: real parameters with defaults, so inspect.signature,
# getfullargspec, positional calls and __defaults__ all see what a hand-written
# function would give (a **kwargs function with __signature__ set would not).
_FUNCTION_SOURCE = """\
from __future__ import annotations


def {name}(
    rope: bool = {rope},
    cross_entropy: bool = {plain},
    fused_linear_cross_entropy: bool = {fused},
    rms_norm: bool = True,
    {switch}: bool = {mlp_default},
    model: nn.Module | None = None,
) -> None:
    _patch(FAMILIES[{model_type!r}], rope, cross_entropy, fused_linear_cross_entropy, rms_norm, {switch}, model)
"""


def _generate(family: Family) -> Callable[..., None]:
    name = family.function_name
    source = _FUNCTION_SOURCE.format(
        name=name,
        model_type=family.model_type,
        rope=family.liger_rope if family.rope_default is None else family.rope_default,
        plain=family.plain_cross_entropy,
        fused=not family.plain_cross_entropy,
        switch=family.mlp_switch,
        mlp_default=family.mlp_default and family.liger_activation,
    )
    filename = f"<liger_kernel.transformers family {family.model_type}>"
    function = compile_function(source, filename, name, globals())
    function.__doc__ = family.doc or f"Patch {family.prefix} (as :func:`apply_liger_kernel_to_llama`)."
    return function


#: The families patched from the table: adding one is adding a row (and its
#: tiny config to tests/transformers/tiny_models.py, its README row to
#: models_table.ROWS).
FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family(
            "llama",
            "Llama",
            liger_mlp=LigerSwiGLUMLP,
            doc="Patch Llama: RoPE, RMSNorm, SwiGLU MLP and the fused linear cross-entropy\n"
            "loss (or the plain cross-entropy loss). With ``model=``, also convert that\n"
            "model's existing modules in place.",
        ),
        Family("mistral", "Mistral", liger_mlp=LigerSwiGLUMLP),
        Family(
            "mixtral",
            "Mixtral",
            moe=True,
            doc="Patch Mixtral. ``swiglu`` covers the experts: their forward becomes the\n"
            "fused MoE op (grouped products with the SwiGLU fused, whatever\n"
            "``experts_implementation`` the config names); the fused loss keeps the\n"
            "router load-balancing loss.",
        ),
        Family("qwen2", "Qwen2", liger_mlp=LigerSwiGLUMLP),
        Family(
            "qwen3", "Qwen3", liger_mlp=LigerSwiGLUMLP, doc="Patch Qwen3; ``rms_norm`` includes the per-head q/k norms."
        ),
        Family(
            "qwen3_moe",
            "Qwen3Moe",
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            doc="Patch Qwen3-MoE: dense MLP layers and the experts (see Mixtral).",
        ),
        Family(
            "gemma",
            "Gemma",
            liger_rms_norm=LigerRMSNormForGemma,
            liger_mlp=LigerGEGLUMLP,
            doc='Patch Gemma: RMSNorm with offset 1 and "gemma" casting, GEGLU MLP.',
        ),
        Family(
            "gemma2",
            "Gemma2",
            liger_rms_norm=LigerRMSNormForGemma2,
            liger_mlp=LigerGEGLUMLP,
            doc="Patch Gemma-2; the fused loss applies ``final_logit_softcapping``.",
        ),
        Family(
            "gemma3_text",
            "Gemma3",
            package="gemma3",
            liger_rms_norm=LigerRMSNormForGemma3,  # Gemma-3 builds its q/k norms with dim=
            liger_mlp=LigerGEGLUMLP,
            doc="Patch the Gemma-3 text model (``Gemma3ForCausalLM``), q/k norms included.",
        ),
        Family(
            "phi3",
            "Phi3",
            liger_mlp=LigerPhi3SwiGLUMLP,
            doc="Patch Phi-3: fused gate_up SwiGLU MLP; RoPE handles partial rotary.",
        ),
        Family(
            "granite",
            "Granite",
            liger_mlp=LigerSwiGLUMLP,
            plain_cross_entropy=True,
            doc="Patch Granite. Cross-entropy by default; the fused loss, if chosen,\n"
            "divides by ``logits_scaling`` as the stock head does.",
        ),
        Family(
            "olmo2",
            "Olmo2",
            liger_rms_norm=LigerRMSNormForOlmo2,
            liger_mlp=LigerSwiGLUMLP,
            doc='Patch OLMo-2: post-norms and full-width q/k norms (casting "gemma").',
        ),
        Family(
            "olmo3",
            "Olmo3",
            liger_rms_norm=LigerRMSNormForOlmo2,
            liger_mlp=LigerSwiGLUMLP,
            doc="Patch OLMo-3: as OLMo-2 (post-norms, full-width q/k norms, casting\n"
            '"gemma"); its fp32 cos/sin and per-layer-type RoPE tables go to the RoPE\n'
            "op as they are.",
        ),
        Family(
            "smollm3",
            "SmolLM3",
            liger_mlp=LigerSwiGLUMLP,
            doc="Patch SmolLM3 (as Llama); its NoPE layers (``no_rope_layers``) skip the\nRoPE call, patched or not.",
        ),
        Family("ministral", "Ministral", liger_mlp=LigerSwiGLUMLP, doc="Patch Ministral (as Mistral)."),
        Family(
            "exaone4",
            "Exaone4",
            liger_rms_norm=LigerRMSNormForGlm4,
            liger_mlp=LigerSwiGLUMLP,
            doc="Patch EXAONE-4: post-norms and per-head q/k norms (Llama math, not in\n"
            "place); its full-attention layers beside sliding ones skip RoPE as stock.",
        ),
        Family(
            "hunyuan_v1_dense",
            "HunYuanDenseV1",
            liger_mlp=LigerHunyuanV1SwiGLUMLP,
            doc="Patch Hunyuan-V1 dense; ``rms_norm`` includes the per-head query/key norms\n(applied after RoPE).",
        ),
        Family(
            "glm4",
            "Glm4",
            liger_rms_norm=LigerRMSNormForGlm4,
            liger_mlp=LigerPhi3SwiGLUMLP,
            liger_rope=False,
            doc="Patch GLM-4: its four norms per layer (post-norms: Llama math, not in\n"
            "place), the fused gate_up SwiGLU MLP (:class:`LigerPhi3SwiGLUMLP`) and the\n"
            "loss. RoPE stays stock: GLM-4 rotates interleaved pairs of a partial\n"
            "rotary width, which the Liger RoPE op (rotate-half) does not compute, so\n"
            "``rope`` defaults to False and ``rope=True`` is ignored with a warning.",
        ),
        Family(
            "hunyuan_v1_moe",
            "HunYuanMoEV1",
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            doc="Patch Hunyuan-V1 MoE: RoPE, RMSNorm (the per-head query/key norms too,\n"
            "applied after RoPE), the shared MLP, the experts and the loss. Its\n"
            "stock forward adds no router loss, and neither does the patched one.",
        ),
        Family(
            "deepseek_v2",
            "DeepseekV2",
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            liger_rope=False,
            doc="Patch DeepSeek-V2: RMSNorm (the attention's q/kv latent norms too), the\n"
            "dense and shared-experts SwiGLU MLPs, the experts and the loss (its\n"
            "stock forward adds no router loss). RoPE stays stock: MLA rotates\n"
            "interleaved pairs of the rope slice (as complex numbers), which the Liger\n"
            "RoPE op (rotate-half) does not compute, so ``rope`` defaults to False and\n"
            "``rope=True`` is ignored with a warning. The router stays stock.",
        ),
        Family(
            "deepseek_v3",
            "DeepseekV3",
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            liger_rope=False,
            doc="Patch DeepSeek-V3: as DeepSeek-V2 (RMSNorm with the latent norms, dense\n"
            "and shared-experts SwiGLU MLPs, the experts, the loss; no router loss\n"
            "in its stock forward). RoPE stays stock (``rope`` defaults to False,\n"
            "``rope=True`` is ignored with a warning): with ``rope_interleave`` (its\n"
            "default) it rotates interleaved pairs, which the Liger RoPE op does not\n"
            "compute, and its rotate-half path without it is left stock too, as in\n"
            "0.8.5. The sigmoid, group-limited router stays stock.",
        ),
        Family(
            "deepseek_v4",
            "DeepseekV4",
            liger_rms_norm=LigerRMSNormForOlmo2,
            moe=True,
            liger_rope=False,
            liger_activation=False,
            doc="Patch DeepSeek-V4: its weighted RMSNorms (fp32 weights multiplied before\n"
            'the one cast back, casting "gemma") and the loss, which keeps the router\n'
            "load-balancing loss. Stock, as no Liger op computes them: RoPE (interleaved\n"
            "pairs; ``rope`` defaults to False), the shared and routed experts (gate and\n"
            "up clamped by ``swiglu_limit``; ``swiglu`` defaults to False), the\n"
            "weightless query and hyper-connection norms, the hyper-connections, the\n"
            "KV compressors and indexer, the attention sinks and the routers. ``True``\n"
            "for ``rope`` or ``swiglu`` is ignored with a warning.",
        ),
        Family(
            "qwen3_next",
            "Qwen3Next",
            liger_rms_norm=LigerRMSNormForQwen3Next,
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            rope_default=False,
            doc="Patch Qwen3-Next: its ``(1 + weight)`` norms (layer, q/k and final), the\n"
            "SwiGLU of the dense MLPs and shared experts, the experts, and the\n"
            "fused loss with the router loss. ``rope`` defaults to False as in 0.8.5;\n"
            "``rope=True`` patches its partial rotary (the op rotates the leading\n"
            "dimensions). The gated norm of the Gated-DeltaNet layers\n"
            "(``norm(x) * silu(gate)``) and the linear attention stay stock.",
        ),
        Family(
            "gemma4_text",
            "Gemma4",
            package="gemma4",
            liger_rms_norm=LigerRMSNormForGemma4,
            liger_mlp=LigerGEGLUMLPForGemma4,
            mlp_class="Gemma4TextMLP",
            liger_rope=False,
            forward="liger_kernel.transformers.model.gemma4:gemma4_causal_lm_forward",
            doc="Patch the Gemma-4 text model (``Gemma4ForCausalLM``): every Gemma4RMSNorm\n"
            "(weight-scaled, and the scale-free value and router norms), the GEGLU MLP\n"
            "and the loss (softcapped). RoPE stays stock: Gemma-4 rotates q and k in\n"
            "separate calls, one tensor each, which the Liger RoPE op's (q, k) form does\n"
            "not take; ``rope`` defaults to False and ``rope=True`` is ignored with a\n"
            "warning. The MoE block's experts (GELU gate) stay stock.",
        ),
        Family(
            "gpt_oss",
            "GptOss",
            liger_rms_norm=LigerRMSNormForGptOss,
            moe=True,
            rotary_pos_emb=liger_rotary_pos_emb_gpt_oss,
            experts_gate=liger_gpt_oss_experts_apply_gate,
            mlp_default=False,
            doc="Patch GPT-OSS: its RMSNorms (weight times the fp32 normalized x, cast\n"
            'once: casting "gemma"), RoPE on its half-width cos/sin\n'
            "(:func:`liger_rotary_pos_emb_gpt_oss`) and the fused loss, which keeps the\n"
            "router load-balancing loss. ``swiglu`` installs the clamped SwiGLU op\n"
            "(:class:`liger_kernel.ops.LigerClampedSwiGLUFunction`) as the experts'\n"
            "``_apply_gate``; it defaults to False, as in liger-kernel 0.8.5, which\n"
            "left GPT-OSS's experts stock. The experts' GEMMs, the router, and the\n"
            "attention with its sinks and sliding-window layers stay stock.",
        ),
        Family(
            "llama4_text",
            "Llama4Text",
            package="llama4",
            causal_lm_prefix="Llama4",
            liger_mlp=LigerSwiGLUMLP,
            rope_op="llama4_rope",
            weightless_norm="Llama4TextL2Norm",
            router_logits=True,
            doc="Patch the Llama 4 text model (``Llama4ForCausalLM``): its complex-form RoPE\n"
            "(``apply_rotary_emb``, by the llama4_rope op; NoPE layers skip it as stock),\n"
            "RMSNorm and the RoPE layers' q/k ``Llama4TextL2Norm`` (an RMSNorm without\n"
            "weight), the dense MLPs and the MoE layers' shared expert (``Llama4TextMLP``)\n"
            "by the SwiGLU MLP, and the loss (no load-balancing term, as stock; router\n"
            "logits passed on). The routed experts (``Llama4TextExperts``, batched\n"
            "matmuls with no gate function to replace) and the router stay stock.",
        ),
        Family(
            "falcon_h1",
            "FalconH1",
            liger_mlp=LigerFalconH1SwiGLUMLP,
            doc="Patch Falcon-H1 (hybrid: attention and a Mamba-2 mixer side by side in\n"
            "every layer): RoPE, the layer and final RMSNorms, the MLP with its\n"
            "``mlp_multipliers`` (:class:`LigerFalconH1SwiGLUMLP`) and the loss (the\n"
            "fused one applies the decoder's ``lm_head_multiplier``). The Mamba-2\n"
            "mixer stays stock, its gated RMSNorm (``FalconH1RMSNormGated``) included;\n"
            "so do the muP multipliers of embeddings, keys, attention and SSM\n"
            "inputs/outputs, which the stock decoder applies around the patched parts.",
        ),
        Family(
            "qwen3_5",
            "Qwen3_5",
            liger_rms_norm=LigerRMSNormForQwen3Next,
            liger_mlp=LigerSwiGLUMLP,
            rope_default=False,
            text_model_type="qwen3_5_text",
            doc="Patch the Qwen3.5 text decoder (hybrid: Gated-DeltaNet and gated\n"
            "full-attention layers) and ``Qwen3_5ForCausalLM`` (model types ``qwen3_5``\n"
            "and ``qwen3_5_text``): its ``(1 + weight)`` norms (layer, q/k and final),\n"
            "the SwiGLU MLP and the fused loss. ``rope`` defaults to False as in 0.8.5;\n"
            "``rope=True`` patches ``apply_rotary_pos_emb``, the partial rotate-half of\n"
            "the cos/sin its rotary embedding composes (the interleaved M-RoPE layout\n"
            "is built there, and stays stock). The Gated-DeltaNet layers' gated norm\n"
            "(``norm(x) * silu(gate)``) and linear attention stay stock.",
        ),
        Family(
            "qwen3_5_moe",
            "Qwen3_5Moe",
            liger_rms_norm=LigerRMSNormForQwen3Next,
            liger_mlp=LigerSwiGLUMLP,
            moe=True,
            rope_default=False,
            text_model_type="qwen3_5_moe_text",
            doc="Patch the Qwen3.5-MoE text decoder, in ``Qwen3_5MoeForCausalLM`` (model\n"
            "types ``qwen3_5_moe`` and ``qwen3_5_moe_text``): its ``(1 + weight)`` norms\n"
            "(layer, q/k and final), the shared experts' SwiGLU, the experts (the fused\n"
            "MoE op) and the fused loss with the router loss. ``rope`` defaults to False\n"
            "as in 0.8.5; ``rope=True`` patches its partial rotate-half\n"
            "``apply_rotary_pos_emb`` (the interleaved M-RoPE layout is composed by its\n"
            "rotary embedding, which stays stock). The Gated-DeltaNet layers' gated norm\n"
            "and linear attention, the router and the shared expert's sigmoid gate stay\n"
            "stock.",
        ),
    )
}

#: rows whose patch function is their vision-language family's (:data:`VISION_LANGUAGE`),
#: which patches the text decoder as the row says and the multimodal parts too
_TEXT_OF_VISION_LANGUAGE = ("qwen3_5", "qwen3_5_moe")

for _row in FAMILIES.values():
    if _row.model_type not in _TEXT_OF_VISION_LANGUAGE:
        patch_function(*filter(None, (_row.model_type, _row.text_model_type)))(_generate(_row))
del _row

# Hand-written patch functions (see patch_function) go here.

_MUSE_GLIMMER = "transformers.models.muse_glimmer.modeling_muse_glimmer"


def _convert_layer_norms(model: nn.Module) -> int:
    """Convert ``model``'s ``nn.LayerNorm`` modules (all affine, with bias) to
    :class:`LigerLayerNorm` in place; their weight and bias are kept."""
    from liger_kernel.transformers.layer_norm import LigerLayerNorm

    count = 0
    for module in model.modules():
        if type(module) is nn.LayerNorm:
            if module.weight is None or module.bias is None or len(module.normalized_shape) != 1:
                continue  # not the op's shape: weight and bias over the last dimension
            _adopt(module, LigerLayerNorm, module.normalized_shape[0], module.eps, bias=True)
            count += 1
    return count


def _converting_layer_norms(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` followed by the conversion of the LayerNorms it built: for a
    module that builds ``nn.LayerNorm`` itself, a name no patch can replace
    without patching every model in the process."""

    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _convert_layer_norms(self)

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    return __init__


@patch_function("muse_glimmer")
def apply_liger_kernel_to_muse_glimmer(
    rope: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    layer_norm: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch MuseGlimmer (``MuseGlimmerForConditionalGeneration``). Text decoder:
    RoPE, its ``(1 + weight)`` layer norms, the other RMSNorms (final norm, and
    the weight-free q/k, embedding and image-feature norms), the SwiGLU MLP and
    the loss (fused: ``output_multiplier`` and the softcap applied). Vision
    tower: its LayerNorms (``layer_norm``). Its 2-D rotary embedding and GELU
    MLP stay stock (neither is a Liger op's math)."""
    from liger_kernel.transformers.model.causal_lm import liger_causal_lm_loss
    from liger_kernel.transformers.rms_norm import (
        LigerRMSNormForMuseGlimmer,
        LigerRMSNormForMuseGlimmerTextCentered,
    )
    from liger_kernel.transformers.swiglu import LigerSwiGLUMLPForMuseGlimmer

    if cross_entropy and fused_linear_cross_entropy:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True")
    _require_transformers()
    modeling = importlib.import_module(_MUSE_GLIMMER)
    stock_norm = _original(modeling, "MuseGlimmerRMSNorm")
    stock_centered = _original(modeling, "MuseGlimmerTextCenteredRMSNorm")
    stock_mlp = _original(modeling, "MuseGlimmerTextMLP")

    if rope:
        _replace(modeling, "apply_rotary_pos_emb", liger_rotary_pos_emb)
    if rms_norm:
        _replace(modeling, "MuseGlimmerRMSNorm", LigerRMSNormForMuseGlimmer)
        _replace(modeling, "MuseGlimmerTextCenteredRMSNorm", LigerRMSNormForMuseGlimmerTextCentered)
    if swiglu:
        _replace(modeling, "MuseGlimmerTextMLP", LigerSwiGLUMLPForMuseGlimmer)
    vision_cls = modeling.MuseGlimmerVisionModel
    if layer_norm:
        _replace(vision_cls, "__init__", _converting_layer_norms(_original(vision_cls, "__init__")))
    head_cls = modeling.MuseGlimmerForConditionalGeneration
    if fused_linear_cross_entropy:
        from liger_kernel.transformers.model.muse_glimmer import lce_forward

        _replace(head_cls, "forward", lce_forward)
    if cross_entropy:
        _replace(head_cls, "_loss_function", staticmethod(liger_causal_lm_loss))

    if model is None:
        return
    if rms_norm:
        _convert_rms_norms(model, stock_centered, LigerRMSNormForMuseGlimmerTextCentered)
        _convert_rms_norms(model, stock_norm, LigerRMSNormForMuseGlimmer)
    if swiglu:
        _convert_mlps(model, stock_mlp, LigerSwiGLUMLPForMuseGlimmer)
    if layer_norm:
        for module in model.modules():
            if isinstance(module, modeling.MuseGlimmerVisionModel):
                _convert_layer_norms(module)


class _ActivationsWithLigerReLUSquared:
    """Transformers' ``ACT2FN`` as one modeling module sees it, except that
    ``"relu2"`` builds a :class:`LigerReLUSquared` (the same math as
    Transformers' ``ReLUSquaredActivation``). Every other name, and every other
    use of the mapping, is the stock one."""

    def __init__(self, stock: Any) -> None:
        self._stock = stock

    def __getitem__(self, name: str) -> nn.Module:
        return LigerReLUSquared() if name == "relu2" else self._stock[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stock, name)


#: Nemotron's loss patch: its causal-LM head is ``NemotronForCausalLM``
_NEMOTRON = Family("nemotron", "Nemotron")


@patch_function("nemotron")
def apply_liger_kernel_to_nemotron(
    relu_squared: bool = True,
    cross_entropy: bool = False,
    fused_linear_cross_entropy: bool = True,
    rope: bool = True,
    layer_norm: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch Nemotron: the MLP's squared ReLU (``relu2``), RoPE, the LayerNorm1P
    norms and the loss. With ``model=``, also convert that model's modules.

    ``relu_squared`` builds the MLPs' activation as :class:`LigerReLUSquared`
    (where ``config.hidden_act`` is "relu2"; another activation stays stock).
    ``rope``: Nemotron rotates the leading ``partial_rotary_factor`` share of
    each head (rotate-half), which :func:`liger_rotary_pos_emb` computes
    exactly, passing the rest through. ``layer_norm``: ``NemotronLayerNorm1P``
    (LayerNorm with scale ``weight + 1``) becomes
    :class:`~liger_kernel.transformers.layer_norm.LigerLayerNormForNemotron`,
    the LayerNorm op with that scale. 0.8.5 patched neither RoPE nor the norms.

    Unlike 0.8.5's ``(relu_squared, cross_entropy, fused_linear_cross_entropy,
    model, **kwargs)``, the switches are explicit keyword parameters ending in
    ``model`` (frameworks pass on only what the signature shows): an unknown
    keyword raises TypeError here instead of being ignored.
    """
    if cross_entropy and fused_linear_cross_entropy:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True")
    from transformers.activations import ReLUSquaredActivation

    from liger_kernel.transformers.layer_norm import LigerLayerNormForNemotron

    modeling = _NEMOTRON.modeling()
    stock_norm = _original(modeling, "NemotronLayerNorm1P")
    stock_mlp = _original(modeling, "NemotronMLP")
    if relu_squared:
        _replace(modeling, "ACT2FN", _ActivationsWithLigerReLUSquared(_original(modeling, "ACT2FN")))
    if rope:
        _replace(modeling, "apply_rotary_pos_emb", liger_rotary_pos_emb)
    if layer_norm:
        _replace(modeling, "NemotronLayerNorm1P", LigerLayerNormForNemotron)
    _patch_loss(_NEMOTRON, modeling, cross_entropy, fused_linear_cross_entropy)

    if model is None:
        return
    for module in model.modules():
        if relu_squared and type(module) is stock_mlp and type(module.act_fn) is ReLUSquaredActivation:
            module.act_fn = LigerReLUSquared()
        if layer_norm and type(module) is stock_norm:
            _adopt(module, LigerLayerNormForNemotron, module.normalized_shape, module.eps, bias=module.bias is not None)


# -- vision-language families ----------------------------------------------------


@dataclass(frozen=True)
class VisionLanguageFamily:
    """One row of :data:`VISION_LANGUAGE`: a vision-language family, whose
    patch function ``apply_liger_kernel_to_<name>`` is generated from the row.

    Transformers' names follow from ``package`` and ``prefix``: the module
    ``transformers.models.<package>.modeling_<package>`` holds
    ``<prefix>ForConditionalGeneration`` (whose ``forward``, the fused linear
    cross-entropy on the text head, is ``forward``: ``"module:attr"``) and
    ``<prefix>Model`` (the vision tower, projector and language model).

    The language model takes the patch of ``text``: a :class:`Family`
    describing the decoder classes of this module (Qwen2-VL's), the key of a
    :data:`FAMILIES` row (Gemma 3's text model is ``gemma3_text``'s), or None
    where the language model is built from ``text_config`` by ``AutoModel``
    (LLaVA, PaliGemma, InternVL, SmolVLM): the patch function of
    ``text_config.model_type`` then converts it when a model is built or given.

    The vision side (every child of ``<prefix>Model`` but the language model)
    is converted when a model is built (``<prefix>Model.__init__``) or given
    (``model=``): ``layer_norm`` its ``nn.LayerNorm`` modules (with weight and
    bias) to the LayerNorm op; ``rms_norm`` the ``vision_rms_norms`` classes
    (Llama-math RMSNorms that are not the text decoder's class) to the RMSNorm
    op; the MLP switch (``swiglu``) the ``vision_mlps`` classes (gate, up and
    down projections, any biases, SiLU) to the SwiGLU MLP. ``rope`` replaces
    the tower's module-level rotary function where the module has one
    (:data:`VISION_ROPE_FUNCTIONS`: the Qwen-VL/GLM-4V towers'
    ``apply_rotary_pos_emb_vision``, Llama 4's ``vision_apply_rotary_emb``);
    where the text decoder's RoPE is not the op's, ``rope=True`` patches the
    tower's alone, with a warning. Everything else of the tower stays stock.

    ``signature`` is the patch function's parameter list, 0.8.5's order and
    defaults (extra switches of this project after them, with defaults);
    ``model_types`` are the ``config.model_type`` values it is registered for.
    """

    name: str
    model_types: tuple[str, ...]
    package: str
    prefix: str
    signature: str
    forward: str
    text: Family | str | None = None
    vision_rms_norms: tuple[str, ...] = ()
    vision_mlps: tuple[str, ...] = ()
    #: the attribute of ``<prefix>Model`` that holds the language model
    language_model: str = "language_model"
    #: the class holding the vision side where it is not ``<prefix>Model`` (Llama 4's head holds it)
    multimodal_model: str | None = None
    doc: str = ""

    @property
    def module(self) -> str:
        return f"transformers.models.{self.package}.modeling_{self.package}"

    @property
    def function_name(self) -> str:
        return f"apply_liger_kernel_to_{self.name}"

    @property
    def text_family(self) -> Family | None:
        return FAMILIES[self.text] if isinstance(self.text, str) else self.text

    def switches(self) -> list[tuple[str, str]]:
        """``(name, default)`` of the patch function's parameters, ``model`` included."""
        return [tuple(part.split("=")) for part in self.signature.split(", ")]  # type: ignore[misc]


#: the keyword switches a text family's patch function may take
_TEXT_SWITCHES = ("rope", "rms_norm", "swiglu", "geglu")


def _convert_vision_mlps(module: nn.Module, stock_cls: type) -> int:
    """Convert ``module``'s ``stock_cls`` MLPs whose activation is SiLU to
    :class:`LigerSwiGLUMLP` in place (their projections, biases included, are kept)."""
    import types

    count = 0
    for mlp in module.modules():
        if type(mlp) is not stock_cls:
            continue
        if type(getattr(mlp, "act_fn", None)).__name__ not in ("SiLU", "SiLUActivation"):
            continue  # another activation: not the SwiGLU op's math
        sizes = types.SimpleNamespace(
            hidden_act="silu", hidden_size=mlp.gate_proj.in_features, intermediate_size=mlp.gate_proj.out_features
        )
        _adopt(mlp, LigerSwiGLUMLP, sizes)
        count += 1
    return count


def _convert_multimodal_model(spec: VisionLanguageFamily, modeling: Any, multimodal: nn.Module, switches: dict) -> None:
    """Convert one ``<prefix>Model``: the language model where it is not this
    module's (``spec.text`` None), and the vision side (:class:`VisionLanguageFamily`)."""
    language_model = getattr(multimodal, spec.language_model, None)
    config = multimodal.config
    if spec.text is None and language_model is not None:
        text_type = config.get_text_config().model_type
        text_fn = MODEL_TYPE_TO_APPLY_LIGER_FN.get(text_type)
        if text_fn is None:
            logger.warning(
                "%s: its language model (%r) has no Liger patch; it stays stock", spec.function_name, text_type
            )
        else:
            text_switches = {name: switches[name] for name in _TEXT_SWITCHES if name in switches}
            text_switches.update(cross_entropy=False, fused_linear_cross_entropy=False)  # the head is this model's
            text_fn(model=language_model, **_accepted(text_fn, text_switches))
    vision_side = [child for name, child in multimodal.named_children() if child is not language_model]
    vision_type = getattr(getattr(config, "vision_config", None), "model_type", None)
    vision_fn = MODEL_TYPE_TO_APPLY_LIGER_FN.get(vision_type)
    for child in vision_side:
        if vision_fn is not None and getattr(getattr(child, "config", None), "model_type", None) == vision_type:
            # a tower with a patch of its own (Pixtral's)
            vision_fn(model=child, **_accepted(vision_fn, {n: switches[n] for n in _TEXT_SWITCHES if n in switches}))
        if switches.get("layer_norm"):
            _convert_layer_norms(child)
        if switches.get("rms_norm"):
            for name in spec.vision_rms_norms:
                _convert_rms_norms(child, _original(modeling, name), LigerRMSNorm)
        if switches.get("swiglu"):
            for name in spec.vision_mlps:
                _convert_vision_mlps(child, _original(modeling, name))


def _converting_multimodal(spec: VisionLanguageFamily, modeling: Any, init: Callable[..., None], switches: dict):
    """``init`` of ``<prefix>Model`` followed by :func:`_convert_multimodal_model`."""

    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _convert_multimodal_model(spec, modeling, self, switches)

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    return __init__


def _patch_vision_language(spec: VisionLanguageFamily, switches: dict[str, bool], model: nn.Module | None) -> None:
    """What every generated vision-language patch function does."""
    from liger_kernel.transformers.model.causal_lm import liger_causal_lm_loss

    cross_entropy = switches.get("cross_entropy", False)
    fused = switches.get("fused_linear_cross_entropy", False)
    if cross_entropy and fused:
        raise ValueError("cross_entropy and fused_linear_cross_entropy cannot both be True")
    _require_transformers()
    modeling = importlib.import_module(spec.module)
    rope = switches.get("rope", False)
    vision_rope = [name for name in VISION_ROPE_FUNCTIONS if callable(getattr(modeling, name, None))]
    if rope:
        for name in vision_rope:
            _replace(modeling, name, VISION_ROPE_FUNCTIONS[name])
    text = spec.text_family
    if text is not None:
        # the text decoder's own causal-LM head (Mllama's, Gemma 3's text model) takes the loss too
        own_head = hasattr(modeling, text.causal_lm)
        if rope and vision_rope and not text.liger_rope:
            logger.warning(
                "%s: rope=True patches the vision tower's rotary embedding; the text decoder's is not the one "
                "the Liger RoPE op computes and stays stock",
                spec.function_name,
            )
            rope = False
        if rope and text.liger_rope and hasattr(modeling, "apply_multimodal_rotary_pos_emb"):
            # Transformers 4.x: the attention applies M-RoPE itself (5.x composes it in the rotary embedding)
            from liger_kernel.transformers.qwen2vl_mrope import liger_multimodal_rotary_pos_emb

            _replace(modeling, "apply_multimodal_rotary_pos_emb", liger_multimodal_rotary_pos_emb)
        _patch(
            text,
            rope,
            cross_entropy and own_head,
            fused and own_head,
            switches.get("rms_norm", False),
            switches.get(text.mlp_switch, False),
            model,
        )
    multimodal_cls = getattr(modeling, spec.multimodal_model or f"{spec.prefix}Model", None)
    if multimodal_cls is not None:
        _replace(
            multimodal_cls,
            "__init__",
            _converting_multimodal(spec, modeling, _original(multimodal_cls, "__init__"), switches),
        )
    head_cls = getattr(modeling, f"{spec.prefix}ForConditionalGeneration")
    if fused:
        module, attr = spec.forward.split(":")
        _replace(head_cls, "forward", getattr(importlib.import_module(module), attr))
    if cross_entropy:
        _replace(head_cls, "_loss_function", staticmethod(liger_causal_lm_loss))

    if model is None or multimodal_cls is None:
        return
    for module in list(model.modules()):
        if isinstance(module, multimodal_cls):
            _convert_multimodal_model(spec, modeling, module, switches)


_VLM_FUNCTION_SOURCE = """\
from __future__ import annotations


def {name}({parameters}) -> None:
    _patch_vision_language(VISION_LANGUAGE[{key!r}], {{{switches}}}, model)
"""


def _generate_vision_language(spec: VisionLanguageFamily) -> Callable[..., None]:
    parameters = spec.switches()
    source = _VLM_FUNCTION_SOURCE.format(
        name=spec.function_name,
        key=spec.name,
        parameters=", ".join(
            f"{name}: nn.Module | None = None" if name == "model" else f"{name}: bool = {default}"
            for name, default in parameters
        ),
        switches=", ".join(f"{name!r}: {name}" for name, _ in parameters if name != "model"),
    )
    function = compile_function(
        source, f"<liger_kernel.transformers family {spec.name}>", spec.function_name, globals()
    )
    function.__doc__ = spec.doc
    return function


_MODEL = "liger_kernel.transformers.model"
_CE = "cross_entropy=False, fused_linear_cross_entropy=True"

#: The vision-language families: adding one is adding a row (its forward module in
#: ``liger_kernel.transformers.model``, its tiny config to tests/transformers/tiny_models.py,
#: its README row to models_table.ROWS).
VISION_LANGUAGE: dict[str, VisionLanguageFamily] = {
    spec.name: spec
    for spec in (
        VisionLanguageFamily(
            "qwen2_vl",
            ("qwen2_vl", "qwen2_vl_text"),
            "qwen2_vl",
            "Qwen2VL",
            f"rope=True, {_CE}, rms_norm=True, layer_norm=True, swiglu=True, model=None",
            forward=f"{_MODEL}.qwen2_vl:lce_forward",
            text=Family("qwen2_vl", "Qwen2VL", liger_mlp=LigerSwiGLUMLP, mlp_class="Qwen2MLP"),
            doc="Patch Qwen2-VL. Text decoder: RoPE (the cos/sin its M-RoPE embedding composes),\n"
            "RMSNorm, SwiGLU MLP; the loss of ``Qwen2VLForConditionalGeneration`` (fused).\n"
            "Vision tower: its LayerNorms (``layer_norm``), its 2-D rotary embedding (``rope``,\n"
            "the vision_rope op). Its QuickGELU MLP stays stock (no Liger op computes it).",
        ),
        VisionLanguageFamily(
            "qwen2_5_vl",
            ("qwen2_5_vl", "qwen2_5_vl_text"),
            "qwen2_5_vl",
            "Qwen2_5_VL",
            f"rope=True, {_CE}, rms_norm=True, swiglu=True, model=None",
            forward=f"{_MODEL}.qwen2_5_vl:lce_forward",
            text=Family("qwen2_5_vl", "Qwen2_5_VL", liger_mlp=LigerSwiGLUMLP, mlp_class="Qwen2MLP"),
            vision_mlps=("Qwen2_5_VLMLP",),
            doc="Patch Qwen2.5-VL. Text decoder: RoPE (on its composed M-RoPE cos/sin), RMSNorm,\n"
            "SwiGLU MLP; the fused loss of ``Qwen2_5_VLForConditionalGeneration``. Vision\n"
            "tower: its RMSNorms (the same class as the text's) and its biased SwiGLU MLPs\n"
            "(``swiglu``), its 2-D rotary embedding (``rope``, the vision_rope op).",
        ),
        VisionLanguageFamily(
            "qwen3_vl",
            ("qwen3_vl", "qwen3_vl_text"),
            "qwen3_vl",
            "Qwen3VL",
            f"rope=True, {_CE}, rms_norm=True, swiglu=False, model=None, layer_norm=True",
            forward=f"{_MODEL}.qwen3_vl:lce_forward",
            text=Family("qwen3_vl", "Qwen3VLText", liger_mlp=LigerSwiGLUMLP),
            doc="Patch Qwen3-VL. Text decoder: RoPE (on its composed interleaved M-RoPE\n"
            "cos/sin), RMSNorm (per-head q/k norms too), the SwiGLU MLP with ``swiglu=True``\n"
            "(default False, as in 0.8.5); the fused loss of\n"
            "``Qwen3VLForConditionalGeneration``. Vision tower: its LayerNorms\n"
            "(``layer_norm``, a switch 0.8.5 did not have), its 2-D rotary embedding (``rope``,\n"
            "the vision_rope op). Its GELU MLP stays stock; so does the deepstack merger's MLP.",
        ),
        VisionLanguageFamily(
            "qwen3_vl_moe",
            ("qwen3_vl_moe", "qwen3_vl_moe_text"),
            "qwen3_vl_moe",
            "Qwen3VLMoe",
            f"rope=True, {_CE}, rms_norm=True, swiglu=True, model=None, layer_norm=True",
            forward=f"{_MODEL}.qwen3_vl_moe:lce_forward",
            text=Family("qwen3_vl_moe", "Qwen3VLMoeText", liger_mlp=LigerSwiGLUMLP, moe=True),
            doc="Patch Qwen3-VL-MoE. Text decoder: RoPE, RMSNorm (q/k norms too), the dense\n"
            "SwiGLU MLPs and the experts (fused MoE op, ``swiglu``); the fused loss of\n"
            "``Qwen3VLMoeForConditionalGeneration`` with the router loss. Vision tower: its\n"
            "LayerNorms (``layer_norm``), its 2-D rotary embedding (``rope``). Its GELU MLP and\n"
            "the router stay stock.",
        ),
        VisionLanguageFamily(
            "gemma3",
            ("gemma3",),
            "gemma3",
            "Gemma3",
            f"rope=True, {_CE}, layer_norm=True, rms_norm=True, geglu=True, model=None",
            forward=f"{_MODEL}.gemma3:multimodal_forward",
            text="gemma3_text",
            doc="Patch Gemma 3 (``Gemma3ForConditionalGeneration``). Text decoder: as\n"
            "``apply_liger_kernel_to_gemma3_text`` (RoPE, offset-1 RMSNorms, GEGLU); the\n"
            "projector's soft-embedding norm (a Gemma3RMSNorm) too; the fused loss (not\n"
            "softcapped: the stock multimodal head is not). Vision tower (SigLIP): its\n"
            "LayerNorms (``layer_norm``). Its GELU MLP stays stock.",
        ),
        VisionLanguageFamily(
            "gemma4",
            ("gemma4",),
            "gemma4",
            "Gemma4",
            f"rope=False, {_CE}, layer_norm=False, rms_norm=True, geglu=True, model=None",
            forward=f"{_MODEL}.gemma4:multimodal_forward",
            text="gemma4_text",
            doc="Patch Gemma 4 (``Gemma4ForConditionalGeneration``). Text decoder: as\n"
            "``apply_liger_kernel_to_gemma4_text`` (RMSNorms, GEGLU; RoPE stays stock, its\n"
            "one-tensor form is not the op's); the vision and audio towers' Gemma4RMSNorms\n"
            "(the same class); the fused loss (softcapped). ``layer_norm`` (default False,\n"
            "as in 0.8.5) converts the towers' LayerNorms with weight and bias. The vision\n"
            "MLP, the multi-dimensional vision RoPE and the audio blocks stay stock.",
        ),
        VisionLanguageFamily(
            "paligemma",
            ("paligemma",),
            "paligemma",
            "PaliGemma",
            f"rope=True, {_CE}, layer_norm=True, rms_norm=True, geglu=True, model=None",
            forward=f"{_MODEL}.paligemma:lce_forward",
            doc="Patch PaliGemma. The language model (built from ``text_config``: Gemma,\n"
            "Gemma 2) takes its own family's patch (``rope``, ``rms_norm``, ``geglu``) when the\n"
            "model is built or given; the loss of ``PaliGemmaForConditionalGeneration`` is\n"
            "fused (softcapped where the text config says). Vision tower (SigLIP): its\n"
            "LayerNorms (``layer_norm``); its GELU MLP stays stock.",
        ),
        VisionLanguageFamily(
            "llava",
            ("llava",),
            "llava",
            "Llava",
            f"{_CE}, rope=True, rms_norm=True, swiglu=True, geglu=True, layer_norm=True, model=None",
            forward=f"{_MODEL}.llava:lce_forward",
            doc="Patch LLaVA. The language model (built from ``text_config``) takes its own\n"
            "family's patch (``rope``, ``rms_norm``, ``swiglu``/``geglu``) when the model is\n"
            "built or given; the loss of ``LlavaForConditionalGeneration`` is fused. Vision\n"
            "tower: its LayerNorms (``layer_norm``; CLIP's, SigLIP's), or its own patch\n"
            "where it has one (Pixtral). The tower's GELU MLPs stay stock. Unlike 0.8.5's\n"
            "``(cross_entropy, fused_linear_cross_entropy, model, **kwargs)``, the switches\n"
            "are explicit keyword parameters ending in ``model``.",
        ),
        VisionLanguageFamily(
            "internvl",
            ("internvl",),
            "internvl",
            "InternVL",
            f"{_CE}, rms_norm=True, layer_norm=True, rope=True, swiglu=True, geglu=True, model=None",
            forward=f"{_MODEL}.internvl:lce_forward",
            vision_rms_norms=("InternVLVisionRMSNorm",),
            doc="Patch InternVL. The language model (built from ``text_config``) takes its own\n"
            "family's patch when the model is built or given; the loss of\n"
            "``InternVLForConditionalGeneration`` is fused. Vision tower: its RMSNorms\n"
            "(``rms_norm``) and LayerNorms (``layer_norm``; the projector's too). Its GELU\n"
            "MLP stays stock. The switches are explicit keyword parameters (0.8.5: ``**kwargs``).",
        ),
        VisionLanguageFamily(
            "smolvlm",
            ("smolvlm",),
            "smolvlm",
            "SmolVLM",
            f"{_CE}, rms_norm=True, layer_norm=True, rope=True, swiglu=True, geglu=True, model=None",
            forward=f"{_MODEL}.smolvlm:lce_forward",
            language_model="text_model",
            doc="Patch SmolVLM. The language model (built from ``text_config``, Llama) takes\n"
            "its own family's patch when the model is built or given; the loss of\n"
            "``SmolVLMForConditionalGeneration`` is fused. Vision tower: its LayerNorms\n"
            "(``layer_norm``); its GELU MLP and the connector stay stock. The switches are\n"
            "explicit keyword parameters (0.8.5: ``**kwargs``).",
        ),
        VisionLanguageFamily(
            "mllama",
            ("mllama", "mllama_text_model"),
            "mllama",
            "Mllama",
            f"rope=True, {_CE}, layer_norm=True, rms_norm=True, swiglu=True, model=None",
            forward=f"{_MODEL}.mllama:lce_forward",
            text=Family("mllama", "MllamaText", causal_lm_prefix="Mllama", liger_mlp=LigerSwiGLUMLP),
            doc="Patch Mllama (Llama 3.2 Vision). Text decoder (self- and cross-attention\n"
            "layers): RoPE, RMSNorm (the cross-attention q/k norms too), SwiGLU MLP; the\n"
            "fused loss of ``MllamaForConditionalGeneration`` and of the text-only\n"
            "``MllamaForCausalLM``. Vision tower: its LayerNorms (``layer_norm``); its GELU\n"
            "MLP and gated positional embeddings stay stock.",
        ),
        VisionLanguageFamily(
            "glm4v",
            ("glm4v",),
            "glm4v",
            "Glm4v",
            f"rope=False, {_CE}, rms_norm=True, swiglu=True, model=None",
            forward=f"{_MODEL}.glm4v:lce_forward",
            text=Family(
                "glm4v",
                "Glm4v",
                liger_rms_norm=LigerRMSNormForGlm4,
                liger_mlp=LigerPhi3SwiGLUMLP,
                mlp_class="Glm4vTextMLP",
                liger_rope=False,
            ),
            vision_mlps=("Glm4VisionMlp",),
            doc="Patch GLM-4V. Text decoder: its RMSNorms (four per layer; the vision tower's\n"
            "are the same class), the fused gate_up SwiGLU MLP; the fused loss of\n"
            "``Glm4vForConditionalGeneration``. Vision tower: its SwiGLU MLPs (``swiglu``).\n"
            "The text RoPE stays stock (GLM rotates interleaved pairs); ``rope=True`` (default\n"
            "False, as in 0.8.5) patches the vision tower's 2-D rotary embedding. The patch\n"
            "merger stays stock.",
        ),
        VisionLanguageFamily(
            "glm4v_moe",
            ("glm4v_moe",),
            "glm4v_moe",
            "Glm4vMoe",
            f"rope=False, {_CE}, rms_norm=True, swiglu=True, model=None",
            forward=f"{_MODEL}.glm4v_moe:lce_forward",
            text=Family(
                "glm4v_moe",
                "Glm4vMoeText",
                liger_rms_norm=LigerRMSNormForGlm4,
                liger_mlp=LigerSwiGLUMLP,
                moe=True,
                liger_rope=False,
            ),
            vision_rms_norms=("Glm4vMoeRMSNorm",),
            vision_mlps=("Glm4vMoeisionMlp",),
            doc="Patch GLM-4V-MoE. Text decoder: RMSNorm, the dense and shared-expert SwiGLU\n"
            "MLPs, the experts (fused MoE op); the fused loss of\n"
            "``Glm4vMoeForConditionalGeneration`` with the router loss. Vision tower: its\n"
            "RMSNorms and SwiGLU MLPs. The text RoPE stays stock (interleaved pairs);\n"
            "``rope=True`` (default False) patches the vision tower's 2-D rotary embedding.\n"
            "The router and the patch merger stay stock.",
        ),
        VisionLanguageFamily(
            "llama4",
            ("llama4",),
            "llama4",
            "Llama4",
            f"rope=True, {_CE}, rms_norm=True, swiglu=True, model=None, layer_norm=True",
            forward=f"{_MODEL}.llama4:multimodal_forward",
            text="llama4_text",
            multimodal_model="Llama4ForConditionalGeneration",
            doc="Patch Llama 4 (``Llama4ForConditionalGeneration``). Text model: as\n"
            "``apply_liger_kernel_to_llama4_text`` (complex-form RoPE, RMSNorm and the q/k L2\n"
            "norm, SwiGLU MLPs, loss); the fused loss of the multimodal head too. Vision\n"
            "tower: its LayerNorms (``layer_norm``), its complex-form 2-D rotary embedding\n"
            "(``rope``, the llama4_vision_rope op). Its GELU MLPs, the pixel-shuffle MLP and\n"
            "the routed experts stay stock.",
        ),
        VisionLanguageFamily(
            "qwen3_5",
            ("qwen3_5", "qwen3_5_text"),
            "qwen3_5",
            "Qwen3_5",
            f"rope=False, {_CE}, rms_norm=True, swiglu=True, model=None, layer_norm=True",
            forward=f"{_MODEL}.qwen3_5:lce_forward_for_multimodal",
            text="qwen3_5",
            doc=FAMILIES["qwen3_5"].doc + "\n``Qwen3_5ForConditionalGeneration``: the fused loss; vision tower: its\n"
            "LayerNorms (``layer_norm``, a switch 0.8.5 did not have); with ``rope=True`` its\n"
            "2-D rotary embedding too (the vision_rope op). Its GELU MLP stays stock.",
        ),
        VisionLanguageFamily(
            "qwen3_5_moe",
            ("qwen3_5_moe", "qwen3_5_moe_text"),
            "qwen3_5_moe",
            "Qwen3_5Moe",
            f"rope=False, {_CE}, rms_norm=True, swiglu=True, model=None, layer_norm=True",
            forward=f"{_MODEL}.qwen3_5_moe:lce_forward_conditional_generation",
            text="qwen3_5_moe",
            doc=FAMILIES["qwen3_5_moe"].doc
            + "\n``Qwen3_5MoeForConditionalGeneration``: the fused loss with the router loss;\n"
            "vision tower: its LayerNorms (``layer_norm``, a switch 0.8.5 did not have); with\n"
            "``rope=True`` its 2-D rotary embedding too. Its GELU MLP stays stock.",
        ),
    )
}

for _spec in VISION_LANGUAGE.values():
    patch_function(*_spec.model_types)(_generate_vision_language(_spec))
del _spec


@patch_function("pixtral")
def apply_liger_kernel_to_pixtral(
    rope: bool = True,
    rms_norm: bool = True,
    swiglu: bool = True,
    model: nn.Module | None = None,
) -> None:
    """Patch the Pixtral vision encoder (``PixtralVisionModel``, the tower of
    Mistral's vision-language models): its RMSNorms, and its MLPs where
    ``hidden_act`` is SiLU (the SwiGLU MLP; Pixtral's default GELU MLP stays
    stock), converted when a model is built or given. Its 2-D rotary embedding
    stays stock for now, whatever ``rope`` says (the vision RoPE op will take it)."""
    _require_transformers()
    modeling = importlib.import_module("transformers.models.pixtral.modeling_pixtral")
    stock_norm = _original(modeling, "PixtralRMSNorm")
    stock_mlp = _original(modeling, "PixtralMLP")
    if rms_norm:
        _replace(modeling, "PixtralRMSNorm", LigerRMSNorm)
    vision_cls = modeling.PixtralVisionModel
    init = _original(vision_cls, "__init__")

    def convert(module: nn.Module) -> None:
        if rms_norm:
            _convert_rms_norms(module, stock_norm, LigerRMSNorm)
        if swiglu:
            _convert_vision_mlps(module, stock_mlp)

    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        convert(self)

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    _replace(vision_cls, "__init__", __init__)
    if model is not None:
        convert(model)


def _accepted(apply_fn: Callable[..., None], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(apply_fn).parameters
    accepted = {key: value for key, value in kwargs.items() if key in params}
    ignored = sorted(set(kwargs) - set(accepted))
    if ignored:
        logger.info("%s does not take %s; ignored", apply_fn.__name__, ", ".join(ignored))
    return accepted


def _apply_liger_kernel(model_type: str, **kwargs: Any) -> None:
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
