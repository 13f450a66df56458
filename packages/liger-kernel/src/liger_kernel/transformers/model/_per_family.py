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

import linecache
from collections.abc import Callable, Sequence
from typing import Any

import torch

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

_DEFAULTS = {"logits_to_keep": "0"}
#: 0.8.5 parameters the shared forwards take as keywords (passed on when given)
_PASSED_ON = ("output_attentions", "output_hidden_states", "return_dict", "cache_position")


def _call_shared(forward: Callable[..., Any], self: Any, named: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    cache = named.pop("past_key_values")
    if cache is None:
        cache = kwargs.pop("cache", None)
    for name in _PASSED_ON:
        value = named.pop(name)
        if value is not None:
            kwargs[name] = value
    return forward(self, cache=cache, **named, **kwargs)


_SOURCE = """\
def lce_forward(
    self,
{parameters}
    **kwargs,
):
    return _call_shared(_FORWARD, self, {{{named}}}, kwargs)
"""


def lce_forward_for(
    module: str, parameters: Sequence[str], forward: Callable[..., Any] | None = None
) -> Callable[..., Any]:
    """``lce_forward`` of the family module ``module`` with 0.8.5's
    ``parameters``: the MoE forward when they include ``output_router_logits``,
    else the dense one, unless ``forward`` names the shared forward (Llama 4's
    :func:`~liger_kernel.transformers.model.causal_lm.routed_causal_lm_forward`)."""
    moe = "output_router_logits" in parameters
    known = set(MOE if moe else DENSE)
    if set(parameters) != known or len(parameters) != len(known):
        raise ValueError(f"{module}: lce_forward parameters {parameters} are not a reordering of {sorted(known)}")
    source = _SOURCE.format(
        parameters="".join(f"    {name}={_DEFAULTS.get(name, 'None')},\n" for name in parameters),
        named=", ".join(f"{name!r}: {name}" for name in parameters),
    )
    filename = f"<{module}.lce_forward>"
    namespace: dict[str, Any] = {
        "_call_shared": _call_shared,
        "_FORWARD": forward or (moe_causal_lm_forward if moe else causal_lm_forward),
    }
    exec(compile(source, filename, "exec"), namespace)
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    function = namespace["lce_forward"]
    function.__module__ = module
    family = module.rsplit(".", 1)[-1]
    shared = forward.__name__ if forward else ("moe_causal_lm_forward" if moe else "causal_lm_forward")
    function.__doc__ = (
        f"liger-kernel 0.8.5's {family} ``lce_forward``: the ``ForCausalLM.forward`` with the fused linear\n"
        f"cross-entropy loss, which is :func:`liger_kernel.transformers.model.causal_lm.{shared}`\n"
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
