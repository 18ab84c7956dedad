"""Launch plans for 8b/70b (SLURM, accelerate, dry run) and the memory/time estimates behind them."""
from __future__ import annotations

from pathlib import Path

import pytest

from med42_utils import cluster_plan, estimates
from med42_utils.launch import LaunchError, execute, plan_launch, render_plan
from med42_utils.params import load_params
from med42_utils.params.base import Hardware



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


# ---------------------------------------------------------------- what sbatch and bash act on in the script


def _acted_on(script: str) -> list[str]:
    """The script's lines as bash and sbatch act on them: comment lines and trailing comments dropped (the
    shebang and the #SBATCH lines are not comments)."""
    import re

    return [re.sub(r"\s+# .*$", "", line) for line in script.split("\n") if not line.startswith("# ")]


def _script_env(tmp_path, monkeypatch):
    """A fixed job environment (HF_HOME, offline) so that the export lines are known."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from med42_utils import slurm_site

    return slurm_site.environment_lines()


def test_a_training_script_asks_sbatch_for_its_nodes_and_signal_and_requeues_after_a_checkpoint(tmp_path, monkeypatch):
    import shlex

    from med42_utils import slurm_site
    from med42_utils.launch import python_bin, render_slurm
    from med42_utils.params.slurm import SlurmOptions
    from med42_utils.paths import repo_root

    env = _script_env(tmp_path, monkeypatch)
    hw = load_params("8b").sft.hardware                   # 2 x 8
    site = slurm_site.site_request(SlurmOptions(partition="gpu", time="12:00:00", extra=["--mail-type=END"]), hw,
                                   None)
    logs = tmp_path / "my logs"
    s = render_slurm("sft", hw, "accelerate launch -m x", "med42-sft-8b", logs, site, signal_seconds=300)
    q = shlex.quote(str(logs))
    assert _acted_on(s) == [
        "#!/bin/bash",
        "#SBATCH --job-name=med42-sft-8b", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gres=gpu:8",
        "#SBATCH --partition=gpu", "#SBATCH --time=12:00:00", "#SBATCH --exclusive", "#SBATCH --mem=0",
        "#SBATCH --mail-type=END",
        f"#SBATCH --output={shlex.quote(f'{logs}/%x-%j.out')}", "#SBATCH --requeue", "#SBATCH --open-mode=append",
        "#SBATCH --signal=B:USR1@300",
        "set -euo pipefail",
        *env,
        f"cd {shlex.quote(str(repo_root()))}",
        f'export PATH={shlex.quote(python_bin())}:"$PATH"',
        "export MASTER_PORT=29500",
        "export TORCH_NCCL_ASYNC_ERROR_HANDLING=1",
        'if [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK;',
        "else export SRUN_CPUS_PER_TASK=${SLURM_CPUS_ON_NODE:-1}; fi",
        f'export MED42_STOP_FILE={q}/med42-sft-8b-"${{SLURM_JOB_ID:-local}}".stop',
        f'export MED42_REQUEUE_FILE={q}/med42-sft-8b-"${{SLURM_JOB_ID:-local}}".requeue',
        'rm -f "$MED42_STOP_FILE" "$MED42_REQUEUE_FILE"',
        """trap 'echo "SIGUSR1: the time limit is near; asking training to save a checkpoint and stop"; """
        """touch "$MED42_STOP_FILE"' USR1""",
        "srun --export=ALL --kill-on-bad-exit=1 bash -c 'accelerate launch -m x' &",
        "step=$!",
        "while :; do",
        '  rc=0; wait "$step" || rc=$?',
        '  kill -0 "$step" 2>/dev/null || break',
        "done",
        '[ "$rc" -eq 0 ] || exit "$rc"',
        'if [ -f "$MED42_REQUEUE_FILE" ]; then',
        '  echo "stopped at a checkpoint before the time limit: requeueing job $SLURM_JOB_ID (restarts so far: '
        '${SLURM_RESTART_COUNT:-0})"',
        '  scontrol requeue "$SLURM_JOB_ID" || { echo "scontrol requeue refused: submit the job again to continue '
        'from the checkpoint" >&2; exit 1; }',
        "fi",
        "",
    ]


def test_a_per_model_job_requeues_itself_at_the_signal_and_a_job_without_one_just_runs_srun(tmp_path, monkeypatch):
    from med42_utils.launch import render_slurm

    _script_env(tmp_path, monkeypatch)
    hw = Hardware(nodes=1, gpus_per_node=4, accelerator="h100", launcher="accelerate",
                  accelerate_config="params/accelerate/single_gpu.yaml")
    s = _acted_on(render_slurm("eval", hw, "python -m m --size 8b", "med42-eval-8b", tmp_path, requeue_seconds=120,
                               signal_seconds=300))
    assert "#SBATCH --signal=B:USR1@120" in s and "#SBATCH --signal=B:USR1@300" not in s, "the requeue time wins"
    assert "#SBATCH --nodes=1" in s and "#SBATCH --gres=gpu:4" in s
    assert "#SBATCH --exclusive" not in s, "site defaults off the cluster: 4 of an H100 node's 8 GPUs"
    trap = s.index("srun --export=ALL --kill-on-bad-exit=1 bash -c 'python -m m --size 8b' &") - 1
    assert s[trap:] == [
        """trap 'echo "SIGUSR1: the time limit is near; requeueing job $SLURM_JOB_ID: finished models are kept, the """
        """next start goes on from there (restarts so far: ${SLURM_RESTART_COUNT:-0})"; scontrol requeue """
        """"$SLURM_JOB_ID"' USR1""",
        "srun --export=ALL --kill-on-bad-exit=1 bash -c 'python -m m --size 8b' &",
        "step=$!", "while :; do", '  rc=0; wait "$step" || rc=$?', '  kill -0 "$step" 2>/dev/null || break', "done",
        'exit "$rc"', ""]
    assert not any("MED42_STOP_FILE" in line for line in s), "no checkpoint to ask for: the job itself requeues"
    plain = _acted_on(render_slurm("samples", hw, "python -m m", "med42-x-8b", tmp_path))
    assert not any(line.startswith(("#SBATCH --signal", "trap ")) for line in plain)
    assert plain[plain.index("#SBATCH --open-mode=append") + 1] == "set -euo pipefail", "nothing else before it runs"
    assert plain[-2:] == ["srun --export=ALL --kill-on-bad-exit=1 bash -c 'python -m m'", ""], \
        "no signal: srun in the foreground, its exit status the script's"


