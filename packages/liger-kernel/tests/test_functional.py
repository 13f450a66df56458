"""liger_kernel.functional: each function against its op called directly and
against plain PyTorch, forward and backward, on tiny CPU shapes; and the
per-call ``impl=`` / ``backend=`` / ``mode=`` keywords."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.nn.functional as torch_f

import liger_kernel
import liger_kernel.functional as F
from liger_conformance.mocks import cuda as cuda_mock
from liger_conformance.recording import recording_backend
from liger_kernel.backends import ImplNotAvailableError
from liger_kernel.ops import OPS

ROWS, WIDTH, VOCAB = 3, 8, 6


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6, offset: float = 0.0) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + w)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def _jsd(student_logp: torch.Tensor, teacher_logp: torch.Tensor, beta: float) -> torch.Tensor:
    p, q = teacher_logp.exp(), student_logp.exp()
    log_m = torch.log(beta * p + (1 - beta) * q)
    rows = beta * p * (teacher_logp - log_m) + (1 - beta) * q * (student_logp - log_m)
    return rows.sum() / student_logp.shape[0]


def _flat(tensors: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.cat([t.flatten() for t in tensors])


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


@dataclass
class Case:
    """One functional call: ``inputs()`` builds fresh tensors (the differentiated
    ones first, ``grads`` of them), ``call`` runs the functional, ``direct`` the
    op's Function, ``reference`` plain PyTorch; all return comparable tensors."""

    name: str
    inputs: Callable[[], tuple[torch.Tensor, ...]]
    grads: int
    call: Callable[..., Any]
    direct: Callable[..., Any]
    reference: Callable[..., Any]


def _x():
    return (torch.randn(ROWS, WIDTH, dtype=torch.float64),)


def _logp(*shape):
    return torch.randn(*shape, dtype=torch.float64).log_softmax(-1)


def _targets():
    return torch.tensor([1, 4, 0])


