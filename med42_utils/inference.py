"""One way to load a model for inference (answers, judges, sample answers, on-policy pairs and their scorer).

`placement_for` decides, from the model's size and the node's GPUs alone (no GPU needed, so plans and tests can
ask it), where a model goes:
- no GPU (tiny, workshop laptops, CI): the CPU;
- weights plus the inference reserve fit one GPU (8B in bf16 on an 80 GB H100): one GPU per replica, so a node of
  8 holds 8 replicas (this process uses one; a data-parallel launcher can use the rest);
- otherwise (70B, Prometheus 2 8x7B): spread over the node's GPUs with transformers' `device_map="auto"` and a
  per-GPU `max_memory` cap of an even share of the weights plus a margin, which accelerate's
  `infer_auto_device_map` fills layer by layer; each GPU keeps the rest of its memory for activations and KV cache;
- weights that cannot fit the node: an error naming the sizes and what to change.

`load_for_inference` reads the GPU count and memory of this machine (or takes them as arguments), loads through
`models.load_model` with that placement, checks nothing landed on CPU or disk, and logs where the model went.
Assumptions, stated: `GPU_RESERVE_FRACTION` of each GPU is left for activations and KV cache, plus
`CUDA_CONTEXT_GIB` for the CUDA context and kernels; the spread cap adds `SPREAD_MARGIN` to each GPU's share so
that whole decoder layers (accelerate never splits one) still fit.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

GIB = 2**30
GPU_RESERVE_FRACTION = 0.15   # of each GPU, kept free for activations and KV cache at the card's lengths
CUDA_CONTEXT_GIB = 1.0        # CUDA context, cuBLAS workspace and kernels, per GPU
SPREAD_MARGIN = 0.10          # extra share per GPU when spreading, so whole layers fit without disk offload
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
KINDS = ("causal_lm", "sequence_classification")
DEFAULT_LAYERS = 32           # Llama 3 8B's and Mixtral 8x7B's decoder layers; fewer layers means bigger ones

log = logging.getLogger(__name__)


class PlacementError(RuntimeError):
    """The model cannot be placed on the GPUs given."""


@dataclass(frozen=True)
class Placement:
    """Where a model goes. mode: 'cpu' | 'one_gpu' (one GPU per replica) | 'spread' (device_map over GPUs)."""

    mode: str
    weights_gib: float
    gpus_per_replica: int
    replicas: int
    per_gpu_gib: float            # memory the weights take on each GPU they use (0 on CPU)
    gpu_mem_gib: float
    max_memory: dict = field(default_factory=dict)   # {gpu index: "NGiB"} for spread, else {}
    device: str = "cpu"           # one_gpu: the GPU this process uses

    def from_pretrained_kwargs(self) -> dict:
        """What from_pretrained gets: nothing on CPU, device_map to one GPU, or device_map='auto' + max_memory."""
        if self.mode == "cpu":
            return {}
        if self.mode == "one_gpu":
            return {"device_map": {"": self.device}}
        return {"device_map": "auto", "max_memory": dict(self.max_memory)}

    def describe(self) -> str:
        if self.mode == "cpu":
            return f"CPU ({self.weights_gib:.3g} GiB of weights; no GPU in this job)"
        if self.mode == "one_gpu":
            return (f"{self.device}: one GPU per replica ({self.weights_gib:.1f} GiB of weights on a "
                    f"{self.gpu_mem_gib:.0f} GiB GPU; {self.replicas} replica(s) fit the node)")
        return (f"spread over {self.gpus_per_replica} GPUs with device_map='auto' ({self.weights_gib:.1f} GiB of "
                f"weights, about {self.per_gpu_gib:.1f} GiB per GPU under a max_memory cap of {self.max_memory[0]}; "
                f"{self.gpu_mem_gib:.0f} GiB GPUs)")


def usable_gib(gpu_mem_gib: float) -> float:
    """What one GPU offers the weights: its memory less the reserve for activations/KV cache and the CUDA context."""
    return gpu_mem_gib * (1 - GPU_RESERVE_FRACTION) - CUDA_CONTEXT_GIB


def placement_for(n_params: float, dtype_bytes: int, gpus_per_node: int, gpu_mem_gib: float,
                  num_layers: int = DEFAULT_LAYERS, local_rank: int = 0, what: str = "model") -> Placement:
    """Placement of a model of `n_params` parameters stored in `dtype_bytes` bytes each on one node of
    `gpus_per_node` GPUs of `gpu_mem_gib` GiB; pure arithmetic, no GPU needed. gpus_per_node 0 means the CPU.
    `num_layers` (decoder layers) sizes the largest unit accelerate will not split: each GPU's cap leaves room
    for one more, which infer_auto_device_map keeps free on every GPU but the last."""
    if n_params <= 0 or dtype_bytes <= 0:
        raise ValueError(f"{what}: n_params and dtype_bytes must be positive, got {n_params}, {dtype_bytes}")
    weights = n_params * dtype_bytes / GIB
    if gpus_per_node <= 0:
        return Placement("cpu", weights, 0, 1, 0.0, 0.0)
    if gpu_mem_gib <= 0:
        raise ValueError(f"{what}: gpu_mem_gib must be positive with {gpus_per_node} GPU(s), got {gpu_mem_gib}")
    usable = usable_gib(gpu_mem_gib)
    if weights <= usable:
        return Placement("one_gpu", weights, 1, gpus_per_node, weights, gpu_mem_gib,
                         device=f"cuda:{local_rank % gpus_per_node}")
    need = math.ceil(weights * (1 + SPREAD_MARGIN) / usable)  # fewest GPUs whose usable memory holds it
    if need > gpus_per_node:
        raise PlacementError(
            f"{what}: {weights:.1f} GiB of weights need {need} GPUs of {gpu_mem_gib:.0f} GiB (keeping "
            f"{GPU_RESERVE_FRACTION:.0%} of each for activations and KV cache), but the node has {gpus_per_node}; "
            "use a node with more or larger GPUs (sft.hardware.gpus_per_node sizes the GPU jobs' node), a smaller "
            "model, or the "
            "vLLM server route with tensor parallelism")
    # one replica over the whole node: an even share leaves every GPU the most room for activations and KV cache
    n = gpus_per_node
    layer = weights / max(num_layers, 1)
    cap = min(usable, weights / n * (1 + SPREAD_MARGIN) + layer + 0.5)
    cap_gib = math.ceil(cap * 10) / 10
    return Placement("spread", weights, n, gpus_per_node // n, weights / n, gpu_mem_gib,
                     max_memory={i: f"{cap_gib}GiB" for i in range(n)}, device="cuda:0")


def gpu_inventory() -> tuple[int, float]:
    """(visible GPU count, smallest GPU memory in GiB) of this machine; (0, 0.0) without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return 0, 0.0
    n = torch.cuda.device_count()
    return n, min(torch.cuda.get_device_properties(i).total_memory for i in range(n)) / GIB


