"""One way to load a model for inference (answers, judges, sample answers, on-policy pairs and their scorer), and
the one answer to "how many GPUs, how much memory does this model need" (`fit`).

`fit` sizes a model from its parameter count and KV-cache bytes per token (the shapes table,
`estimates.SHAPES`, or the model's own config): bf16 weights + a KV cache of `kv_tokens` tokens, and the fewest GPUs
of `gpu_gib` whose memory holds them. Three policies read it, so they cannot disagree:
- the loader's placement (`placement_for`, here): no GPU (tiny, workshop laptops, CI): the CPU; a model that fits
  one GPU (8B in bf16 on an 80 GB H100): one GPU per replica, so a node of 8 holds 8 replicas (this process uses
  one; a data-parallel launcher can use the rest); otherwise (70B, Prometheus 2 8x7B): spread over the node's GPUs
  with transformers' `device_map="auto"` and a per-GPU `max_memory` cap of an even share of the weights plus a margin,
  which accelerate's `infer_auto_device_map` fills layer by layer; each GPU keeps the rest for activations and KV
  cache; a model that cannot fit the node: an error naming the sizes and what to change;
- the vLLM server's tensor- and data-parallel sizes (`serve.parallel_sizes`);
- the 05/06 job plans (`inference_plan`).

`load_for_inference` reads the GPU count and memory of this machine (or takes them as arguments), loads through
`models.load_model` with that placement, checks nothing landed on CPU or disk, and logs where the model went.
Assumptions, stated: a model may hold `GPU_UTILIZATION` of each GPU (vLLM's default --gpu-memory-utilization; the
rest is the allocator's slack and one forward's activations) less `estimates.RUNTIME_OVERHEAD_GIB` per GPU for the
CUDA context and workspaces; the loader sizes the KV cache for `DEFAULT_KV_TOKENS` unless its caller knows its
batch; the spread cap adds `SPREAD_MARGIN` to each GPU's share so that whole decoder layers (accelerate never
splits one) still fit.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

from .estimates import GIB, RUNTIME_OVERHEAD_GIB, shape_from_config

GPU_UTILIZATION = 0.9         # of each GPU a model may take (vLLM's default); the rest: allocator slack, activations
DEFAULT_KV_TOKENS = 8 * 4096  # KV cache the loader keeps room for when its caller does not say: 8 sequences of 4096
SPREAD_MARGIN = 0.10          # extra share per GPU when spreading, so whole layers fit without disk offload
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
KINDS = ("causal_lm", "sequence_classification")
DEFAULT_LAYERS = 32           # Llama 3 8B's and Mixtral 8x7B's decoder layers; fewer layers means bigger ones
DEFAULT_KV_BYTES = 128 * 1024 # K,V per token of Llama 3 8B / Mistral 7B / Mixtral 8x7B in bf16 (32 x 8 x 128 x 2 x 2)

log = logging.getLogger(__name__)


class PlacementError(RuntimeError):
    """The model cannot be placed on the GPUs given."""


@dataclass(frozen=True)
class Fit:
    """What one copy of a model needs: weights + KV cache, and the fewest GPUs of gpu_gib that hold them."""

    what: str
    weights_gib: float
    kv_gib: float
    kv_tokens: int
    gpu_gib: float
    per_gpu_gib: float       # what one GPU offers weights and KV cache: gpu_gib x GPU_UTILIZATION - overhead
    gpus: int                # fewest GPUs (at least 1) whose per_gpu_gib hold need_gib

    @property
    def need_gib(self) -> float:
        return self.weights_gib + self.kv_gib

    @property
    def overhead_gib(self) -> float:
        """The runtime overhead over the GPUs it takes (per GPU: CUDA context, workspaces, fragmentation)."""
        return self.gpus * RUNTIME_OVERHEAD_GIB

    @property
    def total_gib(self) -> float:
        return self.need_gib + self.overhead_gib

    def describe(self) -> str:
        return (f"weights {self.weights_gib:,.1f} GiB + KV cache {self.kv_gib:,.1f} GiB ({self.kv_tokens:,} tokens) + "
                f"overhead {self.gpus} x {RUNTIME_OVERHEAD_GIB:g} GiB = {self.total_gib:,.1f} GiB: at least "
                f"{self.gpus} GPU(s) of {self.gpu_gib:.0f} GiB")


def usable_gib(gpu_mem_gib: float) -> float:
    """What one GPU offers a model's weights and KV cache: its memory x GPU_UTILIZATION less the runtime overhead."""
    return gpu_mem_gib * GPU_UTILIZATION - RUNTIME_OVERHEAD_GIB


def fit(n_params: float, kv_bytes_per_token: float, kv_tokens: int, gpu_gib: float, dtype_bytes: int = 2,
        what: str = "model") -> Fit:
    """The one sizing rule: weights (n_params x dtype_bytes) + KV cache (kv_tokens x kv_bytes_per_token), and the
    fewest GPUs of gpu_gib GiB whose usable memory (usable_gib) holds both. Pure arithmetic, no GPU needed."""
    if n_params <= 0 or dtype_bytes <= 0:
        raise ValueError(f"{what}: n_params and dtype_bytes must be positive, got {n_params}, {dtype_bytes}")
    if gpu_gib <= 0:
        raise ValueError(f"{what}: gpu_mem_gib must be positive, got {gpu_gib}")
    weights, kv = n_params * dtype_bytes / GIB, max(kv_tokens, 0) * kv_bytes_per_token / GIB
    per = usable_gib(gpu_gib)
    if per <= 0:
        raise ValueError(f"{what}: a GPU of {gpu_gib} GiB leaves nothing for the model")
    return Fit(what, weights, kv, int(kv_tokens), gpu_gib, per, max(1, math.ceil((weights + kv) / per)))


