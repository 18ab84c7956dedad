"""docs/teaching.md's exercises: each turns the knob its command turns, through the same code path, and checks the
outcome the doc states. They reuse the session's tiny run (notebook_run); the ones that retrain work on a copy."""
from __future__ import annotations

import shutil

import pytest

from med42_utils.paths import repo_root, run_dir


def _copy_run(src, name: str, stages: list[str]):
    dst = run_dir("tiny", name)
    shutil.rmtree(dst, ignore_errors=True)
    for s in stages:
        shutil.copytree(src / s, dst / s)
    return dst


def test_every_exercise_in_the_doc_has_its_test():
    doc = (repo_root() / "docs" / "teaching.md").read_text()
    named = [line.split("Test: `")[1].split("`")[0] for line in doc.replace("\n   ", " ").splitlines() if "Test: `" in line]
    assert len(named) >= 6 and all(n in globals() for n in named), named


@pytest.mark.slow
def test_exercise_shorter_chunks(notebook_run):
    from datasets import load_from_disk

    from med42_utils.packing import pack

    _, src = notebook_run
    tok = load_from_disk(str(src / "packing" / "tokenized"))
    chunks, fill = {}, {}
    for L in (256, 128):
        for s in ("wrapped", "bfd"):
            packed = pack(tok, L, s)
            chunks[L, s] = len(packed)
            fill[L, s] = sum(len(c["input_ids"]) for c in packed) / (len(packed) * L)
    assert all(chunks[128, s] > chunks[256, s] for s in ("wrapped", "bfd")), chunks
    assert fill[128, "wrapped"] >= fill[128, "bfd"], fill


@pytest.mark.slow
def test_exercise_fewer_sft_steps(notebook_run):
    from med42_utils.manifest import read_manifest
    from med42_utils.notebook import start
    from med42_utils.sft.stage import run_sft, sft_plan

    _, src = notebook_run
    name = "pytest-exercise-sft"
    _copy_run(src, name, ["data", "packing"])
    overrides = {"sft.max_steps": 20}
    run = start("tiny", name, overrides)
    run_sft(sft_plan(run.params, name, overrides), run.params, name)
    short, full = read_manifest(run.stage_dir("03_sft")), read_manifest(src / "sft")
    assert short["global_step"] == 20 < full["global_step"]
    assert short["last_loss"] > full["last_loss"] + 0.3, (short["last_loss"], full["last_loss"])


@pytest.mark.slow
def test_exercise_dpo_beta(notebook_run):
    import math

    from med42_utils.dpo.rounds import compare_rounds, round_curves, run_rounds
    from med42_utils.notebook import start
    from med42_utils.params import load_params

    _, src = notebook_run
    name = "pytest-exercise-beta"
    _copy_run(src, name, ["data", "packing", "sft"])
    overrides = {"dpo.beta": 0.5}
    run = start("tiny", name, overrides)
    assert run.params.dpo.beta != load_params("tiny").dpo.beta
    run_rounds(run.params, name, round=1, overrides=overrides)
    curves, _ = round_curves(run.params, name)
    assert abs(float(curves["round1"]["loss"].iloc[0]) - math.log(2)) < 0.02
    ours = compare_rounds(run.params, name).loc["round1", "margin (last-epoch mean)"]
    theirs = compare_rounds(load_params("tiny"), src.name).loc["round1", "margin (last-epoch mean)"]
    assert ours > theirs, (ours, theirs)


def test_exercise_position_bias():
    from med42_utils.judging.simulate import position_bias_study

    truth = {f"model {i + 1}": 1100.0 - 100.0 * i for i in range(4)}
    studies = {b: position_bias_study(truth, n_questions=200, first_position_bonus=b, seed=42) for b in (100.0, 300.0)}
    assert studies[300.0]["first_position_win_share"] > studies[100.0]["first_position_win_share"]
    t = studies[300.0]["table"]
    assert (t["both orders"] - t["true"]).abs().max() < (t.iloc[:, 2] - t["true"]).abs().max()


def test_exercise_question_effect():
    from med42_utils.judging.simulate import coverage_table, recovery_study

    truth = {f"model {i + 1}": 1100.0 - 100.0 * i for i in range(4)}
    study = recovery_study(truth, n_questions=100, reps=20, rounds=100, seed=42, question_sd=600.0)
    cov = coverage_table(study)["coverage"].iloc[0]
    assert cov["by battle"] < cov["by question"], cov


@pytest.mark.slow
def test_exercise_judge_swap(notebook_run):
    from med42_utils.judging.report import judge_swap
    from med42_utils.manifest import read_manifest

    run_name, src = notebook_run
    swap = judge_swap("tiny", run_name)
    assert [set(b.index) for b in swap["boards"].values()][0] == [set(b.index) for b in swap["boards"].values()][1]
    assert swap["kappa"] == pytest.approx(read_manifest(src / "judge")["second_judge"]["kappa"])
    assert swap["kappa"] < 0.2
