"""Build every wheel of the monorepo and check what each install would bring.

From the built metadata alone (no index), it resolves the requirement closure
of ``liger-kernel`` with each extra over this repo's own wheels and checks the
vendor rules of the design:

- ``liger-kernel[ascend]`` brings torch-npu and triton-ascend, never ``triton``;
- ``liger-kernel[rocm]`` never brings ``triton`` (ROCm's torch ships its own);
- ``liger-kernel[xpu]`` never brings ``triton`` (PyTorch's XPU wheels ship Intel's);
- ``liger-kernel[cuda]`` brings ``triton``;
- plain ``liger-kernel`` / ``liger-core`` bring neither;
- the ``liger_kernel`` package ships in the ``liger-kernel`` wheel, as it did in
  0.8.x, and no file ships in two wheels: pip installs a distribution's new
  files before it uninstalls the old ones, so a path that changes owner on an
  upgrade (or a downgrade) is deleted by that uninstall
  (``tools/check_upgrade.py`` shows it on a real upgrade);
- ``liger-core`` is metadata only and pins ``liger-kernel`` of its version;
- no wheel but liger-cuda requires ``triton`` (or ``pytorch-triton*``), under
  any extra;
- each vendor wheel registers its backend entry point and pins liger-kernel of
  the same version, and each extra pins its vendor distribution likewise.

It also reports what the installed torch's own metadata requires: torch's own
Linux wheels require NVIDIA's ``triton``, so ``[rocm]`` or ``[ascend]``
installed next to such a torch brings ``triton`` whatever our wheels say
(the README's Install table has the order that avoids it). That is a fact of
the environment, not of our packaging, so it is reported, not failed.

Usage: python tools/check_packaging.py [--outdir DIR]
"""

from __future__ import annotations

import argparse
import configparser
import subprocess
import sys
import tempfile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the workspace's environments run 3.11
    import tomli as tomllib
import zipfile
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    ROOT / "packages" / name
    for name in ("liger-kernel", "liger-core", "liger-cuda", "liger-rocm", "liger-ascend", "liger-xpu")
] + [ROOT / "tests-common"]
#: the distribution that owns the ``liger_kernel`` package (as liger-kernel 0.8.x did)
CORE = "liger-kernel"
#: the import package whose files must never change owner between releases
CORE_PACKAGE = "liger_kernel"
#: a metadata-only alias of CORE, under the name the design uses
ALIAS = "liger-core"
#: the one distribution of ours that may require NVIDIA's triton
TRITON_VENDOR = "liger-cuda"
BACKEND_ENTRY_POINTS = {
    "liger-kernel": "torch",
    "liger-cuda": "cuda",
    "liger-rocm": "rocm",
    "liger-ascend": "ascend",
    "liger-xpu": "xpu",
}


