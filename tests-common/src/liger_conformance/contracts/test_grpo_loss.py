"""GrpoLossFunction (the grpo_loss op's per-token terms, reduced) against the float64
oracle (see liger_kernel.ops.grpo_loss)."""

from __future__ import annotations

import math

import pytest
import torch

from liger_conformance import bad_inputs, by_size, oracles
from liger_conformance.contracts._support import compare_with_oracle, make, raises_naming, run_twice_bitwise
from liger_kernel.ops import GrpoLossFunction, GrpoTokenLossFunction
from liger_kernel.ops.grpo_loss import GRPO_LOSS_TYPES

pytestmark = pytest.mark.liger_op("grpo_loss")

#: (batch, completion length, vocabulary)
SHAPES = by_size(
    small=[(1, 1, 7), (3, 5, 33), (2, 6, 1500)],
    full=[(1, 1, 7), (4, 64, 32000), (2, 32, 128 * 1024 + 7)],
)
TEMPERATURE = 0.7
OUTPUTS = ("loss", "kl", "clipped")
LOSS_DTYPES = {"loss": (torch.float32,)}


def completion(shape, dtype, device, rng, *, layout="contiguous"):
    """Logits (B, L + 1, V), ids, a mask with padding (row 0 half, the last of three or
    more rows entirely), old and reference log-probabilities near the policy's (so that
    some ratios are clipped) and advantages."""
    batch, length, vocab = shape
    logits = make((batch, length + 1, vocab), dtype, device, rng, scale=2.0, layout=layout)
    ids = torch.randint(0, vocab, (batch, length), generator=rng)
    mask = torch.ones(batch, length, dtype=torch.int64)
    if length > 1:
        mask[0, length // 2 :] = 0
    if batch > 2:
        mask[-1] = 0
    policy = oracles.selective_log_softmax(logits.detach().cpu().double(), ids, TEMPERATURE)
    old = policy + 0.3 * torch.randn(policy.shape, generator=rng, dtype=torch.float64)
    ref = policy + 0.5 * torch.randn(policy.shape, generator=rng, dtype=torch.float64)
    advantages = torch.randn(batch, generator=rng, dtype=torch.float64)
    return {
        "logits": logits,
        "old_logp": old.float().to(device),
        "ref_logp": ref.float().to(device),
        "completion_ids": ids.to(device),
        "advantages": advantages.float().to(device),
        "completion_mask": mask.to(device),
    }


def grpo_args(inputs, **options):
    """GrpoLossFunction.apply's arguments, in order: the inputs, the defaults, ``options``."""
    args = {
        **inputs,
        "temperature": TEMPERATURE,
        "beta": 0.04,
        "eps_low": 0.2,
        "eps_high": 0.4,
        "inplace": True,
        "loss_type": "grpo",
        "max_completion_length": None,
        "reduce": True,
        "importance_sampling_level": "token",
        "sapo_temperature_pos": 1.0,
        "sapo_temperature_neg": 1.05,
        "vllm_is_ratio": None,
        "delta": None,
        "use_bias_correction_kl": False,
        "num_items_in_batch": None,
        "phi_seq": None,
    }
    unknown = set(options) - set(args)
    assert not unknown, f"not GrpoLossFunction arguments: {unknown}"
    args.update(options)
    return args


def grpo_oracle(a):
    per_token = oracles.grpo_per_token(
        a["logits"], a["old_logp"], a["ref_logp"], a["completion_ids"], a["advantages"], a["completion_mask"],
        a["temperature"], a["beta"], a["eps_low"], a["eps_high"], a["loss_type"], a["importance_sampling_level"],
        a["sapo_temperature_pos"], a["sapo_temperature_neg"], a["vllm_is_ratio"], a["delta"],
        a["use_bias_correction_kl"], a["phi_seq"],
    )  # fmt: skip
    if not a["reduce"]:
        return per_token
    return oracles.grpo_reduced(
        *per_token, a["completion_mask"], a["loss_type"], a["max_completion_length"], a["num_items_in_batch"]
    )


def run(args, *, dtype, rng, non_leaf=(), overwrites=()):
    return compare_with_oracle(
        GrpoLossFunction.apply,
        grpo_oracle,
        args,
        dtype=dtype,
        rng=rng,
        grads=("logits",),
        outputs=OUTPUTS,
        reduced=OUTPUTS if args["reduce"] else (),
        output_dtypes=LOSS_DTYPES,
        non_leaf=non_leaf,
        overwrites=overwrites,
    )


def loss_type_options(loss_type, inputs):
    """What each loss type needs besides its name."""
    options = {"loss_type": loss_type}
    batch, length = inputs["completion_ids"].shape
    if loss_type == "vespo":
        options["phi_seq"] = 0.5 + torch.rand(batch, generator=torch.Generator().manual_seed(batch)).to(
            inputs["advantages"].device
        )
    if loss_type == "dr_grpo":
        options["max_completion_length"] = length + 3
    if loss_type == "cispo":
        options["eps_high"] = 1.1
    return options


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("loss_type", GRPO_LOSS_TYPES)
def test_loss_types(liger_device, liger_dtype, liger_rng, loss_type, shape):
    inputs = completion(shape, liger_dtype, liger_device, liger_rng)
    run(grpo_args(inputs, **loss_type_options(loss_type, inputs)), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("loss_type", ["grpo", "cispo", "sapo", "vespo"])
def test_per_token_outputs(liger_device, liger_dtype, liger_rng, loss_type):
    """reduce=False: (l m, k m, clipped m) per token, the gradient from a per-token cotangent."""
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(grpo_args(inputs, reduce=False, **loss_type_options(loss_type, inputs)), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("bias_correction", [False, True], ids=["kl", "bias-corrected-kl"])
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dapo", "luspo"])
def test_sequence_level(liger_device, liger_dtype, liger_rng, loss_type, bias_correction):
    """One importance ratio per row (the masked mean of the log-ratios), with a per-token
    vLLM ratio: every kept token's gradient reaches every other token of its row."""
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    batch, length = inputs["completion_ids"].shape
    ratio = (0.5 + torch.rand(batch, length, generator=liger_rng)).to(liger_device)
    args = grpo_args(
        inputs,
        loss_type=loss_type,
        importance_sampling_level="sequence",
        vllm_is_ratio=ratio,
        use_bias_correction_kl=bias_correction,
    )
    run(args, dtype=liger_dtype, rng=liger_rng)
    run({**args, "reduce": False}, dtype=liger_dtype, rng=liger_rng)


OPTIONS = {
    "no-kl": {"beta": 0.0},
    "no-old-logp": {"old_logp": None},
    "no-mask": {"completion_mask": None},
    "delta-below-clip": {"delta": 1.1},
    "delta-above-clip": {"delta": 1.3, "eps_high": 0.2},
    "bias-corrected-kl": {"use_bias_correction_kl": True},
    "temperature-1": {"temperature": 1.0},
    "wide-eps": {"eps_low": 0.5, "eps_high": 2.0},
    "sapo-temperatures": {"loss_type": "sapo", "sapo_temperature_pos": 0.5, "sapo_temperature_neg": 2.0},
    "dapo-num-items": {"loss_type": "dapo", "num_items_in_batch": 37},
    "dr-grpo-length-default": {"loss_type": "dr_grpo"},
    "sequence-delta": {"importance_sampling_level": "sequence", "delta": 1.05},
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_options(liger_device, liger_dtype, liger_rng, name):
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    run(grpo_args(inputs, **OPTIONS[name]), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("ratio_shape", ["B", "B1", "BL"])
def test_vllm_is_ratio_shapes(liger_device, liger_dtype, liger_rng, ratio_shape):
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    batch, length = inputs["completion_ids"].shape
    shape = {"B": (batch,), "B1": (batch, 1), "BL": (batch, length)}[ratio_shape]
    ratio = (0.5 + torch.rand(shape, generator=liger_rng)).to(liger_device)
    run(grpo_args(inputs, vllm_is_ratio=ratio), dtype=liger_dtype, rng=liger_rng)


def test_num_items_in_batch_tensor(liger_device, liger_dtype, liger_rng):
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    count = torch.tensor(41.0, device=liger_device)
    run(grpo_args(inputs, loss_type="cispo", num_items_in_batch=count), dtype=liger_dtype, rng=liger_rng)


@pytest.mark.parametrize("inplace", [True, False])
def test_non_leaf_logits(liger_device, liger_dtype, liger_rng, inplace):
    """Logits from an LM head: with inplace the gradient may take their storage
    (``overwrites``); without it they stay as they were."""
    inputs = completion(SHAPES[2], liger_dtype, liger_device, liger_rng)
    overwrites = GrpoTokenLossFunction.overwrites if inplace else ()
    run(
        grpo_args(inputs, inplace=inplace),
        dtype=liger_dtype,
        rng=liger_rng,
        non_leaf=("logits",),
        overwrites=overwrites,
    )


@pytest.mark.parametrize("layout", ["padded", "strided"])
def test_non_contiguous_logits(liger_device, liger_dtype, liger_rng, layout):
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng, layout=layout)
    run(grpo_args(inputs), dtype=liger_dtype, rng=liger_rng)


def test_masked_tokens_are_not_read(liger_device, liger_rng):
    """NaN old and reference log-probabilities on padding change nothing; the gradient rows
    of padding and of the last position are exactly 0."""
    inputs = completion(SHAPES[1], torch.float32, liger_device, liger_rng)
    padding = inputs["completion_mask"] == 0
    spoiled = {
        **inputs,
        "old_logp": inputs["old_logp"].masked_fill(padding, math.nan),
        "ref_logp": inputs["ref_logp"].masked_fill(padding, math.inf),
    }
    results = []
    for given in (inputs, spoiled):
        logits = given["logits"].detach().clone().requires_grad_()
        out = GrpoLossFunction.apply(**grpo_args({**given, "logits": logits}))
        out[0].backward()
        results.append((out, logits.grad))
    (clean, clean_grad), (out, grad) = results
    for a, b in zip(clean, out):
        assert torch.equal(a, b)
    assert torch.equal(clean_grad, grad)
    assert torch.count_nonzero(grad[:, :-1][padding]) == 0 and torch.count_nonzero(grad[:, -1]) == 0


def test_no_grad_leaves_logits(liger_device, liger_dtype, liger_rng):
    """Under torch.no_grad nothing is written, whatever inplace says, and the results are those with grad."""
    inputs = completion(SHAPES[1], liger_dtype, liger_device, liger_rng)
    logits = inputs["logits"].detach().clone().requires_grad_() * 1.0
    before = logits.detach().clone()
    with torch.no_grad():
        quiet = GrpoLossFunction.apply(**grpo_args({**inputs, "logits": logits}))
    loud = GrpoLossFunction.apply(**grpo_args({**inputs, "logits": logits}))
    assert torch.equal(logits.detach(), before)
    for a, b in zip(quiet, loud):
        assert torch.equal(a, b.detach())


def test_metrics_carry_no_gradient(liger_device, liger_rng):
    inputs = completion(SHAPES[1], torch.float32, liger_device, liger_rng)
    logits = inputs["logits"].detach().clone().requires_grad_()
    for reduce in (True, False):
        loss, kl, clipped = GrpoLossFunction.apply(**grpo_args({**inputs, "logits": logits}, reduce=reduce))
        assert loss.requires_grad and not kl.requires_grad and not clipped.requires_grad


def test_deterministic(liger_device, liger_dtype, liger_rng):
    inputs = completion(SHAPES[2], liger_dtype, liger_device, liger_rng)

    def once():
        logits = inputs["logits"].detach().clone().requires_grad_()
        out = GrpoLossFunction.apply(**grpo_args({**inputs, "logits": logits}, importance_sampling_level="sequence"))
        out[0].backward()
        return (*out, logits.grad)

    run_twice_bitwise(once, "grpo_loss")


REDUCTION_BAD_INPUTS = {
    "max_completion_length": (0, ValueError),
    "reduce": ("yes", TypeError),
    "num_items_in_batch": ("12", TypeError),
}


@pytest.mark.parametrize("argument", list(REDUCTION_BAD_INPUTS))
def test_bad_reduction_options(liger_device, liger_rng, argument):
    """GrpoLossFunction's own options (the op's are the shared cases below)."""
    value, error = REDUCTION_BAD_INPUTS[argument]
    inputs = completion(SHAPES[1], torch.float32, liger_device, liger_rng)
    with raises_naming(error, argument):
        GrpoLossFunction.apply(**grpo_args(inputs, **{argument: value}))
    with raises_naming(ValueError, "num_items_in_batch"):
        GrpoLossFunction.apply(**grpo_args(inputs, num_items_in_batch=torch.ones(2, device=liger_device)))


@pytest.mark.parametrize("case", bad_inputs.cases("grpo_loss"), ids=bad_inputs.case_id)
def test_bad_input(liger_device, liger_rng, case):
    """The shared bad-input cases (liger_conformance.bad_inputs, the README's table)."""
    if case.name.endswith("out-of-range") and liger_device.type != "cpu":
        pytest.skip("token ids are checked on the host only for CPU tensors (no synchronization elsewhere)")
    bad_inputs.expect_refused(case, liger_device, liger_rng)
