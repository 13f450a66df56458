"""Distributions that own the same top-level module (liger_kernel.distributions),
and ``liger-kernel info`` reporting them for ``triton``.

The distributions are fake ``.dist-info`` folders in a temporary site directory
on sys.path: ``importlib.metadata`` reads their RECORD as it would a wheel's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liger_kernel import distributions
from liger_kernel.cli import env_report


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``site(name, files=[...], requires=[...])`` installs a fake distribution."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(name: str, files: list[str] = (), requires: list[str] = ()) -> None:
        info = tmp_path / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"] + [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text("\n".join(lines) + "\n")
        record = [f"{f},sha256=x,1" for f in files] + [f"{info.name}/METADATA,,", f"{info.name}/RECORD,,"]
        (info / "RECORD").write_text("\n".join(record) + "\n")

    return install


def test_module_owners_reads_every_distributions_record(site):
    site("fake-vendor-a", files=["liger_fake_shared/__init__.py", "liger_fake_shared/language.py"])
    site("fake-vendor-b", files=["liger_fake_shared/__init__.py"])
    site("fake-unrelated", files=["liger_fake_shared_not/__init__.py", "other/liger_fake_shared/__init__.py"])
    site("fake-framework", requires=["fake_vendor_a>=1; platform_system == 'Linux'", "fake-vendor-b; extra == 'x'"])
    owners = distributions.module_owners("liger_fake_shared")
    assert [(o.distribution, o.required_by) for o in owners] == [
        ("fake-vendor-a", ("fake-framework 1.0",)),  # the extra's requirement of b is not counted
        ("fake-vendor-b", ()),
    ]
    problem = distributions.shared_module_problem("liger_fake_shared", owners)
    assert (
        "installed by 2 distributions: fake-vendor-a 1.0 (required by fake-framework 1.0); fake-vendor-b 1.0" in problem
    )
    assert "pip uninstall -y fake-vendor-a fake-vendor-b" in problem


def test_one_owner_is_no_problem(site):
    site("fake-vendor-a", files=["liger_fake_single.py"])
    assert [o.distribution for o in distributions.module_owners("liger_fake_single")] == ["fake-vendor-a"]
    assert distributions.shared_module_problem("liger_fake_single") is None


def test_info_reports_two_owners_of_triton_with_the_repair_and_exits_non_zero(site, capsys):
    site("fake-triton-vendor-a", files=["triton/__init__.py"])
    site("fake-triton-vendor-b", files=["triton/__init__.py"], requires=[])
    assert env_report.main(["--json"]) == 1
    [conflict] = json.loads(capsys.readouterr().out)["install_conflicts"]
    assert conflict["module"] == "triton"
    assert {"fake-triton-vendor-a", "fake-triton-vendor-b"} <= {o["distribution"] for o in conflict["owners"]}
    assert env_report.main([]) == 1
    text = capsys.readouterr().out
    assert "INSTALL CONFLICT: the 'triton' module is installed by" in text
    assert "pip uninstall -y" in text and "install your vendor's torch build first" in text
