"""DPO under FSDP with 2 CPU processes (gloo), launched through the shared launcher (med42_utils.launch)."""
from __future__ import annotations

import shutil
import uuid

import pytest

from standins import make_sft_standin
import torch
from safetensors.torch import load_file

from med42_utils.manifest import read_manifest
from med42_utils.params import load_params
from med42_utils.paths import run_dir
from med42_utils.stages import stage_model_dir

# 2 processes: batch_size must equal micro x accum x 2
FSDP = {
    "dpo.hardware.gpus_per_node": 2, "dpo.hardware.launcher": "accelerate",
    "dpo.micro_batch_size": 1, "dpo.gradient_accumulation_steps": 2, "dpo.batch_size": 4,
    "dpo.max_samples_per_source": 4, "dpo.warmup_ratio": 0.0,
}


@pytest.mark.slow
def test_round1_trains_under_fsdp_on_two_cpu_processes(tiny_model_path):
    from med42_utils.dpo.rounds import launch_plan, run_rounds

    params = load_params("tiny", FSDP)
    run = f"pytest-dpo-fsdp-{uuid.uuid4().hex[:6]}"
    try:
        sft = make_sft_standin(params, run, tiny_model_path)
        plan = launch_plan(params, run, "round1", FSDP)
        assert "accelerate launch --config_file" in plan.commands[0] and "fsdp_cpu_tiny.yaml" in plan.commands[0]
        assert "--num_processes 2" in plan.commands[0]
        run_rounds(params, run, round="round1", overrides=FSDP)
        out = stage_model_dir(params, run, "dpo_round1")
        m = read_manifest(out.parent)
        assert m["world_size"] == 2 and m["distributed_type"] == "FSDP" and m["fsdp"] is True
        assert m["reference_wrapped"] and m["reference_wrapped"].startswith("FSDP")  # the reference is sharded too
        assert m["dpo_config"]["per_device_train_batch_size"] * m["dpo_config"]["gradient_accumulation_steps"] * 2 == 4
        new, old = load_file(str(out / "model.safetensors")), load_file(str(sft / "model.safetensors"))
        assert set(new) == set(old) and all(new[k].shape == old[k].shape for k in old)  # a full, consolidated model
        assert any(not torch.equal(new[k], old[k]) for k in old)                         # and it was trained
        # and the saved values are real weights, not freed memory: finite, and within RMSprop's reach
        # (each step moves a weight by at most lr / sqrt(1 - alpha) = 10 x lr)
        max_step = max((new[k] - old[k]).abs().max().item() for k in old)
        assert all(torch.isfinite(new[k]).all() for k in new)
        assert max_step <= 10 * params.dpo.learning_rate * m["global_steps"] * 1.001
        # the launched job wrote its curves (rank 0 only) where the notebook reads them
        import json

        from med42_utils.training_logs import log_dir, read_scalars

        assert len(list(log_dir(out.parent).glob("events.out.tfevents.*"))) == 1
        hist = [h for h in json.loads((out.parent / "log_history.json").read_text()) if "loss" in h]
        curves = read_scalars(out.parent)
        assert curves["loss"].tolist() == pytest.approx([h["loss"] for h in hist], rel=1e-5)
        assert m["lengths"]["pairs"] == m["train_pairs"]
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)
