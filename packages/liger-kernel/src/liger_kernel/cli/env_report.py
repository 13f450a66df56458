"""What is installed and where each op goes: ``liger-kernel info``.

Also runnable as ``python -m liger_kernel.cli.env_report``. :func:`collect` returns
the same data as a dict for programs. It exits non-zero when anything in it is
broken (:func:`failures`): a backend plugin that cannot be used, a route that
raises, a module owned by two distributions, or discovery itself failing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib import metadata
from typing import Any

import torch

from liger_kernel import settings
from liger_kernel.backend import API_VERSION, load_attr
from liger_kernel.dispatch import BackendError, dispatcher
from liger_kernel.distributions import CHECKED_MODULES, module_owners, shared_module_problem

DISTRIBUTIONS = (
    "liger-kernel",
    "liger-core",
    "liger-cuda",
    "liger-rocm",
    "liger-ascend",
    "liger-xpu",
    "liger-conformance",
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _accelerator() -> str | None:
    """The device type of this process's accelerator, if torch sees one."""
    find = getattr(getattr(torch, "accelerator", None), "current_accelerator", None)
    try:
        device = find() if find else None
    except Exception:  # a broken vendor runtime: the backends' probes say why
        return None
    return device.type if device is not None else None


def collect() -> dict[str, Any]:
    """Installed distributions, backends with probe results, and every route."""
    from liger_kernel.ops import OPS

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "core_api_version": API_VERSION,
        "runtime": {"torch": torch.__version__},
        "distributions": {d: v for d in DISTRIBUTIONS if (v := _version(d)) is not None},
        "settings": settings.in_force(),
        "setting_warnings": [],
        "backends": [],
        "broken_backends": [],
        "routes": [],
        "install_conflicts": [],
    }
    for module in CHECKED_MODULES:
        owners = module_owners(module)
        problem = shared_module_problem(module, owners)
        if problem:
            report["install_conflicts"].append(
                {"module": module, "owners": [vars(o) for o in owners], "problem": problem}
            )
    try:
        installed = dispatcher.installed()
        report["setting_warnings"] = dispatcher.setting_problems()
    except BackendError as exc:
        report["error"] = _error(exc)
        return report

    device_types = {"cpu"}
    for name, inst in sorted(installed.items(), key=lambda kv: -kv[1].backend.priority):
        backend = inst.backend
        report["distributions"].setdefault(inst.distribution, inst.version)
        try:
            available, reason = dispatcher.probe(name)
        except BackendError as exc:
            available, reason = False, _error(exc)
        entry = {
            "name": name,
            "distribution": inst.distribution,
            "version": inst.version,
            "device_types": list(backend.device_types),
            "aliases": list(backend.aliases),
            "per_op": backend.per_op,
            "priority": backend.priority,
            "available": available,
            "reason": reason,
            "ops": sorted(backend.implementations),
            "install_hint": backend.install_hint,
        }
        if backend.runtime_versions:
            try:
                versions = load_attr(backend.runtime_versions)()
                entry["runtime_versions"] = versions
                report["runtime"].update(versions)
            except Exception as exc:
                entry["runtime_versions_error"] = _error(exc)
        report["backends"].append(entry)
        device_types.update(t for t in backend.device_types if t != "*")
    for broken in dispatcher.broken():
        report["broken_backends"].append(
            {
                "name": broken.name,
                "entry_point": broken.entry_point,
                "distribution": broken.distribution,
                "version": broken.version,
                "device_types": list(broken.device_types) if broken.device_types is not None else None,
                "cause": broken.cause,
                "repair": broken.repair,
            }
        )
        device_types.update(t for t in broken.device_types or () if t != "*")
    device_types.update(dispatcher.device_alias.values())
    accelerator = _accelerator()
    if accelerator:
        device_types.add(accelerator)

    # ops that only implementations registered with liger_kernel.backends.register_impl have come
    # last, on the device types those serve
    extra = {
        op: [inst.backend for inst in installed.values() if op in inst.backend.implementations]
        for op in dispatcher.ops()
        if op not in OPS
    }
    for device_type in sorted(device_types):
        served_extra = [op for op, holders in extra.items() if any(b.serves(device_type) for b in holders)]
        for op in [*OPS, *served_extra]:
            route: dict[str, Any] = {"op": op, "device_type": device_type}
            try:
                chosen = dispatcher.select(op, device_type, dispatcher.default_request)
                route.update(
                    backend=chosen.backend,
                    distribution=chosen.distribution,
                    implementation=chosen.implementation,
                    fallback_reason=chosen.fallback_reason,
                )
            except BackendError as exc:
                route.update(backend=None, implementation=None, error=_error(exc))
            report["routes"].append(route)
    return report


