"""Where a stage launches from: sbatch-and-wait on a login node, srun in an allocation, refusal elsewhere.

Tests marked slurm run against the real test cluster (tests/realslurm.py). The others use fakes
(tests/fakeslurm.py) first on PATH only for what one host cannot show: sacct on a cluster with accounting,
states such as OUT_OF_MEMORY, and the srun line of an 8-GPU node. The fake cluster really runs the
submitted script.
"""
from __future__ import annotations

import json
import shutil
import uuid

import pytest

import fakeslurm
from med42_utils import slurm
from med42_utils.hardware import HardwareError, placement
from med42_utils.launch import JobPending, execute, plan_launch, render_plan
from med42_utils.params import load_params
from med42_utils.paths import run_dir

CPU_BOX = {"cuda": False, "gpus": []}
from realslurm import SINGLE_CPU_CONFIG  # noqa: E402



@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Plans write their SLURM scripts under outputs/: keep them in a temporary repo root."""
    import fakeslurm

    fakeslurm.use_tmp_root(tmp_path, monkeypatch)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """Fake SLURM tools first on PATH, a fast poll interval, and no allocation in the environment."""
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    fakeslurm.install(bin_dir, state)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_DIR", str(state))
    monkeypatch.setenv("MED42_POLL_SECONDS", "0.2")
    for var in ("SLURM_JOB_ID", "SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NODELIST"):
        monkeypatch.delenv(var, raising=False)
    return state


@pytest.fixture
def gpu_sized_tiny(tmp_path):
    """Tiny SFT labelled as needing 1 H100 (so a CPU box must submit it), launched through accelerate
    with a one-process config that also runs on CPU. Yields (params, overrides, run_name); removes the run."""
    from test_sft import _packed_run

    cfg = tmp_path / "single.yaml"
    cfg.write_text(SINGLE_CPU_CONFIG)
    ov = {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
          "sft.hardware.accelerate_config": str(cfg), "sft.max_steps": 2, "sft.logging_steps": 1,
          "sft.save_steps": 100}
    name = _packed_run(f"pytest-slurm-{uuid.uuid4().hex[:8]}")
    yield load_params("tiny", ov), ov, name
    shutil.rmtree(run_dir("tiny", name), ignore_errors=True)


def _plan_8b(name="pytest-slurm-plan", **ov):
    """An 8b SFT plan for tests of placing, submitting and waiting. This run has no packed data and no cached
    8b model, so the check before submitting would refuse it: that check is switched off here (needs=None)
    and tested on its own in test_preflight.py."""
    plan = plan_launch(load_params("8b", ov or None), "sft", name, "med42_utils.sft.train", [])
    plan.needs = None
    return plan


# ---------------------------------------------------------------- placement


def test_placement_follows_where_the_notebook_runs(monkeypatch):
    hw8 = load_params("8b").sft.hardware  # 2 x 8 H100
    assert placement(hw8, {**CPU_BOX, "sbatch": True, "slurm_nodes": None})[0] == "sbatch"
    assert placement(hw8, {**CPU_BOX, "sbatch": True, "slurm_nodes": 2})[0] == "srun"
    where, why = placement(hw8, {**CPU_BOX, "sbatch": True, "slurm_nodes": 1})
    assert where == "refuse" and "salloc --nodes=2" in why
    where, why = placement(hw8, {**CPU_BOX, "sbatch": False, "slurm_nodes": None})
    assert where == "refuse" and "no CUDA device and no SLURM" in why and "size=tiny" in why
    one = load_params("8b", {"sft.hardware.nodes": 1, "sft.hardware.launcher": "accelerate",
                             "sft.gradient_accumulation_steps": 4}).sft.hardware
    eight = {"cuda": True, "gpus": [{"name": "H100"}] * 8}
    assert placement(one, eight)[0] == "local"
    assert placement(one, {**CPU_BOX, "sbatch": True})[0] == "sbatch"
    assert placement(load_params("tiny").sft.hardware, CPU_BOX)[0] == "inprocess"


def test_no_gpu_and_no_slurm_is_refused_before_anything_runs(fake_slurm, monkeypatch, tmp_path):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no fake (or real: Debian puts it in /usr/bin) sbatch
    plan = _plan_8b()
    with pytest.raises(HardwareError, match="no CUDA device and no SLURM"):
        execute(plan)
    assert fakeslurm.calls(fake_slurm) == []


# ---------------------------------------------------------------- dry run


def test_dry_run_writes_the_script_it_prints(tmp_path):
    plan = _plan_8b(f"pytest-dry-{uuid.uuid4().hex[:6]}")
    try:
        md = render_plan(plan)
        assert str(plan.slurm_path) in md
        assert plan.slurm_path.read_text() == plan.slurm_script
        assert (plan.slurm_path.parent / "logs").is_dir()
    finally:
        shutil.rmtree(plan.slurm_path.parent.parent, ignore_errors=True)


# ---------------------------------------------------------------- login node: sbatch and wait


@pytest.mark.parametrize("state", ["OUT_OF_MEMORY", "NODE_FAIL"])
def test_with_accounting_the_end_state_comes_from_sacct(fake_slurm, monkeypatch, state, tmp_path):
    """Fake because one host cannot show it: a cluster with accounting (slurmdbd), where sacct gives the end
    state once squeue has forgotten the job, and states the test cluster cannot produce (memory limits need
    cgroups, a node failure a dead slurmd). CANCELLED, FAILED and COMPLETED are tested on the real SLURM
    (test_slurm_real.py)."""
    monkeypatch.setenv("FAKE_SLURM_PLAY", state)
    plan = _plan_8b(f"pytest-fail-{uuid.uuid4().hex[:6]}")
    try:
        with pytest.raises(slurm.SlurmError) as e:
            execute(plan)
        msg = str(e.value)
        assert "SLURM job 1000" in msg and f"ended {state}" in msg
        assert f"*** JOB 1000 ON fake-node {state} ***" in msg  # the log's tail
        assert fakeslurm.calls(fake_slurm, "sbatch") == [["--parsable", str(plan.slurm_path)]]
        assert all(a[:4] == ["-h", "-t", "all", "-j"] for a in fakeslurm.calls(fake_slurm, "squeue"))
        assert fakeslurm.calls(fake_slurm, "sacct"), "a job gone from squeue is looked up in sacct"
    finally:
        shutil.rmtree(plan.slurm_path.parent.parent, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.slurm
def test_sbatch_waits_then_wait_false_and_a_rerun_resume(real_slurm, monkeypatch, gpu_sized_tiny, capsys):
    """On the real SLURM (no accounting): PENDING -> RUNNING -> COMPLETED with progress lines; the job really
    trains tiny SFT on CPU. wait=False submits and stops; a re-run while the job runs waits for it instead of
    resubmitting; a re-run after it finished picks up the finished stage without submitting."""
    from med42_utils.manifest import read_manifest, stage_done
    from med42_utils.sft.stage import run_sft, sft_plan

    real_slurm.use(monkeypatch)
    params, ov, name = gpu_sized_tiny
    sft = run_dir("tiny", name) / "sft"
    plan = sft_plan(params, name, ov)
    assert plan.hardware.accelerator == "h100" and plan.progress_file == sft / "progress.jsonl"
    first = real_slurm.next_job_id()

    with pytest.raises(JobPending, match=rf"SLURM job {first} .*Re-run this notebook") as e:
        run_sft(plan, params, name, wait=False)
    assert e.value.job.job_id == str(first) and real_slurm.next_job_id() == first + 1
    record = json.loads(plan.job_record.read_text())
    assert record["job_id"] == str(first) and record["log"].endswith(f"med42-sft-tiny-{first}.out")

    run_sft(plan, params, name)  # the re-run: waits for the job
    out = capsys.readouterr().out
    assert "still queued or running: waiting for it" in out
    assert real_slurm.next_job_id() == first + 1, "a re-run must not submit a duplicate"
    assert real_slurm.job(first)["JobState"] == "COMPLETED"
    assert f"[job {first} COMPLETED]" in out and "step 2/2 loss" in out
    m = read_manifest(sft)
    assert m["global_step"] == 2 and stage_done(sft, params)
    assert (sft / "logs" / f"med42-sft-tiny-{first}.out").is_file()
    events = [json.loads(line)["event"] for line in (sft / "progress.jsonl").read_text().splitlines()]
    assert events[0] == "begin" and events[-1] == "end" and events.count("log") == 2

    run_sft(plan, params, name)  # finished: picked up, nothing submitted
    assert "already done" in capsys.readouterr().out
    assert real_slurm.next_job_id() == first + 1


# ---------------------------------------------------------------- inside an allocation: srun


def test_srun_in_a_two_node_allocation_runs_one_accelerate_per_node(fake_slurm, monkeypatch, capsys):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu[01-02]")
    monkeypatch.setenv("SLURM_CPUS_ON_NODE", "96")
    monkeypatch.setenv("FAKE_SRUN_EXEC", "0")
    name = f"pytest-srun-{uuid.uuid4().hex[:6]}"
    plan = _plan_8b(name)
    try:
        assert execute(plan) is None
        (argv,) = fakeslurm.calls(fake_slurm, "srun")
        assert argv[:8] == ["--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                            "--job-name=med42-sft-8b", "--gres=gpu:8", "--cpus-per-task=96", "bash"]
        assert argv[8] == "-c"
        line = argv[9]
        assert "accelerate launch" in line and "--num_machines 2 --num_processes 16" in line
        assert "--machine_rank $SLURM_PROCID --main_process_ip $MASTER_ADDR" in line
        env = json.loads((fake_slurm / "srun_env.jsonl").read_text().splitlines()[0])
        assert env == {"MASTER_ADDR": None, "MASTER_PORT": "29500"}  # MASTER_ADDR: set inside the step
        assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1)' in line
        assert fakeslurm.calls(fake_slurm, "sbatch") == [], "inside an allocation nothing is submitted"
        assert "srun done" in capsys.readouterr().out
        log = run_dir("8b", name) / "sft" / "logs" / "srun-med42-sft-8b-77.out"
        assert "fake srun: recorded" in log.read_text(), "the step's output goes to the stage's logs/"

        monkeypatch.setenv("FAKE_SRUN_RC", "5")
        with pytest.raises(slurm.SlurmError, match=r"(?s)srun exited 5.*fake srun: recorded"):
            execute(plan)
    finally:
        shutil.rmtree(run_dir("8b", name), ignore_errors=True)


def test_script_quotes_overrides_with_spaces_and_brackets(tmp_path):
    """bash -n accepts the script and the inner command keeps each --set value as one argument."""
    import shlex
    import subprocess

    p = load_params("8b", {"eval.models": ["base", "sft"]})
    plan = plan_launch(p, "sft", "pytest-quote", "med42_utils.sft.train", ["--set", 'eval.models=["base", "sft"]'])
    path = tmp_path / "s.slurm"
    path.write_text(plan.slurm_script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    srun_line = next(line for line in plan.slurm_script.splitlines() if line.startswith("srun "))
    inner = shlex.split(srun_line.removesuffix(" &"))[-1]  # what bash -c receives on each node (srun runs in the
    # background while the script waits for it: see launch._srun_lines)
    assert 'eval.models=["base", "sft"]' in shlex.split(inner)


def test_progress_lines_show_step_loss_and_eta_of_the_latest_run(tmp_path):
    from med42_utils.progress import progress_line, read_progress

    f = tmp_path / "progress.jsonl"
    assert read_progress(f) is None
    lines = [
        {"event": "begin", "step": 0, "max_steps": 10, "elapsed": 0.0},
        {"event": "log", "step": 9, "max_steps": 10, "elapsed": 90.0, "loss": 0.5},   # an earlier run
        {"event": "begin", "step": 0, "max_steps": 100, "elapsed": 0.0},
        {"event": "log", "step": 20, "max_steps": 100, "elapsed": 60.0, "loss": 2.25},
        {"event": "log", "step": 40, "max_steps": 100, "elapsed": 120.0, "loss": 1.5},
    ]
    f.write_text("\n".join(json.dumps(x) for x in lines) + "\n{\"event\": \"lo")  # last line half-written
    p = read_progress(f)
    assert (p["step"], p["max_steps"], p["loss"]) == (40, 100, 1.5)
    assert p["eta"] == pytest.approx(180.0)  # 3 s/step x 60 steps left
    assert progress_line("job 7 RUNNING", 3725, p) == \
        "[job 7 RUNNING] elapsed 1:02:05 | step 40/100 loss 1.5000 | ETA 0:03:00"
    f.write_text(json.dumps(lines[2]) + "\n")
    p = read_progress(f)
    assert p["loss"] is None and p["eta"] is None
    assert progress_line("job 7 PENDING", 5, None) == "[job 7 PENDING] elapsed 0:00:05"


def test_pending_reasons_that_never_resolve_are_told_from_those_that_do():
    """The reason table itself (the real cluster shows PartitionConfig, ReqNodeNotAvail and JobHeldUser)."""
    from med42_utils.slurm import Status, attention, never_starts, reason_code

    assert reason_code("ReqNodeNotAvail, UnavailableNodes:gpu[3-4]") == "ReqNodeNotAvail"
    for reason in ("PartitionConfig", "BadConstraints", "PartitionTimeLimit", "InvalidAccount",
                   "AssocMaxWallDurationPerJobLimit", "QOSMaxGRESPerJob", "AssocMaxNodesPerJobLimit"):
        meaning, fix = never_starts(reason)
        assert meaning and fix, reason
    for reason in ("Resources", "Priority", "AssocGrpGRES", "QOSMaxJobsPerUserLimit", "BeginTime", "Dependency", ""):
        assert never_starts(reason) is None, reason  # waiting resolves these
    assert "scontrol release 7" in attention(Status("PENDING", "JobHeldUser"), "7")
    assert "scontrol release 7" in attention(Status("REQUEUE_HOLD", "JobHoldMaxRequeue"), "7")
    assert "CONT" in attention(Status("STOPPED"), "7") and "resume" in attention(Status("SUSPENDED"), "7")
    assert attention(Status("PENDING", "Priority"), "7") is None
