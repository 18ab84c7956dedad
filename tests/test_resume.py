"""Interrupted training continues from its last checkpoint on its own (SFT and every DPO round), ends where an
uninterrupted run ends, and the SLURM script asks for a signal before the time limit and requeues the job."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest
import torch
from safetensors.torch import load_file

from med42_utils import checkpoints
from med42_utils.manifest import read_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir
from med42_utils.stages import stage_model_dir

# measured: a resumed run's losses and weights are bit-for-bit those of the uninterrupted run (CPU, one process,
# the same threads; the tests print the largest difference): asserted exactly
LOSS_TOL = 0.0
DPO_FAST = {"dpo.max_samples_per_source": 4, "dpo.warmup_ratio": 0.0, "dpo.save_steps": 3}


def _losses(history):
    return [e["loss"] for e in history if "loss" in e]


def _assert_same_weights(dir_a, dir_b, la, lb, what):
    """Same weights and losses (exactly); prints the largest differences measured (pytest -s shows them)."""
    wa, wb = load_file(str(dir_a / "model.safetensors")), load_file(str(dir_b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    dw = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    dl = max(abs(x - y) for x, y in zip(la, lb))
    print(f"{what}: resumed vs uninterrupted, largest difference: loss {dl:.2e}, weight {dw:.2e}")


# --- which checkpoint a start continues from -------------------------------------------------------------

def _fake_checkpoint(d, step, complete=True):
    c = d / f"checkpoint-{step}"
    c.mkdir(parents=True)
    if complete:
        (c / checkpoints.STATE).write_text(json.dumps({"global_step": step}))
    return c


def test_resume_point_takes_the_last_complete_checkpoint_of_the_same_key(tmp_path, capsys):
    key = {"sft": {"learning_rate": 1e-3}, "inputs": {"../packing": "abc"}}
    assert checkpoints.resume_point(tmp_path, key) is None  # nothing yet: step 0, and the key is recorded
    assert json.loads((tmp_path / checkpoints.RESUME_KEY).read_text()) == key
    _fake_checkpoint(tmp_path, 10)
    _fake_checkpoint(tmp_path, 20)
    _fake_checkpoint(tmp_path, 30, complete=False)  # the job ended while writing it
    assert checkpoints.resume_point(tmp_path, key) == str(tmp_path / "checkpoint-20")
    assert not (tmp_path / "checkpoint-30").exists()
    assert "checkpoint-30 is incomplete" in capsys.readouterr().out


def test_checkpoints_of_other_params_or_inputs_are_discarded_not_continued(tmp_path, capsys):
    key = {"sft": {"learning_rate": 1e-3}, "inputs": {"../packing": "abc"}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 10)
    other = {"sft": {"learning_rate": 1e-3}, "inputs": {"../packing": "re-packed"}}
    assert checkpoints.resume_point(tmp_path, other) is None
    assert not (tmp_path / "checkpoint-10").exists()
    assert "made from other params or inputs" in capsys.readouterr().out


def test_resume_key_ignores_checkpoint_and_logging_knobs_only():
    p = load_params("tiny")
    key = checkpoints.resume_key(p, "sft", {"../packing": "x"})
    same = load_params("tiny", {"sft.save_steps": 7, "sft.save_total_limit": 1, "sft.logging_steps": 1,
                                "sft.stop_signal_seconds": 60})
    assert checkpoints.resume_key(same, "sft", {"../packing": "x"}) == key
    assert checkpoints.resume_key(load_params("tiny", {"sft.learning_rate": 1e-3}), "sft", {"../packing": "x"}) != key
    assert checkpoints.resume_key(p, "sft", {"../packing": "y"}) != key


# --- SFT and DPO, in process ----------------------------------------------------------------------------

@pytest.fixture
def packed_run():
    from test_sft import _packed_run

    names = []

    def make():
        names.append(_packed_run(f"pytest-resume-{uuid.uuid4().hex[:8]}"))
        return names[-1]

    yield make
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


def _signal_at(step: int):
    """Stands in for SLURM's --signal: the process sends itself SIGUSR1 at the end of `step`."""
    from transformers import TrainerCallback

    class SignalAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                os.kill(os.getpid(), signal.SIGUSR1)

    return SignalAt()


