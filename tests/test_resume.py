"""Interrupted training continues from its last checkpoint on its own (SFT and every DPO round), ends where an
uninterrupted run ends, and the SLURM script asks for a signal before the time limit and requeues the job."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import time
import types
import uuid
from contextlib import redirect_stdout

import pytest
import torch
from safetensors.torch import load_file

from med42_utils import checkpoints
from med42_utils.manifest import read_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir, shown
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


# --- resume_point in detail: what it says, keeps and deletes ----------------------------------------------

class _FlushedOut(io.StringIO):
    """sys.stdout that keeps what had been flushed at each flush: a SLURM log is a file, block-buffered, and a job
    killed at its time limit loses what was never flushed."""

    def __init__(self):
        super().__init__()
        self.flushed = ""

    def flush(self):
        self.flushed = self.getvalue()


@pytest.fixture
def flushed_out():
    """Stands in for sys.stdout inside `with redirect_stdout(flushed_out):`."""
    return _FlushedOut()


def test_resume_point_says_which_checkpoint_and_step_it_resumes_from_flushed(tmp_path, flushed_out):
    key = {"sft": {"learning_rate": 1e-3}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 10)
    c = _fake_checkpoint(tmp_path, 20)
    (c / checkpoints.STATE).write_text(json.dumps({"global_step": 20, "max_steps": 60}))
    with redirect_stdout(flushed_out):
        assert checkpoints.resume_point(tmp_path, key) == str(c)
    assert flushed_out.flushed == f"resuming from {c} (step 20)\n"


def test_checkpoints_without_a_key_record_or_of_another_key_are_discarded_with_the_reason_flushed(tmp_path,
                                                                                                flushed_out):
    _fake_checkpoint(tmp_path, 10)  # e.g. made by an older version, or the key file deleted by hand
    with redirect_stdout(flushed_out):
        assert checkpoints.resume_point(tmp_path, {"sft": {}}) is None
    assert not (tmp_path / "checkpoint-10").exists()
    assert flushed_out.flushed == (f"discarding the checkpoints in {shown(tmp_path)} (no record of what they were "
                                   "made from); training starts at step 0\n")
    checkpoints.resume_point(tmp_path, {"sft": {}})
    _fake_checkpoint(tmp_path, 10)
    with redirect_stdout(flushed_out):
        assert checkpoints.resume_point(tmp_path, {"sft": {"learning_rate": 1}}) is None
    assert flushed_out.flushed.endswith(f"discarding the checkpoints in {shown(tmp_path)} (made from other params "
                                        "or inputs); training starts at step 0\n")


def test_an_incomplete_checkpoint_is_reported_flushed_and_not_used(tmp_path, flushed_out):
    key = {"sft": {}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 20, complete=False)
    with redirect_stdout(flushed_out):
        assert checkpoints.resume_point(tmp_path, key) is None
    assert flushed_out.flushed == "checkpoint-20 is incomplete (the job ended while saving it): not used\n"


def test_a_checkpoint_marked_incomplete_by_transformers_is_not_resumed(tmp_path):
    """transformers' JIT checkpointing leaves checkpoint-is-incomplete.txt in a folder it was still writing,
    trainer_state.json included or not."""
    key = {"sft": {}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 10)
    (_fake_checkpoint(tmp_path, 20) / "checkpoint-is-incomplete.txt").write_text("")
    assert checkpoints.resume_point(tmp_path, key) == str(tmp_path / "checkpoint-10")
    assert not (tmp_path / "checkpoint-20").exists()


def test_a_checkpoint_that_cannot_be_deleted_does_not_stop_the_start(tmp_path):
    """rmtree refuses a symlink (here: a checkpoint folder linked from elsewhere): the stage still starts, at step 0
    for a key that does not match, from the one before for an incomplete last one."""
    elsewhere = tmp_path / "elsewhere"
    d, d2 = tmp_path / "ckpts", tmp_path / "ckpts2"
    _fake_checkpoint(elsewhere, 10)
    d.mkdir()
    (d / "checkpoint-10").symlink_to(elsewhere / "checkpoint-10")
    assert checkpoints.resume_point(d, {"sft": {"learning_rate": 1}}) is None  # no key record: discarded
    key = {"sft": {}}
    checkpoints.resume_point(d2, key)
    _fake_checkpoint(d2, 5)
    _fake_checkpoint(elsewhere, 20, complete=False)
    (d2 / "checkpoint-20").symlink_to(elsewhere / "checkpoint-20")
    assert checkpoints.resume_point(d2, key) == str(d2 / "checkpoint-5")


def test_resume_point_creates_a_missing_checkpoint_folder_with_its_parents(tmp_path):
    d = tmp_path / "run" / "dpo" / "round1" / "trainer"
    assert checkpoints.resume_point(d, {"dpo": {}}) is None
    assert json.loads((d / checkpoints.RESUME_KEY).read_text()) == {"dpo": {}}


def test_only_transformers_checkpoint_names_are_checkpoints(tmp_path):
    """checkpoint-N folders only: a file of that name, or a copy named checkpoint-5-old or checkpoint-old-5, is
    neither resumed nor deleted."""
    key = {"sft": {}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 7)
    (tmp_path / "checkpoint-9").write_text("not a folder")
    for name in ("checkpoint-50-old", "checkpoint-old-50"):
        (tmp_path / name).mkdir()
        (tmp_path / name / checkpoints.STATE).write_text(json.dumps({"global_step": 50}))
    assert [p.name for p in checkpoints.checkpoints(tmp_path)] == ["checkpoint-7"]
    assert checkpoints.resume_point(tmp_path, key) == str(tmp_path / "checkpoint-7")
    assert checkpoints.resume_point(tmp_path, {"sft": {"other": 1}}) is None
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint-9", "checkpoint-50-old", "checkpoint-old-50",
                                                     checkpoints.RESUME_KEY}


def test_a_process_other_than_the_main_one_only_reads(tmp_path, capsys):
    key = {"sft": {}}
    _fake_checkpoint(tmp_path, 10)
    _fake_checkpoint(tmp_path, 20, complete=False)
    (tmp_path / checkpoints.RESUME_KEY).write_text(json.dumps(key))
    assert checkpoints.resume_point(tmp_path, key, main_process=False) == str(tmp_path / "checkpoint-10")
    assert (tmp_path / "checkpoint-20").is_dir() and capsys.readouterr().out == ""
    assert checkpoints.resume_point(tmp_path, {"sft": {"x": 1}}, main_process=False) is None
    assert (tmp_path / "checkpoint-10").is_dir() and json.loads((tmp_path / checkpoints.RESUME_KEY).read_text()) == key
    assert checkpoints.resume_point(tmp_path / "new", key, main_process=False) is None
    assert not (tmp_path / "new").exists() and capsys.readouterr().out == ""


class _Accelerator:
    """The part of accelerate's Accelerator resume_for uses; wait_for_everyone runs `at_barrier` (what the other
    processes did before it)."""

    def __init__(self, main, at_barrier=None):
        self.is_main_process = main
        self.at_barrier = at_barrier
        self.waited = 0

    def wait_for_everyone(self):
        self.waited += 1
        if self.at_barrier:
            self.at_barrier()


def test_resume_for_cleans_on_the_main_process_and_reads_the_same_answer_on_the_others(tmp_path):
    key = {"sft": {}}
    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 10)
    _fake_checkpoint(tmp_path, 20, complete=False)
    main = types.SimpleNamespace(accelerator=_Accelerator(True))
    assert checkpoints.resume_for(main, tmp_path, key) == str(tmp_path / "checkpoint-10")
    assert main.accelerator.waited == 1 and not (tmp_path / "checkpoint-20").exists()
    # another rank: what it finds after the barrier, once the main process has cleaned the folder for a new key
    new = {"sft": {"learning_rate": 1}}
    other = types.SimpleNamespace(accelerator=_Accelerator(
        False, at_barrier=lambda: checkpoints.resume_point(tmp_path, new)))
    assert checkpoints.resume_for(other, tmp_path, new) is None
    assert other.accelerator.waited == 1 and not (tmp_path / "checkpoint-10").exists()
    _fake_checkpoint(tmp_path, 30)
    _fake_checkpoint(tmp_path, 40, complete=False)  # (as if being written now by the main process)
    rank1 = types.SimpleNamespace(accelerator=_Accelerator(False))
    assert checkpoints.resume_for(rank1, tmp_path, new) == str(tmp_path / "checkpoint-30")
    assert (tmp_path / "checkpoint-40").is_dir(), "only the main process deletes"


# --- the resume key ---------------------------------------------------------------------------------------

def test_resume_key_records_size_model_seed_the_stage_section_packing_for_sft_and_the_inputs():
    p = load_params("tiny")
    dump = p.model_dump(mode="json")
    key = checkpoints.resume_key(p, "sft", {"../packing": "x"})
    assert set(key) == {"size", "model", "seed", "sft", "packing", "inputs"}
    assert key["size"] == "tiny" and key["model"] == dump["model"] and key["seed"] == dump["seed"]
    assert key["packing"] == dump["packing"] and key["inputs"] == {"../packing": "x"}
    assert key["sft"] == {k: v for k, v in dump["sft"].items()
                          if k not in {"save_steps", "save_total_limit", "stop_signal_seconds", "logging_steps",
                                       "speed"}}
    assert json.loads(json.dumps(key)) == key, "compared with the JSON record of the last start"


def test_a_dpo_rounds_key_leaves_out_packing_and_the_other_rounds_and_adds_the_round():
    p = load_params("tiny")
    dump = p.model_dump(mode="json")
    key = checkpoints.resume_key(p, "dpo", {"../../sft": "y"}, round="round1", datasets=["a:b"])
    assert set(key) == {"size", "model", "seed", "dpo", "packing", "inputs", "round", "datasets"}
    assert key["packing"] is None and key["round"] == "round1" and key["datasets"] == ["a:b"]
    assert "rounds" in dump["dpo"] and "rounds" not in key["dpo"] and "save_steps" not in key["dpo"]
    assert key["dpo"]["beta"] == p.dpo.beta and key["dpo"]["hardware"] == dump["dpo"]["hardware"]
    # round2's datasets changed: round1's checkpoints still belong to round1
    other_rounds = load_params("tiny", {"dpo.rounds": [{**r, "datasets": ["c:d"]} if r["name"] == "round2" else r
                                                       for r in dump["dpo"]["rounds"]]})
    assert other_rounds.dpo.rounds != p.dpo.rounds
    assert checkpoints.resume_key(other_rounds, "dpo", {"../../sft": "y"}, round="round1", datasets=["a:b"]) == key
    # packing does not shape DPO: re-packing for SFT does not discard a round's checkpoints
    repacked = load_params("tiny", {"packing.strategy": "bfd"})
    assert checkpoints.resume_key(repacked, "dpo", {"../../sft": "y"}, round="round1", datasets=["a:b"]) == key
    assert checkpoints.resume_key(repacked, "sft", {}) != checkpoints.resume_key(p, "sft", {})


# --- StopOnSignal, on its own (a fake step loop) ----------------------------------------------------------

def _train(cb, steps, start=0, world_zero=True, on_step=None):
    """Calls the callback as the Trainer does: train begin, step ends (until one asks to stop), train end."""
    from transformers import TrainerControl, TrainerState

    args = types.SimpleNamespace(device=torch.device("cpu"))
    state = TrainerState(global_step=start, is_world_process_zero=world_zero)
    cb.on_train_begin(args, state, TrainerControl())
    control = TrainerControl()
    for step in range(start + 1, start + steps + 1):
        state.global_step = step
        if on_step:
            on_step(step)
        control = cb.on_step_end(args, state, TrainerControl())
        if control.should_training_stop:
            break
    cb.on_train_end(args, state, control)
    return control, state.global_step


@pytest.fixture
def usr1_restored():
    """SIGUSR1's handler as it was, whatever the test installs."""
    before = signal.getsignal(signal.SIGUSR1)
    yield
    signal.signal(signal.SIGUSR1, before)


