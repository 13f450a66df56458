"""pytest plugin of the conformance suite (entry point ``pytest11``).

Loaded in every pytest session of an environment where liger-conformance is
installed, it only adds options, fixtures and markers; the contract tests run
when asked for, with ``pytest --pyargs liger_conformance`` or a path.

Options (``pytest --help``, group "liger-conformance"):

--liger-backend NAME    backend under test (default ``torch``); forced for the
                        session with :func:`liger_kernel.set_backend`, and with
                        ``LIGER_KERNEL_STRICT=1`` so nothing silently falls back.
--liger-device DEVICE   device the test tensors live on (default ``cpu`` under a
                        mock or for the ``torch`` backend, else the backend's
                        device type).
--liger-mock VENDOR     run the session under ``liger_conformance.mocks.VENDOR``
                        (cuda, rocm, npu, xpu) with the Triton interpreter.
--liger-require-device  a skip for a missing device fails, and so does a
                        session that collects no test.
--liger-size SIZE       ``small`` shapes (default on CPU and under mocks) or
                        ``full`` (default on real hardware).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import liger_conformance
from liger_conformance import MISSING_DEVICE, SIZES

PACKAGE_DIR = Path(liger_conformance.__file__).resolve().parent
VENDORS = ("cuda", "rocm", "npu", "xpu")
#: the dtypes every op is tested in, in report order
DTYPE_NAMES = ("float32", "bfloat16", "float16")
#: routing variables that would override --liger-backend
ROUTING_ENV_PREFIXES = ("LIGER_KERNEL_BACKEND", "LIGER_KERNEL_IMPL")


@dataclass
class Settings:
    """The resolved --liger-* options of this session."""

    backend: str
    device: str
    mock: str | None
    require_device: bool
    size: str
    unsupported_dtypes: frozenset[str] = frozenset()
    expected_failures: dict[str, str] = field(default_factory=dict)
    unmatched_expected_failures: set[str] = field(default_factory=set)
    conformance_loaded: bool = False
    collected_suite: bool = False


SETTINGS = pytest.StashKey[Settings]()
MOCK_STACK = pytest.StashKey[contextlib.ExitStack]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("liger-conformance", "liger-kernel conformance suite")
    group.addoption(
        "--liger-backend",
        default="torch",
        metavar="NAME",
        help="backend under test, as installed (liger-kernel info lists them); default: torch",
    )
    group.addoption(
        "--liger-device",
        default=None,
        metavar="DEVICE",
        help="torch device of the test tensors; default: cpu under --liger-mock or for the torch "
        "backend, else the backend's device type",
    )
    group.addoption(
        "--liger-mock",
        default=None,
        choices=VENDORS,
        help="make this CPU-only machine look like VENDOR hardware for the whole session and run "
        "Triton kernels under the interpreter (TRITON_INTERPRET=1)",
    )
    group.addoption(
        "--liger-require-device",
        action="store_true",
        help="for hardware runners: a skip for a missing device is a failure, and a session that "
        "collects no test fails",
    )
    group.addoption(
        "--liger-size",
        default=None,
        choices=SIZES,
        help="shape set: small (default on CPU and under mocks) or full (default on real devices)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # Triton reads TRITON_INTERPRET when a kernel is decorated, so it must be
    # set before any conftest or test module imports a kernel module.
    if getattr(early_config.known_args_namespace, "liger_mock", None):
        os.environ["TRITON_INTERPRET"] = "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "liger_device(type): the test needs a device of this torch device type; a missing one is a skip, "
        "or a failure under --liger-require-device",
    )
    config.addinivalue_line("markers", "liger_op(name): the test exercises this op; skipped where the backend lacks it")
    mock = config.getoption("liger_mock")
    stack = contextlib.ExitStack()
    config.stash[MOCK_STACK] = stack
    if mock:
        from liger_conformance.mocks import use_interpreter

        use_interpreter()
        try:
            module = importlib.import_module(f"liger_conformance.mocks.{mock}")
        except ImportError as exc:
            raise pytest.UsageError(
                f"--liger-mock {mock}: cannot import liger_conformance.mocks.{mock}: {exc}"
            ) from exc
        stack.enter_context(module.active())
    settings = _settings(config)
    config.stash[SETTINGS] = settings
    liger_conformance._set_size(settings.size)


def pytest_unconfigure(config: pytest.Config) -> None:
    stack = config.stash.get(MOCK_STACK, None)
    if stack is not None:
        stack.close()
    liger_conformance._set_size("small")


def _settings(config: pytest.Config) -> Settings:
    name = config.getoption("liger_backend")
    mock = config.getoption("liger_mock")
    device = config.getoption("liger_device")
    if device is None:
        # under a mock tensors stay on the CPU; the dispatcher routes them as the vendor's device
        device = "cpu" if mock or name == "torch" else _backend(name).device_types[0]
        if device == "*":
            device = "cpu"
    try:
        device_type = _device_type(device)
    except RuntimeError as exc:
        raise pytest.UsageError(f"--liger-device {device!r}: {exc}") from exc
    size = config.getoption("liger_size") or ("small" if mock or device_type == "cpu" else "full")
    return Settings(
        backend=name,
        device=device,
        mock=mock,
        require_device=bool(config.getoption("liger_require_device")),
        size=size,
    )


def _device_type(device: str) -> str:
    import torch

    return torch.device(device).type


def _backend(name: str) -> Any:
    from liger_kernel.dispatch import BackendError, dispatcher

    try:
        return dispatcher.get(name).backend
    except BackendError as exc:
        raise pytest.UsageError(f"--liger-backend {name}: {exc}") from exc


def _load_conformance(settings: Settings) -> None:
    """Fill the backend's declared capabilities and expected failures in (once)."""
    from liger_kernel.backend import Conformance, load_attr

    if settings.conformance_loaded:
        return
    settings.conformance_loaded = True
    spec = _backend(settings.backend).conformance
    if spec is None:
        return
    try:
        declared = load_attr(spec)
    except Exception as exc:
        raise pytest.UsageError(
            f"backend {settings.backend!r}: its conformance declarations {spec} failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if callable(declared) and not isinstance(declared, Conformance):
        declared = declared()
    if not isinstance(declared, Conformance):
        raise pytest.UsageError(
            f"backend {settings.backend!r}: {spec} is a {type(declared).__name__}, not a liger_kernel.backend.Conformance"
        )
    unknown = set(declared.unsupported_dtypes) - set(DTYPE_NAMES)
    if unknown:
        raise pytest.UsageError(
            f"backend {settings.backend!r}: unsupported_dtypes names {sorted(unknown)}; "
            f"the suite tests {', '.join(DTYPE_NAMES)}"
        )
    settings.unsupported_dtypes = frozenset(declared.unsupported_dtypes)
    settings.expected_failures = dict(declared.expected_failures)
    settings.unmatched_expected_failures = set(declared.expected_failures)


def _in_suite(item: pytest.Item | pytest.Collector) -> bool:
    path = getattr(item, "path", None)
    return path is not None and PACKAGE_DIR in Path(path).resolve().parents


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "liger_dtype" not in metafunc.fixturenames:
        return
    import torch

    settings = metafunc.config.stash[SETTINGS]
    _load_conformance(settings)
    params = []
    for name in DTYPE_NAMES:
        marks = ()
        if name in settings.unsupported_dtypes:
            marks = (pytest.mark.skip(reason=f"backend {settings.backend!r} declares {name} unsupported"),)
        params.append(pytest.param(getattr(torch, name), id=name, marks=marks))
    metafunc.parametrize("liger_dtype", params)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash[SETTINGS]
    suite_items = [item for item in items if _in_suite(item)]
    if not suite_items:
        return
    _load_conformance(settings)
    settings.collected_suite = True
    implemented = _backend(settings.backend).implementations
    for item in suite_items:
        op_marker = item.get_closest_marker("liger_op")
        if op_marker is not None and settings.backend != "torch":
            op = op_marker.args[0]
            if op not in implemented:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"backend {settings.backend!r} has no {op!r} implementation: it falls back to "
                        "the 'torch' backend, which the torch lane tests"
                    )
                )
                continue
        for pattern, reason in settings.expected_failures.items():
            if pattern in item.nodeid:
                settings.unmatched_expected_failures.discard(pattern)
                item.add_marker(
                    pytest.mark.xfail(reason=f"declared by backend {settings.backend!r}: {reason}", strict=True)
                )


