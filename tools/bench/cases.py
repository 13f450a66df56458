"""The benchmarked ops: shapes, inputs, torch eager references and targets.

Every op has two implementations here:

* ``torch``: plain PyTorch written the way a model would without this project
  (Transformers' LlamaRMSNorm in fp32, ``F.cross_entropy`` on fp32 logits, ...);
* ``liger``: the public ``liger_kernel.ops.<module>.Liger<Op>Function`` with
  positional arguments only. Both this project and the liger-kernel 0.8.5 wheel
  expose that API, so the same adapter measures either one; which one is
  measured depends only on which ``liger_kernel`` the process imports (the
  peer's lives in a separate process, see :mod:`bench.peer`).

Nothing here imports ``liger_kernel`` at module level: the peer worker imports
this module with the peer's package on its path.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

EPS = 1e-6
IGNORE_INDEX = -100

#: dims that keep their size under --scale (they fix the kernel's inner shape)
FIXED_DIMS = frozenset({"batch", "heads", "kv_heads", "head_dim", "channels", "groups", "experts", "top_k"})

Inputs = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A row of ../shared/TARGETS.md: the goal and the two reference runs."""

    ms: float
    mib: float
    torch_ref: tuple[float, float]
    peer_ref: tuple[float, float]


TARGETS: dict[str, Target] = {
    "rms_norm": Target(0.25, 66, (1.76, 832), (0.38, 66)),
    "layer_norm": Target(0.20, 132, (0.23, 128), (0.58, 132)),
    "swiglu": Target(0.63, 224, (1.09, 896), (0.63, 224)),
    "geglu": Target(0.65, 224, (1.09, 896), (0.68, 224)),
    "rope": Target(0.30, 224, (1.17, 288), (0.49, 224)),
    "cross_entropy": Target(2.3, 64, (17.8, 12024), (2.32, 0.1)),
    "fused_linear_cross_entropy": Target(45.0, 1200, (51.8, 12024), (64.2, 1129)),
}