@pytest.mark.slow
def test_sft_saves_and_stops_on_sigusr1_then_a_rerun_finishes_like_an_uninterrupted_run(packed_run, monkeypatch,
                                                                                        tmp_path):
    from med42_utils.sft.train import main

    a, b = packed_run(), packed_run()
    s = ["--set", "sft.max_steps=6", "--set", "sft.save_steps=100", "--set", "sft.logging_steps=1"]
    assert main(["--size", "tiny", "--run-name", a, *s]) == 0
    requeue = tmp_path / "job.requeue"
    monkeypatch.setenv(checkpoints.REQUEUE_FILE_ENV, str(requeue))
    real = checkpoints.training_callbacks
    monkeypatch.setattr("med42_utils.training.training_callbacks", lambda: [_signal_at(4), *real()])
    assert main(["--size", "tiny", "--run-name", b, *s]) == 0
    bdir = run_dir("tiny", b) / "sft"
    assert not (bdir / "manifest.json").exists(), "stopped on the signal: not finished"
    assert [c.name for c in checkpoints.checkpoints(bdir / "checkpoints")] == ["checkpoint-4"]  # not a save_steps one
    assert json.loads(requeue.read_text())["step"] == 4, "the marker that makes the SLURM script requeue the job"
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None), "the handler is restored after training"

    monkeypatch.setattr("med42_utils.training.training_callbacks", real)
    requeue.unlink()
    assert main(["--size", "tiny", "--run-name", b, *s]) == 0  # no flag: it continues from checkpoint-4
    ma = json.loads((run_dir("tiny", a) / "sft" / "manifest.json").read_text())
    mb = json.loads((bdir / "manifest.json").read_text())
    assert mb["resumed_from"].endswith("checkpoint-4") and mb["global_step"] == ma["global_step"] == 6
    assert _losses(mb["log_history"]) == pytest.approx(_losses(ma["log_history"]), abs=LOSS_TOL)
    assert mb["last_loss"] == pytest.approx(ma["last_loss"], abs=LOSS_TOL)
    _assert_same_weights(run_dir("tiny", a) / "sft" / "model", bdir / "model", _losses(ma["log_history"]),
                         _losses(mb["log_history"]), "SFT")
    assert not requeue.exists(), "a run that finishes asks for no requeue"


