"""The SLURM path against a real SLURM (tests/realslurm.py: slurmctld + two slurmd on this host, accounting off).

Each test leaves the cluster empty (no job queued or running) for the next one.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm


def test_the_cluster_has_two_nodes_with_their_own_names_and_addresses(real_slurm, monkeypatch, tmp_path):
    """Both nodes answer one two-node step, each with its own hostname and an address the other resolves;
    accounting is off as configured."""
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "srun bash -c 'echo $SLURM_PROCID $(hostname) $(getent hosts med42a1 med42a2 | "
                            "tr -s \" \" | tr \"\\n\" \" \")'", "--nodes=2", "--ntasks-per-node=1")
    assert slurm.wait(job) == "COMPLETED"
    out = sorted(line for line in Path(job.log).read_text().splitlines() if line[:1].isdigit())
    assert [line.split()[:2] for line in out] == [["0", "med42a1"], ["1", "med42a2"]]
    for line in out:
        hosts = line.split()[2:]
        assert dict(zip(hosts[1::2], hosts[0::2])) == real_slurm.addrs
    sacct = real_slurm.run(["sacct", "-j", job.job_id])
    assert sacct.returncode != 0 and "accounting storage is disabled" in sacct.stderr


# ---------------------------------------------------------------- waiting on what the controller knows


def _script(tmp_path, body: str, *sbatch: str, name: str = "t") -> Path:
    """A batch script in tmp_path whose log is <tmp>/logs/<name>-<id>.out (the layout slurm.submit records)."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    head = "".join(f"#SBATCH {o}\n" for o in (f"--job-name={name}", f"--output={tmp_path}/logs/%x-%j.out", *sbatch))
    p = tmp_path / f"{name}.slurm"
    p.write_text(f"#!/bin/bash\n{head}set -euo pipefail\n{body}\n")
    return p


def _submit(tmp_path, body: str, *sbatch: str, name: str = "t"):
    from med42_utils import slurm

    return slurm.submit(_script(tmp_path, body, *sbatch, name=name), name, tmp_path / f"{name}.job.json")


def test_a_job_that_can_never_start_fails_at_once_with_reason_and_fix(real_slurm, monkeypatch, tmp_path, capsys):
    """More CPUs per task than any node has: PENDING (PartitionConfig) forever on a real SLURM. wait() names the
    reason on its progress line, fails on the first poll with what it means and how to fix it, and cancels the
    job so that a re-run with a fitting request submits afresh."""
    import time

    from med42_utils import slurm

    real_slurm.use(monkeypatch, poll_seconds=30)  # a 30 s poll: failing "at once" must not wait for a second one
    job = _submit(tmp_path, "echo never", f"--cpus-per-task={real_slurm.cpus_per_node * 4}")
    t0 = time.time()
    with pytest.raises(slurm.SlurmError) as e:
        slurm.wait(job)
    assert time.time() - t0 < 10
    msg = str(e.value)
    assert f"SLURM job {job.job_id} (t) can never start" in msg and "reason PartitionConfig" in msg
    assert "sinfo -N -o" in msg and f"cancelled it (scancel {job.job_id})" in msg
    assert f"[job {job.job_id} PENDING (PartitionConfig)]" in capsys.readouterr().out
    assert real_slurm.wait_state(job.job_id, {"CANCELLED"}) == "CANCELLED"


def test_a_node_that_is_not_available_fails_at_once(real_slurm, monkeypatch, tmp_path):
    """A job pinned to a drained node: ReqNodeNotAvail, named with `sinfo -R`."""
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    node = real_slurm.nodes[1]
    assert real_slurm.run(["scontrol", "update", f"nodename={node}", "state=drain", "reason=pytest"]).returncode == 0
    try:
        job = _submit(tmp_path, "echo never", f"--nodelist={node}")
        with pytest.raises(slurm.SlurmError, match=r"can never start: PENDING, reason ReqNodeNotAvail.*sinfo -R"):
            slurm.wait(job)
    finally:
        real_slurm.run(["scontrol", "update", f"nodename={node}", "state=resume"])
        real_slurm.cancel_all()


def test_a_held_job_is_named_with_how_to_release_it_and_then_waited_for(real_slurm, monkeypatch, tmp_path, capsys):
    import threading

    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "echo released", "--hold")
    timer = threading.Timer(3, lambda: real_slurm.run(["scontrol", "release", job.job_id]))
    timer.start()
    try:
        assert slurm.wait(job) == "COMPLETED"
    finally:
        timer.cancel()
    out = capsys.readouterr().out
    assert f"[job {job.job_id} PENDING (JobHeldUser)]" in out
    assert out.count(f"it starts only after `scontrol release {job.job_id}`") == 1, "named once, not every poll"
    assert "released" in (tmp_path / "logs" / f"t-{job.job_id}.out").read_text()


