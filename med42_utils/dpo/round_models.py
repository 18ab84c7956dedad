"""Where a DPO round's model lives and which model it starts from (and references): paths and the starting
model's resolution, shared by the trainer (dpo.train), the on-policy generation job (dpo.onpolicy_job) and the
rounds' orchestration (dpo.rounds), none of which needs the others to know them."""
from __future__ import annotations

from pathlib import Path

from ..manifest import StageMissingError
from ..models import resolve_model
from ..params import Params
from ..stages import init_stage, stage_model_dir


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
