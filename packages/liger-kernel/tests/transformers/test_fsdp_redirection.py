"""_FSDPForwardRedirection: a call routed through a wrapper's forward runs
inside the wrapper's hooks (FSDP's parameter gathering) and leaves the inner
module's forward as it was."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from liger_kernel.transformers.fsdp import _FSDPForwardRedirection


def test_a_plain_module_runs_its_hooks_around_the_call():
    module = nn.Linear(3, 2)
    events = []
    module.register_forward_pre_hook(lambda mod, args: events.append("pre"))
    module.register_forward_hook(lambda mod, args, out: events.append("post"))

    def method(x, scale):
        events.append("method")
        return x * scale

    out = _FSDPForwardRedirection()(module, method, torch.ones(2), scale=3.0)
    torch.testing.assert_close(out, torch.full((2,), 3.0))
    assert events == ["pre", "method", "post"]
    assert "forward" not in vars(module)
    torch.testing.assert_close(module(torch.zeros(3)), module.bias)  # its own forward again


def test_forward_is_restored_when_the_call_fails():
    module = nn.Linear(3, 2)

    def failing_hook(mod, args):
        raise RuntimeError("pre-forward failed")

    module.register_forward_pre_hook(failing_hook)
    with pytest.raises(RuntimeError, match="pre-forward failed"):
        _FSDPForwardRedirection()(module, lambda: None)
    assert "forward" not in vars(module)


def test_rejects_a_non_module():
    with pytest.raises(TypeError, match="nn.Module"):
        _FSDPForwardRedirection()(lambda: None, lambda: None)


@pytest.fixture
def gloo_group(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.filterwarnings("ignore:FSDP is switching to use `NO_SHARD`")
def test_an_fsdp_wrapper_runs_the_call_inside_its_forward(gloo_group):
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp._common_utils import TrainingState

    wrapped = FullyShardedDataParallel(nn.Linear(4, 3), device_id=torch.device("cpu"))
    inner = wrapped._fsdp_wrapped_module
    states = []

    def method(x):
        states.append(wrapped.training_state)
        return inner.weight.shape, x + 1

    shape, out = _FSDPForwardRedirection()(wrapped, method, torch.zeros(2))
    assert states == [TrainingState.FORWARD_BACKWARD]
    assert wrapped.training_state == TrainingState.IDLE
    assert shape == (3, 4)
    torch.testing.assert_close(out, torch.ones(2))
    assert "forward" not in vars(inner)
