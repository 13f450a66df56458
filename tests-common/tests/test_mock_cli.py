"""python -m liger_conformance.mock VENDOR COMMAND [ARGS...]."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from liger_conformance import mock


def test_runs_the_console_command_under_the_mock(capsys):
    assert mock.main(["cuda", "liger-kernel", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    backends = {entry["name"]: entry for entry in report["backends"]}
    assert backends["cuda"]["available"], backends["cuda"]
    assert not torch.cuda.is_available()


def test_unknown_command_is_a_clear_error(capsys):
    assert mock.main(["rocm", "liger-kernal", "info"]) == 2
    err = capsys.readouterr().err
    assert "no installed distribution provides the command 'liger-kernal'" in err
    assert "did you mean liger-kernel" in err


def test_module_entry_point_and_help():
    done = subprocess.run(
        [sys.executable, "-m", "liger_conformance.mock", "--help"], capture_output=True, text=True, check=True
    )
    assert "{cuda,rocm,npu,xpu} COMMAND" in done.stdout


def test_xpu_routes_every_op_to_liger_xpu(capsys):
    assert mock.main(["xpu", "liger-kernel", "info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    backends = {entry["name"]: entry for entry in report["backends"]}
    assert backends["xpu"]["available"], backends["xpu"]
    routes = {entry["op"]: entry for entry in report["routes"] if entry["device_type"] == "xpu"}
    assert routes and {entry["distribution"] for entry in routes.values()} == {"liger-xpu"}, routes
    assert not torch.xpu.is_available()
