"""Params of 02_packing and 03_sft (paper Table 2)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Hardware, SpeedParams, StrictModel, save_total_limit_field, stop_signal_field


class PackingParams(StrictModel):
    max_length: int = Field(ge=16, description="tokens per packed chunk (8192 in the paper)")
    strategy: Literal["wrapped", "bfd"] = Field(
        description="wrapped: the paper's concatenate-and-chunk; bfd: boundary-aware best-fit, padding-free "
        "(no sample attends to another)"
    )


class LoraParams(StrictModel):
    r: int = Field(ge=1)
    alpha: int = Field(ge=1)
    dropout: float = Field(ge=0, lt=1)
    target_modules: list[str]


class SftParams(StrictModel):
    method: Literal["full", "lora"]
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: Literal["cosine"]
    warmup_ratio: float = Field(ge=0, lt=1)
    optim: Literal["adamw_torch", "adamw_torch_fused"]
    adam_beta1: float = Field(gt=0, lt=1)
    adam_beta2: float = Field(gt=0, lt=1)
    weight_decay: float = Field(ge=0)
    max_steps: int = Field(ge=1)
    num_train_epochs: int = Field(ge=1)
    micro_batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(ge=1)
    tokens_per_step: int = Field(ge=1, description="stated figure; must equal the derived one")
    bf16: bool
    gradient_checkpointing: bool
    logging_steps: int = Field(ge=1)
    save_steps: int = Field(ge=1, description="a checkpoint every this many steps (resumed on its own)")
    save_total_limit: int = save_total_limit_field()
    stop_signal_seconds: int = stop_signal_field()
    seed: int
    hardware: Hardware
    lora: LoraParams
    speed: SpeedParams = Field(default_factory=SpeedParams)

    @model_validator(mode="after")
    def _lora_on_one_process(self) -> "SftParams":
        if self.method == "lora" and self.hardware.world_size != 1:
            raise ValueError(
                f"sft.method 'lora' runs on one process (the adapters are saved and merged on rank 0, which under "
                f"FSDP holds only its shard); sft.hardware has {self.hardware.world_size}. Use method 'full' for "
                f"multi-GPU FSDP, or sft.hardware.nodes=1 and gpus_per_node=1 for LoRA"
            )
        return self
