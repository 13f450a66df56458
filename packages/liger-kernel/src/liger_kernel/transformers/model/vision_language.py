"""The ``<Family>ForConditionalGeneration.forward`` of every vision-language
family, with the fused linear cross-entropy on the text head.

The vision tower, the projector and the placement of the image (video, audio)
features among the token embeddings are the stock model's (``self.model``):
every input but the loss's goes to it as the stock forward passes it. Only the
head changes: with labels (or ``shift_labels``) and ``skip_logits`` (default:
in training) the loss is the fused linear cross-entropy of the text decoder's
last hidden states against ``lm_head`` (softcapped by ``text_config.final_logit_softcapping``
where the stock head softcaps, :attr:`MultimodalHead.softcap`) and ``logits`` is None; otherwise the logits and
loss are the stock ones. The loss options of
:mod:`liger_kernel.transformers.model.causal_lm` (``use_token_scaling``,
``return_token_accuracy``, ``return_predicted_tokens``) hold here too.

A mixture-of-experts family adds ``router_aux_loss_coef * aux_loss`` (its
module's ``load_balancing_loss_func`` over the router logits) as its stock
forward does.

The output is the family's stock output class with ``token_accuracy`` and
``predicted_tokens`` added (``Liger<Family>CausalLMOutputWithPast``); every
field the stock output carries beside the loss and logits (image and video
outputs, router logits, ...) is taken from the model's outputs by name.

0.8.5's per-family forwards (``liger_kernel.transformers.model.<family>.lce_forward``
and the like) are this forward under 0.8.5's parameters, written out as source
(as :mod:`._per_family` does), so that ``inspect.signature`` and positional
calls see them.
"""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Sequence
from typing import Any

import torch

from liger_kernel.transformers._generated import compile_function
from liger_kernel.transformers.model.causal_lm import (
    CACHE_FIELD,
    _cache_kwargs,
    _extras,
    _loss_and_logits,
    _split_kwargs,
)

#: the output fields the head fills itself (the rest come from the model's outputs)
_HEAD_FIELDS = ("loss", "logits", "aux_loss", "token_accuracy", "predicted_tokens")


@dataclasses.dataclass(frozen=True)
class MultimodalHead:
    """What the forward needs to know of a family's ``ForConditionalGeneration``."""

    #: ``transformers.models.<package>.modeling_<package>``
    package: str
    #: the name of the stock output class in that module (the Liger output subclasses it)
    output: str
    #: the stock forward passes ``labels`` to the model too (Gemma 3/4 build the
    #: training attention mask of image tokens from them)
    labels_to_model: bool = False
    #: the stock forward adds the router load-balancing loss
    moe: bool = False
    #: the stock head softcaps the logits by ``text_config.final_logit_softcapping`` (PaliGemma,
    #: Gemma 4; Gemma 3's multimodal head does not, whatever its text config says)
    softcap: bool = False

    @property
    def module(self) -> str:
        return f"transformers.models.{self.package}.modeling_{self.package}"


def output_class(module: str, name: str, head: MultimodalHead) -> type:
    """``name``, a dataclass subclass of the family's stock output with the
    loss extras; defined in ``module``."""
    stock = getattr(importlib.import_module(head.module), head.output)
    cls = dataclasses.make_dataclass(
        name,
        [
            ("token_accuracy", torch.FloatTensor | None, dataclasses.field(default=None)),
            ("predicted_tokens", torch.LongTensor | None, dataclasses.field(default=None)),
        ],
        bases=(stock,),
        namespace={
            "__doc__": f"{stock.__name__} plus ``token_accuracy`` (fraction of the non-ignored next-token targets "
            "that are their logits' argmax) and ``predicted_tokens`` (that argmax, -1 where ignored); each None "
            "unless asked for."
        },
    )
    cls.__module__ = module
    return cls