def count_parameters(config, kind: str = "causal_lm") -> int:
    """Parameters of the model a config describes, counted on the meta device (no memory, no weights read)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    cls = AutoModelForCausalLM if kind == "causal_lm" else AutoModelForSequenceClassification
    with torch.device("meta"):
        model = cls.from_config(config)
    return sum(p.numel() for p in model.parameters())


def _wants_cpu(params) -> bool:
    from .hardware import job_hardware

    return job_hardware(params).accelerator == "cpu"


def plan_placement(params, name_or_path: str, kind: str = "causal_lm", gpus: int | None = None,
                   gpu_mem_gib: float | None = None, dtype: str | None = None, what: str = "model") -> Placement:
    """The placement for one model of this job: its config's parameter count and the params' dtype on the
    GPUs given (default: this machine's). Sizes whose hardware is the CPU (tiny) stay on the CPU."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    dtype = dtype or params.model.torch_dtype
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"model.torch_dtype {dtype!r} has no byte size here; use one of {sorted(DTYPE_BYTES)}")
    if gpus is None or gpu_mem_gib is None:
        found = gpu_inventory()
        gpus = found[0] if gpus is None else gpus
        gpu_mem_gib = found[1] if gpu_mem_gib is None else gpu_mem_gib
    if _wants_cpu(params):
        gpus = 0
    from transformers import AutoConfig

    from .hub import hub_load

    with hub_load(what, name_or_path, params.size):
        config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=params.model.trust_remote_code)
    if kind == "sequence_classification":
        config.num_labels = 1
    layers = getattr(config, "num_hidden_layers", None) or DEFAULT_LAYERS
    return placement_for(count_parameters(config, kind), DTYPE_BYTES[dtype], gpus, gpu_mem_gib, layers,
                         local_rank=int(os.environ.get("LOCAL_RANK", "0")), what=f"{what} {name_or_path}")


def where(model) -> str:
    """Where a loaded model's weights are: 'cpu', 'cuda:0', or 'cuda:0-7' style for a dispatched model."""
    devmap = getattr(model, "hf_device_map", None)
    devs = sorted({str(d) for d in devmap.values()}) if devmap else [str(model.device)]
    return ", ".join(devs)


def load_for_inference(params, name_or_path: str, kind: str = "causal_lm", gpus: int | None = None,
                       gpu_mem_gib: float | None = None, what: str = "model", seed: int | None = None,
                       tokenizer: bool = True):
    """(model in eval mode, tokenizer or None, Placement): the model placed by plan_placement on this job's GPUs.

    kind 'sequence_classification' loads a one-logit reward model; `seed` fixes a newly initialised head.
    Raises PlacementError if the weights would not all land on the GPUs (no silent CPU/disk offload)."""
    import torch

    from .models import load_model, load_tokenizer

    placement = plan_placement(params, name_or_path, kind, gpus, gpu_mem_gib, what=what)
    kwargs = placement.from_pretrained_kwargs()
    if seed is not None:
        torch.manual_seed(seed)
    if kind == "sequence_classification":
        from transformers import AutoModelForSequenceClassification

        model = load_model(params, name_or_path, auto_class=AutoModelForSequenceClassification, num_labels=1,
                           **kwargs)
    else:
        model = load_model(params, name_or_path, **kwargs)
    model.eval()
    if placement.mode == "spread":
        off = sorted({str(d) for d in model.hf_device_map.values() if str(d) in ("cpu", "disk")})
        if off:
            raise PlacementError(f"{what} {name_or_path}: accelerate put layers on {off} under max_memory "
                                 f"{placement.max_memory}; the GPUs are too small for it")
    log.info("%s %s placed on %s (weights on %s)", what, name_or_path, placement.describe(), where(model))
    if placement.mode != "cpu":  # a GPU job's log says where each model went
        print(f"{what} {name_or_path}: {placement.describe()}; weights on {where(model)}", flush=True)
    return model, (load_tokenizer(params, name_or_path) if tokenizer else None), placement