def test_the_dry_run_shows_hardware_options_commands_script_memory_time_notes_and_warnings(tmp_path):
    from med42_utils import slurm_site
    from med42_utils.launch import LaunchPlan
    from med42_utils.params.slurm import SlurmOptions
    from med42_utils.paths import repo_root

    hw = load_params("8b").sft.hardware                   # 2 x 8 H100 through the slurm launcher
    site = slurm_site.site_request(SlurmOptions(partition="gpu"), hw, None)
    script = tmp_path / "sft" / "launch_sft.slurm"
    plan = LaunchPlan(stage="sft", hardware=hw, accelerate_config=repo_root() / "params/accelerate/fsdp_8b.yaml",
                      commands=["mkdir -p logs", "sbatch launch_sft.slurm"], slurm_script="#!/bin/bash\nsrun x\n",
                      memory_gib={"weights": 1.5, "total": 70.126}, est_hours=1234.56, notes=["note one", "note two"],
                      slurm_path=script, site=site, site_stage="sft", warnings=["too big"])
    assert render_plan(plan) == "\n".join([
        "### Launch plan: sft",
        "- hardware: 2 node(s) x 8 H100 (world size 16), launcher `slurm`",
        "- accelerate config: `params/accelerate/fsdp_8b.yaml`",
        "- SLURM site options (slurm.sft in params, MED42_SLURM for one run): `--partition=gpu` `--exclusive` "
        "`--mem=0`",
        "", "Commands:", "```bash", "mkdir -p logs", "sbatch launch_sft.slurm", "```",
        "", f"SLURM script (`{script}`):", "```bash", "#!/bin/bash", "srun x", "```",
        "", "| per GPU | GiB |", "|---|---|", "| weights | 1.50 |", "| total | 70.13 |",
        "", "- estimated wall time: 1,234.6 h", "- note one", "- note two",
        "- **WARNING: this request cannot run on this cluster as it is (a submit would refuse it):** too big"])
    assert script.read_text() == "#!/bin/bash\nsrun x\n" and (script.parent / "logs").is_dir(), \
        "the dry run writes the script it shows, and its logs folder"
    cpu = Hardware(nodes=1, gpus_per_node=2, accelerator="cpu", launcher="inprocess")
    tiny = LaunchPlan(stage="sft", hardware=cpu, accelerate_config=tmp_path / "cpu.yaml", commands=["python -m m"],
                      slurm_script=None, memory_gib={"weights": 0.25, "total": 0.5}, est_hours=None)
    assert render_plan(tiny) == "\n".join([
        "### Launch plan: sft", "- hardware: 1 node(s) x 2 CPU (world size 2), launcher `inprocess`",
        f"- accelerate config: `{tmp_path / 'cpu.yaml'}`",
        "", "Commands:", "```bash", "python -m m", "```",
        "", "| per process | MiB |", "|---|---|", "| weights | 256.0 |", "| total | 512.0 |",
        "", "- estimated wall time: n/a"]), "under 1 GiB in MiB; a path outside the repo in full; no site, no script"
    one = Hardware(nodes=1, gpus_per_node=8, accelerator="h100", launcher="accelerate",
                   accelerate_config="params/accelerate/single_gpu.yaml")
    job = LaunchPlan(stage="judge", hardware=one, accelerate_config=None, commands=["python -m j"], slurm_script=None,
                     memory_gib={"total": 1.0}, est_hours=2.0, site=slurm_site.SiteRequest(SlurmOptions(), None, False,
                                                                                             None),
                     site_stage="judge")
    md = render_plan(job).split("\n")
    assert md[2:4] == ["- accelerate config: `None`", "- SLURM site options (slurm.judge in params, MED42_SLURM for one "
                                                          "run): none (the cluster's defaults)"]
    assert "| largest model, over its GPUs | GiB |" in md and "- estimated wall time: 2.0 h" in md
    assert "| total | 1.00 |" in md, "MiB only under 1 GiB"
    job.stage = "eval"
    assert "| largest model, over its GPUs | GiB |" in render_plan(job).split("\n")


def test_each_node_runs_one_accelerate_that_finds_the_steps_first_node_and_one_node_runs_it_directly():
    import shlex

    from med42_utils.launch import STEP_MASTER
    from med42_utils.paths import repo_root, run_dir

    p = load_params("8b")
    plan = plan_launch(p, "sft", "pytest-cmd", "med42_utils.sft.train", ["--set", "a=b c"])
    cfg = repo_root() / "params/accelerate/fsdp_8b.yaml"
    assert plan.node_command == STEP_MASTER + (
        f"accelerate launch --config_file {shlex.quote(str(cfg))} --num_machines 2 --num_processes 16 "
        "--machine_rank $SLURM_PROCID --main_process_ip $MASTER_ADDR --main_process_port 29500 --rdzv_backend c10d "
        "-m med42_utils.sft.train --size 8b --run-name pytest-cmd --set 'a=b c'")
    assert STEP_MASTER == 'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n 1); '
    sdir = run_dir("8b", "pytest-cmd") / "sft"
    assert plan.slurm_path == sdir / "launch_sft.slurm" and plan.job_name == "med42-sft-8b"
    assert plan.commands == [f"mkdir -p {shlex.quote(str(sdir / 'logs'))}",
                             f"sbatch {shlex.quote(str(sdir / 'launch_sft.slurm'))}"]
    assert plan.progress_file == sdir / "progress.jsonl" and plan.accelerate_config == cfg
    assert plan.args == ["--size", "8b", "--run-name", "pytest-cmd", "--set", "a=b c"]
    one = plan_launch(load_params("workshop"), "sft", "pytest-cmd", "med42_utils.sft.train", [], job="sft_again")
    single = repo_root() / "params/accelerate/single_gpu.yaml"
    assert one.commands == [f"accelerate launch --config_file {single} --num_machines 1 --num_processes 1 "
                            "-m med42_utils.sft.train --size workshop --run-name pytest-cmd"]
    assert one.node_command == one.commands[0], "one node: no rank, rendezvous or MASTER_ADDR"
    assert one.slurm_path.name == "launch_sft_again.slurm" and one.job_name == "med42-sft_again-workshop"
    assert "one node: this command on a node with the GPUs; from a login node, sbatch launch_sft_again.slurm" in \
        one.notes


