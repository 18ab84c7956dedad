"""Params of 04_dpo (paper Table 3): three rounds of iterative DPO."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import Hardware, StrictModel


class DpoRound(StrictModel):
    name: str
    datasets: list[str] = Field(min_length=1, description="preference sources, e.g. 'snorkel:train_iteration_2'")


class DpoParams(StrictModel):
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
    max_prompt_length: int = Field(ge=8)
    num_train_epochs: int = Field(ge=1)
    bf16: bool
    gradient_checkpointing: bool
    precompute_ref_log_probs: bool
    max_samples_per_source: int | None = Field(default=None, ge=1, description="cap for tiny runs; null = all")
    logging_steps: int = Field(ge=1)
    seed: int
    hardware: Hardware
    rounds: list[DpoRound] = Field(min_length=1)