class Wheel:
    def __init__(self, path: Path) -> None:
        self.path = path
        with zipfile.ZipFile(path) as zf:
            info = next(n.split("/")[0] for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
            self.files = zf.namelist()
            eps = configparser.ConfigParser()
            if f"{info}/entry_points.txt" in self.files:
                eps.read_string(zf.read(f"{info}/entry_points.txt").decode())
        self.name = canonicalize_name(meta["Name"])
        self.version = meta["Version"]
        self.requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
        self.entry_points = {s: dict(eps[s]) for s in eps.sections()}

    def deps(self, extras: set[str]) -> list[Requirement]:
        chosen = []
        for req in self.requires:
            if req.marker is None:
                chosen.append(req)
            # "" evaluates environment-only markers (platform_machine, ...) on this host
            elif any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                chosen.append(req)
        return chosen


def is_triton(name: str) -> bool:
    """``triton`` itself or a build of it published under another name (``pytorch-triton-rocm``)."""
    name = canonicalize_name(name)
    return name == "triton" or name.startswith("pytorch-triton")


def triton_requirements(requires: list[str]) -> list[Requirement]:
    """The requirements among ``requires`` (Requires-Dist lines) that bring a ``triton``."""
    return [req for req in map(Requirement, requires) if is_triton(req.name)]


def triton_requirers(wheels: dict[str, Wheel]) -> dict[str, list[str]]:
    """For each wheel but liger-cuda's, the requirements (any extra) that bring a triton."""
    return {
        name: [str(req) for req in wheel.requires if is_triton(req.name)]
        for name, wheel in wheels.items()
        if name != TRITON_VENDOR
    }


LINUX_X86_64 = {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": "x86_64", "extra": ""}


def torch_triton_report() -> tuple[str, list[str]]:
    """What the installed torch's metadata says about triton: (torch version, one line per requirement)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "(not installed)", []
    lines = []
    for req in triton_requirements(metadata.requires("torch") or []):
        here = req.marker is None or req.marker.evaluate({"extra": ""})
        linux = req.marker is None or req.marker.evaluate(LINUX_X86_64)
        where = "here" if here else "on Linux x86_64" if linux else "on other platforms only"
        lines.append(f"{req} (applies {where})")
    return version, lines


def declared_files(project: Path) -> tuple[str, list[str]]:
    """(distribution name, the ``__init__.py`` of each import package its wheel ships),
    read from ``project``'s pyproject.toml without building it."""
    config = tomllib.loads((project / "pyproject.toml").read_text())
    wheel = config.get("tool", {}).get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
    packages = [] if wheel.get("bypass-selection") else wheel.get("packages", [])
    return canonicalize_name(config["project"]["name"]), [f"{Path(p).name}/__init__.py" for p in packages]


def layout_problems(shipped: dict[str, list[str]]) -> list[str]:
    """What breaks an upgrade from (or a downgrade to) liger-kernel 0.8.x in ``shipped``
    (distribution -> the paths its wheel installs; dist-info folders left out)."""
    problems = []
    init = f"{CORE_PACKAGE}/__init__.py"
    owners = sorted(name for name, files in shipped.items() if init in files)
    if owners != [CORE]:
        problems.append(
            f"{init} is shipped by {', '.join(owners) or 'no distribution'}, not by {CORE} alone: "
            f"liger-kernel 0.8.x owns it, so an upgrade would delete it"
        )
    by_path: dict[str, list[str]] = {}
    for name, files in shipped.items():
        for path in files:
            if ".dist-info/" not in path:
                by_path.setdefault(path, []).append(name)
    for path, names in sorted(by_path.items()):
        if len(names) > 1:
            problems.append(f"{path} is shipped by {' and '.join(sorted(names))}")
    return problems


def build(outdir: Path) -> dict[str, Wheel]:
    for package in PACKAGES:
        done = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(package)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SystemExit(f"building {package.name} failed:\n{done.stdout}\n{done.stderr}")
    wheels = {w.name: w for w in map(Wheel, sorted(outdir.glob("*.whl")))}
    missing = {canonicalize_name(p.name if p.name != "tests-common" else "liger-conformance") for p in PACKAGES}
    missing -= set(wheels)
    if missing:
        raise SystemExit(f"no wheel built for {sorted(missing)}")
    return wheels


def closure(wheels: dict[str, Wheel], root: str, extras: set[str]) -> dict[str, str]:
    """Every distribution name the install would request -> the specifier asked."""
    seen: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        # liger-kernel[cuda] -> liger-cuda -> liger-kernel is a cycle pip resolves as one set
        if (name, frozenset(wanted)) in visited:
            continue
        visited.add((name, frozenset(wanted)))
        for req in wheels[name].deps(wanted):
            dep = canonicalize_name(req.name)
            seen[dep] = str(req.specifier)
            if dep in wheels:
                todo.append((dep, set(req.extras)))
    return seen


def check(wheels: dict[str, Wheel]) -> list[str]:
    problems: list[str] = []
    version = wheels[CORE].version

    def expect(condition: bool, message: str) -> None:
        print(("  ok    " if condition else "  FAIL  ") + message)
        if not condition:
            problems.append(message)

    for dist, backend in BACKEND_ENTRY_POINTS.items():
        eps = wheels[dist].entry_points.get("liger_kernel.backends", {})
        expect(backend in eps, f"{dist} registers backend entry point {backend!r} ({eps})")
        if dist != CORE:
            pins = {canonicalize_name(r.name): str(r.specifier) for r in wheels[dist].requires}
            expect(pins.get(CORE) == f"=={version}", f"{dist} pins {CORE}=={version} ({pins})")
    expect(
        "liger_conformance" in wheels["liger-conformance"].entry_points.get("pytest11", {}),
        "liger-conformance registers its pytest11 plugin",
    )
    expect(
        "liger-kernel" in wheels[CORE].entry_points.get("console_scripts", {}),
        f"{CORE} provides the liger-kernel command",
    )
    expect(not any(f.endswith(".py") for f in wheels[ALIAS].files), f"{ALIAS} is metadata only")
    alias_pins = {canonicalize_name(r.name): str(r.specifier) for r in wheels[ALIAS].deps(set())}
    expect(alias_pins.get(CORE) == f"=={version}", f"{ALIAS} pins {CORE}=={version} ({alias_pins})")
    layout = layout_problems({name: wheel.files for name, wheel in wheels.items()})
    expect(not layout, f"{CORE} alone ships {CORE_PACKAGE}/, no file ships in two wheels ({'; '.join(layout) or 'ok'})")

    cases = {
        "liger-core": closure(wheels, ALIAS, set()),
        "liger-kernel": closure(wheels, "liger-kernel", set()),
        "liger-kernel[cuda]": closure(wheels, "liger-kernel", {"cuda"}),
        "liger-kernel[rocm]": closure(wheels, "liger-kernel", {"rocm"}),
        "liger-kernel[ascend]": closure(wheels, "liger-kernel", {"ascend"}),
        "liger-kernel[xpu]": closure(wheels, "liger-kernel", {"xpu"}),
    }
    for case, deps in cases.items():
        print(f"{case} brings: {', '.join(f'{n}{s}' for n, s in sorted(deps.items()))}")
    expect("triton" not in cases["liger-kernel"], "liger-kernel alone does not bring triton")
    expect("triton" not in cases["liger-core"], "liger-core alone does not bring triton")
    expect("triton" in cases["liger-kernel[cuda]"], "liger-kernel[cuda] brings triton")
    expect("triton" not in cases["liger-kernel[rocm]"], "liger-kernel[rocm] never brings triton")
    expect("triton" not in cases["liger-kernel[ascend]"], "liger-kernel[ascend] never brings triton")
    for name, brings in sorted(triton_requirers(wheels).items()):
        expect(not brings, f"{name} requires no triton under any extra ({brings or 'none'})")
    expect("triton" not in cases["liger-kernel[xpu]"], "liger-kernel[xpu] never brings triton")
    for needed in ("triton-ascend", "torch-npu"):
        expect(needed in cases["liger-kernel[ascend]"], f"liger-kernel[ascend] brings {needed}")
    for extra in ("cuda", "rocm", "ascend", "xpu"):
        pin = cases[f"liger-kernel[{extra}]"].get(f"liger-{extra}")
        expect(pin == f"=={version}", f"liger-kernel[{extra}] pins liger-{extra}=={version} (got {pin})")
    torch_version, torch_triton = torch_triton_report()
    if torch_triton:
        print(f"  note  the installed torch {torch_version} requires {'; '.join(torch_triton)}: installing")
        print("        liger-kernel[rocm] or [ascend] next to it brings that triton beside the vendor's Triton;")
        print("        install the vendor's torch build first (README, Install)")
    else:
        print(f"  note  the installed torch {torch_version} requires no triton (its metadata names none)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outdir", type=Path, help="where to build the wheels (default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outdir = args.outdir or Path(tmp)
        outdir.mkdir(parents=True, exist_ok=True)
        print(f"building {len(PACKAGES)} wheels into {outdir}")
        problems = check(build(outdir))
    print(f"packaging check: {'FAILED: ' + '; '.join(problems) if problems else 'all rules hold'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