def _config(tmp_path, text):
    path = tmp_path / "acc.yaml"
    path.write_text(text)
    return str(path)


def test_an_accelerate_config_that_does_not_fit_the_hardware_is_refused_and_counts_that_differ_are_noted(tmp_path):
    gpu = {"sft.hardware.nodes": 1, "sft.hardware.gpus_per_node": 4, "sft.hardware.launcher": "accelerate",
           "sft.gradient_accumulation_steps": 8}
    with pytest.raises(LaunchError, match=r"acc\.yaml is not an accelerate config \(no distributed_type\)"):
        plan_launch(load_params("8b", {**gpu, "sft.hardware.accelerate_config": _config(tmp_path, "- a list\n")}),
                    "sft", "x", "m", [])
    with pytest.raises(LaunchError, match=r"acc\.yaml is not an accelerate config"):
        plan_launch(load_params("8b", {**gpu, "sft.hardware.accelerate_config": _config(tmp_path, "num_machines: 1\n")}),
                    "sft", "x", "m", [])
    with pytest.raises(LaunchError, match=r"acc\.yaml says use_cpu: true but hardware\.accelerator is h100"):
        plan_launch(load_params("8b", {**gpu, "sft.hardware.accelerate_config": _config(
            tmp_path, "distributed_type: 'NO'\nuse_cpu: true\n")}), "sft", "x", "m", [])
    from med42_utils.launch import _check_config

    cpu = Hardware(nodes=1, gpus_per_node=2, accelerator="cpu", launcher="accelerate", accelerate_config="acc.yaml")
    with pytest.raises(LaunchError, match=r"acc\.yaml: hardware\.accelerator is cpu but the config lacks 'use_cpu: true'"):
        _check_config(Path(_config(tmp_path, "distributed_type: 'NO'\nuse_cpu: false\n")), cpu)
    fits = _config(tmp_path, "distributed_type: FSDP\nnum_machines: 1\nnum_processes: 3\n")
    plan = plan_launch(load_params("8b", {**gpu, "sft.hardware.accelerate_config": fits}), "sft", "x", "m", [])
    assert "acc.yaml says num_processes: 3; the command line sets 4 from params" in plan.notes
    assert not any("says num_machines" in n for n in plan.notes), "the config's 1 machine is what params say"
    ok = _check_config(Path(_config(tmp_path, "distributed_type: MULTI_CPU\nuse_cpu: true\nnum_machines: 1\n"
                                               "num_processes: 2\n")), cpu)
    assert ok == [], "a CPU config on CPU hardware with params' counts: nothing noted"
    inproc = cpu.model_copy(update={"launcher": "inprocess", "accelerator": "h100"})
    assert _check_config(Path(_config(tmp_path, "distributed_type: 'NO'\nuse_cpu: true\nnum_processes: 9\n")),
                         inproc) == [], "in-process: the config is not used to launch"


