"""One launcher for SFT, DPO and the eval/judge jobs; where the notebook runs decides how a stage starts.

    plan = plan_launch(params, "sft", run_name, "med42_utils.sft.train", [])
    print(render_plan(plan))     # dry run: configs, commands, per-GPU memory, wall time (writes the SLURM script)
    execute(plan)                # runs it here, with srun in an allocation, or with sbatch, and waits

Placement (med42_utils.hardware.placement): tiny in-process; inside a SLURM allocation with enough nodes,
`srun` one launch per node; a node with the GPUs, `accelerate launch` directly; a login node (sbatch on
PATH), submit the script and poll the job (execute(plan, wait=False) returns after submitting; a re-run
waits for the recorded job instead of submitting it again); otherwise a HardwareError with the fix.

`module` must be runnable as `python -m <module> --size S --run-name R [extra args]` and, for the
in-process launcher, expose `main(argv: list[str]) -> int`.
"""
from __future__ import annotations

import importlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from . import estimates, slurm
from .hardware import HardwareError, job_hardware, placement
from .params import Params
from .params.base import Hardware
from .paths import repo_root, resolve, run_dir
from .progress import PROGRESS

MAIN_PORT = 29500
_STAGE_DIR = {"sft": "sft", "dpo": "dpo"}


class LaunchError(RuntimeError):
    """A launch could not be planned or did not succeed; the message holds the command or the fix."""


class JobPending(LaunchError):
    """wait=False: the stage's SLURM job was submitted; the notebook stops here until a re-run picks it up."""

    def __init__(self, job: "slurm.Job"):
        self.job = job
        super().__init__(
            f"SLURM job {job.job_id} ({job.name}) submitted and not waited for (wait=False). Re-run this notebook "
            f"with the same parameters to continue: it waits for the job while it is queued or running, and picks "
            f"up the finished stage once it is done. Meanwhile: squeue -j {job.job_id}; tail -f {job.log}")


@dataclass
class LaunchPlan:
    stage: str
    hardware: Hardware
    accelerate_config: Path | None
    commands: list[str]
    slurm_script: str | None
    memory_gib: dict[str, float]
    est_hours: float | None
    notes: list[str] = field(default_factory=list)
    module: str = ""
    args: list[str] = field(default_factory=list)
    slurm_path: Path | None = None
    node_command: str = ""               # what srun runs on each node (the SLURM script's line)
    job_name: str = ""                   # the SLURM job name, med42-<job>-<size>
    progress_file: Path | None = None    # progress.jsonl the job's trainer writes

    @property
    def job_record(self) -> Path | None:
        """<script>.job.json: the submitted job, so a re-run waits for it instead of submitting again."""
        return self.slurm_path.with_suffix(".job.json") if self.slurm_path else None

    @property
    def log_dir(self) -> Path | None:
        return self.slurm_path.parent / "logs" if self.slurm_path else None


def _hardware(params: Params, stage: str) -> Hardware:
    if stage == "sft":
        return params.sft.hardware
    if stage == "dpo":
        return params.dpo.hardware
    raise LaunchError(f"unknown stage '{stage}'; plan_launch takes 'sft' or 'dpo'")


def _check_config(path: Path, hw: Hardware) -> list[str]:
    """The accelerate config must exist and fit the hardware; count mismatches become notes
    (the command line passes --num_machines/--num_processes from params, which win)."""
    if not path.is_file():
        raise LaunchError(f"accelerate config {path} not found; fix hardware.accelerate_config in params")
    cfg = yaml.safe_load(path.read_text()) or {}
    if not isinstance(cfg, dict) or "distributed_type" not in cfg:
        raise LaunchError(f"{path} is not an accelerate config (no distributed_type); see params/accelerate/")
    if hw.launcher == "inprocess":
        return []
    if hw.accelerator == "cpu" and not cfg.get("use_cpu"):
        raise LaunchError(f"{path}: hardware.accelerator is cpu but the config lacks 'use_cpu: true'")
    if hw.accelerator != "cpu" and cfg.get("use_cpu"):
        raise LaunchError(f"{path} says use_cpu: true but hardware.accelerator is {hw.accelerator}")
    want = {"num_machines": hw.nodes, "num_processes": hw.world_size}
    return [
        f"{path.name} says {k}: {cfg.get(k)}; the command line sets {v} from params"
        for k, v in want.items() if cfg.get(k) != v
    ]


