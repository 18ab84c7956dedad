"""Clinical SFT with TRL's SFTTrainer, from params (paper Table 2).

    python -m med42_utils.sft.train --size tiny --run-name demo [--set sft.max_steps=10]

The same entry point runs in-process (tiny), under `accelerate launch` (FSDP, one node) and
under SLURM (one `accelerate launch` per node); see med42_utils.launch. An interrupted run (time limit,
preemption, a crash) continues from its last checkpoint when started again (med42_utils.checkpoints).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any


from ..checkpoints import checkpoint_args, resume_for, resume_key, training_callbacks
from ..fsdp_cpu import enable_cpu_fsdp, fsdp_wrapped_modules
from ..cli import parse_override_args
from ..notebook import fresh_transforms
from ..quiet import without_model_card
from ..manifest import input_fingerprints, require_stage, stage_done, write_manifest
from .. import models
from ..params import Params, load_params
from ..paths import run_dir
from ..progress import PROGRESS, progress_callback
from ..speed import require_packages, stage_speed
from ..stages import STAGES
from ..tiny_model import resolve_base_model
from ..training_logs import quiet_trainer, trainer_kwargs

CHECKPOINTS = Path(STAGES["sft"].checkpoints).name
MODEL = "model"


def sft_dir(params: Params, run_name: str) -> Path:
    return run_dir(params.size, run_name) / "sft"


def build_sft_config(params: Params, output_dir: Path, **overrides: Any):
    """SFTConfig with Table 2's values from params; packing with the params' strategy; the speed switches
    this machine can use (Liger, torch.compile, static row padding for flex_attention: med42_utils.speed)."""
    from trl import SFTConfig

    s, p = params.sft, params.packing
    kw = dict(
        output_dir=str(output_dir),
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_scheduler_type,
        warmup_steps=s.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps (transformers 5)
        optim=s.optim,
        adam_beta1=s.adam_beta1,
        adam_beta2=s.adam_beta2,
        weight_decay=s.weight_decay,
        max_steps=s.max_steps,
        num_train_epochs=s.num_train_epochs,
        per_device_train_batch_size=s.micro_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        bf16=s.bf16,
        activation_checkpointing=s.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        logging_steps=s.logging_steps,
        **checkpoint_args(s),
        seed=s.seed,
        data_seed=s.seed,
        max_length=p.max_length,
        packing=True,
        packing_strategy=p.strategy,
        # bfd: TRL switches to padding-free batches whose position ids restart per sample
        **stage_speed(params, "sft").config_kwargs(),
        report_to="none",
        dataset_num_proc=None,
        use_cpu=params.sft.hardware.accelerator == "cpu",
    )
    if s.gradient_checkpointing:
        kw["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    kw.update(overrides)
    return SFTConfig(**kw)


def lora_config(params: Params, stage: str = "sft"):
    """peft LoraConfig from params.<stage>.lora (stage 'sft' or 'dpo')."""
    from peft import LoraConfig

    lo = getattr(params, stage).lora
    return LoraConfig(r=lo.r, lora_alpha=lo.alpha, lora_dropout=lo.dropout, target_modules=list(lo.target_modules),
                      task_type="CAUSAL_LM", bias="none")


def load_train_dataset(params: Params, run_name: str):
    """02_packing's tokenized conversations (input_ids + assistant-only labels); SFTTrainer packs them."""
    from datasets import load_from_disk

    pdir = run_dir(params.size, run_name) / "packing"
    require_stage(pdir, "02_packing.ipynb")
    ds = load_from_disk(str(pdir / "tokenized"))
    return ds.select_columns(["input_ids", "labels"])


def load_model(params: Params, name_or_path: str):
    """Full fine-tuning keeps fp32 master weights (bf16 compute via autocast / FSDP mixed precision:
    5e-6 updates vanish in bf16 weights); LoRA loads the frozen base in the params' dtype."""
    dtype = "float32" if params.sft.method == "full" else None
    return (models.load_model(params, name_or_path, dtype=dtype, stage="sft"),
            models.load_tokenizer(params, name_or_path))


