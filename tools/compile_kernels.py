"""Compile every kernel configuration a Triton backend launches, for real GPU targets, without a GPU.

    python tools/compile_kernels.py [--backend rocm|cuda ...] [--jobs N] [--json FILE]

Capture: under each backend's kernel mock (liger_conformance.mocks) every op runs
forward and backward on CPU tensors at the conformance suite's LLM sizes (the
shapes of its full-size lists with at least LLM_ELEMENTS elements, read from
the contract modules) in bfloat16; with ``--all`` also at every shape of its
small and full lists and the sample arguments of ``liger_kernel.cli.samples``, in
float32 too (about 2.5x the configurations, ~10 minutes on 2 busy cores).
Triton's launch is replaced by a
recorder, so the launchers build their real arguments and launch options from
the backend's device profile; nothing executes. Identical configurations
(kernel, argument types, constexprs, launch options) are compiled once.

Compile: Triton's own backends, from the pinned ``triton`` wheel, which carries
both: AMD's (``GPUTarget("hip", "gfx942" | "gfx950", 64)``, the resource report
read from the AMDGCN assembly the LLVM AMDGPU backend writes) and NVIDIA's
(``GPUTarget("cuda", 90 | 100, 32)``, ``ptxas`` and ``cuobjdump`` from the wheel).
Each configuration is compiled for the targets of the profile it was captured
under (the MI300X mock for gfx942, the MI355X mock for gfx950, the H100 mock
for sm_90 and sm_100: Blackwell's row of liger-cuda's tuning equals Hopper's).

Fails (exit 1) on a compile error, on register spills (AMD: VGPR/SGPR spill
counts or scratch; NVIDIA: local memory), on LDS / shared memory beyond the
target's, and on an AMD kernel below MIN_WAVES_PER_SIMD: every kernel here is
bound by memory bandwidth, which needs waves to hide latency. Prints one row
per configuration: kernel, target, registers, spills, LDS, occupancy (AMD:
waves per SIMD as the compiler reports; NVIDIA: warps per SM sub-partition
that its registers allow).

It lives in tools/ beside check_packaging.py: a developer tool that CI runs as
a lane (``compile-kernels``), and that is run by hand after changing a kernel or
a profile, not part of the CI matrix machinery that ci/ holds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
    sys.exit("compile_kernels: run without TRITON_INTERPRET (kernels must be JIT functions, not interpreted)")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

#: bandwidth-bound kernels need at least this many waves per SIMD resident
MIN_WAVES_PER_SIMD = 2
LAUNCH_OPTIONS = ("num_warps", "num_stages", "num_ctas", "waves_per_eu", "maxnreg")
TYPE_NAMES = {
    torch.float32: "fp32",
    torch.bfloat16: "bf16",
    torch.float16: "fp16",
    torch.float64: "fp64",
    torch.int64: "i64",
    torch.int32: "i32",
    torch.int8: "i8",
    torch.uint8: "u8",
    torch.bool: "i1",
}


@dataclasses.dataclass(frozen=True)
class Target:
    """One compile target: Triton's ``GPUTarget`` and the hardware limits checked against it."""

    name: str
    backend: str
    arch: Any
    warp_size: int
    lds_bytes: int  # LDS (AMD) or opt-in shared memory (NVIDIA) per workgroup


GFX942 = Target("gfx942", "hip", "gfx942", 64, 64 * 1024)
GFX950 = Target("gfx950", "hip", "gfx950", 64, 160 * 1024)
SM90 = Target("sm_90", "cuda", 90, 32, 227 * 1024)
SM100 = Target("sm_100", "cuda", 100, 32, 227 * 1024)


def mock_presets() -> dict[str, list[tuple[str, Callable[[], Any], tuple[Target, ...]]]]:
    """Per backend: (preset name, mock context, targets compiled for what it captures)."""
    from liger_conformance.mocks import cuda, rocm

    return {
        "rocm": [
            ("MI300X", lambda: rocm.active(rocm.MI300X), (GFX942,)),
            ("MI355X", lambda: rocm.active(rocm.MI355X), (GFX950,)),
        ],
        "cuda": [("H100", lambda: cuda.active(cuda.H100), (SM90, SM100))],
    }


