"""The NPU kernels' structure, as the strict mock records it.

A2/A3 vector cores have no integer vector compare: each one runs scalar, lane
by lane. So a row walked in blocks may compare lanes (a tail mask, the target
column) a fixed number of times per row, never once per block: the count of
vector integer compares must not grow with the number of whole blocks. The
rows below are one whole block plus a tail, then three, so the old kernels
(a mask and a target compare on every block) fail.
"""

from __future__ import annotations

import pytest
import torch

from liger_conformance.mocks import npu as npu_mock

ROWS = 2


def _compares(kernel_prefix: str) -> int:
    counts = npu_mock.monitor.vector_int_compares
    return sum(count for name, count in counts.items() if name.startswith(kernel_prefix))


def _block(kernel, variant: dict, width: int, dtype: torch.dtype, **kwargs: int) -> int:
    """The block the planner gives ``kernel`` launched with constexprs ``variant``."""
    from liger_kernel_ascend.ops._common import row_plan

    return row_plan(kernel, ROWS, width, dtype, torch.device("cpu"), variant, **kwargs).block


def _cross_entropy_compares(whole_blocks: int, dtype: torch.dtype) -> tuple[int, int]:
    from liger_kernel_ascend.ops.cross_entropy import CrossEntropyFunction, _cross_entropy_kernel

    # the forward's variant (label smoothing, no gradient written); the count must not grow in either pass
    variant = dict(HAS_WEIGHT=False, HAS_SOFTCAP=False, HAS_SMOOTHING=True, HAS_Z=False, TOKEN_SCALING=False,
                   WRITE_Z=False, WRITE_PRED=False, WRITE_GRAD=False)  # fmt: skip
    block = _block(_cross_entropy_kernel, variant, 1 << 20, dtype, max_rows_per_step=1)
    vocab = whole_blocks * block + 5
    logits = torch.randn(ROWS, vocab, dtype=dtype)
    target = torch.tensor([3, vocab - 2])  # one target in a whole block, one in the tail
    x = logits.clone().requires_grad_()
    npu_mock.monitor.vector_int_compares.clear()
    loss = CrossEntropyFunction.apply(x, target, None, -100, 0.0, 0.1)[0]
    forward = _compares("_cross_entropy_kernel")
    loss.backward()
    backward = _compares("_cross_entropy_kernel") - forward
    expected = torch.nn.functional.cross_entropy(logits.float(), target, label_smoothing=0.1)
    torch.testing.assert_close(loss.float(), expected, rtol=1e-5, atol=1e-5)
    reference = logits.float().requires_grad_()
    torch.nn.functional.cross_entropy(reference, target, label_smoothing=0.1).backward()
    rtol, atol = (1e-5, 1e-6) if dtype == torch.float32 else (2e-2, 2e-3)  # bf16 gradient storage
    torch.testing.assert_close(x.grad.float(), reference.grad, rtol=rtol, atol=atol)
    return forward, backward


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_cross_entropy_compares_do_not_grow_with_the_vocabulary(dtype):
    with npu_mock.active():
        one = _cross_entropy_compares(1, dtype)
        three = _cross_entropy_compares(3, dtype)
    assert one == three, f"vector integer compares (forward, backward): {one} at 1 whole block, {three} at 3"
    # per row: the tail mask in each pass, and the target column in pass 2
    assert three[0] <= ROWS and three[1] <= 3 * ROWS


