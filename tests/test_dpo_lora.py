"""DPO with LoRA: one model in memory, TRL's reference = the same model with its adapters off."""
from __future__ import annotations

import shutil
import uuid

import pytest

from standins import make_sft_standin
import torch

from med42_utils.params import ParamsError, load_params
from med42_utils.paths import run_dir

LORA = {"dpo.method": "lora", "dpo.max_samples_per_source": 4, "dpo.warmup_ratio": 0.0, "dpo.learning_rate": 5e-3}


def _pairs(n=4):
    from med42_utils.dpo.preference_data import load_preferences

    ds, _ = load_preferences(["snorkel:train_iteration_1"], "bundled", max_samples_per_source=n)
    return ds


def test_lora_loads_one_model_and_has_no_reference_copy(tiny_model_path, tmp_path, monkeypatch):
    from peft import PeftModel

    import med42_utils.dpo.train as dpo_train
    import med42_utils.models as models  # the training core loads through models.load_model

    loads = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a[1]) or real(*a, **k))
    params = load_params("tiny", LORA)
    trainer = dpo_train.build_trainer(params, tiny_model_path, _pairs(), tmp_path)
    assert loads == [tiny_model_path]  # no second (reference) model was loaded
    assert trainer.ref_model is None and isinstance(trainer.model, PeftModel)
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    lo = params.dpo.lora
    cfg = trainer.model.peft_config["default"]
    assert cfg.r == lo.r and cfg.lora_alpha == lo.alpha and set(cfg.target_modules) == set(lo.target_modules)
    # the full method still loads a frozen reference copy
    loads.clear()
    full = dpo_train.build_trainer(load_params("tiny", {"dpo.max_samples_per_source": 4}), tiny_model_path, _pairs(), tmp_path / "f")
    assert loads == [tiny_model_path, tiny_model_path] and full.ref_model is not None


def test_lora_reference_is_the_starting_model_after_training(tiny_model_path, tmp_path):
    """After training moved the adapters, the trainer's reference log-probs still equal the starting model's."""
    from med42_utils.dpo.train import build_trainer
    from med42_utils.models import load_model

    params = load_params("tiny", {**LORA, "dpo.gradient_checkpointing": True})  # as at size workshop
    trainer = build_trainer(params, tiny_model_path, _pairs(), tmp_path)
    trainer.train()
    assert trainer.state.global_step >= 1
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
    ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    full = build_trainer(load_params("tiny", {"dpo.max_samples_per_source": 4}), tiny_model_path, _pairs(), tmp_path / "f")
    init_chosen, init_rejected = full.compute_ref_log_probs(full.ref_model, batch)  # the starting model, as a copy
    init = load_model(params, tiny_model_path).eval()
    assert torch.allclose(ref_chosen, init_chosen, atol=1e-4) and torch.allclose(ref_rejected, init_rejected, atol=1e-4)
    # with the adapters on, the policy differs from that reference: training did move it
    ids = batch["input_ids"][:1]
    with torch.no_grad():
        assert not torch.allclose(trainer.model(input_ids=ids).logits, init(input_ids=ids).logits, atol=1e-5)


def test_lora_round_saves_a_merged_model_and_adapter(tiny_model_path):
    from med42_utils.dpo.rounds import run_rounds
    from med42_utils.manifest import read_manifest
    from med42_utils.models import load_model
    from med42_utils.stages import stage_model_dir

    params = load_params("tiny", LORA)
    run = f"pytest-dpo-lora-{uuid.uuid4().hex[:8]}"
    try:
        make_sft_standin(params, run, tiny_model_path)
        run_rounds(params, run, round="round1")
        rdir = stage_model_dir(params, run, "dpo_round1")
        m = read_manifest(rdir.parent)
        assert m["method"] == "lora" and m["reference_kind"] == "adapters off" and m["reference_wrapped"] is None
        assert (rdir.parent / "adapter" / "adapter_config.json").is_file()
        assert (rdir / "config.json").is_file() and not (rdir / "adapter_config.json").exists()  # plain, merged
        total = sum(p.numel() for p in load_model(params, str(rdir)).parameters())
        assert 0 < m["trainable_parameters"] < total / 2
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_lora_needs_one_process():
    with pytest.raises(ParamsError, match="dpo.method 'lora' runs on one process"):
        load_params("8b", {"dpo.method": "lora"})
    with pytest.raises(ParamsError, match="dpo.method"):
        load_params("tiny", {"dpo.method": "qlora"})


def test_the_first_batch_the_dpo_trainer_builds_scores_the_replies_only(tiny_model_path, tmp_path, monkeypatch):
    """The batch DPOTrainer's own collator hands to compute_loss: completion_mask is 0 on every token of the
    prompt (system, user, earlier turns, the assistant header) and 1 on the reply being compared."""
    from trl import DPOTrainer

    from llama3_turns import token_turns
    from med42_utils.dpo.train import build_trainer

    seen = []
    real = DPOTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        if not seen:
            seen.append({k: v.detach().clone() for k, v in inputs.items() if torch.is_tensor(v)})
        return real(self, model, inputs, *a, **k)

    monkeypatch.setattr(DPOTrainer, "compute_loss", spy)
    params = load_params("tiny", {"dpo.max_samples_per_source": 4})
    trainer = build_trainer(params, tiny_model_path, _pairs(), tmp_path, max_steps=1)
    trainer.train()
    batch, tok = seen[0], trainer.processing_class
    end = tok.convert_tokens_to_ids("<|end_header_id|>")
    assert len(batch["input_ids"]) >= 2  # chosen and rejected rows
    for ids, mask, att in zip(batch["input_ids"].tolist(), batch["completion_mask"].tolist(),
                              batch["attention_mask"].tolist()):
        ids, mask = [t for t, a in zip(ids, att) if a], [m for m, a in zip(mask, att) if a]
        turns = token_turns(ids, tok)
        reply = max(i for i, t in enumerate(ids) if t == end) + 1  # after the last (assistant) header
        assert "user" in turns[:reply] and turns[reply - 2] == "header"
        assert not any(mask[:reply]), [tok.decode([t]) for t, m in zip(ids[:reply], mask[:reply]) if m][:20]
        words = [i for i in range(reply, len(ids)) if tok.decode([ids[i]]).strip()]
        assert words and all(mask[i] == 1 for i in words), "the reply is not scored"
        assert all(turns[i] == "assistant" for i in words)
