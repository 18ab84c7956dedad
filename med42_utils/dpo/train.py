"""Train one DPO round with TRL's DPOTrainer and the params' Table 3 settings.

Run in-process (size tiny) or once per process under `accelerate launch` (FSDP):

    python -m med42_utils.dpo.train --size tiny --run-name demo --round round1 [--set dpo.beta=0.2 ...]

Round 1 starts from the SFT model; round N>1 starts from round N-1's saved model, which is also its
frozen reference. Writes outputs/<size>/<run>/dpo/<round>/model/ (model + tokenizer),
log_history.json and manifest.json. Checkpoints go to <round>/trainer/ every dpo.save_steps; an
interrupted round continues from the last one when started again (med42_utils.checkpoints).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any


from ..checkpoints import checkpoint_args, resume_for, resume_key, training_callbacks
from ..fsdp_cpu import enable_cpu_fsdp
from ..cli import parse_override_args
from ..notebook import fresh_transforms
from ..quiet import without_model_card
from ..manifest import StageMissingError, input_fingerprints, write_manifest
from ..models import load_model, load_tokenizer, resolve_model
from ..params import Params, load_params
from ..progress import PROGRESS, progress_callback
from ..speed import require_packages, stage_speed
from ..stages import STAGES, init_stage, round_names, round_spec, stage_model_dir
from ..training_logs import quiet_trainer, trainer_kwargs
from .lengths import pair_lengths
from .preference_data import drop_long_prompts, load_preferences

LOG_HISTORY = "log_history.json"
CHECKPOINTS = Path(STAGES["dpo"].checkpoints).name  # <round>/trainer/checkpoint-N


def round_dir(params: Params, run_name: str, name: str) -> Path:
    return stage_model_dir(params, run_name, f"dpo_{name}").parent


def init_dir(params: Params, run_name: str, name: str) -> Path:
    """The stage folder (with its manifest) of the model a round starts from: sft/ or dpo/<previous round>/."""
    return stage_model_dir(params, run_name, init_stage(params, name)).parent


def resolve_init(params: Params, run_name: str, name: str) -> str:
    """Path of the model a round starts from; a missing previous round is an error naming it."""
    stage = init_stage(params, name)
    try:
        return resolve_model(params, run_name, stage)
    except StageMissingError as e:
        if stage == "sft":
            raise StageMissingError(f"DPO {name} starts from the SFT model, which is missing: {e}") from None
        prev = stage.removeprefix("dpo_")
        raise StageMissingError(
            f"DPO {name} starts from {prev}'s model, and {prev} has not finished for run '{run_name}' "
            f"({e}). Run {prev} first: notebooks/04_dpo.ipynb with round='{prev}' (or round=None for all), "
            f"or python -m med42_utils.dpo.train --size {params.size} --run-name {run_name} --round {prev}"
        ) from None


def build_dpo_config(params: Params, output_dir: str | Path, **extra: Any):
    """TRL DPOConfig from params.dpo (Table 3 for 8b/70b): every training field is taken from params, plus the
    speed switches this machine can use (med42_utils.speed). TRL 1.16 has no Liger fused DPO loss any more
    (its own fused LM head computes the log-probs in tiles); use_liger_kernel patches the layers' kernels."""
    from trl import DPOConfig

    d = params.dpo
    kwargs = dict(
        output_dir=str(output_dir),
        beta=d.beta,
        loss_type=["sigmoid"],  # the DPO loss of Rafailov et al.
        optim=d.optim,
        learning_rate=d.learning_rate,
        lr_scheduler_type=d.lr_scheduler_type,
        warmup_steps=d.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio of the total steps
        weight_decay=d.weight_decay,
        per_device_train_batch_size=d.micro_batch_size,
        gradient_accumulation_steps=d.gradient_accumulation_steps,
        max_length=d.max_length,
        num_train_epochs=d.num_train_epochs,
        bf16=d.bf16,
        activation_checkpointing=d.gradient_checkpointing,  # transformers 5 name of gradient_checkpointing
        precompute_ref_log_probs=d.precompute_ref_log_probs,
        logging_steps=d.logging_steps,
        seed=d.seed,
        data_seed=d.seed,
        use_cpu=d.hardware.accelerator == "cpu",
        **checkpoint_args(d),  # checkpoints in <round>/trainer; the final model in <round>/model
        report_to="none",
        trust_remote_code=params.model.trust_remote_code,
        disable_tqdm=True,
        **stage_speed(params, "dpo").config_kwargs(),
    )
    kwargs.update(extra)
    return DPOConfig(**kwargs)


