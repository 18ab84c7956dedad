"""Launch plans for 8b/70b (SLURM, accelerate, dry run) and the memory/time estimates behind them."""
from __future__ import annotations

import pytest

from med42_utils import cluster_plan, estimates
from med42_utils.launch import LaunchError, execute, plan_launch, render_plan
from med42_utils.params import load_params



@pytest.fixture(autouse=True)
def _outputs_in_tmp(tmp_path, monkeypatch):
    """Plans write their SLURM scripts under outputs/: keep them in a temporary repo root."""
    import fakeslurm

    fakeslurm.use_tmp_root(tmp_path, monkeypatch)


def test_llama3_shapes_give_the_published_parameter_counts():
    assert estimates.LLAMA3_8B.parameters == pytest.approx(8.03e9, rel=0.005)
    assert estimates.LLAMA3_70B.parameters == pytest.approx(70.55e9, rel=0.005)


@pytest.mark.parametrize("size,nodes,world", [("8b", 2, 16), ("70b", 6, 48)])
def test_sft_plan_renders_slurm_with_one_accelerate_per_node(size, nodes, world):
    p = load_params(size)
    plan = plan_launch(p, "sft", "plan-test", "med42_utils.sft.train", ["--set", "sft.max_steps=10"])
    assert plan.hardware.world_size == world
    s = plan.slurm_script
    assert f"#SBATCH --nodes={nodes}" in s and "#SBATCH --ntasks-per-node=1" in s
    assert "srun" in s and "accelerate launch" in s
    assert f"--num_machines {nodes} --num_processes {world}" in s
    assert "--machine_rank $SLURM_PROCID" in s and f"fsdp_{size}.yaml" in s
    assert "-m med42_utils.sft.train --size " + size in s and "sft.max_steps=10" in s
    assert any(c.startswith("sbatch ") for c in plan.commands)
    md = render_plan(plan)
    for key in ("weights", "gradients", "optimizer", "activations", "total"):
        assert f"| {key} |" in md
    assert plan.memory_gib["total"] < 80, "the paper's setup must fit an 80 GB H100"
    assert plan.est_hours and plan.est_hours > 0.5


def test_70b_needs_more_memory_per_gpu_than_8b_and_more_hours():
    p8, p70 = load_params("8b"), load_params("70b")
    m8, h8 = estimates.sft_estimate(p8)
    m70, h70 = estimates.sft_estimate(p70)
    assert m70.weights > m8.weights and m70.optimizer > m8.optimizer
    assert h70 > h8


def test_memory_shards_with_world_size_and_checkpointing_saves_activations():
    shape = estimates.LLAMA3_8B
    a = estimates.memory_per_gpu(shape, 8, 8192, "adamw_torch", True)
    b = estimates.memory_per_gpu(shape, 16, 8192, "adamw_torch", True)
    assert b.optimizer == pytest.approx(a.optimizer / 2)
    assert b.gradients == pytest.approx(a.gradients / 2)
    no_ckpt = estimates.memory_per_gpu(shape, 16, 8192, "adamw_torch", False)
    assert no_ckpt.activations > 3 * b.activations
    # AdamW: two fp32 moments; RMSprop: one
    r = estimates.memory_per_gpu(shape, 16, 8192, "rmsprop", True)
    assert r.optimizer == pytest.approx(b.optimizer / 2)


