"""python -m liger_conformance.run_mocked VENDOR COMMAND [ARGS...]."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from liger_conformance import run_mocked


def test_runs_the_console_command_under_the_mock(capsys):
    assert run_mocked.main(["cuda", "liger-kernel", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    backends = {entry["name"]: entry for entry in report["backends"]}
    assert backends["cuda"]["available"], backends["cuda"]
    assert not torch.cuda.is_available()


def test_unknown_command_is_a_clear_error(capsys):
    assert run_mocked.main(["rocm", "liger-kernal", "info"]) == 2
    err = capsys.readouterr().err
    assert "no installed distribution provides the command 'liger-kernal'" in err
    assert "did you mean liger-kernel" in err


@pytest.mark.parametrize("module", ["liger_conformance.run_mocked", "liger_conformance.mock"])
def test_module_entry_point_and_help(module):
    # liger_conformance.mock is the former name, still runnable
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, check=True)
    assert "{cuda,rocm,npu,xpu} COMMAND" in done.stdout


def test_xpu_routes_every_op_to_liger_xpu(capsys):
    assert run_mocked.main(["xpu", "liger-kernel", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    backends = {entry["name"]: entry for entry in report["backends"]}
    assert backends["xpu"]["available"], backends["xpu"]
    routes = {entry["op"]: entry for entry in report["routes"] if entry["device_type"] == "xpu"}
    assert routes and {entry["distribution"] for entry in routes.values()} == {"liger-xpu"}, routes
    assert not torch.xpu.is_available()
