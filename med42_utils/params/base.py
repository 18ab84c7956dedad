"""Shared building blocks of the params schema: strict models, hardware, the model section."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """A params section: unknown keys and wrong types are errors, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class Hardware(StrictModel):
    """Where a stage runs: nodes x processes per node, and how it is launched."""

    nodes: int = Field(ge=1)
    gpus_per_node: int = Field(ge=1, description="processes per node (GPUs, or CPU processes for tiny)")
    accelerator: Literal["cpu", "h100", "cuda"] = Field(description="cpu; h100; cuda = any one CUDA GPU (gpu_smoke)")
    launcher: Literal["inprocess", "accelerate", "slurm"]
    accelerate_config: str | None = Field(
        default=None, description="accelerate/FSDP config, relative to the repo root"
    )

    @property
    def world_size(self) -> int:
        return self.nodes * self.gpus_per_node

    @model_validator(mode="after")
    def _launcher_fits(self) -> "Hardware":
        if self.launcher != "inprocess" and not self.accelerate_config:
            raise ValueError(f"launcher '{self.launcher}' needs accelerate_config (a file under params/accelerate/)")
        if self.launcher == "slurm" and self.nodes < 2:
            raise ValueError("launcher 'slurm' is for nodes >= 2; use 'accelerate' on a single node")
        return self


class TinyModelConfig(StrictModel):
    """Shape of the offline Llama-architecture model used at size tiny."""

    vocab_size: int = Field(ge=300, description="the BPE trainer's cap (incl. 256 byte tokens and specials); the corpus may yield fewer")
    hidden_size: int = Field(ge=8)
    intermediate_size: int = Field(ge=8)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    num_key_value_heads: int = Field(ge=1)
    max_position_embeddings: int = Field(ge=64)
    seed: int


class ModelParams(StrictModel):
    """The base model: a Hub id for 8b/70b, 'tiny' for the locally built one."""

    base: str = Field(description="Hub id, a local path, or 'tiny'")
    display_name: str
    torch_dtype: Literal["float32", "bfloat16"]
    attn_implementation: Literal["eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3"] = Field(
        description="attention kernel (transformers' AttentionInterface). Every one keeps packed samples apart "
        "(restarting position ids); eager/sdpa do it with a dense seq x seq mask, flex_attention with a block mask, "
        "flash_attention_2/3 with variable-length kernels. flash_* fall back to flex_attention without flash-attn; "
        "on CPU everything but eager runs as sdpa"
    )
    trust_remote_code: bool = False
    tiny: TinyModelConfig | None = None

    @model_validator(mode="after")
    def _tiny_consistent(self) -> "ModelParams":
        if (self.base == "tiny") != (self.tiny is not None):
            raise ValueError("model.tiny must be given exactly when model.base is 'tiny'")
        return self


class SpeedParams(StrictModel):
    """GPU-only speed switches of a training stage (ignored, with one notice, on CPU)."""

    liger_kernel: bool = Field(
        default=False,
        description="Liger's Triton kernels (RMSNorm, RoPE, SwiGLU) through TrainingArguments.use_liger_kernel; "
        "needs `pip install .[gpu]`",
    )
    torch_compile: bool = Field(
        default=False,
        description="TrainingArguments.torch_compile; do not combine with liger_kernel (its kernels break the graph)",
    )


def save_total_limit_field():
    return Field(ge=1, description="checkpoints kept (transformers' save_total_limit): a sharded 70B checkpoint with "
                 "optimizer state is about 0.85 TB")


def stop_signal_field():
    return Field(ge=10, description="on SLURM, SIGUSR1 this many seconds before the time limit: training saves a "
                 "checkpoint and the job requeues itself (#SBATCH --signal); leave room for one step and one save")
