"""FSDP on CPU processes (gloo), so CI exercises the sharded path of 8b/70b on the tiny model.

accelerate 1.15 picks gloo for CPU processes (`use_cpu: true` -> DistributedType.MULTI_CPU) but
only turns a FSDP plugin on for accelerator device types (MULTI_GPU, MULTI_XPU, ...): launched on
CPUs an FSDP config silently trains with DDP. Here the FSDP settings of the accelerate config
are handed to the trainer (TrainingArguments.fsdp / fsdp_config, which build the plugin), and after
the Accelerator exists its state is promoted from MULTI_CPU to FSDP, so `prepare` applies FSDP2's
fully_shard on the gloo process group; the full state dict is copied before saving (on CPU it
aliases storage that resharding frees). GPU launches never take this path.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..params import Params
from ..paths import resolve


def cpu_fsdp_requested(params: Params, stage: str = "sft") -> dict | None:
    """The accelerate config's fsdp_config when a CPU stage ('sft' or 'dpo') runs on >1 process
    with FSDP, else None."""
    hw = params.sft.hardware if stage == "sft" else params.dpo.hardware
    if hw.accelerator != "cpu" or hw.launcher == "inprocess" or hw.world_size < 2 or not hw.accelerate_config:
        return None
    cfg = yaml.safe_load(Path(resolve(hw.accelerate_config)).read_text()) or {}
    if cfg.get("distributed_type") != "FSDP":
        return None
    return cfg.get("fsdp_config") or {}


def trainer_fsdp_args(fsdp_config: dict) -> dict:
    """TrainingArguments fsdp/fsdp_config from an accelerate config's fsdp_config block."""
    wrap = fsdp_config.get("fsdp_transformer_layer_cls_to_wrap", "LlamaDecoderLayer")
    return {
        "fsdp": "full_shard auto_wrap",
        "fsdp_config": {
            "version": int(fsdp_config.get("fsdp_version", 2)),
            "auto_wrap_policy": fsdp_config.get("fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP"),
            "transformer_layer_cls_to_wrap": [wrap] if isinstance(wrap, str) else list(wrap),
            "reshard_after_forward": bool(fsdp_config.get("fsdp_reshard_after_forward", True)),
            "state_dict_type": fsdp_config.get("fsdp_state_dict_type", "FULL_STATE_DICT"),
            "cpu_ram_efficient_loading": bool(fsdp_config.get("fsdp_cpu_ram_efficient_loading", False)),
            "activation_checkpointing": bool(fsdp_config.get("fsdp_activation_checkpointing", False)),
        },
    }


def promote_to_fsdp(trainer) -> bool:
    """After the Accelerator exists: MULTI_CPU + an FSDP plugin -> FSDP. True when promoted."""
    from accelerate.utils import DistributedType

    state = trainer.accelerator.state
    plugin = getattr(trainer, "_med42_fsdp_plugin", None)
    if plugin is None or state.distributed_type != DistributedType.MULTI_CPU:
        return False
    state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = plugin
    trainer.is_fsdp_enabled = True
    return True


def fsdp_trainer_class(base):
    """A subclass of `base` (SFTTrainer, DPOTrainer, ...) whose Accelerator is promoted to FSDP on CPU.
    Pass trainer_fsdp_args(...) into its config so the FSDP plugin is built."""

    class CpuFsdpTrainer(base):
        def create_accelerator_and_postprocess(self):
            from accelerate.utils import FullyShardedDataParallelPlugin

            if self.args.fsdp_plugin_args is not None:
                self._med42_fsdp_plugin = FullyShardedDataParallelPlugin(**self.args.fsdp_plugin_args)
            super().create_accelerator_and_postprocess()
            self._med42_cpu_fsdp = promote_to_fsdp(self)

        def save_model(self, output_dir=None, _internal_call=False):
            if not getattr(self, "_med42_cpu_fsdp", False):
                return super().save_model(output_dir, _internal_call)
            # FSDP2's full state dict on CPU aliases storage that resharding frees: gather, then copy
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
            state = {k: v.detach().clone() for k, v in get_model_state_dict(self.model, options=opts).items()}
            self._save(output_dir or self.args.output_dir, state_dict=state)

    return CpuFsdpTrainer
