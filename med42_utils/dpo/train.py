"""Train one DPO round with TRL's DPOTrainer and the params' Table 3 settings.

Run in-process (size tiny) or once per process under `accelerate launch` (FSDP):

    python -m med42_utils.dpo.train --size tiny --run-name demo --round round1 [--set dpo.beta=0.2 ...]

Round 1 starts from the SFT model; round N>1 starts from round N-1's saved model, which is also its
frozen reference. Writes outputs/<size>/<run>/dpo/<round>/model/ (model + tokenizer),
log_history.json and manifest.json. Checkpoints go to <round>/trainer/ every dpo.save_steps; an
interrupted round continues from the last one when started again (med42_utils.checkpoints).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any


from ..checkpoints import resume_for, resume_key
from ..cli import job_parser, parse_override_args
from ..notebook import fresh_transforms
from ..quiet import without_model_card
from ..manifest import input_fingerprints, write_manifest
from ..models import load_tokenizer
from ..params import Params, load_params
from ..progress import PROGRESS
from ..speed import require_packages
from ..stages import STAGES, init_stage, round_spec
from ..training import frozen_reference, load_for_training, lora_config, save_final, stage_callbacks, training_args
from ..training_logs import quiet_trainer, trainer_kwargs
from .lengths import pair_lengths
from .onpolicy_job import is_onpolicy, read_pairs
from .preference_data import drop_long_prompts, load_preferences
from .round_models import init_dir, resolve_init, round_dir

LOG_HISTORY = "log_history.json"
CHECKPOINTS = Path(STAGES["dpo"].checkpoints).name  # <round>/trainer/checkpoint-N


def build_dpo_config(params: Params, output_dir: str | Path, **extra: Any):
    """TRL DPOConfig from params.dpo (Table 3 for 8b/70b): every training field is taken from params, plus the
    speed switches this machine can use (med42_utils.speed). TRL 1.16 has no Liger fused DPO loss any more
    (its own fused LM head computes the log-probs in tiles); use_liger_kernel patches the layers' kernels."""
    from trl import DPOConfig

    d = params.dpo
    kwargs = dict(
        training_args(params, "dpo", output_dir),  # checkpoints in <round>/trainer; the final model in <round>/model
        beta=d.beta,
        loss_type=["sigmoid"],  # the DPO loss of Rafailov et al.
        max_length=d.max_length,
        precompute_ref_log_probs=d.precompute_ref_log_probs,
        trust_remote_code=params.model.trust_remote_code,
        disable_tqdm=True,
    )
    kwargs.update(extra)
    return DPOConfig(**kwargs)


def build_trainer(params: Params, init_path: str, train_dataset, output_dir: str | Path, tokenizer=None,
                  callbacks=(), **config_extra):
    """DPOTrainer whose policy and frozen reference both start from init_path.

    method full: the reference is a second copy loaded from init_path and, under FSDP, sharded per decoder layer
    like the policy (training.frozen_reference); with precompute_ref_log_probs TRL scores the data with the untouched
    policy instead (one process only: under FSDP its hash of the weights cannot read shards).
    method lora: one model; TRL trains LoRA adapters on it (peft_config) and, with ref_model=None, computes the
    reference log-probs with the adapters switched off, i.e. init_path itself, without loading it twice.
    """
    from trl import DPOTrainer

    require_packages(params, "dpo")
    args = build_dpo_config(params, output_dir, **config_extra)
    tokenizer = tokenizer or load_tokenizer(params, init_path)
    model = load_for_training(params, init_path, "dpo")
    ref_model = peft_config = None
    if params.dpo.method == "lora":
        peft_config = lora_config(params, "dpo")
    elif params.dpo.precompute_ref_log_probs and args.world_size > 1:
        raise ValueError(f"dpo.precompute_ref_log_probs needs one process (TRL hashes the whole reference); this "
                         f"launch has {args.world_size}. Set dpo.precompute_ref_log_probs: false (the reference is "
                         "then sharded per layer like the policy)")
    elif not params.dpo.precompute_ref_log_probs:
        ref_model = frozen_reference(params, init_path, args)
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_dataset,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))
    return without_model_card(trainer)  # no TRL draft README.md linking to "[None]"


def prepare_round_data(params: Params, run_name: str, name: str, init_path: str, tokenizer):
    """The round's pairs (from its datasets, or the on-policy pairs its generation job wrote before training:
    dpo.onpolicy_job) after dropping long prompts -> (Dataset, DropReport). Training never samples."""
    d = params.dpo
    if is_onpolicy(params, name):
        ds, report = read_pairs(params, run_name, name)
    else:
        datasets = round_spec(params, name).datasets
        ds, report = load_preferences(datasets, d.data_source, d.data_dir, d.max_samples_per_source, seed=d.seed)
    ds = drop_long_prompts(ds, tokenizer, d.max_prompt_length, report)
    if len(ds) == 0:
        raise ValueError(f"DPO {name}: every pair was dropped ({report.as_dict()['dropped']}); check the data and dpo.max_prompt_length")
    return ds, report


