"""SLURM from a notebook: submit a script and wait for it, or run a blocking srun step, with progress lines.

    job = submit(script, log_dir, job_name)      # sbatch --parsable; a record file lets a re-run find the job
    wait(job, progress_file)                      # polls squeue -t all (sacct once the controller forgot the job),
                                                  # prints progress and PENDING reasons, raises on failure
    srun(["bash", "-c", line], nodes, log, progress_file)   # inside an allocation

Poll interval: MED42_POLL_SECONDS (default 30 s).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .progress import progress_line, read_progress

FAILED = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED", "STOPPED",
          "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD"}

# PENDING reasons that no amount of waiting resolves: (what SLURM means, what to change)
_FIT = ("see what the partition offers with `sinfo -N -o '%P %N %c %G %m %l'` (CPUs, GPUs, memory, time limit per "
        "node) and lower the request in the stage's SLURM settings, or choose a partition that has it")
NEVER_STARTS = {
    "PartitionConfig": ("the request does not fit any node of the partition (CPUs per task, GPUs, memory or nodes)",
                        _FIT),
    "PartitionNodeLimit": ("more (or fewer) nodes than the partition allows for one job", _FIT),
    "PartitionTimeLimit": ("a --time above the partition's MaxTime", "lower the time limit, or choose a partition "
                           "with a longer MaxTime (`sinfo -o '%P %l'`)"),
    "ReqNodeNotAvail": ("a node the job needs is down, drained or reserved",
                        "check `sinfo -R` for the node and its reason; ask the administrators, or request nodes "
                        "that are up"),
    "BadConstraints": ("no node offers the requested features or resources (--constraint, --gres)",
                       "check the features and GPUs with `sinfo -o '%P %N %f %G'` and change the constraint"),
    "InvalidAccount": ("the account is not valid for this user or partition",
                       "list yours with `sacctmgr show assoc user=$USER` and set the stage's account"),
    "InvalidQOS": ("the QOS is not valid for this account or partition",
                   "list the allowed QOS with `sacctmgr show assoc user=$USER format=account,qos` and set it"),
    "DependencyNeverSatisfied": ("a job it depends on ended in a way that can never satisfy the dependency",
                                 "cancel it and submit again without that dependency"),
}
_PER_JOB_LIMIT = re.compile(r"^(Assoc|QOS)(Max|Min)\w*(PerJob|PerNode)\w*$")  # e.g. AssocMaxWallDurationPerJobLimit

# PENDING or stopped for a reason a person must act on: waited on, but named with how to go on
ATTENTION = {
    "JobHeldUser": "held by its user: it starts only after `scontrol release {id}`",
    "JobHeldAdmin": "held by an administrator: ask them to release it, or `scancel {id}`",
    "REQUEUE_HOLD": "requeued and held: `scontrol release {id}` runs it again, `scancel {id}` drops it",
    "SPECIAL_EXIT": "requeued and held after a special exit: `scontrol release {id}` runs it again",
    "STOPPED": "stopped (SIGSTOP): `scancel --signal=CONT {id}` lets it go on",
    "SUSPENDED": "suspended (by an administrator or by preemption): it goes on after `scontrol resume {id}`",
}


class SlurmError(RuntimeError):
    """A SLURM job or step failed; the message holds the job id, its state and the tail of its log."""


@dataclass
class Job:
    job_id: str
    name: str
    script: str
    log: str
    submitted: float

    @classmethod
    def read(cls, record: Path) -> "Job | None":
        return cls(**json.loads(record.read_text())) if record.is_file() else None

    def write(self, record: Path) -> None:
        record.write_text(json.dumps(asdict(self), indent=1))


@dataclass
class Status:
    """A job's state as the controller (or, once it has forgotten the job, accounting) knows it.

    state: PENDING, RUNNING, COMPLETED, ... ; GONE when neither knows the job any more (no accounting);
    UNKNOWN when SLURM could not be asked (`detail` says why)."""
    state: str
    reason: str = ""
    source: str = "squeue"
    detail: str = ""


def poll_seconds() -> float:
    return float(os.environ.get("MED42_POLL_SECONDS", "30"))


def allocation_nodes() -> int | None:
    """Nodes of the SLURM allocation this process runs in (None outside one)."""
    if not os.environ.get("SLURM_JOB_ID"):
        return None
    n = os.environ.get("SLURM_JOB_NUM_NODES") or os.environ.get("SLURM_NNODES") or "1"
    return int(n)


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True)


def submit(script: Path, job_name: str, record: Path) -> Job:
    """sbatch --parsable the script; record the job next to it so that a re-run finds it."""
    r = _run(["sbatch", "--parsable", str(script)])
    if r.returncode != 0:
        raise SlurmError(f"sbatch {script} failed (exit {r.returncode}): {r.stderr.strip() or r.stdout.strip()}")
    job_id = r.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch --parsable {script} printed {r.stdout!r}, not a job id")
    log = Path(script).parent / "logs" / f"{job_name}-{job_id}.out"
    job = Job(job_id, job_name, str(script), str(log), time.time())
    job.write(record)
    return job


def job_status(job_id: str) -> Status:
    """What the controller knows (`squeue -t all`: queued, running and recently ended jobs, up to MinJobAge after
    the end); once it has forgotten the job, `sacct` where the cluster keeps accounting."""
    r = _run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T|%r"])
    line = r.stdout.strip().splitlines()[0].strip() if r.returncode == 0 and r.stdout.strip() else ""
    if line:
        state, _, reason = line.partition("|")
        return Status(state.strip(), "" if reason.strip() in ("None", "(null)") else reason.strip())
    squeue_err = r.stderr.strip()
    r = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,Reason"])
    if r.returncode == 0:
        lines = [x.strip() for x in r.stdout.splitlines() if x.strip()]
        if lines:
            state, _, reason = lines[0].partition("|")
            return Status(state.split()[0], reason.strip(), "sacct")  # "CANCELLED by 1234" -> CANCELLED
    no_accounting = "accounting storage is disabled" in r.stderr.lower()
    if "invalid job id" in squeue_err.lower() and (no_accounting or r.returncode == 0):
        return Status("GONE", source="none",
                      detail="the controller no longer knows the job" + (" and this cluster keeps no accounting "
                                                                          "(sacct is disabled)" if no_accounting else
                                                                          " and sacct has no record of it"))
    return Status("UNKNOWN", source="none", detail=squeue_err or r.stderr.strip() or "squeue and sacct said nothing")


def job_state(job_id: str) -> str:
    """PENDING, RUNNING, COMPLETED, ... (GONE, UNKNOWN: see Status)."""
    return job_status(job_id).state


def reason_code(reason: str) -> str:
    """SLURM's reason code without its details: "ReqNodeNotAvail, UnavailableNodes:gpu2" -> "ReqNodeNotAvail"."""
    return re.split(r"[,\s(]", reason.strip(), maxsplit=1)[0] if reason else ""


