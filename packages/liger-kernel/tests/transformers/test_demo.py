"""``liger-kernel demo``: its pieces in-process, and once end to end (slow)."""

from __future__ import annotations

import json

import pytest
import torch
import transformers.models.llama.modeling_llama as llama

from liger_kernel.cli import demo
from liger_kernel.transformers import LigerRMSNorm

SMALL = dict(steps=3, batch_size=2, seq_len=16, vocab_size=64, hidden_size=32, layers=1, heads=2,
             intermediate_size=64, dtype="float32", lr=1e-2, log_every=1)  # fmt: skip


@pytest.fixture(autouse=True)
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_corpus_is_deterministic_and_in_vocabulary():
    a, b = demo.Corpus(64, seed=0), demo.Corpus(64, seed=0)
    assert torch.equal(a.batch(3, 2, 16), b.batch(3, 2, 16))
    assert not torch.equal(a.batch(3, 2, 16), a.batch(4, 2, 16))
    tokens = a.batch(0, 4, 32)
    assert tokens.min() >= 0 and tokens.max() < 64
    # every next token is one of the current token's successors
    assert all(tokens[r, t + 1].item() in a.successors[tokens[r, t]].tolist() for r in range(4) for t in range(31))


def test_stock_and_patched_runs_agree():
    setup = demo.Setup(device="cpu", **SMALL)
    stock = demo.train("stock", setup)
    assert llama.LlamaRMSNorm is not LigerRMSNorm  # the stock run really was stock
    liger = demo.train("liger", setup)
    assert liger["losses"] == pytest.approx(stock["losses"], rel=1e-5)
    assert len(stock["losses"]) == 3 and stock["tokens_per_s"] > 0


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    assert demo.main(["--steps", "3", "--batch-size", "2", "--seq-len", "16", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "fused_linear_cross_entropy" in printed and "Training loss" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["liger"]["losses"] == pytest.approx(results["stock"]["losses"], rel=1e-4)
    assert (out / "demo.png").stat().st_size > 0