@pytest.fixture(scope="session")
def liger_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved --liger-* options."""
    return request.config.stash[SETTINGS]


@pytest.fixture(scope="session")
def liger_backend(liger_settings: Settings) -> Iterator[str]:
    """Name of the backend under test, forced as every op's route for the session."""
    import liger_kernel
    from liger_kernel.dispatch import dispatcher

    name = liger_settings.backend
    with pytest.MonkeyPatch.context() as env:
        for variable in list(os.environ):
            if variable.startswith(ROUTING_ENV_PREFIXES):
                env.delenv(variable)
        # an op the backend lacks must show up as a failure, not pass on the torch backend
        env.setenv("LIGER_KERNEL_STRICT", "1")
        liger_kernel.set_backend(name)
        # routes cached before the variables changed must go; the installed
        # backends stay (a test may have registered one, see recording.py)
        dispatcher.forget_routes()
        try:
            ok, reason = dispatcher.probe(name)
            if not ok:
                pytest.skip(f"{MISSING_DEVICE} backend {name!r} is unavailable: {reason}")
            yield name
        finally:
            liger_kernel.set_backend(None)
            dispatcher.forget_routes()


@pytest.fixture(scope="session")
def liger_device(liger_settings: Settings, liger_backend: str) -> Any:
    """The torch.device test tensors are created on."""
    import torch

    device = torch.device(liger_settings.device)
    if not device_available(device.type):
        pytest.skip(f"{MISSING_DEVICE} device type {device.type!r} is not available")
    return device