def multimodal_forward(
    self: Any, head: MultimodalHead, output: type, named: dict[str, Any], kwargs: dict[str, Any]
) -> Any:
    """The forward (module docstring) on ``named`` (the named parameters) and
    ``kwargs`` (the rest)."""
    labels = named.pop("labels", None)
    logits_to_keep = named.pop("logits_to_keep", 0)
    skip_logits = named.pop("skip_logits", None)
    return_dict = named.pop("return_dict", None)
    cache = named.pop("past_key_values", None)
    if cache is None:
        cache = kwargs.pop("cache", None)
    loss_kwargs = _split_kwargs(self.model, kwargs)
    # None is every input's default in the stock model: leaving it out passes what the stock forward passes
    inputs = {name: value for name, value in {**named, **kwargs}.items() if value is not None}
    text_config = self.config.get_text_config()
    if head.labels_to_model and labels is not None:
        inputs["labels"] = labels
    if head.moe:
        inputs.setdefault("output_router_logits", text_config.output_router_logits)
    outputs = self.model(**inputs, **_cache_kwargs(cache))
    # what the stock head applies: the logits of lm_head, softcapped only where it softcaps them
    head_config = types.SimpleNamespace(
        vocab_size=text_config.vocab_size,
        final_logit_softcapping=getattr(text_config, "final_logit_softcapping", None) if head.softcap else None,
    )
    result, logits = _loss_and_logits(self, outputs, labels, logits_to_keep, skip_logits, loss_kwargs, head_config)

    aux_loss = None
    if head.moe and inputs["output_router_logits"]:
        modeling = importlib.import_module(head.module)
        aux_loss = modeling.load_balancing_loss_func(
            outputs.router_logits,
            getattr(self, "num_experts", None) or text_config.num_experts,
            getattr(self, "num_experts_per_tok", None) or text_config.num_experts_per_tok,
            named.get("attention_mask"),
        )
        if result is not None:
            result = result._replace(
                loss=result.loss + text_config.router_aux_loss_coef * aux_loss.to(result.loss.device)
            )

    fields = {field.name for field in dataclasses.fields(output)}
    values = {name: getattr(outputs, name, None) for name in fields - set(_HEAD_FIELDS)}
    values[CACHE_FIELD] = getattr(outputs, CACHE_FIELD, None)
    values.update(_extras(result), logits=logits)
    if "aux_loss" in fields:
        values["aux_loss"] = aux_loss
    result_output = output(**values)
    return result_output.to_tuple() if return_dict is False else result_output


_SOURCE = """\
def {name}(
    self,
{parameters}
    **{var_keyword},
):
    return _FORWARD(self, _HEAD, _OUTPUT, {{{named}}}, {var_keyword})
"""

_DEFAULTS = {"logits_to_keep": "0"}


def multimodal_forward_for(
    module: str,
    head: MultimodalHead,
    output: type,
    parameters: Sequence[str],
    name: str = "lce_forward",
    var_keyword: str = "kwargs",
) -> Any:
    """The forward of ``module`` (a family module of this package) under
    0.8.5's ``parameters`` (every one defaults to None, ``logits_to_keep`` to
    0; ``past_key_values`` is Transformers 5's ``cache``, either name is
    taken)."""
    if len(set(parameters)) != len(parameters) or "labels" not in parameters:
        raise ValueError(f"{module}.{name}: parameters {parameters} must be distinct and include labels")
    source = _SOURCE.format(
        name=name,
        var_keyword=var_keyword,
        parameters="".join(f"    {p}={_DEFAULTS.get(p, 'None')},\n" for p in parameters),
        named=", ".join(f"{p!r}: {p}" for p in parameters),
    )
    namespace = {"_FORWARD": multimodal_forward, "_HEAD": head, "_OUTPUT": output}
    function = compile_function(source, f"<{module}.{name}>", name, namespace)
    function.__module__ = module
    function.__doc__ = (
        f"``{head.module.rsplit('.', 1)[-1].removeprefix('modeling_')}`` ``ForConditionalGeneration.forward`` with "
        "the fused linear cross-entropy on the text head (liger-kernel 0.8.5's parameters); see\n"
        ":mod:`liger_kernel.transformers.model.vision_language`."
    )
    return function


__all__ = ["MultimodalHead", "multimodal_forward", "multimodal_forward_for", "output_class"]