def _accelerate_cmd(cfg_path: Path, hw: Hardware, module: str, args: list[str], multinode: bool) -> list[str]:
    cmd = ["accelerate", "launch", "--config_file", str(cfg_path),
           "--num_machines", str(hw.nodes), "--num_processes", str(hw.world_size)]
    if multinode:
        cmd += ["--machine_rank", "$SLURM_PROCID", "--main_process_ip", "$MASTER_ADDR",
                "--main_process_port", str(MAIN_PORT), "--rdzv_backend", "c10d"]
    return cmd + ["-m", module, *args]


def python_bin() -> str:
    """The folder of this Python's executables (accelerate, python). Jobs put it first on PATH so they run in the
    notebook's own environment even when the kernel was started without activating it (e.g. `.venv/bin/jupyter`)."""
    return str(Path(sys.executable).parent)


def render_slurm(stage: str, hw: Hardware, accelerate_line: str, job_name: str, log_dir: Path,
                 signal_seconds: int | None = None) -> str:
    """An sbatch script: one task per node, each running one `accelerate launch` through srun.

    The job is requeueable (a preempted job goes back to the queue). With `signal_seconds` (training stages), SLURM
    sends SIGUSR1 that long before the time limit: the trainer saves a checkpoint and stops, leaving
    $MED42_REQUEUE_FILE, and the script requeues the job, which resumes from that checkpoint (docs/resume.md)."""
    return f"""#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={hw.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:{hw.gpus_per_node}
#SBATCH --cpus-per-task=96
#SBATCH --exclusive
#SBATCH --output={log_dir}/%x-%j.out
#SBATCH --requeue
#SBATCH --open-mode=append
{_signal_lines(signal_seconds)}# Med42-v2 {stage}: {hw.nodes} nodes x {hw.gpus_per_node} GPUs, FSDP through accelerate.
# Secrets (HF_TOKEN) come from the environment of the submitting shell, never from this file.
set -euo pipefail
cd {repo_root()}
export PATH={shlex.quote(python_bin())}:$PATH   # the notebook's Python environment
export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_PORT={MAIN_PORT}
export NCCL_ASYNC_ERROR_HANDLING=1
# newer SLURM: srun no longer inherits --cpus-per-task from sbatch
if [ -n "${{SLURM_CPUS_PER_TASK:-}}" ]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK; fi
{_srun_lines(accelerate_line, log_dir, job_name, signal_seconds)}"""


def _signal_lines(signal_seconds: int | None) -> str:
    if not signal_seconds:
        return ""
    return (f"#SBATCH --signal=B:USR1@{signal_seconds}\n"
            f"# SIGUSR1 to this script {signal_seconds} s before the time limit: training saves a checkpoint, "
            "stops, and the job requeues itself (docs/resume.md)\n")


def _srun_lines(line: str, log_dir: Path, job_name: str, signal_seconds: int | None) -> str:
    """srun of the node command. With a time-limit signal, this script (not the step) gets SIGUSR1 and leaves
    $MED42_STOP_FILE, which the trainer checks after every step (a signal that comes while the step is still
    starting is not lost); a trainer that stopped at a checkpoint leaves $MED42_REQUEUE_FILE, and the job is
    requeued."""
    if not signal_seconds:
        return f"srun --kill-on-bad-exit=1 bash -c {shlex.quote(line)}\n"
    logs = shlex.quote(str(log_dir))
    return f"""export MED42_STOP_FILE={logs}/{job_name}-$SLURM_JOB_ID.stop
export MED42_REQUEUE_FILE={logs}/{job_name}-$SLURM_JOB_ID.requeue
rm -f "$MED42_STOP_FILE" "$MED42_REQUEUE_FILE"
trap 'echo "SIGUSR1: the time limit is near; asking training to save a checkpoint and stop"; touch "$MED42_STOP_FILE"' USR1
srun --kill-on-bad-exit=1 bash -c {shlex.quote(line)} &
step=$!
while :; do  # a trapped signal ends `wait` early: wait again until srun itself has ended
  rc=0; wait "$step" || rc=$?
  kill -0 "$step" 2>/dev/null || break
done
[ "$rc" -eq 0 ] || exit "$rc"
if [ -f "$MED42_REQUEUE_FILE" ]; then
  echo "stopped at a checkpoint before the time limit: requeueing job $SLURM_JOB_ID (restarts so far: ${{SLURM_RESTART_COUNT:-0}})"
  scontrol requeue "$SLURM_JOB_ID" || {{ echo "scontrol requeue refused: submit the job again to continue from the checkpoint" >&2; exit 1; }}
fi
"""


