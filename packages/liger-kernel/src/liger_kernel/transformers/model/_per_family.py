"""The per-family entry points of liger-kernel 0.8.5,
``liger_kernel.transformers.model.<family>.lce_forward`` (and
``lce_maybe_trainable_lm_head`` where 0.8.5 has it).

0.8.5 wrote one forward per family; here every dense family shares
:func:`~liger_kernel.transformers.model.causal_lm.causal_lm_forward` and every
mixture-of-experts family
:func:`~liger_kernel.transformers.model.causal_lm.moe_causal_lm_forward`. A
family module only names its ``lce_forward``, built by :func:`lce_forward_for`
with exactly 0.8.5's parameters in 0.8.5's order (they differ between
families), and calling it is calling the shared forward:

- ``past_key_values`` is the shared forward's ``cache`` (Transformers 5 renamed it);
- ``output_attentions``, ``output_hidden_states``, ``return_dict`` and
  ``cache_position`` are passed on as keywords when given, as the stock
  forward receives them (``return_dict=False`` gives a tuple);
- everything else, the loss options included, is the shared forward's own.

The functions are written out as source and compiled, as the patch functions
of :mod:`liger_kernel.transformers.monkey_patch` are, so that
``inspect.signature`` and positional calls see plain parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from liger_kernel.transformers._generated import compile_function
from liger_kernel.transformers.functional import CrossEntropyOutput
from liger_kernel.transformers.model import loss_utils
from liger_kernel.transformers.model.causal_lm import (
    causal_lm_forward,
    fusable_lm_head,
    logits_causal_lm_loss,
    moe_causal_lm_forward,
)

#: 0.8.5's lce_forward parameters (after ``self``) of most dense families
DENSE = (
    "input_ids",
    "attention_mask",
    "position_ids",
    "past_key_values",
    "inputs_embeds",
    "labels",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "cache_position",
    "logits_to_keep",
    "skip_logits",
)
#: the order of Qwen3, EXAONE-4 and Hunyuan-V1: ``return_dict`` last
DENSE_RETURN_DICT_LAST = (*(p for p in DENSE if p != "return_dict"), "return_dict")
#: Mixtral: the router-logits switch after ``output_hidden_states``
MOE = (*DENSE[:9], "output_router_logits", *DENSE[9:])
#: Qwen3-MoE: as Mixtral, ``return_dict`` last
MOE_RETURN_DICT_LAST = (*(p for p in MOE if p != "return_dict"), "return_dict")
#: GPT-OSS: as Mixtral, without ``return_dict``
MOE_NO_RETURN_DICT = tuple(p for p in MOE if p != "return_dict")

_DEFAULTS = {"logits_to_keep": "0"}
#: 0.8.5 parameters the shared forwards take as keywords (passed on when given)
_PASSED_ON = ("output_attentions", "output_hidden_states", "return_dict", "cache_position")

#: DeepSeek-V4: Mixtral's without the keywords passed on (they arrive in ``**kwargs``)
MOE_WITHOUT_PASSED_ON = tuple(p for p in MOE if p not in _PASSED_ON)


def _call_shared(
    forward: Callable[..., Any],
    self: Any,
    named: dict[str, Any],
    kwargs: dict[str, Any],
    passed_on: Sequence[str] = _PASSED_ON,
) -> Any:
    cache = named.pop("past_key_values")
    if cache is None:
        cache = kwargs.pop("cache", None)
    for name in passed_on:
        value = named.pop(name, None)
        if value is not None:
            kwargs[name] = value
    return forward(self, cache=cache, **named, **kwargs)


_SOURCE = """\
def {name}(
    self,
{parameters}
    **{var_keyword},
):
    return _call_shared(_FORWARD, self, {{{named}}}, {var_keyword}, _PASSED_ON)