def test_dpo_plan_counts_the_frozen_reference_and_uses_dpo_hardware():
    p = load_params("70b")
    plan = plan_launch(p, "dpo", "plan-test", "med42_utils.dpo.train", [], num_pairs=60_000)
    assert plan.hardware == p.dpo.hardware
    assert plan.memory_gib["reference"] > 0
    n = estimates.LLAMA3_70B.parameters
    assert plan.memory_gib["reference"] == pytest.approx(2 * n / p.dpo.hardware.world_size / 2**30, rel=0.01)
    assert plan.est_hours is not None
    # without a count, the pairs come from the rounds' published split sizes (cluster_plan.SPLIT_PAIRS): never "n/a"
    pairs, _ = cluster_plan.planned_pairs(p)
    mean = -(-sum(pairs) // len(pairs))
    assert plan_launch(p, "dpo", "plan-test", "m", []).est_hours == pytest.approx(
        plan_launch(p, "dpo", "plan-test", "m", [], num_pairs=mean).est_hours)


def test_wall_time_follows_6n_flops_at_the_stated_mfu():
    shape = estimates.LLAMA3_8B
    h = estimates.wall_hours(shape, 1e9, 8192, 16, mfu=0.5)
    expect = 1e9 * (6 * shape.parameters + 6 * 32 * 4096 * 8192) / (16 * 989e12 * 0.5) / 3600
    assert h == pytest.approx(expect)
    with pytest.raises(ValueError, match="mfu"):
        estimates.wall_hours(shape, 1e9, 8192, 16, mfu=0)


def test_single_node_plan_is_one_accelerate_command():
    p = load_params("8b", {"sft.hardware.nodes": 1, "sft.hardware.launcher": "accelerate",
                           "sft.gradient_accumulation_steps": 4})
    plan = plan_launch(p, "sft", "plan-test", "med42_utils.sft.train", [])
    assert len(plan.commands) == 1 and "#SBATCH --nodes=1" in plan.slurm_script  # the script: for login nodes
    assert "--machine_rank" not in plan.slurm_script
    assert plan.commands[0].startswith("accelerate launch --config_file")
    assert "--num_machines 1 --num_processes 8" in plan.commands[0]
    assert any("num_machines" in n for n in plan.notes), "config/params mismatch must be noted"


def test_execute_without_gpu_or_slurm_refuses_with_the_fix(monkeypatch, tmp_path):
    from med42_utils.hardware import HardwareError

    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch (Debian's slurm-client puts one in /usr/bin)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    plan = plan_launch(load_params("8b"), "sft", "plan-test", "med42_utils.sft.train", [])
    with pytest.raises(HardwareError, match=r"no CUDA device and no SLURM.*dry_run=True"):
        execute(plan)
    assert not plan.slurm_path.exists(), "a refused launch writes nothing"


def test_bad_stage_and_missing_config_are_clear_errors():
    p = load_params("tiny")
    with pytest.raises(LaunchError, match="'sft' or 'dpo'"):
        plan_launch(p, "ppo", "x", "m", [])
    p = load_params("tiny", {"sft.hardware.accelerate_config": "params/accelerate/nope.yaml"})
    with pytest.raises(LaunchError, match="nope.yaml"):
        plan_launch(p, "sft", "x", "m", [])


def test_tiny_plan_is_in_process_without_time_estimate():
    plan = plan_launch(load_params("tiny"), "sft", "x", "med42_utils.sft.train", [])
    assert plan.hardware.launcher == "inprocess" and plan.est_hours is None
    assert plan.commands[0].startswith("python -m med42_utils.sft.train --size tiny")


def test_lora_on_one_gpu_fits_and_drops_optimizer_memory():
    over = {"sft.method": "lora", "sft.hardware.nodes": 1, "sft.hardware.gpus_per_node": 1,
            "sft.hardware.launcher": "inprocess", "sft.gradient_accumulation_steps": 32}
    lora = load_params("8b", over)
    full = load_params("8b")
    ml, _ = estimates.sft_estimate(lora)
    mf, _ = estimates.sft_estimate(full)
    assert ml.total / 2**30 < 80, "8B LoRA is meant for one 80 GB GPU"
    assert ml.optimizer < mf.optimizer / 10
    frac = estimates.lora_fraction(lora, estimates.LLAMA3_8B)
    assert 0.001 < frac < 0.02  # r=16 on all seven projections: ~0.5% of 8B


def test_override_args_round_trip_through_the_entry_point_parser():
    from med42_utils.cli import override_args, parse_override_args

    ov = {"dpo.learning_rate": 5e-06, "sft.max_steps": 3, "sft.bf16": False, "dpo.hardware.launcher": "accelerate",
          "eval.limit": None, "judge.models": ["base", "sft"]}
    args = override_args(ov)
    back = parse_override_args(args[1::2])
    assert back == {k: v for k, v in ov.items() if v is not None}
    assert isinstance(back["dpo.learning_rate"], float)
    with pytest.raises(SystemExit, match="key=value"):
        parse_override_args(["no-equals-sign"])


def test_dpo_rounds_get_their_own_slurm_scripts():
    from med42_utils.dpo.rounds import launch_plan

    p = load_params("8b")
    paths = {launch_plan(p, "pytest-slurm", r.name).slurm_path.name for r in p.dpo.rounds}
    assert paths == {"launch_dpo_round1.slurm", "launch_dpo_round2.slurm", "launch_dpo_round3.slurm"}
    plan = launch_plan(p, "pytest-slurm", "round2")
    assert "#SBATCH --job-name=med42-dpo_round2-8b" in plan.slurm_script and "--round round2" in plan.slurm_script


def test_jobs_run_in_the_notebooks_python_environment_without_an_activated_env():
    """A kernel started as .venv/bin/python (make lab) has no .venv/bin on PATH: the job must not rely on it."""
    import shlex
    import sys
    from pathlib import Path

    from med42_utils.launch import python_bin

    assert python_bin() == str(Path(sys.executable).parent)
    plan = plan_launch(load_params("8b"), "sft", "pytest-env", "med42_utils.sft.train")
    lines = plan.slurm_script.splitlines()
    export = f'export PATH={shlex.quote(python_bin())}:"$PATH"'
    assert any(line.startswith(export) for line in lines)
    # set before the srun line that calls `accelerate`
    assert min(i for i, line in enumerate(lines) if line.startswith(export)) < \
        min(i for i, line in enumerate(lines) if line.startswith("srun "))


@pytest.mark.parametrize("size,stage,nodes", [("8b", "sft", 2), ("70b", "sft", 6), ("8b", "dpo", 2), ("70b", "dpo", 4)])
def test_multi_node_scripts_ask_for_the_gpus_of_one_node_per_node(size, stage, nodes):
    """--gres is per node: 8 H100s on each of the nodes, never the job's total (gpu:16 on an 8-GPU node never
    starts)."""
    p = load_params(size)
    if stage == "sft":
        plan = plan_launch(p, "sft", "plan-gres", "med42_utils.sft.train", [])
    else:
        from med42_utils.dpo.rounds import launch_plan

        plan = launch_plan(p, "plan-gres", p.dpo.rounds[0].name)
    hw = getattr(p, stage).hardware
    assert (hw.nodes, hw.gpus_per_node) == (nodes, 8)
    gres = [line for line in plan.slurm_script.splitlines() if line.startswith("#SBATCH --gres")]
    assert gres == ["#SBATCH --gres=gpu:8"]
    assert f"#SBATCH --nodes={nodes}\n" in plan.slurm_script
    assert f"--num_machines {nodes} --num_processes {nodes * 8}" in plan.slurm_script