# ------------------------------------------------------------------ capture


@contextlib.contextmanager
def recording(launches: list) -> Iterator[None]:
    """Every JIT launch appends ``(kernel, specialization)`` instead of running
    (the specialization, not the tensors: LLM-sized inputs are not kept)."""
    run = JITFunction.run

    def record(self: JITFunction, *args: Any, grid: Any, warmup: bool, **kwargs: Any) -> None:
        launches.append((self, specialization(self, args, kwargs)))

    JITFunction.run = record
    try:
        yield
    finally:
        JITFunction.run = run


#: which of the conformance suite's shapes capture() reads: "full" (those of
#: its full-size list with at least LLM_ELEMENTS elements: the LLM sizes) or
#: "all" (both its lists whole, small shapes included); set by main()
SIZES = ["full"]
LLM_ELEMENTS = 2**16


def elements(shape: Any) -> int:
    """Product of the integers in a (nested) shape entry of a contract module."""
    if isinstance(shape, int):
        return max(shape, 1)  # a dim option (-1) counts no elements
    if isinstance(shape, tuple):
        product = 1
        for part in shape:
            product *= elements(part)
        return product
    return 1  # a list of section sizes, an option


def conformance_shapes(module: str, name: str = "SHAPES") -> list:
    """A contract module's shape list at the sizes SIZES names."""
    import importlib

    import liger_conformance

    def chosen(small: list, full: list) -> list:
        shapes = small + full if SIZES[0] == "all" else [s for s in full if elements(s) >= LLM_ELEMENTS]
        return list({repr(s): s for s in shapes}.values())

    by_size = liger_conformance.by_size
    liger_conformance.by_size = chosen
    try:
        contract = importlib.import_module(f"liger_conformance.contracts.{module}")
        return list(getattr(importlib.reload(contract), name))
    finally:
        liger_conformance.by_size = by_size


def leaf(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype).requires_grad_()


