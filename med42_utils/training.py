"""The training core SFT and DPO share: loading (rank 0 only under FSDP), LoRA, callbacks, FSDP settings, saving.

Under `accelerate launch` with FSDP and cpu_ram_efficient_loading on several processes, only rank 0 reads the
weights; the others build the model on the meta device, and accelerate's fsdp2_prepare_model broadcasts rank 0's
values into each rank's shards. The DPO reference goes through the same function, so it is sharded per decoder
layer like the policy (TRL's prepare_fsdp would wrap its root only). Accumulation reduce-scatters every
micro-batch (sync_each_batch), so no rank holds a full gradient. Final models are saved in the params' dtype
(bf16 at 8b/70b), not in the fp32 of the master weights.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import models
from .checkpoints import training_callbacks
from .fsdp_cpu import enable_cpu_fsdp
from .params import Params
from .progress import progress_callback

SAVE_BYTES_PER_SECOND = 100e6  # a slow shared filesystem: the barrier waits this long per byte of the final save


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def sharded_loading() -> bool:
    """True under an FSDP launch of >= 2 processes with cpu_ram_efficient_loading (the accelerate config)."""
    env = os.environ
    return (env.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and int(env.get("WORLD_SIZE", "1")) > 1
            and env.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() in ("true", "1"))


def load_for_training(params: Params, name_or_path: str, stage: str, dtype: str | None = None):
    """The model a stage trains from. With sharded loading, rank 0 loads the weights in the params' dtype and
    every other rank builds the same model on the meta device (its buffers real, they are not broadcast);
    accelerate then upcasts rank 0's trainable weights to fp32 master weights and broadcasts the shards."""
    if not sharded_loading():
        return models.load_model(params, name_or_path, dtype=dtype, stage=stage)
    if is_main():
        return models.load_model(params, name_or_path, stage=stage)
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    trust = params.model.trust_remote_code
    config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust)
    with init_empty_weights(include_buffers=False):
        return AutoModelForCausalLM.from_config(
            config, dtype=getattr(torch, params.model.torch_dtype), trust_remote_code=trust,
            attn_implementation=models.attn_implementation(params, stage))


def frozen_reference(params: Params, name_or_path: str, args):
    """The DPO reference, frozen; under FSDP sharded per decoder layer with the policy's settings by accelerate's
    fsdp2_prepare_model (rank 0's weights broadcast into the others' meta shards), before TRL sees it: TRL's
    prepare_fsdp wraps an unsharded model at its root only, and leaves an FSDP one as it is. `args`: the
    DPOConfig, made first (it sets up the distributed state this accelerator shares)."""
    model = load_for_training(params, name_or_path, "dpo").requires_grad_(False)  # frozen: no fp32 upcast
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or args.world_size < 2:
        return model
    from accelerate import Accelerator
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model

    return fsdp2_prepare_model(Accelerator(cpu=args.use_cpu), model).eval()


def lora_config(params: Params, stage: str):
    """peft LoraConfig from params.<stage>.lora (stage 'sft' or 'dpo')."""
    from peft import LoraConfig

    lo = getattr(params, stage).lora
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=list(lo.target_modules),
                      task_type="CAUSAL_LM", bias="none")


def distributed_args(params: Params, stage: str) -> dict:
    """TrainingArguments fields for the launch: the CPU-FSDP shim's state, gradients reduce-scattered every
    micro-batch (sync_each_batch: FSDP2 keeps no unsharded gradient between micro-batches), and a collective
    timeout that outlasts rank 0 writing the final model (30 min + its bf16 bytes at SAVE_BYTES_PER_SECOND)."""
    from .estimates import model_shape

    acc = {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    if getattr(params, stage).hardware.accelerator == "cpu" and enable_cpu_fsdp():
        acc["use_configured_state"] = True
    save_seconds = model_shape(params).parameters * 2 / SAVE_BYTES_PER_SECOND
    return {"accelerator_config": acc, "ddp_timeout": int(1800 + save_seconds)}


def stop_after(n: int):
    """A callback that saves and stops training after step n (to test resuming from a checkpoint)."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= n:
                control.should_save = True
                control.should_training_stop = True
            return control

    return StopAfter()


def stage_callbacks(progress_file: Path, stop_after_step: int | None) -> list:
    """Progress lines, stop/checkpoint on SLURM's signal, and the test stop after a step."""
    return [progress_callback(progress_file), *training_callbacks(),
            *([stop_after(stop_after_step)] if stop_after_step else [])]


def save_final(trainer, params: Params, method: str, model_dir: Path, tokenizer) -> None:
    """A plain model later stages load, in the params' dtype (bf16 at 8b/70b; the fp32 master weights are a
    training detail), with its tokenizer. Under FSDP every rank joins the gather; rank 0 writes.
    LoRA: the adapters are saved beside it, then merged in."""
    import torch

    dtype = getattr(torch, params.model.torch_dtype)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if method == "lora":
        if trainer.is_world_process_zero():
            model.save_pretrained(str(model_dir.parent / "adapter"))
            model.merge_and_unload().to(dtype).save_pretrained(str(model_dir))
            tokenizer.save_pretrained(str(model_dir))
        return
    if trainer.is_fsdp_enabled:  # one consolidated checkpoint that from_pretrained can read
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    full = trainer.accelerator.get_state_dict(trainer.model)  # the whole model on rank 0 only
    if trainer.is_world_process_zero():
        state = {k: full.pop(k).to(dtype) for k in list(full)}  # cast tensor by tensor: no second fp32 copy
        model.config.dtype = dtype
        model.save_pretrained(str(model_dir), state_dict=state)
        tokenizer.save_pretrained(str(model_dir))
    trainer.accelerator.wait_for_everyone()
