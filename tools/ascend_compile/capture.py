"""Record every kernel configuration liger-ascend launches, under the strict NPU mock.

Each op runs forward and backward at the conformance sample shapes (every
dtype, kernels executed by the interpreter) and at LLM sizes (launches
recorded, not executed: only the configuration matters to the compiler).
A configuration is the kernel (module and name), the type of each runtime
argument, what the launcher specialises it on (alignment, divisibility by
16, equality to 1) and the value of each constexpr; the planner's estimate of the UB
bytes of the launch (``TilePlan.bytes_per_step`` of the plan made just before
it) travels with it. Duplicates are written once.

    python tools/ascend_compile/capture.py OUT.json
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import torch

from liger_conformance.mocks import npu as npu_mock
from liger_kernel_ascend import ub_calibration

TORCH_TO_TRITON = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float64: "fp64",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int16: "i16",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "i1",
}


def arg_type(value: Any) -> str:
    """Triton's type for a runtime argument, as its launcher would specialise it."""
    if isinstance(value, torch.Tensor):
        return "*" + TORCH_TO_TRITON[value.dtype]
    if isinstance(value, bool):
        return "i1"
    if isinstance(value, int):
        return "i32" if -(2**31) <= value < 2**31 else "i64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"cannot type launch argument {value!r}")


def constant(value: Any) -> Any:
    """A constexpr as JSON: a Triton dtype becomes ``{"dtype": "bf16"}``."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if type(value).__name__ == "dtype":  # triton.language.dtype
        return {"dtype": str(value)}
    if isinstance(value, torch.dtype):
        return {"dtype": TORCH_TO_TRITON[value]}
    raise TypeError(f"cannot record constexpr {value!r}")


def runtime_value(value: Any) -> Any:
    """What Triton's launcher specialises a runtime argument on: a pointer's
    16-byte alignment, an integer's divisibility by 16 and equality to 1."""
    if isinstance(value, torch.Tensor):
        return {"aligned": value.data_ptr() % 16 == 0}
    if isinstance(value, bool) or not isinstance(value, int):
        return value
    return 1 if value == 1 else (16 if value % 16 == 0 else 3)