def override_args(overrides: dict | None) -> list[str]:
    """Params overrides as `--set key=value` arguments for the stage's entry point (None values skipped)."""
    out: list[str] = []
    for k, v in (overrides or {}).items():
        if v is not None:
            out += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    return out


def parse_override_args(items: list[str]) -> dict:
    """The inverse of override_args: ['sft.max_steps=10', ...] -> {'sft.max_steps': 10}.

    JSON first (YAML 1.1 would read 5e-06 as a string), then a YAML scalar, else the plain string.
    """
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set takes key=value (e.g. sft.max_steps=10), got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = yaml.safe_load(value)
    return out


def plan_launch(
    params: Params,
    stage: Literal["sft", "dpo"],
    run_name: str,
    module: str,
    extra_args: list[str] | None = None,
    num_pairs: int | None = None,
    mfu: float = estimates.ASSUMED_MFU,
    job: str | None = None,
    progress_file: Path | None = None,
) -> LaunchPlan:
    """How `module` runs for `stage` on the params' hardware, with memory and time estimates.

    `num_pairs` (DPO only): preference pairs per round, for the time estimate (None: no estimate).
    `job`: names the SLURM script and job (default: the stage), e.g. "dpo_round2".
    `progress_file`: where the trainer writes progress lines (default: <stage dir>/progress.jsonl).
    """
    hw = _hardware(params, stage)
    args = ["--size", params.size, "--run-name", run_name, *(extra_args or [])]
    cfg_path = resolve(hw.accelerate_config) if hw.accelerate_config else None
    cfg_notes = _check_config(cfg_path, hw) if cfg_path is not None else []
    if stage == "sft":
        mem, hours = estimates.sft_estimate(params, mfu)
    else:
        mem, hours = estimates.dpo_estimate(params, num_pairs, mfu)
    shape = estimates.model_shape(params)
    notes = [
        f"model shape {shape.name}: {shape.parameters / 1e9:.2f}B parameters, hidden {shape.hidden}, "
        f"{shape.layers} layers, MLP {shape.intermediate}, vocab {shape.vocab}",
        f"memory: FSDP full shard over {hw.world_size} process(es); see med42_utils/estimates.py for the assumptions",
        *cfg_notes,
    ]
    if hours is not None:
        notes.append(f"time at MFU {mfu:.0%} of {estimates.H100_BF16_PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 per H100")
    elif stage == "dpo":
        notes.append("time: pass num_pairs to estimate DPO wall time")
    from .budget import plan_notes
    from .checkpoints import plan_note

    notes += plan_notes(params, stage)
    if hw.accelerator == "cpu":
        notes.append("CPU run: the time estimate assumes H100s and does not apply")
        hours = None
    if stage == "sft":
        notes.append(plan_note(params, stage, hours, params.sft.max_steps))
    else:
        d = params.dpo
        steps = -(-num_pairs * d.num_train_epochs // d.batch_size) * len(d.rounds) if num_pairs else None
        notes.append(plan_note(params, stage, hours, steps))
    if stage == "dpo" and params.dpo.method == "lora":
        notes.append("reference model: the policy with its LoRA adapters switched off (no second model in memory)")
    elif stage == "dpo" and not params.dpo.precompute_ref_log_probs:
        notes.append("reference model: frozen bf16 weights, sharded like the policy (no grads, no optimizer)")

    python = "python"
    slurm_text = slurm_path = line = None
    if hw.launcher == "inprocess":
        commands = [shlex.join([python, "-m", module, *args])]
        notes.append("in-process: execute() calls the module's main() in this Python process")
    else:
        multinode = hw.nodes > 1
        line = " ".join(a if a.startswith("$") else shlex.quote(a)
                        for a in _accelerate_cmd(cfg_path, hw, module, args, multinode))
        sdir = run_dir(params.size, run_name) / _STAGE_DIR[stage]
        job = job or stage
        slurm_path = sdir / f"launch_{job}.slurm"
        job_name = f"med42-{job}-{params.size}"
        slurm_text = render_slurm(stage, hw, line, job_name, sdir / "logs",
                                  signal_seconds=getattr(params, stage).stop_signal_seconds)
        if multinode:
            commands = [f"mkdir -p {sdir / 'logs'}", f"sbatch {slurm_path}"]
        else:
            commands = [shlex.join(_accelerate_cmd(cfg_path, hw, module, args, multinode=False))]
            notes.append(f"one node: this command on a node with the GPUs; from a login node, sbatch {slurm_path.name}")
    return LaunchPlan(
        stage=stage, hardware=hw, accelerate_config=cfg_path, commands=commands, slurm_script=slurm_text,
        memory_gib=mem.as_gib(), est_hours=hours, notes=notes, module=module, args=args, slurm_path=slurm_path,
        node_command=line or "", progress_file=progress_file or (slurm_path.parent / PROGRESS if slurm_path else None),
        job_name=job_name if slurm_path else "",
    )


def plan_job(params: Params, job: str, run_name: str, stage_dir: Path, module: str,
             extra_args: list[str] | None = None) -> LaunchPlan:
    """A one-process GPU job (05's lm-eval, 06's answers and judging, 04's sample answers):
    `python -m module --size S --run-name R ...` on one node with hardware.job_hardware(params)."""
    hw = job_hardware(params)
    args = ["--size", params.size, "--run-name", run_name, *(extra_args or [])]
    command = shlex.join(["python", "-m", module, *args])
    slurm_path = slurm_text = None
    job_name = f"med42-{job}-{params.size}"
    if hw.launcher != "inprocess":
        slurm_path = Path(stage_dir) / f"launch_{job}.slurm"
        slurm_text = render_slurm(job, hw, command, job_name, slurm_path.parent / "logs")
    return LaunchPlan(stage=job, hardware=hw, accelerate_config=None, commands=[command], slurm_script=slurm_text,
                      memory_gib={}, est_hours=None, module=module, args=args, slurm_path=slurm_path,
                      node_command=command, job_name=job_name,
                      notes=[f"one process on 1 node x {hw.gpus_per_node} {hw.accelerator}"])


def write_script(plan: LaunchPlan) -> Path | None:
    """Write the plan's SLURM script (and its logs/ folder); returns its path (None in-process)."""
    if plan.slurm_path is None or plan.slurm_script is None:
        return None
    plan.log_dir.mkdir(parents=True, exist_ok=True)
    plan.slurm_path.write_text(plan.slurm_script)
    return plan.slurm_path


def render_plan(plan: LaunchPlan) -> str:
    """Markdown: hardware, config, commands, SLURM script (written to its path), per-GPU memory, wall time."""
    hw = plan.hardware
    write_script(plan)
    out = [
        f"### Launch plan: {plan.stage}",
        f"- hardware: {hw.nodes} node(s) x {hw.gpus_per_node} {hw.accelerator.upper()} "
        f"(world size {hw.world_size}), launcher `{hw.launcher}`",
        f"- accelerate config: `{_rel(plan.accelerate_config)}`",
        "", "Commands:", "```bash", *plan.commands, "```",
    ]
    if plan.slurm_script:
        out += ["", f"SLURM script (`{plan.slurm_path}`):", "```bash", plan.slurm_script.rstrip(), "```"]
    if plan.memory_gib:
        out += ["", "| per GPU | GiB |", "|---|---|"]
        out += [f"| {k} | {v:,.2f} |" for k, v in plan.memory_gib.items()]
    hours = f"{plan.est_hours:,.1f} h" if plan.est_hours is not None else "n/a"
    out += ["", f"- estimated wall time: {hours}", *(f"- {n}" for n in plan.notes)]
    return "\n".join(out)


def _rel(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


def execute(plan: LaunchPlan, wait: bool = True, interval: float | None = None) -> slurm.Job | None:
    """Run the plan from wherever this process is (see hardware.placement) and wait for it.

    in-process: module.main(args). local: `accelerate launch` (or python) as a subprocess. srun: one task
    per allocated node, blocking, with progress lines. sbatch: submit (or find the recorded job still
    queued/running), then poll with progress lines; wait=False returns the job right after submitting.
    Failures raise LaunchError (or slurm.SlurmError with the log tail); no placement raises HardwareError.
    """
    hw = plan.hardware
    where, why = placement(hw)
    if where == "refuse":
        raise HardwareError(f"{plan.stage} at {hw.nodes} node(s) x {hw.gpus_per_node} {hw.accelerator} "
                            f"cannot run on this machine: {why}")
    if where == "inprocess":
        mod = importlib.import_module(plan.module)
        if not hasattr(mod, "main"):
            raise LaunchError(f"module {plan.module} has no main(argv); the in-process launcher needs one")
        rc = mod.main(list(plan.args))
        if rc:
            raise LaunchError(f"{plan.commands[0]} returned {rc}")
        return None
    write_script(plan)
    print(f"{plan.stage}: {why}", flush=True)
    if where == "local":
        cmd = shlex.split(plan.commands[-1])
        cmd = ([sys.executable, "-m", "accelerate.commands.launch", *cmd[2:]] if cmd[0] == "accelerate"
               else [sys.executable, *cmd[1:]])
        r = subprocess.run(cmd, cwd=repo_root())
        if r.returncode != 0:
            raise LaunchError(f"launch failed (exit {r.returncode}): {shlex.join(cmd)}")
        return None
    if where == "srun":
        env = dict(os.environ, MASTER_PORT=str(MAIN_PORT), PATH=os.pathsep.join([python_bin(), os.environ.get("PATH", "")]))
        if hw.nodes > 1:
            env["MASTER_ADDR"] = slurm.master_addr()
        log = plan.log_dir / f"srun-{plan.job_name}-{os.environ.get('SLURM_JOB_ID', 'local')}.out"
        slurm.srun(["bash", "-c", f"cd {shlex.quote(str(repo_root()))} && {plan.node_command}"], hw.nodes, log,
                   plan.progress_file, env=env, interval=interval,
                   gpus_per_node=hw.gpus_per_node if hw.accelerator != "cpu" else 0)
        return None
    # sbatch from a login node
    name = plan.job_name
    job = slurm.Job.read(plan.job_record)
    if job is not None and slurm.is_active(job):
        print(f"SLURM job {job.job_id} of this stage is still queued or running: waiting for it "
              f"(not submitting another); log {job.log}", flush=True)
    else:
        job = slurm.submit(plan.slurm_path, name, plan.job_record)
        print(f"submitted SLURM job {job.job_id} ({name}); log {job.log}", flush=True)
    if not wait:
        print(f"not waiting (wait=False). Follow it with `squeue -j {job.job_id}` and `tail -f {job.log}`; "
              "re-run this notebook with the same parameters to continue: while the job is queued or running the "
              "re-run waits for it, once it has finished the re-run picks up the finished stage.", flush=True)
        return job
    slurm.wait(job, plan.progress_file, interval)
    return job


def params_overrides(params: Params) -> dict:
    """The dotted-key overrides that turn the size's params file into `params` (to pass a notebook's
    overrides on to the job it launches)."""
    from .params import load_params

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    base, now = flat(load_params(params.size).model_dump()), flat(params.model_dump())
    return {k: v for k, v in now.items() if base.get(k, object()) != v}


def run_job(params: Params, job: str, run_name: str, stage_dir: Path, module: str,
            extra_args: list[str] | None = None, wait: bool = True) -> None:
    """Run `python -m module` where the GPUs are (a node with them, srun in an allocation, or sbatch and
    wait), passing the params overrides on; wait=False raises JobPending after submitting."""
    args = [*override_args(params_overrides(params)), *(extra_args or [])]
    submitted = execute(plan_job(params, job, run_name, stage_dir, module, args), wait=wait)
    if submitted is not None and not wait:
        raise JobPending(submitted)
