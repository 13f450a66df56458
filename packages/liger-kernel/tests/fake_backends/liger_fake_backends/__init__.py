"""Fake backends for dispatcher tests.

They serve the ``meta`` device type, so a test can hold tensors on two device
types (``cpu`` and ``meta``) without any accelerator. Their op implementations
record each call and return a simple result.
"""

from __future__ import annotations

import sys

import torch

from liger_kernel.backend import API_VERSION, Backend

CALLS: list[tuple[str, str]] = []


class RecordingSwiGLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        CALLS.append(("swiglu", a.device.type))
        return a * b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


def _ok() -> tuple[bool, str]:
    return True, "fake device present"


def _missing() -> tuple[bool, str]:
    return False, "fake device driver not found"


def _raises() -> tuple[bool, str]:
    raise OSError("probe crashed")


FAST = Backend(
    name="fast",
    device_types=("meta",),
    priority=100,
    api_version=API_VERSION,
    probe=_ok,
    ops={"swiglu": "liger_fake_backends:RecordingSwiGLU"},
    install_hint="pip install liger-fast",
)
# Same device, lower priority: loses to FAST in automatic selection.
SLOW = Backend("slow", ("meta",), 10, API_VERSION, _ok, {"swiglu": "liger_fake_backends:RecordingSwiGLU"})
# Same device and priority as FAST: a conflict.
RIVAL = Backend("rival", ("meta",), 100, API_VERSION, _ok, {"swiglu": "liger_fake_backends:RecordingSwiGLU"})
ABSENT = Backend("absent", ("meta",), 200, API_VERSION, _missing, {}, install_hint="pip install liger-absent")
CRASHY_PROBE = Backend("crashy", ("meta",), 50, API_VERSION, _raises, {})
OLD_API = Backend("old", ("meta",), 100, API_VERSION + 1, _ok, {})
# Serves an accelerator device type (one nobody else serves), so routing on a
# device type a broken plugin might have claimed can be tested on a CPU.
ACCEL = Backend("accel", ("privateuseone",), 100, API_VERSION, _ok, {"swiglu": "liger_fake_backends:RecordingSwiGLU"})
# An entry point that yields something other than a Backend.
NOT_A_BACKEND = {"name": "fast"}
# Names an implementation module that does not exist.
BROKEN_IMPL = Backend("brokenimpl", ("meta",), 100, API_VERSION, _ok, {"swiglu": "liger_fake_backends.nowhere:Fn"})
# Registers the name of liger-kernel's own backend.
IMPOSTOR_TORCH = Backend("torch", ("*",), 0, API_VERSION, _ok, {})

PREPARED: list[str] = []


def prepare() -> None:
    # the implementation module must not be imported yet: prepare comes first
    PREPARED.append("done" if "liger_fake_backends.late" not in sys.modules else "after the import")


def refuse() -> None:
    raise ImportError("the fake runtime is missing (pip install liger-fake-runtime)")


# Its ops live in a module of their own, imported after its prepare step.
PREPARING = Backend(
    "preparing",
    ("meta",),
    100,
    API_VERSION,
    _ok,
    functions={"swiglu": "liger_fake_backends.late:LateSwiGLU", "geglu": "liger_fake_backends.late:LateSwiGLU"},
    prepare="liger_fake_backends:prepare",
)
REFUSING = Backend(
    "refusing",
    ("meta",),
    100,
    API_VERSION,
    _ok,
    functions={"swiglu": "liger_fake_backends.late:LateSwiGLU"},
    prepare="liger_fake_backends:refuse",
)
