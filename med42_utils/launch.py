"""One launcher for SFT, DPO and the eval/judge jobs; where the notebook runs decides how a stage starts.

    plan = plan_launch(params, "sft", run_name, "med42_utils.sft.train", [])
    print(render_plan(plan))     # dry run: configs, commands, per-GPU memory, wall time (writes the SLURM script)
    execute(plan)                # runs it here, with srun in an allocation, or with sbatch, and waits

Placement (med42_utils.hardware.placement): tiny in-process; inside a SLURM allocation with enough nodes,
`srun` one launch per node; a node with the GPUs, `accelerate launch` directly; a login node (sbatch on
PATH), submit the script and poll the job (execute(plan, wait=False) returns after submitting; a re-run
waits for the recorded job instead of submitting it again); otherwise a HardwareError with the fix.
Before anything starts, a job whose inputs, cached models or partition fit are missing is refused (NotReady,
saying what to run first); the SLURM options come from params' slurm section (docs/cluster-options.md).

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

from . import cluster_plan, estimates, inference_plan, preflight, slurm, slurm_site
from .budget import plan_notes
from .checkpoints import plan_note
from .cli import override_args
from .hardware import HardwareError, job_hardware, placement
from .manifest import StageMissingError, fingerprint
from .params import Params, load_params
from .params.base import Hardware
from .params.slurm import SlurmOptions
from .paths import repo_root, resolve, run_dir
from .progress import PROGRESS
from .stages import STAGES, round_names
from .tables import human_count

MAIN_PORT = 29500
JOB_REQUEUE_SECONDS = 300  # 05's and 06's jobs: requeue this long before the time limit
# Set on every node of a multi-node step: rank 0 is the first node of the step itself (not of the allocation,
# which may be larger), so every task agrees on the c10d rendezvous host.
STEP_MASTER = 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1); '


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
    site: "slurm_site.SiteRequest | None" = None  # partition, account, time, ... (params' slurm section)
    site_stage: str = ""                 # which slurm.<stage> options apply: sft, dpo, eval, judge, samples
    needs: "preflight.Needs | None" = None  # what the job reads: checked before anything is submitted
    warnings: list[str] = field(default_factory=list)  # what keeps the request from running here (dry runs show it)
    job_params: "Params | None" = None   # the params the job runs with (preflight's package check)
    needs_job: str = ""                  # the job's name for preflight: sft, dpo_<round>, eval, judge, <x>_samples
    capacity_problems: list[str] = field(default_factory=list)  # a model that cannot fit the job's node

    @property
    def job_record(self) -> Path | None:
        """<script>.job.json: the submitted job, so a re-run waits for it instead of submitting again."""
        return self.slurm_path.with_suffix(".job.json") if self.slurm_path else None

    @property
    def request_record(self) -> Path | None:
        """<script>.request.json: what the last job was asked to do (see job_done)."""
        return self.slurm_path.with_suffix(".request.json") if self.slurm_path else None

    @property
    def log_dir(self) -> Path | None:
        return self.slurm_path.parent / "logs" if self.slurm_path else None


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
                 site: "slurm_site.SiteRequest | None" = None, signal_seconds: int | None = None,
                 requeue_seconds: int | None = None) -> str:
    """An sbatch script: one task per node, each running one `accelerate launch` through srun.

    `site`: the options of params' slurm section (partition, account, time, cpus per task, exclusive, extra);
    None renders the site defaults. Every path is quoted; the job's non-secret settings (HF_HOME,
    HF_HUB_OFFLINE, MED42_OUTPUTS, ...) are exported in the script, so SBATCH_EXPORT=NONE cannot drop them.
    The job is requeueable (a preempted job goes back to the queue). With `signal_seconds` (training stages), SLURM
    sends SIGUSR1 that long before the time limit: the trainer saves a checkpoint and stops, and the script requeues
    the job, which resumes from that checkpoint (docs/resume.md). With `requeue_seconds` (05's and 06's jobs, which
    keep each finished model's work on disk), SIGUSR1 that long before the limit requeues the job at once: the model
    in progress is redone, every finished one is kept."""
    site = site or slurm_site.site_request(SlurmOptions(), hw, None)
    sbatch = "".join(f"#SBATCH {line}\n" for line in site.lines)
    env = "\n".join(slurm_site.environment_lines())
    q = shlex.quote
    return f"""#!/bin/bash
#SBATCH --job-name={job_name}
#SBATCH --nodes={hw.nodes}
#SBATCH --ntasks-per-node=1
#SBATCH --gres=gpu:{hw.gpus_per_node}
{sbatch}#SBATCH --output={q(f"{log_dir}/%x-%j.out")}
#SBATCH --requeue
#SBATCH --open-mode=append
{_signal_lines(signal_seconds) if not requeue_seconds else _signal_lines(requeue_seconds, "the job requeues itself and goes on at the first unfinished model")}# Med42-v2 {stage}: {hw.nodes} nodes x {hw.gpus_per_node} GPUs{", FSDP through accelerate" if requeue_seconds is None else ", one process"}.
# Secrets (HF_TOKEN) come from the environment of the submitting shell, never from this file.
set -euo pipefail
# This job's settings, written here so that a site's SBATCH_EXPORT=NONE cannot drop them (no secrets):
{env}
cd {q(str(repo_root()))}
export PATH={q(python_bin())}:"$PATH"   # the notebook's Python environment
export MASTER_PORT={MAIN_PORT}   # MASTER_ADDR: each step's first node, set inside the step
export TORCH_NCCL_ASYNC_ERROR_HANDLING=1
# newer SLURM: srun no longer inherits --cpus-per-task from sbatch
# (without --cpus-per-task, e.g. --exclusive where sinfo could not say: every CPU the job has on the node)
if [ -n "${{SLURM_CPUS_PER_TASK:-}}" ]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK;
else export SRUN_CPUS_PER_TASK=${{SLURM_CPUS_ON_NODE:-1}}; fi
{_srun_lines(accelerate_line, log_dir, job_name, requeue_seconds or signal_seconds, bool(requeue_seconds))}"""


def _signal_lines(signal_seconds: int | None, what: str = "training saves a checkpoint, stops, and the job "
                  "requeues itself") -> str:
    if not signal_seconds:
        return ""
    return (f"#SBATCH --signal=B:USR1@{signal_seconds}\n"
            f"# SIGUSR1 to this script {signal_seconds} s before the time limit: {what} (docs/resume.md)\n")


def _srun_lines(line: str, log_dir: Path, job_name: str, signal_seconds: int | None, requeue: bool = False) -> str:
    """srun of the node command (--export=ALL: under SBATCH_EXPORT=NONE srun would start the step with an empty
    environment, not even PATH). With a time-limit signal, this script (not the step) gets SIGUSR1 while it waits for
    srun. A job whose work is kept per model (`requeue`) requeues itself at once; the next start skips what finished
    (benchmarks.run.finished, the judging caches). A training job leaves $MED42_STOP_FILE, which the trainer checks
    after every step (a signal that comes while the step is still starting is not lost); a trainer that stopped at a
    checkpoint leaves $MED42_REQUEUE_FILE, and the job is requeued."""
    srun = f"srun --export=ALL --kill-on-bad-exit=1 bash -c {shlex.quote(line)}"
    if not signal_seconds:
        return srun + "\n"
    if requeue:
        before, after = "", 'exit "$rc"\n'
        trap = ('echo "SIGUSR1: the time limit is near; requeueing job $SLURM_JOB_ID: finished models are kept, the '
                'next start goes on from there (restarts so far: ${SLURM_RESTART_COUNT:-0})"; '
                'scontrol requeue "$SLURM_JOB_ID"')
    else:
        logs = shlex.quote(str(log_dir))
        before = f"""export MED42_STOP_FILE={logs}/{job_name}-"${{SLURM_JOB_ID:-local}}".stop
export MED42_REQUEUE_FILE={logs}/{job_name}-"${{SLURM_JOB_ID:-local}}".requeue
rm -f "$MED42_STOP_FILE" "$MED42_REQUEUE_FILE"
"""
        trap = ('echo "SIGUSR1: the time limit is near; asking training to save a checkpoint and stop"; '
                'touch "$MED42_STOP_FILE"')
        after = """[ "$rc" -eq 0 ] || exit "$rc"
if [ -f "$MED42_REQUEUE_FILE" ]; then
  echo "stopped at a checkpoint before the time limit: requeueing job $SLURM_JOB_ID (restarts so far: ${SLURM_RESTART_COUNT:-0})"
  scontrol requeue "$SLURM_JOB_ID" || { echo "scontrol requeue refused: submit the job again to continue from the checkpoint" >&2; exit 1; }
fi
"""
    return f"""{before}trap '{trap}' USR1
{srun} &
step=$!
while :; do  # a trapped signal ends `wait` early: wait again until srun itself has ended
  rc=0; wait "$step" || rc=$?
  kill -0 "$step" 2>/dev/null || break
done
{after}"""


def _site_request(params: Params, stage: str, hw: Hardware, hours: float | None, host_gib: float | None,
                  notes: list[str]) -> tuple["slurm_site.SiteRequest", list[str]]:
    """The job's SLURM options (params' slurm.<stage>) with a default --time from the plan's hours and --mem from
    `host_gib` (real model sizes only), their notes added to `notes` -> (request, what keeps it from fitting)."""
    parts = slurm_site.read_sinfo()
    real = params.model.tiny is None  # tiny labelled as a GPU size (the tests): no H100 time or memory applies
    suggested = cluster_plan.suggested_time(hours) if hours is not None and real else None
    site = slurm_site.site_request(params.slurm.for_stage(stage), hw, parts, suggested, host_gib if real else None,
                                   stage)
    notes += site.notes
    if suggested is not None:
        notes.append(f"suggested --time {suggested}: 1.2 x {hours:,.1f} h + {cluster_plan.STARTUP_HOURS:g} h "
                     f"start-up, rounded up to 15 min")
    return site, slurm_site.fit_problems(site, hw, parts, stage)


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
    if stage not in ("sft", "dpo"):
        raise LaunchError(f"unknown stage '{stage}'; plan_launch takes 'sft' or 'dpo'")
    hw = getattr(params, stage).hardware
    args = ["--size", params.size, "--run-name", run_name, *(extra_args or [])]
    cfg_path = resolve(hw.accelerate_config) if hw.accelerate_config else None
    cfg_notes = _check_config(cfg_path, hw) if cfg_path is not None else []
    mem, hours = (estimates.sft_estimate(params, mfu) if stage == "sft"
                  else estimates.dpo_estimate(params, num_pairs, mfu))
    shape = estimates.model_shape(params)
    notes = [
        f"model shape {shape.name}: {human_count(shape.parameters)} parameters, hidden {shape.hidden}, "
        f"{shape.layers} layers, MLP {shape.intermediate}, vocab {shape.vocab}",
        (f"memory: FSDP full shard over {hw.world_size} process(es)" if hw.launcher != "inprocess" else
         "memory: one process, no FSDP (in-process at this size)") + "; see med42_utils/estimates.py for the assumptions",
        *cfg_notes,
    ]
    timing = None
    if stage == "sft":
        timing = cluster_plan.sft_time(params, mfu)
        steps = params.sft.max_steps
        notes.append(cluster_plan.epochs_covered(params, cluster_plan.packed_rows(params, run_name)))
    else:
        planned = cluster_plan.planned_pairs(params)
        names = round_names(params)
        one = job.removeprefix("dpo_") if job and job.removeprefix("dpo_") in names else None  # a round's own job
        rounds = 1 if one else None
        if num_pairs is None and planned is not None:
            pairs, how = planned
            if one:
                num_pairs = pairs[names.index(one)]
                notes.append(f"DPO pairs of {one} (this job): {num_pairs:,}, from the {how}")
            else:
                num_pairs = -(-sum(pairs) // len(pairs))
                notes.append(f"DPO pairs: {' + '.join(f'{p:,}' for p in pairs)} over {len(pairs)} round(s), "
                             f"from the {how}")
        if num_pairs is not None:
            mem, hours = estimates.dpo_estimate(params, num_pairs, mfu, rounds)
            timing = cluster_plan.dpo_time(params, num_pairs, mfu, rounds)
        d = params.dpo
        steps = -(-num_pairs * d.num_train_epochs // d.batch_size) * (rounds or len(d.rounds)) if num_pairs else None
    if hours is not None:
        notes.append(f"time at MFU {mfu:.0%} of {estimates.H100_BF16_PEAK_FLOPS / 1e12:.0f} TFLOP/s bf16 per H100: "
                     f"compute {hours:,.1f} h")
    elif stage == "dpo":
        notes.append("time: pass num_pairs to estimate DPO wall time (a round's datasets have no published size)")
    if timing is not None and hw.accelerator != "cpu":
        notes += timing.notes
        hours = timing.total
    notes += plan_notes(params, stage)
    if hw.accelerator == "cpu":
        notes.append("CPU run: the time estimate assumes H100s and does not apply")
        hours = None
    else:
        notes.append(cluster_plan.disk_note(params, stage))
    notes.append(plan_note(params, stage, hours, steps))
    if stage == "dpo" and params.dpo.method == "lora":
        notes.append("reference model: the policy with its LoRA adapters switched off (no second model in memory)")
    elif stage == "dpo" and not params.dpo.precompute_ref_log_probs:
        notes.append("reference model: frozen bf16 weights, wrapped per decoder layer like the policy before TRL sees "
                     "it (training.frozen_reference; TRL alone would make it one FSDP unit), no grads, no optimizer")
    if hw.accelerator != "cpu":
        live_ref = stage == "dpo" and params.dpo.method != "lora" and not params.dpo.precompute_ref_log_probs
        lora = getattr(params, stage).method == "lora"
        notes.append(cluster_plan.training_host_memory(shape, hw.gpus_per_node, hw.nodes, live_ref, lora))

    slurm_text = slurm_path = line = site = None
    warnings: list[str] = []
    if hw.launcher == "inprocess":
        commands = [shlex.join(["python", "-m", module, *args])]
        notes.append("in-process: execute() calls the module's main() in this Python process")
    else:
        multinode = hw.nodes > 1
        line = " ".join(a if a.startswith("$") else shlex.quote(a)
                        for a in _accelerate_cmd(cfg_path, hw, module, args, multinode))
        if multinode:
            line = STEP_MASTER + line
        sdir = run_dir(params.size, run_name) / STAGES[stage].folder
        job = job or stage
        slurm_path = sdir / f"launch_{job}.slurm"
        job_name = f"med42-{job}-{params.size}"
        host = cluster_plan.host_memory_gib(shape) if hw.gpus_per_node == 1 else None
        site, warnings = _site_request(params, stage, hw, hours, host, notes)
        slurm_text = render_slurm(stage, hw, line, job_name, sdir / "logs", site,
                                  signal_seconds=getattr(params, stage).stop_signal_seconds)
        limit = slurm_site.time_hours(site.options.time) if site.options.time else None
        if limit is not None and hours is not None and hours > limit:
            notes.append(f"slurm time {site.options.time} is shorter than the estimated {hours:,.1f} h: the job will "
                         f"reach its time limit part way, save a checkpoint and requeue itself (docs/resume.md); "
                         f"raise slurm.{stage}.time to run it in one go")
        if multinode:
            commands = [f"mkdir -p {shlex.quote(str(sdir / 'logs'))}", f"sbatch {shlex.quote(str(slurm_path))}"]
        else:
            commands = [shlex.join(_accelerate_cmd(cfg_path, hw, module, args, multinode=False))]
            notes.append(f"one node: this command on a node with the GPUs; from a login node, sbatch {slurm_path.name}")
    return LaunchPlan(
        stage=stage, hardware=hw, accelerate_config=cfg_path, commands=commands, slurm_script=slurm_text,
        memory_gib=mem.as_gib(), est_hours=hours, notes=notes, module=module, args=args, slurm_path=slurm_path,
        node_command=line or "", progress_file=progress_file or (slurm_path.parent / PROGRESS if slurm_path else None),
        job_name=job_name if slurm_path else "", site=site, site_stage=stage,
        needs=preflight.stage_needs(params, run_name, job or stage), warnings=warnings,
        job_params=params, needs_job=job or stage,
    )


def plan_job(params: Params, job: str, run_name: str, stage_dir: Path, module: str,
             extra_args: list[str] | None = None, models: list[str] | None = None) -> LaunchPlan:
    """A one-process GPU job (05's lm-eval, 06's answers and judging, 04's sample answers):
    `python -m module --size S --run-name R ...` on one node with hardware.job_hardware(params).
    `models`: the model stages it reads (default: eval.models for 'eval', judge.models for 'judge').
    For 'eval' and 'judge' the plan carries each model's GPUs, memory and hours from params alone
    (med42_utils.inference_plan), a default --time and --mem from them, and refuses what cannot fit the node."""
    hw = job_hardware(params)
    args = ["--size", params.size, "--run-name", run_name, *(extra_args or [])]
    command = shlex.join(["python", "-m", module, *args])
    slurm_path = slurm_text = site = None
    job_name = f"med42-{job}-{params.size}"
    site_stage = "samples" if job.endswith("_samples") else "dpo" if job.startswith("onpolicy_") else job
    notes = [f"one process on 1 node x {hw.gpus_per_node} {hw.accelerator}"]
    memory, hours, capacity, host = {}, None, [], None
    if job in ("eval", "judge") and hw.accelerator != "cpu":
        fig = inference_plan.job_figures(params, job, hw.gpus_per_node)
        memory, hours = fig.memory_gib(), fig.hours
        notes += [*fig.lines(), *fig.notes]
        capacity = fig.problems(hw.gpus_per_node)
        big = max((m.shape for m in fig.models if m.shape), key=lambda s: s.parameters, default=None)
        host = cluster_plan.host_memory_gib(big, fig.parallel) if big else None
    warnings: list[str] = list(capacity)
    if hw.launcher != "inprocess":
        slurm_path = Path(stage_dir) / f"launch_{job}.slurm"
        requeue = JOB_REQUEUE_SECONDS if job in ("eval", "judge") else None
        if requeue:
            notes.append(f"resumable: every finished model is kept; SIGUSR1 {requeue} s before the time limit "
                         f"requeues the job (--requeue), which goes on at the next model")
        site, unfit = _site_request(params, site_stage, hw, hours, host, notes)
        warnings += unfit
        slurm_text = render_slurm(job, hw, command, job_name, slurm_path.parent / "logs", site,
                                  requeue_seconds=requeue)
    return LaunchPlan(stage=job, hardware=hw, accelerate_config=None, commands=[command], slurm_script=slurm_text,
                      memory_gib=memory, est_hours=hours, module=module, args=args, slurm_path=slurm_path,
                      node_command=command, job_name=job_name, notes=notes, site=site, site_stage=site_stage,
                      needs=preflight.stage_needs(params, run_name, job, models), job_params=params, needs_job=job,
                      warnings=warnings, capacity_problems=capacity)


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
        *([f"- SLURM site options (slurm.{plan.site_stage} in params, MED42_SLURM for one run): "
           + (" ".join(f"`{x}`" for x in plan.site.lines) or "none (the cluster's defaults)")] if plan.site else []),
        "", "Commands:", "```bash", *plan.commands, "```",
    ]
    if plan.slurm_script:
        out += ["", f"SLURM script (`{plan.slurm_path}`):", "```bash", plan.slurm_script.rstrip(), "```"]
    if plan.memory_gib:
        small = plan.memory_gib.get("total", 0) < 1  # tiny: MiB, so the table is not all zeros
        unit, scale, fmt = ("MiB", 1024, "{:,.1f}") if small else ("GiB", 1, "{:,.2f}")
        per = "per process" if hw.accelerator == "cpu" else "per GPU"
        if plan.stage in ("eval", "judge"):
            per = "largest model, over its GPUs"
        out += ["", f"| {per} | {unit} |", "|---|---|"]
        out += [f"| {k} | {fmt.format(v * scale)} |" for k, v in plan.memory_gib.items()]
    hours = f"{plan.est_hours:,.1f} h" if plan.est_hours is not None else "n/a"
    out += ["", f"- estimated wall time: {hours}", *(f"- {n}" for n in plan.notes)]
    out += [f"- **WARNING: this request cannot run on this cluster as it is (a submit would refuse it):** {w}"
            for w in plan.warnings]
    return "\n".join(out)


def _rel(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return str(path.relative_to(repo_root()))
    except ValueError:
        return str(path)


class NotReady(LaunchError):
    """The job cannot succeed yet (inputs missing, model not cached, request fits no partition): nothing was
    submitted; the message says what to run or change first."""


def readiness_problems(plan: LaunchPlan, where: str) -> list[str]:
    """What keeps the plan's job from succeeding, checked before it starts: its inputs at this size, the
    models an offline job reads (HF_HUB_OFFLINE), and, for sbatch, whether the request fits a partition."""
    from huggingface_hub import constants

    # a submitted script runs offline unless this shell says HF_HUB_OFFLINE=0; srun and local launches inherit
    # this process's environment as it is
    offline = slurm_site.job_offline() if where == "sbatch" else bool(constants.HF_HUB_OFFLINE)
    out = preflight.problems(plan.needs, offline) if plan.needs is not None else []
    out += plan.capacity_problems
    if plan.needs is not None and plan.job_params is not None:
        out += preflight.environment_problems(plan.job_params, plan.needs_job, plan.hardware.accelerator)
    if where == "sbatch" and plan.site is not None:
        out += slurm_site.fit_problems(plan.site, plan.hardware, slurm_site.read_sinfo(), plan.site_stage)
    return out


def refuse_unless_ready(plan: LaunchPlan, where: str) -> None:
    problems = readiness_problems(plan, where)
    if problems:
        verb = "submitted" if where == "sbatch" else "started"
        raise NotReady(f"{plan.stage} was not {verb}: it cannot succeed yet.\n"
                       + "\n".join(f"  - {p}" for p in problems))


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
    refuse_unless_ready(plan, where)
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
        log = plan.log_dir / f"srun-{plan.job_name}-{os.environ.get('SLURM_JOB_ID', 'local')}.out"
        slurm.srun(["bash", "-c", f"cd {shlex.quote(str(repo_root()))} && {plan.node_command}"], hw.nodes, log,
                   plan.progress_file, env=env, interval=interval,
                   gpus_per_node=hw.gpus_per_node if hw.accelerator != "cpu" else 0, step_name=plan.job_name)
        return None
    # sbatch from a login node
    name = plan.job_name
    job = slurm.Job.read(plan.job_record)
    if job is not None and slurm.is_active(job):
        print(f"SLURM job {job.job_id} of this stage is still queued or running: waiting for it "
              f"(not submitting another); log {job.log}", flush=True)
    else:
        if plan.site is not None:
            print(f"SLURM options (slurm.{plan.site_stage} in params, MED42_SLURM for one run): "
                  f"{' '.join(plan.site.lines) or 'none (the cluster defaults)'}", flush=True)
        try:
            job = slurm.submit(plan.slurm_path, name, plan.job_record)
        except slurm.SlurmError as e:  # sbatch's own message, plus where to change what it refused
            hint = slurm_site.sbatch_hint(str(e), plan.site_stage)
            raise slurm.SlurmError(f"{e}\n{hint}" if hint else str(e)) from None
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
    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    base, now = flat(load_params(params.size).model_dump()), flat(params.model_dump())
    return {k: v for k, v in now.items() if base.get(k, object()) != v}


def job_request(plan: LaunchPlan, inputs: list[Path]) -> dict:
    """What a job is asked to do: its command (module, arguments, params overrides) and the manifests of the
    stages it reads. Equal requests with outputs written after the request mean the work is done."""
    def fp(d: Path) -> str | None:
        try:
            return fingerprint(d)
        except StageMissingError:
            return None

    return {"command": plan.commands[0], "inputs": {str(d): fp(Path(d)) for d in inputs}}


def _recorded(record: Path, request: dict) -> bool:
    """Whether the request record (<script>.request.json) holds `request`."""
    try:
        return record.is_file() and json.loads(record.read_text()) == request
    except json.JSONDecodeError:
        return False


def job_done(plan: LaunchPlan, outputs: list[Path], inputs: list[Path]) -> str | None:
    """Why the job's work is already there (None when it must run): the recorded request equals this one and
    every output was written after it (by the job it describes)."""
    record = plan.request_record
    if record is None or not outputs or not _recorded(record, job_request(plan, inputs)):
        return None
    asked = record.stat().st_mtime_ns
    if all(Path(o).is_file() and Path(o).stat().st_mtime_ns >= asked for o in outputs):
        return f"{', '.join(Path(o).name for o in outputs)} written by the job for this same request"
    return None


def job_plan(params: Params, job: str, run_name: str, stage_dir: Path, module: str,
             extra_args: list[str] | None = None, models: list[str] | None = None) -> LaunchPlan:
    """The plan run_job would submit (the params overrides passed on as --set), for a dry run to render."""
    return plan_job(params, job, run_name, stage_dir, module,
                    [*override_args(params_overrides(params)), *(extra_args or [])], models)


def run_job(params: Params, job: str, run_name: str, stage_dir: Path, module: str,
            extra_args: list[str] | None = None, wait: bool = True, outputs: list[Path] | None = None,
            inputs: list[Path] | None = None, models: list[str] | None = None) -> None:
    """Run `python -m module` where the GPUs are (a node with them, srun in an allocation, or sbatch and
    wait), passing the params overrides on; wait=False raises JobPending after submitting.

    `outputs`: the files the job writes last; `inputs`: the stage folders it reads. When an earlier job with the
    same command and inputs wrote every output, nothing runs again (a re-run after wait=False submits nothing).
    `models`: the model stages it reads, checked before submitting (see plan_job).
    """
    plan = job_plan(params, job, run_name, stage_dir, module, extra_args, models)
    done = job_done(plan, outputs or [], inputs or [])
    if done:
        print(f"{job}: already done ({done}); nothing submitted", flush=True)
        return
    record = plan.request_record
    if record is not None:
        request = job_request(plan, inputs or [])
        if not _recorded(record, request):   # a job recorded for another request (say, another question) is not waited for
            plan.job_record.unlink(missing_ok=True)
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps(request, indent=1))
    submitted = execute(plan, wait=wait)
    if submitted is not None and not wait:
        raise JobPending(submitted)