def _layer_norm_compares(whole_blocks: int) -> tuple[int, int]:
    from liger_kernel_ascend.ops.layer_norm import LayerNormFunction, _layer_norm_forward

    block = _block(_layer_norm_forward, dict(HAS_B=True), 1 << 20, torch.float32)
    width = whole_blocks * block + 5
    x = torch.randn(ROWS, width, requires_grad=True)
    w = torch.randn(width, requires_grad=True)
    b = torch.randn(width, requires_grad=True)
    dy = torch.randn(ROWS, width)
    npu_mock.monitor.vector_int_compares.clear()
    y = LayerNormFunction.apply(x, w, b, 1e-6)
    forward = _compares("_layer_norm_forward")
    y.backward(dy)
    backward = _compares("_layer_norm_backward")
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    reference = torch.nn.functional.layer_norm(leaves[0], (width,), leaves[1], leaves[2], 1e-6)
    reference.backward(dy)
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-4)
    for got, want in zip((x.grad, w.grad, b.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return forward, backward


def _walked_blocks() -> int:
    """The fewest whole blocks (plus a tail) whose row the forward walks in blocks: narrower
    rows fit one wider tile, a path with no walk to count compares over."""
    from liger_kernel_ascend.ops._common import row_plan
    from liger_kernel_ascend.ops.layer_norm import _layer_norm_forward

    block = _block(_layer_norm_forward, dict(HAS_B=True), 1 << 20, torch.float32)
    for whole in range(1, 64):
        plan = row_plan(_layer_norm_forward, ROWS, whole * block + 5, torch.float32, torch.device("cpu"),
                        dict(HAS_B=True))  # fmt: skip
        if plan.sub_blocks > 1:
            return whole
    raise AssertionError("no row width below 64 blocks is walked in blocks")


def test_layer_norm_compares_do_not_grow_with_the_row():
    with npu_mock.active():
        fewest = _walked_blocks()
        first = _layer_norm_compares(fewest)
        more = _layer_norm_compares(fewest + 2)
    assert first == more, (
        f"vector integer compares (forward, backward): {first} at {fewest} whole blocks, {more} at {fewest + 2}"
    )


@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
def test_rope_rotates_q_and_k_in_one_launch(unsqueeze_dim):
    batch, q_heads, k_heads, seq, head_dim = 2, 4, 2, 5, 16
    layout = (lambda h: (batch, h, seq, head_dim)) if unsqueeze_dim == 1 else (lambda h: (batch, seq, h, head_dim))
    q = torch.randn(layout(q_heads), requires_grad=True)
    k = torch.randn(layout(k_heads), requires_grad=True)
    angles = torch.randn(1, seq, head_dim // 2).repeat(1, 1, 2)
    cos, sin = angles.cos(), angles.sin()
    with npu_mock.active():
        from liger_kernel_ascend.ops.rope import RopeFunction

        start = len(npu_mock.monitor.launches)
        q_out, k_out = RopeFunction.apply(q, k, cos, sin, None, unsqueeze_dim)
        forward = npu_mock.monitor.launches[start:]
        (q_out.sum() + 2 * k_out.sum()).backward()
        backward = npu_mock.monitor.launches[start + len(forward) :]
    assert forward == ["_rope_kernel"] and backward == ["_rope_kernel"]

    def rotate_half(x):
        return torch.cat((-x[..., head_dim // 2 :], x[..., : head_dim // 2]), dim=-1)

    c, s = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    ref_q, ref_k = (x.detach().clone().requires_grad_() for x in (q, k))
    want_q, want_k = ref_q * c + rotate_half(ref_q) * s, ref_k * c + rotate_half(ref_k) * s
    (want_q.sum() + 2 * want_k.sum()).backward()
    torch.testing.assert_close(q_out, want_q)
    torch.testing.assert_close(k_out, want_k)
    torch.testing.assert_close(q.grad, ref_q.grad)
    torch.testing.assert_close(k.grad, ref_k.grad)


def _no_torch_fallback(caplog: pytest.LogCaptureFixture) -> None:
    fallbacks = [r.getMessage() for r in caplog.records if "runs on the torch backend" in r.getMessage()]
    assert not fallbacks, fallbacks


def _mrope_reference(x, cos, sin, mrope_section, unsqueeze_dim):
    sections = list(mrope_section) * 2
    merged = [
        torch.cat([part[i % 3] for i, part in enumerate(t.split(sections, dim=-1))], dim=-1).unsqueeze(unsqueeze_dim)
        for t in (cos, sin)
    ]
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * merged[0] + rotated * merged[1]


@pytest.mark.parametrize("unsqueeze_dim", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    ("head_dim", "mrope_section"),
    # head_dim 16: every head pitch 32-byte aligned; 10: none is (20 or 40 bytes, 60 or 120 across seq)
    [(16, [2, 3, 3]), (10, [1, 2, 2])],
    ids=["aligned", "unaligned"],
)
def test_mrope_reads_its_sections_contiguously_and_stays_on_the_npu(
    unsqueeze_dim, dtype, head_dim, mrope_section, caplog
):
    batch, q_heads, k_heads, seq = 2, 4, 2, 3
    layout = (lambda h: (batch, h, seq, head_dim)) if unsqueeze_dim == 1 else (lambda h: (batch, seq, h, head_dim))
    q = torch.randn(layout(q_heads), dtype=dtype, requires_grad=True)
    k = torch.randn(layout(k_heads), dtype=dtype, requires_grad=True)
    cos, sin = (f(torch.randn(3, batch, seq, head_dim)).to(dtype) for f in (torch.cos, torch.sin))
    dq, dk = torch.randn(q.shape, dtype=dtype), torch.randn(k.shape, dtype=dtype)
    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        from liger_kernel_ascend.ops.qwen2vl_mrope import Qwen2VLMRopeFunction

        npu_mock.monitor.discrete_loads.clear()
        start = len(npu_mock.monitor.launches)
        q_out, k_out = Qwen2VLMRopeFunction.apply(q, k, cos, sin, mrope_section, unsqueeze_dim)
        torch.autograd.backward((q_out, k_out), (dq, dk))
        launches = npu_mock.monitor.launches[start:]
        discrete = dict(npu_mock.monitor.discrete_loads)
    _no_torch_fallback(caplog)
    assert launches == ["_mrope_kernel", "_mrope_kernel"]
    assert discrete == {}, f"gather-style loads per kernel: {discrete}"
    ref_q, ref_k = (x.detach().float().requires_grad_() for x in (q, k))
    want_q = _mrope_reference(ref_q, cos.float(), sin.float(), mrope_section, unsqueeze_dim)
    want_k = _mrope_reference(ref_k, cos.float(), sin.float(), mrope_section, unsqueeze_dim)
    torch.autograd.backward((want_q, want_k), (dq.float(), dk.float()))
    tol = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for got, want in ((q_out, want_q), (k_out, want_k), (q.grad, ref_q.grad), (k.grad, ref_k.grad)):
        torch.testing.assert_close(got.float(), want, **tol)


def _group_norm_compares(whole_blocks: int) -> tuple[int, int]:
    from liger_kernel_ascend.ops.group_norm import GroupNormFunction, _group_norm_backward, tiles

    channels, groups = 4, 2
    # the backward's blocks are the narrower (its tiles cost more): whole blocks in both passes
    block_s = tiles(_group_norm_backward, torch.float32, torch.device("cpu"), channels // groups, 1 << 20, 4).block_s
    positions = whole_blocks * block_s + 5
    x = torch.randn(ROWS // 2 + 1, channels, positions, requires_grad=True)
    w = torch.randn(channels, requires_grad=True)
    b = torch.randn(channels, requires_grad=True)
    dy = torch.randn(x.shape)
    npu_mock.monitor.vector_int_compares.clear()
    y = GroupNormFunction.apply(x, w, b, channels, groups, 1e-6)
    forward = _compares("_group_norm_forward")
    y.backward(dy)
    backward = _compares("_group_norm_backward")
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    reference = torch.nn.functional.group_norm(leaves[0], groups, leaves[1], leaves[2], 1e-6)
    reference.backward(dy)
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-4)
    for got, want in zip((x.grad, w.grad, b.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return forward, backward


def test_group_norm_compares_do_not_grow_with_the_row():
    with npu_mock.active():
        one = _group_norm_compares(1)
        three = _group_norm_compares(3)
    assert one == three, f"vector integer compares (forward, backward): {one} at 1 whole block, {three} at 3"


@pytest.mark.parametrize(
    ("width", "dy_pitch"),
    # 33 fp32 columns: x, y and dx rows 132 bytes apart; 40 columns (160 bytes, aligned)
    # with a gradient whose rows are 44 elements (176 bytes) apart: only the backward is unaligned
    [(33, 33), (40, 44)],
    ids=["unaligned-rows", "unaligned-gradient"],
)
def test_dyt_stays_on_the_npu_at_an_unaligned_row_pitch(width, dy_pitch, caplog):
    from liger_kernel_ascend.ops.dyt import DyTFunction

    x = torch.randn(6, width, requires_grad=True)
    alpha = torch.tensor([0.7], requires_grad=True)
    gamma = torch.randn(width, requires_grad=True)
    beta = torch.randn(width, requires_grad=True)
    dy = torch.randn(6, dy_pitch)[:, :width]
    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        start = len(npu_mock.monitor.launches)
        y = DyTFunction.apply(x, alpha, gamma, beta)
        y.backward(dy)
        launches = npu_mock.monitor.launches[start:]
    _no_torch_fallback(caplog)
    assert launches == ["_dyt_forward_kernel", "_dyt_backward_kernel"]
    leaves = [t.detach().clone().requires_grad_() for t in (x, alpha, gamma, beta)]
    want = leaves[2] * torch.tanh(leaves[1] * leaves[0]) + leaves[3]
    want.backward(dy)
    torch.testing.assert_close(y, want)
    for got, ref in zip((x.grad, alpha.grad, gamma.grad, beta.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 4, 3, 5), (3, 6, 7)], ids=["2x4x3x5", "3x6x7"])
def test_group_norm_stays_on_the_npu_at_an_odd_spatial_size(shape, caplog):
    from liger_kernel_ascend.ops.group_norm import GroupNormFunction

    channels, groups = shape[1], 2
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(channels, requires_grad=True)
    b = torch.randn(channels, requires_grad=True)
    dy = torch.randn(shape)
    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        start = len(npu_mock.monitor.launches)
        y = GroupNormFunction.apply(x, w, b, channels, groups, 1e-6)
        y.backward(dy)
        launches = npu_mock.monitor.launches[start:]
    _no_torch_fallback(caplog)
    assert [name.removesuffix("_kernel") for name in launches] == ["_group_norm_forward", "_group_norm_backward"]
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    reference = torch.nn.functional.group_norm(leaves[0], groups, leaves[1], leaves[2], 1e-6)
    reference.backward(dy)
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-4)
    for got, want in zip((x.grad, w.grad, b.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _group_norm_launch_tiles(x, w, b, groups, dy) -> list[dict]:
    """Forward and backward of group_norm under the strict mock: the tile constexprs of each launch."""
    from triton.runtime import interpreter

    from liger_kernel_ascend.ops.group_norm import GroupNormFunction

    recorded = []
    with npu_mock.active():
        checked_launch = interpreter.GridExecutor.__call__

        def record(executor, *args, **kwargs):
            recorded.append({k: kwargs[k] for k in ("BLOCK_C", "BLOCK_S", "SINGLE_TILE")})
            return checked_launch(executor, *args, **kwargs)

        interpreter.GridExecutor.__call__ = record
        try:
            y = GroupNormFunction.apply(x, w, b, x.shape[1], groups, 1e-6)
            y.backward(dy)
        finally:
            interpreter.GridExecutor.__call__ = checked_launch
    leaves = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    reference = torch.nn.functional.group_norm(leaves[0], groups, leaves[1], leaves[2], 1e-6)
    reference.backward(dy)
    torch.testing.assert_close(y, reference, rtol=1e-4, atol=1e-4)
    for got, want in zip((x.grad, w.grad, b.grad), (t.grad for t in leaves)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return recorded


@pytest.mark.parametrize(
    ("shape", "groups"),
    # 6 channels per group of 16 positions (64-byte position rows); 3 channels of one position each
    [((2, 12, 4, 4), 2), ((4, 6), 2)],
    ids=["6-channels", "3-channels-1-position"],
)
def test_group_norm_holds_a_small_group_in_one_tile_whatever_its_channel_count(shape, groups):
    # A group whose channel count has only small power-of-two divisors (6: 2, 3: 1) is not cut into
    # tiles of that many channels: the channel block is the next power of two, its tail masked.
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(shape[1], requires_grad=True)
    b = torch.randn(shape[1], requires_grad=True)
    tiles = _group_norm_launch_tiles(x, w, b, groups, torch.randn(shape))
    channels_per_group = shape[1] // groups
    positions = x[0, 0].numel()
    assert len(tiles) == 2  # one forward and one backward launch
    for tile in tiles:
        assert tile["SINGLE_TILE"] and tile["BLOCK_C"] >= channels_per_group and tile["BLOCK_S"] >= positions, tile


def test_group_norm_walks_a_wide_group_in_channel_blocks_with_a_masked_tail():
    from liger_kernel_ascend.ops.group_norm import _group_norm_backward, _group_norm_forward, tiles

    def walked_with_tail(kernel, channels_per_group, positions):
        plan = tiles(kernel, torch.float32, torch.device("cpu"), channels_per_group, positions, 4, 4)
        return not plan.single and plan.block_c > 1 and channels_per_group % plan.block_c

    with npu_mock.active():
        # the narrowest group the calibrated planner walks in channel blocks that do not divide it
        shape = next(
            (1, 2 * cpg, positions)
            for positions in (64, 128, 256, 512, 1024, 2048)
            for cpg in (3, 5, 6, 10, 12)
            if walked_with_tail(_group_norm_forward, cpg, positions)
            and walked_with_tail(_group_norm_backward, cpg, positions)
        )
    x = torch.randn(shape, requires_grad=True)
    w = torch.randn(shape[1], requires_grad=True)
    b = torch.randn(shape[1], requires_grad=True)
    for tile in _group_norm_launch_tiles(x, w, b, 2, torch.randn(shape)):
        assert not tile["SINGLE_TILE"] and (shape[1] // 2) % tile["BLOCK_C"], tile


def test_relu_squared_runs_the_portable_kernels_within_the_unified_buffer(caplog):
    """Squared ReLU has no NPU kernel of its own: the backend's portable table
    routes it to liger_kernel.triton.relu_squared, whose widest flat tile (the
    NPU profile's gate tile) the strict mock checks against the UB."""
    from liger_kernel.dispatch import device_profile
    from liger_kernel.ops import LigerReLUSquaredFunction
    from liger_kernel.triton.swiglu import gate_launch

    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        route = LigerReLUSquaredFunction.route("npu")
        profile = device_profile(torch.device("cpu"))
        block = gate_launch(profile, 1 << 30, 4)[0].block
        # two full tiles and a tail, in bfloat16 as a model's MLP runs it
        x = (torch.randn(2 * block + 5) * 3).to(torch.bfloat16).requires_grad_()
        hidden = x * 1.0
        start = len(npu_mock.monitor.launches)
        y = route.apply(hidden)
        y.backward(torch.ones_like(y))
        launches = npu_mock.monitor.launches[start:]
        peak, ub = npu_mock.monitor.peak, npu_mock.monitor.ub_bytes
    _no_torch_fallback(caplog)
    assert route.__module__ == "liger_kernel.triton.relu_squared"
    assert launches == ["_relu_squared_forward_kernel", "_relu_squared_backward_kernel"]
    assert peak <= ub
    reference = x.detach().float()
    torch.testing.assert_close(y.float(), torch.relu(reference).square(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(x.grad.float(), 2 * torch.relu(reference), rtol=1e-2, atol=1e-2)


def test_clamped_swiglu_reads_its_pairs_without_a_gather_and_stays_on_the_npu(caplog):
    from liger_kernel_ascend.ops.clamped_swiglu import ClampedSwiGLUFunction

    # more outputs than one tile per vector core and a tail; scale 5 puts values beyond the limit of 7
    x = torch.randn(48 * 1024 + 5, 2).mul(5).reshape(1, -1).requires_grad_(True)
    dc = torch.randn(1, x.shape[-1] // 2)
    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        npu_mock.monitor.discrete_loads.clear()
        start = len(npu_mock.monitor.launches)
        c = ClampedSwiGLUFunction.apply(x, 1.702, 7.0)
        c.backward(dc)
        launches = npu_mock.monitor.launches[start:]
        discrete = dict(npu_mock.monitor.discrete_loads)
    _no_torch_fallback(caplog)
    assert launches == ["_clamped_swiglu_forward_kernel", "_clamped_swiglu_backward_kernel"]
    assert discrete == {}, f"gather-style loads per kernel: {discrete}"
    ref = x.detach().clone().requires_grad_(True)
    g, u = ref[..., ::2].clamp(max=7.0), ref[..., 1::2].clamp(-7.0, 7.0)
    want = (u + 1) * g * torch.sigmoid(1.702 * g)
    want.backward(dc)
    torch.testing.assert_close(c, want)
    torch.testing.assert_close(x.grad, ref.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize(
    "head_dim",
    # 16: every head pitch 32-byte aligned in fp32 and bf16; 10: none is (40 or 20 bytes), so one head per tile
    [16, 10],
    ids=["aligned", "unaligned"],
)
def test_llama4_rope_is_one_launch_each_way_and_stays_on_the_npu(dtype, head_dim, caplog):
    batch, q_heads, k_heads, seq = 2, 4, 2, 3
    q = torch.randn(batch, seq, q_heads, head_dim, dtype=dtype, requires_grad=True)
    k = torch.randn(batch, seq, k_heads, head_dim, dtype=dtype, requires_grad=True)
    angles = torch.randn(1, seq, head_dim // 2)
    freqs_cis = torch.polar(torch.ones_like(angles), angles)
    dq, dk = torch.randn(q.shape, dtype=dtype), torch.randn(k.shape, dtype=dtype)
    with npu_mock.active(), caplog.at_level("WARNING", logger="liger_kernel"):
        from liger_kernel_ascend.ops.llama4_rope import Llama4RopeFunction

        npu_mock.monitor.discrete_loads.clear()
        start = len(npu_mock.monitor.launches)
        q_out, k_out = Llama4RopeFunction.apply(q, k, freqs_cis)
        torch.autograd.backward((q_out, k_out), (dq, dk))
        launches = npu_mock.monitor.launches[start:]
        discrete = dict(npu_mock.monitor.discrete_loads)
    _no_torch_fallback(caplog)
    assert launches == ["_llama4_rope_kernel", "_llama4_rope_kernel"]
    # whole head rows, split into the pairs on chip: affine addresses, no gather
    assert discrete == {}, f"gather-style loads per kernel: {discrete}"

    def multiply(x):
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs_cis[:, :, None, :]).flatten(3)

    ref_q, ref_k = (x.detach().float().requires_grad_() for x in (q, k))
    want_q, want_k = multiply(ref_q), multiply(ref_k)
    torch.autograd.backward((want_q, want_k), (dq.float(), dk.float()))
    tol = {} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 2e-2}
    for got, want in ((q_out, want_q), (k_out, want_k), (q.grad, ref_q.grad), (k.grad, ref_k.grad)):
        torch.testing.assert_close(got.float(), want, **tol)
