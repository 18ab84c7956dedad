"""On a real SLURM (tests/realslurm.py): a training job whose --time is shorter than its run is warned before the
limit, saves a checkpoint, requeues itself, and the requeued run finishes from the saved step with the step count
and final loss of an uninterrupted run."""
from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import pytest

from med42_utils.checkpoints import SLOW_STEP_ENV
from med42_utils.params import load_params
from med42_utils.paths import run_dir

pytestmark = pytest.mark.slurm

SINGLE_CPU_CONFIG = """compute_environment: LOCAL_MACHINE
distributed_type: 'NO'
mixed_precision: 'no'
num_machines: 1
num_processes: 1
"""
STEPS = 30
# TEST ONLY: each step sleeps this long in the job, so that tiny SFT (a few seconds of compute) outlasts SLURM's
# smallest --time, one minute (checkpoints.slow_steps_for_tests; off unless the variable is set)
SLOW_STEP_SECONDS = 1.5
FINAL = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}


@pytest.fixture
def tiny_on_one_h100(tmp_path):
    """Tiny SFT labelled as 1 node x 1 H100 (so this CPU box submits it with sbatch), launched by accelerate with a
    one-process CPU config; two packed runs: one for the job, one for the uninterrupted reference."""
    from test_sft import _packed_run

    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE_CPU_CONFIG)
    ov = {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
          "sft.hardware.accelerate_config": str(cfg), "sft.max_steps": STEPS, "sft.logging_steps": 1,
          "sft.save_steps": 10, "sft.stop_signal_seconds": 10}
    names = [_packed_run(f"pytest-timeout-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    yield load_params("tiny", ov), ov, names
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


def _script_for_this_cluster(text: str, cpus: int) -> str:
    """The plan's script with a one-minute --time and a CPU count this test cluster has (site options)."""
    text = text.replace("#SBATCH --cpus-per-task=96\n", f"#SBATCH --cpus-per-task={cpus}\n")
    return text.replace("#SBATCH --requeue\n", "#SBATCH --requeue\n#SBATCH --time=1\n", 1)


def test_a_job_past_its_time_limit_is_requeued_and_finishes_like_an_uninterrupted_run(
        real_slurm, tiny_on_one_h100, monkeypatch):
    from med42_utils.launch import execute
    from med42_utils.sft.stage import sft_plan
    from med42_utils.sft.train import train_sft

    real_slurm.use(monkeypatch)
    params, ov, (job_run, ref_run) = tiny_on_one_h100
    reference = train_sft(params, ref_run)  # uninterrupted, in this process, no slow-down

    plan = sft_plan(params, job_run, ov)
    plan.slurm_script = _script_for_this_cluster(plan.slurm_script, min(2, real_slurm.cpus_per_node))
    assert "#SBATCH --time=1\n" in plan.slurm_script and "#SBATCH --signal=B:USR1@10\n" in plan.slurm_script
    monkeypatch.setenv(SLOW_STEP_ENV, str(SLOW_STEP_SECONDS))  # reaches the job through sbatch's environment
    t0 = time.time()
    job = execute(plan, wait=False)
    seen, state, info, extended = [], "", {}, False
    while time.time() - t0 < 600:  # a bound for a stuck cluster; on an idle 2-core box it takes about 2 min
        info = real_slurm.job(job.job_id)
        state = info.get("JobState", "")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
            print(f"{time.time() - t0:5.1f} s: {state}", flush=True)
        if state in FINAL:
            break
        if not extended and int(info.get("Restarts", 0)) >= 1:
            # requeued: give the next run time to finish, as a longer limit would. SLURM may send the warning up to
            # a minute early, so a second one-minute run would be warned again soon after it starts and go round
            # once more (each run gains steps; it only makes the test longer)
            r = real_slurm.run(["scontrol", "update", f"JobId={job.job_id}", "TimeLimit=5"])
            assert r.returncode == 0, r.stderr
            extended = True
        time.sleep(0.5)
    wall = time.time() - t0
    log = Path(job.log).read_text() if Path(job.log).is_file() else f"(no log at {job.log})"
    assert state == "COMPLETED", f"job {job.job_id} states {seen}; log tail:\n{log[-3000:]}"
    assert info.get("Restarts") == "1", f"the job should have requeued itself once: {info}; states {seen}"
    assert "requeueing job" in log, "the first run's lines stay in the log (--open-mode=append)"

    sft = run_dir("tiny", job_run) / "sft"
    m = json.loads((sft / "manifest.json").read_text())
    step = int(m["resumed_from"].rsplit("-", 1)[1])
    assert 0 < step < STEPS, m["resumed_from"]
    assert m["global_step"] == reference["global_step"] == STEPS
    assert m["last_loss"] == pytest.approx(reference["last_loss"], abs=1e-5)
    losses = [e["loss"] for e in m["log_history"]]
    assert losses == pytest.approx([e["loss"] for e in reference["log_history"]], abs=1e-5)
    print(f"job {job.job_id}: states {seen}, stopped at step {step} of {STEPS}, {wall:.0f} s in all")