def test_in_process_execute_calls_the_modules_main_with_the_plans_arguments_and_fails_on_its_status(tmp_path,
                                                                                                     monkeypatch):
    import importlib

    from med42_utils.launch import LaunchPlan

    (tmp_path / "pytest_stage_mod.py").write_text("calls = []\n\ndef main(argv):\n    calls.append(argv)\n"
                                                  "    return int(argv[-1])\n")
    (tmp_path / "pytest_no_main_mod.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cpu = Hardware(nodes=1, gpus_per_node=1, accelerator="cpu", launcher="inprocess")
    plan = LaunchPlan(stage="sft", hardware=cpu, accelerate_config=None, commands=["python -m pytest_stage_mod --x 0"],
                      slurm_script=None, memory_gib={}, est_hours=None, module="pytest_stage_mod", args=["--x", "0"])
    assert execute(plan) is None
    assert importlib.import_module("pytest_stage_mod").calls == [["--x", "0"]]
    plan.args, plan.commands = ["--x", "3"], ["python -m pytest_stage_mod --x 3"]
    with pytest.raises(LaunchError, match=r"^python -m pytest_stage_mod --x 3 returned 3$"):
        execute(plan)
    plan.module = "pytest_no_main_mod"
    with pytest.raises(LaunchError, match=r"^module pytest_no_main_mod has no main\(argv\); the in-process launcher "
                                          r"needs one$"):
        execute(plan)


def test_a_job_is_done_when_its_recorded_request_is_this_one_and_every_output_was_written_after_it(tmp_path):
    import hashlib
    import json
    import os

    from med42_utils.launch import LaunchPlan, job_done, job_request
    from med42_utils.manifest import MANIFEST

    cpu = Hardware(nodes=1, gpus_per_node=1, accelerator="cpu", launcher="inprocess")
    plan = LaunchPlan(stage="eval", hardware=cpu, accelerate_config=None, commands=["python -m m --size 8b", "other"],
                      slurm_script="#!/bin/bash\n", memory_gib={}, est_hours=None,
                      slurm_path=tmp_path / "eval" / "launch_eval.slurm")
    assert plan.request_record == tmp_path / "eval" / "launch_eval.request.json"
    assert plan.job_record == tmp_path / "eval" / "launch_eval.job.json"
    sft, missing = tmp_path / "sft", tmp_path / "dpo"
    sft.mkdir()
    (sft / MANIFEST).write_text('{"stage": "sft"}')
    request = job_request(plan, [sft, missing])
    assert request == {"command": "python -m m --size 8b", "inputs": {
        str(sft): hashlib.sha256(b'{"stage": "sft"}').hexdigest(), str(missing): None}}, \
        "the first command, and each input's manifest hash (None: not there yet)"
    out = tmp_path / "eval" / "results.json"
    out.parent.mkdir()
    out.write_text("{}")
    assert job_done(plan, [out], [sft, missing]) is None, "no request recorded yet"
    plan.request_record.write_text(json.dumps(request))
    t = plan.request_record.stat().st_mtime_ns
    os.utime(out, ns=(t, t))                               # written at the very time of the request: by its job
    other = tmp_path / "eval" / "table.csv"
    other.write_text("x")
    os.utime(other, ns=(t + 1, t + 1))
    assert job_done(plan, [out, other], [sft, missing]) == "results.json, table.csv written by the job for this same request"
    assert job_done(plan, [], [sft, missing]) is None, "a job that names no outputs is never taken as done"
    os.utime(other, ns=(t - 1, t - 1))
    assert job_done(plan, [out, other], [sft, missing]) is None, "an output older than the request: an earlier job's"
    assert job_done(plan, [out, tmp_path / "eval" / "nope.csv"], [sft, missing]) is None
    (sft / MANIFEST).write_text('{"stage": "sft", "again": 1}')
    assert job_done(plan, [out], [sft, missing]) is None, "an input re-run since: another request"
    plan.request_record.write_text("{not json")
    t = plan.request_record.stat().st_mtime_ns
    os.utime(out, ns=(t + 1, t + 1))
    assert job_done(plan, [out], [sft]) is None, "a broken record holds no request"
    plan.slurm_path = None
    assert plan.request_record is None and job_done(plan, [out], [sft]) is None, "in-process: nothing recorded"


def test_one_process_jobs_take_their_stages_site_options_and_only_eval_and_judging_requeue_at_the_signal(tmp_path):
    from med42_utils.hardware import job_hardware
    from med42_utils.launch import plan_job
    from med42_utils.preflight import stage_needs

    p = load_params("8b", {"slurm.eval.partition": "e", "slurm.judge.partition": "j", "slurm.samples.partition": "s",
                           "slurm.dpo.partition": "d"})
    cmd = "python -m med42_utils.x --size 8b --run-name r --a 'b c'"
    resumable = ("resumable: every finished model is kept; SIGUSR1 300 s before the time limit requeues the job "
                 "(--requeue), which goes on at the next model")
    for job, stage, requeue in (("eval", "eval", True), ("judge", "judge", True), ("sft_samples", "samples", False),
                                ("onpolicy_round1", "dpo", False)):
        plan = plan_job(p, job, "r", tmp_path / "st", "med42_utils.x", ["--a", "b c"])
        assert plan.commands == [cmd] and plan.node_command == cmd and plan.args[:4] == ["--size", "8b", "--run-name", "r"]
        assert (plan.stage, plan.site_stage, plan.job_name) == (job, stage, f"med42-{job}-8b")
        assert plan.slurm_path == tmp_path / "st" / f"launch_{job}.slurm"
        s = plan.slurm_script.splitlines()
        assert f"#SBATCH --job-name=med42-{job}-8b" in s and f"#SBATCH --partition={stage[0]}" in s, job
        assert "#SBATCH --nodes=1" in s and "#SBATCH --gres=gpu:8" in s
        assert f"#SBATCH --output={tmp_path}/st/logs/%x-%j.out" in s
        assert ("#SBATCH --signal=B:USR1@300" in s) is requeue and (resumable in plan.notes) is requeue, job
        assert f"srun --export=ALL --kill-on-bad-exit=1 bash -c {__import__('shlex').quote(cmd)}{' &' * requeue}" in s
        assert plan.notes[0] == "one process on 1 node x 8 h100"
        assert (plan.hardware, plan.module, plan.job_params, plan.needs_job) == (job_hardware(p), "med42_utils.x", p, job)
        assert plan.site.lines[0] == f"--partition={stage[0]}" and plan.needs == stage_needs(p, "r", job)
        assert (plan.warnings, plan.capacity_problems) == ([], []), "8 GPUs of 80 GB hold every model here"
        if requeue:  # each model's GPUs, memory and hours from params: a --time from them
            assert plan.est_hours > 0 and plan.memory_gib["total"] > 0
            assert f"#SBATCH --time={cluster_plan.suggested_time(plan.est_hours)}" in s
        else:
            assert plan.est_hours is None and plan.memory_gib == {} and not any("--time" in x for x in s)
    one = plan_job(load_params("workshop"), "eval", "r", tmp_path / "ws", "m")
    assert any(x.startswith("#SBATCH --mem=") and x.endswith("G") for x in one.slurm_script.splitlines()), \
        "a one-GPU job asks for the host memory of its largest model"
    tiny = plan_job(load_params("tiny"), "eval", "r", tmp_path / "t", "m")
    assert (tiny.slurm_path, tiny.slurm_script, tiny.commands) == (None, None, ["python -m m --size tiny --run-name r"])
    assert (tiny.memory_gib, tiny.est_hours) == ({}, None), "no GPU figures for a CPU job"
    models = plan_job(p, "eval", "r", tmp_path / "st", "m", models=["sft"])
    assert models.needs == stage_needs(p, "r", "eval", ["sft"]) != stage_needs(p, "r", "eval")


def test_a_local_launch_runs_the_last_command_with_this_python_from_the_repo_root_and_fails_on_its_status(
        tmp_path, monkeypatch, capsys):
    import re
    import subprocess
    import sys

    from med42_utils import launch
    from med42_utils.launch import LaunchPlan
    from med42_utils.paths import repo_root

    monkeypatch.setattr(launch, "placement", lambda hw: ("local", "2 GPU(s) found"))
    runs = []

    def run(cmd, **kw):  # stands in for the launch itself: records what would run, exits as told
        runs.append((cmd, kw))
        return subprocess.CompletedProcess(cmd, rc)

    monkeypatch.setattr(launch.subprocess, "run", run)
    hw = Hardware(nodes=1, gpus_per_node=2, accelerator="h100", launcher="accelerate", accelerate_config="c.yaml")
    plan = LaunchPlan(stage="sft", hardware=hw, accelerate_config=None, memory_gib={}, est_hours=None,
                      commands=["echo not this one", "accelerate launch --config_file 'my c.yaml' -m mod --size 8b"],
                      slurm_script=None)
    rc = 0
    assert execute(plan) is None
    assert runs == [([sys.executable, "-m", "accelerate.commands.launch", "--config_file", "my c.yaml", "-m", "mod",
                      "--size", "8b"], {"cwd": repo_root()})], "accelerate of this Python, not the one on PATH"
    assert "sft: 2 GPU(s) found" in capsys.readouterr().out
    plan.commands = ["python -m mod --size 8b"]
    rc = 3
    with pytest.raises(LaunchError, match=rf"^launch failed \(exit 3\): {re.escape(sys.executable)} -m mod --size 8b$"):
        execute(plan)
    assert runs[-1] == ([sys.executable, "-m", "mod", "--size", "8b"], {"cwd": repo_root()})


def test_inside_an_allocation_srun_runs_the_node_command_from_the_repo_root_on_every_node(tmp_path, monkeypatch):
    import os
    import shlex

    from med42_utils import launch
    from med42_utils.launch import python_bin
    from med42_utils.paths import repo_root

    monkeypatch.setattr(launch, "placement", lambda hw: ("srun", "inside a SLURM allocation of 2 node(s)"))
    calls = []
    monkeypatch.setattr(launch.slurm, "srun", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    plan = plan_launch(load_params("8b"), "sft", "pytest-srun", "med42_utils.sft.train", [])
    plan.needs = None
    assert execute(plan, interval=0.5) is None
    ((args, kw),) = calls
    assert args == (["bash", "-c", f"cd {shlex.quote(str(repo_root()))} && {plan.node_command}"], 2,
                    plan.log_dir / "srun-med42-sft-8b-777.out", plan.progress_file)
    env = kw.pop("env")
    assert kw == {"interval": 0.5, "gpus_per_node": 8, "step_name": "med42-sft-8b"}
    assert env["MASTER_PORT"] == "29500" and env["PATH"] == os.pathsep.join([python_bin(), "/usr/bin:/bin"])
    monkeypatch.delenv("SLURM_JOB_ID")
    cpu = load_params("8b", {"sft.hardware.accelerator": "cpu", "sft.hardware.accelerate_config":
                             "params/accelerate/fsdp_cpu_tiny.yaml"})
    plan = plan_launch(cpu, "sft", "pytest-srun", "med42_utils.sft.train", [])
    plan.needs = None
    execute(plan)
    assert calls[-1][0][2].name == "srun-med42-sft-8b-local.out" and calls[-1][1]["gpus_per_node"] == 0, \
        "no GPUs asked for a CPU step; outside a job the log is named local"


def test_from_a_login_node_the_job_is_submitted_once_followed_or_left_and_a_refusal_points_at_the_key(
        tmp_path, monkeypatch, capsys):
    from med42_utils import launch, slurm

    monkeypatch.setattr(launch, "placement", lambda hw: ("sbatch", "sbatch found"))
    job = slurm.Job("4242", "med42-sft-8b", "s.slurm", "/logs/med42-sft-8b-4242.out", 0.0)
    submitted, waited = [], []
    monkeypatch.setattr(launch.slurm, "submit", lambda path, name, record: submitted.append((path, name, record)) or job)
    monkeypatch.setattr(launch.slurm, "wait", lambda j, progress, interval: waited.append((j, progress, interval)))
    monkeypatch.setattr(launch.slurm, "is_active", lambda j: True)
    plan = plan_launch(load_params("8b", {"slurm.partition": "gpu"}), "sft", "pytest-login", "m", [])
    plan.needs = None
    monkeypatch.setattr(launch.slurm_site, "read_sinfo", lambda: None)
    assert execute(plan, interval=0.25) is job
    assert submitted == [(plan.slurm_path, "med42-sft-8b", plan.job_record)] and plan.slurm_path.is_file()
    assert waited == [(job, plan.progress_file, 0.25)]
    out = capsys.readouterr().out
    assert f"SLURM options (slurm.sft in params, MED42_SLURM for one run): {' '.join(plan.site.lines)}\n" in out
    assert "submitted SLURM job 4242 (med42-sft-8b); log /logs/med42-sft-8b-4242.out\n" in out
    job.write(plan.job_record)                              # a re-run while that job is queued: no second submit
    assert execute(plan, wait=False) == job and len(submitted) == 1 and len(waited) == 1
    out = capsys.readouterr().out
    assert ("SLURM job 4242 of this stage is still queued or running: waiting for it (not submitting another); log "
            "/logs/med42-sft-8b-4242.out\n") in out
    assert "not waiting (wait=False). Follow it with `squeue -j 4242` and `tail -f /logs/med42-sft-8b-4242.out`" in out
    monkeypatch.setattr(launch.slurm, "is_active", lambda j: False)   # that job has ended: a new one is submitted

    def refuse(path, name, record):
        raise slurm.SlurmError("sbatch: error: Batch job submission failed: Invalid account specified")

    monkeypatch.setattr(launch.slurm, "submit", refuse)
    with pytest.raises(slurm.SlurmError) as e:
        execute(plan)
    assert str(e.value) == ("sbatch: error: Batch job submission failed: Invalid account specified\n"
                            + launch.slurm_site.sbatch_hint("Invalid account", "sft"))
    assert str(e.value).endswith("MED42_SLURM='account=...'; see docs/cluster-options.md")


def _one_node(gpus: int) -> dict:
    """8b's SFT hardware (which eval and judging jobs take) on one node of `gpus` GPUs, tokens per step kept."""
    return {"sft.hardware.gpus_per_node": gpus, "sft.hardware.nodes": 1, "sft.hardware.launcher": "accelerate",
            "sft.gradient_accumulation_steps": 32 // gpus}


def test_an_eval_job_asks_host_memory_for_the_models_it_loads_at_once_and_a_model_of_unknown_size_adds_none(
        tmp_path, monkeypatch):
    from med42_utils import slurm_site
    from med42_utils.launch import plan_job

    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: None)
    # three 8B models on 2 GPUs: one per GPU, two loading at once: 16 GiB base + 1.5 x 2 x 16.06 GB of bf16 weights
    # = 60.9 GiB, rounded up to 64 (one model alone: 38.4 -> 40)
    three = load_params("8b", {**_one_node(2), "eval.models": ["base", "sft", "dpo_round3"], "extra_models": []})
    plan = plan_job(three, "eval", "r", tmp_path / "a", "m")
    assert [x for x in plan.slurm_script.splitlines() if x.startswith("#SBATCH --mem")] == ["#SBATCH --mem=64G"]
    # the site's notes are the plan's, naming this job's key
    t = cluster_plan.suggested_time(plan.est_hours)
    assert f"--time={t}: from the plan's estimate (set slurm.eval.time to choose)" in plan.notes
    assert ("--mem=64G: host memory for loading the model(s) (med42_utils.cluster_plan.host_memory_gib); add "
            "--mem=... to slurm.extra to choose") in plan.notes
    # the only model is an extra one whose size nothing tells: still planned, no --mem, nothing refused
    unknown = load_params("8b", {**_one_node(2), "eval.models": ["x"], "extra_models": [{"name": "x", "hub": "org/mystery"}]})
    plan = plan_job(unknown, "eval", "r", tmp_path / "b", "m")
    assert not any(x.startswith("#SBATCH --mem") for x in plan.slurm_script.splitlines())
    assert (plan.capacity_problems, plan.warnings) == ([], [])
    assert ("x (scored): size unknown (extra model x: no config.json at org/mystery and no known size in its name); "
            "not planned") in plan.notes


def test_an_eval_job_that_cannot_fit_keeps_the_models_problem_and_the_partitions_in_its_warnings(tmp_path, monkeypatch):
    from med42_utils import slurm_site
    from med42_utils.launch import plan_job

    parts = slurm_site.parse_sinfo("cpu*|4|16|(null)|infinite|\n")  # a partition without GPUs
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: parts)
    p = load_params("8b", {**_one_node(1), "eval.models": ["base"],
                           "extra_models": [{"name": "Llama-70B", "hub": "meta-llama/Meta-Llama-3-70B-Instruct"}]})
    plan = plan_job(p, "eval", "r", tmp_path, "m")
    # 70.6 B parameters: 131.4 GiB of bf16 weights (+ KV cache and overhead) need 2 GPUs of 80 GB; the node has 1
    too_big = ("Llama-70B needs 139.4 GiB = 2 GPU(s) of 80 GB and the job's node has 1: give the job more GPUs per "
               "node (sft.hardware.gpus_per_node, now 1)")
    assert plan.capacity_problems == [too_big]
    unfit = slurm_site.fit_problems(plan.site, plan.hardware, parts, "eval")
    assert unfit and plan.warnings == [too_big, *unfit], "the dry run warns of both, the model first"


@pytest.fixture
def _no_sinfo(monkeypatch):
    from med42_utils import slurm_site

    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: None)