def test_sigusr1_saves_and_stops_at_that_step_says_so_and_writes_the_requeue_marker(tmp_path, usr1_restored,
                                                                                      flushed_out):
    def previous(signum, frame):  # the handler in place before training (restored after it)
        pass

    signal.signal(signal.SIGUSR1, previous)
    requeue = tmp_path / "job.requeue"  # its folder exists already
    cb = checkpoints.stop_on_signal_callback(requeue_file=str(requeue), stop_file=str(tmp_path / "stop"))
    before = time.time()
    with redirect_stdout(flushed_out):
        control, stopped = _train(cb, 10, start=2,
                                  on_step=lambda s: s == 5 and os.kill(os.getpid(), signal.SIGUSR1))
    assert stopped == 5 and control.should_save is True and control.should_training_stop is True
    assert flushed_out.flushed == (f"asked to stop (SIGUSR1 or {tmp_path / 'stop'}) at step 5: saving a checkpoint "
                                   "and stopping; the next start resumes from it\n")
    marker = json.loads(requeue.read_text())
    assert marker["step"] == 5 and before <= marker["time"] <= time.time()
    assert signal.getsignal(signal.SIGUSR1) is previous


def test_the_stop_file_stops_training_and_the_requeue_file_comes_from_the_environment(tmp_path, monkeypatch,
                                                                                      usr1_restored):
    stop, requeue = tmp_path / "stop", tmp_path / "new" / "dir" / "job.requeue"
    monkeypatch.setenv(checkpoints.STOP_FILE_ENV, str(stop))
    monkeypatch.setenv(checkpoints.REQUEUE_FILE_ENV, str(requeue))
    cb = checkpoints.stop_on_signal_callback()
    control, stopped = _train(cb, 10, on_step=lambda s: s == 3 and stop.touch())
    assert stopped == 3 and control.should_save and control.should_training_stop
    assert json.loads(requeue.read_text())["step"] == 3  # its folders made on the way


