"""The training core SFT and DPO share: loading (rank 0 only under FSDP), LoRA, callbacks, FSDP settings, saving.

Under `accelerate launch` with FSDP and cpu_ram_efficient_loading on several processes, only rank 0 reads the
weights; the others build the model from its config (on meta, then storage they never write), and accelerate's
fsdp2_prepare_model broadcasts rank 0's values into each rank's shards. The DPO reference goes through the same function, so it is sharded per decoder
layer like the policy (TRL's prepare_fsdp would wrap its root only). Accumulation reduce-scatters every
micro-batch (sync_each_batch), so no rank holds a full gradient. Final models are saved in the params' dtype
(bf16 at 8b/70b), not in the fp32 of the master weights.
"""
from __future__ import annotations

import os
from pathlib import Path

from . import models
from .checkpoints import training_callbacks
from .estimates import model_shape
from .fsdp_cpu import enable_cpu_fsdp
from .params import Params
from .progress import progress_callback
from .speed import stage_speed

SAVE_BYTES_PER_SECOND = 100e6  # a slow shared filesystem: the barrier waits this long per byte of the final save


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def sharded_loading() -> bool:
    """True under an FSDP launch of >= 2 processes with cpu_ram_efficient_loading (the accelerate config)."""
    env = os.environ
    return (env.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and int(env.get("WORLD_SIZE", "1")) > 1
            and env.get("FSDP_CPU_RAM_EFFICIENT_LOADING", "false").lower() in ("true", "1"))


def load_for_training(params: Params, name_or_path: str, stage: str, dtype: str | None = None, frozen=False):
    """The model a stage trains from (`frozen`: the DPO reference). With sharded loading only rank 0 reads the
    weights (under mixed precision in the params' dtype: accelerate upcasts the trainable ones to fp32 master
    weights); every other rank builds the model from its config with uninitialised storage that is never written
    (no resident host memory: accelerate moves it to meta, then broadcasts rank 0's shards into it), trainable
    weights already in the master dtype, so accelerate's upcast copies nothing there. Storage, not meta:
    accelerate maps the optimizer's parameters by data_ptr, which is 0 for every meta tensor."""
    mixed = getattr(params, stage).bf16
    if not sharded_loading() or is_main():
        dtype = None if sharded_loading() and mixed else dtype
        return models.load_model(params, name_or_path, dtype=dtype, stage=stage).requires_grad_(not frozen)
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    trust = params.model.trust_remote_code
    master = dtype or ("float32" if mixed and not frozen else params.model.torch_dtype)
    with init_empty_weights(include_buffers=False):  # buffers (rotary frequencies) are computed, not broadcast
        model = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust), dtype=getattr(torch, master),
            trust_remote_code=trust, attn_implementation=models.attn_implementation(params, stage))
    for m in model.modules():
        for k, p in m._parameters.items():
            if p is not None:
                m._parameters[k] = torch.nn.Parameter(torch.empty_like(p, device="cpu"), requires_grad=not frozen)
    return model


def frozen_reference(params: Params, name_or_path: str, args):
    """The DPO reference, frozen; under FSDP sharded per decoder layer with the policy's settings by accelerate's
    fsdp2_prepare_model (rank 0's weights broadcast into the others' meta shards), before TRL sees it: TRL's
    prepare_fsdp wraps an unsharded model at its root only, and leaves an FSDP one as it is. `args`: the
    DPOConfig, made first (it sets up the distributed state this accelerator shares)."""
    model = load_for_training(params, name_or_path, "dpo", frozen=True)  # frozen: accelerate keeps its dtype
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


def training_args(params: Params, stage: str, output_dir) -> dict:
    """The TrainingArguments fields SFT and DPO share, from params.<stage>: optimizer, schedule, batch, precision,
    logging, seeds, checkpoints (every save_steps, the last save_total_limit kept, with optimizer state), the speed
    switches (med42_utils.speed); and for the launch: the CPU-FSDP shim's state, gradients reduce-scattered every
    micro-batch (sync_each_batch: FSDP2 keeps no unsharded gradient between micro-batches), and a collective
    timeout that outlasts rank 0 writing the final model (30 min + its bf16 bytes at SAVE_BYTES_PER_SECOND)."""
    s = getattr(params, stage)
    acc = {"gradient_accumulation_kwargs": {"sync_each_batch": True}}
    if s.hardware.accelerator == "cpu" and enable_cpu_fsdp():
        acc["use_configured_state"] = True
    return dict(
        output_dir=str(output_dir), optim=s.optim, learning_rate=s.learning_rate, lr_scheduler_type=s.lr_scheduler_type,
        warmup_steps=s.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        weight_decay=s.weight_decay, per_device_train_batch_size=s.micro_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps, num_train_epochs=s.num_train_epochs, bf16=s.bf16,
        activation_checkpointing=s.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        logging_steps=s.logging_steps, seed=s.seed, data_seed=s.seed, use_cpu=s.hardware.accelerator == "cpu",
        save_strategy="steps", save_steps=s.save_steps, save_total_limit=s.save_total_limit, save_only_model=False,
        report_to="none", accelerator_config=acc,
        ddp_timeout=int(1800 + model_shape(params).parameters * 2 / SAVE_BYTES_PER_SECOND),
        **stage_speed(params, stage).config_kwargs())


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
        model.save_pretrained(str(model_dir), state_dict=state)
        model.config.dtype = dtype  # save_pretrained writes the live (master) weights' dtype
        model.config.save_pretrained(str(model_dir))
        tokenizer.save_pretrained(str(model_dir))
    trainer.accelerator.wait_for_everyone()