class Recorder:
    def __init__(self) -> None:
        self.configs: dict[str, dict[str, Any]] = {}
        self.last_plan_bytes: int | None = None
        self.execute = True
        self.case = ""

    def record(self, executor: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        fn = executor.fn
        bound = dict(zip(executor.arg_names, args))
        bound.update(kwargs)
        signature, constants, values = {}, {}, {}
        for name in executor.arg_names:
            value = bound.get(name)
            if name in executor.constexprs:
                constants[name] = constant(value.value if hasattr(value, "value") else value)
            elif value is None:
                values[name] = None
            else:
                signature[name] = arg_type(value)
                values[name] = runtime_value(value)
        config = {
            "module": fn.__module__,
            "kernel": fn.__name__,
            "signature": signature,
            "constants": constants,
            "values": values,
        }
        key = json.dumps(config, sort_keys=True)
        estimate = self.last_plan_bytes
        if estimate is None:
            # a kernel launched at the NPU profile's blocks (the portable ones): what the calibration
            # the profile was sized by says the tile costs
            dtype = next(t[1:] for t in signature.values() if t.startswith("*"))
            estimate = ub_calibration.launch_bytes(f"{fn.__module__}.{fn.__name__}", dtype, constants)
        entry = self.configs.setdefault(key, {**config, "planner_bytes": estimate, "cases": []})
        if len(entry["cases"]) < 3:
            entry["cases"].append(self.case)
        self.last_plan_bytes = None


@contextlib.contextmanager
def recording(recorder: Recorder) -> Iterator[None]:
    from triton.runtime import interpreter

    import liger_kernel_ascend.ops._common as common

    executor_call = interpreter.GridExecutor.__call__
    planners = {name: getattr(common, name) for name in ("plan_rows", "plan_stacked", "plan_elementwise")}

    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        recorder.record(self, args, kwargs)
        return executor_call(self, *args, **kwargs) if recorder.execute else None

    def planned(original: Any) -> Any:
        def plan(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            recorder.last_plan_bytes = result.bytes_per_step
            return result

        return plan

    interpreter.GridExecutor.__call__ = call
    for name, original in planners.items():
        setattr(common, name, planned(original))
    try:
        yield
    finally:
        interpreter.GridExecutor.__call__ = executor_call
        for name, original in planners.items():
            setattr(common, name, original)


def run_op(op: str, args: tuple[Any, ...]) -> None:
    import liger_kernel.ops as public

    out = public.OPS[op].apply(*args)
    outputs = out if isinstance(out, tuple) else (out,)
    total = sum(o.float().sum() for o in outputs if isinstance(o, torch.Tensor) and o.requires_grad)
    if isinstance(total, torch.Tensor):
        total.backward()


def llm_cases(dtype: torch.dtype) -> Iterator[tuple[str, str, tuple[Any, ...]]]:
    """Ops at the sizes of an 8B-class model (seq 4096, hidden 4096, vocab 128256)."""

    def randn(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, dtype=dtype).requires_grad_()

    rows, hidden, vocab = 4096, 4096, 128256
    for h in (hidden, 8192):
        yield "rms_norm", f"llm H{h}", (randn(rows, h), randn(h), 1e-6, 0.0, "llama", False, None)
        yield "layer_norm", f"llm H{h}", (randn(rows, h), randn(h), randn(h), 1e-6)
        yield "fused_add_rms_norm", f"llm H{h}", (randn(rows, h), randn(rows, h), randn(h), 1e-6, 0.0, "llama", False)
    yield "swiglu", "llm I14336", (randn(rows, 14336), randn(rows, 14336))
    yield "relu_squared", "llm I14336", (randn(rows, 14336),)
    # more tiles than the 65535-program grid: the persistent walk, pipelined
    yield "relu_squared", "llm 2x I14336", (randn(2 * rows, 14336),)
    # GPT-OSS's experts gate: the interleaved gate/up projection of intermediate 2880
    yield "clamped_swiglu", "llm I2880", (randn(rows, 2 * 2880), 1.702, 7.0)
    # Falcon-H1's MLP multipliers: the scaled variant of the gate kernels
    yield "swiglu", "llm I14336 multipliers", (randn(rows, 14336), randn(rows, 14336), 0.5, 1.5)
    q, k = randn(1, 32, rows, 128), randn(1, 8, rows, 128)
    cos, sin = torch.empty(1, rows, 128, dtype=dtype), torch.empty(1, rows, 128, dtype=dtype)
    yield "rope", "llm", (q, k, cos, sin, None, 1)
    # Llama 4 Scout's attention, (batch, seq, heads, head_dim), complex frequencies
    freqs_cis = torch.empty(1, rows, 64, dtype=torch.complex64)
    yield "llama4_rope", "llm", (randn(1, rows, 40, 128), randn(1, rows, 8, 128), freqs_cis)
    # Qwen3-30B-A3B's experts (128 of hidden 2048, intermediate 768, top-8): the grouped GEMMs at a wide
    # expert vector (E_PAD 128) and LLM-sized strides
    experts, expert_hidden, expert_inter, top_k = 128, 2048, 768, 8
    yield (
        "fused_moe",
        "llm E128 H2048 I768 top8",
        (
            randn(rows, expert_hidden),
            randn(experts, 2 * expert_inter, expert_hidden),
            randn(experts, expert_hidden, expert_inter),
            torch.arange(rows * top_k).remainder(experts).view(rows, top_k),
            torch.empty(rows, top_k, dtype=dtype).requires_grad_(),
        ),
    )
    # the portable kernels the backend runs, at their widest blocks (hidden sizes walked in blocks,
    # vocabulary-wide rows)
    for h in (hidden, 8192):
        yield "dyt", f"llm H{h}", (randn(rows, h), randn(1), randn(h), randn(h))
        yield "poly_norm", f"llm H{h}", (randn(rows, h), randn(3), randn(1), 1e-6, False)
    for width in (hidden, vocab):
        yield "softmax", f"llm W{width}", (randn(8, width),)
        yield "sparsemax", f"llm W{width}", (randn(8, width), -1)
    target_probs = torch.empty(8, vocab, dtype=dtype)
    yield "kl_div", f"llm V{vocab}", (randn(8, vocab), target_probs, "batchmean", False, 1e-10)
    yield "tvd", f"llm V{vocab}", (randn(8, vocab), target_probs, None, "batchmean", -100)
    yield "jsd", f"llm V{vocab}", (randn(8, vocab), target_probs, None, 0.5, -100)
    yield "group_norm", "llm C512 G32 64x64", (randn(2, 512, 64, 64), randn(512), randn(512), 512, 32, 1e-6)
    yield "group_norm", "llm C320 G32 32x32", (randn(2, 320, 32, 32), randn(320), randn(320), 320, 32, 1e-6)
    # 6 channels per group: the channel blocks have a masked tail, in one tile (8x8) or walked (64x64)
    for side in (8, 64):
        yield (
            "group_norm",
            f"llm C192 G32 {side}x{side}",
            (randn(2, 192, side, side), randn(192), randn(192), 192, 32, 1e-6),
        )
    target = torch.zeros(8, dtype=torch.int64)
    weights = torch.ones(vocab, dtype=torch.float32)
    # each option alone, none, and all at once (z-loss, accuracy and predicted tokens go together)
    for softcap, smoothing, weight, z in (
        (None, 0.0, None, False),
        (30.0, 0.0, None, False),
        (None, 0.1, None, False),
        (None, 0.0, weights, False),
        (None, 0.0, None, True),
        (30.0, 0.1, weights, True),
    ):
        yield (
            "cross_entropy",
            f"llm V{vocab} softcap={softcap} smoothing={smoothing} weight={weight is not None} z={z}",
            (randn(8, vocab), target, weight, -100, 1e-4 if z else 0.0, smoothing, "mean", softcap, z, z, z),
        )


def main(path: str) -> int:
    from liger_kernel.cli.samples import SAMPLES, sample

    recorder = Recorder()
    with npu_mock.active(), recording(recorder):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            for op in sorted(SAMPLES):
                recorder.case, recorder.execute = f"{op} sample {dtype}", True
                run_op(op, sample(op, torch.device("cpu"), torch.Generator().manual_seed(0), dtype))
            for op, label, args in llm_cases(dtype):
                recorder.case, recorder.execute = f"{op} {label} {dtype}", False
                run_op(op, args)
    configs = sorted(recorder.configs.values(), key=lambda c: (c["module"], c["kernel"], json.dumps(c["constants"])))
    with open(path, "w") as out:
        json.dump(configs, out, indent=1)
    print(f"captured {len(configs)} distinct kernel configurations -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