def test_without_a_signal_or_stop_file_training_runs_to_its_end_and_asks_for_no_requeue(tmp_path, monkeypatch,
                                                                                      usr1_restored, capsys):
    monkeypatch.delenv(checkpoints.STOP_FILE_ENV, raising=False)
    monkeypatch.delenv(checkpoints.REQUEUE_FILE_ENV, raising=False)
    requeue = tmp_path / "job.requeue"
    cb = checkpoints.stop_on_signal_callback(requeue_file=str(requeue), stop_file=str(tmp_path / "stop"))
    control, stopped = _train(cb, 6)
    assert stopped == 6 and not control.should_save and not control.should_training_stop
    assert not requeue.exists() and capsys.readouterr().out == ""
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)


def test_a_stop_at_the_step_training_resumed_from_asks_for_no_requeue(tmp_path, usr1_restored):
    """Resumed at step 4 and stopped again at step 4 (the signal came before the first step ended): requeueing
    would loop without progress."""
    requeue = tmp_path / "job.requeue"
    cb = checkpoints.stop_on_signal_callback(requeue_file=str(requeue))
    from transformers import TrainerControl, TrainerState

    args = types.SimpleNamespace(device=torch.device("cpu"))
    state = TrainerState(global_step=4, is_world_process_zero=True)
    cb.on_train_begin(args, state, TrainerControl())
    os.kill(os.getpid(), signal.SIGUSR1)
    control = cb.on_step_end(args, state, TrainerControl())
    cb.on_train_end(args, state, control)
    assert control.should_training_stop and not requeue.exists()
    # one step further, it does
    _train(cb, 5, start=4, on_step=lambda s: s == 5 and os.kill(os.getpid(), signal.SIGUSR1))
    assert json.loads(requeue.read_text())["step"] == 5


