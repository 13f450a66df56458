"""TRL's trainers drive the chunked losses end to end (tiny random model, word-level tokenizer, no downloads).

Needs ``trl`` (a release whose trainers still import ``liger_kernel.chunked_loss``,
e.g. ``trl>=1.0,<1.10``) and ``datasets``; skipped otherwise.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

trl = pytest.importorskip("trl", reason="trl is not installed (pip install 'trl>=1.0,<1.10')")
datasets = pytest.importorskip("datasets", reason="datasets (a trl dependency) is not installed")
transformers = pytest.importorskip("transformers")
dpo_trainer_module = pytest.importorskip("trl.trainer.dpo_trainer")

from liger_kernel.chunked_loss import LigerFusedLinearDPOLoss  # noqa: E402

if getattr(dpo_trainer_module, "LigerFusedLinearDPOLoss", None) is not LigerFusedLinearDPOLoss:
    pytest.skip(
        f"trl {trl.__version__} does not use liger_kernel.chunked_loss in its DPO trainer", allow_module_level=True
    )

WORDS = "the cat dog sat ran on mat fast slow red blue is a".split()


def word_tokenizer() -> transformers.PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_llama(vocab_size: int) -> transformers.LlamaForCausalLM:
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def test_dpo_trainer_trains_through_the_chunked_dpo_loss(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tokenizer = word_tokenizer()
    model = tiny_llama(len(tokenizer))
    data = datasets.Dataset.from_dict(
        {
            "prompt": ["the cat", "a dog", "the mat", "red cat"],
            "chosen": [" sat on the mat", " ran fast", " is red", " is slow"],
            "rejected": [" ran", " sat slow on a mat", " blue", " dog"],
        }
    )
    args = trl.DPOConfig(
        output_dir=str(tmp_path), use_liger_kernel=True, max_steps=3, per_device_train_batch_size=2,
        learning_rate=1e-2, report_to=[], use_cpu=True, logging_steps=1, save_strategy="no", max_length=32,
    )  # fmt: skip
    trainer = trl.DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=data, processing_class=tokenizer
    )
    assert isinstance(trainer.liger_loss, LigerFusedLinearDPOLoss)
    calls = []
    trainer.liger_loss.register_forward_hook(lambda module, inputs, output: calls.append(output[0].detach()))
    head_before = model.lm_head.weight.detach().clone()

    trainer.train()

    assert len(calls) == 3
    # policy == reference at the first step, so every pair's sigmoid DPO loss is log 2
    assert calls[0].item() == pytest.approx(math.log(2), abs=1e-5)
    assert all(torch.isfinite(loss) for loss in calls)
    logged = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert logged[0] == pytest.approx(math.log(2), abs=1e-4)
    assert not torch.equal(model.lm_head.weight.detach(), head_before), "the LM head got no update"
