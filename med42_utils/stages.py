"""The stages of a run, in one table: which notebook makes each, its folder under outputs/<size>/<run>/, where its
model and checkpoints live, the module that runs it, what it reads and the params sections its outputs depend on.
Every other module (models, checkpoints, launch, preflight, manifest, runner, notebook) reads it from here, so
nothing imports a trainer to learn a path. DPO's per-round paths take the round: dpo/<round>/model."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .params import Params
from .paths import run_dir


@dataclass(frozen=True)
class Stage:
    name: str
    notebook: str                 # notebooks/<notebook>.ipynb makes it
    folder: str                   # its folder (with manifest.json) under the run's folder
    module: str | None = None     # the module that runs its GPU work (python -m ...), where it has one
    inputs: tuple[str, ...] = ()  # the stages whose outputs it reads
    model: str | None = None      # its final model, relative to the run's folder ({round}: a DPO round)
    checkpoints: str | None = None
    params: tuple[str, ...] = ()  # the params sections its outputs depend on (its own and its upstream stages')


_CHAIN = ("seed", "data", "eval", "model", "packing", "sft", "dpo")
STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("setup", "00_setup", "setup"),
    Stage("data", "01_data_curation", "data", params=("seed", "data", "eval")),  # eval: what it decontaminates against
    Stage("packing", "02_packing", "packing", inputs=("data",), params=_CHAIN[:5]),
    Stage("sft", "03_sft", "sft", "med42_utils.sft.train", ("packing",), "sft/model", "sft/checkpoints", _CHAIN[:6]),
    Stage("dpo", "04_dpo", "dpo", "med42_utils.dpo.train", ("sft",), "dpo/{round}/model", "dpo/{round}/trainer",
          _CHAIN),
    Stage("eval", "05_benchmarks", "eval", "med42_utils.benchmarks.job", ("sft", "dpo"),
          params=(*_CHAIN, "extra_models")),
    Stage("judge", "06_elo_judging", "judge", "med42_utils.judging.job", ("sft", "dpo"),
          params=(*_CHAIN, "judge", "extra_models")),
)}
BY_NOTEBOOK: dict[str, Stage] = {s.notebook: s for s in STAGES.values()}
_DPO = re.compile(r"^dpo_(?P<round>.+)$")


def round_names(params: Params) -> list[str]:
    return [r.name for r in params.dpo.rounds]


def round_spec(params: Params, name: str):
    for r in params.dpo.rounds:
        if r.name == name:
            return r
    raise ValueError(f"unknown DPO round '{name}'; rounds in params: {', '.join(round_names(params))}")


def init_stage(params: Params, name: str) -> str:
    """The model stage a round starts from (and uses as its frozen reference): 'sft' or 'dpo_<previous round>'."""
    names = round_names(params)
    round_spec(params, name)
    i = names.index(name)
    return "sft" if i == 0 else f"dpo_{names[i - 1]}"


def stage_dir(params: Params, run_name: str, stage: str) -> Path:
    """The folder (with its manifest) of a stage ('data', ..., 'judge') or model stage ('sft', 'dpo_round1')."""
    if _DPO.match(stage):
        return stage_model_dir(params, run_name, stage).parent
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}'; stages: {', '.join(STAGES)}")
    return run_dir(params.size, run_name) / STAGES[stage].folder


def _model_stage(params: Params, stage: str) -> tuple[Stage, str | None]:
    """('sft' -> the sft Stage, None), ('dpo_round1' -> the dpo Stage, 'round1'); anything else is an error."""
    if stage == "sft":
        return STAGES["sft"], None
    m = _DPO.match(stage)
    rounds = round_names(params)
    if m and m["round"] in rounds:
        return STAGES["dpo"], m["round"]
    valid = ["base", "sft", *(f"dpo_{r}" for r in rounds)]
    raise ValueError(f"unknown model stage '{stage}'; valid stages: {', '.join(valid)}")


def stage_model_dir(params: Params, run_name: str, stage: str) -> Path:
    """Folder of a trained stage's final model: sft -> <run>/sft/model, dpo_roundN -> <run>/dpo/roundN/model."""
    s, rnd = _model_stage(params, stage)
    return run_dir(params.size, run_name) / s.model.format(round=rnd)


def checkpoint_dir(params: Params, run_name: str, stage: str) -> Path:
    """Where a training stage keeps its checkpoints: sft -> <run>/sft/checkpoints, dpo_roundN -> .../trainer."""
    s, rnd = _model_stage(params, stage)
    return run_dir(params.size, run_name) / s.checkpoints.format(round=rnd)


def model_notebook(stage: str) -> str:
    """The notebook that trains a model stage ('sft' -> '03_sft', 'dpo_<round>' -> '04_dpo')."""
    return STAGES["sft" if stage == "sft" else "dpo"].notebook
