"""Where each stage's model lives, and loading models with the params' settings."""
from __future__ import annotations

import warnings
from pathlib import Path

from .extra_models import find_extra, resolve_extra
from . import speed
from .hub import hub_load
from .manifest import StageMissingError, require_stage
from .params import Params
from .stages import model_notebook, stage_model_dir
from .tiny_model import resolve_base_model


def model_stage_dirs(params: Params, run_name: str, stages) -> list[Path]:
    """The stage folders (with their manifests) of trained model stages, e.g. ['sft', 'dpo_round1'];
    'base' has none. A stage that reads these models records their manifests (stage chaining)."""
    return [stage_model_dir(params, run_name, s).parent for s in stages
            if s != "base" and find_extra(params, s) is None]


def resolve_model(params: Params, run_name: str, stage: str) -> str:
    """Path or Hub id for a stage's model ('base', 'sft', 'dpo_round1', ...) or an extra model's name (params
    extra_models); a missing stage names its notebook."""
    extra = find_extra(params, stage)
    if extra is not None:
        return resolve_extra(params, extra)
    if stage == "base":
        return resolve_base_model(params)
    d = stage_model_dir(params, run_name, stage)
    notebook = f"{model_notebook(stage)}.ipynb"
    require_stage(d.parent, notebook)
    if not (d / "config.json").is_file():
        raise StageMissingError(f"{d} holds no saved model (config.json); re-run notebooks/{notebook}")
    return str(d)


def attn_implementation(params: Params, stage: str | None = None) -> str:
    """The attention kernel: for training `stage` ('sft'/'dpo') see speed.training_attention (flash without
    flash-attn -> flex_attention, CPU -> sdpa); for inference (stage None) flex and missing flash -> sdpa."""
    if stage is None:
        impl = speed.inference_attention(params)
        if impl != params.model.attn_implementation:
            why = ("is for packed training batches" if params.model.attn_implementation == "flex_attention"
                   else "needs the flash-attn package, which is not installed")
            warnings.warn(f"{params.model.attn_implementation} {why}: using {impl} attention for inference", stacklevel=2)
        return impl
    return speed.stage_speed(params, stage).attn_implementation


def ensure_pad_token(tokenizer) -> None:
    """Llama 3 Instruct tokenizers ship no pad token: use <|finetune_right_pad_id|> (Llama 3.1, tiny), else eos."""
    if tokenizer.pad_token is None:
        pad = "<|finetune_right_pad_id|>"
        tokenizer.pad_token = pad if pad in tokenizer.get_vocab() else tokenizer.eos_token


def load_tokenizer(params: Params, name_or_path: str):
    """AutoTokenizer with trust_remote_code from params (off unless set) and a pad token."""
    from transformers import AutoTokenizer

    with hub_load("tokenizer", name_or_path, params.size):
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=params.model.trust_remote_code)
    ensure_pad_token(tokenizer)
    return tokenizer


def load_model(params: Params, name_or_path: str, dtype: str | None = None, stage: str | None = None,
               auto_class=None, **model_kwargs):
    """AutoModelForCausalLM (or `auto_class`) with the params' dtype (or `dtype`), attention and trust_remote_code.
    `stage` ('sft'/'dpo') loads it for training with that stage's kernel; None for inference, which goes through
    inference.load_for_inference (it places the model on the job's GPUs)."""
    import torch
    from transformers import AutoModelForCausalLM

    with hub_load("model", name_or_path, params.size):
        return (auto_class or AutoModelForCausalLM).from_pretrained(
            name_or_path,
            dtype=getattr(torch, dtype or params.model.torch_dtype),
            attn_implementation=attn_implementation(params, stage),
            trust_remote_code=params.model.trust_remote_code,
            **model_kwargs,
        )


def load_model_and_tokenizer(params: Params, name_or_path: str, **model_kwargs):
    """load_model + load_tokenizer."""
    return load_model(params, name_or_path, **model_kwargs), load_tokenizer(params, name_or_path)