def test_a_tiny_plan_runs_in_this_process_on_the_cpu_with_its_notes_in_order_and_no_slurm(_no_sinfo):
    from med42_utils.budget import plan_notes
    from med42_utils.checkpoints import plan_note
    from med42_utils.paths import repo_root

    p = load_params("tiny")
    plan = plan_launch(p, "sft", "r", "m", [])
    assert plan.notes == [
        "model shape tiny: 231k parameters, hidden 64, 2 layers, MLP 192, vocab 1037",
        "memory: one process, no FSDP (in-process at this size); see med42_utils/estimates.py for the assumptions",
        cluster_plan.epochs_covered(p, cluster_plan.packed_rows(p, "r")),
        "time at MFU 35% of 989 TFLOP/s bf16 per H100: compute 0.0 h",
        *plan_notes(p, "sft"),  # no communication/checkpoint-write lines: they assume H100s too
        "CPU run: the time estimate assumes H100s and does not apply",
        plan_note(p, "sft", None, 120),  # no pace, no host memory at load (one process)
        "in-process: execute() calls the module's main() in this Python process",
    ]
    assert plan.est_hours is None and plan.commands == ["python -m m --size tiny --run-name r"]
    assert (plan.module, plan.needs_job) == ("m", "sft")  # what execute imports, what preflight checks
    assert plan.accelerate_config == repo_root() / "params/accelerate/fsdp_cpu_tiny.yaml"
    assert (plan.slurm_script, plan.slurm_path, plan.site, plan.job_name, plan.progress_file, plan.warnings,
            plan.node_command) == (None, None, None, "", None, [], "")
    md = render_plan(plan)
    assert "SLURM script" not in md and "SLURM site options" not in md and "WARNING" not in md
    # without an accelerate config (in-process needs none): the same plan, no config
    none = plan_launch(load_params("tiny", {"sft.hardware.accelerate_config": None}), "sft", "r", "m", [])
    assert none.accelerate_config is None and none.notes == plan.notes


