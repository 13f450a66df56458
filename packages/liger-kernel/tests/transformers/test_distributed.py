"""A patched tiny Llama trained with DDP over 2 CPU processes (gloo) matches
the single-process run on the whole batch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import ddp_worker
import pytest
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    out = tmp_path / "losses.json"
    mp.spawn(ddp_worker.ddp_main, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    distributed = json.loads(out.read_text())

    single = ddp_worker.train()
    assert len(distributed) == len(single) == ddp_worker.STEPS
    assert distributed == pytest.approx(single, rel=1e-5)


@pytest.mark.slow
def test_fsdp2_tool_two_processes_match_one(tmp_path):
    """tools/fsdp2.py on the CPU (gloo): the patched model sharded over 2
    processes follows the 1-process run of the same global batch."""
    repo = Path(__file__).resolve().parents[4]
    command = [sys.executable, str(repo / "tools" / "fsdp2.py"), "--device", "cpu", "--impls", "liger"]
    command += ["--world-sizes", "1,2", "--steps", "3", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "fsdp2.json").read_text())
    assert report["failures"] == []
    one, two = report["records"]
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["liger_modules"] > 0 and two["liger_modules"] > 0
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
