"""``AutoLigerKernelForCausalLM``: ``AutoModelForCausalLM`` that patches the
model's family before building it.

``from_pretrained(name, **kwargs)`` and ``from_config(config, **kwargs)`` read
``config.model_type``, call the family's patch function at class level with the
keyword switches found in ``kwargs`` (``rope=``, ``swiglu=``, ...; they are
removed before Transformers sees the rest), then build the model as
``AutoModelForCausalLM`` does. A model type without a patch loads unchanged.
"""

from __future__ import annotations

import inspect
from typing import Any

from liger_kernel.transformers.monkey_patch import (
    MODEL_TYPE_TO_APPLY_LIGER_FN,
    _apply_liger_kernel,
    _require_transformers,
)

_require_transformers()

from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402


def _split_patch_kwargs(model_type: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    apply_fn = MODEL_TYPE_TO_APPLY_LIGER_FN.get(model_type)
    if apply_fn is None:
        return {}
    names = set(inspect.signature(apply_fn).parameters) - {"model"}
    return {name: kwargs.pop(name) for name in list(kwargs) if name in names}


class AutoLigerKernelForCausalLM(AutoModelForCausalLM):
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        config = kwargs.get("config")
        if config is None:
            config = AutoConfig.from_pretrained(
                pretrained_model_name_or_path, trust_remote_code=kwargs.get("trust_remote_code", False)
            )
        patch_kwargs = _split_patch_kwargs(config.model_type, kwargs)
        _apply_liger_kernel(config.model_type, **patch_kwargs)
        return AutoModelForCausalLM.from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Any:
        patch_kwargs = _split_patch_kwargs(config.model_type, kwargs)
        _apply_liger_kernel(config.model_type, **patch_kwargs)
        return AutoModelForCausalLM.from_config(config, **kwargs)
