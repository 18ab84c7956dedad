"""The suite gives the same answers on a machine whose own SLURM answers (a login node, a node inside an
allocation) as on one without SLURM: tests read the cluster they set up, never the machine's (conftest.py)."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from med42_utils.paths import repo_root

# What the machine's own small cluster answers: one partition of 4-CPU, 1-GPU nodes (no 8-GPU job fits), a job
# that is always RUNNING in squeue and COMPLETED in sacct, and an allocation of two nodes in the environment.
ANSWERS = {
    "sinfo": 'echo "debug*|2|4|gpu:1|1:00:00|"',
    "squeue": "echo RUNNING",
    "sacct": "echo COMPLETED",
    "scontrol": "echo machine-node",
    "sbatch": "echo 4242",
    "srun": "echo machine srun",
    "scancel": "true",
}
ALLOCATION = {"SLURM_JOB_ID": "4241", "SLURM_JOB_NUM_NODES": "2", "SLURM_NNODES": "2",
              "SLURM_JOB_NODELIST": "machine-node[1-2]", "SLURM_CPUS_PER_TASK": "4"}
# the tests that read a cluster (plans, site options, sbatch and wait); the real-cluster ones set up their own
FILES = ["tests/test_slurm_site.py", "tests/test_launch_slurm.py", "tests/test_launch.py"]


def answering_slurm(bin_dir: Path, log: Path) -> Path:
    """SLURM clients that answer as the machine's cluster would, each call appended to `log`."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, answer in ANSWERS.items():
        p = bin_dir / name
        p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n{answer}\n')
        p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir


def test_no_test_sees_the_machines_slurm():
    """This test itself (like every test without real_slurm): no client on PATH, no outer allocation."""
    import realslurm

    assert not [c for c in realslurm.SLURM_CLIENTS if shutil.which(c)]
    assert not [k for k in os.environ if k.startswith("SLURM_")]


@pytest.mark.slow
def test_the_cluster_tests_pass_where_the_machines_slurm_answers(tmp_path):
    """Run the cluster-reading tests in a fresh pytest with answering sinfo/squeue/sacct/... first on PATH and an
    allocation in the environment: they pass, and none of them called the machine's clients."""
    log = tmp_path / "machine-slurm-calls.log"
    log.touch()
    bin_dir = answering_slurm(tmp_path / "machine-bin", log)
    env = {k: v for k, v in os.environ.items() if k != "MED42_REQUIRE_SLURM"}
    env.update(ALLOCATION, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert subprocess.run(["sinfo"], env=env, capture_output=True, text=True).stdout.startswith("debug*")
    log.write_text("")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m",
                        "not slow and not slurm", *FILES], cwd=repo_root(), env=env, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
    assert log.read_text() == "", f"a test called the machine's SLURM:\n{log.read_text()}"
