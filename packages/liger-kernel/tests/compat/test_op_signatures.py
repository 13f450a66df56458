"""The op Functions with liger-kernel 0.8.5's parameter names and per-call
options, and the module-level names of ``liger_kernel.ops.*`` offered for 0.8.5."""

from __future__ import annotations

import warnings

import pytest
import torch

from liger_kernel.backends import Capability, register_impl
from liger_kernel.backends import registry as registry_module
from liger_kernel.ops import (
    LigerCrossEntropyFunction,
    LigerDyTFunction,
    LigerFusedLinearCrossEntropyFunction,
    LigerGroupNormFunction,
    LigerJSDFunction,
    LigerKLDivLossFunction,
    LigerSoftmaxFunction,
    LigerSparsemaxFunction,
)
from liger_kernel.ops import configure as configure_module
from liger_kernel.ops.dyt import liger_dyt_bwd, liger_dyt_fwd
from liger_kernel.ops.kl_div import kldiv_forward_triton
from liger_kernel.ops.relu_squared import relu_squared_backward, relu_squared_forward

RECORDING = "acme-recording"
CALLS: list[str] = []


@pytest.fixture(autouse=True)
def forget_registrations():
    CALLS.clear()
    yield
    registry_module.unregister(RECORDING)


def _ce_args():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 7, generator=g), torch.randint(0, 7, (4,), generator=g)


def _flce_args():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 5, generator=g), torch.randn(7, 5, generator=g), torch.randint(0, 7, (4,), generator=g)


def _group_norm_args():
    g = torch.Generator().manual_seed(2)
    return torch.randn(2, 4, 3, generator=g), torch.randn(4, generator=g), torch.randn(4, generator=g)


def _jsd_args():
    g = torch.Generator().manual_seed(3)
    return torch.randn(3, 6, generator=g).log_softmax(-1), torch.randn(3, 6, generator=g).log_softmax(-1)


# (Function, positional call, 0.8.5 keywords, this project's former keywords)
RENAMES = {
    "cross_entropy": lambda: (
        LigerCrossEntropyFunction,
        {"_input": _ce_args()[0], "target": _ce_args()[1], "weight": None},
        {"_input": "input"},
    ),
    "fused_linear_cross_entropy": lambda: (
        LigerFusedLinearCrossEntropyFunction,
        dict(zip(("_input", "weight", "target"), _flce_args(), strict=True)),
        {"_input": "input"},
    ),
    "jsd": lambda: (LigerJSDFunction, dict(zip(("_input", "target"), _jsd_args(), strict=True)), {"_input": "input"}),
    "group_norm": lambda: (
        LigerGroupNormFunction,
        {
            "X": _group_norm_args()[0],
            "affine_scaling_weight": _group_norm_args()[1],
            "affine_shifting_bias": _group_norm_args()[2],
            "num_channels": 4,
            "num_groups": 2,
            "eps": 1e-6,
        },
        {"affine_scaling_weight": "weight", "affine_shifting_bias": "bias"},
    ),
    "softmax": lambda: (LigerSoftmaxFunction, {"input_": _ce_args()[0]}, {"input_": "x"}),
}


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("op", sorted(RENAMES))
def test_0_8_5_keywords_and_the_former_ones_bind_alike(op):
    function, keywords, former = RENAMES[op]()
    positional = _first(function.apply(*keywords.values()))
    torch.testing.assert_close(_first(function.apply(**keywords)), positional)
    old = {former.get(name, name): value for name, value in keywords.items()}
    torch.testing.assert_close(_first(function.apply(**old)), positional)
    new_name, old_name = next(iter(former.items()))
    with pytest.raises(TypeError, match=f"both '{new_name}' and its older name '{old_name}'"):
        function.apply(**keywords, **{old_name: keywords[new_name]})


def test_errors_name_the_0_8_5_parameter():
    x, target = _ce_args()
    with pytest.raises(ValueError, match=r"\b_input must be 2-D"):
        LigerCrossEntropyFunction.apply(x[None], target, None)
    with pytest.raises(TypeError, match=r"\binput_ has dtype int64"):
        LigerSoftmaxFunction.apply(torch.zeros(2, 3, dtype=torch.int64))
    X, w, b = _group_norm_args()
    with pytest.raises(ValueError, match=r"\baffine_scaling_weight has shape"):
        LigerGroupNormFunction.apply(X, w[:3], b, 4, 2, 1e-6)


def test_cross_entropy_weight_and_sparsemax_dim_have_no_default_as_in_0_8_5():
    x, target = _ce_args()
    with pytest.raises(TypeError, match="weight"):
        LigerCrossEntropyFunction.apply(x, target)
    with pytest.raises(TypeError, match="dim"):
        LigerSparsemaxFunction.apply(x)
    torch.testing.assert_close(LigerSparsemaxFunction.apply(x, -1).sum(-1), torch.ones(4))


class RecordingFLCE(torch.autograd.Function):
    """Stands for another implementation: records that it ran."""

    @staticmethod
    def forward(ctx, _input, weight, *rest):
        CALLS.append("flce")
        return (_input @ weight.T).logsumexp(-1).mean(), None, None, None

    @staticmethod
    def backward(ctx, *grads):
        return (None,) * 15


