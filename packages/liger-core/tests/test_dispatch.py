"""The dispatcher: discovery, selection order, errors and per-call routing.

Backends come from the fake distribution in ``fake_backends/``; they serve the
``meta`` device type, so routing between two device types is tested on a CPU.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading

import pytest
import torch

import liger_kernel
from liger_kernel.backend import API_VERSION
from liger_kernel.dispatch import (
    BackendConflictError,
    BackendLoadError,
    BackendUnavailableError,
    FallbackError,
    UnknownBackendError,
    dispatcher,
)
from liger_kernel.ops import LigerSiLUMulFunction

FAST = "liger_fake_backends:FAST"
SLOW = "liger_fake_backends:SLOW"


def route(op: str = "swiglu", device_type: str = "meta") -> str:
    return dispatcher.select(
        op, device_type, liger_kernel.dispatch._context.get() or dispatcher.default_request
    ).backend


def meta_pair() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty(4, 8, device="meta"), torch.empty(4, 8, device="meta")


def test_discovers_installed_backends_with_their_distribution(installed_backends):
    installed_backends(fast=FAST)
    installed = dispatcher.installed()
    assert set(installed) >= {"torch", "fast"}
    assert installed["fast"].distribution == "liger-fake-backends"
    assert installed["fast"].version == "0.1.0"
    assert installed["torch"].distribution == "liger-core"


def test_highest_priority_available_backend_wins(installed_backends):
    installed_backends(fast=FAST, slow=SLOW, absent="liger_fake_backends:ABSENT")
    # "absent" has the highest priority but its probe fails.
    assert route() == "fast"


def test_device_types_nobody_claims_go_to_torch(installed_backends):
    installed_backends(fast=FAST)
    assert route(device_type="cpu") == "torch"


@pytest.mark.parametrize("variable", ["LIGER_KERNEL_BACKEND", "LIGER_KERNEL_IMPL"])
def test_global_override_and_its_alias(installed_backends, monkeypatch, variable):
    installed_backends(fast=FAST, slow=SLOW)
    monkeypatch.setenv(variable, "slow")
    assert route() == "slow"


def test_per_op_override_beats_global_override(installed_backends, monkeypatch):
    installed_backends(fast=FAST, slow=SLOW)
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "fast")
    monkeypatch.setenv("LIGER_KERNEL_BACKEND_SWIGLU", "slow")
    assert route() == "slow"
    assert route("rms_norm") == "torch"  # "fast" has no rms_norm: falls back


def test_set_backend_and_use_backend(installed_backends):
    installed_backends(fast=FAST, slow=SLOW)
    liger_kernel.set_backend("slow")
    assert route() == "slow"
    with liger_kernel.use_backend("fast"):
        assert route() == "fast"
    assert route() == "slow"


def test_environment_beats_use_backend(installed_backends, monkeypatch):
    installed_backends(fast=FAST, slow=SLOW)
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "slow")
    with liger_kernel.use_backend("fast"):
        assert route() == "slow"


def test_use_backend_switches_routes_of_actual_calls(installed_backends):
    installed_backends(fast=FAST, slow=SLOW)
    with liger_kernel.use_backend("slow"):
        first = LigerSiLUMulFunction.route("meta")
    second = LigerSiLUMulFunction.route("meta")
    assert first is second  # both backends serve it with the same fake Function
    assert dispatcher.select("swiglu", "meta", "slow").backend == "slow"
    assert dispatcher.select("swiglu", "meta", None).backend == "fast"


def test_unknown_backend_name_lists_installed_ones(installed_backends, monkeypatch):
    installed_backends(fast=FAST)
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "nope")
    with pytest.raises(UnknownBackendError, match="'nope'; installed backends: .*fast.*torch"):
        LigerSiLUMulFunction.apply(torch.randn(2, 3), torch.randn(2, 3))


def test_set_backend_rejects_unknown_names_at_once(installed_backends):
    installed_backends(fast=FAST)
    with pytest.raises(UnknownBackendError, match="installed backends: .*fast.*torch"):
        liger_kernel.set_backend("nope")
    with pytest.raises(UnknownBackendError):
        with liger_kernel.use_backend("nope"):
            pass


def test_requested_but_unavailable_backend_gives_probe_reason_and_install_command(installed_backends, monkeypatch):
    installed_backends(absent="liger_fake_backends:ABSENT")
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "absent")
    with pytest.raises(BackendUnavailableError, match="fake device driver not found.*pip install liger-absent"):
        LigerSiLUMulFunction.apply(torch.randn(2, 3), torch.randn(2, 3))


def test_backend_whose_import_raises_is_reported_with_the_real_cause(installed_backends):
    installed_backends(broken="liger_fake_backends.broken:BACKEND")
    with pytest.raises(BackendLoadError, match="libfakevendor.so.*pip uninstall liger-fake-backends") as info:
        LigerSiLUMulFunction.apply(torch.randn(2, 3), torch.randn(2, 3))
    assert isinstance(info.value.__cause__, ImportError)


def test_implementation_that_fails_to_import_is_reported(installed_backends):
    installed_backends(brokenimpl="liger_fake_backends:BROKEN_IMPL")
    a, b = meta_pair()
    with pytest.raises(BackendLoadError, match="liger_fake_backends.nowhere") as info:
        LigerSiLUMulFunction.apply(a, b)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_probe_that_raises_is_an_error_not_a_silent_no(installed_backends):
    installed_backends(crashy="liger_fake_backends:CRASHY_PROBE")
    with pytest.raises(BackendLoadError, match="probe of backend 'crashy' raised OSError: probe crashed"):
        route()


def test_two_backends_at_equal_priority_is_an_error_naming_both(installed_backends):
    installed_backends(fast=FAST, rival="liger_fake_backends:RIVAL")
    with pytest.raises(BackendConflictError) as info:
        route()
    assert "'fast'" in str(info.value) and "'rival'" in str(info.value) and "'meta'" in str(info.value)


def test_api_version_mismatch_names_both_versions(installed_backends):
    installed_backends(old="liger_fake_backends:OLD_API")
    with pytest.raises(BackendLoadError, match=f"API version {API_VERSION + 1}.*API version {API_VERSION}"):
        dispatcher.installed()


def test_missing_op_falls_back_to_torch_and_logs_once(installed_backends, caplog):
    installed_backends(fast=FAST)
    caplog.set_level(logging.WARNING, logger="liger_kernel")
    for _ in range(3):
        dispatcher.function("rms_norm", "meta", "LigerRMSNormFunction")
    messages = [r.getMessage() for r in caplog.records if "falls back" in r.getMessage()]
    assert messages == [
        "LigerRMSNormFunction on meta falls back to the 'torch' backend: "
        "backend 'fast' has no 'rms_norm' implementation"
    ]


def test_strict_mode_makes_fallback_an_error(installed_backends, monkeypatch):
    installed_backends(fast=FAST)
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "1")
    with pytest.raises(FallbackError, match="'fast' has no 'rms_norm'.*LIGER_KERNEL_STRICT=1"):
        dispatcher.function("rms_norm", "meta", "LigerRMSNormFunction")
    assert route("swiglu") == "fast"  # ops the backend has are unaffected


def test_each_call_routes_on_its_tensors_device_type(installed_backends):
    installed_backends(fast=FAST)
    from liger_fake_backends import CALLS

    CALLS.clear()
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    out = LigerSiLUMulFunction.apply(a, b)  # CPU tensor: the torch backend
    torch.testing.assert_close(out, torch.nn.functional.silu(a) * b)
    assert CALLS == []
    LigerSiLUMulFunction.apply(*meta_pair())  # meta tensor: the fake backend
    assert CALLS == [("swiglu", "meta")]


def test_route_logging_names_device_function_and_distribution(installed_backends, monkeypatch, capsys):
    installed_backends(fast=FAST)
    monkeypatch.setenv("LIGER_KERNEL_LOG", "1")
    for _ in range(2):
        LigerSiLUMulFunction.apply(*meta_pair())
    out = capsys.readouterr().out
    assert out.count("Using META LigerSiLUMulFunction (liger-fake-backends 0.1.0)") == 1


def test_concurrent_first_calls_resolve_one_route(installed_backends):
    installed_backends(fast=FAST)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def call() -> None:
        barrier.wait()
        try:
            results.append(dispatcher.function("swiglu", "meta", "LigerSiLUMulFunction"))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 8 and len({id(r) for r in results}) == 1


def test_info_json_has_backends_and_routes(installed_backends):
    installed_backends(fast=FAST, absent="liger_fake_backends:ABSENT")
    from liger_kernel.env_report import collect

    report = json.loads(json.dumps(collect(), default=str))
    backends = {b["name"]: b for b in report["backends"]}
    for key in ("name", "distribution", "version", "device_types", "priority", "available", "reason"):
        assert key in backends["fast"]
    assert backends["absent"]["available"] is False
    assert backends["absent"]["reason"] == "fake device driver not found"
    routes = {(r["op"], r["device_type"]): r for r in report["routes"]}
    assert routes[("swiglu", "meta")]["backend"] == "fast"
    assert routes[("swiglu", "meta")]["implementation"] == "liger_fake_backends:RecordingSwiGLU"
    assert routes[("rms_norm", "meta")]["backend"] == "torch"
    assert routes[("rms_norm", "cpu")]["backend"] == "torch"


def test_import_and_probing_leave_triton_and_torch_npu_unimported():
    code = (
        "import sys, liger_kernel\n"
        "from liger_kernel.dispatch import dispatcher\n"
        "from liger_kernel.env_report import collect\n"
        "[dispatcher.probe(n) for n in dispatcher.installed()]\n"
        "collect()\n"
        "bad = [m for m in ('triton', 'torch_npu') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print(sorted(dispatcher.installed()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "'torch'" in done.stdout


def test_registered_backend_shadows_and_survives_reset_until_undone(installed_backends):
    installed_backends(fast=FAST)
    from liger_fake_backends import SLOW

    shadow = SLOW.__class__(**{**SLOW.__dict__, "name": "fast", "priority": 300})
    undo = dispatcher.register(shadow, "tests", "1.0")
    assert dispatcher.installed()["fast"].distribution == "tests"
    liger_kernel.reset()
    assert dispatcher.installed()["fast"].distribution == "tests"
    undo()
    assert dispatcher.installed()["fast"].distribution == "liger-fake-backends"