def test_an_sft_plan_takes_memory_compute_and_cluster_time_at_the_given_mfu_and_notes_a_time_limit_too_short(_no_sinfo):
    from med42_utils.checkpoints import plan_note

    p = load_params("8b", {"slurm.sft.time": "1:00:00"})
    plan = plan_launch(p, "sft", "r", "m", [], mfu=0.5)
    mem, compute = estimates.sft_estimate(p, 0.5)
    timing = cluster_plan.sft_time(p, 0.5)
    assert plan.memory_gib == mem.as_gib() != estimates.dpo_estimate(p)[0].as_gib()  # no reference model
    assert plan.est_hours == pytest.approx(timing.total) and timing.total > compute > 1
    i = plan.notes.index(f"time at MFU 50% of 989 TFLOP/s bf16 per H100: compute {compute:,.1f} h")
    assert plan.notes[i + 1:i + 1 + len(timing.notes)] == timing.notes and timing.notes
    assert plan_note(p, "sft", timing.total, p.sft.max_steps) in plan.notes  # with the pace of a checkpoint
    assert plan.notes[1] == "memory: FSDP full shard over 16 process(es); see med42_utils/estimates.py for the assumptions"
    assert cluster_plan.training_host_memory(estimates.LLAMA3_8B, 8, 2, False, False) in plan.notes
    assert "#SBATCH --signal=B:USR1@300" in plan.slurm_script.splitlines()
    assert (f"slurm time 1:00:00 is shorter than the estimated {timing.total:,.1f} h: the job will reach its time "
            "limit part way, save a checkpoint and requeue itself (docs/resume.md); raise slurm.sft.time to run it "
            "in one go") in plan.notes
    assert not any(n.startswith("slurm time") for n in plan_launch(load_params("8b"), "sft", "r", "m", []).notes)


