"""Params of the training logs (SFT and every DPO round): where the trainer reports its metrics."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class TrainingLogsParams(StrictModel):
    """Not part of any stage's fingerprint: switching the log sink never retrains a finished stage."""

    report_to: Literal["tensorboard", "wandb", "none"] = Field(
        default="tensorboard",
        description="tensorboard: event files in <stage>/tensorboard/ (03/04 plot them); wandb: Weights & Biases "
        "(pip install wandb; WANDB_API_KEY or `wandb login` in the environment, never in params); none: no sink "
        "(03/04 then plot the trainer's log history)",
    )
    wandb_project: str = Field(default="med42-v2", min_length=1, description="W&B project (report_to: wandb)")
