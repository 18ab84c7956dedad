"""Round chaining: round N>1 starts from AND references round N-1's saved weights; skip/force; missing rounds."""
from __future__ import annotations

import shutil
import uuid

import pytest

from standins import make_sft_standin
import torch
from safetensors.torch import load_file

from med42_utils.manifest import StageMissingError, read_manifest, write_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir
from med42_utils.stages import stage_model_dir

FAST = {"dpo.max_samples_per_source": 4, "dpo.warmup_ratio": 0.0}


@pytest.fixture(scope="module")
def chained(tiny_model_path):
    """A throwaway run with an SFT stand-in and round 1 trained."""
    from med42_utils.dpo.rounds import run_rounds

    params = load_params("tiny", FAST)
    run = f"pytest-dpo-{uuid.uuid4().hex[:8]}"
    sft = make_sft_standin(params, run, tiny_model_path)
    run_rounds(params, run, round="round1")
    yield params, run, sft
    shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def _weights(model_dir):
    return load_file(str(model_dir / "model.safetensors"))


def _same(state, ref):
    return all(torch.equal(state[k].detach().cpu(), ref[k]) for k in ref)


def test_round1_starts_from_sft(chained):
    params, run, sft = chained
    m = read_manifest(stage_model_dir(params, run, "dpo_round1").parent)
    assert m["init_stage"] == "sft" and m["init_from"] == str(sft) == m["reference"]
    assert m["datasets"] == ["ultrafeedback:train_prefs", "snorkel:train_iteration_1"]
    assert m["train_pairs"] == 8 and m["global_steps"] >= 1
    assert not _same(_weights(stage_model_dir(params, run, "dpo_round1")), _weights(sft))  # DPO moved the weights


def test_round2_policy_and_reference_are_round1_weights(chained, tmp_path):
    from med42_utils.dpo.preference_data import load_preferences
    from med42_utils.dpo.round_models import resolve_init
    from med42_utils.dpo.train import build_trainer

    params, run, sft = chained
    r1 = stage_model_dir(params, run, "dpo_round1")
    init = resolve_init(params, run, "round2")
    assert init == str(r1)
    ds, _ = load_preferences(["snorkel:train_iteration_2"], "bundled", max_samples_per_source=4)
    trainer = build_trainer(params, init, ds, tmp_path)
    w1, w_sft = _weights(r1), _weights(sft)
    policy = trainer.model.state_dict()
    reference = trainer.ref_model.state_dict()
    assert _same(policy, w1) and not _same(policy, w_sft)
    assert _same(reference, w1) and not _same(reference, w_sft)
    assert trainer.ref_model is not trainer.model
    trainer.train()
    # after training the policy has moved, the frozen reference has not
    assert not _same(trainer.model.state_dict(), w1)
    assert _same(trainer.ref_model.state_dict(), w1)


def test_missing_previous_round_is_an_error_naming_it(tiny_model_path):
    from med42_utils.dpo.rounds import run_rounds

    params = load_params("tiny", FAST)
    run = f"pytest-dpo-missing-{uuid.uuid4().hex[:6]}"
    try:
        with pytest.raises(StageMissingError, match="03_sft"):
            run_rounds(params, run, round="round1")
        make_sft_standin(params, run, tiny_model_path)
        with pytest.raises(StageMissingError, match=r"round3 starts from round2's model.*Run round2 first"):
            run_rounds(params, run, round="round3")
        assert not (run_dir("tiny", run) / "dpo" / "round3" / "model").exists()
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_finished_round_is_skipped_unless_forced(chained):
    from med42_utils.dpo.rounds import plan_rounds, run_rounds

    params, run, _ = chained
    model_file = stage_model_dir(params, run, "dpo_round1") / "model.safetensors"
    before = model_file.stat().st_mtime_ns
    plans = run_rounds(params, run, round="round1")
    assert [p.action for p in plans] == ["skip"] and model_file.stat().st_mtime_ns == before
    assert [p.action for p in plan_rounds(params, run)] == ["skip", "train", "train"]
    assert [p.action for p in plan_rounds(params, run, round="round1", force=True)] == ["train"]
    run_rounds(params, run, round="round1", force=True)
    assert model_file.stat().st_mtime_ns != before
    from med42_utils.dpo.rounds import stale_after

    assert stale_after(params, run, "round1", ["round1"]) == []  # no later round has finished in this run
    r2 = stage_model_dir(params, run, "dpo_round2")
    r2.mkdir(parents=True)
    (r2 / "config.json").write_text("{}")
    write_manifest(r2.parent, "04_dpo/round2", params)
    try:  # a finished round 2 is stale after retraining round 1 alone, not when it is retrained too
        assert stale_after(params, run, "round1", ["round1"]) == ["round2"]
        assert stale_after(params, run, "round1", ["round1", "round2"]) == []
    finally:
        shutil.rmtree(r2.parent)