@pytest.fixture(scope="session")
def liger_size(liger_settings: Settings) -> str:
    """``"small"`` or ``"full"`` (see --liger-size)."""
    return liger_settings.size


@pytest.fixture
def liger_rng(request: pytest.FixtureRequest) -> Any:
    """A CPU torch.Generator seeded from the test's name, so each case draws
    its own inputs, the same ones on every run and machine."""
    import zlib

    import torch

    return torch.Generator().manual_seed(zlib.crc32(request.node.name.encode()))


def device_available(device_type: str) -> bool:
    """Whether torch can place tensors on ``device_type`` (mocks count as present)."""
    import torch

    if device_type in ("cpu", "meta"):
        return True
    module = getattr(torch, device_type, None)
    is_available = getattr(module, "is_available", None)
    return bool(is_available and is_available())


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("liger_device"):
        device_type = marker.args[0]
        if not device_available(device_type):
            pytest.skip(f"{MISSING_DEVICE} device type {device_type!r} is not available")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After a full-size contract test on an accelerator, hand its allocator's
    cached blocks back to the driver: xdist workers share one device, and a
    full-size case holds several GB (its float64 oracle copies among them)
    that one worker's cache would otherwise keep from the others, which then
    run out of memory. Any device module with ``empty_cache`` (torch.cuda,
    which ROCm builds use too, or torch.npu) is served alike."""
    settings = item.config.stash.get(SETTINGS, None)
    if settings is None or settings.size != "full" or not _in_suite(item):
        return
    import torch

    device_module = getattr(torch, torch.device(settings.device).type, None)
    empty_cache = getattr(device_module, "empty_cache", None)
    is_initialized = getattr(device_module, "is_initialized", None)
    if empty_cache is not None and is_initialized is not None and is_initialized():
        gc.collect()
        empty_cache()


def _missing_device_reason(report: pytest.TestReport | pytest.CollectReport) -> str | None:
    if not report.skipped:
        return None
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason if MISSING_DEVICE in reason else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if item.config.stash[SETTINGS].require_device:
        reason = _missing_device_reason(report)
        if reason is not None:
            report.outcome = "failed"
            report.longrepr = f"--liger-require-device: a device is missing on this runner: {reason}"
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    if collector.config.stash[SETTINGS].require_device:
        reason = _missing_device_reason(report)
        if reason is not None:
            report.outcome = "failed"
            report.longrepr = f"--liger-require-device: a device is missing on this runner: {reason}"
    return report


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    settings = session.config.stash.get(SETTINGS, None)
    if settings is None or not settings.require_device:
        return
    if session.testscollected == 0 and not hasattr(session.config, "workerinput"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("--liger-require-device: no test was collected, which counts as a failure", red=True)


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None:
        return None
    return (
        f"liger-conformance: backend={settings.backend} device={settings.device} mock={settings.mock or 'none'} "
        f"size={settings.size} require_device={settings.require_device}"
    )


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None or not settings.collected_suite:
        return
    for pattern in sorted(settings.unmatched_expected_failures):
        terminalreporter.write_line(
            f"liger-conformance: expected failure {pattern!r} of backend {settings.backend!r} matched no collected test",
            yellow=True,
        )