def test_an_estimate_exactly_at_the_slurm_time_is_not_noted_as_too_long(_no_sinfo, monkeypatch):
    monkeypatch.setattr(cluster_plan, "sft_time", lambda params, mfu: cluster_plan.TimePlan(0.75, 0.25, 0.0, 0.0, []))
    plan = plan_launch(load_params("8b", {"slurm.sft.time": "1:00:00"}), "sft", "r", "m", [])
    assert plan.est_hours == 1.0 and not any(n.startswith("slurm time") for n in plan.notes)


def test_a_multi_gpu_training_job_on_part_of_a_node_asks_no_per_model_host_memory(_no_sinfo):
    p = load_params("8b", {**_one_node(2), "sft.gradient_accumulation_steps": 16})
    plan = plan_launch(p, "sft", "r", "m", [])
    assert not any(x.startswith("#SBATCH --mem") for x in plan.slurm_script.splitlines())
    assert cluster_plan.training_host_memory(estimates.LLAMA3_8B, 2, 1, False, False) in plan.notes


def _dpo_8b(**more):
    # 10,000 pairs per source at most: 10,000 + 10,000 (round1's two sources) + 10,000 + 10,000 over 3 rounds
    return load_params("8b", {"dpo.max_samples_per_source": 10_000, "dpo.num_train_epochs": 2, **more})


def test_a_dpo_plan_counts_the_published_pairs_per_round_and_times_the_rounds_at_the_given_mfu(_no_sinfo):
    from med42_utils.checkpoints import plan_note

    p = _dpo_8b()
    whole = plan_launch(p, "dpo", "r", "m", [], mfu=0.5)
    # 20,000 + 10,000 + 10,000 = 40,000 over 3 rounds: 13,334 per round (rounded up); x 2 epochs / 256 per step
    # -> 105 steps a round, 315 for the three
    assert ("DPO pairs: 20,000 + 10,000 + 10,000 over 3 round(s), from the published split sizes capped at 10,000 "
            "per source (dpo.max_samples_per_source)") in whole.notes
    mem, compute = estimates.dpo_estimate(p, 13_334, 0.5)
    timing = cluster_plan.dpo_time(p, 13_334, 0.5)
    assert whole.memory_gib == mem.as_gib() and whole.est_hours == pytest.approx(timing.total)
    i = whole.notes.index(f"time at MFU 50% of 989 TFLOP/s bf16 per H100: compute {compute:,.1f} h")
    assert whole.notes[i + 1:i + 1 + len(timing.notes)] == timing.notes
    assert plan_note(p, "dpo", timing.total, 315) in whole.notes
    assert ("reference model: frozen bf16 weights, wrapped per decoder layer like the policy before TRL sees it "
            "(training.frozen_reference; TRL alone would make it one FSDP unit), no grads, no optimizer") in whole.notes
    assert cluster_plan.training_host_memory(estimates.LLAMA3_8B, 8, 2, True, False) in whole.notes
    # a round's own job: its own pairs, one round (10,000 x 2 / 256 -> 79 steps)
    one = plan_launch(p, "dpo", "r", "m", [], mfu=0.5, job="dpo_round2")
    assert "DPO pairs of round2 (this job): 10,000, from the published split sizes capped at 10,000 per source " \
           "(dpo.max_samples_per_source)" in one.notes
    timing = cluster_plan.dpo_time(p, 10_000, 0.5, rounds=1)
    compute = estimates.dpo_estimate(p, 10_000, 0.5, 1)[1]
    assert f"time at MFU 50% of 989 TFLOP/s bf16 per H100: compute {compute:,.1f} h" in one.notes
    assert (whole.needs_job, one.needs_job) == ("dpo", "dpo_round2")
    assert one.est_hours == pytest.approx(timing.total) and timing.total < whole.est_hours / 2
    assert plan_note(p, "dpo", timing.total, 79) in one.notes
    # a count passed wins over the published sizes, with no pairs note
    asked = plan_launch(p, "dpo", "r", "m", [], num_pairs=5_000)
    assert asked.est_hours == pytest.approx(cluster_plan.dpo_time(p, 5_000).total)
    assert not any(n.startswith("DPO pairs") for n in asked.notes)


def test_a_dpo_plan_with_a_round_of_unpublished_size_asks_for_the_pair_count(_no_sinfo):
    rounds = [r.model_dump() for r in load_params("8b").dpo.rounds]
    rounds[2]["datasets"] = ["c:d"]  # a local file: no published size
    p = load_params("8b", {"dpo.rounds": rounds})
    plan = plan_launch(p, "dpo", "r", "m", [], mfu=0.5)
    assert plan.est_hours is None and plan.memory_gib == estimates.dpo_estimate(p)[0].as_gib()
    assert plan.notes[2] == "time: pass num_pairs to estimate DPO wall time (a round's datasets have no published size)"
    assert not any(n.startswith("time at MFU") for n in plan.notes)