def test_only_the_first_process_prints_and_writes_the_requeue_marker(tmp_path, usr1_restored, capsys):
    requeue = tmp_path / "job.requeue"
    cb = checkpoints.stop_on_signal_callback(requeue_file=str(requeue))
    control, stopped = _train(cb, 10, world_zero=False,
                              on_step=lambda s: s == 2 and os.kill(os.getpid(), signal.SIGUSR1))
    assert stopped == 2 and control.should_training_stop  # it stops too
    assert not requeue.exists() and capsys.readouterr().out == ""


def test_training_in_a_thread_cannot_take_the_signal_but_still_stops_on_the_stop_file(tmp_path, usr1_restored):
    """signal.signal works in the main thread only (a notebook may train in another one)."""
    import threading

    stop = tmp_path / "stop"
    cb = checkpoints.stop_on_signal_callback(requeue_file=str(tmp_path / "job.requeue"), stop_file=str(stop))
    got = {}

    def run():
        try:
            got["result"] = _train(cb, 10, on_step=lambda s: s == 4 and stop.touch())
        except Exception as e:  # noqa: BLE001 - shown by the assertion below
            got["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert "error" not in got, got.get("error")
    assert got["result"][1] == 4 and json.loads((tmp_path / "job.requeue").read_text())["step"] == 4
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None)


