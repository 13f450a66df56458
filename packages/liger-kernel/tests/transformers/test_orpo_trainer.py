"""LigerORPOTrainer: TRL's ORPO trainer with the chunked Liger ORPO loss gives
TRL's own loss and metrics on the same batch and weights."""

from __future__ import annotations

import importlib
import sys

import pytest
from tiny_models import build, word_tokenizer

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")
orpo = pytest.importorskip("trl.experimental.orpo")

from liger_kernel.transformers.trainer import LigerORPOTrainer  # noqa: E402


def _trainer(cls, tmp_path):
    args = orpo.ORPOConfig(
        output_dir=str(tmp_path / cls.__name__),
        per_device_train_batch_size=2,
        max_length=32,
        beta=0.25,
        report_to=[],
        use_cpu=True,
        bf16=False,
        seed=0,
        disable_tqdm=True,
    )
    data = datasets.Dataset.from_dict(
        {
            "prompt": ["the cat", "a dog"],
            "chosen": [" sat on the mat", " ran fast"],
            "rejected": [" is red", " is slow on a red mat"],
        }
    )
    return cls(model=build("llama", device="cpu"), args=args, train_dataset=data, processing_class=word_tokenizer())


def test_first_step_loss_and_metrics_match_trl(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    stock, liger = _trainer(orpo.ORPOTrainer, tmp_path), _trainer(LigerORPOTrainer, tmp_path)
    liger.model.load_state_dict(stock.model.state_dict())
    batch = next(iter(stock.get_train_dataloader()))

    stock_loss, stock_metrics = stock.get_batch_loss_metrics(stock.model, batch)
    liger_loss, liger_metrics = liger.get_batch_loss_metrics(liger.model, batch)

    assert liger_loss.item() == pytest.approx(stock_loss.item(), rel=1e-5)
    for name in ("nll_loss", "log_odds_ratio", "log_odds_chosen", "rewards/chosen", "rewards/rejected", "logps/chosen"):
        assert liger_metrics[name] == pytest.approx(stock_metrics[name], rel=1e-4, abs=1e-6), name
    stock_loss.backward()
    liger_loss.backward()
    stock_grad = stock.model.model.embed_tokens.weight.grad
    liger_grad = liger.model.model.embed_tokens.weight.grad
    assert liger_grad is not None
    assert (liger_grad - stock_grad).abs().max().item() <= 1e-5 * stock_grad.abs().max().item() + 1e-7


def test_without_trl_the_package_imports_and_the_trainer_asks_for_it(monkeypatch):
    for name in [n for n in sys.modules if n == "trl" or n.startswith(("trl.", "liger_kernel.transformers.trainer"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl now raises ImportError
    trainer = importlib.import_module("liger_kernel.transformers.trainer")
    with pytest.raises(ImportError, match="pip install trl"):
        trainer.LigerORPOTrainer  # noqa: B018
