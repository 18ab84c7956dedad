"""Manifests: a finished stage stays done when unrelated params change, and is redone when its own change."""
from __future__ import annotations

from med42_utils.manifest import STAGE_PARAMS, read_manifest, stage_done, write_manifest
from med42_utils.params import load_params
from med42_utils.params.schema import Params


def test_stage_done_compares_only_the_sections_a_stage_depends_on(tmp_path):
    p = load_params("tiny")
    write_manifest(tmp_path / "sft", "03_sft", p, global_step=30)
    assert stage_done(tmp_path / "sft", p)
    assert stage_done(tmp_path / "sft", load_params("tiny", {"judge.num_questions": 3}))  # downstream only
    # eval feeds 01's decontamination, so it is upstream of every training stage (conservative: any eval key)
    assert not stage_done(tmp_path / "sft", load_params("tiny", {"eval.limit": 2}))
    assert not stage_done(tmp_path / "sft", load_params("tiny", {"sft.max_steps": 7}))
    assert not stage_done(tmp_path / "sft", load_params("tiny", {"data.seed": 1}))  # upstream changed
    assert set(read_manifest(tmp_path / "sft")["section_hashes"]) == set(Params.model_fields)


def test_dpo_round_manifests_follow_04(tmp_path):
    p = load_params("tiny")
    write_manifest(tmp_path / "round2", "04_dpo/round2", p)
    assert stage_done(tmp_path / "round2", load_params("tiny", {"judge.elo.k": 8.0}))
    assert not stage_done(tmp_path / "round2", load_params("tiny", {"dpo.beta": 0.2}))


def test_unlisted_stage_compares_everything(tmp_path):
    p = load_params("tiny")
    write_manifest(tmp_path / "setup", "00_setup", p)
    assert "00_setup" not in STAGE_PARAMS
    assert not stage_done(tmp_path / "setup", load_params("tiny", {"judge.num_questions": 3}))


def test_every_stage_section_exists():
    for sections in STAGE_PARAMS.values():
        assert set(sections) <= set(Params.model_fields)
