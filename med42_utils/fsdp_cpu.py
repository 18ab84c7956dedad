"""FSDP on CPU processes (gloo), so CI exercises the sharded path of 8b/70b on the tiny model.

accelerate 1.15 picks gloo for CPU processes (`use_cpu: true` -> DistributedType.MULTI_CPU) but only
turns an FSDP plugin on for accelerator device types (MULTI_GPU, ...): launched on CPUs, an FSDP
config silently trains with DDP. `enable_cpu_fsdp()` builds the accelerator state itself with the
FSDP plugin that `accelerate launch` described in its FSDP_* environment variables; the trainer then
reuses that state (TrainingArguments accelerator_config use_configured_state=True), so `prepare`
applies FSDP2's fully_shard on the gloo process group. GPU launches never take this path.
It reaches into accelerate's shared state: re-check it when upgrading accelerate.
"""
from __future__ import annotations

import os


def enable_cpu_fsdp() -> bool:
    """Under `accelerate launch` with FSDP on >= 2 CPU processes, make the shared state FSDP.

    Returns True when it did so; the caller must then pass accelerator_config={"use_configured_state": True}.
    """
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true" or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    import torch

    if torch.cuda.is_available():
        return False
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = Accelerator(cpu=True).state
    if state.distributed_type != DistributedType.FSDP:
        state.fsdp_plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* settings accelerate launch exported
        state.distributed_type = DistributedType.FSDP
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    return True


def fsdp_wrapped_modules(model) -> int:
    """How many modules FSDP2's fully_shard wrapped (0 when not sharded)."""
    from torch.distributed.fsdp import FSDPModule

    return sum(isinstance(m, FSDPModule) for m in model.modules())
