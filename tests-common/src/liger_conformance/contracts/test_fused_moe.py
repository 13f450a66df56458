"""LigerFusedMoEFunction (fused_moe, liger_kernel.ops.fused_moe) against its
float64 oracle: the routed experts' SwiGLU MLP, its four gradients, experts
without tokens, transposed weight layouts, int32 routing, and repeatability."""

from __future__ import annotations

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, run_twice_bitwise
from liger_kernel.ops import LigerFusedMoEFunction

pytestmark = pytest.mark.liger_op("fused_moe")

#: (tokens, hidden, intermediate, experts, top_k)
SHAPES = by_size(
    small=[(1, 16, 16, 1, 1), (13, 32, 24, 4, 2), (37, 48, 40, 6, 3)],
    full=[(1, 16, 16, 1, 1), (37, 48, 40, 6, 3), (777, 2048, 1408, 16, 6), (4096, 1024, 512, 32, 4)],
)
GRADS = ("x", "gate_up_proj", "down_proj", "top_k_weights")


def shape_id(shape: tuple[int, ...]) -> str:
    return "T{}-H{}-I{}-E{}-K{}".format(*shape)


def routing(tokens: int, experts: int, top_k: int, device, rng, *, idle: int | None = None, dtype=torch.int64):
    """Distinct experts per token (as a router's top-k gives), never ``idle``."""
    pool = [e for e in range(experts) if e != idle]
    picks = torch.stack([torch.randperm(len(pool), generator=rng)[:top_k] for _ in range(tokens)])
    return torch.tensor(pool)[picks].to(dtype).to(device)


def arguments(shape, dtype, device, rng, *, idle=None, index_dtype=torch.int64):
    tokens, hidden, inter, experts, top_k = shape
    # weights of a trained layer's scale, so that the products stay of order one
    return {
        "x": make((tokens, hidden), dtype, device, rng),
        "gate_up_proj": make((experts, 2 * inter, hidden), dtype, device, rng, scale=hidden**-0.5),
        "down_proj": make((experts, hidden, inter), dtype, device, rng, scale=inter**-0.5),
        "top_k_index": routing(tokens, experts, top_k, device, rng, idle=idle, dtype=index_dtype),
        "top_k_weights": make((tokens, top_k), dtype, device, rng).softmax(-1),
    }


def run(args, dtype, rng):
    return compare_with_oracle(
        LigerFusedMoEFunction.apply,
        lambda a: oracles.fused_moe(**a),
        args,
        dtype=dtype,
        rng=rng,
        grads=GRADS,
        outputs=("y",),
        # weight and routing-weight gradients sum over tokens or the hidden size
        reduced=("gate_up_proj", "down_proj", "top_k_weights"),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_forward_backward(liger_device, liger_dtype, liger_rng, shape):
    run(arguments(shape, liger_dtype, liger_device, liger_rng), liger_dtype, liger_rng)


def test_expert_without_tokens_gets_zero_gradient(liger_device, liger_dtype, liger_rng):
    args = arguments((21, 32, 24, 5, 2), liger_dtype, liger_device, liger_rng, idle=2)
    leaves = {name: args[name].detach().requires_grad_(name in GRADS) for name in args}
    out = LigerFusedMoEFunction.apply(*leaves.values())
    out.float().square().sum().backward()
    for name in ("gate_up_proj", "down_proj"):
        grad = leaves[name].grad
        assert torch.count_nonzero(grad[2]) == 0, f"{name}: the idle expert got a gradient"
        assert torch.count_nonzero(grad[1]) > 0, f"{name}: a routed expert got no gradient"


def test_transposed_weight_layout(liger_device, liger_dtype, liger_rng):
    """Weights stored (E, H, 2I) and (E, I, H), as gpt-oss and Llama 4 store
    them, passed as transposed views: same values, gradients in that layout."""
    args = arguments((19, 32, 24, 4, 2), liger_dtype, liger_device, liger_rng)
    for name in ("gate_up_proj", "down_proj"):
        args[name] = args[name].transpose(1, 2).contiguous().transpose(1, 2)
        assert not args[name].is_contiguous()
    run(args, liger_dtype, liger_rng)


def test_int32_routing(liger_device, liger_dtype, liger_rng):
    run(
        arguments((13, 32, 24, 4, 2), liger_dtype, liger_device, liger_rng, index_dtype=torch.int32),
        liger_dtype,
        liger_rng,
    )


def test_repeatable_bit_for_bit(liger_device, liger_dtype, liger_rng):
    args = arguments((45, 32, 24, 4, 2), liger_dtype, liger_device, liger_rng)

    def call():
        leaves = [value.detach().requires_grad_(name in GRADS) for name, value in args.items()]
        out = LigerFusedMoEFunction.apply(*leaves)
        out.backward(torch.ones_like(out))
        return [out] + [leaf.grad for leaf, name in zip(leaves, args) if name in GRADS]

    run_twice_bitwise(call, "fused_moe output and gradients")


def test_out_of_range_expert_is_refused_on_the_cpu(liger_device, liger_rng):
    if liger_device.type != "cpu":
        pytest.skip("expert ids are checked on the host only for CPU tensors (no synchronization elsewhere)")
    args = arguments((5, 16, 16, 3, 2), torch.float32, liger_device, liger_rng)
    args["top_k_index"][0, 0] = 3
    with pytest.raises(IndexError, match="top_k_index"):
        LigerFusedMoEFunction.apply(*args.values())


@pytest.mark.parametrize("case", bad_inputs.cases("fused_moe"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    bad_inputs.expect_refused(case, liger_device, liger_rng)
