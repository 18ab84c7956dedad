"""The training core under FSDP on 2 CPU processes (gloo), at the tiny Llama shape: what each rank holds.

Each check stands in for memory on a GPU node (issue 29): rank 1 builds its models on meta (70b: one host copy
per node instead of eight), the DPO reference is sharded per decoder layer like the policy (70b: no 141 GB
gather per reference forward), accumulation keeps gradients sharded (70b: no 141 GB of unsharded gradients),
the final model is saved in the params' dtype (70b: 141 GB of bf16, not 282 GB of fp32), and LoRA is refused
on more than one process; training on 2 processes gives the losses of 1.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid

import pytest

from standins import make_sft_standin
import torch
from safetensors.torch import load_file

from med42_utils.params import ParamsError, load_params
from med42_utils.paths import repo_root, run_dir
from med42_utils.stages import stage_model_dir

# 2 processes x micro-batch 1 x accumulation 2 = 4 pairs a step; 1 process takes them in 4 micro-batches
TWO = {"dpo.hardware.gpus_per_node": 2, "dpo.hardware.launcher": "accelerate", "dpo.micro_batch_size": 1,
       "dpo.gradient_accumulation_steps": 2, "dpo.batch_size": 4, "dpo.max_samples_per_source": 4,
       "dpo.warmup_ratio": 0.0, "dpo.logging_steps": 1}
ONE = {**TWO, "dpo.hardware.gpus_per_node": 1, "dpo.hardware.launcher": "inprocess",
       "dpo.gradient_accumulation_steps": 4}


def _run_from_tiny(params, tiny_model_path) -> str:
    run = f"pytest-core-{uuid.uuid4().hex[:6]}"
    make_sft_standin(params, run, tiny_model_path)
    return run


def _losses(params, run) -> list[float]:
    hist = json.loads((stage_model_dir(params, run, "dpo_round1").parent / "log_history.json").read_text())
    return [h["loss"] for h in hist if "loss" in h]


@pytest.mark.slow
def test_two_process_dpo_loads_once_shards_the_reference_per_layer_and_keeps_gradients_sharded(tiny_model_path,
                                                                                                 tmp_path):
    from med42_utils.dpo.train import train_round

    p2, p1 = load_params("tiny", TWO), load_params("tiny", ONE)
    runs = [_run_from_tiny(p2, tiny_model_path), _run_from_tiny(p1, tiny_model_path)]
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(repo_root() / p2.dpo.hardware.accelerate_config), "--num_processes", "2",
               "--main_process_port", str(port), str(repo_root() / "tests" / "fsdp_probe.py"),
               runs[0], str(tmp_path), json.dumps(TWO)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo_root()), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
        layers = p2.model.tiny.num_hidden_layers
        # load once: rank 0 reads the weights of the policy and the reference, rank 1 builds both from the config
        # on meta (then gives them storage it never writes: accelerate broadcasts rank 0's shards into them)
        assert len(r0["loads"]) == len(r1["loads"]) == 2
        assert all(x["via"] == "from_pretrained" and x["meta"] == 0 and x["real"] > 0 for x in r0["loads"]), r0
        assert all(x["via"] == "from_config" and x["real"] == 0 and x["meta"] > 0 for x in r1["loads"]), r1
        # the reference is wrapped like the policy: each decoder layer, the embedding, the tail and the root
        for r in (r0, r1):
            assert r["reference_units"] >= layers + 1, r["reference_units"]
            assert r["substeps"] and r["reference_units"] == r["substeps"][0]["policy_units"]
            # between micro-batches every gradient is a shard and no layer keeps a full one
            for s in r["substeps"]:
                assert s["grads"] > 0 and s["sharded"] == s["grads"] and s["unsharded_held"] == 0, s
        # the same 4 pairs a step on 1 process (accumulation 4) give the same losses
        train_round(p1, runs[1], "round1")
        two, one = _losses(p2, runs[0]), _losses(p1, runs[1])
        assert len(two) == len(one) > 1
        assert two == pytest.approx(one, abs=1e-5)
    finally:
        for run in runs:
            shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_final_model_is_saved_in_the_params_dtype_not_the_fp32_master_weights():
    """Full SFT keeps fp32 master weights; the model later stages load is written in model.torch_dtype (bf16 at
    8b/70b: 141 GB at 70b, not 282 GB)."""
    from test_sft import _packed_run

    from med42_utils.sft.train import train_sft

    run = _packed_run(f"pytest-core-{uuid.uuid4().hex[:6]}")
    try:
        p = load_params("tiny", {"model.torch_dtype": "bfloat16", "sft.max_steps": 2, "sft.save_steps": 100})
        train_sft(p, run)
        out = run_dir("tiny", run) / "sft" / "model"
        assert {t.dtype for t in load_file(str(out / "model.safetensors")).values()} == {torch.bfloat16}
        assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    finally:
        shutil.rmtree(run_dir("tiny", run), ignore_errors=True)


def test_sft_lora_on_more_than_one_process_is_refused_with_the_fix():
    with pytest.raises(ParamsError, match=r"sft.method 'lora' runs on one process.*sft.hardware has 2.*method 'full'"):
        load_params("tiny", {"sft.method": "lora", "sft.hardware.gpus_per_node": 2,
                             "sft.hardware.launcher": "accelerate", "sft.tokens_per_step": 2048})
    assert load_params("tiny", {"sft.method": "lora"}).sft.method == "lora"  # one process: allowed
