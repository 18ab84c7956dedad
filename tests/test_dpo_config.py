"""Table 3 (paper section 2.2) -> TRL DPOConfig, exactly, for 8b and 70b."""
from __future__ import annotations

import pytest

from med42_utils.dpo.train import CONFIG_FIELDS, build_dpo_config
from med42_utils.params import load_params

# Table 3: DPO-beta, max LR, weight decay, batch size, max length, epochs; RMSprop; linear warmup then cosine.
TABLE3 = {"8b": (0.1, 1e-6, 0.0, 256, 4096, 1), "70b": (0.01, 1e-6, 0.0, 128, 4096, 1)}


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_table3_maps_to_dpo_config(size, tmp_path):
    beta, lr, wd, batch, max_len, epochs = TABLE3[size]
    p = load_params(size)
    import torch

    # bf16 needs a GPU in TrainingArguments; on a CPU box only the device flag changes, nothing of Table 3
    cfg = build_dpo_config(p, tmp_path, **({} if torch.cuda.is_available() else {"use_cpu": True}))
    assert cfg.beta == beta
    assert cfg.learning_rate == lr
    assert cfg.weight_decay == wd
    assert str(getattr(cfg.optim, "value", cfg.optim)) == "rmsprop"
    assert str(getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type)) == "cosine"
    assert 0 < cfg.warmup_steps < 1 and cfg.warmup_steps == p.dpo.warmup_ratio  # a ratio: linear warmup first
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * p.dpo.hardware.world_size == batch
    assert cfg.max_length == max_len
    assert cfg.num_train_epochs == epochs
    assert cfg.loss_type == ["sigmoid"]
    assert cfg.bf16 is True and cfg.precompute_ref_log_probs == p.dpo.precompute_ref_log_probs
    assert cfg.trust_remote_code is False


def test_every_dpo_param_reaches_the_config(tmp_path):
    """Change each mapped value in params and see it arrive in DPOConfig (no silent defaults)."""
    over = {
        "dpo.beta": 0.37, "dpo.learning_rate": 3.3e-5, "dpo.warmup_ratio": 0.25, "dpo.weight_decay": 0.05,
        "dpo.micro_batch_size": 3, "dpo.gradient_accumulation_steps": 5, "dpo.batch_size": 15,
        "dpo.max_length": 200, "dpo.max_prompt_length": 100, "dpo.num_train_epochs": 2, "dpo.seed": 7,
        "dpo.precompute_ref_log_probs": True, "dpo.gradient_checkpointing": True,
    }
    p = load_params("tiny", over)
    cfg = build_dpo_config(p, tmp_path)
    got = {k: getattr(cfg, k) for k in CONFIG_FIELDS}
    assert got["beta"] == 0.37 and got["learning_rate"] == 3.3e-5 and got["warmup_steps"] == 0.25
    assert got["weight_decay"] == 0.05 and got["per_device_train_batch_size"] == 3
    assert got["gradient_accumulation_steps"] == 5 and got["max_length"] == 200 and got["num_train_epochs"] == 2
    assert got["seed"] == 7 and got["precompute_ref_log_probs"] is True and got["activation_checkpointing"] is True