def _rope_inputs():
    seq, dim = 3, 4
    angles = torch.randn(1, seq, dim // 2, dtype=torch.float64)
    angles = torch.cat((angles, angles), -1)
    q = torch.randn(1, 2, seq, dim, dtype=torch.float64)
    k = torch.randn(1, 1, seq, dim, dtype=torch.float64)
    return q, k, angles.cos(), angles.sin()


OPS_DIRECT = {name: cls.apply for name, cls in OPS.items()}

CASES = [
    Case(
        "rms_norm",
        lambda: (*_x(), torch.rand(WIDTH, dtype=torch.float64) + 0.5),
        2,
        lambda x, w: F.rms_norm(x, w, 1e-5, offset=1.0),
        lambda x, w: OPS_DIRECT["rms_norm"](x, w, 1e-5, 1.0, "llama", False, None),
        lambda x, w: _rms(x, w, 1e-5, offset=1.0),
    ),
    Case(
        "layer_norm",
        lambda: (*_x(), torch.randn(WIDTH, dtype=torch.float64), torch.randn(WIDTH, dtype=torch.float64)),
        3,
        lambda x, w, b: F.layer_norm(x, w, b),
        lambda x, w, b: OPS_DIRECT["layer_norm"](x, w, b, 1e-6),
        lambda x, w, b: torch_f.layer_norm(x, (WIDTH,), w, b, 1e-6),
    ),
    Case(
        "jsd",
        lambda: (_logp(ROWS, VOCAB), _logp(ROWS, VOCAB)),
        1,
        lambda s, t: F.jsd(s, t, beta=0.3),
        lambda s, t: OPS_DIRECT["jsd"](s, t, None, 0.3, -100),
        lambda s, t: _jsd(s, t, 0.3),
    ),
    Case("softmax", _x, 1, F.softmax, OPS_DIRECT["softmax"], lambda x: torch.softmax(x, -1)),
    Case(
        "swiglu",
        lambda: (*_x(), *_x()),
        2,
        lambda a, b: F.swiglu(a, b, 0.5, 3.0),
        lambda a, b: OPS_DIRECT["swiglu"](a * 0.5, b) * 3.0,
        lambda a, b: torch_f.silu(0.5 * a) * b * 3.0,
    ),
    Case(
        "rope",
        _rope_inputs,
        2,
        lambda q, k, cos, sin: _flat(F.rope(q, k, cos, sin)),
        lambda q, k, cos, sin: _flat(OPS_DIRECT["rope"](q, k, cos, sin)),
        lambda q, k, cos, sin: _flat(_rope(q, k, cos, sin)),
    ),
    Case(
        "cross_entropy",
        lambda: (torch.randn(ROWS, VOCAB, dtype=torch.float64), _targets()),
        1,
        lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1)[0],
        lambda x, t: OPS_DIRECT["cross_entropy"](x, t, None, -100, 0.0, 0.1)[0],
        lambda x, t: torch_f.cross_entropy(x, t, label_smoothing=0.1),
    ),
    Case(
        "fused_add_rms_norm",
        lambda: (*_x(), *_x(), torch.rand(WIDTH, dtype=torch.float64) + 0.5),
        3,
        lambda x, r, w: _flat(F.fused_add_rms_norm(x, r, w)),
        lambda x, r, w: _flat(OPS_DIRECT["fused_add_rms_norm"](x, r, w, 1e-6)),
        lambda x, r, w: _flat((_rms(x + r, w), x + r)),
    ),
    Case(
        "geglu",
        lambda: (*_x(), *_x()),
        2,
        F.geglu,
        OPS_DIRECT["geglu"],
        lambda a, b: torch_f.gelu(a, approximate="tanh") * b,
    ),
    Case(
        "kl_div",
        lambda: (_logp(ROWS, VOCAB), _logp(ROWS, VOCAB).exp()),
        1,
        lambda p, t: F.kl_div(p, t, reduction="sum"),
        lambda p, t: OPS_DIRECT["kl_div"](p, t, "sum"),
        lambda p, t: torch_f.kl_div(p, t, reduction="sum"),
    ),
    Case(
        "fused_linear_jsd",
        lambda: tuple(
            torch.randn(*shape, dtype=torch.float64) for shape in ((ROWS, 4), (VOCAB, 4), (ROWS, 4), (VOCAB, 4))
        ),
        2,
        lambda hs, ws, ht, wt: F.fused_linear_jsd(hs, ws, ht, wt, jsd_beta=0.25, temperature=2.0),
        lambda hs, ws, ht, wt: OPS_DIRECT["fused_linear_jsd"](hs, ws, ht, wt, None, 0.25, -100, 2.0),
        lambda hs, ws, ht, wt: _jsd((hs @ ws.T / 2.0).log_softmax(-1), (ht @ wt.T / 2.0).log_softmax(-1), 0.25),
    ),
    Case(
        "fused_linear_cross_entropy",
        lambda: (torch.randn(ROWS, 4, dtype=torch.float64), torch.randn(VOCAB, 4, dtype=torch.float64), _targets()),
        2,
        lambda h, w, t: F.fused_linear_cross_entropy(h, w, t, reduction="sum")[0],
        lambda h, w, t: OPS_DIRECT["fused_linear_cross_entropy"](h, w, t, reduction="sum")[0],
        lambda h, w, t: torch_f.cross_entropy(h @ w.T, t, reduction="sum"),
    ),
]


def _run(function: Callable[..., Any], inputs: tuple[torch.Tensor, ...], grads: int):
    leaves = [t.clone().requires_grad_(i < grads) for i, t in enumerate(inputs)]
    out = _first(function(*leaves))
    torch.manual_seed(1)
    out.backward(torch.randn_like(out))
    return out.detach(), [leaf.grad for leaf in leaves[:grads]]