def train_round(params: Params, run_name: str, name: str, force: bool = False,
                stop_after_step: int | None = None) -> dict[str, Any]:
    """Train one round and save model, tokenizer, logs and manifest; returns the manifest fields.

    A round started again after an interruption continues from its last checkpoint in <round>/trainer/ made from
    the same params, starting model and datasets (force=True discards them). A round stopped before its last step
    (SLURM's signal, stop_after_step) returns {"stopped_at": step} and writes no model or manifest."""
    init_path = resolve_init(params, run_name, name)
    out = round_dir(params, run_name, name)
    ckpt_dir = out / CHECKPOINTS
    tokenizer = load_tokenizer(params, init_path)
    ds, report = prepare_round_data(params, run_name, name, init_path, tokenizer)
    trainer = build_trainer(params, init_path, ds, ckpt_dir, tokenizer=tokenizer,
                            callbacks=stage_callbacks(out / PROGRESS, stop_after_step),
                            **trainer_kwargs(params, run_name, f"dpo_{name}"))
    if force and trainer.is_world_process_zero():
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    key = resume_key(params, "dpo", input_fingerprints(out, [init_dir(params, run_name, name)]),
                     round=name, datasets=round_spec(params, name).datasets)
    resumed_from = resume_for(trainer, ckpt_dir, key)
    # progress lines; curves in dpo/<round>/tensorboard/ (a resumed round appends, a new one starts them)
    quiet_trainer(trainer, params, out, f"dpo {name}", fresh=resumed_from is None)
    result = trainer.train(resume_from_checkpoint=resumed_from)
    if trainer.state.global_step < trainer.state.max_steps:
        return {"stopped_at": trainer.state.global_step, "resumed_from": resumed_from}
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    model_dir = out / "model"
    save_final(trainer, params, params.dpo.method, model_dir, trainer.processing_class)
    fields: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        (out / LOG_HISTORY).write_text(json.dumps(trainer.state.log_history, indent=1))
        logs = [h for h in trainer.state.log_history if "loss" in h]
        last = logs[-1] if logs else {}
        fields = dict(
            round=name,
            datasets=round_spec(params, name).datasets,
            onpolicy=is_onpolicy(params, name),
            init_from=init_path,
            reference=init_path,
            init_stage=init_stage(params, name),
            method=params.dpo.method,
            reference_kind="adapters off" if params.dpo.method == "lora" else (
                "precomputed log-probs" if params.dpo.precompute_ref_log_probs else "frozen copy"),
            trainable_parameters=trainable,
            model_dir=str(model_dir),
            train_pairs=len(ds),
            lengths=pair_lengths(ds, tokenizer),
            rows=report.as_dict(),
            world_size=trainer.accelerator.num_processes,
            distributed_type=str(trainer.accelerator.distributed_type.value),
            fsdp=bool(trainer.is_fsdp_enabled),
            reference_wrapped=type(trainer.ref_model).__name__ if trainer.ref_model is not None else None,
            global_steps=trainer.state.global_step,
            resumed_from=resumed_from,
            train_loss=result.training_loss,
            final={k: last.get(k) for k in ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")},
            dpo_config={k: getattr(trainer.args, k) for k in CONFIG_FIELDS},
        )
        write_manifest(out, f"04_dpo/{name}", params, inputs=[init_dir(params, run_name, name)], **fields)
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the round is done: <round>/model is what the next one reads
    trainer.accelerator.wait_for_everyone()
    return fields


# DPOConfig fields that carry params.dpo (recorded in each round's manifest, checked by the tests).
CONFIG_FIELDS = (
    "beta", "optim", "learning_rate", "lr_scheduler_type", "warmup_steps", "weight_decay",
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "num_train_epochs",
    "bf16", "activation_checkpointing", "precompute_ref_log_probs", "seed", "use_liger_kernel", "torch_compile",
)


def main(argv: list[str] | None = None) -> int:
    ap = job_parser(__doc__.splitlines()[0])
    ap.add_argument("--round", required=True, help="round name from params, e.g. round1")
    ap.add_argument("--force", action="store_true", help="discard the round's checkpoints and train from step 0")
    ap.add_argument("--stop-after-step", type=int, default=None, help="stop after this step (tests resuming)")
    args = ap.parse_args(argv)
    fresh_transforms()
    params = load_params(args.size, parse_override_args(args.set))
    train_round(params, args.run_name, args.round, force=args.force, stop_after_step=args.stop_after_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