def _fake_ranks(monkeypatch, world, others_asked):
    """torch.distributed as seen by one rank of `world`: all_reduce combines its flag with the other ranks'."""
    import torch.distributed as dist

    calls = []

    def all_reduce(t, op):
        assert t.device == torch.device("cpu"), "NCCL all-reduces tensors on the rank's own device (args.device)"
        combine = {dist.ReduceOp.MAX: max, dist.ReduceOp.MIN: min, dist.ReduceOp.SUM: sum}[op]
        calls.append(t.clone())
        t.fill_(combine([t.item(), *([1.0 if others_asked else 0.0] * (world - 1))]))

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: world)
    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    return calls


def test_every_rank_stops_at_the_step_any_rank_was_asked_to(tmp_path, monkeypatch, usr1_restored):
    calls = _fake_ranks(monkeypatch, 4, others_asked=True)
    cb = checkpoints.stop_on_signal_callback(stop_file=str(tmp_path / "stop"))
    with torch.device("meta"):  # as on a GPU node: the default device is not the rank's (args.device, here cpu)
        control, stopped = _train(cb, 10)  # this rank got no signal; another one did
    assert stopped == 1 and control.should_training_stop and control.should_save
    assert [c.tolist() for c in calls] == [[0.0]]


def test_no_rank_stops_when_none_was_asked_and_the_asked_rank_sends_a_true_flag(tmp_path, monkeypatch,
                                                                              usr1_restored):
    calls = _fake_ranks(monkeypatch, 2, others_asked=False)
    stop = tmp_path / "stop"
    control, stopped = _train(checkpoints.stop_on_signal_callback(stop_file=str(stop)), 5)
    assert stopped == 5 and not control.should_training_stop and [c.item() for c in calls] == [0.0] * 5
    calls.clear()
    control, stopped = _train(checkpoints.stop_on_signal_callback(stop_file=str(stop)), 5,
                              on_step=lambda s: s == 2 and stop.touch())
    assert stopped == 2 and [c.item() for c in calls] == [0.0, 1.0]


def test_one_process_does_not_all_reduce(tmp_path, monkeypatch, usr1_restored):
    calls = _fake_ranks(monkeypatch, 1, others_asked=True)
    control, stopped = _train(checkpoints.stop_on_signal_callback(stop_file=str(tmp_path / "stop")), 3)
    assert stopped == 3 and not control.should_training_stop and calls == []