def fit_shape(shape, kv_tokens: int, gpu_gib: float, dtype_bytes: int = 2, what: str | None = None) -> Fit:
    """fit() for an estimates.ModelShape."""
    return fit(shape.parameters, shape.kv_bytes_per_token(dtype_bytes), kv_tokens, gpu_gib, dtype_bytes,
               what or shape.name)


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


def placement_for(n_params: float, dtype_bytes: int, gpus_per_node: int, gpu_mem_gib: float,
                  num_layers: int = DEFAULT_LAYERS, local_rank: int = 0, what: str = "model",
                  kv_bytes_per_token: float = DEFAULT_KV_BYTES, kv_tokens: int = DEFAULT_KV_TOKENS) -> Placement:
    """Placement of a model of `n_params` parameters stored in `dtype_bytes` bytes each on one node of
    `gpus_per_node` GPUs of `gpu_mem_gib` GiB, with room for a KV cache of `kv_tokens` tokens: fit() decides how
    many GPUs one copy needs; pure arithmetic, no GPU needed. gpus_per_node 0 means the CPU.
    `num_layers` (decoder layers) sizes the largest unit accelerate will not split: each GPU's cap leaves room
    for one more, which infer_auto_device_map keeps free on every GPU but the last."""
    if n_params <= 0 or dtype_bytes <= 0:
        raise ValueError(f"{what}: n_params and dtype_bytes must be positive, got {n_params}, {dtype_bytes}")
    if gpus_per_node <= 0:
        return Placement("cpu", n_params * dtype_bytes / GIB, 0, 1, 0.0, 0.0)
    f = fit(n_params, kv_bytes_per_token, kv_tokens, gpu_mem_gib, dtype_bytes, what)
    weights = f.weights_gib
    if f.gpus == 1:
        return Placement("one_gpu", weights, 1, gpus_per_node, weights, gpu_mem_gib,
                         device=f"cuda:{local_rank % gpus_per_node}")
    if f.gpus > gpus_per_node:
        raise PlacementError(
            f"{what}: {weights:.1f} GiB of weights need {f.gpus} GPUs of {gpu_mem_gib:.0f} GiB with a KV cache of "
            f"{f.kv_gib:.1f} GiB ({f.kv_tokens:,} tokens) and {RUNTIME_OVERHEAD_GIB:g} GiB per GPU for the runtime, "
            f"but the node has {gpus_per_node}; use a node with more or larger GPUs (sft.hardware.gpus_per_node "
            "sizes the GPU jobs' node), a smaller model, or the vLLM server route with tensor parallelism")
    # one replica over the whole node: an even share leaves every GPU the most room for activations and KV cache
    n = gpus_per_node
    layer = weights / max(num_layers, 1)
    cap = min(f.per_gpu_gib, weights / n * (1 + SPREAD_MARGIN) + layer + 0.5)
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
                   gpu_mem_gib: float | None = None, dtype: str | None = None, what: str = "model",
                   kv_tokens: int = DEFAULT_KV_TOKENS) -> Placement:
    """The placement for one model of this job: its config's parameter count, KV-cache bytes per token and the
    params' dtype on the GPUs given (default: this machine's), with room for `kv_tokens` tokens of KV cache (the
    caller's batch x sequence). Sizes whose hardware is the CPU (tiny) stay on the CPU."""
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
    try:
        kv_bytes = shape_from_config(config.to_dict()).kv_bytes_per_token(DTYPE_BYTES[dtype])
    except (KeyError, TypeError, ZeroDivisionError):  # not a decoder config this table reads: Llama 3 8B's figure
        kv_bytes = DEFAULT_KV_BYTES
    return placement_for(count_parameters(config, kind), DTYPE_BYTES[dtype], gpus, gpu_mem_gib, layers,
                         local_rank=int(os.environ.get("LOCAL_RANK", "0")), what=f"{what} {name_or_path}",
                         kv_bytes_per_token=kv_bytes, kv_tokens=kv_tokens)


def where(model) -> str:
    """Where a loaded model's weights are: 'cpu', 'cuda:0', or 'cuda:0-7' style for a dispatched model."""
    devmap = getattr(model, "hf_device_map", None)
    devs = sorted({str(d) for d in devmap.values()}) if devmap else [str(model.device)]
    return ", ".join(devs)


def load_for_inference(params, name_or_path: str, kind: str = "causal_lm", gpus: int | None = None,
                       gpu_mem_gib: float | None = None, what: str = "model", seed: int | None = None,
                       tokenizer: bool = True, kv_tokens: int = DEFAULT_KV_TOKENS):
    """(model in eval mode, tokenizer or None, Placement): the model placed by plan_placement on this job's GPUs,
    with room for a KV cache of `kv_tokens` tokens (the caller's batch x sequence length).

    kind 'sequence_classification' loads a one-logit reward model; `seed` fixes a newly initialised head.
    Raises PlacementError if the weights would not all land on the GPUs (no silent CPU/disk offload)."""
    import torch

    from .models import load_model, load_tokenizer

    placement = plan_placement(params, name_or_path, kind, gpus, gpu_mem_gib, what=what, kv_tokens=kv_tokens)
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
