"""On a real SLURM (tests/realslurm.py): a training job whose --time is shorter than its run is warned before the
limit, saves a checkpoint, requeues itself, and the requeued run finishes from the saved step with the step count
and final loss of an uninterrupted run."""
from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path

import pytest

from med42_utils.checkpoints import SLOW_STEP_ENV
from med42_utils.params import load_params
from med42_utils.paths import run_dir

pytestmark = pytest.mark.slurm

from realslurm import SINGLE_CPU_CONFIG  # noqa: E402
STEPS = 30
# TEST ONLY: each step sleeps this long in the job, so that tiny SFT (a few seconds of compute) outlasts SLURM's
# smallest --time, one minute (checkpoints.slow_steps_for_tests; off unless the variable is set)
SLOW_STEP_SECONDS = 1.5


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
    # the site option shapes the script only; the job itself does not need it
    yield load_params("tiny", {**ov, "slurm.sft.time": "1"}), ov, names  # SLURM's smallest limit: one minute
    for n in names:
        shutil.rmtree(run_dir("tiny", n), ignore_errors=True)


def test_a_job_past_its_time_limit_is_requeued_and_finishes_like_an_uninterrupted_run(
        real_slurm, tiny_on_one_h100, monkeypatch, capsys):
    from med42_utils.launch import execute
    from med42_utils.sft.stage import sft_plan
    from med42_utils.sft.train import train_sft

    real_slurm.use(monkeypatch)
    params, ov, (job_run, ref_run) = tiny_on_one_h100
    reference = train_sft(params, ref_run)  # uninterrupted, in this process, no slow-down

    plan = sft_plan(params, job_run, ov)
    assert "#SBATCH --time=1\n" in plan.slurm_script and "#SBATCH --signal=B:USR1@10\n" in plan.slurm_script
    monkeypatch.setenv(SLOW_STEP_ENV, str(SLOW_STEP_SECONDS))  # reaches the job through sbatch's environment
    job_id = str(real_slurm.next_job_id())
    seen: list[str] = []
    stop = threading.Event()

    def watch():
        """Record the job's states; once it has requeued itself, give the next run time to finish, as a longer
        limit would (SLURM may warn up to a minute early, so a second one-minute run would be warned again soon
        after it starts and go round once more); cancel it if it is still there after 10 minutes."""
        extended, t0 = False, time.time()
        while not stop.is_set():
            info = real_slurm.job(job_id)
            state = info.get("JobState", "")
            if state and (not seen or seen[-1] != state):
                seen.append(state)
            if not extended and int(info.get("Restarts", 0)) >= 1:
                r = real_slurm.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=5"])
                extended = r.returncode == 0
            if time.time() - t0 > 600:
                real_slurm.run(["scancel", job_id])
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.time()
    try:
        job = execute(plan)  # submits and waits as the notebook does: through the requeue until the job has ended
    finally:
        stop.set()
        watcher.join()
    wall = time.time() - t0
    info = real_slurm.job(job_id)
    log = Path(job.log).read_text(errors="replace")  # a run stopped mid-line may leave half a character
    assert job.job_id == job_id and info.get("JobState") == "COMPLETED", (info, seen)
    assert info.get("Restarts") == "1", f"the job should have requeued itself once: {info}; states {seen}"
    assert seen.count("RUNNING") == 2 and "PENDING" in seen[seen.index("RUNNING"):], seen
    assert "requeueing job" in log and "resuming from" in log, "both runs' lines stay in the log (--open-mode=append)"

    sft = run_dir("tiny", job_run) / "sft"
    m = json.loads((sft / "manifest.json").read_text())
    step = int(m["resumed_from"].rsplit("-", 1)[1])
    assert 0 < step < STEPS, m["resumed_from"]
    assert m["global_step"] == reference["global_step"] == STEPS
    assert m["last_loss"] == pytest.approx(reference["last_loss"], abs=1e-5)
    losses = [e["loss"] for e in m["log_history"]]
    assert losses == pytest.approx([e["loss"] for e in reference["log_history"]], abs=1e-5)
    with capsys.disabled():
        print(f"\njob {job_id}: states {seen}, stopped at step {step} of {STEPS}, {wall:.0f} s from sbatch to the end")
