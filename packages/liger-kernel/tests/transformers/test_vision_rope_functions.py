"""liger_rotary_pos_emb_vision and liger_llama4_vision_rotary_pos_emb against the
vision towers' stock functions (``apply_rotary_pos_emb_vision`` of every family
that has it, Llama 4's ``vision_apply_rotary_emb``), on the tables the towers'
own rotary modules make: outputs and gradients.

Tolerances: float32 and float64 within torch.testing's float32 defaults
(rtol 1.3e-6, atol 1e-5): both sides compute in fp32 (or fp64 where the Llama 4
frequencies are), with the same rounding of the inputs; bfloat16 within 1e-2,
a unit in its last place, as both round one fp32 result to it.
"""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from transformers import Llama4VisionConfig
from transformers.models.llama4 import modeling_llama4
from transformers.vision_utils import get_vision_position_ids

from liger_kernel.transformers import liger_llama4_vision_rotary_pos_emb
from liger_kernel.transformers.rope import liger_rotary_pos_emb_vision

#: family -> its vision config class; every one has apply_rotary_pos_emb_vision
QWEN_STYLE_TOWERS = {
    "qwen2_vl": "Qwen2VLVisionConfig",
    "qwen2_5_vl": "Qwen2_5_VLVisionConfig",
    "qwen3_vl": "Qwen3VLVisionConfig",
    "qwen3_vl_moe": "Qwen3VLMoeVisionConfig",
    "qwen3_5": "Qwen3_5VisionConfig",
    "qwen3_5_moe": "Qwen3_5MoeVisionConfig",
    "glm4v": "Glm4vVisionConfig",
    "glm4v_moe": "Glm4vMoeVisionConfig",
}
HIDDEN, HEADS = 64, 4
#: one image of 4 x 6 patches
GRID = torch.tensor([[1, 4, 6]])


def _tolerance(dtype: torch.dtype) -> dict:
    return {"rtol": 1e-2, "atol": 1e-2} if dtype == torch.bfloat16 else {}


def _compare(liger, stock, inputs: tuple[torch.Tensor, ...], tables: tuple, dtype: torch.dtype) -> None:
    """liger and stock on the same (query, key) leaves and tables: outputs, then gradients of one cotangent."""
    results = []
    for function in (liger, stock):
        leaves = [x.detach().clone().requires_grad_() for x in inputs]
        outputs = function(*leaves, *tables)
        gen = torch.Generator().manual_seed(1)
        cotangents = [torch.randn(o.shape, generator=gen).to(o.dtype) for o in outputs]
        torch.autograd.backward(outputs, cotangents)
        results.append([*outputs, *(leaf.grad for leaf in leaves)])
    for index, (got, want) in enumerate(zip(*results)):
        assert got.dtype == want.dtype and got.shape == want.shape, index
        torch.testing.assert_close(got, want, **_tolerance(dtype), msg=lambda m, index=index: f"result {index}: {m}")


def _tower(family: str):
    modeling = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    configuration = importlib.import_module(f"transformers.models.{family}.configuration_{family}")
    options = {"hidden_size": HIDDEN, "num_heads": HEADS, "depth": 1}
    if family == "qwen2_vl":
        options["embed_dim"] = HIDDEN
    config = getattr(configuration, QWEN_STYLE_TOWERS[family])(**options)
    (rotary_name,) = [name for name in dir(modeling) if name.endswith("VisionRotaryEmbedding")]
    return modeling, config, getattr(modeling, rotary_name)(config)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("family", sorted(QWEN_STYLE_TOWERS))