@dataclass(frozen=True)
class Case:
    """One op under benchmark.

    dims: named sizes at full scale (TARGETS.md); ``tokens`` is batch × seq.
    make: builds the inputs from (dims, dtype, device); the dict holds the
        tensors the op reads, ``leaves`` (tensors whose gradient is computed),
        ``grads`` (upstream gradients of the outputs, or None for a loss) and
        optionally ``fresh``: inputs that are activations in a model (name ->
        leaf), given to every step as a new non-leaf copy of the leaf made
        before the step, outside its time and memory. The op contract lets a
        backend overwrite such activations with their gradients (never a leaf),
        which is how cross-entropy and the gates keep within the memory of their
        inputs; a copy reused across steps would carry the previous step's
        overwrites and autograd's view records.
    eager: the torch eager reference, inputs -> output(s).
    module, function: where the public liger_kernel Function lives.
    call: how to call that Function with positional arguments.
    route: the dispatched op whose backend serves a composite case (the
        tiled MLP runs the swiglu op per tile); the case's name by default.
    """

    name: str
    dims: dict[str, int]
    make: Callable[[dict[str, int], torch.dtype, torch.device], Inputs]
    eager: Callable[[Inputs], Any]
    module: str
    function: str
    call: Callable[[Any, Inputs], Any]
    route: str = ""

    @property
    def routed_op(self) -> str:
        return self.route or self.name

    def sized(self, scale: float = 1.0, tokens: int | None = None) -> dict[str, int]:
        """Dims shrunk by ``scale``, with the token count set to ``tokens`` if given."""
        dims = {k: v if k in FIXED_DIMS else max(2, round(v * scale)) for k, v in self.dims.items()}
        if tokens is not None:
            dims["tokens"] = tokens
        if "seq" in dims:
            dims["seq"] = max(2, dims["tokens"] // dims["batch"])
            dims["tokens"] = dims["seq"] * dims["batch"]
        return dims

    def public_function(self) -> Any:
        """``liger_kernel.ops.<module>.<Function>`` of whichever liger_kernel this process imports."""
        return getattr(importlib.import_module(f"liger_kernel.ops.{self.module}"), self.function)


def _rand(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, grad: bool, std: float = 1.0):
    t = torch.randn(shape, dtype=torch.float32, device=device).mul_(std).to(dtype)
    return t.requires_grad_(grad)


def _first(out: Any) -> Any:
    """The loss of a Function that returns (loss, z_loss, ...) or the loss alone."""
    return out[0] if isinstance(out, tuple | list) else out


# -- torch eager references ------------------------------------------------
def eager_rms_norm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    # As Transformers' LlamaRMSNorm: statistics in fp32, cast back, then weight.
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
    return w * h.to(x.dtype)


def eager_fused_add_rms_norm(x: torch.Tensor, r: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    s = x + r
    return eager_rms_norm(s, w), s


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def eager_rope(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def eager_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # Transformers' causal-LM loss upcasts logits to fp32 before the loss.
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX)


# -- inputs ----------------------------------------------------------------
def _targets(rows: int, vocab: int, device: torch.device) -> torch.Tensor:
    target = torch.randint(0, vocab, (rows,), device=device)
    target[::7] = IGNORE_INDEX
    return target


def make_norm(dims, dtype, device, bias=False, residual=False) -> Inputs:
    T, H = dims["tokens"], dims["hidden"]
    x = _rand((T, H), dtype, device, True)
    w = (1 + 0.1 * torch.randn(H, device=device)).to(dtype).requires_grad_(True)
    inputs = {"x": x, "w": w, "leaves": [x, w], "grads": [_rand((T, H), dtype, device, False)]}
    if bias:
        inputs["b"] = _rand((H,), dtype, device, True, 0.1)
        inputs["leaves"].append(inputs["b"])
    if residual:
        inputs["r"] = _rand((T, H), dtype, device, True)
        inputs["leaves"].append(inputs["r"])
        inputs["grads"].append(_rand((T, H), dtype, device, False))
    return inputs


def make_gate(dims, dtype, device) -> Inputs:
    shape = (dims["tokens"], dims["inter"])
    a, b = _rand(shape, dtype, device, True), _rand(shape, dtype, device, True)
    # a and b are activations (the gate and up projections' outputs), which the
    # op contract lets a backend overwrite with their gradients.
    return {"leaves": [a, b], "grads": [_rand(shape, dtype, device, False)], "fresh": {"a": a, "b": b}}


def make_activation(dims, dtype, device) -> Inputs:
    x = _rand((dims["tokens"], dims["inter"]), dtype, device, True)
    # x is the up projection's output, which the op contract lets a backend overwrite with dx
    return {"leaves": [x], "grads": [_rand(tuple(x.shape), dtype, device, False)], "fresh": {"x": x}}


def make_embedding(dims, dtype, device) -> Inputs:
    table = _rand((dims["vocab"], dims["hidden"]), dtype, device, True, 0.02)
    ids = torch.randint(0, dims["vocab"], (dims["tokens"],), device=device)
    return {
        "table": table,
        "ids": ids,
        "leaves": [table],
        "grads": [_rand((dims["tokens"], dims["hidden"]), dtype, device, False)],
    }


def make_clamped_gate(dims, dtype, device) -> Inputs:
    # std 4: GPT-OSS's clamps (limit 7) act on a few percent of the values
    x = _rand((dims["tokens"], 2 * dims["inter"]), dtype, device, True, 4.0)
    # x is the experts' gate/up projection output, which the op contract lets a backend overwrite
    return {"leaves": [x], "grads": [_rand((dims["tokens"], dims["inter"]), dtype, device, False)], "fresh": {"x": x}}


def eager_clamped_swiglu(x: torch.Tensor, alpha: float = 1.702, limit: float = 7.0) -> torch.Tensor:
    # As Transformers' GptOssExperts._apply_gate, in the input dtype.
    gate, up = x[..., ::2].clamp(max=limit), x[..., 1::2].clamp(-limit, limit)
    return (up + 1) * gate * torch.sigmoid(gate * alpha)


def make_rope(dims, dtype, device) -> Inputs:
    B, S, D = dims["batch"], dims["seq"], dims["head_dim"]
    q = _rand((B, dims["heads"], S, D), dtype, device, True)
    k = _rand((B, dims["kv_heads"], S, D), dtype, device, True)
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    angles = torch.outer(torch.arange(S, device=device, dtype=torch.float32), inv_freq)
    angles = torch.cat((angles, angles), dim=-1)[None]
    grads = [_rand(tuple(q.shape), dtype, device, False), _rand(tuple(k.shape), dtype, device, False)]
    return {
        "q": q,
        "k": k,
        "cos": angles.cos().to(dtype),
        "sin": angles.sin().to(dtype),
        "leaves": [q, k],
        "grads": grads,
    }


def make_cross_entropy(dims, dtype, device) -> Inputs:
    leaf = _rand((dims["tokens"], dims["vocab"]), dtype, device, True)
    return {
        "target": _targets(dims["tokens"], dims["vocab"], device),
        "leaves": [leaf],
        "grads": None,
        "fresh": {"logits": leaf},  # a model's logits are an activation
    }


def make_flce(dims, dtype, device) -> Inputs:
    T, H, V = dims["tokens"], dims["hidden"], dims["vocab"]
    h = _rand((T, H), dtype, device, True)
    w = _rand((V, H), dtype, device, True, 1 / math.sqrt(H))
    return {"h": h, "w": w, "target": _targets(T, V, device), "leaves": [h, w], "grads": None}


def eager_jsd(log_q: torch.Tensor, log_p: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """Generalized JSD of student log-probabilities log_q and teacher log_p, mean over rows, in fp32."""
    log_q, log_p = log_q.float(), log_p.float()
    q, p = log_q.exp(), log_p.exp()
    log_m = (beta * p + (1 - beta) * q).log()
    return (beta * p * (log_p - log_m) + (1 - beta) * q * (log_q - log_m)).sum() / log_q.shape[0]


def make_jsd(dims, dtype, device) -> Inputs:
    T, V = dims["tokens"], dims["vocab"]
    student = torch.log_softmax(torch.randn(T, V, device=device), -1).to(dtype).requires_grad_()
    teacher = torch.log_softmax(2 * torch.randn(T, V, device=device), -1).to(dtype)
    return {"log_q": student, "log_p": teacher, "leaves": [student], "grads": None}


def make_fused_linear_jsd(dims, dtype, device) -> Inputs:
    T, H, V = dims["tokens"], dims["hidden"], dims["vocab"]
    h = _rand((T, H), dtype, device, True)
    w = _rand((V, H), dtype, device, True, 1 / math.sqrt(H))
    teacher_h = _rand((T, H), dtype, device, False)
    teacher_w = _rand((V, H), dtype, device, False, 2 / math.sqrt(H))
    return {"h": h, "w": w, "teacher_h": teacher_h, "teacher_w": teacher_w, "leaves": [h, w], "grads": None}


def make_fused_linear_kl_div(dims, dtype, device) -> Inputs:
    T, H, V = dims["tokens"], dims["hidden"], dims["vocab"]
    h = _rand((T, H), dtype, device, True)
    w = _rand((V, H), dtype, device, True, 1 / math.sqrt(H))
    target = torch.softmax(2 * torch.randn(T, V, device=device), -1).to(dtype)
    return {"h": h, "w": w, "target": target, "leaves": [h, w], "grads": None}


def eager_fused_linear_kl_div(h: torch.Tensor, w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    log_s = torch.log_softmax((h @ w.t()).float(), -1)
    t = target.float()
    return (t * (t.clamp(min=1e-10).log() - log_s)).sum() / h.shape[0]


def make_ce_tvd(dims, dtype, device) -> Inputs:
    T, V = dims["tokens"], dims["vocab"]
    student = _rand((T, V), dtype, device, True)
    teacher = _rand((T, V), dtype, device, False, 2.0)
    target = torch.randint(0, V, (T,), device=device)
    return {"student": student, "teacher": teacher, "target": target, "leaves": [student], "grads": None}


def eager_ce_tvd(student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    s = student.float()
    ce = F.cross_entropy(s, target, reduction="none")
    tvd = 0.5 * (torch.softmax(s, -1) - torch.softmax(teacher.float(), -1)).abs().sum(-1)
    return (ce + tvd).sum()


def eager_tvd(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    return 0.5 * (p.float() - q.float()).abs().sum() / p.shape[0]


def eager_sparsemax(x: torch.Tensor) -> torch.Tensor:
    # the textbook sort-based threshold, in fp32
    z = x.float()
    sorted_z, _ = z.sort(dim=-1, descending=True)
    ranks = torch.arange(1, z.shape[-1] + 1, device=z.device, dtype=z.dtype)
    cumulative = sorted_z.cumsum(-1)
    support = (1 + ranks * sorted_z) > cumulative
    k = support.sum(-1, keepdim=True)
    tau = (cumulative.gather(-1, k - 1) - 1) / k
    return (z - tau).clamp(min=0).to(x.dtype)


def eager_poly_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    def norm(u: torch.Tensor) -> torch.Tensor:
        return u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + EPS)

    h = x.float()
    return (w[0] * norm(h**3) + w[1] * norm(h**2) + w[2] * norm(h) + b).to(x.dtype)


def eager_mrope(q, k, cos, sin, section):
    # Transformers' Qwen2-VL: each section of the head dimension takes its
    # cos/sin from one position stream (temporal, height, width)
    def merge(table: torch.Tensor) -> torch.Tensor:
        parts = table.split(list(section) * 2, dim=-1)
        return torch.cat([part[i % 3] for i, part in enumerate(parts)], dim=-1)

    return eager_rope(q, k, merge(cos), merge(sin))


def eager_llama4_rope(q, k, freqs_cis):
    # Transformers' Llama 4 apply_rotary_emb: pairs as complex numbers, in fp32
    def multiply(x):
        pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(pairs * freqs_cis[:, :, None, :]).flatten(3).type_as(x)

    return multiply(q), multiply(k)


def make_distributions(dims, dtype, device, log_input: bool) -> Inputs:
    T, V = dims["tokens"], dims["vocab"]
    student = torch.log_softmax(torch.randn(T, V, device=device), -1)
    student = (student if log_input else student.exp()).to(dtype).requires_grad_()
    teacher = torch.softmax(2 * torch.randn(T, V, device=device), -1).to(dtype)
    return {"pred": student, "target": teacher, "leaves": [student], "grads": None}


def make_rows(dims, dtype, device) -> Inputs:
    x = _rand((dims["tokens"], dims["vocab"]), dtype, device, True)
    return {"x": x, "leaves": [x], "grads": [_rand(tuple(x.shape), dtype, device, False)]}


def make_mta(dims, dtype, device) -> Inputs:
    """Attention scores of ``heads`` heads over ``seq`` tokens, mixed by a 3x3 convolution across all heads."""
    scores = _rand((dims["batch"], dims["heads"], dims["seq"], dims["seq"]), dtype, device, True)
    weight = _rand((dims["heads"], dims["heads"], 3, 3), dtype, device, True, 1 / math.sqrt(9 * dims["heads"]))
    bias = _rand((dims["heads"],), dtype, device, True)
    return {"scores": scores, "w": weight, "b": bias, "leaves": [scores, weight, bias], "grads": None}


def eager_mta(i: Inputs) -> torch.Tensor:
    """Multi-token attention in torch eager (fp32 softmax, conv2d in the input dtype), summed as a loss."""
    scores = i["scores"]
    length = scores.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=scores.device).tril()
    probs = torch.softmax(scores.float().masked_fill(~causal, float("-inf")), dim=-1).to(scores.dtype)
    out = F.conv2d(probs, i["w"], i["b"], padding=1)
    return (out * causal).float().sum()


def make_group_norm(dims, dtype, device) -> Inputs:
    shape = (dims["tokens"], dims["channels"], dims["spatial"])
    x = _rand(shape, dtype, device, True)
    w = (1 + 0.1 * torch.randn(dims["channels"], device=device)).to(dtype).requires_grad_(True)
    b = _rand((dims["channels"],), dtype, device, True, 0.1)
    return {"x": x, "w": w, "b": b, "leaves": [x, w, b], "grads": [_rand(shape, dtype, device, False)]}


def make_dyt(dims, dtype, device) -> Inputs:
    T, H = dims["tokens"], dims["hidden"]
    x = _rand((T, H), dtype, device, True)
    alpha = torch.full((1,), 0.5, device=device, dtype=dtype, requires_grad=True)
    gamma = (1 + 0.1 * torch.randn(H, device=device)).to(dtype).requires_grad_(True)
    beta = _rand((H,), dtype, device, True, 0.1)
    leaves = [x, alpha, gamma, beta]
    return {
        "x": x,
        "alpha": alpha,
        "gamma": gamma,
        "beta": beta,
        "leaves": leaves,
        "grads": [_rand((T, H), dtype, device, False)],
    }


def make_poly_norm(dims, dtype, device) -> Inputs:
    T, H = dims["tokens"], dims["hidden"]
    x = _rand((T, H), dtype, device, True)
    w = torch.full((3,), 1 / 3, device=device, dtype=dtype, requires_grad=True)
    b = torch.zeros(1, device=device, dtype=dtype, requires_grad=True)
    return {"x": x, "w": w, "b": b, "leaves": [x, w, b], "grads": [_rand((T, H), dtype, device, False)]}


def make_modulated_norm(dims, dtype, device) -> Inputs:
    B, S, H = dims["batch"], dims["seq"], dims["hidden"]
    inputs = make_norm({"tokens": B * S, "hidden": H}, dtype, device)
    x = inputs["x"].detach().view(B, S, H).requires_grad_(True)
    scale, shift = _rand((B, H), dtype, device, True, 0.1), _rand((B, H), dtype, device, True, 0.1)
    grads = [inputs["grads"][0].view(B, S, H)]
    return {
        "x": x,
        "w": inputs["w"],
        "scale": scale,
        "shift": shift,
        "leaves": [x, inputs["w"], scale, shift],
        "grads": grads,
    }


def eager_modulated_rms_norm(x, w, scale, shift):
    return eager_rms_norm(x, w) * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def make_tiled_mlp(dims, dtype, device) -> Inputs:
    H, I = dims["hidden"], dims["inter"]
    mlp = torch.nn.Module()
    for name, shape in (("gate_proj", (I, H)), ("up_proj", (I, H)), ("down_proj", (H, I))):
        linear = torch.nn.Linear(shape[1], shape[0], bias=False, device=device, dtype=dtype)
        torch.nn.init.normal_(linear.weight, std=shape[1] ** -0.5)
        setattr(mlp, name, linear)
    x = _rand((dims["batch"], dims["seq"], H), dtype, device, True)
    return {
        "x": x,
        "mlp": mlp,
        "leaves": [x, *mlp.parameters()],
        "grads": [_rand(tuple(x.shape), dtype, device, False)],
    }


def tiled_swiglu_tile(mlp: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The SwiGLU MLP on one tile, its gate the SwiGLU Function of whichever liger_kernel runs."""
    gate = importlib.import_module("liger_kernel.ops.swiglu").LigerSiLUMulFunction
    return mlp.down_proj(gate.apply(mlp.gate_proj(x), mlp.up_proj(x)))


MROPE_SECTION = (16, 24, 24)


def make_mrope(dims, dtype, device) -> Inputs:
    inputs = make_rope(dims, dtype, device)
    B, S, D = dims["batch"], dims["seq"], dims["head_dim"]
    # three position streams (temporal, height, width) that differ per token
    positions = torch.arange(S, device=device, dtype=torch.float32)[None, None, :].repeat(3, B, 1)
    positions[1:] = torch.randint(0, 64, (2, B, S), device=device).float()
    inv_freq = 1.0 / (1000000.0 ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    angles = positions[..., None] * inv_freq
    angles = torch.cat((angles, angles), dim=-1)
    inputs["cos"], inputs["sin"] = angles.cos().to(dtype), angles.sin().to(dtype)
    return inputs


def make_llama4_rope(dims, dtype, device) -> Inputs:
    # (batch, seq, heads, head_dim), as Llama 4's attention rotates before its transpose
    B, S, D = dims["batch"], dims["seq"], dims["head_dim"]
    q = _rand((B, S, dims["heads"], D), dtype, device, True)
    k = _rand((B, S, dims["kv_heads"], D), dtype, device, True)
    inv_freq = 1.0 / (500000.0 ** (torch.arange(0, D, 2, device=device, dtype=torch.float32) / D))
    angles = torch.outer(torch.arange(S, device=device, dtype=torch.float32), inv_freq)[None]
    grads = [_rand(tuple(q.shape), dtype, device, False), _rand(tuple(k.shape), dtype, device, False)]
    freqs_cis = torch.polar(torch.ones_like(angles), angles)
    return {"q": q, "k": k, "freqs_cis": freqs_cis, "leaves": [q, k], "grads": grads}


def make_grpo(dims, dtype, device) -> Inputs:
    """A GRPO step's logits (batch, seq + 1, vocab), an activation, with old and reference
    log-probabilities near the policy's and a quarter of each completion padding."""
    B, L, V = dims["batch"], dims["seq"], dims["vocab"]
    leaf = _rand((B, L + 1, V), dtype, device, True)
    mask = torch.ones(B, L, dtype=torch.int64, device=device)
    mask[:, L - L // 4 :] = 0
    logp = torch.full((B, L), -math.log(V), device=device)
    return {
        "old": logp + 0.1 * torch.randn(B, L, device=device),
        "ref": logp + 0.1 * torch.randn(B, L, device=device),
        "ids": torch.randint(0, V, (B, L), device=device),
        "advantages": torch.randn(B, device=device),
        "mask": mask,
        "leaves": [leaf],
        "grads": None,
        "fresh": {"logits": leaf},
    }


def eager_grpo(i: Inputs, beta: float = 0.04, eps: float = 0.2) -> torch.Tensor:
    """The GRPO loss ("grpo": the mean over rows of each row's token mean) in torch eager."""
    logp = torch.log_softmax(i["logits"][:, :-1].float(), dim=-1).gather(-1, i["ids"].unsqueeze(-1)).squeeze(-1)
    coef = torch.exp(logp - i["old"])
    adv = i["advantages"].unsqueeze(-1)
    per_token = -torch.min(coef * adv, coef.clamp(1 - eps, 1 + eps) * adv)
    gap = i["ref"] - logp
    per_token = per_token + beta * (torch.exp(gap) - gap - 1)
    mask = i["mask"].float()
    return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def make_vocab_parallel_ce(dims, dtype, device) -> Inputs:
    """(seq, batch, vocab) logits, an activation, with one upstream gradient per token."""
    S, B, V = dims["seq"], dims["batch"], dims["vocab"]
    leaf = _rand((S, B, V), dtype, device, True)
    target = _targets(S * B, V, device).view(S, B)
    return {"target": target, "leaves": [leaf], "grads": [_rand((S, B), torch.float32, device, False)],
            "fresh": {"logits": leaf}}  # fmt: skip


def eager_vocab_parallel_ce(i: Inputs) -> torch.Tensor:
    """Per-token cross-entropy with smoothing 0.1 of unsharded (seq, batch, vocab) logits, in fp32."""
    S, B, V = i["logits"].shape
    loss = torch.nn.functional.cross_entropy(
        i["logits"].float().view(-1, V), i["target"].view(-1), reduction="none", label_smoothing=0.1
    )
    return loss.view(S, B)


def make_scaled_ce(dims, dtype, device) -> Inputs:
    """The LM head of an RL policy: hidden states, projection, targets, upstream NLL and entropy gradients."""
    T, H, V = dims["tokens"], dims["hidden"], dims["vocab"]
    h = _rand((T, H), dtype, device, True)
    w = _rand((V, H), dtype, device, True, 1 / math.sqrt(H))
    grads = [_rand((T,), torch.float32, device, False), _rand((T,), torch.float32, device, False)]
    return {"h": h, "w": w, "target": _targets(T, V, device), "leaves": [h, w], "grads": grads}


def eager_scaled_ce(i: Inputs, temperature: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL and entropy of (h @ w.T) / temperature, as RL trainers write them (fp32 softmax)."""
    logp = torch.log_softmax((i["h"] @ i["w"].t()).float() / temperature, dim=-1)
    kept = i["target"] != IGNORE_INDEX
    nll = -logp.gather(1, i["target"].clamp(min=0).unsqueeze(1)).squeeze(1)
    entropy = -(logp.exp() * logp).sum(dim=1)
    return torch.where(kept, nll, 0.0), torch.where(kept, entropy, 0.0)


def make_moe(dims, dtype, device) -> Inputs:
    T, H, I, E, K = dims["tokens"], dims["hidden"], dims["inter"], dims["experts"], dims["top_k"]
    x = _rand((T, H), dtype, device, True)
    gate_up = _rand((E, 2 * I, H), dtype, device, True, std=H**-0.5)
    down = _rand((E, H, I), dtype, device, True, std=I**-0.5)
    scores = torch.randn(T, E, device=device).softmax(-1)
    weights, index = torch.topk(scores, K, dim=-1)
    weights = (weights / weights.sum(-1, keepdim=True)).to(dtype).requires_grad_()
    grads = [_rand((T, H), dtype, device, False)]
    return {"x": x, "gate_up": gate_up, "down": down, "index": index, "weights": weights,
            "leaves": [x, gate_up, down, weights], "grads": grads}  # fmt: skip


def eager_fused_moe(x, gate_up, down, index, weights):
    """Transformers 5's default experts path (``grouped_mm``): the routed pairs
    sorted by expert, two grouped GEMMs around silu(g) * u, the routing weight,
    and the sum over each token's experts; a loop over experts where torch has
    no grouped GEMM for this device and dtype."""
    T, K = index.shape
    flat = index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    rows = x[order // K]
    counts = torch.bincount(flat, minlength=gate_up.shape[0])
    offsets = torch.cumsum(counts, 0, dtype=torch.int32)
    grouped = getattr(torch, "_grouped_mm", None) if x.is_cuda and x.dtype == torch.bfloat16 else None
    if grouped is not None:
        g, u = grouped(rows, gate_up.transpose(1, 2), offs=offsets).chunk(2, dim=-1)
        y = grouped(F.silu(g) * u, down.transpose(1, 2), offs=offsets)
    else:
        y, start = torch.empty_like(rows), 0
        for e, n in enumerate(counts.tolist()):
            g, u = (rows[start : start + n] @ gate_up[e].T).chunk(2, dim=-1)
            y[start : start + n] = (F.silu(g) * u) @ down[e].T
            start += n
    y = y * weights.reshape(-1)[order, None]
    out = torch.empty_like(y)
    out[order] = y
    return out.view(T, K, -1).sum(1)


#: residual streams of the mHC cases (the paper's n = 4) and blocks of the AttnRes case
MHC_STREAMS = 4
ATTN_RES_BLOCKS = 8
MHC_DIMS = {"tokens": 8192, "hidden": 4096}


def make_mhc_coeffs(dims, dtype, device) -> Inputs:
    T, C, hc = dims["tokens"], dims["hidden"], MHC_STREAMS
    m = hc * hc + 2 * hc
    x = _rand((T, hc, C), dtype, device, True)
    phi = _rand((hc * C, m), dtype, device, True, (1.0 / (hc * C)) ** 0.5)
    b = _rand((m,), torch.float32, device, True, 0.1)
    alphas = [torch.ones((), device=device, requires_grad=True) for _ in range(3)]
    grads = [_rand((T, hc), torch.float32, device, False), _rand((T, hc), torch.float32, device, False)]
    grads.append(_rand((T, hc, hc), torch.float32, device, False))
    return {"x": x, "phi": phi, "b": b, "alphas": alphas, "leaves": [x, phi, b, *alphas], "grads": grads}


def eager_mhc_coeffs(i: Inputs, tmax: int = 20, eps: float = 1e-6) -> tuple[torch.Tensor, ...]:
    """mHC's coefficients as a model would write them: float32 matmul, sigmoids, Sinkhorn."""
    x, hc = i["x"], MHC_STREAMS
    tokens = x.reshape(x.shape[0], -1).float()
    mix = (tokens @ i["phi"].float()) * torch.rsqrt(tokens.square().mean(-1, keepdim=True) + eps)
    a_pre, a_post, a_res = i["alphas"]
    b = i["b"]
    h_pre = torch.sigmoid(a_pre * mix[:, :hc] + b[:hc])
    h_post = 2.0 * torch.sigmoid(a_post * mix[:, hc : 2 * hc] + b[hc : 2 * hc])
    h_res = torch.softmax((a_res * mix[:, 2 * hc :] + b[2 * hc :]).view(-1, hc, hc), -1) + eps
    h_res = h_res / (h_res.sum(-2, keepdim=True) + eps)
    for _ in range(tmax - 1):
        h_res = h_res / (h_res.sum(-1, keepdim=True) + eps)
        h_res = h_res / (h_res.sum(-2, keepdim=True) + eps)
    return h_pre, h_post, h_res


def make_mhc_apply(dims, dtype, device) -> Inputs:
    """Streams (T, HC, C), the layer output (T, C) and float32 coefficients as mhc_coeffs returns them."""
    T, C, hc = dims["tokens"], dims["hidden"], MHC_STREAMS
    x = _rand((T, hc, C), dtype, device, True)
    f_out = _rand((T, C), dtype, device, True)
    h_pre = torch.rand((T, hc), device=device).requires_grad_(True)
    h_post = torch.rand((T, hc), device=device).mul_(2).requires_grad_(True)
    h_res = torch.rand((T, hc, hc), device=device).div_(hc).requires_grad_(True)
    return {
        "x": x,
        "f_out": f_out,
        "h_pre": h_pre,
        "h_post": h_post,
        "h_res": h_res,
        "pre_leaves": [x, h_pre],
        "post_leaves": [x, f_out, h_post, h_res],
        "pre_grads": [_rand((T, C), dtype, device, False)],
        "post_grads": [_rand((T, hc, C), dtype, device, False)],
    }


def make_mhc_pre(dims, dtype, device) -> Inputs:
    i = make_mhc_apply(dims, dtype, device)
    return {**i, "leaves": i["pre_leaves"], "grads": i["pre_grads"]}


def make_mhc_post_res(dims, dtype, device) -> Inputs:
    i = make_mhc_apply(dims, dtype, device)
    return {**i, "leaves": i["post_leaves"], "grads": i["post_grads"]}


def eager_mhc_post_res(i: Inputs) -> torch.Tensor:
    mixed = torch.einsum("noi,nic->noc", i["h_res"], i["x"].float())
    return (mixed + i["h_post"][..., None] * i["f_out"].float()[:, None, :]).to(i["x"].dtype)


def make_attn_res(dims, dtype, device) -> Inputs:
    T, D = dims["tokens"], dims["hidden"]
    V = _rand((ATTN_RES_BLOCKS, T, D), dtype, device, True)
    w_query = _rand((D,), dtype, device, True, 0.02)
    w_norm = (1 + 0.1 * torch.randn(D, device=device)).to(dtype).requires_grad_(True)
    leaves = [V, w_query, w_norm]
    return {
        "V": V,
        "w_query": w_query,
        "w_norm": w_norm,
        "leaves": leaves,
        "grads": [_rand((T, D), dtype, device, False)],
    }


def eager_attn_res(i: Inputs) -> torch.Tensor:
    """AttnRes as its paper writes it: RMSNorm'd keys, a softmax over depth, the weighted sum."""
    V = i["V"].float()
    keys = V * torch.rsqrt(V.square().mean(-1, keepdim=True) + EPS) * i["w_norm"].float()
    weights = torch.softmax((keys * i["w_query"].float()).sum(-1), dim=0)
    return (weights[..., None] * V).sum(0).to(i["V"].dtype)


NORM_DIMS = {"tokens": 8192, "hidden": 4096}
GATE_DIMS = {"tokens": 8192, "inter": 14336}
#: a Qwen3-MoE layer (the training step's shape): 4096 tokens, 32 experts of intermediate 512, top-4
MOE_DIMS = {"tokens": 4096, "hidden": 1024, "inter": 512, "experts": 32, "top_k": 4}
#: GPT-OSS-20B's experts: 8192 tokens, each to 4 experts, intermediate 2880
CLAMPED_GATE_DIMS = {"tokens": 32768, "inter": 2880}

CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case(
            "rms_norm",
            NORM_DIMS,
            make_norm,
            lambda i: eager_rms_norm(i["x"], i["w"]),
            "rms_norm",
            "LigerRMSNormFunction",
            lambda f, i: f.apply(i["x"], i["w"], EPS, 0.0, "llama", True),
        ),
        Case(
            "fused_add_rms_norm",
            NORM_DIMS,
            lambda d, t, dev: make_norm(d, t, dev, residual=True),
            lambda i: eager_fused_add_rms_norm(i["x"], i["r"], i["w"]),
            "fused_add_rms_norm",
            "LigerFusedAddRMSNormFunction",
            lambda f, i: f.apply(i["x"], i["r"], i["w"], EPS),
        ),
        Case(
            "layer_norm",
            NORM_DIMS,
            lambda d, t, dev: make_norm(d, t, dev, bias=True),
            lambda i: F.layer_norm(i["x"], (i["x"].shape[-1],), i["w"], i["b"], EPS),
            "layer_norm",
            "LigerLayerNormFunction",
            lambda f, i: f.apply(i["x"], i["w"], i["b"], EPS),
        ),
        Case(
            "swiglu",
            GATE_DIMS,
            make_gate,
            lambda i: F.silu(i["a"]) * i["b"],
            "swiglu",
            "LigerSiLUMulFunction",
            lambda f, i: f.apply(i["a"], i["b"]),
        ),
        Case(
            "geglu",
            GATE_DIMS,
            make_gate,
            lambda i: F.gelu(i["a"], approximate="tanh") * i["b"],
            "geglu",
            "LigerGELUMulFunction",
            lambda f, i: f.apply(i["a"], i["b"]),
        ),
        Case(
            "rope",
            {"tokens": 8192, "batch": 4, "seq": 2048, "heads": 32, "kv_heads": 8, "head_dim": 128},
            make_rope,
            lambda i: eager_rope(i["q"], i["k"], i["cos"], i["sin"]),
            "rope",
            "LigerRopeFunction",
            lambda f, i: f.apply(i["q"], i["k"], i["cos"], i["sin"]),
        ),
        Case(
            "cross_entropy",
            {"tokens": 8192, "vocab": 128256},
            make_cross_entropy,
            lambda i: eager_cross_entropy(i["logits"], i["target"]),
            "cross_entropy",
            "LigerCrossEntropyFunction",
            lambda f, i: _first(f.apply(i["logits"], i["target"], None, IGNORE_INDEX)),
        ),
        Case(
            "fused_linear_cross_entropy",
            {"tokens": 8192, "hidden": 4096, "vocab": 128256},
            make_flce,
            lambda i: eager_cross_entropy(i["h"] @ i["w"].t(), i["target"]),
            "fused_linear_cross_entropy",
            "LigerFusedLinearCrossEntropyFunction",
            lambda f, i: _first(f.apply(i["h"], i["w"], i["target"], None, None, IGNORE_INDEX)),
        ),
        Case(
            "jsd",
            {"tokens": 8192, "vocab": 128256},
            make_jsd,
            lambda i: eager_jsd(i["log_q"], i["log_p"]),
            "jsd",
            "LigerJSDFunction",
            lambda f, i: f.apply(i["log_q"], i["log_p"], None, 0.5, IGNORE_INDEX),
        ),
        Case(
            "fused_linear_jsd",
            {"tokens": 8192, "hidden": 4096, "vocab": 128256},
            make_fused_linear_jsd,
            lambda i: eager_jsd(
                torch.log_softmax((i["h"] @ i["w"].t()).float(), -1),
                torch.log_softmax((i["teacher_h"] @ i["teacher_w"].t()).float(), -1),
            ),
            "fused_linear_jsd",
            "LigerFusedLinearJSDFunction",
            lambda f, i: f.apply(i["h"], i["w"], i["teacher_h"], i["teacher_w"], None, 0.5, IGNORE_INDEX, 1.0),
        ),
        Case(
            "fused_linear_kl_div",
            {"tokens": 8192, "hidden": 4096, "vocab": 128256},
            make_fused_linear_kl_div,
            lambda i: eager_fused_linear_kl_div(i["h"], i["w"], i["target"]),
            "fused_linear_kl_div",
            "LigerFusedLinearKLDivFunction",
            lambda f, i: f.apply(i["h"], i["w"], i["target"], None, "batchmean", IGNORE_INDEX, 1.0, 1e-10),
        ),
        Case(
            "fused_ce_tvd",
            {"tokens": 8192, "vocab": 128256},
            make_ce_tvd,
            lambda i: eager_ce_tvd(i["student"], i["teacher"], i["target"]),
            "fused_ce_tvd",
            "LigerFusedCETVDFunction",
            lambda f, i: sum(term.sum() for term in f.apply(i["student"], i["teacher"], i["target"], IGNORE_INDEX)),
        ),
        Case(
            "kl_div",
            {"tokens": 8192, "vocab": 128256},
            lambda d, t, dev: make_distributions(d, t, dev, log_input=True),
            lambda i: F.kl_div(i["pred"].float(), i["target"].float(), reduction="batchmean"),
            "kl_div",
            "LigerKLDivLossFunction",
            lambda f, i: f.apply(i["pred"], i["target"], "batchmean", False, 1e-10),
        ),
        Case(
            "tvd",
            {"tokens": 8192, "vocab": 128256},
            lambda d, t, dev: make_distributions(d, t, dev, log_input=False),
            lambda i: eager_tvd(i["pred"], i["target"]),
            "tvd",
            "LigerTVDLossFunction",
            lambda f, i: f.apply(i["pred"], i["target"], None, "batchmean", IGNORE_INDEX),
        ),
        Case(
            "softmax",
            {"tokens": 8192, "vocab": 128256},
            make_rows,
            lambda i: torch.softmax(i["x"], dim=-1),
            "softmax",
            "LigerSoftmaxFunction",
            lambda f, i: f.apply(i["x"]),
        ),
        Case(
            "sparsemax",
            {"tokens": 8192, "vocab": 32000},
            make_rows,
            lambda i: eager_sparsemax(i["x"]),
            "sparsemax",
            "LigerSparsemaxFunction",
            lambda f, i: f.apply(i["x"], -1),
        ),
        Case(
            "group_norm",
            {"tokens": 16, "channels": 512, "spatial": 4096, "groups": 32},
            make_group_norm,
            lambda i: F.group_norm(i["x"], 32, i["w"], i["b"], EPS),
            "group_norm",
            "LigerGroupNormFunction",
            lambda f, i: f.apply(i["x"], i["w"], i["b"], i["x"].shape[1], 32, EPS),
        ),
        Case(
            "dyt",
            NORM_DIMS,
            make_dyt,
            lambda i: i["gamma"] * torch.tanh(i["alpha"] * i["x"]) + i["beta"],
            "dyt",
            "LigerDyTFunction",
            lambda f, i: f.apply(i["x"], i["alpha"], i["gamma"], i["beta"]),
        ),
        Case(
            "poly_norm",
            NORM_DIMS,
            make_poly_norm,
            lambda i: eager_poly_norm(i["x"], i["w"], i["b"]),
            "poly_norm",
            "LigerPolyNormFunction",
            lambda f, i: f.apply(i["x"], i["w"], i["b"], EPS, True),
        ),
        Case(
            "qwen2vl_mrope",
            {"tokens": 8192, "batch": 4, "seq": 2048, "heads": 32, "kv_heads": 8, "head_dim": 128},
            make_mrope,
            lambda i: eager_mrope(i["q"], i["k"], i["cos"], i["sin"], MROPE_SECTION),
            "qwen2vl_mrope",
            "LigerQwen2VLMRopeFunction",
            lambda f, i: f.apply(i["q"], i["k"], i["cos"], i["sin"], list(MROPE_SECTION), 1),
        ),
        Case(
            "relu_squared",
            GATE_DIMS,
            make_activation,
            lambda i: torch.relu(i["x"]).square(),
            "relu_squared",
            "LigerReLUSquaredFunction",
            lambda f, i: f.apply(i["x"]),
        ),
        Case(
            "modulated_rms_norm",
            {"tokens": 8192, "batch": 4, "seq": 2048, "hidden": 4096},
            make_modulated_norm,
            lambda i: eager_modulated_rms_norm(i["x"], i["w"], i["scale"], i["shift"]),
            "modulated_rms_norm",
            "LigerModulatedRMSNormFunction",
            lambda f, i: f.apply(i["x"], i["w"], i["scale"], i["shift"], EPS, 0.0, "llama", True),
        ),
        Case(
            "tiled_mlp",
            # Llama-3-8B's MLP over one 16k-token sequence, in 4 tiles (ceil(seq / hidden))
            {"tokens": 16384, "batch": 1, "seq": 16384, "hidden": 4096, "inter": 14336},
            make_tiled_mlp,
            lambda i: i["mlp"].down_proj(F.silu(i["mlp"].gate_proj(i["x"])) * i["mlp"].up_proj(i["x"])),
            "tiled_mlp",
            "apply_tiled_mlp",
            lambda f, i: f(tiled_swiglu_tile, i["mlp"], i["x"], None),
            route="swiglu",
        ),
        Case(
            "clamped_swiglu",
            CLAMPED_GATE_DIMS,
            make_clamped_gate,
            lambda i: eager_clamped_swiglu(i["x"]),
            "clamped_swiglu",
            "LigerClampedSwiGLUFunction",
            lambda f, i: f.apply(i["x"], 1.702, 7.0),
        ),
        Case(
            "llama4_rope",
            # Llama 4 Scout's attention: 40 heads, 8 kv heads, head_dim 128
            {"tokens": 8192, "batch": 4, "seq": 2048, "heads": 40, "kv_heads": 8, "head_dim": 128},
            make_llama4_rope,
            lambda i: eager_llama4_rope(i["q"], i["k"], i["freqs_cis"]),
            "llama4_rope",
            "LigerLlama4RopeFunction",
            lambda f, i: f.apply(i["q"], i["k"], i["freqs_cis"]),
        ),
        Case(
            "grpo_loss",
            # 8 completions of 1024 tokens over Qwen's vocabulary
            {"tokens": 8192, "batch": 8, "seq": 1024, "vocab": 151936},
            make_grpo,
            eager_grpo,
            "grpo_loss",
            "GrpoLossFunction",
            lambda f, i: f.apply(
                i["logits"], i["old"], i["ref"], i["ids"], i["advantages"], i["mask"], 1.0, 0.04, 0.2, 0.2, True
            )[0],
        ),
        Case(
            "mhc_coeffs",
            MHC_DIMS,
            make_mhc_coeffs,
            eager_mhc_coeffs,
            "mhc",
            "LigerMHCCoeffsFunction",
            lambda f, i: f.apply(i["x"], i["phi"], i["b"], *i["alphas"], False, 20, EPS, 0.0, EPS, 2.0),
        ),
        Case(
            "mhc_pre",
            MHC_DIMS,
            make_mhc_pre,
            lambda i: (i["h_pre"][..., None] * i["x"].float()).sum(1).to(i["x"].dtype),
            "mhc",
            "LigerMHCPreFunction",
            lambda f, i: f.apply(i["x"], i["h_pre"]),
        ),
        Case(
            "mhc_post_res",
            MHC_DIMS,
            make_mhc_post_res,
            eager_mhc_post_res,
            "mhc",
            "LigerMHCPostResFunction",
            lambda f, i: f.apply(i["x"], i["f_out"], i["h_post"], i["h_res"]),
        ),
        Case(
            "attn_res",
            MHC_DIMS,
            make_attn_res,
            eager_attn_res,
            "attn_res",
            "LigerAttnResFunction",
            lambda f, i: f.apply(i["V"], i["w_query"], i["w_norm"], EPS),
        ),
        Case(
            "embedding",
            # Llama 3's token table, looked up by one batch of 8192 tokens
            {"tokens": 8192, "vocab": 128256, "hidden": 4096},
            make_embedding,
            lambda i: F.embedding(i["ids"], i["table"]),
            "experimental.embedding",
            "LigerEmbeddingFunction",
            lambda f, i: f.apply(i["table"], i["ids"]),
        ),
        Case(
            "vocab_parallel_cross_entropy",
            # one rank's shard is the whole vocabulary here (no process group): Llama 3's 128256
            {"tokens": 8192, "batch": 4, "seq": 2048, "vocab": 128256},
            make_vocab_parallel_ce,
            eager_vocab_parallel_ce,
            "vocab_parallel_cross_entropy",
            "LigerVocabParallelCEFunction",
            lambda f, i: f.apply(i["logits"], i["target"], None, IGNORE_INDEX, 0.1, "pytorch", "global"),
        ),
        Case(
            "fused_linear_scaled_cross_entropy",
            {"tokens": 8192, "hidden": 4096, "vocab": 128256},
            make_scaled_ce,
            eager_scaled_ce,
            "fused_linear_scaled_cross_entropy",
            "LigerFusedLinearScaledCrossEntropyFunction",
            lambda f, i: f.apply(i["h"], i["w"], i["target"], 0.7, IGNORE_INDEX, 1, True),
        ),
        Case(
            "multi_token_attention",
            # 16 heads over 1024 tokens, a 3x3 convolution mixing all heads
            {"tokens": 2048, "batch": 2, "seq": 1024, "heads": 16},
            make_mta,
            eager_mta,
            "multi_token_attention",
            "LigerMultiTokenAttentionFunction",
            lambda f, i: f.apply(i["scores"], i["w"], i["b"], (1, 1), (1, 1), (1, 1), 1, False).float().sum(),
        ),
        Case(
            "fused_moe",
            MOE_DIMS,
            make_moe,
            lambda i: eager_fused_moe(i["x"], i["gate_up"], i["down"], i["index"], i["weights"]),
            "fused_moe",
            "LigerFusedMoEFunction",
            lambda f, i: f.apply(i["x"], i["gate_up"], i["down"], i["index"], i["weights"]),
        ),
    )
}

#: ops run by default: those of TARGETS.md in its order, then the rest
DEFAULT_OPS = (
    "rms_norm",
    "layer_norm",
    "swiglu",
    "geglu",
    "rope",
    "cross_entropy",
    "fused_linear_cross_entropy",
    "fused_add_rms_norm",
    "group_norm",
    "poly_norm",
    "dyt",
    "qwen2vl_mrope",
    "llama4_rope",
    "softmax",
    "sparsemax",
    "kl_div",
    "tvd",
    "jsd",
    "fused_linear_jsd",
    "fused_linear_kl_div",
    "fused_ce_tvd",
    "relu_squared",
    "clamped_swiglu",
    "fused_moe",
    "grpo_loss",
    "mhc_coeffs",
    "mhc_pre",
    "mhc_post_res",
    "attn_res",
    "embedding",
    "modulated_rms_norm",
    "tiled_mlp",
    "vocab_parallel_cross_entropy",
    "fused_linear_scaled_cross_entropy",
    "multi_token_attention",
)


def shape_label(case: Case, dims: dict[str, int]) -> str:
    """The main input's shape, for tables."""
    if case.name in ("rope", "qwen2vl_mrope"):
        return f"q({dims['batch']},{dims['heads']},{dims['seq']},{dims['head_dim']})"
    if case.name == "llama4_rope":
        return f"q({dims['batch']},{dims['seq']},{dims['heads']},{dims['head_dim']})"
    if case.name == "group_norm":
        return f"({dims['tokens']},{dims['channels']},{dims['spatial']}) g{dims['groups']}"
    if case.name == "grpo_loss":
        return f"logits({dims['batch']},{dims['seq'] + 1},{dims['vocab']})"
    if case.name == "multi_token_attention":
        return f"scores({dims['batch']},{dims['heads']},{dims['seq']},{dims['seq']})"
    if case.name == "fused_moe":
        return f"x({dims['tokens']},{dims['hidden']}) E{dims['experts']} I{dims['inter']} top{dims['top_k']}"
    if case.name.startswith("mhc_"):
        return f"x({dims['tokens']},{MHC_STREAMS},{dims['hidden']})"
    if case.name == "attn_res":
        return f"V({ATTN_RES_BLOCKS},{dims['tokens']},{dims['hidden']})"
    if case.name == "modulated_rms_norm":
        return f"x({dims['batch']},{dims['seq']},{dims['hidden']}) scale({dims['batch']},{dims['hidden']})"
    if case.name == "tiled_mlp":
        return f"x({dims['batch']},{dims['seq']},{dims['hidden']}) I{dims['inter']}"
    if case.name == "vocab_parallel_cross_entropy":
        return f"logits({dims['seq']},{dims['batch']},{dims['vocab']})"
    if case.name in (
        "fused_linear_cross_entropy",
        "fused_linear_jsd",
        "fused_linear_kl_div",
        "fused_linear_scaled_cross_entropy",
    ):
        return f"h({dims['tokens']},{dims['hidden']}) w({dims['vocab']},{dims['hidden']})"
    width = dims.get("hidden") or dims.get("inter") or dims.get("vocab")
    return f"({dims['tokens']},{width})"
