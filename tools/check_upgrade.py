"""Upgrade an install of liger-kernel 0.8.5 to this repo's wheels, check it, and downgrade back.

Most users arrive with liger-kernel 0.8.x installed. In a fresh virtual
environment under a temporary folder this script does what such a user does,
and fails on the first sign of a broken install:

a. ``pip install liger-kernel==0.8.5`` from the package index;
b. ``pip install -U liger-kernel[cuda]`` from this repo's wheels (built here,
   or taken from ``--wheels``);
c. every file that the installed liger distributions' RECORDs list is present,
   ``liger-kernel info`` runs, LigerRMSNorm's forward and backward on the CPU
   match plain PyTorch, and ``pip check`` reports nothing about our
   distributions;
d. ``pip install liger-kernel==0.8.5`` again, then ``pip uninstall`` of the
   remaining 0.9.0 distributions: 0.8.5 is whole, imports
   (``liger_kernel.transformers``) and reports its version;
e. ``pip uninstall -y`` of every liger distribution leaves no ``liger_kernel*``
   file or folder in site-packages.

Every pip command pins ``torch==2.13.0`` (installed first), so that nothing
pulls another torch build in. The venv needs the package index for
liger-kernel 0.8.5 and its ``triton``.

Usage: python tools/check_upgrade.py [--wheels DIR] [--from-version 0.8.5] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
#: the torch every pip command of the check pins (the dev and CI environments' torch)
TORCH = "torch==2.13.0"
#: the import package whose files must survive every step
PACKAGE = "liger_kernel"


class StepFailed(Exception):
    """A pip command failed: the steps after it would check nothing."""


# ---------------------------------------------------------------- run inside the venv
# Each probe runs under the venv's python (standard library and the installed
# packages only) and prints one JSON document.


def _liger_distributions() -> list:
    from importlib import metadata

    return [
        d for d in metadata.distributions() if re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower().startswith("liger")
    ]


def probe_installed() -> dict:
    """Installed liger distributions -> {version, missing: files their RECORD lists that are gone}."""
    found = {}
    for dist in _liger_distributions():
        missing = [str(f) for f in dist.files or [] if not Path(dist.locate_file(f)).exists()]
        found[dist.metadata["Name"]] = {"version": dist.version, "missing": sorted(missing)}
    return found


def probe_import() -> dict:
    """What ``import liger_kernel.transformers`` gives: the version and where it came from."""
    from importlib import metadata

    import liger_kernel
    import liger_kernel.transformers

    owner = next(
        (
            d.metadata["Name"]
            for d in _liger_distributions()
            if any(str(f).replace("\\", "/") == f"{PACKAGE}/__init__.py" for f in d.files or [])
        ),
        None,
    )
    # a package whose __init__.py was deleted still imports, as a namespace package (no __file__)
    return {
        "version": metadata.version("liger-kernel"),
        "whole": liger_kernel.__file__ is not None and liger_kernel.transformers.__file__ is not None,
        "owner": owner,
    }


def probe_rms_norm() -> dict:
    """LigerRMSNorm forward and backward on the CPU against the same formula in plain PyTorch."""
    import torch

    from liger_kernel.transformers import LigerRMSNorm

    torch.manual_seed(0)
    x = torch.randn(3, 5, 16, dtype=torch.float32, requires_grad=True)
    norm = LigerRMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(16) + 0.5)
    weight = norm.weight.detach().clone().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    grad = torch.randn(3, 5, 16)

    y = norm(x)
    y.backward(grad)
    y_ref = x_ref * torch.rsqrt(x_ref.pow(2).mean(-1, keepdim=True) + 1e-6) * weight
    y_ref.backward(grad)
    errors = {
        "y": (y - y_ref).abs().max().item(),
        "dx": (x.grad - x_ref.grad).abs().max().item(),
        "dw": (norm.weight.grad - weight.grad).abs().max().item(),
    }
    return {"max_abs_error": errors, "ok": all(e < 1e-5 for e in errors.values())}


def probe_leftovers() -> dict:
    """Files and folders named ``liger_kernel*`` in site-packages."""
    import sysconfig

    roots = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    return {"leftovers": sorted(str(p) for root in roots if root.is_dir() for p in root.glob(f"{PACKAGE}*"))}


PROBES = {
    "installed": probe_installed,
    "import": probe_import,
    "rms-norm": probe_rms_norm,
    "leftovers": probe_leftovers,
}


# ---------------------------------------------------------------- run from outside


class Venv:
    """A fresh virtual environment; commands run with a clean environment (no PYTHONPATH,
    no LIGER_KERNEL_* settings) from its own folder, so no checkout's sources leak in."""

    def __init__(self, root: Path, base_python: str) -> None:
        self.root = root
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("LIGER_KERNEL")
        }
        self.env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        self.run([base_python, "-m", "venv", str(root)])
        bindir = "Scripts" if os.name == "nt" else "bin"
        self.python = str(root / bindir / "python")
        self.bin = root / bindir

    def run(self, command: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command, cwd=self.root.parent, env=self.env, capture_output=True, text=True)
        if check and done.returncode:
            raise StepFailed(
                f"`{' '.join(command)}` exited {done.returncode}:\n{_tail(done.stdout)}\n{_tail(done.stderr)}"
            )
        return done

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        print(f"    $ pip {' '.join(args)}", flush=True)
        done = self.run([self.python, "-m", "pip", *args])
        # the resolver's notes on conflicts are worth seeing even when pip succeeds
        for line in (done.stdout + done.stderr).splitlines():
            if re.search(r"\bERROR\b|requires liger|incompatible", line):
                print(f"      pip: {line.strip()}")
        return done

    def probe(self, name: str) -> dict:
        done = self.run([self.python, str(Path(__file__).resolve()), "--probe", name], check=False)
        if done.returncode:
            return {"error": f"exited {done.returncode}: {_tail(done.stderr, 6).strip()}"}
        return json.loads(done.stdout)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Report:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def expect(self, condition: bool, message: str, detail: str = "") -> bool:
        print(("  ok    " if condition else "  FAIL  ") + message)
        if not condition:
            if detail:
                print(textwrap.indent(detail, "          "))
            self.problems.append(message)
        return condition