def test_qwen_style_vision_rope_matches_transformers(family, dtype):
    modeling, config, rotary = _tower(family)
    seq = int(GRID.prod())
    cos, sin = rotary(torch.zeros(seq, HIDDEN), get_vision_position_ids(GRID, config.spatial_merge_size))
    assert cos.shape == (seq, HIDDEN // HEADS) and cos.dtype == torch.float32
    torch.manual_seed(0)
    # q and k unbound from one qkv projection, as the towers' attention does
    qkv = torch.randn(seq, 3, HEADS, HIDDEN // HEADS, dtype=dtype)
    _compare(
        liger_rotary_pos_emb_vision, modeling.apply_rotary_pos_emb_vision, (qkv[:, 0], qkv[:, 1]), (cos, sin), dtype
    )


def test_qwen_style_tables_in_half_precision():
    """cos and sin given in bfloat16: both sides take them to fp32 first."""
    modeling, config, rotary = _tower("qwen2_5_vl")
    seq = int(GRID.prod())
    cos, sin = rotary(torch.zeros(seq, HIDDEN), get_vision_position_ids(GRID, config.spatial_merge_size))
    torch.manual_seed(0)
    q, k = torch.randn(2, seq, HEADS, HIDDEN // HEADS, dtype=torch.bfloat16).unbind(0)
    tables = (cos.bfloat16(), sin.bfloat16())
    _compare(liger_rotary_pos_emb_vision, modeling.apply_rotary_pos_emb_vision, (q, k), tables, torch.bfloat16)


def _llama4_frequencies(buffer_dtype: torch.dtype | None = None) -> torch.Tensor:
    """freqs_ci of a tiny Llama 4 tower (56 / 14 = 4 patches a side and the class
    token: seq 17, head_dim 16), as its rotary module keeps it, or after the
    module is cast to ``buffer_dtype`` (a real dtype keeps the real parts only)."""
    config = Llama4VisionConfig(hidden_size=HIDDEN, num_attention_heads=HEADS, image_size=56, patch_size=14)
    rotary = modeling_llama4.Llama4VisionRotaryEmbedding(config)
    if buffer_dtype is not None:
        with warnings.catch_warnings():
            # torch's complex-module and "discards the imaginary part" warnings: that is the case under test
            warnings.simplefilter("ignore", UserWarning)
            rotary = rotary.to(buffer_dtype)
        assert rotary.freqs_ci.dtype == buffer_dtype
    return rotary(torch.zeros(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize(
    "buffer_dtype",
    [None, torch.complex128, torch.bfloat16, torch.float32],
    ids=["complex64", "complex128", "bf16", "fp32"],
)
def test_llama4_vision_rope_matches_transformers(dtype, buffer_dtype):
    freqs_ci = _llama4_frequencies(buffer_dtype)
    assert freqs_ci.shape == (17, 1, HIDDEN // HEADS // 2)
    torch.manual_seed(0)
    query, key = torch.randn(2, 3, 17, HEADS, HIDDEN // HEADS, dtype=dtype).unbind(0)
    _compare(
        liger_llama4_vision_rotary_pos_emb, modeling_llama4.vision_apply_rotary_emb, (query, key), (freqs_ci,), dtype
    )


def _vision_calls() -> dict[str, tuple]:
    """name -> (function, arguments, the liger operator it must reach)."""
    torch.manual_seed(0)
    qkv = torch.randn(24, 3, HEADS, HIDDEN // HEADS)
    angles = torch.randn(24, HIDDEN // HEADS)
    query, key = torch.randn(2, 2, 17, HEADS, HIDDEN // HEADS).unbind(0)
    return {
        "qwen": (liger_rotary_pos_emb_vision, (qkv[:, 0], qkv[:, 1], angles.cos(), angles.sin()), "rope"),
        "llama4": (liger_llama4_vision_rotary_pos_emb, (query, key, _llama4_frequencies()), "llama4_rope"),
    }


@pytest.mark.parametrize("name", ["qwen", "llama4"])
def test_fullgraph_reaches_the_op_and_matches_eager(name):
    """Under torch.compile(fullgraph=True) the adapter traces to one graph
    holding its op's liger operator, with eager's outputs and gradients."""
    function, args, op = _vision_calls()[name]
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    results = []
    torch._dynamo.reset()
    for run in (function, torch.compile(function, fullgraph=True, backend=record)):
        leaves = [a.detach().clone().requires_grad_(index < 2) for index, a in enumerate(args)]
        outputs = run(*leaves)
        (outputs[0].sum() + 2 * outputs[1].sum()).backward()
        results.append([*outputs, *(leaf.grad for leaf in leaves[:2])])
    assert len(graphs) == 1, f"{len(graphs)} graphs: the adapter broke the graph"
    called = {str(node.target) for node in graphs[0].graph.nodes if node.op == "call_function"}
    assert f"liger.{op}.default" in called, sorted(called)
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
