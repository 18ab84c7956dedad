"""Fake sbatch, squeue, sacct, srun and scontrol, only for what the real test cluster (tests/realslurm.py) on one
host cannot show: sacct on a cluster with accounting (the test cluster has none, like many small clusters),
end states one host cannot produce (OUT_OF_MEMORY, NODE_FAIL), and the srun line of an 8-GPU node.
Everything else runs against the real SLURM (tests marked slurm).

install(bin_dir, state_dir) writes them as executables; put bin_dir first on PATH. Each call appends
{"tool", "argv"} to state_dir/calls.jsonl. sbatch really runs the submitted script in the background
(bash, on this CPU machine) after FAKE_SLURM_PENDING seconds in PENDING, unless FAKE_SLURM_PLAY names a
failure state (CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL), which it plays back without running the
script. A script that exits non-zero ends FAILED. squeue shows PENDING/RUNNING jobs; sacct the final state.
srun runs its command once per task (SLURM_PROCID 0..n-1) unless FAKE_SRUN_EXEC=0 (then it only records,
and exits FAKE_SRUN_RC).
"""
from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

COMMON = r'''
import json, os, shlex, subprocess, sys, time
from pathlib import Path
STATE = Path(os.environ["FAKE_SLURM_DIR"])
def record(tool, argv):
    with open(STATE / "calls.jsonl", "a") as f:
        f.write(json.dumps({"tool": tool, "argv": argv}) + "\n")
def state_file(job_id):
    return STATE / f"job-{job_id}.state"
'''

SBATCH = COMMON + r'''
argv = sys.argv[1:]
if argv and argv[0] == "--run-job":  # the background "cluster": play one job
    job_id, script, log = argv[1], argv[2], argv[3]
    sf = state_file(job_id)
    time.sleep(float(os.environ.get("FAKE_SLURM_PENDING", "0.5")))
    play = os.environ.get("FAKE_SLURM_PLAY", "COMPLETED")
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    if play != "COMPLETED":
        sf.write_text("RUNNING")
        with open(log, "w") as f:
            f.write(f"starting job {job_id}\nslurmstepd: error: *** JOB {job_id} ON fake-node {play} ***\n")
        time.sleep(0.3)
        sf.write_text(play)
        sys.exit(0)
    sf.write_text("RUNNING")
    env = dict(os.environ, SLURM_JOB_ID=job_id, SLURM_JOB_NUM_NODES="1", SLURM_NNODES="1",
               SLURM_JOB_NODELIST="localhost", SLURM_CPUS_PER_TASK="2")
    with open(log, "w") as f:
        rc = subprocess.run(["bash", script], stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    sf.write_text("COMPLETED" if rc == 0 else "FAILED")
    sys.exit(0)
record("sbatch", argv)
script = argv[-1]
counter = STATE / "next_id"
job_id = str(int(counter.read_text()) if counter.exists() else 1000)
counter.write_text(str(int(job_id) + 1))
name, output = "job", f"slurm-{job_id}.out"
for line in Path(script).read_text().splitlines():
    if line.startswith("#SBATCH --job-name="):
        name = line.split("=", 1)[1].strip()
    if line.startswith("#SBATCH --output="):
        output = shlex.split(line.split("=", 1)[1])[0]  # quoted as sbatch reads it
log = output.replace("%x", name).replace("%j", job_id)
state_file(job_id).write_text("PENDING")
subprocess.Popen([sys.executable, __file__, "--run-job", job_id, script, log], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(job_id if "--parsable" in argv else f"Submitted batch job {job_id}")
'''

SQUEUE = COMMON + r'''
argv = sys.argv[1:]
record("squeue", argv)
job_id = argv[argv.index("-j") + 1]
sf = state_file(job_id)
if sf.exists() and sf.read_text() in ("PENDING", "RUNNING"):
    print(sf.read_text())
'''

SACCT = COMMON + r'''
argv = sys.argv[1:]
record("sacct", argv)
job_id = argv[argv.index("-j") + 1]
sf = state_file(job_id)
if sf.exists():
    s = sf.read_text()
    print(f"{s} by 0" if s == "CANCELLED" else s)
'''

SRUN = COMMON + r'''
argv = sys.argv[1:]
record("srun", argv)
opts = [a for a in argv if a.startswith("--")]
cmd = argv[len(opts):]
n = int(next((a.split("=")[1] for a in opts if a.startswith("--ntasks=")), "1"))
with open(STATE / "srun_env.jsonl", "a") as f:
    f.write(json.dumps({"MASTER_ADDR": os.environ.get("MASTER_ADDR"), "MASTER_PORT": os.environ.get("MASTER_PORT")}) + "\n")
if os.environ.get("FAKE_SRUN_EXEC", "1") == "0":
    print("fake srun: recorded", cmd)
    sys.exit(int(os.environ.get("FAKE_SRUN_RC", "0")))
procs = [subprocess.Popen(cmd, env=dict(os.environ, SLURM_PROCID=str(i), SLURM_NODEID=str(i))) for i in range(n)]
sys.exit(max(p.wait() for p in procs))
'''

SCONTROL = COMMON + r'''
record("scontrol", sys.argv[1:])
print("localhost")
'''

TOOLS = {"sbatch": SBATCH, "squeue": SQUEUE, "sacct": SACCT, "srun": SRUN, "scontrol": SCONTROL}


def install(bin_dir: Path, state_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for name, body in TOOLS.items():
        p = bin_dir / name
        p.write_text(f"#!{sys.executable}\n{body}")
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def tmp_repo_root(tmp_path: Path) -> Path:
    """A repo root for MED42_ROOT whose params/ is this checkout's: outputs (scripts, runs) land in tmp_path."""
    from med42_utils.paths import repo_root

    root = tmp_path / "repo"
    root.mkdir()
    (root / "params").symlink_to(repo_root() / "params")
    return root


def use_tmp_root(tmp_path: Path, monkeypatch) -> Path:
    """Point MED42_ROOT and MED42_OUTPUTS at a temporary repo root (params/ linked): scripts and runs land there."""
    root = tmp_repo_root(tmp_path)
    monkeypatch.setenv("MED42_ROOT", str(root))
    monkeypatch.setenv("MED42_OUTPUTS", str(root / "outputs"))
    return root


def calls(state_dir: Path, tool: str | None = None) -> list[list[str]]:
    f = state_dir / "calls.jsonl"
    if not f.is_file():
        return []
    recs = [json.loads(line) for line in f.read_text().splitlines()]
    return [r["argv"] for r in recs if tool is None or r["tool"] == tool]


def job_state(state_dir: Path, job_id: str) -> str:
    return (state_dir / f"job-{job_id}.state").read_text()


__all__ = ["install", "calls", "job_state"]