def failures(report: dict[str, Any]) -> list[str]:
    """What in ``report`` is broken, one line each; empty when nothing is."""
    found = [f"ERROR: {report['error']}"] if "error" in report else []
    found += [f"broken backend plugin {b['name']!r} ({b['distribution']})" for b in report["broken_backends"]]
    routes = [r for r in report["routes"] if r.get("error")]
    if routes:
        found.append(f"{len(routes)} of {len(report['routes'])} routes raise")
    found += [f"the {c['module']!r} module has {len(c['owners'])} owners" for c in report["install_conflicts"]]
    return found


def format_report(report: dict[str, Any]) -> str:
    lines = [f"liger-kernel environment (core API {report['core_api_version']}, Python {report['python']})", ""]
    lines.append("Distributions:")
    for dist, version in sorted(report["distributions"].items()):
        lines.append(f"  {dist:<20} {version}")
    lines.append("Runtime:")
    for name, version in sorted(report["runtime"].items()):
        lines.append(f"  {name:<20} {version}")
    lines.append("Settings (LIGER_KERNEL_*):" + ("" if report["settings"] else " none set"))
    for name, value in report["settings"].items():
        lines.append(f"  {name}={value}")
    for warning in report["setting_warnings"]:
        lines.append(f"  WARNING: {warning}")
    for conflict in report["install_conflicts"]:
        lines += ["", f"INSTALL CONFLICT: {conflict['problem']}"]
    if "error" in report:
        lines += ["", f"ERROR: {report['error']}"]
        return "\n".join(lines)
    lines += ["", "Backends (highest priority first):"]
    for b in report["backends"]:
        status = "available" if b["available"] else "unavailable"
        aliases = f" (alias {', '.join(b['aliases'])})" if b.get("aliases") else ""
        kind = "  per-op" if b.get("per_op") else ""
        lines.append(
            f"  {b['name']:<8}{aliases} {b['distribution']} {b['version']}  devices={','.join(b['device_types'])}"
            f"  priority={b['priority']}{kind}  {status}: {b['reason']}"
        )
    for b in report["broken_backends"]:
        devices = ",".join(b["device_types"]) if b["device_types"] is not None else "unknown"
        lines.append(
            f"  {b['name']:<8} {b['distribution']} {b['version']}  devices={devices}  BROKEN"
            f" (entry point {b['entry_point']!r}): {b['cause']}. Repair: {b['repair']}"
        )
    lines += ["", "Routes:"]
    width = max(len(r["op"]) for r in report["routes"])
    collapsed = set()
    for r in report["routes"]:
        same = [o for o in report["routes"] if o["device_type"] == r["device_type"]]
        if r.get("error") and all(o.get("error") == r["error"] for o in same):
            # one line for a device type whose every op fails alike
            if r["device_type"] not in collapsed:
                collapsed.add(r["device_type"])
                lines.append(f"  {r['device_type']:<5} {'(every op)':<{width}}  ERROR {r['error']}")
            continue
        if r.get("error"):
            target = f"ERROR {r['error']}"
        else:
            target = f"{r['backend']:<7} {r['implementation']}"
            if r.get("fallback_reason"):
                target += f"  (fallback: {r['fallback_reason']})"
        lines.append(f"  {r['device_type']:<5} {r['op']:<{width}}  {target}")
    broken = failures(report)
    if broken:
        lines += ["", f"NOT OK: {'; '.join(broken)}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="liger-kernel info",
        description="Show installed liger distributions, backend probes, and the backend each op routes to.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    report = collect()
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_report(report))
    return 1 if failures(report) else 0


if __name__ == "__main__":
    sys.exit(main())