def build_trainer(params: Params, init_path: str, train_dataset, output_dir: str | Path, tokenizer=None,
                  **config_extra):
    """DPOTrainer whose policy and frozen reference both start from init_path.

    method full: the reference is a second copy loaded from init_path.
    method lora: one model; TRL trains LoRA adapters on it (peft_config) and, with ref_model=None, computes the
    reference log-probs with the adapters switched off, i.e. init_path itself, without loading it twice.
    """
    from trl import DPOTrainer

    if params.dpo.hardware.accelerator == "cpu" and enable_cpu_fsdp():
        config_extra.setdefault("accelerator_config", {"use_configured_state": True})
    require_packages(params, "dpo")
    tokenizer = tokenizer or load_tokenizer(params, init_path)
    model = load_model(params, init_path, stage="dpo")
    args = build_dpo_config(params, output_dir, **config_extra)
    ref_model = peft_config = None
    if params.dpo.method == "lora":
        from ..sft.train import lora_config

        peft_config = lora_config(params, "dpo")
    elif not params.dpo.precompute_ref_log_probs:
        ref_model = load_model(params, init_path, stage="dpo")
    # with precompute_ref_log_probs, TRL scores the data with the untouched policy (= init_path) before training
    trainer = DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_dataset,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=training_callbacks())
    return without_model_card(trainer)  # no TRL draft README.md linking to "[None]"


def save_round_model(trainer, params: Params, model_dir: Path) -> None:
    """A plain model the next round (and 05/06) can load: LoRA adapters are saved beside it, then merged in."""
    if params.dpo.method == "lora":
        if trainer.is_world_process_zero():
            trainer.model.save_pretrained(str(model_dir.parent / "adapter"))
            trainer.accelerator.unwrap_model(trainer.model).merge_and_unload().save_pretrained(str(model_dir))
        return
    if trainer.is_fsdp_enabled:  # one consolidated checkpoint that from_pretrained can read
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(model_dir))


def prepare_round_data(params: Params, run_name: str, name: str, init_path: str, tokenizer):
    """The round's pairs (from its datasets, or on-policy) after dropping long prompts -> (Dataset, DropReport)."""
    d = params.dpo
    spec = round_spec(params, name)
    if d.onpolicy.enabled and name in d.onpolicy.rounds:
        from .onpolicy import onpolicy_pairs
        from .scorers import make_scorer

        ds, report = onpolicy_pairs(params, init_path, spec.datasets, make_scorer(params))
    else:
        ds, report = load_preferences(
            spec.datasets, d.data_source, d.data_dir, d.max_samples_per_source, seed=d.seed
        )
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
                            **trainer_kwargs(params, run_name, f"dpo_{name}"))
    trainer.add_callback(progress_callback(out / PROGRESS))
    if stop_after_step:
        from ..sft.train import _StopAfter

        trainer.add_callback(_StopAfter(stop_after_step))
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
    save_round_model(trainer, params, model_dir)
    fields: dict[str, Any] = {}
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(str(model_dir))
        (out / LOG_HISTORY).write_text(json.dumps(trainer.state.log_history, indent=1))
        logs = [h for h in trainer.state.log_history if "loss" in h]
        last = logs[-1] if logs else {}
        fields = dict(
            round=name,
            datasets=round_spec(params, name).datasets,
            onpolicy=params.dpo.onpolicy.enabled and name in params.dpo.onpolicy.rounds,
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", required=True)
    ap.add_argument("--run-name", required=True)
    ap.add_argument("--round", required=True, help="round name from params, e.g. round1")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="params override, repeatable")
    ap.add_argument("--force", action="store_true", help="discard the round's checkpoints and train from step 0")
    ap.add_argument("--stop-after-step", type=int, default=None, help="stop after this step (tests resuming)")
    args = ap.parse_args(argv)
    fresh_transforms()
    params = load_params(args.size, parse_override_args(args.set))
    train_round(params, args.run_name, args.round, force=args.force, stop_after_step=args.stop_after_step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