def test_the_test_slow_down_is_off_unless_a_positive_number_of_seconds_is_set(monkeypatch):
    slept = []
    monkeypatch.setattr(checkpoints.time, "sleep", slept.append)
    for off in (None, "", "0", "-1"):
        if off is None:
            monkeypatch.delenv(checkpoints.SLOW_STEP_ENV, raising=False)
        else:
            monkeypatch.setenv(checkpoints.SLOW_STEP_ENV, off)
        assert checkpoints.slow_steps_for_tests() is None
        assert [type(c).__name__ for c in checkpoints.training_callbacks()] == ["StopOnSignal"]
    monkeypatch.setenv(checkpoints.SLOW_STEP_ENV, "0.25")
    cb = checkpoints.slow_steps_for_tests()
    cb.on_step_end(None, None, None)
    cb.on_step_end(None, None, None)
    assert slept == [0.25, 0.25]
    assert [type(c).__name__ for c in checkpoints.training_callbacks()] == ["StopOnSignal", "SlowStepsForTests"]


# --- disk of a checkpoint, the plan's line, the CLI -------------------------------------------------------

def test_checkpoint_bytes_are_fp32_weights_and_optimizer_moments_of_what_is_trained():
    # full training: every parameter in fp32, AdamW's two moments (SFT), RMSprop's one (DPO)
    assert checkpoints.checkpoint_bytes(load_params("8b"), "sft") == 8_030_261_248 * 4 * 3
    assert checkpoints.checkpoint_bytes(load_params("70b"), "dpo") == 70_553_706_496 * 4 * 2
    # LoRA (tiny: hidden 64, 2 layers, KV 2 x 16): r x (in + out) per targeted projection, with the stage's own lora
    p = load_params("tiny", {"dpo.method": "lora", "dpo.lora.r": 4, "dpo.lora.target_modules": ["q_proj", "v_proj"]})
    assert p.sft.lora.r == 8 and p.dpo.optim == "rmsprop"
    assert checkpoints.checkpoint_bytes(p, "dpo") == pytest.approx(2 * 4 * ((64 + 64) + (64 + 32)) * 4 * 2)
    s = load_params("tiny", {"sft.method": "lora"})
    assert s.sft.optim == "adamw_torch" and s.sft.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert checkpoints.checkpoint_bytes(s, "sft") == pytest.approx(2 * 8 * (128 + 96 + 96 + 128) * 4 * 3)


@pytest.mark.parametrize("b,text", [(1e12, "1.00 TB"), (2_684_354_560_000, "2.68 TB"), (1e12 - 1, "1,000.00 GB"),
                                    (1e9, "1.00 GB"), (141.114e9, "141.11 GB"), (1e6, "1.00 MB"),
                                    (999_999, "1,000.0 kB"), (2_500, "2.5 kB"), (0, "0.0 kB")])
def test_size_text_at_each_units_boundary(b, text):
    assert checkpoints.size_text(b) == text


def test_plan_note_for_a_dpo_round_counts_pairs_and_gives_minutes_only_with_hours_and_steps():
    p = load_params("70b")  # dpo: every 100 steps of 128 pairs, 2 kept, SIGUSR1 900 s before
    each = checkpoints.size_text(70_553_706_496 * 8)
    assert each == "564.43 GB"
    tail = (f"the last 2 kept: about 564.43 GB each, 1.13 TB on disk at most (plus one being written); a re-run, "
            "requeue or restart resumes from the last one; on SLURM, SIGUSR1 900 s before the time limit saves one "
            "and requeues the job (docs/resume.md)")
    assert checkpoints.plan_note(p, "dpo") == f"checkpoints: every 100 steps (12,800 pairs), {tail}"
    assert checkpoints.plan_note(p, "dpo", hours=10.0) == checkpoints.plan_note(p, "dpo", steps=400) == \
        checkpoints.plan_note(p, "dpo")
    assert checkpoints.plan_note(p, "dpo", hours=10.0, steps=400) == \
        f"checkpoints: every 100 steps (12,800 pairs), about 150 min at the estimated pace, {tail}"
    assert checkpoints.plan_note(p, "sft").startswith("checkpoints: every 250 steps, the last 2 kept")