@pytest.fixture
def two_dpo_runs(tiny_model_path):
    from test_dpo_rounds import make_sft_standin

    params = load_params("tiny", DPO_FAST)
    runs = [f"pytest-resume-dpo-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for r in runs:
        make_sft_standin(params, r, tiny_model_path)
    yield params, runs
    for r in runs:
        shutil.rmtree(run_dir("tiny", r), ignore_errors=True)


@pytest.mark.slow
def test_dpo_round_interrupted_then_rerun_ends_like_an_uninterrupted_round(two_dpo_runs):
    from med42_utils.dpo.round_models import round_dir
    from med42_utils.dpo.rounds import round_done, run_rounds
    from med42_utils.dpo.train import CHECKPOINTS, train_round

    params, (a, b) = two_dpo_runs
    run_rounds(params, a, round="round1")
    stopped = train_round(params, b, "round1", stop_after_step=6)
    assert stopped == {"stopped_at": 6, "resumed_from": None}
    assert not round_done(params, b, "round1")
    assert [c.name for c in checkpoints.checkpoints(round_dir(params, b, "round1") / CHECKPOINTS)] == \
        ["checkpoint-3", "checkpoint-6"]
    run_rounds(params, b, round="round1")  # as a re-run of the notebook: no flag
    ma = read_manifest(round_dir(params, a, "round1"))
    mb = read_manifest(round_dir(params, b, "round1"))
    assert ma["resumed_from"] is None and mb["resumed_from"].endswith("checkpoint-6")
    assert mb["global_steps"] == ma["global_steps"] == 12
    assert mb["final"]["loss"] == pytest.approx(ma["final"]["loss"], abs=LOSS_TOL)
    la = _losses(json.loads((round_dir(params, a, "round1") / "log_history.json").read_text()))
    lb = _losses(json.loads((round_dir(params, b, "round1") / "log_history.json").read_text()))
    assert lb == pytest.approx(la, abs=LOSS_TOL) and len(la) == 12
    _assert_same_weights(stage_model_dir(params, a, "dpo_round1"), stage_model_dir(params, b, "dpo_round1"), la, lb,
                         "DPO round1")
    assert not (round_dir(params, b, "round1") / CHECKPOINTS).exists(), "a finished round deletes its checkpoints"
    run_rounds(params, b, round="round1")  # finished: skipped, not trained again
    assert read_manifest(round_dir(params, b, "round1"))["run_id"] == mb["run_id"]


# --- the SLURM script -------------------------------------------------------------------------------------

def test_training_scripts_are_requeueable_and_signalled_before_the_time_limit():
    from med42_utils.dpo.rounds import launch_plan
    from med42_utils.launch import plan_job
    from med42_utils.sft.stage import sft_plan

    p = load_params("70b")
    sft = sft_plan(p, "plan-only").slurm_script
    dpo = launch_plan(p, "plan-only", "round2").slurm_script
    job = plan_job(p, "eval", "plan-only", run_dir("70b", "plan-only") / "eval", "med42_utils.benchmarks.job").slurm_script
    for text, seconds in ((sft, p.sft.stop_signal_seconds), (dpo, p.dpo.stop_signal_seconds)):
        assert "#SBATCH --requeue\n" in text and f"#SBATCH --signal=B:USR1@{seconds}\n" in text
        assert 'scontrol requeue "$SLURM_JOB_ID"' in text and 'touch "$MED42_STOP_FILE"\' USR1' in text
        subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # the script parses
    # 05's job keeps each finished model: it requeues itself at the signal, with no stop file to wait for
    assert "#SBATCH --requeue\n" in job and "#SBATCH --signal=B:USR1@300\n" in job and "MED42_STOP_FILE" not in job
    assert 'scontrol requeue "$SLURM_JOB_ID"\' USR1' in job
    subprocess.run(["bash", "-n"], input=job, text=True, check=True)


def test_dry_run_plan_shows_the_checkpoint_interval_and_disk():
    from med42_utils.launch import render_plan
    from med42_utils.sft.stage import sft_plan

    plan = sft_plan(load_params("70b"), "plan-only")
    text = render_plan(plan)
    line = next(n for n in text.splitlines() if n.startswith("- checkpoints:"))
    # the plan's pace includes communication and checkpoint writes (cluster_plan): about 92 min per 250 steps
    minutes = plan.est_hours / 3549 * 250 * 60
    assert f"every 250 steps, about {minutes:,.0f} min" in line and "the last 2 kept" in line
    assert "846.64 GB each" in line and "1.69 TB on disk at most" in line  # 70.55e9 x (4 + 8) bytes


def test_checkpoints_cli_lists_and_discards(tmp_path, capsys):
    p = load_params("tiny")
    run = f"pytest-resume-cli-{uuid.uuid4().hex[:8]}"
    try:
        d = checkpoints.stage_checkpoint_dirs(p, run)["sft"]
        _fake_checkpoint(d, 10)
        assert checkpoints.main(["--size", "tiny", "--run-name", run, "--stage", "sft"]) == 0
        assert "checkpoint-10" in capsys.readouterr().out
        assert checkpoints.main(["--size", "tiny", "--run-name", run, "--discard"]) == 0
        assert not d.exists() and "sft: discarded" in capsys.readouterr().out
        with pytest.raises(SystemExit):
            checkpoints.main(["--size", "tiny", "--run-name", run, "--stage", "dpo_round9"])
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_resume_takes_the_highest_step_not_the_last_name(tmp_path):
    """checkpoint-10 is after checkpoint-5 (and checkpoint-100 after checkpoint-99), though '5' sorts after '10'
    as text."""
    key = {"sft": {"learning_rate": 1e-3}}
    checkpoints.resume_point(tmp_path, key)
    for step in (5, 10):
        _fake_checkpoint(tmp_path, step)
    assert [p.name for p in checkpoints.checkpoints(tmp_path)] == ["checkpoint-5", "checkpoint-10"]
    assert checkpoints.resume_point(tmp_path, key) == str(tmp_path / "checkpoint-10")
    _fake_checkpoint(tmp_path, 99)
    _fake_checkpoint(tmp_path, 100, complete=False)  # incomplete: the one before it by step is 99
    assert checkpoints.resume_point(tmp_path, key) == str(tmp_path / "checkpoint-99")
    assert not (tmp_path / "checkpoint-100").exists() and (tmp_path / "checkpoint-10").is_dir()
