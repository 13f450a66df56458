"""liger-kernel 0.8.5's module constants of liger_kernel.transformers.monkey_patch,
and _apply_liger_kernel's required model_type."""

from __future__ import annotations

import importlib.util
import inspect

import pytest
import transformers
from packaging.version import Version

from liger_kernel.transformers import monkey_patch, trainer_integration


def test_version_constants_describe_the_installed_transformers():
    assert monkey_patch.transformer_version == Version(transformers.__version__)
    assert monkey_patch.MIN_SUPPORTED_TRANSFORMERS_VERSION == Version("4.52")
    assert monkey_patch.IS_TRANSFORMERS_V5_OR_LATER is (Version(transformers.__version__).major >= 5)
    assert monkey_patch.PEFT_AVAILABLE is (importlib.util.find_spec("peft") is not None)


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'NOT_A_CONSTANT'"):
        monkey_patch.NOT_A_CONSTANT  # noqa: B018


def test_apply_liger_kernel_needs_a_model_type():
    for apply in (monkey_patch._apply_liger_kernel, trainer_integration._apply_liger_kernel):
        parameter = inspect.signature(apply).parameters["model_type"]
        assert parameter.default is inspect.Parameter.empty
    with pytest.raises(TypeError, match="model_type"):
        monkey_patch._apply_liger_kernel(rope=False)
