"""A patched tiny Llama trained with DDP over 2 CPU processes (gloo) matches
the single-process run on the whole batch."""

from __future__ import annotations

import json
import socket

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
