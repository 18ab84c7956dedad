"""Params of 04_dpo (paper Table 3): three rounds of iterative DPO, plus the on-policy option."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Hardware, SpeedParams, StrictModel, save_total_limit_field, stop_signal_field
from .sft import LoraParams


class DpoRound(StrictModel):
    name: str
    datasets: list[str] = Field(min_length=1, description="preference sources, e.g. 'snorkel:train_iteration_2'")


class OnPolicyParams(StrictModel):
    """Beyond the paper: build a round's pairs from K samples of the round's starting model (Snorkel's recipe)."""

    enabled: bool
    rounds: list[str] = Field(description="rounds whose pairs are built on-policy (their datasets give the prompts)")
    k: int = Field(ge=2, description="responses sampled per prompt")
    num_prompts: int | None = Field(default=None, ge=1, description="prompts per round; null = all")
    scorer: Literal["reward_model", "judge"]
    reward_model: str | None = Field(default=None, description="sequence-classification model: Hub id, path or 'tiny'")
    temperature: float = Field(gt=0)
    top_k: int = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(ge=1)
    seed: int

    @model_validator(mode="after")
    def _scorer_named(self) -> "OnPolicyParams":
        if self.scorer == "reward_model" and not self.reward_model:
            raise ValueError("dpo.onpolicy.scorer 'reward_model' needs dpo.onpolicy.reward_model (Hub id, path or 'tiny')")
        return self


class DpoParams(StrictModel):
    method: Literal["full", "lora"] = Field(
        description="full: train every weight against a frozen reference copy; lora: train adapters, the reference "
        "is the same model with its adapters switched off (no second model in memory)"
    )
    beta: float = Field(gt=0)
    optim: Literal["rmsprop"]
    learning_rate: float = Field(gt=0)
    lr_scheduler_type: Literal["cosine"]
    warmup_ratio: float = Field(ge=0, lt=1)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(ge=1, description="stated global batch; must equal the derived one")
    micro_batch_size: int = Field(ge=1)
    gradient_accumulation_steps: int = Field(ge=1)
    max_length: int = Field(ge=16)
    max_prompt_length: int = Field(ge=8, description="pairs whose prompt has this many tokens or more are dropped (counted)")
    num_train_epochs: int = Field(ge=1)
    bf16: bool
    gradient_checkpointing: bool
    precompute_ref_log_probs: bool
    max_samples_per_source: int | None = Field(default=None, ge=1, description="cap for tiny runs; null = all")
    logging_steps: int = Field(ge=1)
    save_steps: int = Field(ge=1, description="a checkpoint of the round every this many steps (resumed on its own)")
    save_total_limit: int = save_total_limit_field()
    stop_signal_seconds: int = stop_signal_field()
    seed: int
    data_source: Literal["hub", "local", "bundled"] = Field(
        description="hub: datasets.load_dataset(<hub id>); local: <data_dir>/<name>/<split>.jsonl|parquet; bundled: package samples"
    )
    data_dir: str | None = None
    hardware: Hardware
    lora: LoraParams = Field(description="adapter settings, used with method: lora")
    rounds: list[DpoRound] = Field(min_length=1)
    onpolicy: OnPolicyParams
    speed: SpeedParams = Field(default_factory=SpeedParams)

    @model_validator(mode="after")
    def _consistent(self) -> "DpoParams":
        if self.data_source == "local" and not self.data_dir:
            raise ValueError("dpo.data_source 'local' needs dpo.data_dir (folder with <name>/<split>.jsonl files)")
        if self.method == "lora" and self.hardware.world_size != 1:
            raise ValueError(
                f"dpo.method 'lora' runs on one process (each round merges its adapters into a plain model for the "
                f"next); dpo.hardware has {self.hardware.world_size}. Use method 'full' for multi-GPU FSDP rounds"
            )
        names = [r.name for r in self.rounds]
        if len(set(names)) != len(names):
            raise ValueError(f"dpo.rounds names must be unique, got {names}")
        unknown = [r for r in self.onpolicy.rounds if r not in names]
        if unknown:
            raise ValueError(f"dpo.onpolicy.rounds names unknown rounds {unknown}; rounds are {names}")
        return self