def log_probs(*shape: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.full(shape, -1.0, dtype=dtype).requires_grad_()


def labels(rows: int, vocab: int) -> torch.Tensor:
    return torch.arange(rows) % vocab


#: the rows of a fused linear op's input: the launches depend on hidden and
#: vocabulary sizes, and its matmuls run for real on the host
FUSED_ROWS = 16
#: dtypes of the shaped calls (the samples run in float32 and bfloat16); main()
#: adds float32 with --all
DTYPES = [torch.bfloat16]


def calls(dtype: torch.dtype) -> Iterator[tuple[str, tuple]]:
    """(op, positional arguments) for every shape and option that changes a launch."""
    d = dtype
    for *lead, width in conformance_shapes("test_rms_norm"):
        for mode, offset in (("llama", 0.0), ("gemma", 1.0), ("none", 0.0)):
            yield "rms_norm", (leaf(*lead, width, dtype=d), leaf(width, dtype=d), 1e-6, offset, mode, True, None)
        yield "rms_norm", (leaf(*lead, width, dtype=d), None, 1e-6, 0.0, "llama", True, None)
    for *lead, width in conformance_shapes("test_modulated_rms_norm"):
        x = leaf(*lead, width, dtype=d)
        # one modulation row for all tokens (chunked partials), one per sample, one per token (stored directly)
        for rows in {1, lead[0], x.numel() // width}:
            scale, shift = leaf(rows, width, dtype=d), leaf(rows, width, dtype=d)
            for mode in ("llama", "gemma"):
                yield "modulated_rms_norm", (x, leaf(width, dtype=d), scale, shift, 1e-6, 0.0, mode, True)
            yield "modulated_rms_norm", (x, None, scale, None, 1e-6, 0.0, "llama", True)
    for *lead, width in conformance_shapes("test_fused_add_rms_norm"):
        x, r = leaf(*lead, width, dtype=d), leaf(*lead, width, dtype=d)
        yield "fused_add_rms_norm", (x, r, leaf(width, dtype=d), 1e-6, 0.0, "llama", False)
    for *lead, width in conformance_shapes("test_layer_norm"):
        for bias in (leaf(width, dtype=d), None):
            yield "layer_norm", (leaf(*lead, width, dtype=d), leaf(width, dtype=d), bias, 1e-6)
    for *lead, width in conformance_shapes("test_softmax"):
        yield "softmax", (leaf(*lead, width, dtype=d),)
    for shape, dim in conformance_shapes("test_sparsemax", "CASES"):
        yield "sparsemax", (leaf(*shape, dtype=d), dim)
    for batch, channels, length, out_channels, kernel, stride, padding, dilation, groups in conformance_shapes(
        "test_multi_token_attention", "GEOMETRIES"
    ):
        for sparse in (False, True):
            scores, weight = (
                leaf(batch, channels, length, length, dtype=d),
                leaf(out_channels, channels // groups, *kernel, dtype=d),
            )
            yield (
                "multi_token_attention",
                (scores, weight, leaf(out_channels, dtype=d), stride, padding, dilation, groups, sparse),
            )
    for *lead, width in conformance_shapes("test_dyt"):
        x = leaf(*lead, width, dtype=d)
        yield "dyt", (x, leaf(1, dtype=d), leaf(width, dtype=d), leaf(width, dtype=d))
        yield "dyt", (x, leaf(1, dtype=d), leaf(width, dtype=d), None)
    for *lead, width in conformance_shapes("test_poly_norm"):
        for bias in (True, False):
            yield "poly_norm", (leaf(*lead, width, dtype=d), leaf(3, dtype=d), leaf(1, dtype=d), 1e-6, bias)
    for shape in conformance_shapes("test_gates"):
        for op in ("swiglu", "geglu"):
            yield op, (leaf(*shape, dtype=d), leaf(*shape, dtype=d))
    for shape in conformance_shapes("test_relu_squared"):
        yield "relu_squared", (leaf(*shape, dtype=d),)
    for shape in conformance_shapes("test_clamped_swiglu"):
        yield "clamped_swiglu", (leaf(*shape, dtype=d), 1.702, 7.0)
    for shape, groups in conformance_shapes("test_group_norm", "CASES"):
        channels = shape[1]
        yield (
            "group_norm",
            (leaf(*shape, dtype=d), leaf(channels, dtype=d), leaf(channels, dtype=d), channels, groups, 1e-6),
        )
    for batch, heads, seq, dim in conformance_shapes("test_rope"):
        q, k = leaf(batch, heads, seq, dim, dtype=d), leaf(batch, max(1, heads // 4), seq, dim, dtype=d)
        cos = torch.zeros(1, seq, dim, dtype=d)
        yield "rope", (q, k, cos, cos, None, 1)
    for batch, heads, kv_heads, seq, dim, section in conformance_shapes("test_qwen2vl_mrope"):
        q, k = leaf(batch, heads, seq, dim, dtype=d), leaf(batch, kv_heads, seq, dim, dtype=d)
        cos = torch.zeros(3, batch, seq, dim, dtype=d)
        yield "qwen2vl_mrope", (q, k, cos, cos, section, 1)
    for batch, heads, kv_heads, seq, dim in conformance_shapes("test_llama4_rope"):
        q, k = leaf(batch, seq, heads, dim, dtype=d), leaf(batch, seq, kv_heads, dim, dtype=d)
        yield "llama4_rope", (q, k, torch.zeros(1, seq, dim // 2, dtype=torch.complex64))
    yield from vision_calls(d)
    for tokens, hidden, inter, experts, top_k in conformance_shapes("test_fused_moe"):
        # every expert gets tokens (round robin), so each grouped GEMM has row tiles to launch for
        index = (torch.arange(tokens * top_k) % experts).view(tokens, top_k)
        weights = (leaf(experts, 2 * inter, hidden, dtype=d), leaf(experts, hidden, inter, dtype=d))
        yield "fused_moe", (leaf(tokens, hidden, dtype=d), *weights, index, leaf(tokens, top_k, dtype=d))
    for rows, vocab in conformance_shapes("test_cross_entropy"):
        for reduction in ("mean", "none"):
            for smoothing, z_scale, softcap in ((0.0, 0.0, None), (0.1, 1e-4, 30.0)):
                x = leaf(rows, vocab, dtype=d)
                yield (
                    "cross_entropy",
                    (x, labels(rows, vocab), None, -100, z_scale, smoothing, reduction, softcap, True, True, True),
                )
        weight = torch.ones(vocab, dtype=torch.float32)
        yield (
            "cross_entropy",
            (
                leaf(rows, vocab, dtype=d),
                labels(rows, vocab),
                weight,
                -100,
                0.0,
                0.1,
                "mean",
                None,
                False,
                False,
                False,
            ),
        )
    for rows, hidden, vocab in conformance_shapes("test_fused_linear_cross_entropy"):
        x, w = leaf(min(rows, FUSED_ROWS), hidden, dtype=d), leaf(vocab, hidden, dtype=d)
        target = labels(x.shape[0], vocab)
        yield (
            "fused_linear_cross_entropy",
            (x, w, target, leaf(vocab, dtype=d), None, -100, 0.0, 0.0, "mean", None, False, None, False, False, False),
        )
    for rows, vocab in conformance_shapes("test_jsd"):
        for beta in (0.0, 0.5, 1.0):
            yield "jsd", (log_probs(rows, vocab, dtype=d), log_probs(rows, vocab, dtype=d).detach(), None, beta, -100)
        target = log_probs(rows, vocab, dtype=d).detach()
        yield "jsd", (log_probs(rows, vocab, dtype=d), target, labels(rows, vocab), 0.5, -100)
    for rows, hidden, vocab in conformance_shapes("test_fused_linear_jsd"):
        n = min(rows, FUSED_ROWS)
        s, t = leaf(n, hidden, dtype=d), leaf(n, hidden, dtype=d)
        ws, wt = leaf(vocab, hidden, dtype=d), leaf(vocab, hidden, dtype=d)
        yield "fused_linear_jsd", (s, ws, t, wt, None, 0.5, -100, 1.0)
    for *lead, vocab in conformance_shapes("test_kl_div"):
        for reduction in ("none", "batchmean"):
            for log_target in (False, True):
                target = log_probs(*lead, vocab, dtype=d).detach()
                yield "kl_div", (log_probs(*lead, vocab, dtype=d), target, reduction, log_target, 1e-10)
    for *lead, vocab in conformance_shapes("test_tvd"):
        for reduction in ("none", "batchmean"):
            p = log_probs(*lead, vocab, dtype=d)
            yield "tvd", (p, log_probs(*lead, vocab, dtype=d), None, reduction, -100)
    for rows, width, shape in conformance_shapes("test_embedding", "CASES"):
        for padding_idx in (None, 0):
            yield "embedding", (leaf(rows, width, dtype=d), torch.randint(0, rows, shape), padding_idx)
    for rows, hidden, vocab in conformance_shapes("test_fused_linear_kl_div"):
        x, w = leaf(min(rows, FUSED_ROWS), hidden, dtype=d), leaf(vocab, hidden, dtype=d)
        target = torch.full((x.shape[0], vocab), 1.0 / vocab, dtype=d)
        yield "fused_linear_kl_div", (x, w, target, labels(x.shape[0], vocab), "batchmean", -100, 1.0, 1e-10, None)
    for rows, vocab in conformance_shapes("test_fused_ce_tvd"):
        teacher = torch.zeros(rows, vocab, dtype=d)
        yield "fused_ce_tvd", (leaf(rows, vocab, dtype=d), teacher, labels(rows, vocab), -100)
    for seq, batch, vocab in conformance_shapes("test_vocab_parallel_cross_entropy"):
        for smoothing in (0.0, 0.1):
            target = labels(seq * batch, vocab).view(seq, batch)
            yield "vocab_parallel_cross_entropy", (leaf(seq, batch, vocab, dtype=d), target, None, -100, smoothing,
                                                   "pytorch", "global")  # fmt: skip
    for _, hidden, vocab in conformance_shapes("test_fused_linear_scaled_cross_entropy"):
        x, w = leaf(FUSED_ROWS, hidden, dtype=d), leaf(vocab, hidden, dtype=d)
        yield "fused_linear_scaled_cross_entropy", (x, w, labels(FUSED_ROWS, vocab), 0.8, -100, 1, True, None)
    for *lead, hc, c in conformance_shapes("test_mhc", "COEFF_SHAPES"):
        m = hc * hc + 2 * hc
        alphas = tuple(leaf(dtype=torch.float32) for _ in range(3))
        for phi_dtype in (d, torch.float16):
            coeffs = (leaf(*lead, hc, c, dtype=d), leaf(hc * c, m, dtype=phi_dtype), leaf(m, dtype=torch.float32))
            yield "mhc_coeffs", (*coeffs, *alphas, False, 20, 1e-6, 0.0, 1e-6, 2.0)
    for *lead, hc, c in conformance_shapes("test_mhc", "APPLY_SHAPES"):
        h_pre, h_post = leaf(*lead, hc, dtype=torch.float32), leaf(*lead, hc, dtype=torch.float32)
        h_res = leaf(*lead, hc, hc, dtype=torch.float32)
        yield "mhc_pre", (leaf(*lead, hc, c, dtype=d), h_pre)
        yield "mhc_post_res", (leaf(*lead, hc, c, dtype=d), leaf(*lead, c, dtype=d), h_post, h_res)
    for shape in conformance_shapes("test_attn_res"):
        yield "attn_res", (leaf(*shape, dtype=d), leaf(shape[-1], dtype=d), leaf(shape[-1], dtype=d), 1e-6)


def vision_calls(dtype: torch.dtype) -> Iterator[tuple[str, tuple]]:
    """The vision towers' rotary embeddings, as their layout adapters call the ops:
    the rope kernel seq-first over (1, seq, heads, head_dim) with fp32 tables
    (liger_kernel.ops.rope.vision_rope), the llama4_rope kernel at the tower's sizes."""
    d = dtype
    for seq, heads, kv_heads, dim in conformance_shapes("test_vision_rope"):
        q, k = leaf(1, seq, heads, dim, dtype=d), leaf(1, seq, kv_heads, dim, dtype=d)
        cos = torch.zeros(1, seq, dim, dtype=torch.float32)
        yield "rope", (q, k, cos, cos, None, 2)
    for tiles, seq, heads, dim in conformance_shapes("test_llama4_vision_rope"):
        q, k = leaf(tiles, seq, heads, dim, dtype=d), leaf(tiles, seq, heads, dim, dtype=d)
        yield "llama4_rope", (q, k, torch.zeros(1, seq, dim // 2, dtype=torch.complex64))


def run_op(op: str, args: tuple) -> None:
    from liger_kernel.ops import OPS

    outputs = OPS[op].apply(*args)
    outputs = [o for o in (outputs if isinstance(outputs, tuple) else (outputs,)) if isinstance(o, torch.Tensor)]
    outputs = [o for o in outputs if o.requires_grad]
    if outputs:
        torch.autograd.backward(outputs, [torch.zeros_like(o) for o in outputs])


def capture(backend: str, mock: Callable[[], Any]) -> tuple[list, Any, list[str]]:
    """(launches, profile, errors) of every op under ``mock`` with ``backend`` selected."""
    import liger_kernel
    from liger_kernel.cli.samples import SAMPLES, sample
    from liger_kernel.dispatch import dispatcher

    launches: list = []
    errors: list[str] = []
    with mock(), recording(launches):
        liger_kernel.set_backend(backend)
        # Launches are recorded, never run, and compiled for explicit targets: the backend's
        # prepare step (a check that the installed Triton drives its device) does not apply here.
        # The mocks make the dispatcher skip it only while the interpreter runs the kernels.
        installed = dispatcher.get(backend).backend
        if installed.prepare is not None:
            dispatcher._prepared.add((installed.name, installed.prepare))
        try:
            profile = dispatcher.profile(torch.device("cpu"))  # CPU tensors stand for the mock's GPU
            samples = (
                (op, sample(op, torch.device("cpu"), torch.Generator().manual_seed(0), d))
                for op in (SAMPLES if SIZES[0] == "all" else ())
                for d in DTYPES
            )
            shaped = (call for d in DTYPES for call in calls(d))
            for op, args in itertools.chain(samples, shaped):
                try:
                    run_op(op, args)
                except Exception as exc:  # reported; a launcher that cannot build its launch is a defect
                    errors.append(f"{op}: {type(exc).__name__}: {exc}")
        finally:
            liger_kernel.set_backend(None)
    return launches, profile, errors


# ------------------------------------------------------------------ compile


def specialization(kernel: JITFunction, args: tuple, kwargs: dict) -> tuple[dict, dict, dict, dict]:
    """(types, constexprs, attrs, options) as Triton's launcher specializes this call."""
    options = {k: kwargs[k] for k in LAUNCH_OPTIONS if k in kwargs}
    bound = dict(zip(kernel.arg_names, args))
    for param in kernel.params:
        if param.name not in bound:
            bound[param.name] = kwargs[param.name] if param.name in kwargs else param.default
    types, constexprs, attrs = {}, {}, {}
    for index, param in enumerate(kernel.params):
        value = bound[param.name]
        if param.is_constexpr:
            types[param.name], constexprs[param.name] = "constexpr", value
        elif value is None:
            types[param.name], constexprs[param.name] = "constexpr", None
        elif isinstance(value, torch.Tensor):
            types[param.name] = "*" + TYPE_NAMES[value.dtype]
            attrs[(index,)] = [["tt.divisibility", 16]]  # fresh allocations are 16-byte aligned
        elif isinstance(value, bool):
            types[param.name] = "i1"
        elif isinstance(value, int):
            # Sizes and strides are compiled as at LLM sizes, divisible by 16 (the
            # widest vector loads, the most registers): one configuration per
            # block layout instead of one per shape; a width or stride of 1 is
            # compiled as Triton specializes it.
            if value == 1 and not param.do_not_specialize:
                types[param.name], constexprs[param.name] = "constexpr", 1
                continue
            types[param.name] = "i64" if not -(2**31) <= value < 2**31 else "i32"
            if not param.do_not_specialize:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            types[param.name] = "fp32"
        else:
            raise TypeError(f"{kernel.__name__}: argument {param.name} of type {type(value).__name__}")
    return types, constexprs, attrs, options


def amd_report(compiled: Any) -> dict:
    asm = compiled.asm["amdgcn"]

    def field(pattern: str) -> int:
        found = re.findall(pattern, asm)
        return max(int(v) for v in found) if found else 0

    return {
        "regs": field(r";\s*TotalNumVgprs:\s*(\d+)") or field(r";\s*NumVgprs:\s*(\d+)"),
        "spills": field(r"\.vgpr_spill_count:\s*(\d+)") + field(r"\.sgpr_spill_count:\s*(\d+)"),
        "scratch": field(r";\s*ScratchSize:\s*(\d+)"),
        "lds": max(compiled.metadata.shared, field(r";\s*LDSByteSize:\s*(\d+)")),
        "occupancy": field(r";\s*Occupancy:\s*(\d+)"),
    }


def nvidia_report(compiled: Any, num_warps: int) -> dict:
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        report = subprocess.run([tool, "-res-usage", cubin.name], capture_output=True, text=True, check=True).stdout
    registers, local = (int(v) for v in re.search(r"REG:(\d+) .*LOCAL:(\d+)", report).groups())
    # 64K registers per SM, allocated per warp in units of 256; 4 sub-partitions, 16 warps each at most
    per_warp = -(-max(registers, 1) * 32 // 256) * 256
    programs = 65536 // (per_warp * num_warps)
    return {
        "regs": registers,
        "spills": local,
        "scratch": local,
        "lds": compiled.metadata.shared,
        "occupancy": min(16, programs * num_warps // 4),
    }


def compile_one(job: tuple) -> dict:
    kernel_path, target, types, constexprs, attrs, options, profile_name = job
    module, _, name = kernel_path.partition(":")
    import importlib

    kernel = getattr(importlib.import_module(module), name)
    row = {
        "kernel": name,
        "target": target.name,
        "profile": profile_name,
        "options": options,
        "constexprs": {k: repr(v) for k, v in constexprs.items()},
    }
    try:
        source = ASTSource(kernel, types, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(
            source, target=GPUTarget(target.backend, target.arch, target.warp_size), options=options
        )
        report = (
            amd_report(compiled) if target.backend == "hip" else nvidia_report(compiled, options.get("num_warps", 4))
        )
    except Exception as exc:
        return {**row, "error": f"{type(exc).__name__}: {str(exc)[-2000:]}"}
    problems = []
    if report["spills"] or report["scratch"]:
        problems.append(f"spills ({report['spills']} registers, {report['scratch']} bytes of scratch)")
    if report["lds"] > target.lds_bytes:
        problems.append(f"needs {report['lds']} bytes of LDS / shared memory, {target.lds_bytes} exist")
    if target.backend == "hip" and report["occupancy"] < MIN_WAVES_PER_SIMD:
        problems.append(f"{report['occupancy']} wave(s) per SIMD, below {MIN_WAVES_PER_SIMD}")
    return {**row, **report, "problems": problems}


def jobs(backends: list[str]) -> tuple[list[tuple], list[str]]:
    found, errors, seen = [], [], set()
    for backend in backends:
        for preset, mock, targets in mock_presets()[backend]:
            launches, profile, capture_errors = capture(backend, mock)
            errors += [f"{backend} {preset}: {e}" for e in capture_errors]
            name = getattr(profile, "name", preset)
            for kernel, (types, constexprs, attrs, options) in launches:
                path = f"{kernel.fn.__module__}:{kernel.fn.__name__}"
                for target in targets:
                    key = (path, target.name, repr(types), repr(constexprs), repr(sorted(attrs.items())), repr(options))
                    if key not in seen:
                        seen.add(key)
                        found.append((path, target, types, constexprs, attrs, options, name))
    return found, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=("rocm", "cuda"), help="default: both")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write every row to this file")
    parser.add_argument(
        "--all",
        action="store_true",
        help="also every conformance shape (small ones too), the op samples, and float32",
    )
    ns = parser.parse_args(argv)
    if ns.all:
        SIZES[0] = "all"
        DTYPES.append(torch.float32)
    todo, errors = jobs(ns.backend or ["rocm", "cuda"])
    print(f"compile_kernels: {len(todo)} distinct configurations to compile", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TRITON_CACHE_DIR"] = cache  # every run compiles: nothing cached between runs
        with ProcessPoolExecutor(max_workers=max(1, ns.jobs)) as pool:
            rows = list(pool.map(compile_one, todo, chunksize=1))
    rows.sort(key=lambda r: (r["target"], r["kernel"], json.dumps(r["constexprs"], sort_keys=True)))
    header = f"{'kernel':34} {'target':7} {'warps':>5} {'stages':>6} {'regs':>4} {'spills':>6} {'LDS':>7} {'waves/SIMD':>10}  constexprs"
    print(header)
    failures = list(errors)
    for r in rows:
        if "error" in r:
            failures.append(f"{r['kernel']} {r['target']} {r['constexprs']}: compile error: {r['error']}")
            continue
        occupancy = f"{r['occupancy']}" + ("" if r["target"].startswith("gfx") else " w/SMSP")
        consts = " ".join(f"{k}={v}" for k, v in r["constexprs"].items() if k.isupper())
        print(
            f"{r['kernel']:34} {r['target']:7} {r['options'].get('num_warps', ''):>5} {r['options'].get('num_stages', ''):>6} "
            f"{r['regs']:>4} {r['spills']:>6} {r['lds']:>7} {occupancy:>10}  {consts}"
        )
        failures += [f"{r['kernel']} {r['target']} {consts}: {p}" for p in r["problems"]]
    targets = sorted({r["target"] for r in rows})
    print(f"\n{len(rows)} configurations compiled for {', '.join(targets)}; {len(failures)} problem(s)")
    if ns.json:
        with open(ns.json, "w") as out:
            json.dump(rows, out, indent=1, default=str)
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
