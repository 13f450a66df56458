"""The dispatcher: discovery, selection order, errors and per-call routing.

Backends come from the fake distribution in ``fake_backends/``; they serve the
``meta`` device type, so routing between two device types is tested on a CPU.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
from pathlib import Path

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
from liger_kernel.ops import OPS, LigerSiLUMulFunction

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
    assert installed["torch"].distribution == "liger-kernel"


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


BROKEN = "liger_fake_backends.broken:BACKEND"
BROKEN_CAUSE = "broken.*liger-fake-backends 0.1.0.*ImportError: libfakevendor.so.*pip uninstall liger-fake-backends"


def test_broken_plugin_leaves_cpu_ops_and_other_backends_working(installed_backends, monkeypatch):
    installed_backends(broken=BROKEN, fast=FAST)
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(LigerSiLUMulFunction.apply(a, b), torch.nn.functional.silu(a) * b)
    assert route() == "fast"  # meta: served by a working backend, and no plugin claims it
    assert set(dispatcher.installed()) >= {"torch", "fast"}
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "torch")
    dispatcher.forget_routes()
    torch.testing.assert_close(LigerSiLUMulFunction.apply(a, b), torch.nn.functional.silu(a) * b)
    assert route(device_type="cuda") == "torch"  # an explicit choice serving every device type


def _request_by_environment(monkeypatch, variable):
    monkeypatch.setenv(variable, "broken")
    LigerSiLUMulFunction.apply(torch.randn(2, 3), torch.randn(2, 3))


REQUESTS = {
    "LIGER_KERNEL_BACKEND": lambda mp: _request_by_environment(mp, "LIGER_KERNEL_BACKEND"),
    "LIGER_KERNEL_BACKEND_SWIGLU": lambda mp: _request_by_environment(mp, "LIGER_KERNEL_BACKEND_SWIGLU"),
    "set_backend": lambda mp: liger_kernel.set_backend("broken"),
    "use_backend": lambda mp: liger_kernel.use_backend("broken").__enter__(),
}


@pytest.mark.parametrize("how", list(REQUESTS))
def test_requesting_a_broken_plugin_raises_with_its_cause(installed_backends, monkeypatch, how):
    installed_backends(broken=BROKEN)
    with pytest.raises(BackendLoadError, match=f"'broken' was requested.*{BROKEN_CAUSE}") as info:
        REQUESTS[how](monkeypatch)
    assert isinstance(info.value.__cause__, ImportError)


def test_broken_plugin_claims_accelerators_no_working_backend_serves(installed_backends):
    installed_backends(broken=BROKEN)
    with pytest.raises(BackendLoadError, match=f"device type 'privateuseone'.*{BROKEN_CAUSE}") as info:
        LigerSiLUMulFunction.route("privateuseone")
    assert isinstance(info.value.__cause__, ImportError)
    assert "LIGER_KERNEL_BACKEND=torch" in str(info.value)


def test_working_backend_serves_its_device_type_with_one_warning_naming_the_broken_plugin(installed_backends, caplog):
    installed_backends(broken=BROKEN, accel="liger_fake_backends:ACCEL")
    caplog.set_level(logging.WARNING, logger="liger_kernel")
    for op in ("swiglu", "swiglu", "rms_norm"):
        dispatcher.function(op, "privateuseone", "LigerSiLUMulFunction")
    assert dispatcher.select("swiglu", "privateuseone").backend == "accel"
    warnings = [r.getMessage() for r in caplog.records if "broken" in r.getMessage()]
    assert len(warnings) == 1
    assert "'broken'" in warnings[0] and "libfakevendor.so" in warnings[0] and "'accel'" in warnings[0]
    assert "pip uninstall liger-fake-backends" in warnings[0]


def test_entry_point_yielding_something_else_is_recorded_not_raised(installed_backends):
    installed_backends(odd="liger_fake_backends:NOT_A_BACKEND", fast=FAST)
    assert route() == "fast"
    [broken] = dispatcher.broken()
    assert broken.entry_point == "odd" and "not a liger_kernel.backend.Backend" in broken.cause
    with pytest.raises(BackendLoadError, match="'odd' was requested.*yields dict"):
        liger_kernel.set_backend("odd")


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


def test_api_version_mismatch_is_recorded_and_raised_where_it_serves(installed_backends, monkeypatch):
    installed_backends(old="liger_fake_backends:OLD_API")
    assert "old" not in dispatcher.installed()  # discovery itself does not raise
    versions = f"API version {API_VERSION + 1}.*API version {API_VERSION}"
    with pytest.raises(BackendLoadError, match=f"device type 'meta'.*'old'.*{versions}"):
        route()  # it declares meta, and nothing else serves meta
    assert route(device_type="cpu") == "torch"
    assert route(device_type="privateuseone") == "torch"  # not a device type it declares
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "old")
    with pytest.raises(BackendLoadError, match=f"'old' was requested.*{versions}"):
        route(device_type="cpu")


def test_two_distributions_registering_one_backend_name_use_neither(installed_backends, monkeypatch):
    installed_backends(fast=FAST)
    installed_backends(distribution="liger-other", fast=FAST, slow=SLOW)
    assert "fast" not in dispatcher.installed()
    both = "'fast' is registered more than once.*liger-(fake-backends|other).*liger-(fake-backends|other)"
    assert route() == "slow"  # a working backend serves meta (with a warning)
    assert route(device_type="cpu") == "torch"
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "fast")
    with pytest.raises(BackendConflictError, match=f"'fast' was requested.*{both}.*pip uninstall"):
        route()


def test_a_second_torch_backend_does_not_displace_liger_kernels(installed_backends):
    installed_backends(torch="liger_fake_backends:IMPOSTOR_TORCH")
    assert dispatcher.installed()["torch"].distribution == "liger-kernel"
    [rival] = dispatcher.broken()
    assert rival.conflict and rival.distribution == "liger-fake-backends"
    assert route(device_type="cpu") == "torch"


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
    from liger_kernel.cli.env_report import collect

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


def test_info_lists_every_other_backend_and_route_and_the_broken_plugin(installed_backends, capsys):
    installed_backends(broken=BROKEN, fast=FAST)
    from liger_kernel.cli import env_report

    report = env_report.collect()
    assert {b["name"] for b in report["backends"]} >= {"torch", "fast"}
    [broken] = report["broken_backends"]
    assert broken["entry_point"] == "broken" and broken["distribution"] == "liger-fake-backends"
    assert "ImportError: libfakevendor.so" in broken["cause"] and "pip uninstall" in broken["repair"]
    routes = {(r["op"], r["device_type"]): r for r in report["routes"]}
    assert all(routes[(op, "cpu")]["backend"] == "torch" for op in OPS)
    assert routes[("swiglu", "meta")]["backend"] == "fast"
    assert env_report.main(["--json"]) == 1
    assert json.loads(capsys.readouterr().out)["broken_backends"][0]["name"] == "broken"
    assert env_report.main([]) == 1
    text = capsys.readouterr().out
    assert "BROKEN (entry point 'broken'): ImportError: libfakevendor.so" in text
    assert "NOT OK: broken backend plugin 'broken' (liger-fake-backends)" in text


def test_info_exits_non_zero_when_a_route_is_broken(monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_BACKEND", "nope")
    from liger_kernel.cli import env_report

    assert env_report.main([]) == 1
    out = capsys.readouterr().out
    assert "LIGER_KERNEL_BACKEND=nope" in out and "routes raise" in out
    monkeypatch.delenv("LIGER_KERNEL_BACKEND")
    liger_kernel.reset()
    assert env_report.main([]) == 0


def test_info_shows_the_settings_in_force_and_what_they_do_not_do(monkeypatch, capsys):
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "1")
    monkeypatch.setenv("LIGER_KERNEL_BACKEND_RMSNORM", "torch")
    from liger_kernel.cli import env_report

    assert env_report.main(["--json"]) == 0  # a setting that does nothing is a warning, not a broken route
    report = json.loads(capsys.readouterr().out)
    assert report["settings"] == {"LIGER_KERNEL_BACKEND_RMSNORM": "torch", "LIGER_KERNEL_STRICT": "1"}
    [warning] = report["setting_warnings"]
    assert "LIGER_KERNEL_BACKEND_RMSNORM" in warning and "did you mean LIGER_KERNEL_BACKEND_RMS_NORM?" in warning
    env_report.main([])
    text = capsys.readouterr().out
    assert "  LIGER_KERNEL_STRICT=1" in text and "WARNING: LIGER_KERNEL_BACKEND_RMSNORM" in text


@pytest.mark.parametrize(
    ("variable", "close"),
    [
        ("LIGER_KERNEL_BACKEND_RMSNORM", "LIGER_KERNEL_BACKEND_RMS_NORM"),
        ("LIGER_KERNEL_STICT", "LIGER_KERNEL_STRICT"),
        ("LIGER_KERNEL_BACKENDS", "LIGER_KERNEL_BACKEND"),
        ("liger_kernel_log", "LIGER_KERNEL_LOG"),
    ],
)
def test_a_setting_that_does_nothing_is_warned_about_once_naming_the_close_match(monkeypatch, caplog, variable, close):
    monkeypatch.setenv(variable, "1")
    caplog.set_level(logging.WARNING, logger="liger_kernel")
    a, b = torch.randn(2, 3), torch.randn(2, 3)
    for _ in range(2):
        LigerSiLUMulFunction.apply(a, b)
    dispatcher.function("rms_norm", "cpu", "LigerRMSNormFunction")
    warnings = [r.getMessage() for r in caplog.records if variable in r.getMessage()]
    assert len(warnings) == 1 and f"did you mean {close}?" in warnings[0]


def test_a_flag_value_that_means_neither_on_nor_off_is_warned_about(monkeypatch, caplog):
    monkeypatch.setenv("LIGER_KERNEL_STRICT", "always")
    caplog.set_level(logging.WARNING, logger="liger_kernel")
    route(device_type="cpu")
    assert any("LIGER_KERNEL_STRICT='always' is neither on" in r.getMessage() for r in caplog.records)


def test_every_liger_kernel_variable_the_code_reads_is_in_the_one_list():
    from liger_kernel import settings

    root = Path(__file__).resolve().parents[3]
    sources = [*root.glob("packages/*/src/**/*.py"), *root.glob("tests-common/src/**/*.py")]
    named = {m for path in sources for m in re.findall(r"LIGER_KERNEL_[A-Z_]+", path.read_text())}
    per_op = {settings.per_op_variable(op, prefix) for prefix in settings.PER_OP_PREFIXES for op in OPS}
    # 0.8.5's Python constant (liger_kernel.ops.backends) that holds "LIGER_KERNEL_IMPL", not a variable
    python_names = {"LIGER_KERNEL_IMPL_ENV"}
    unknown = named - set(settings.SETTINGS) - per_op - {*settings.PER_OP_PREFIXES, settings.PREFIX} - python_names
    assert not unknown, f"LIGER_KERNEL_* names read but not in liger_kernel.settings.SETTINGS: {unknown}"
    assert {"LIGER_KERNEL_BACKEND", "LIGER_KERNEL_STRICT", "LIGER_KERNEL_OPERATORS"} <= named


def test_import_and_probing_leave_triton_and_torch_npu_unimported():
    code = (
        "import sys, liger_kernel\n"
        "from liger_kernel.dispatch import dispatcher\n"
        "from liger_kernel.cli.env_report import collect\n"
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


def test_a_backends_prepare_step_runs_once_before_its_first_op_import(installed_backends):
    installed_backends(preparing="liger_fake_backends:PREPARING")
    dispatcher.installed()
    fake = sys.modules["liger_fake_backends"]
    assert fake.PREPARED == [] and "liger_fake_backends.late" not in sys.modules  # discovery prepares nothing
    a, b = meta_pair()
    LigerSiLUMulFunction.apply(a, b)
    assert fake.PREPARED == ["done"]
    assert "liger_fake_backends.late" in sys.modules
    dispatcher.forget_routes()  # routes resolved again, for another op too: still prepared once
    LigerSiLUMulFunction.apply(a, b)
    dispatcher.function("geglu", "meta", "LigerGELUMulFunction")
    assert fake.PREPARED == ["done"]


def test_a_failing_prepare_step_refuses_the_route_and_names_its_cause(installed_backends):
    installed_backends(refusing="liger_fake_backends:REFUSING")
    for _ in range(2):  # nothing is cached: it is tried again on the next call
        with pytest.raises(BackendLoadError, match=r"failed to prepare \(liger_fake_backends:refuse\) for op 'swiglu'"):
            LigerSiLUMulFunction.apply(*meta_pair())
    assert "liger_fake_backends.late" not in sys.modules


def test_a_portable_backend_states_only_its_overrides():
    from liger_kernel.backend import Backend
    from liger_kernel.triton import PORTABLE_FUNCTIONS

    own = {"rms_norm": "vendor.kernels:RMSNormFunction"}
    backend = Backend("v", ("meta",), 1, API_VERSION, lambda: (True, ""), own, portable=True, profile="vendor:profile")
    assert set(backend.implementations) == set(PORTABLE_FUNCTIONS) == set(OPS)
    assert backend.implementations["rms_norm"] == own["rms_norm"]
    assert backend.implementations["swiglu"] == "liger_kernel.triton.swiglu:SiLUMulFunction"
    assert Backend("w", ("meta",), 1, API_VERSION, lambda: (True, ""), own).implementations == own
    with pytest.raises(ValueError, match="portable=True needs a profile"):
        Backend("x", ("meta",), 1, API_VERSION, lambda: (True, ""), portable=True)


def test_ops_is_the_former_name_of_functions():
    from liger_kernel.backend import Backend

    table = {"swiglu": "vendor:SiLUMulFunction"}
    old = Backend(name="o", device_types=("meta",), priority=1, api_version=API_VERSION, probe=None, ops=table)
    assert old.functions == old.ops == old.implementations == table
    with pytest.raises(TypeError, match="not both"):
        Backend("o", ("meta",), 1, API_VERSION, None, functions=table, ops=table)
