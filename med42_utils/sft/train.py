"""Clinical SFT with TRL's SFTTrainer, from params (paper Table 2).

    python -m med42_utils.sft.train --size tiny --run-name demo [--set sft.max_steps=10]

The same entry point runs in-process (tiny), under `accelerate launch` (FSDP, one node) and
under SLURM (one `accelerate launch` per node); see med42_utils.launch. An interrupted run (time limit,
preemption, a crash) continues from its last checkpoint when started again (med42_utils.checkpoints).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any


from ..checkpoints import resume_for, resume_key
from ..fsdp_cpu import fsdp_wrapped_modules
from ..cli import job_parser, parse_override_args
from ..notebook import fresh_transforms
from ..quiet import without_model_card
from ..manifest import input_fingerprints, require_stage, stage_done, write_manifest
from .. import models
from ..training import is_main, load_for_training, lora_config, save_final, stage_callbacks, training_args
from ..params import Params, load_params
from ..paths import shown
from ..progress import PROGRESS
from ..speed import require_packages
from ..stages import STAGES, stage_dir
from ..tiny_model import resolve_base_model
from ..training_logs import quiet_trainer, trainer_kwargs

CHECKPOINTS = Path(STAGES["sft"].checkpoints).name
MODEL = "model"


def build_sft_config(params: Params, output_dir: Path, **overrides: Any):
    """SFTConfig with Table 2's values from params; packing with the params' strategy; the speed switches
    this machine can use (Liger, torch.compile, static row padding for flex_attention: med42_utils.speed)."""
    from trl import SFTConfig

    s, p = params.sft, params.packing
    kw = dict(
        training_args(params, "sft", output_dir),
        adam_beta1=s.adam_beta1,
        adam_beta2=s.adam_beta2,
        max_steps=s.max_steps,
        max_length=p.max_length,
        packing=True,
        packing_strategy=p.strategy,  # bfd: padding-free batches whose position ids restart per sample
        dataset_num_proc=None,
    )
    if s.gradient_checkpointing:
        kw["activation_checkpointing_kwargs"] = {"use_reentrant": False}
    kw.update(overrides)
    return SFTConfig(**kw)


def load_train_dataset(params: Params, run_name: str):
    """02_packing's tokenized conversations (input_ids + assistant-only labels); SFTTrainer packs them."""
    from datasets import load_from_disk

    pdir = stage_dir(params, run_name, "packing")
    require_stage(pdir, "02_packing.ipynb")
    ds = load_from_disk(str(pdir / "tokenized"))
    return ds.select_columns(["input_ids", "labels"])


def train_sft(params: Params, run_name: str, stop_after_step: int | None = None, force: bool = False) -> dict:
    """Train, save sft/model (model + tokenizer) and sft/manifest.json; returns the manifest fields.

    A finished stage (same params and packed data) is not trained again unless force=True. An unfinished one
    continues from the last checkpoint in sft/checkpoints/ that was made from the same params and data;
    force=True discards the checkpoints and starts at step 0. A run stopped before max_steps (SLURM's signal,
    stop_after_step) returns without a final model or manifest."""
    from transformers import set_seed
    from trl import SFTTrainer

    out = stage_dir(params, run_name, "sft")
    packing = stage_dir(params, run_name, "packing")
    if stage_done(out, params, inputs=[packing]) and not force and stop_after_step is None:
        print(f"03_sft already done in {out} (force=True re-trains)")
        return json.loads((out / "manifest.json").read_text())
    set_seed(params.sft.seed)
    ckpt_dir = out / CHECKPOINTS
    if force and ckpt_dir.exists() and is_main():
        shutil.rmtree(ckpt_dir)
    require_packages(params, "sft")
    train = load_train_dataset(params, run_name)
    # the arguments first: they set up the distributed state that loading on rank 0 only relies on
    args = build_sft_config(params, ckpt_dir, **trainer_kwargs(params, run_name, "sft"))
    base = resolve_base_model(params)
    # full fine-tuning keeps fp32 master weights (5e-6 updates vanish in bf16); LoRA: a frozen base in params' dtype
    model = load_for_training(params, base, "sft", dtype="float32" if params.sft.method == "full" else None)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=train, processing_class=(tok := models.load_tokenizer(params, base)),
        peft_config=lora_config(params, "sft") if params.sft.method == "lora" else None,
        callbacks=stage_callbacks(out / PROGRESS, stop_after_step))
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
    save_final(trainer, params, params.sft.method, out / MODEL, tok)
    if is_main():
        write_manifest(out, "03_sft", params, inputs=[packing], **fields)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the stage is done: sft/model is what later stages read
    return fields


def main(argv: list[str] | None = None) -> int:
    ap = job_parser(__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stop-after-step", type=int, default=None, help="stop after this step (tests resuming)")
    ap.add_argument("--force", action="store_true",
                    help="re-train from step 0 even if sft/manifest.json exists (discards sft/checkpoints/)")
    a = ap.parse_args(argv)
    fresh_transforms()
    params = load_params(a.size, parse_override_args(a.set))
    fields = train_sft(params, a.run_name, stop_after_step=a.stop_after_step, force=a.force)
    if is_main():
        f = fields
        loss = f"loss {f['first_loss']:.3f} -> {f['last_loss']:.3f}, " if f.get("last_loss") is not None else ""
        where = shown(stage_dir(params, a.run_name, "sft"))
        print(f"sft: step {f['global_step']}/{f['max_steps']}, {loss}{f['wall_seconds']:.0f} s; in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
