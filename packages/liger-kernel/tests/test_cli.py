"""The ``liger-kernel`` command: a device that is not there, --version, --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import liger_kernel
from liger_kernel import cli
from liger_kernel.cli import selftest

needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@needs_no_cuda
def test_selftest_on_a_missing_device_type_is_one_line_saying_what_is_available():
    done = subprocess.run(
        [sys.executable, "-m", "liger_kernel.cli", "selftest", "--device", "cuda"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "liger-kernel selftest: error: device 'cuda' is not available here (Torch not compiled with CUDA enabled); "
        "available device types: cpu"
    ]


def test_selftest_on_an_unknown_device_type_runs_no_op(capsys):
    assert selftest.main(["--device", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "liger-kernel selftest: error: 'nope' is not a torch device type; available device types: cpu\n"


@needs_no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_demo_on_a_missing_device_is_one_line(capsys, device):
    pytest.importorskip("transformers")
    from liger_kernel.cli import demo

    assert demo.main(["--device", device, "--out", "unused"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"liger-kernel demo: error: device {device!r} is not available here")
    assert err.rstrip().endswith("available device types: cpu")


def test_version_names_core_and_every_backend_distribution(installed_backends, capsys):
    installed_backends(fast="liger_fake_backends:FAST", broken="liger_fake_backends.broken:BACKEND")
    assert cli.main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"liger-kernel {liger_kernel.__version__}"
    backends = {line.split()[1]: line.split()[2:] for line in lines[1:]}
    assert backends["torch"][:2] == ["liger-kernel", liger_kernel.__version__]
    assert backends["fast"] == ["liger-fake-backends", "0.1.0"]
    assert backends["broken"][:3] == ["liger-fake-backends", "0.1.0", "BROKEN"]


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_subcommand_has_its_own_help(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: liger-kernel {command}")
    assert "--help" in out


def test_top_level_help_lists_the_commands_and_version(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--version" in out and all(command in out for command in cli.COMMANDS)


@needs_no_cuda
def test_under_a_kernel_mock_the_error_says_which_device_to_use(monkeypatch, capsys):
    from liger_kernel.dispatch import dispatcher

    monkeypatch.setitem(dispatcher.device_alias, "cpu", "cuda")
    assert selftest.main(["--device", "cuda"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("(cpu tensors route as 'cuda' here: use --device cpu)")