"""


def lce_forward_for(
    module: str,
    parameters: Sequence[str],
    moe: bool | None = None,
    forward: Callable[..., Any] | None = None,
    name: str = "lce_forward",
    var_keyword: str = "kwargs",
    keywords: Sequence[str] = (),
) -> Callable[..., Any]:
    """``lce_forward`` of the family module ``module`` with 0.8.5's
    ``parameters``: the MoE forward when they include ``output_router_logits``
    or ``moe`` says so (0.8.5's DeepSeek-V2/V3 forwards have the dense
    parameters; the MoE forward still returns their router logits). The
    keywords passed on (``return_dict``, ...) may be left out of
    ``parameters``; they then arrive in ``**kwargs``. A family with a forward
    of its own (same parameters as the shared one) passes it as ``forward``;
    ``name`` and ``var_keyword`` are 0.8.5's names of the function and of its
    ``**`` parameter. ``keywords`` are 0.8.5 parameters the shared forward does
    not name (Qwen3.5-MoE's ``mm_token_type_ids``): passed on to it as keywords
    when given, as the stock forward passes its ``**kwargs`` to the decoder."""
    router_switch = "output_router_logits" in parameters
    if moe is None:
        moe = router_switch
    known = set(MOE if router_switch else DENSE) | set(keywords)
    named = set(parameters)
    # the keywords passed on may be absent (GPT-OSS's 0.8.5 forward has no return_dict, DeepSeek-V4's
    # none of them): the shared forward's defaults then hold
    optional = set(_PASSED_ON) | set(keywords)
    if not named <= known or not known - named <= optional or len(parameters) != len(named):
        raise ValueError(f"{module}: lce_forward parameters {parameters} are not a reordering of {sorted(known)}")
    source = _SOURCE.format(
        name=name,
        var_keyword=var_keyword,
        parameters="".join(f"    {p}={_DEFAULTS.get(p, 'None')},\n" for p in parameters),
        named=", ".join(f"{p!r}: {p}" for p in parameters),
    )
    filename = f"<{module}.{name}>"
    if forward is None:
        forward = moe_causal_lm_forward if moe else causal_lm_forward
    namespace: dict[str, Any] = {
        "_call_shared": _call_shared,
        "_FORWARD": forward,
        "_PASSED_ON": (*_PASSED_ON, *keywords),
    }
    function = compile_function(source, filename, name, namespace)
    function.__module__ = module
    family = module.rsplit(".", 1)[-1]
    function.__doc__ = (
        f"liger-kernel 0.8.5's {family} ``{name}``: the ``ForCausalLM.forward`` with the fused linear\n"
        f"cross-entropy loss, which is :func:`{forward.__module__}.{forward.__name__}`\n"
        "(``past_key_values`` is its ``cache``; see :mod:`liger_kernel.transformers.model._per_family`)."
    )
    return function


def lce_maybe_trainable_lm_head(
    self: Any,
    hidden_states: torch.Tensor,
    hidden_size: int,
    labels: torch.Tensor | None,
    shift_labels: torch.Tensor | None,
    **loss_kwargs: Any,
) -> torch.Tensor | CrossEntropyOutput:
    """The next-token loss of ``self.lm_head`` over ``hidden_states``, as
    ``loss_utils.LigerForCausalLMLoss`` returns it (the loss, or a
    :class:`CrossEntropyOutput` when an extra output is asked for).

    A plain linear head (PEFT's ``modules_to_save`` copy of one included) is
    fused: its weight and bias go to the fused linear cross-entropy and the
    logits are never formed. Any other head (a LoRA layer, a quantized linear,
    one with hooks) is called, so that it runs and trains, and the loss is the
    Liger cross-entropy of its logits (softcapped by
    ``final_logit_softcapping`` when given)."""
    head = fusable_lm_head(self.lm_head)
    if head is not None:
        return loss_utils.LigerForCausalLMLoss(
            hidden_states=hidden_states,
            lm_head_weight=head.weight,
            labels=labels,
            hidden_size=hidden_size,
            shift_labels=shift_labels,
            bias=head.bias,
            **loss_kwargs,
        )
    logits = self.lm_head(hidden_states.reshape(-1, hidden_size))
    softcap = loss_kwargs.get("final_logit_softcapping")
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    extras = {
        name: bool(loss_kwargs.get(name, False))
        for name in ("use_token_scaling", "return_token_accuracy", "return_predicted_tokens")
    }
    result = logits_causal_lm_loss(
        logits,
        labels=labels,
        shift_labels=shift_labels,
        num_items_in_batch=loss_kwargs.get("num_items_in_batch"),
        ignore_index=loss_kwargs.get("ignore_index", -100),
        **extras,
    )
    if extras["return_token_accuracy"] or extras["return_predicted_tokens"]:
        return CrossEntropyOutput(result.loss, None, result.token_accuracy, result.predicted_tokens)
    return result.loss