def built_wheels(outdir: Path) -> Path:
    sys.path.insert(0, str(TOOLS))
    import check_packaging  # the packaging lane's build: same wheels, same way

    print(f"building the wheels into {outdir}", flush=True)
    check_packaging.build(outdir)
    return outdir


def wheel_version(wheels: Path, distribution: str) -> str:
    stem = distribution.replace("-", "_")
    found = sorted(wheels.glob(f"{stem}-*.whl"))
    if not found:
        raise SystemExit(f"no {distribution} wheel in {wheels}")
    return found[-1].name.split("-")[1]


def check_files(venv: Venv, report: Report, when: str) -> dict:
    installed = venv.probe("installed")
    if "error" in installed:
        report.expect(False, f"{when}: the installed distributions can be listed", installed["error"])
        return {}
    names = ", ".join(f"{name} {info['version']}" for name, info in sorted(installed.items()))
    print(f"    installed: {names or 'no liger distribution'}")
    for name, info in sorted(installed.items()):
        missing = info["missing"]
        report.expect(
            not missing,
            f"{when}: every file of {name} {info['version']} is present ({len(missing)} missing)",
            "deleted: " + ", ".join(missing[:12]) + (" ..." if len(missing) > 12 else ""),
        )
    return installed


def check_pip_check(venv: Venv, report: Report, when: str) -> None:
    done = venv.run([venv.python, "-m", "pip", "check"], check=False)
    ours = [line for line in done.stdout.splitlines() if "liger" in line.lower()]
    report.expect(not ours, f"{when}: pip check reports nothing about the liger distributions", "\n".join(ours))