def never_starts(reason: str) -> tuple[str, str] | None:
    """(meaning, fix) when a PENDING reason can never resolve by waiting; None otherwise."""
    reason = reason_code(reason)
    if reason in NEVER_STARTS:
        return NEVER_STARTS[reason]
    if _PER_JOB_LIMIT.match(reason):
        return ("the request exceeds a per-job limit of the account or QOS",
                "see the limits with `sacctmgr show assoc user=$USER` / `sacctmgr show qos` and lower the request")
    return None


def attention(status: Status, job_id: str) -> str | None:
    """What a person must do for a held, stopped or suspended job (None when waiting is all it needs)."""
    for key in (status.state, reason_code(status.reason)):
        if key in ATTENTION:
            return ATTENTION[key].format(id=job_id)
    if status.reason.startswith("JobHeld") or "held" in status.reason.lower():
        return f"held ({status.reason}): `scontrol release {job_id}` lets it run"
    return None


def log_tail(log: str | Path, lines: int = 30) -> str:
    p = Path(log)
    if not p.is_file():
        return f"(no log at {p})"
    return "\n".join(p.read_text(errors="replace").splitlines()[-lines:])


def min_job_age() -> float | None:
    """The controller's MinJobAge (seconds an ended job stays in squeue), None where it cannot be read."""
    r = _run(["scontrol", "show", "config"])
    m = re.search(r"^MinJobAge\s*=\s*(\d+)", r.stdout, re.M) if r.returncode == 0 else None
    return float(m.group(1)) if m else None


def cancel(job_id: str) -> str:
    r = _run(["scancel", job_id])
    return "" if r.returncode == 0 else (r.stderr.strip() or f"scancel exited {r.returncode}")


