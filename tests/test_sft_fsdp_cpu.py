"""The CPU-FSDP shim only engages for multi-process CPU launches and maps the accelerate config."""
from __future__ import annotations

import yaml

from med42_utils.params import load_params
from med42_utils.paths import repo_root
from med42_utils.sft.fsdp_cpu import cpu_fsdp_requested, trainer_fsdp_args

MULTI = {"sft.hardware.gpus_per_node": 2, "sft.hardware.launcher": "accelerate", "sft.tokens_per_step": 2048}


def test_engages_only_for_multi_process_cpu_fsdp():
    assert cpu_fsdp_requested(load_params("tiny")) is None  # in-process
    assert cpu_fsdp_requested(load_params("8b")) is None  # GPUs: accelerate does FSDP itself
    cfg = cpu_fsdp_requested(load_params("tiny", MULTI))
    want = yaml.safe_load((repo_root() / "params/accelerate/fsdp_cpu_tiny.yaml").read_text())["fsdp_config"]
    assert cfg == want


def test_trainer_args_follow_the_accelerate_config():
    args = trainer_fsdp_args(cpu_fsdp_requested(load_params("tiny", MULTI)))
    assert args["fsdp"] == "full_shard auto_wrap"
    c = args["fsdp_config"]
    assert c["version"] == 2 and c["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert c["reshard_after_forward"] is True and c["state_dict_type"] == "FULL_STATE_DICT"