def test_a_lora_dpo_plan_uses_the_policy_as_its_reference_and_a_precomputed_reference_holds_none(_no_sinfo):
    from med42_utils.checkpoints import plan_note

    w = load_params("workshop")
    plan = plan_launch(w, "dpo", "r", "m", [])
    # 320 + 160 + 160 = 640 over 3 rounds: 214 per round (rounded up); 214 / 16 per step -> 14 steps a round
    assert plan.est_hours == pytest.approx(cluster_plan.dpo_time(w, 214).total)
    assert plan_note(w, "dpo", plan.est_hours, 42) in plan.notes
    assert "reference model: the policy with its LoRA adapters switched off (no second model in memory)" in plan.notes
    assert not any("frozen bf16" in n for n in plan.notes)
    assert cluster_plan.training_host_memory(estimates.LLAMA3_8B, 1, 1, False, True) in plan.notes
    pre = plan_launch(load_params("8b", {"dpo.precompute_ref_log_probs": True}), "dpo", "r", "m", [])
    assert not any(n.startswith("reference model") for n in pre.notes)
    assert cluster_plan.training_host_memory(estimates.LLAMA3_8B, 8, 2, False, False) in pre.notes


def test_run_job_passes_the_overrides_on_records_its_request_and_runs_nothing_the_same_request_already_wrote(
        tmp_path, monkeypatch, capsys, _no_sinfo):
    import json

    from med42_utils import launch, slurm
    from med42_utils.manifest import write_manifest
    from med42_utils.preflight import stage_needs

    job = slurm.Job("77", "med42-eval-8b", "s.slurm", "/logs/med42-eval-8b-77.out", 0.0)
    ran = []
    monkeypatch.setattr(launch, "execute", lambda plan, wait=True: ran.append((plan, wait)) or job)
    p = load_params("8b", {"eval.limit": 5})
    st = tmp_path / "runs" / "r" / "st"  # not there yet, nor its parent
    out, sft = st / "scores.json", tmp_path / "sft"
    write_manifest(sft, "03_sft", p)
    cmd = "python -m m --size 8b --run-name r --set eval.limit=5 --x"  # the overrides, then the job's own arguments
    with pytest.raises(launch.JobPending) as e:
        launch.run_job(p, "eval", "r", st, "m", ["--x"], wait=False, outputs=[out], inputs=[sft], models=["sft"])
    (plan, wait), = ran
    assert wait is False and plan.commands == [cmd] and plan.needs == stage_needs(p, "r", "eval", ["sft"])
    assert e.value.job is job and str(e.value) == (
        "SLURM job 77 (med42-eval-8b) submitted and not waited for (wait=False). Re-run this notebook with the same "
        "parameters to continue: it waits for the job while it is queued or running, and picks up the finished stage "
        "once it is done. Meanwhile: squeue -j 77; tail -f /logs/med42-eval-8b-77.out")
    request = {"command": cmd, "inputs": {str(sft): launch.fingerprint(sft)}}
    assert json.loads((st / "launch_eval.request.json").read_text()) == request
    assert launch.job_plan(p, "eval", "r", st, "m", ["--x"]).commands == [cmd]
    # a re-run of the same request before the output exists: the recorded job is kept (execute waits for it)
    job.write(st / "launch_eval.job.json")
    launch.run_job(p, "eval", "r", st, "m", ["--x"], outputs=[out], inputs=[sft])
    assert len(ran) == 2 and ran[1][1] is True and (st / "launch_eval.job.json").is_file()
    # another request (another limit): the job recorded for the old one is not waited for, the record is replaced
    q = load_params("8b", {"eval.limit": 6})
    launch.run_job(q, "eval", "r", st, "m", ["--x"], outputs=[out], inputs=[sft])
    assert len(ran) == 3 and not (st / "launch_eval.job.json").exists()
    assert json.loads((st / "launch_eval.request.json").read_text())["command"] == cmd.replace("=5", "=6")
    # the job wrote its output after that request: the same request again runs nothing
    out.write_text("{}")
    capsys.readouterr()
    launch.run_job(q, "eval", "r", st, "m", ["--x"], outputs=[out], inputs=[sft])
    assert len(ran) == 3
    assert capsys.readouterr().out == ("eval: already done (scores.json written by the job for this same request); "
                                       "nothing submitted\n")


def test_a_job_takes_the_cpus_sinfo_shows_and_tiny_labelled_as_a_gpu_size_asks_no_h100_time_or_memory(
        tmp_path, monkeypatch):
    from med42_utils import slurm_site
    from med42_utils.launch import plan_job

    parts = slurm_site.parse_sinfo("gpu*|4|64|gpu:8|2-00:00:00|h100\n")
    monkeypatch.setattr(slurm_site, "read_sinfo", lambda: parts)
    plan = plan_job(load_params("8b"), "eval", "r", tmp_path / "a", "m")
    assert "#SBATCH --cpus-per-task=64" in plan.slurm_script.splitlines()
    assert "cpus per task 64: all of a node's 64 CPUs (sinfo, partition gpu); set slurm.cpus_per_task to choose" \
        in plan.notes
    labelled = load_params("tiny", {"sft.hardware.accelerator": "h100", "sft.hardware.launcher": "accelerate",
                                    "sft.hardware.accelerate_config": "params/accelerate/single_gpu.yaml"})
    tiny = plan_job(labelled, "eval", "r", tmp_path / "b", "m")
    assert tiny.hardware.gpus_per_node == 1 and tiny.est_hours is not None  # figures planned, but not for an H100
    assert not any(x.startswith(("#SBATCH --mem", "#SBATCH --time")) for x in tiny.slurm_script.splitlines())
