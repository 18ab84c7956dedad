"""The stage table (med42_utils.stages) is the one place stage knowledge lives: its notebooks and modules exist,
its paths are the ones the trainers, checkpoints, preflight and manifests use."""
from __future__ import annotations

import importlib.util

import pytest

from med42_utils import checkpoints, manifest, notebook, preflight
from med42_utils.dpo import train as dpo_train
from med42_utils.dpo.round_models import round_dir
from med42_utils.params import load_params
from med42_utils.paths import repo_root, run_dir
from med42_utils.sft import train as sft_train
from med42_utils.stages import (STAGES, checkpoint_dir, init_stage, model_notebook, stage_dir,
                                stage_model_dir)


def test_every_stage_names_a_notebook_a_module_and_known_inputs():
    for s in STAGES.values():
        assert (repo_root() / "notebooks" / f"{s.notebook}.ipynb").is_file(), s
        assert s.module is None or importlib.util.find_spec(s.module) is not None, s
        assert set(s.inputs) <= set(STAGES), s
    assert notebook.STAGES == {s.notebook: s.folder for s in STAGES.values()}


def test_params_sections_each_stage_depends_on_are_unchanged():
    chain = ("seed", "data", "eval", "model", "packing", "sft", "dpo")
    assert manifest.STAGE_PARAMS == {
        "01_data_curation": ("seed", "data", "eval"), "02_packing": chain[:5], "03_sft": chain[:6],
        "04_dpo": chain, "05_benchmarks": (*chain, "extra_models"),
        "06_elo_judging": (*chain, "judge", "extra_models")}


def test_paths_of_models_checkpoints_and_rounds():
    p = load_params("tiny")
    root = run_dir("tiny", "r")
    assert stage_model_dir(p, "r", "sft") == root / "sft" / "model"
    assert stage_model_dir(p, "r", "dpo_round2") == root / "dpo" / "round2" / "model"
    assert stage_dir(p, "r", "dpo_round2") == round_dir(p, "r", "round2")
    assert checkpoint_dir(p, "r", "sft") == root / "sft" / sft_train.CHECKPOINTS == root / "sft" / "checkpoints"
    assert checkpoint_dir(p, "r", "dpo_round1") == round_dir(p, "r", "round1") / dpo_train.CHECKPOINTS
    assert checkpoints.stage_checkpoint_dirs(p, "r")["dpo_round3"] == root / "dpo" / "round3" / "trainer"
    assert stage_dir(p, "r", "packing") == root / "packing"
    assert init_stage(p, "round1") == "sft" and init_stage(p, "round3") == "dpo_round2"
    assert (model_notebook("sft"), model_notebook("dpo_round2")) == ("03_sft", "04_dpo")


def test_unknown_stages_are_errors_naming_the_valid_ones():
    p = load_params("tiny")
    with pytest.raises(ValueError, match="valid stages: base, sft, dpo_round1"):
        stage_model_dir(p, "r", "dpo_round9")
    with pytest.raises(ValueError, match="unknown stage 'pack'; stages: setup, data, packing"):
        stage_dir(p, "r", "pack")
    with pytest.raises(ValueError, match="unknown DPO round 'round9'"):
        init_stage(p, "round9")


def test_preflight_names_the_notebooks_from_the_table():
    p = load_params("tiny")
    needs = preflight.stage_needs(p, "r", "dpo_round2")
    assert [(what, "04_dpo.ipynb" in how and "-p dpo_round round1" in how) for _, what, how in needs.stages] == [
        ("the dpo_round1 model", True)]
    sft = preflight.stage_needs(p, "r", "sft").stages[0]
    assert "01_data_curation.ipynb" in sft[2] and "02_packing.ipynb" in sft[2]