def wait(job: Job, progress_file: Path | None = None, interval: float | None = None) -> str:
    """Poll the job until it ends, printing one progress line per interval (PENDING lines with SLURM's reason).

    COMPLETED returns. A failure state raises SlurmError with the job id and the tail of its log. A PENDING
    reason that can never resolve (PartitionConfig, ReqNodeNotAvail, BadConstraints, per-job limits, ...)
    cancels the job and raises at once with the reason and the fix. Held, stopped and suspended jobs are
    named with what to do, and waited on. Ctrl-C stops waiting and says the job goes on and how to cancel it.
    """
    interval = poll_seconds() if interval is None else interval
    age = min_job_age()
    if age and interval > age / 2:   # poll while the controller still shows the ended job (no accounting needed)
        interval = max(age / 2, 1.0)
    t0 = time.time()
    unknown = 0
    told = None
    try:
        while True:
            st = job_status(job.job_id)
            label = f"job {job.job_id} {st.state}" + (f" ({st.reason})" if st.reason else "")
            progress = read_progress(progress_file) if progress_file and st.state != "PENDING" else None
            print(progress_line(label, time.time() - t0, progress), flush=True)
            if st.state == "COMPLETED":
                return st.state
            if st.state in FAILED:
                raise SlurmError(f"SLURM job {job.job_id} ({job.name}) ended {st.state}"
                                 f"{f' ({st.reason})' if st.reason else ''}; log {job.log}, last lines:\n"
                                 f"{log_tail(job.log)}")
            never = never_starts(st.reason) if st.state == "PENDING" else None
            if never:
                meaning, fix = never
                err = cancel(job.job_id)
                done = f"cancelled it (scancel {job.job_id})" if not err else f"scancel {job.job_id} failed: {err}"
                raise SlurmError(f"SLURM job {job.job_id} ({job.name}) can never start: PENDING, reason {st.reason}: "
                                 f"{meaning}. Fix: {fix}. {done}; script {job.script}")
            note = attention(st, job.job_id)
            if note and note != told:
                print(f"SLURM job {job.job_id} is {st.state}" + (f" ({st.reason})" if st.reason else "")
                      + f": {note}. Still waiting for it.", flush=True)
            told = note
            if st.state == "GONE":
                raise SlurmError(f"SLURM job {job.job_id} ({job.name}): {st.detail}, so its end state cannot be read; "
                                 f"log {job.log}, last lines:\n{log_tail(job.log)}")
            unknown = unknown + 1 if st.state == "UNKNOWN" else 0
            if unknown >= 10:
                raise SlurmError(f"cannot read the state of SLURM job {job.job_id}: {st.detail}; "
                                 f"check `squeue -j {job.job_id}` and its log {job.log}")
            time.sleep(interval)
    except KeyboardInterrupt:
        print(f"\nStopped waiting. SLURM job {job.job_id} ({job.name}) goes on without this notebook. "
              f"Cancel it with `scancel {job.job_id}`; or re-run this notebook with the same parameters to wait "
              f"for it again. Log: {job.log}", flush=True)
        raise


def is_active(job: Job) -> bool:
    return job_state(job.job_id) in ACTIVE


def _steps_named(job_id: str, name: str) -> list[str]:
    r = _run(["squeue", "-h", "-s", "-j", job_id, "-o", "%i %j"])
    return [line.split()[0] for line in r.stdout.splitlines() if len(line.split()) >= 2 and line.split()[1] == name]


def srun(command: list[str], nodes: int, log: Path, progress_file: Path | None = None,
         env: dict | None = None, interval: float | None = None, gpus_per_node: int = 0,
         step_name: str | None = None) -> None:
    """One task per node of the current allocation, blocking; output to `log`, progress lines here.
    Each task gets the node's GPUs and all its CPUs (a step's default is one CPU per task).
    Ctrl-C ends the step (SIGTERM to srun, then scancel of the step) before raising KeyboardInterrupt."""
    interval = poll_seconds() if interval is None else interval
    log.parent.mkdir(parents=True, exist_ok=True)
    step_name = step_name or f"med42-step-{os.getpid()}-{int(time.time())}"
    opts = [f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            f"--job-name={step_name}"]
    if gpus_per_node:
        opts.append(f"--gres=gpu:{gpus_per_node}")
    if os.environ.get("SLURM_CPUS_ON_NODE"):
        opts.append(f"--cpus-per-task={os.environ['SLURM_CPUS_ON_NODE']}")
    cmd = ["srun", *opts, *command]
    t0 = time.time()
    with open(log, "w") as out:
        # its own session: a terminal's Ctrl-C reaches only this process, which then ends the step itself
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=interval)
                    break
                except subprocess.TimeoutExpired:
                    progress = read_progress(progress_file) if progress_file else None
                    print(progress_line(f"srun {nodes} node(s)", time.time() - t0, progress), flush=True)
        except KeyboardInterrupt:
            _end_step(proc, step_name)
            raise
    if rc != 0:
        raise SlurmError(f"srun exited {rc} ({' '.join(cmd[:6])} ...); log {log}, last lines:\n{log_tail(log)}")
    print(progress_line("srun done", time.time() - t0, read_progress(progress_file) if progress_file else None))


def _end_step(proc: subprocess.Popen, step_name: str) -> None:
    """Ctrl-C while a step runs: srun forwards SIGTERM to the tasks; whatever step is left gets scancel."""
    job_id = os.environ.get("SLURM_JOB_ID", "")
    steps = _steps_named(job_id, step_name) if job_id else []
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    left = _steps_named(job_id, step_name) if job_id else []
    for step in left:
        _run(["scancel", step])
    names = ", ".join(steps or left) or step_name
    print(f"\nInterrupted: cancelled the srun step {names} (its tasks were sent SIGTERM"
          f"{', then scancel' if left else ''}); the allocation {job_id or '(none)'} stays yours.", flush=True)

