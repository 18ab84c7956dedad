"""Two nodes for real: tiny SFT and one DPO round, FSDP on gloo over 2 SLURM nodes x 1 process (each node its own
slurmd, network namespace and address; see tests/realslurm.py), equal to the same run on 1 node x 2 processes.

SFT goes the login-node path (sbatch, then waiting on the controller); the DPO round runs inside
`salloc --nodes=2` (srun one task per node). Both use the same per-node command: machine rank from SLURM_PROCID,
MASTER_ADDR from the step's own node list, c10d rendezvous.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from standins import make_sft_standin

import fakeslurm
from med42_utils.manifest import read_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir
from med42_utils.stages import stage_model_dir

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CFG = "params/accelerate/fsdp_cpu_tiny.yaml"
SFT = {"sft.hardware.accelerator": "cpu", "sft.hardware.accelerate_config": CFG, "sft.tokens_per_step": 2048,
       "sft.max_steps": 3, "sft.logging_steps": 1, "sft.save_steps": 100}
SFT_2x1 = {**SFT, "sft.hardware.nodes": 2, "sft.hardware.gpus_per_node": 1, "sft.hardware.launcher": "slurm"}
SFT_1x2 = {**SFT, "sft.hardware.nodes": 1, "sft.hardware.gpus_per_node": 2, "sft.hardware.launcher": "accelerate"}
DPO = {"dpo.hardware.accelerator": "cpu", "dpo.hardware.accelerate_config": CFG, "dpo.micro_batch_size": 1,
       "dpo.gradient_accumulation_steps": 2, "dpo.batch_size": 4, "dpo.max_samples_per_source": 4,
       "dpo.warmup_ratio": 0.0}
DPO_2x1 = {**DPO, "dpo.hardware.nodes": 2, "dpo.hardware.gpus_per_node": 1, "dpo.hardware.launcher": "slurm"}
DPO_1x2 = {**DPO, "dpo.hardware.nodes": 1, "dpo.hardware.gpus_per_node": 2, "dpo.hardware.launcher": "accelerate"}


@pytest.fixture
def tmp_root(tmp_path, monkeypatch, real_slurm):
    real_slurm.use(monkeypatch, poll_seconds=1)
    return fakeslurm.use_tmp_root(tmp_path, monkeypatch)


def test_two_node_sft_via_sbatch_equals_one_node_two_processes(real_slurm, tmp_root, capsys):
    from med42_utils.launch import execute
    from med42_utils.sft.stage import sft_plan
    from test_sft import _packed_run

    name = _packed_run(f"pytest-2n-{uuid.uuid4().hex[:6]}")
    ref = f"{name}-ref"
    shutil.copytree(run_dir("tiny", name), run_dir("tiny", ref))

    plan = sft_plan(load_params("tiny", SFT_2x1), name, SFT_2x1)
    assert plan.commands[-1] == f"sbatch {plan.slurm_path}"
    job = execute(plan)
    out = capsys.readouterr().out
    assert f"[job {job.job_id} COMPLETED]" in out
    assert real_slurm.job(job.job_id)["NodeList"] == "med42a[1-2]"
    two = read_manifest(run_dir("tiny", name) / "sft")
    log = open(job.log).read()
    assert "--num_machines 2" in open(plan.slurm_path).read() and "--rdzv_backend c10d" in plan.node_command

    execute(sft_plan(load_params("tiny", SFT_1x2), ref, SFT_1x2))  # one node (this machine), two processes
    one = read_manifest(run_dir("tiny", ref) / "sft")
    assert two["world_size"] == one["world_size"] == 2 and two["fsdp"] and one["fsdp"], log[-2000:]
    assert two["global_step"] == one["global_step"] == 3
    assert two["last_loss"] == pytest.approx(one["last_loss"], abs=1e-5)
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5)


def test_two_node_dpo_round_inside_salloc_equals_one_node_two_processes(real_slurm, tmp_root, tiny_model_path):
    """The notebook's Python runs inside `salloc --nodes=2`: the launcher sees the allocation and sruns one task
    per node; each task takes its rank from SLURM_PROCID and the rendezvous host from its own step's node list."""
    name = f"pytest-2n-dpo-{uuid.uuid4().hex[:6]}"
    ref = f"{name}-ref"
    for run, ov in ((name, DPO_2x1), (ref, DPO_1x2)):
        params = load_params("tiny", ov)
        make_sft_standin(params, run, tiny_model_path)

    code = ("import json, sys; from med42_utils.dpo.rounds import run_rounds; from med42_utils.params import load_params;"
            "ov = json.loads(sys.argv[1]); run_rounds(load_params('tiny', ov), sys.argv[2], round='round1', overrides=ov)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(real_slurm.env)
    r = subprocess.run(["salloc", "--nodes=2", f"--cpus-per-task={real_slurm.cpus_per_node}", sys.executable, "-c",
                        code, json.dumps(DPO_2x1), name], env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    assert "inside a SLURM allocation of 2 node(s)" in r.stdout and "srun done" in r.stdout
    two = read_manifest(stage_model_dir(load_params("tiny", DPO_2x1), name, "dpo_round1").parent)

    from med42_utils.dpo.rounds import run_rounds

    run_rounds(load_params("tiny", DPO_1x2), ref, round="round1", overrides=DPO_1x2)
    one = read_manifest(stage_model_dir(load_params("tiny", DPO_1x2), ref, "dpo_round1").parent)
    assert two["world_size"] == one["world_size"] == 2 and two["fsdp"] and one["fsdp"]
    assert two["global_steps"] == one["global_steps"] > 0
    assert two["final"]["loss"] == pytest.approx(one["final"]["loss"], abs=1e-5)
    assert two["train_loss"] == pytest.approx(one["train_loss"], abs=1e-5)
