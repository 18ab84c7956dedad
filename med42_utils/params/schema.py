"""The root of the params schema: one section per stage, plus cross-section checks."""
from __future__ import annotations

from pydantic import Field, model_validator

from .base import ModelParams, StrictModel
from .data import DataParams
from .dpo import DpoParams
from .evaluation import EvalParams, JudgeParams
from .extra import ExtraModel
from .logs import TrainingLogsParams
from .sft import PackingParams, SftParams
from .slurm import SlurmParams


class Params(StrictModel):
    """Everything a run of the course needs, for one size."""

    size: str
    seed: int
    model: ModelParams
    data: DataParams
    packing: PackingParams
    sft: SftParams
    dpo: DpoParams
    eval: EvalParams
    judge: JudgeParams
    extra_models: list[ExtraModel] = Field(default_factory=list, description="models beside the run's stages, "
                                           "scored in 05 and rated in 06 (docs/elo.md, docs/benchmarks.md)")
    training_logs: TrainingLogsParams = Field(default_factory=TrainingLogsParams)
    slurm: SlurmParams = Field(default_factory=SlurmParams,
                               description="site options of sbatch jobs (partition, account, time, ...); see docs/cluster-options.md")

    # ---- derived values (never stated in the parameters cell) ----
    @property
    def sft_tokens_per_step(self) -> int:
        """micro-batch x grad-accumulation x world size x sequence length."""
        s = self.sft
        return s.micro_batch_size * s.gradient_accumulation_steps * s.hardware.world_size * self.packing.max_length

    @property
    def sft_total_tokens(self) -> int:
        return self.sft_tokens_per_step * self.sft.max_steps

    @property
    def dpo_batch_size(self) -> int:
        d = self.dpo
        return d.micro_batch_size * d.gradient_accumulation_steps * d.hardware.world_size

    @model_validator(mode="after")
    def _derived_match_stated(self) -> "Params":
        if self.sft_tokens_per_step != self.sft.tokens_per_step:
            s = self.sft
            raise ValueError(
                f"sft.tokens_per_step is {s.tokens_per_step:,} but micro_batch_size ({s.micro_batch_size}) x "
                f"gradient_accumulation_steps ({s.gradient_accumulation_steps}) x world size "
                f"({s.hardware.nodes} nodes x {s.hardware.gpus_per_node}) x packing.max_length "
                f"({self.packing.max_length}) = {self.sft_tokens_per_step:,}; change one so they agree"
            )
        if self.dpo_batch_size != self.dpo.batch_size:
            d = self.dpo
            raise ValueError(
                f"dpo.batch_size is {d.batch_size} but micro_batch_size ({d.micro_batch_size}) x "
                f"gradient_accumulation_steps ({d.gradient_accumulation_steps}) x world size "
                f"({d.hardware.world_size}) = {self.dpo_batch_size}; change one so they agree"
            )
        names = [m.name for m in self.extra_models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"extra_models names {', '.join(dup)} more than once; give each model its own name")
        if self.model.base != "tiny" and any(m.tiny_seed is not None for m in self.extra_models):
            raise ValueError("extra_models: tiny_seed is for model.base 'tiny' only; give a hub id or path instead")
        if self.dpo.max_prompt_length >= self.dpo.max_length:
            raise ValueError("dpo.max_prompt_length must be smaller than dpo.max_length")
        return self