def _register_recording(op: str, function: type) -> None:
    # a rank far below the torch backend's, so that only a request routes to it
    register_impl(op, impl_name=RECORDING, capability=Capability(device_types=("cpu",)), preference_rank=1000)(function)


def test_ce_impl_routes_the_call_to_the_named_implementation():
    _register_recording("fused_linear_cross_entropy", RecordingFLCE)
    x, w, target = _flce_args()
    usual, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target)
    assert CALLS == []
    routed, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target, ce_impl=RECORDING)
    assert CALLS == ["flce"]
    torch.testing.assert_close(routed, (x @ w.T).logsumexp(-1).mean())
    again, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target, ce_impl="torch", ce_mode="default")
    assert CALLS == ["flce"]
    torch.testing.assert_close(again, usual)


def test_chunk_mem_const_is_checked_and_leaves_the_loss_alone():
    x, w, target = _flce_args()
    usual, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target)
    wide, *_ = LigerFusedLinearCrossEntropyFunction.apply(x, w, target, chunk_mem_const=8)
    torch.testing.assert_close(wide, usual)
    for bad, error in ((0, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="chunk_mem_const"):
            LigerFusedLinearCrossEntropyFunction.apply(x, w, target, chunk_mem_const=bad)


@pytest.mark.parametrize("mode", ["cute", "chunked"])
def test_ce_mode_other_than_the_default_is_refused(mode):
    x, w, target = _flce_args()
    with pytest.raises(ValueError, match="ce_mode"):
        LigerFusedLinearCrossEntropyFunction.apply(x, w, target, ce_mode=mode)
    with pytest.raises(TypeError, match="ce_impl"):
        LigerFusedLinearCrossEntropyFunction.apply(x, w, target, ce_impl=3)


def test_dyt_launch_functions_are_the_op_and_its_gradients():
    g = torch.Generator().manual_seed(4)
    x, gamma, beta, dy = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((3, 5), (5,), (5,), (3, 5)))
    alpha = torch.tensor([0.7], dtype=torch.float64)
    torch.testing.assert_close(liger_dyt_fwd(x, alpha, gamma, beta), gamma * torch.tanh(alpha * x) + beta)
    leaves = [t.clone().requires_grad_() for t in (x, alpha, gamma, beta)]
    (leaves[2] * torch.tanh(leaves[1] * leaves[0]) + leaves[3]).backward(dy)
    for got, leaf in zip(liger_dyt_bwd(dy, x, alpha, gamma, beta), leaves, strict=True):
        torch.testing.assert_close(got, leaf.grad)
    *grads, dbeta = liger_dyt_bwd(dy, x, alpha, gamma, None)
    assert dbeta is None and not x.requires_grad
    torch.testing.assert_close(grads[0], leaves[0].grad)
    torch.testing.assert_close(LigerDyTFunction.apply(x, alpha, gamma, beta), liger_dyt_fwd(x, alpha, gamma, beta))


def test_relu_squared_launch_functions_are_the_op_and_its_gradient():
    g = torch.Generator().manual_seed(6)
    x, dy = torch.randn(4, 9, generator=g, dtype=torch.float64), torch.randn(4, 9, generator=g, dtype=torch.float64)
    kept = x.clone()
    torch.testing.assert_close(relu_squared_forward(x), torch.relu(x) ** 2)
    torch.testing.assert_close(relu_squared_backward(x, dy), 2 * torch.relu(x) * dy)
    # the backward launch needs no graph and leaves its arguments as they were
    assert not x.requires_grad and torch.equal(x, kept)
    with pytest.raises(ValueError, match="dY"):
        relu_squared_backward(x, dy[:, :5])


def test_kldiv_forward_launch_takes_log_target_before_reduction():
    g = torch.Generator().manual_seed(5)
    y_pred = torch.randn(3, 6, generator=g).log_softmax(-1)
    y_true = torch.randn(3, 6, generator=g).log_softmax(-1)
    expected = LigerKLDivLossFunction.apply(y_pred, y_true, "sum", True, 1e-10)
    torch.testing.assert_close(kldiv_forward_triton(y_pred, y_true, True, "sum", 1e-10), expected)
    reference = torch.nn.functional.kl_div(y_pred, y_true, reduction="sum", log_target=True)
    torch.testing.assert_close(expected, reference)


def test_configure_sets_nothing_up_and_says_so():
    flsce = configure_module.FusedLinearCrossEntropyConfig(1024, 64, 512, group="tp")
    with pytest.warns(UserWarning, match="nothing was configured"):
        assert configure_module.configure(process_groups={"tp": object()}, flsce=flsce) is False
    with pytest.raises(TypeError, match="flsce"):
        configure_module.configure(flsce={"max_tokens": 1})
    with pytest.raises(ValueError, match="group 'tp' is not a key of process_groups"):
        configure_module.configure(flsce=flsce)
    with pytest.raises(ValueError, match="max_tokens"):
        configure_module.FusedLinearCrossEntropyConfig(0, 64, 512)
    with pytest.raises(TypeError, match="positional"):
        configure_module.configure({"tp": object()})  # keyword-only, as in 0.8.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        configure_module.MoEConfig(8, 64, 4, 2, 1, 8)  # building a record warns nothing