def test_round_by_name_or_number_and_unknown_rounds():
    from med42_utils.dpo.rounds import select_rounds

    p = load_params("tiny")
    assert select_rounds(p, None) == ["round1", "round2", "round3"]
    assert select_rounds(p, "round2") == ["round2"] == select_rounds(p, 2)
    with pytest.raises(ValueError, match="unknown DPO round 'round4'; rounds in params: round1, round2, round3"):
        select_rounds(p, "round4")
    with pytest.raises(ValueError, match="round number 4 is out of range; rounds are 1..3"):
        select_rounds(p, 4)


def test_launched_rounds_get_the_callers_overrides(chained):
    from med42_utils.dpo.rounds import launch_plan

    params, run, _ = chained
    plan = launch_plan(params, run, "round2", {"dpo.beta": 0.2, "dpo.max_samples_per_source": 4, "x": None})
    assert plan.module == "med42_utils.dpo.train"
    assert plan.args[-6:] == ["--round", "round2", "--set", "dpo.beta=0.2", "--set", "dpo.max_samples_per_source=4"]


def test_slurm_rounds_get_one_script_each():
    from med42_utils.dpo.rounds import launch_plan

    p = load_params("8b")
    plans = [launch_plan(p, "plan-test", n) for n in ("round1", "round2")]
    assert plans[0].slurm_path != plans[1].slurm_path
    for plan, n in zip(plans, ("round1", "round2")):
        assert plan.slurm_path.name == f"launch_dpo_{n}.slurm" and plan.commands[-1] == f"sbatch {plan.slurm_path}"
        assert f"--round {n}" in plan.slurm_script and "fsdp_8b.yaml" in plan.slurm_script


def test_precomputed_reference_log_probs_come_from_the_previous_round(chained, tmp_path):
    """dpo.precompute_ref_log_probs: no reference model kept; the data carries round 1's log-probs instead."""
    from med42_utils.dpo.preference_data import load_preferences
    from med42_utils.dpo.round_models import resolve_init
    from med42_utils.dpo.train import build_trainer

    params, run, _ = chained
    pre = load_params("tiny", {**FAST, "dpo.precompute_ref_log_probs": True})
    ds, _ = load_preferences(["snorkel:train_iteration_2"], "bundled", max_samples_per_source=2)
    init = resolve_init(pre, run, "round2")
    t_pre = build_trainer(pre, init, ds, tmp_path / "pre")
    assert t_pre.ref_model is None
    assert {"ref_chosen_logps", "ref_rejected_logps"} <= set(t_pre.train_dataset.column_names)
    # the same numbers as the explicit reference (round 1's weights) gives
    t_ref = build_trainer(params, init, ds, tmp_path / "ref")
    batch = t_ref.data_collator([t_pre.train_dataset[i] for i in range(len(t_pre.train_dataset))])
    chosen, rejected = t_ref.compute_ref_log_probs(t_ref.ref_model, batch)
    assert torch.allclose(chosen.float(), torch.tensor(t_pre.train_dataset["ref_chosen_logps"]), atol=1e-3)
    assert torch.allclose(rejected.float(), torch.tensor(t_pre.train_dataset["ref_rejected_logps"]), atol=1e-3)
    t_pre.train()
    assert t_pre.state.global_step >= 1