def test_every_function_of_0_8_5_is_here_and_tested():
    assert sorted(F.__all__) == sorted(case.name for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_function_is_its_op_and_matches_plain_pytorch(case):
    torch.manual_seed(0)
    inputs = case.inputs()
    out, grads = _run(case.call, inputs, case.grads)
    direct_out, direct_grads = _run(case.direct, inputs, case.grads)
    ref_out, ref_grads = _run(case.reference, inputs, case.grads)
    torch.testing.assert_close(out, direct_out, rtol=0, atol=0)
    torch.testing.assert_close(out, ref_out)
    for grad, direct, ref in zip(grads, direct_grads, ref_grads):
        torch.testing.assert_close(grad, direct, rtol=0, atol=0)
        torch.testing.assert_close(grad, ref)


def test_the_optional_outputs_are_none_unless_asked():
    logits, targets = torch.randn(ROWS, VOCAB), _targets()
    loss, z_loss, accuracy, predicted = F.cross_entropy(logits, targets)
    torch.testing.assert_close(loss, torch_f.cross_entropy(logits, targets))
    assert (z_loss, accuracy, predicted) == (None, None, None)
    _, z_loss, accuracy, predicted = F.cross_entropy(
        logits, targets, lse_square_scale=1e-3, return_z_loss=True, return_token_accuracy=True
    )
    torch.testing.assert_close(z_loss, 1e-3 * logits.logsumexp(-1).pow(2).mean())
    torch.testing.assert_close(accuracy, (logits.argmax(-1) == targets).float().mean())
    assert predicted is None


def test_layer_norm_without_bias_has_no_shift():
    x, w = torch.randn(ROWS, WIDTH), torch.randn(WIDTH)
    torch.testing.assert_close(F.layer_norm(x, w), torch_f.layer_norm(x, (WIDTH,), w, None, 1e-6))


# ------------------------------------------------------------------ impl= / backend= / mode=


@pytest.fixture
def recorded_cpu():
    """A recording backend that automatic selection picks for CPU tensors."""
    with recording_backend("recorded", device_types=("cpu",)) as recorder:
        yield recorder


def test_impl_pytorch_runs_the_torch_backend_for_that_call_only(recorded_cpu):
    x = torch.randn(ROWS, WIDTH)
    F.softmax(x)
    assert recorded_cpu.ops() == ["softmax"]
    torch.testing.assert_close(F.softmax(x, impl="pytorch"), torch.softmax(x, -1))
    F.geglu(x, x, backend="torch")
    assert recorded_cpu.ops() == ["softmax"]
    F.geglu(x, x)
    assert recorded_cpu.ops() == ["softmax", "geglu"]


def test_impl_names_a_backend_for_the_call(recorded_cpu):
    x = torch.randn(ROWS, WIDTH)
    liger_kernel.set_impl("pytorch")
    F.rms_norm(x, torch.ones(WIDTH), impl="recorded")
    F.rms_norm(x, torch.ones(WIDTH))
    assert recorded_cpu.ops() == ["rms_norm"]


@pytest.mark.parametrize("name", ["nvidia-triton", "triton", "cuda"])
def test_under_the_cuda_mock_impl_nvidia_triton_runs_the_cuda_backend(name, monkeypatch, caplog):
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    x, w = torch.randn(ROWS, WIDTH), torch.rand(WIDTH) + 0.5
    with cuda_mock.active(), caplog.at_level(logging.INFO, logger="liger_kernel"):
        liger_kernel.set_impl("pytorch")
        out = F.rms_norm(x, w, impl=name)
    routes = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Using CUDA")]
    assert routes == [routes[0]] and "(liger-cuda " in routes[0], routes
    torch.testing.assert_close(out, _rms(x, w))


def test_an_unknown_impl_raises_listing_the_known_names():
    with pytest.raises(ImplNotAvailableError, match=r"'nvidia-cutile'.*cuda \(alias nvidia-triton, triton\).*pytorch"):
        F.softmax(torch.randn(2, 3), impl="nvidia-cutile")


def test_impl_and_backend_must_agree():
    x = torch.randn(2, 3)
    torch.testing.assert_close(F.softmax(x, impl="pytorch", backend="pytorch"), torch.softmax(x, -1))
    with pytest.raises(TypeError, match="impl= or its former name backend="):
        F.softmax(x, impl="pytorch", backend="nvidia-triton")


@pytest.mark.parametrize("mode", [None, "default"])
def test_the_default_mode_is_accepted(mode):
    x = torch.randn(2, 3)
    torch.testing.assert_close(F.softmax(x, mode=mode), torch.softmax(x, -1))


def test_a_kernel_variant_mode_is_refused():
    with pytest.raises(ValueError, match="rms_norm has no kernel variants: mode must be None or 'default'"):
        F.rms_norm(torch.randn(2, 4), torch.ones(4), mode="static_persistent")