class _StopAfter:
    """A callback that stops training after step n (to test resuming from a checkpoint)."""

    def __new__(cls, n: int):
        from transformers import TrainerCallback

        class StopAfter(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step >= n:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return StopAfter()


def train_sft(params: Params, run_name: str, stop_after_step: int | None = None, force: bool = False) -> dict:
    """Train, save sft/model (model + tokenizer) and sft/manifest.json; returns the manifest fields.

    A finished stage (same params and packed data) is not trained again unless force=True. An unfinished one
    continues from the last checkpoint in sft/checkpoints/ that was made from the same params and data;
    force=True discards the checkpoints and starts at step 0. A run stopped before max_steps (SLURM's signal,
    stop_after_step) returns without a final model or manifest."""
    from transformers import set_seed
    from trl import SFTTrainer

    out = sft_dir(params, run_name)
    packing = run_dir(params.size, run_name) / "packing"
    if stage_done(out, params, inputs=[packing]) and not force and stop_after_step is None:
        print(f"03_sft already done in {out} (force=True re-trains)")
        return json.loads((out / "manifest.json").read_text())
    set_seed(params.sft.seed)
    ckpt_dir = out / CHECKPOINTS
    if force and ckpt_dir.exists() and _is_main():
        shutil.rmtree(ckpt_dir)
    require_packages(params, "sft")
    train = load_train_dataset(params, run_name)
    model, tok = load_model(params, resolve_base_model(params))
    extra = {}
    if params.sft.hardware.accelerator == "cpu" and enable_cpu_fsdp():
        extra["accelerator_config"] = {"use_configured_state": True}
    args = build_sft_config(params, ckpt_dir, **extra, **trainer_kwargs(params, run_name, "sft"))
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=tok,
        peft_config=lora_config(params) if params.sft.method == "lora" else None,
        callbacks=[progress_callback(out / PROGRESS), *training_callbacks()]
        + ([_StopAfter(stop_after_step)] if stop_after_step else []),
    )
    without_model_card(trainer)  # no TRL draft README.md linking to "[None]" beside the checkpoints
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    resume_from = resume_for(trainer, ckpt_dir, resume_key(params, "sft", input_fingerprints(out, [packing])))
    # progress lines; curves in sft/tensorboard/ (a resumed run appends to its curves, a new one starts them)
    quiet_trainer(trainer, params, out, "sft", fresh=resume_from is None)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume_from)
    wall = time.time() - t0
    state = trainer.state
    logs = [{k: v for k, v in e.items() if k in ("step", "loss", "learning_rate", "grad_norm", "epoch")}
            for e in state.log_history if "loss" in e]
    fields = {
        "method": params.sft.method,
        "packing_strategy": params.packing.strategy,
        "world_size": trainer.args.world_size,
        "distributed_type": "FSDP" if trainer.is_fsdp_enabled else str(trainer.accelerator.distributed_type).split(".")[-1],
        "fsdp": bool(trainer.is_fsdp_enabled),
        "fsdp_wrapped_modules": fsdp_wrapped_modules(trainer.model_wrapped),
        "global_step": state.global_step,
        "max_steps": params.sft.max_steps,
        "stopped_early": state.global_step < params.sft.max_steps,
        "resumed_from": resume_from,
        "train_loss": result.training_loss,
        "first_loss": logs[0]["loss"] if logs else None,
        "last_loss": logs[-1]["loss"] if logs else None,
        "log_history": logs,
        "train_samples": len(train),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "tokens_per_step": params.sft_tokens_per_step,
        "wall_seconds": round(wall, 2),
        "model_dir": MODEL,
    }
    if state.global_step < params.sft.max_steps:
        # stopped on purpose after a checkpoint: no final model, no manifest (the stage is not done)
        return fields
    _save_final(trainer, params, out / MODEL, tok)
    if _is_main():
        write_manifest(out, "03_sft", params, inputs=[packing], **fields)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the stage is done: sft/model is what later stages read
    return fields


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _save_final(trainer, params: Params, model_dir: Path, tok) -> None:
    """save_pretrained model + tokenizer; LoRA adapters are merged so later stages load a plain model."""
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    if params.sft.method == "lora":
        if _is_main():
            trainer.model.save_pretrained(str(model_dir.parent / "adapter"))
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(str(model_dir))
            tok.save_pretrained(str(model_dir))
        return
    trainer.save_model(str(model_dir))
    if _is_main():
        tok.save_pretrained(str(model_dir))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", required=True)
    ap.add_argument("--run-name", required=True)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override (repeatable)")
    ap.add_argument("--stop-after-step", type=int, default=None, help="stop after this step (tests resuming)")
    ap.add_argument("--force", action="store_true",
                    help="re-train from step 0 even if sft/manifest.json exists (discards sft/checkpoints/)")
    a = ap.parse_args(argv)
    fresh_transforms()
    params = load_params(a.size, parse_override_args(a.set))
    fields = train_sft(params, a.run_name, stop_after_step=a.stop_after_step, force=a.force)
    if _is_main():
        f = fields
        loss = f"loss {f['first_loss']:.3f} -> {f['last_loss']:.3f}, " if f.get("last_loss") is not None else ""
        print(f"sft: step {f['global_step']}/{f['max_steps']}, {loss}{f['wall_seconds']:.0f} s; in {sft_dir(params, a.run_name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