def test_checkpoints_cli_lists_each_stage_with_its_checkpoints_and_disk(capsys):
    p = load_params("tiny")
    run = f"pytest-resume-cli-{uuid.uuid4().hex[:8]}"
    try:
        dirs = checkpoints.stage_checkpoint_dirs(p, run)
        assert list(dirs) == ["sft", "dpo_round1", "dpo_round2", "dpo_round3"]
        for step in (20, 10):
            (_fake_checkpoint(dirs["sft"], step) / "weights").write_bytes(b"x" * 1500)
        assert checkpoints.main(["--size", "tiny", "--run-name", run]) == 0
        disk = checkpoints.size_text(checkpoints.disk_bytes(dirs["sft"]))
        assert disk == "3.0 kB"
        assert capsys.readouterr().out.splitlines() == [
            f"sft: {dirs['sft']}: checkpoint-10, checkpoint-20 (3.0 kB)",
            *(f"{s}: {dirs[s]}: none" for s in ("dpo_round1", "dpo_round2", "dpo_round3"))]
        assert checkpoints.main(["--size", "tiny", "--run-name", run, "--discard", "--stage", "sft",
                                 "--stage", "dpo_round2"]) == 0
        assert capsys.readouterr().out.splitlines() == [f"sft: discarded {dirs['sft']} (3.0 kB)",
                                                        f"dpo_round2: no checkpoints in {dirs['dpo_round2']}"]
        assert not dirs["sft"].exists()
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_checkpoints_cli_needs_size_and_run_name_and_names_the_known_stages(capsys):
    for argv, missing in ((["--run-name", "x"], "--size"), (["--size", "tiny"], "--run-name")):
        with pytest.raises(SystemExit) as e:
            checkpoints.main(argv)
        assert e.value.code == 2 and f"the following arguments are required: {missing}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        checkpoints.main(["--size", "tiny", "--run-name", "x", "--stage", "dpo_round9", "--stage", "sft"])
    assert e.value.code == 2
    assert ("unknown stage(s) ['dpo_round9']; stages: sft, dpo_round1, dpo_round2, dpo_round3"
            in capsys.readouterr().err)


def test_checkpoints_cli_help_says_what_it_does_and_what_discarding_means(capsys):
    with pytest.raises(SystemExit):
        checkpoints.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "List or discard the training checkpoints of a run (docs/resume.md)." in text
    assert "sft or dpo_<round> (repeatable; default: every training stage)" in text
    assert "delete them: the next run of the stage starts at step 0" in text


def test_a_discarded_checkpoint_that_cannot_be_deleted_stops_the_run_before_the_new_key_is_recorded(tmp_path,
                                                                                                     monkeypatch):
    """Were it left in place with the new key recorded, the next start would continue it as if it were the new
    params' own (found by the mutation run's review: rmtree(ignore_errors=True) on a symlinked checkpoint)."""
    key, other = {"sft": {"learning_rate": 1e-3}}, {"sft": {"learning_rate": 2e-3}}
    checkpoints.resume_point(tmp_path, key)
    kept = _fake_checkpoint(tmp_path / "elsewhere", 10)
    (tmp_path / "checkpoint-10").symlink_to(kept, target_is_directory=True)
    assert checkpoints.resume_point(tmp_path, other) is None  # a link is removed, what it points to is not
    assert not (tmp_path / "checkpoint-10").exists() and kept.is_dir()

    checkpoints.resume_point(tmp_path, key)
    _fake_checkpoint(tmp_path, 20)

    def refuse(path, *a, **k):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoints.shutil, "rmtree", refuse)
    with pytest.raises(RuntimeError, match=r"checkpoint-20 \(made from other params or inputs\) could not be deleted "
                                           r"\(Permission denied\); delete it by hand or train into another run"):
        checkpoints.resume_point(tmp_path, other)
    assert json.loads((tmp_path / checkpoints.RESUME_KEY).read_text()) == key  # the old key still names it
    _fake_checkpoint(tmp_path, 30, complete=False)  # the same for an incomplete one under the recorded key
    with pytest.raises(RuntimeError, match=r"checkpoint-30 \(incomplete\) could not be deleted"):
        checkpoints.resume_point(tmp_path, key)