def test_a_completed_job_is_read_from_the_controller_without_accounting(real_slurm, monkeypatch, tmp_path):
    """No sacct on this cluster: the end state comes from `squeue -t all` while the controller keeps the record
    (MinJobAge); once it has forgotten the job, wait() says so instead of guessing."""
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "echo done")
    assert slurm.wait(job) == "COMPLETED"
    assert slurm.job_status(job.job_id).source == "squeue"
    with real_slurm.config(MinJobAge=2):
        real_slurm.wait_gone(job.job_id, timeout=150)
        st = slurm.job_status(job.job_id)
        assert st.state == "GONE" and "keeps no accounting" in st.detail
        with pytest.raises(slurm.SlurmError, match=rf"SLURM job {job.job_id} \(t\): the controller no longer knows"):
            slurm.wait(job)


def test_a_failing_job_raises_failed_with_its_log_tail(real_slurm, monkeypatch, tmp_path):
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "echo 'Traceback: boom' >&2; exit 3")
    with pytest.raises(slurm.SlurmError, match=rf"(?s)SLURM job {job.job_id} \(t\) ended FAILED.*Traceback: boom"):
        slurm.wait(job)


# ---------------------------------------------------------------- scancel and Ctrl-C


def _when(pred, timeout=60.0):
    import time

    t0 = time.time()
    while time.time() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.2)
    raise TimeoutError("condition not met")


def _running_with_log(real_slurm, job, text="started"):
    from pathlib import Path

    return real_slurm.job(job.job_id).get("JobState") == "RUNNING" and Path(job.log).is_file() and \
        text in Path(job.log).read_text()


def test_scancel_from_outside_is_reported_cancelled_with_the_log_tail(real_slurm, monkeypatch, tmp_path):
    import threading

    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "echo started; sleep 300")

    def cancel_when_running():
        _when(lambda: _running_with_log(real_slurm, job))
        real_slurm.run(["scancel", job.job_id])

    t = threading.Thread(target=cancel_when_running, daemon=True)
    t.start()
    with pytest.raises(slurm.SlurmError) as e:
        slurm.wait(job)
    msg = str(e.value)
    assert f"SLURM job {job.job_id} (t) ended CANCELLED" in msg
    assert "started" in msg and f"*** JOB {job.job_id} ON" in msg and "CANCELLED AT" in msg  # slurmstepd's line


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C as a terminal or a notebook delivers it, whatever this process inherited: one started in the background
    by a non-interactive shell (`cmd &` in a script) gets SIGINT ignored, and Python then raises no KeyboardInterrupt."""
    import signal

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def _interrupt_when(pred):
    """SIGINT this (main) thread once pred() holds: what Ctrl-C in a terminal or a notebook kernel does."""
    import os
    import signal
    import threading

    def go():
        _when(pred)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def test_ctrl_c_while_waiting_for_a_batch_job_says_it_goes_on_and_how_to_cancel(real_slurm, monkeypatch, tmp_path,
                                                                               capsys, ctrl_c_raises):
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    job = _submit(tmp_path, "echo started; sleep 300")
    _interrupt_when(lambda: _running_with_log(real_slurm, job))
    try:
        with pytest.raises(KeyboardInterrupt):
            slurm.wait(job)
        out = capsys.readouterr().out
        assert f"Stopped waiting. SLURM job {job.job_id} (t) goes on" in out and f"scancel {job.job_id}" in out
        assert real_slurm.job(job.job_id)["JobState"] == "RUNNING", "the job really goes on"
    finally:
        real_slurm.cancel_all()


def test_ctrl_c_during_an_srun_step_cancels_the_step_and_keeps_the_allocation(real_slurm, monkeypatch, tmp_path,
                                                                             capsys, ctrl_c_raises):
    from med42_utils import slurm

    real_slurm.use(monkeypatch)
    r = real_slurm.run(["salloc", "--nodes=2", "--no-shell", "--job-name=alloc"], timeout=60)
    job_id = r.stderr.split("Granted job allocation")[1].split()[0]
    monkeypatch.setenv("SLURM_JOB_ID", job_id)
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    log = tmp_path / "step.out"
    steps = lambda: real_slurm.run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i %j"]).stdout.split("\n")  # noqa: E731
    _interrupt_when(lambda: log.is_file() and log.read_text().count("started") == 2)
    try:
        with pytest.raises(KeyboardInterrupt):
            slurm.srun(["bash", "-c", "echo started; sleep 300"], 2, log, step_name="pytest-step")
        assert "Interrupted: cancelled the srun step" in capsys.readouterr().out
        _when(lambda: not any("pytest-step" in s for s in steps()), timeout=30)
        assert real_slurm.job(job_id)["JobState"] == "RUNNING", "the allocation stays"
    finally:
        real_slurm.cancel_all()
