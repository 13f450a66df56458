"""Bringing up a new backend, end to end, as docs/new-backend.md describes.

``liger-kernel new-backend demo --device-type cpu`` writes the distribution
into a temporary folder; it is installed with ``pip --target`` into a
temporary site that only the subprocesses see (PYTHONPATH), so nothing leaks
into this environment. The core must discover it (``liger-kernel info``), the
conformance suite must run against it, and once the guide's SiLUMulFunction
is added to its op table, routing and conformance must pick that op up.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from liger_kernel.cli import scaffold

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs" / "new-backend.md"
LANES = REPO / "ci" / "lanes.toml"
NAME = "demo"
FALLBACK = "backend 'demo' has no '{op}' implementation"


def ci_lanes() -> Any:
    """ci/lanes.py, the lane file's own reader (standard library only)."""
    spec = importlib.util.spec_from_file_location("ci_lanes_for_scaffold_test", REPO / "ci" / "lanes.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def guide_block(first_line: str) -> str:
    """The guide's python code block that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    found = [block for block in blocks if block.startswith(first_line)]
    assert len(found) == 1, f"docs/new-backend.md has {len(found)} python blocks starting with {first_line!r}"
    return found[0]


def python(*args: str, site: Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LIGER_KERNEL_BACKEND", "LIGER_KERNEL_IMPL", "LIGER_KERNEL_STRICT"))
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def install(package: Path, site: Path) -> None:
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--target", str(site), str(package)], check=True, capture_output=True, timeout=120)


def routes(site: Path, cwd: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(this backend's entry, cpu routes by op) from ``liger-kernel info --json``."""
    report = json.loads(python("-m", "liger_kernel.cli", "info", "--json", site=site, cwd=cwd).stdout)
    backend = next(entry for entry in report["backends"] if entry["name"] == NAME)
    return backend, {r["op"]: r for r in report["routes"] if r["device_type"] == "cpu"}


def conformance(site: Path, cwd: Path, selection: str) -> tuple[dict[str, int], str]:
    result = python(
        "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--pyargs", "liger_conformance",
        "--liger-backend", NAME, "-k", selection, site=site, cwd=cwd,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1]
    counts = {word: int(count) for count, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed)", summary)}
    return counts, result.stdout


def test_a_new_backend_is_discovered_tested_and_picks_up_its_first_op(tmp_path):
    lanes_copy = tmp_path / "lanes.toml"
    lanes_copy.write_text(LANES.read_text())
    python(
        "-m", "liger_kernel.cli", "new-backend", NAME, "--device-type", "cpu", "--dest", str(tmp_path),
        "--lanes-file", str(lanes_copy), site=tmp_path / "none", cwd=tmp_path,
    )  # fmt: skip
    package = tmp_path / "liger-demo"
    lane = ci_lanes().load(lanes_copy).lane("backend-demo")
    assert lane.is_cpu and lane.paths == ("packages/liger-demo/**",)
    assert any("--liger-backend demo" in command for command in lane.run)

    # As generated: discovered and available, but every op falls back to torch.
    site = tmp_path / "site"
    install(package, site)
    backend, cpu = routes(site, tmp_path)
    assert (backend["distribution"], backend["available"], backend["ops"]) == ("liger-demo", True, [])
    assert backend["device_types"] == ["cpu"] and backend["priority"] == 100
    for op, route in cpu.items():
        assert route["backend"] == "torch" and route["fallback_reason"] == FALLBACK.format(op=op)
    counts, output = conformance(site, tmp_path, "swiglu or rms_norm")
    assert counts.get("skipped", 0) > 0 and set(counts) == {"skipped"}, output
    assert FALLBACK.format(op="swiglu") in output and FALLBACK.format(op="rms_norm") in output

    # The guide's worked example: one op module and its entry in the op table.
    source = package / "src" / "liger_kernel_demo"
    (source / "ops" / "swiglu.py").write_text(guide_block('"""SwiGLU gate'))
    table_line = guide_block("FUNCTIONS: dict[str, str] = {")
    init = (source / "__init__.py").read_text()
    assert init.count("FUNCTIONS: dict[str, str] = {}\n") == 1
    (source / "__init__.py").write_text(
        init.replace("FUNCTIONS: dict[str, str] = {}\n", table_line.replace("liger_kernel_acme", "liger_kernel_demo"))
    )
    site = tmp_path / "site-with-swiglu"
    install(package, site)
    backend, cpu = routes(site, tmp_path)
    assert backend["ops"] == ["swiglu"]
    assert (cpu["swiglu"]["backend"], cpu["swiglu"]["implementation"]) == (
        NAME,
        "liger_kernel_demo.ops.swiglu:SiLUMulFunction",
    )
    assert cpu["rms_norm"]["backend"] == "torch"
    counts, output = conformance(site, tmp_path, "swiglu or rms_norm")
    assert counts.get("passed", 0) > 0 and set(counts) == {"passed", "skipped"}, output
    assert FALLBACK.format(op="swiglu") not in output and FALLBACK.format(op="rms_norm") in output

    # The generated tests pass, and now also check the op's signature.
    result = python("-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests"), site=site, cwd=tmp_path)
    assert re.search(r"\b8 passed\b", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("name", "device_type", "message"),
    [
        ("torch", "cpu", "taken by liger-kernel itself"),
        ("rocm", "cuda", "taken by liger-kernel itself"),
        ("My-Npu", "xpu", "lowercase letters and digits"),
        ("class", "xpu", "lowercase letters and digits"),
        ("acme", "cdua", "does not know the device type 'cdua'"),
        ("acme", "meta", "must be a torch device type"),
    ],
)
def test_bad_names_and_device_types_are_refused(tmp_path, capsys, name, device_type, message):
    assert scaffold.main([name, "--device-type", device_type, "--dest", str(tmp_path), "--no-lane"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_an_installed_backend_name_is_refused(tmp_path, capsys, installed_backends):
    installed_backends(fast="liger_fake_backends:FAST")
    assert scaffold.main(["fast", "--device-type", "cpu", "--dest", str(tmp_path), "--no-lane"]) == 2
    assert "already installed" in capsys.readouterr().err


def test_an_existing_package_is_never_overwritten(tmp_path, capsys):
    assert scaffold.main(["acme", "--device-type", "xpu", "--dest", str(tmp_path), "--no-lane"]) == 0
    probe = tmp_path / "liger-acme" / "src" / "liger_kernel_acme" / "probe.py"
    probe.write_text("# edited by the vendor\n")
    assert scaffold.main(["acme", "--device-type", "xpu", "--dest", str(tmp_path), "--no-lane"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert probe.read_text() == "# edited by the vendor\n"


def test_the_lane_goes_to_the_checkout_around_dest_only(tmp_path, monkeypatch, capsys):
    checkout = tmp_path / "checkout"
    (checkout / "ci").mkdir(parents=True)
    (checkout / "packages" / "liger-kernel").mkdir(parents=True)
    (checkout / "ci" / "lanes.toml").write_text(LANES.read_text())
    monkeypatch.chdir(checkout)
    assert scaffold.main(["acme", "--device-type", "xpu", "--priority", "50"]) == 0
    assert (checkout / "packages" / "liger-acme" / "pyproject.toml").is_file()
    lane = ci_lanes().load(checkout / "ci" / "lanes.toml").lane("backend-acme")
    assert lane.run[-1] == "pytest -q --pyargs liger_conformance --liger-backend acme"
    # a second backend's lane is appended after it; the same lane twice is refused
    assert scaffold.main(["acme2", "--device-type", "xpu", "--triton"]) == 0
    triton_init = (checkout / "packages" / "liger-acme2" / "src" / "liger_kernel_acme2" / "__init__.py").read_text()
    assert 'portable=True,\n    profile="liger_kernel_acme2.profile:device_profile",' in triton_init
    lanes_file = str(checkout / "ci" / "lanes.toml")
    elsewhere = tmp_path / "elsewhere"
    assert scaffold.main(["acme", "--device-type", "xpu", "--dest", str(elsewhere), "--lanes-file", lanes_file]) == 2
    assert "already has a lane named 'backend-acme'" in capsys.readouterr().err
    assert not elsewhere.exists()  # refused before anything was written
    # outside the checkout, no lane file is touched
    before = (checkout / "ci" / "lanes.toml").read_text()
    outside = tmp_path / "outside"
    outside.mkdir()
    assert scaffold.main(["acme3", "--device-type", "xpu", "--dest", str(outside)]) == 0
    assert "No CI lane added" in capsys.readouterr().out
    assert (checkout / "ci" / "lanes.toml").read_text() == before
    plain_init = (checkout / "packages" / "liger-acme" / "src" / "liger_kernel_acme" / "__init__.py").read_text()
    assert "priority=50," in plain_init and "profile=None," in plain_init