def upgrade_and_back(wheels: Path, old: str, work: Path, report: Report) -> None:
    new = wheel_version(wheels, "liger-kernel")
    print(f"a fresh venv in {work / 'venv'}", flush=True)
    venv = Venv(work / "venv", sys.executable)
    # liger-kernel 0.8.5 imports `packaging` without requiring it; every real environment has it
    venv.pip("install", "-q", TORCH, "packaging")

    print(f"a. install liger-kernel {old} from the package index", flush=True)
    venv.pip("install", "-q", f"liger-kernel=={old}", TORCH)
    imported = venv.probe("import")
    report.expect(imported.get("version") == old and imported.get("whole"), f"liger-kernel {old} imports ({imported})")

    print(f"b. upgrade to this repo's liger-kernel[cuda] {new}", flush=True)
    venv.pip("install", "-q", "-U", "--find-links", str(wheels), f"liger-kernel[cuda]=={new}", TORCH)

    print(f"c. check the {new} install", flush=True)
    check_files(venv, report, "after the upgrade")
    info = venv.run([str(venv.bin / "liger-kernel"), "info"], check=False)
    report.expect(
        info.returncode == 0 and f"liger-kernel {new}" in info.stdout,
        f"`liger-kernel info` runs and reports liger-kernel {new}",
        _tail(info.stdout + info.stderr, 12),
    )
    imported = venv.probe("import")
    report.expect(
        imported.get("version") == new and imported.get("whole") and imported.get("owner") == "liger-kernel",
        f"liger_kernel imports as liger-kernel {new}, owned by the liger-kernel distribution ({imported})",
    )
    rms = venv.probe("rms-norm")
    report.expect(bool(rms.get("ok")), f"LigerRMSNorm forward and backward on the CPU match PyTorch ({rms})")
    check_pip_check(venv, report, "after the upgrade")

    print(f"d. downgrade back to liger-kernel {old}", flush=True)
    venv.pip("install", "-q", f"liger-kernel=={old}", TORCH)
    leftover = [
        name
        for name, info in venv.probe("installed").items()
        if info.get("version") == new and name.lower().replace("_", "-") != "liger-kernel"
    ]
    if leftover:
        # pip warns that these still pin liger-kernel 0.9.0: 0.8.5 has no use for them
        print(f"    the {new} distributions that 0.8.5 does not use go: {', '.join(leftover)}")
        venv.pip("uninstall", "-y", *leftover)
    installed = check_files(venv, report, "after the downgrade")
    report.expect(
        [info["version"] for info in installed.values()] == [old],
        f"only liger-kernel {old} is left ({', '.join(installed) or 'none'})",
    )
    imported = venv.probe("import")
    report.expect(
        imported.get("version") == old and imported.get("whole"),
        f"liger_kernel.transformers imports as liger-kernel {old} ({imported})",
    )
    check_pip_check(venv, report, "after the downgrade")

    print("e. uninstall every liger distribution", flush=True)
    names = list(venv.probe("installed"))
    if names:
        venv.pip("uninstall", "-y", *names)
    left = venv.probe("leftovers").get("leftovers", ["(site-packages could not be listed)"])
    report.expect(not left, f"no {PACKAGE}* file or folder is left in site-packages", "\n".join(left))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1].rsplit("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--wheels", type=Path, help="folder with this repo's built wheels (default: build them here)")
    parser.add_argument(
        "--from-version", default="0.8.5", help="the liger-kernel release to upgrade from (default 0.8.5)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (venv and wheels) and print it")
    parser.add_argument("--probe", choices=sorted(PROBES), help=argparse.SUPPRESS)  # run inside the venv
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(PROBES[args.probe]()))
        return 0

    work = Path(tempfile.mkdtemp(prefix="liger-upgrade-"))
    report = Report()
    try:
        wheels = args.wheels.resolve() if args.wheels else built_wheels(work / "wheels")
        upgrade_and_back(wheels, args.from_version, work, report)
    except StepFailed as failed:
        report.expect(False, "a pip command succeeds", str(failed))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    verdict = "FAILED: " + "; ".join(report.problems) if report.problems else "upgrade and downgrade are clean"
    print(f"upgrade check: {verdict}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
