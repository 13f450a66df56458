"""liger_kernel.ops._library: the operator schemas and the state a forward
leaves for its backward. The operators' behaviour on each backend (opcheck,
same results as eager, nothing written, nothing leaked) is the conformance
suite's ``contracts/test_operators.py``."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import torch

from liger_kernel.ops import OPS, LigerFusedLinearCrossEntropyFunction, LigerRMSNormFunction, _library
from liger_kernel.ops._contract import DispatchedFunction

#: op -> its forward operator's arguments (the backward operator's are the same for
#: every op), as the closure-built operators registered them (recorded from that code)
EXPECTED_FORWARD_ARGUMENTS = {
    "rms_norm": "Tensor X, Tensor? W, float eps, float offset, str casting_mode, bool in_place",
    "fused_add_rms_norm": "Tensor X, Tensor R, Tensor W, float eps, float offset, str casting_mode, bool in_place",
    "layer_norm": "Tensor X, Tensor W, Tensor? B, float eps",
    "group_norm": "Tensor X, Tensor affine_scaling_weight, Tensor? affine_shifting_bias, int num_channels, int num_groups, float eps",
    "poly_norm": "Tensor X, Tensor W, Tensor B, float eps, bool in_place",
    "rope": "Tensor q, Tensor k, Tensor cos, Tensor sin, Tensor? position_ids, int unsqueeze_dim, int? rotary_dim",
    "qwen2vl_mrope": "Tensor q, Tensor k, Tensor cos, Tensor sin, int[] mrope_section, int unsqueeze_dim",
    "swiglu": "Tensor a, Tensor b, float gate_multiplier, float down_multiplier",
    "geglu": "Tensor a, Tensor b",
    "cross_entropy": "Tensor _input, Tensor target, Tensor? weight, int ignore_index, float lse_square_scale, "
    "float label_smoothing, str reduction, float? softcap, bool return_z_loss, bool return_token_accuracy, "
    "bool return_predicted_tokens",
    "fused_linear_cross_entropy": "Tensor _input, Tensor weight, Tensor target, Tensor? bias, Tensor? ce_weight, "
    "int ignore_index, float lse_square_scale, float label_smoothing, str reduction, float? softcap, "
    "bool return_z_loss, str? accum_dtype, bool use_token_scaling, bool return_token_accuracy, "
    "bool return_predicted_tokens",
    "jsd": "Tensor _input, Tensor target, Tensor? shift_labels, float beta, int ignore_index",
    "fused_linear_jsd": "Tensor student_input, Tensor student_weight, Tensor teacher_input, Tensor teacher_weight, "
    "Tensor? shift_labels, float jsd_beta, int ignore_index, float temperature, str? accum_dtype",
    "kl_div": "Tensor y_pred, Tensor y_true, str reduction, bool log_target, float eps",
    "tvd": "Tensor p, Tensor q, Tensor? shift_labels, str reduction, int ignore_index",
    "softmax": "Tensor input_",
    "sparsemax": "Tensor x, int dim",
    "multi_token_attention": "Tensor scores, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
    "int[] dilation, int groups, bool sparse",
    "dyt": "Tensor x, Tensor alpha, Tensor gamma, Tensor? beta",
    "fused_moe": "Tensor x, Tensor gate_up_proj, Tensor down_proj, Tensor top_k_index, Tensor top_k_weights",
    "relu_squared": "Tensor X",
    "modulated_rms_norm": "Tensor X, Tensor? W, Tensor scale, Tensor? shift, float eps, float offset, str casting_mode, bool in_place",
    "clamped_swiglu": "Tensor x, float alpha, float limit",
    "llama4_rope": "Tensor q, Tensor k, Tensor freqs_cis",
    "selective_log_softmax": "Tensor logits, Tensor input_ids, float temperature, Tensor? mask",
    "grpo_loss": "Tensor logits, Tensor? old_logp, Tensor? ref_logp, Tensor completion_ids, Tensor advantages, "
    "Tensor? completion_mask, float temperature, float beta, float eps_low, float eps_high, bool inplace, "
    "str loss_type, str importance_sampling_level, float sapo_temperature_pos, float sapo_temperature_neg, "
    "Tensor? vllm_is_ratio, float? delta, bool use_bias_correction_kl, Tensor? phi_seq",
    "embedding": "Tensor embeddings, Tensor indices, int? padding_idx",
    "fused_linear_kl_div": "Tensor student_input, Tensor student_weight, Tensor target, Tensor? shift_labels, "
    "str reduction, int ignore_index, float temperature, float eps, str? accum_dtype",
    "fused_ce_tvd": "Tensor student_logits, Tensor teacher_logits, Tensor target, int ignore_index",
    # the process group (tp_group) is not an operator argument: sharded calls stay off the operator route
    "vocab_parallel_cross_entropy": "Tensor vocab_parallel_logits, Tensor target, int ignore_index, "
    "float label_smoothing, str label_smoothing_formula, str label_smoothing_mode",
    # m_tiles_per_cluster, a kernel hint, is not an operator argument
    "fused_linear_scaled_cross_entropy": "Tensor _input, Tensor weight, Tensor target, float temperature, "
    "int ignore_index, bool return_entropy, Tensor? selected_token_ids",
    "mhc_coeffs": "Tensor x, Tensor phi, Tensor b, Tensor alpha_pre, Tensor alpha_post, Tensor alpha_res, "
    "bool allow_fp32, int tmax, float rms_eps, float pre_eps, float sinkhorn_eps, float post_mult",
    "mhc_pre": "Tensor x, Tensor h_pre",
    "mhc_post_res": "Tensor x, Tensor f_out, Tensor h_post, Tensor h_res",
    "attn_res": "Tensor V_stacked, Tensor w_query, Tensor w_norm, float eps",
}
BACKWARD_ARGUMENTS = (
    "Tensor handle, Tensor[] grads, bool[] has_grad, Tensor[] sources, bool[] has_source, "
    "bool[] needs_input_grad, SymInt[] sizes, int[] ranks, int[] dtypes"
)


@pytest.mark.parametrize("op", sorted(OPS))
def test_registered_schemas(op):
    assert set(EXPECTED_FORWARD_ARGUMENTS) == set(OPS)
    forward = getattr(torch.ops.liger, op).default._schema
    backward = getattr(torch.ops.liger, f"{op}_backward").default._schema
    assert str(forward) == f"liger::{op}({EXPECTED_FORWARD_ARGUMENTS[op]}, bool[] needs_input_grad) -> Tensor[]"
    assert str(backward) == f"liger::{op}_backward({BACKWARD_ARGUMENTS}) -> Tensor[]"


def test_arguments_cross_the_operator_and_back():
    schema = _library.operator(LigerFusedLinearCrossEntropyFunction).schema
    x, w = torch.randn(4, 8, requires_grad=True), torch.randn(16, 8)
    target = torch.tensor([1, 2, 3, 4])
    args = (x, w, target, None, None, -100, 0.0, 0.0, "mean", None, False, torch.bfloat16)
    values = schema.operator_values(args)
    # dtypes by name; the defaults of the arguments apply left out; which tensors need a gradient
    assert values[11] == "bfloat16"
    needs = values[-1]
    assert needs[:3] == [True, False, False] and not any(needs[3:])
    back = schema.backend_args(values)
    assert back[11] is torch.bfloat16
    assert back[:3] == (x, w, target) and back[12:] == (False, False, False)


def test_in_place_is_turned_off_and_untaken_arguments_get_their_default():
    schema = _library.operator(LigerRMSNormFunction).schema
    x, w = torch.randn(2, 4), torch.ones(4)
    values = schema.operator_values((x, w, 1e-6, 0.0, "llama", True, "a row hint"))
    assert len(values) == 7  # six taken arguments (row_mode is not one), then needs_input_grad
    assert schema.backend_args(values)[5:] == (False, None)


def test_a_check_annotation_without_a_schema_type_is_refused():
    class Odd(DispatchedFunction):
        op = "odd"

        @staticmethod
        def check(x: torch.Tensor, table: dict) -> None:
            pass

    with pytest.raises(TypeError, match=r"Odd.check: argument 'table' has annotation 'dict' with no schema type"):
        _library.Schema(Odd)


class _Reads(DispatchedFunction):
    op = "reads"
    backward_reads = ("X",)


def _backend_forward() -> None:
    """Stands in for a backend Function in error messages."""


def test_saved_views_of_a_source_are_rebuilt_over_the_tensor_the_backward_gets():
    X = torch.arange(12.0).reshape(3, 4)
    own = torch.ones(3)  # the backend's own tensor (an rstd): kept as it is
    recipe = _library._Recipe((X[1:], own, X.t()), (X,), (X,), (), _backend_forward)
    X_again = torch.arange(12.0).reshape(3, 4) * 10  # a compiler's recomputed copy, new storage
    rows, kept, transposed = recipe.rebuild((X_again,), _Reads)
    assert kept is own
    assert torch.equal(rows, X_again[1:]) and rows.untyped_storage().data_ptr() == X_again.untyped_storage().data_ptr()
    assert torch.equal(transposed, X_again.t()) and transposed.stride() == (1, 4)


def test_a_source_returning_with_other_strides_is_an_error():
    X = torch.randn(3, 4)
    recipe = _library._Recipe((X,), (X,), (X,), (), _backend_forward)
    with pytest.raises(RuntimeError, match=r"_Reads backward: 'X' came back with strides \(1, 3\), not the forward's"):
        recipe.rebuild((torch.randn(4, 3).t(),), _Reads)


def test_saving_over_an_argument_backward_reads_does_not_name_is_an_error():
    X, W = torch.randn(3, 4), torch.randn(4)
    with pytest.raises(RuntimeError, match=r"_backend_forward saved a tensor over an argument or output"):
        _library._Recipe((W,), (X,), (X, W), (), _backend_forward)


def test_the_state_of_a_forward_lives_as_long_as_its_handle():
    ctx = _library.KernelContext(function=None, needs_input_grad=(True,))
    handle = _library._keep(ctx)
    assert _library._state(handle) is ctx
    key = handle.data_ptr()
    del handle
    gc.collect()
    assert key not in _library._STATE
    with pytest.raises(RuntimeError, match="forward state of this call is gone"):
        _library._state(torch.zeros((), dtype=torch.int64))


def test_a_backend_may_not_mark_inputs_dirty_inside_an_operator():
    ctx: Any = _library.KernelContext(function=None, needs_input_grad=(False,))
    assert not ctx.next_functions and not ctx.may_overwrite_inputs
    with pytest.raises(RuntimeError, match="may not write its inputs"):
        ctx.mark_dirty(torch.zeros(1))
