"""What a cluster user needs from a stage's plan beyond per-GPU memory: time with communication and checkpoint
writes, a suggested `--time`, the disk the stage writes, host memory for a one-GPU job, the epochs the fixed steps
cover, and, for 05/06, each model's GPUs, memory (weights + KV cache) and hours. All from params alone.

Assumptions, stated so a reader can check them (none is measured on this project's hardware yet):
- Interconnect: FSDP's ring collectives move (world - 1) / world of the gathered bytes through every GPU. Across
  nodes each GPU has one 400 Gb/s NIC (50 GB/s: the usual H100 node, 8 x 400G InfiniBand/RoCE); inside one node NCCL
  reaches about 360 GB/s of NVLink bus bandwidth.
- Per micro-batch (every micro-batch syncs: accumulation keeps gradients sharded), FSDP all-gathers the bf16 weights
  twice (forward, and backward after resharding) and reduce-scatters fp32 gradients of what trains; DPO's live
  reference adds one bf16 all-gather. Time = compute + communication: an upper bound (FSDP's prefetch overlaps part),
  which is what a time limit needs.
- Checkpoints: every rank writes its shard; the shared filesystem takes 2 GB/s per node. The final model, bf16,
  is written by rank 0 at 2 GB/s.
- Start-up (loading, wrapping, compiling) 0.25 h; `--time` = 1.2 x the estimate + start-up, rounded up to 15 min.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import estimates
from .checkpoints import checkpoint_bytes, size_text
from .estimates import GIB, ModelShape
from .params import Params

INTERNODE_GBPS = 50.0      # GB/s per GPU: one 400 Gb/s NIC per GPU
INTRANODE_GBPS = 360.0     # GB/s NCCL bus bandwidth over NVLink inside one H100 node
FS_WRITE_GBPS_PER_NODE = 2.0
RANK0_WRITE_GBPS = 2.0
STARTUP_HOURS = 0.25
TIME_MARGIN = 1.2


@dataclass
class TimePlan:
    """Hours of one stage: compute, communication, checkpoint writes, final save; the total and --time."""

    compute: float
    communication: float
    checkpoints: float
    final_save: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.compute + self.communication + self.checkpoints + self.final_save

    @property
    def slurm_time(self) -> str:
        return suggested_time(self.total)


def suggested_time(hours: float) -> str:
    """`--time` for a job estimated at `hours`: 1.2 x + start-up, rounded up to 15 minutes, as H:MM:SS or D-HH:MM:SS."""
    minutes = math.ceil((hours * TIME_MARGIN + STARTUP_HOURS) * 4) * 15
    d, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    return f"{d}-{h:02d}:{m:02d}:00" if d else f"{h}:{m:02d}:00"


def slurm_time_hours(value: str) -> float:
    from .params.slurm import time_hours

    return time_hours(value)


def bandwidth(nodes: int) -> float:
    """GB/s per GPU the ring collectives run at: the NIC across nodes, NVLink inside one."""
    return INTERNODE_GBPS if nodes > 1 else INTRANODE_GBPS


def comm_bytes_per_micro_batch(shape: ModelShape, trainable_fraction: float, reference: bool) -> float:
    """Bytes one micro-batch moves through FSDP collectives (before the ring's (w-1)/w): two bf16 all-gathers of the
    weights, one fp32 reduce-scatter of the trainable gradients, one more bf16 all-gather for a live reference."""
    n = shape.parameters
    return 2 * 2 * n + 4 * n * trainable_fraction + (2 * n if reference else 0.0)


def comm_hours(shape: ModelShape, micro_batches: int, world: int, nodes: int, trainable_fraction: float = 1.0,
               reference: bool = False) -> float:
    if world <= 1:
        return 0.0
    per = comm_bytes_per_micro_batch(shape, trainable_fraction, reference) * (world - 1) / world
    return micro_batches * per / (bandwidth(nodes) * 1e9) / 3600


def final_model_bytes(shape: ModelShape) -> float:
    """The final model as saved: bf16 weights (the fp32 master copy is a training detail)."""
    return 2 * shape.parameters


def _checkpoint_hours(params: Params, stage: str, steps: int, nodes: int) -> tuple[float, int, float]:
    s = getattr(params, stage)
    count = steps // s.save_steps if s.save_steps else 0
    each = checkpoint_bytes(params, stage)
    return count * each / (FS_WRITE_GBPS_PER_NODE * 1e9 * nodes) / 3600, count, each


def sft_time(params: Params, mfu: float = estimates.ASSUMED_MFU) -> TimePlan:
    s, hw = params.sft, params.sft.hardware
    shape = estimates.model_shape(params)
    _, compute = estimates.sft_estimate(params, mfu)
    frac = estimates.lora_fraction(params, shape) if s.method == "lora" else 1.0
    micro = s.max_steps * s.gradient_accumulation_steps
    comm = comm_hours(shape, micro, hw.world_size, hw.nodes, frac)
    ckpt, count, each = _checkpoint_hours(params, "sft", s.max_steps, hw.nodes)
    save = final_model_bytes(shape) / (RANK0_WRITE_GBPS * 1e9) / 3600 if s.method == "full" else 0.0
    return TimePlan(compute, comm, ckpt, save, _time_notes(hw, comm, micro, count, each, save))


def dpo_time(params: Params, num_pairs: int, mfu: float = estimates.ASSUMED_MFU, rounds: int | None = None) -> TimePlan:
    """Hours of `rounds` DPO rounds (default all) of `num_pairs` pairs each."""
    d, hw = params.dpo, params.dpo.hardware
    shape = estimates.model_shape(params)
    _, compute = estimates.dpo_estimate(params, num_pairs, mfu, rounds)
    lora = d.method == "lora"
    frac = estimates.lora_fraction(params, shape, d.lora) if lora else 1.0
    steps_per_round = -(-num_pairs * d.num_train_epochs // d.batch_size)
    rounds = len(d.rounds) if rounds is None else rounds
    micro = steps_per_round * rounds * d.gradient_accumulation_steps
    comm = comm_hours(shape, micro, hw.world_size, hw.nodes, frac, reference=not (d.precompute_ref_log_probs or lora))
    ckpt, count, each = _checkpoint_hours(params, "dpo", steps_per_round, hw.nodes)
    save = rounds * final_model_bytes(shape) / (RANK0_WRITE_GBPS * 1e9) / 3600 if not lora else 0.0
    return TimePlan(compute, comm, ckpt * rounds, save, _time_notes(hw, comm, micro, count * rounds, each, save))


def _time_notes(hw, comm: float, micro: int, count: int, each: float, save: float) -> list[str]:
    out = []
    if hw.world_size > 1:
        where = (f"{INTERNODE_GBPS:g} GB/s per GPU across nodes (400 Gb/s NIC per GPU, assumed)" if hw.nodes > 1
                 else f"{INTRANODE_GBPS:g} GB/s NVLink bus bandwidth inside the node (assumed)")
        out.append(f"communication: {comm:,.1f} h for {micro:,} micro-batches of FSDP all-gathers and reduce-scatters "
                   f"at {where}; counted in full (FSDP overlaps part of it with compute, so the total is a ceiling)")
    if count:
        out.append(f"checkpoint writes: {count} x {each / 1e9:,.1f} GB at {FS_WRITE_GBPS_PER_NODE:g} GB/s per node "
                   f"(assumed shared-filesystem rate)")
    if save:
        out.append(f"final save: bf16 weights by rank 0 at {RANK0_WRITE_GBPS:g} GB/s (assumed), {save * 60:,.1f} min")
    return out


def disk_bytes(params: Params, stage: str) -> dict[str, float]:
    """Bytes the stage leaves on disk at most: retained checkpoints (+ one being written) and the final model(s)."""
    s = getattr(params, stage)
    shape = estimates.model_shape(params)
    rounds = len(params.dpo.rounds) if stage == "dpo" else 1
    ckpt = (s.save_total_limit + 1) * checkpoint_bytes(params, stage) * rounds
    if s.method == "lora":
        frac = estimates.lora_fraction(params, shape, s.lora)
        model = 2 * shape.parameters * frac * rounds  # adapters; a merged copy would add the bf16 weights
    else:
        model = final_model_bytes(shape) * rounds
    return {"checkpoints": ckpt, "final model": model, "total": ckpt + model}


def disk_note(params: Params, stage: str) -> str:
    from .paths import outputs_root

    d = disk_bytes(params, stage)
    return (f"disk: up to {size_text(d['total'])} written under {outputs_root()} ({size_text(d['checkpoints'])} "
            f"of checkpoints at most, {size_text(d['final model'])} of final model(s)); to put outputs on "
            f"scratch, export MED42_OUTPUTS=/scratch/$USER/med42 before starting the notebook (docs/cluster.md)")


def epochs_covered(params: Params, packed_rows: int | None) -> str:
    """How many passes over 02's packed rows sft.max_steps makes; the plan states it (issue 29.7): with bfd packing
    a row holds fewer than max_length real tokens, so steps fixed from the nominal tokens per step cover a different
    number of epochs than sft.num_train_epochs says."""
    s, hw = params.sft, params.sft.hardware
    rows_per_step = s.micro_batch_size * s.gradient_accumulation_steps * hw.world_size
    seen = s.max_steps * rows_per_step
    head = (f"steps: sft.max_steps {s.max_steps:,} x {rows_per_step} packed rows per step = {seen:,} rows; "
            f"max_steps sets the length, sft.num_train_epochs ({s.num_train_epochs}) does not")
    if packed_rows is None:
        return head + "; how many epochs that is shows once 02 has packed the data (its manifest's row count)"
    epochs = seen / packed_rows
    need = math.ceil(s.num_train_epochs * packed_rows / rows_per_step)
    verdict = ("" if abs(epochs - s.num_train_epochs) < 0.05 else
               f"; for {s.num_train_epochs} epochs set sft.max_steps={need}")
    return head + f": {epochs:.2f} epochs of 02's {packed_rows:,} packed rows{verdict}"


def packed_rows(params: Params, run_name: str) -> int | None:
    """Rows 02 packed with the params' strategy, from its manifest's `chunks` (None before 02 ran)."""
    import json

    from .paths import run_dir

    m = run_dir(params.size, run_name) / "packing" / "manifest.json"
    if not m.is_file():
        return None
    chunks = json.loads(m.read_text()).get("chunks") or {}
    n = chunks.get(params.packing.strategy)
    return n if isinstance(n, int) else None


# --- one-GPU jobs: host memory -------------------------------------------------------------------------------

HOST_BASE_GIB = 16.0   # (ours) Python, CUDA runtime, tokenizer, datasets' Arrow pages


def host_memory_gib(shape: ModelShape, models: int = 1) -> int:
    """--mem for a job that does not take whole nodes: each model's bf16 weights pass through host memory once while
    loading (safetensors pages), x1.5 for the loader's copies, plus a fixed base; rounded up to 8 GiB."""
    need = HOST_BASE_GIB + 1.5 * models * 2 * shape.parameters / GIB
    return int(math.ceil(need / 8) * 8)


def training_host_memory(shape: ModelShape, gpus_per_node: int, nodes: int, reference: bool, lora: bool) -> str:
    """Host memory per node while a multi-process training job loads (med42_utils.training.load_for_training):
    rank 0 alone reads the real weights in bf16 (and the live DPO reference beside them), then accelerate makes
    an fp32 copy of the trainable weights before sharding; every other rank builds the model on meta, holds only
    unwritten placeholders and receives its shards, so other ranks and other nodes hold just the base."""
    n = shape.parameters
    bf16 = 2 * n / GIB
    upcast = 0.0 if lora else 4 * n / GIB  # LoRA: only the adapters are trainable (negligible)
    rank0 = bf16 * (2 if reference else 1) + upcast
    node0 = rank0 + HOST_BASE_GIB * gpus_per_node
    other = HOST_BASE_GIB * gpus_per_node
    parts = f"bf16 weights {bf16:,.0f} GiB" + (f" + the reference's {bf16:,.0f} GiB" if reference else "") + \
        (f" + fp32 copy of the trainable weights {upcast:,.0f} GiB" if upcast else "")
    line = (f"host memory per node at load: node 0 about {node0:,.0f} GiB at its peak (rank 0: {parts}; "
            f"{HOST_BASE_GIB:g} GiB base per rank, assumed)")
    if nodes > 1 or gpus_per_node > 1:
        line += (f"; every other rank builds the model on meta and receives its shards ({other:,.0f} GiB per node "
                 f"elsewhere); their unwritten placeholders reserve up to {4 * n / GIB:,.0f} GiB each of virtual "
                 "memory, so nodes need overcommit (vm.overcommit_memory 0 or 1, the Linux default)")
    return line


# Published split sizes (the Hub dataset viewers, as med42_utils.dpo.preference_data's evidence records them): what
# DPO's time is planned from when 04 has not counted its pairs yet.
SPLIT_PAIRS = {"ultrafeedback:train_prefs": 61_100, "ultrafeedback:test_prefs": 2_000,
               "snorkel:train_iteration_1": 19_800, "snorkel:train_iteration_2": 20_000,
               "snorkel:train_iteration_3": 20_000, "snorkel:test_iteration_1": 994,
               "snorkel:test_iteration_2": 1_000, "snorkel:test_iteration_3": 1_000}


def planned_pairs(params: Params) -> tuple[list[int], str] | None:
    """Pairs per DPO round from the published split sizes under dpo.max_samples_per_source; None when a split's
    size is unknown (a local file): then the plan asks for the count."""
    cap = params.dpo.max_samples_per_source
    out = []
    for r in params.dpo.rounds:
        n = 0
        for ds in r.datasets:
            if ds not in SPLIT_PAIRS:
                return None
            n += SPLIT_PAIRS[ds] if cap is None else min(cap, SPLIT_PAIRS[ds])
        out.append(n)
    how = "published split sizes" + (f" capped at {cap:,} per source (dpo.max_samples_per_source)" if cap else "")
    return out, how
