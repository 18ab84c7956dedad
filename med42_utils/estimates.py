"""Back-of-the-envelope per-GPU memory and wall-time estimates for SFT and DPO under FSDP.

Model shapes: the one table of the models a params file names (SHAPES, `shape_for`), which training, the inference
loader, the vLLM server's sizing and the job plans all read (published config.json values):
  Llama 3 8B : hidden 4096, 32 layers, 32 heads, 8 KV heads, MLP 14336, vocab 128256 -> 8.03e9 parameters
  Llama 3 70B: hidden 8192, 80 layers, 64 heads, 8 KV heads, MLP 28672, vocab 128256 -> 70.55e9 parameters
  Mistral 7B (Prometheus 2 7B): hidden 4096, 32 layers, 32 heads, 8 KV heads, MLP 14336, vocab 32000 -> 7.24e9
  Mixtral 8x7B (Prometheus 2 8x7B): Mistral 7B's attention, 8 experts of MLP 14336 per layer, 2 active per token
    -> 46.7e9 parameters, 12.9e9 active
(untied embeddings; Llama 3.1 has the same shapes).

Assumptions, stated so a reader can check them:
- FSDP full shard over `world` processes; the trainable copy is fp32 (4 B/param: FSDP mixed
  precision computes in bf16 and keeps fp32 master weights), gradients fp32 (4 B/param),
  AdamW two fp32 moments (8 B/param), RMSprop one (4 B/param); all sharded by world size.
  Plus, when world > 1, the bf16 gather of the FSDP units in flight (2 layers: current + prefetch).
- DPO's frozen reference model: bf16 weights only (2 B/param), sharded the same way.
- Activations with gradient checkpointing: every layer keeps its bf16 input (2*h B/token), the
  layer being recomputed holds ~(12*h + 8*I + 4*kv) B/token (flash/flex attention, no s^2 term),
  and the LM head's fp32 gradient w.r.t. the last hidden state (4*h B/token). No logits: TRL 1.16's
  trainers score tokens with a fused, tiled LM head (trl.trainer.utils.add_fused_lm_head), so the
  (tokens x vocab) logits never exist; the old V*(2 + 4) B/token term made estimates 1.3-1.4x the
  measured peaks (issue 11). Without checkpointing every layer holds its full working set.
- DPO: a fixed term for what its step holds beyond the above (DPO_STEP_EXTRA_GIB, below).
- The root FSDP unit (input embedding, final norm, output head) is not resharded between forward and backward:
  when world > 1 its bf16 copy stays gathered for the whole step (2 x 2 x vocab x hidden B: 2.0 GiB at 8B, 3.9 GiB at
  70B).
- Runtime overhead the measured peaks (torch.cuda.max_memory_allocated) do not contain: the CUDA context, cuBLAS
  workspaces and allocator fragmentation (RUNTIME_OVERHEAD_GIB), and NCCL's communicator buffers when world > 1
  (NCCL_OVERHEAD_GIB). Stated, not measured: the test against measured peaks compares `allocated` (the total
  without this term).
- Time: FLOPs/token = 6*N + 6*L*h*s (causal attention, forward + backward), at the stated MFU of
  an H100's dense bf16 peak, 989 TFLOP/s. DPO: policy 6*N per token + reference forward 2*N.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .params import Params

H100_BF16_PEAK_FLOPS = 989e12
ASSUMED_MFU = 0.35  # torchtitan's Llama 3 8B FSDP figure (~5,800 tok/s/H100 at seq 8192) is ~0.32
GIB = 2**30
# Issue 10 measured 30 GiB for 8B DPO with LoRA on one H100; the terms above explain ~22 GiB of it at the
# plan's batch (2 pairs x chosen/rejected x 4096 tokens). The rest is carried as a fixed DPO term until a GPU
# run breaks it down (perf/bench_dpo_throughput.py prints peak memory per config).
DPO_STEP_EXTRA_GIB = 7.0
# (ours, assumed) CUDA context + cuBLAS/cuDNN workspaces + caching-allocator fragmentation per GPU, and NCCL's
# buffers (NCCL_BUFFSIZE 4 MiB x channels x peers, plus its streams) per GPU of a multi-GPU job.
RUNTIME_OVERHEAD_GIB = 1.5
NCCL_OVERHEAD_GIB = 1.0
# (ours) sequence lengths that size inference KV caches: an answer's prompt (system prompt + question) is about
# ANSWER_PROMPT_TOKENS before its new tokens; Prometheus' pairwise prompt (rubric + question + two 512-token answers)
# about JUDGE_PROMPT_TOKENS before the verdict's.
ANSWER_PROMPT_TOKENS = 256
JUDGE_PROMPT_TOKENS = 2048


@dataclass(frozen=True)
class ModelShape:
    """The numbers that set a Llama model's size."""

    name: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied_embeddings: bool = False
    experts: int = 1              # a mixture of experts: MLPs per layer (with a router), of which
    experts_per_token: int = 1    # this many run for each token

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def _count(self, experts: int) -> int:
        h, kv = self.hidden, self.kv_heads * self.head_dim
        router = h * self.experts if self.experts > 1 else 0
        per_layer = 2 * h * h + 2 * h * kv + experts * 3 * h * self.intermediate + router + 2 * h
        embed = self.vocab * h * (1 if self.tied_embeddings else 2)
        return self.layers * per_layer + embed + h

    @property
    def parameters(self) -> int:
        return self._count(self.experts)

    @property
    def active_parameters(self) -> int:
        """Parameters one token runs through (a mixture of experts runs experts_per_token of its MLPs)."""
        return self._count(self.experts_per_token)

    def weights_gib(self, dtype_bytes: int = 2) -> float:
        return self.parameters * dtype_bytes / GIB

    def kv_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """K and V of every layer for one token."""
        return 2 * self.layers * self.kv_heads * self.head_dim * dtype_bytes


LLAMA3_8B = ModelShape("Llama-3-8B", 4096, 32, 32, 8, 14336, 128256)
LLAMA3_70B = ModelShape("Llama-3-70B", 8192, 80, 64, 8, 28672, 128256)
# Prometheus 2 7B (prometheus-eval/prometheus-7b-v2.0) is Mistral-7B-Instruct-v0.2 fine-tuned; Prometheus 2 8x7B is
# Mixtral-8x7B-Instruct fine-tuned (their config.json files).
MISTRAL_7B = ModelShape("Mistral-7B (Prometheus 2 7B)", 4096, 32, 32, 8, 14336, 32000)
MIXTRAL_8X7B = ModelShape("Mixtral-8x7B (Prometheus 2 8x7B)", 4096, 32, 32, 8, 14336, 32000, experts=8,
                          experts_per_token=2)
# A model's shape by its name (Hub id or folder, lower case): the first fragment found wins ("8x7b" before "7b").
SHAPES = {"70b": LLAMA3_70B, "8x7b": MIXTRAL_8X7B, "8b": LLAMA3_8B, "prometheus-7b": MISTRAL_7B,
          "mistral-7b": MISTRAL_7B}


def shape_from_config(cfg: dict, name: str = "model") -> ModelShape:
    """The shape a config.json describes (Llama, Mistral, Mixtral: the keys transformers writes)."""
    heads = cfg["num_attention_heads"]
    return ModelShape(name, cfg["hidden_size"], cfg["num_hidden_layers"], heads,
                      cfg.get("num_key_value_heads") or heads, cfg["intermediate_size"], cfg["vocab_size"],
                      bool(cfg.get("tie_word_embeddings", False)), cfg.get("num_local_experts") or 1,
                      cfg.get("num_experts_per_tok") or 1)


def shape_for(name_or_path: str) -> ModelShape:
    """The shape of a model: a local folder's own config.json, else the SHAPES entry its name contains."""
    import json
    from pathlib import Path

    cfg = Path(name_or_path) / "config.json"
    if cfg.is_file():
        return shape_from_config(json.loads(cfg.read_text()), Path(name_or_path).name)
    low = str(name_or_path).lower()
    for key, shape in SHAPES.items():
        if key in low:
            return shape
    raise ValueError(f"cannot tell the size of model '{name_or_path}' (no config.json there, and none of "
                     f"{', '.join(SHAPES)} in its name); add its ModelShape to med42_utils/estimates.py SHAPES")


def model_shape(params: Params) -> ModelShape:
    """The shape of the params' base model: tiny from params, else `shape_for` (8B/70B: the Llama 3 configs)."""
    if params.model.tiny is not None:
        from .tiny_model import tiny_model_info

        t = params.model.tiny
        return ModelShape(  # the vocabulary the tokenizer learned, not the params' cap
            "tiny", t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads,
            t.intermediate_size, tiny_model_info(t)["vocab"],
        )
    try:
        return shape_for(params.model.base)
    except ValueError as e:
        raise ValueError(f"model.base: {e}") from None


@dataclass
class MemoryEstimate:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    reference: float
    dpo_extra: float = 0.0
    root_gathered: float = 0.0   # embedding + output head in bf16, gathered for the whole step (world > 1)
    overhead: float = 0.0        # CUDA context, workspaces, fragmentation, NCCL buffers (not in max_memory_allocated)

    @property
    def allocated(self) -> float:
        """What torch.cuda.max_memory_allocated would show: the total without the runtime overhead."""
        return self.total - self.overhead

    @property
    def total(self) -> float:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.reference + self.dpo_extra
                + self.root_gathered + self.overhead)

    def as_gib(self) -> dict[str, float]:
        d = {k: round(v / GIB, 6) for k, v in asdict(self).items()}  # tiny's figures are MiB, not 0.00 GiB
        d["total"] = round(self.total / GIB, 6)
        return d


def activation_bytes(shape: ModelShape, tokens: int, checkpointing: bool) -> float:
    """Activation memory of one micro-batch of `tokens` tokens on one GPU (bf16)."""
    kv = shape.kv_heads * shape.head_dim
    layer_working = tokens * (12 * shape.hidden + 8 * shape.intermediate + 4 * kv)
    lm_head = tokens * 4 * shape.hidden  # fused LM head: fp32 grad of the last hidden state, no logits
    if checkpointing:
        return shape.layers * tokens * 2 * shape.hidden + layer_working + lm_head
    return shape.layers * layer_working + lm_head


def memory_per_gpu(
    shape: ModelShape,
    world: int,
    tokens_per_micro_batch: int,
    optimizer: str,
    checkpointing: bool,
    reference_model: bool = False,
    trainable_fraction: float = 1.0,
    dpo: bool = False,
) -> MemoryEstimate:
    """Per-GPU bytes under FSDP full shard (see the module docstring for every assumption)."""
    n = shape.parameters
    layer_params = n / shape.layers
    moments = {"adamw_torch": 2, "adamw_torch_fused": 2, "adamw": 2, "rmsprop": 1}
    if optimizer not in moments:
        raise ValueError(f"no memory rule for optimizer '{optimizer}'; known: {', '.join(moments)}")
    trainable = n * trainable_fraction
    gathered = 2 * 2 * layer_params if world > 1 else 0.0  # FSDP: two bf16 layers in flight
    if trainable_fraction < 1.0:  # LoRA: frozen bf16 base + fp32 adapters
        weights = 2 * n / world + 4 * trainable / world + gathered
    else:  # fp32 shard
        weights = 4 * n / world + gathered
    gradients = 4 * trainable / world
    optim = 4 * moments[optimizer] * trainable / world
    reference = 2 * n / world if reference_model else 0.0
    act = activation_bytes(shape, tokens_per_micro_batch, checkpointing)
    root = 2 * 2 * shape.vocab * shape.hidden if world > 1 else 0.0
    overhead = (RUNTIME_OVERHEAD_GIB + (NCCL_OVERHEAD_GIB if world > 1 else 0.0)) * GIB
    return MemoryEstimate(weights, gradients, optim, act, reference, DPO_STEP_EXTRA_GIB * GIB if dpo else 0.0,
                          root, overhead)


def flops_per_token(shape: ModelShape, seq_len: int, reference_model: bool = False) -> float:
    """Training FLOPs per token: 6N + 6*L*h*s (causal attention), + 2N for a reference forward."""
    f = 6 * shape.parameters + 6 * shape.layers * shape.hidden * seq_len
    if reference_model:
        f += 2 * shape.parameters + 2 * shape.layers * shape.hidden * seq_len
    return f


def wall_hours(
    shape: ModelShape, total_tokens: float, seq_len: int, world: int, mfu: float = ASSUMED_MFU,
    reference_model: bool = False, peak_flops: float = H100_BF16_PEAK_FLOPS,
) -> float:
    """Hours to process `total_tokens` on `world` GPUs at `mfu` of `peak_flops`."""
    if not 0 < mfu <= 1:
        raise ValueError(f"mfu must be in (0, 1], got {mfu}")
    flops = total_tokens * flops_per_token(shape, seq_len, reference_model)
    return flops / (world * peak_flops * mfu) / 3600


def sft_estimate(params: Params, mfu: float = ASSUMED_MFU) -> tuple[MemoryEstimate, float]:
    """Per-GPU memory and wall hours of the SFT stage as the params set it up."""
    s, hw = params.sft, params.sft.hardware
    shape = model_shape(params)
    frac = lora_fraction(params, shape) if s.method == "lora" else 1.0
    mem = memory_per_gpu(
        shape, hw.world_size, s.micro_batch_size * params.packing.max_length, s.optim,
        s.gradient_checkpointing, trainable_fraction=frac,
    )
    hours = wall_hours(shape, params.sft_total_tokens, params.packing.max_length, hw.world_size, mfu)
    return mem, hours


def dpo_estimate(params: Params, num_pairs: int | None = None, mfu: float = ASSUMED_MFU,
                 rounds: int | None = None) -> tuple[MemoryEstimate, float | None]:
    """Per-GPU memory (policy + frozen reference) and, given the pair count per round, wall hours of `rounds`
    rounds (default: all of params.dpo.rounds)."""
    d, hw = params.dpo, params.dpo.hardware
    shape = model_shape(params)
    # one micro-batch holds chosen + rejected sequences of each pair
    lora = d.method == "lora"  # LoRA: the reference is the same weights with adapters off, no second copy
    mem = memory_per_gpu(
        shape, hw.world_size, 2 * d.micro_batch_size * d.max_length, d.optim, d.gradient_checkpointing,
        reference_model=not (d.precompute_ref_log_probs or lora),
        trainable_fraction=lora_fraction(params, shape, d.lora) if lora else 1.0, dpo=True,
    )
    if num_pairs is None:
        return mem, None
    tokens = num_pairs * 2 * d.max_length * d.num_train_epochs * (len(d.rounds) if rounds is None else rounds)
    return mem, wall_hours(shape, tokens, d.max_length, hw.world_size, mfu, reference_model=True)


def lora_fraction(params: Params, shape: ModelShape, lora=None) -> float:
    """Share of parameters LoRA trains (r x (in + out) per targeted projection); lora defaults to params.sft.lora."""
    h, kv, inter = shape.hidden, shape.kv_heads * shape.head_dim, shape.intermediate
    dims = {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
            "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    lora = lora or params.sft.lora
    r = lora.r
    per_layer = sum(r * sum(dims[m]) for m in lora.target_modules if m in dims)
    return shape.layers * per_layer / shape.parameters


@dataclass(frozen=True)
class MeasuredPeak:
    """A peak memory measured on one H100 (torch.cuda.max_memory_allocated), and its source, that the
    estimate's `allocated` (total less the runtime overhead, which max_memory_allocated does not see) is checked
    against (tests/test_estimates.py: within 15%)."""

    what: str
    layers: int
    stage: str  # "sft" or "dpo"
    method: str  # "full" or "lora"
    tokens_per_micro_batch: int
    optimizer: str
    measured_gib: float
    source: str

    def estimate(self) -> MemoryEstimate:
        s = LLAMA3_8B
        shape = ModelShape(f"{s.name} x{self.layers}", s.hidden, self.layers, s.heads, s.kv_heads, s.intermediate, s.vocab)
        frac = _lora_r16_all_linear_fraction(shape) if self.method == "lora" else 1.0
        return memory_per_gpu(shape, 1, self.tokens_per_micro_batch, self.optimizer, True,
                              trainable_fraction=frac, dpo=self.stage == "dpo")


def _lora_r16_all_linear_fraction(shape: ModelShape) -> float:
    h, kv, inter = shape.hidden, shape.kv_heads * shape.head_dim, shape.intermediate
    per_layer = 16 * (2 * (h + h) + 2 * (h + kv) + 3 * (h + inter))
    return shape.layers * per_layer / shape.parameters


# One H100, world 1, seq 8192 (SFT: 1 x 8192-token row), activation checkpointing, random weights in
# Llama 3 8B's shape, this repo's build_sft_config / build_dpo_config / lora_config and TRL 1.16's trainers.
MEASURED_PEAKS = (
    MeasuredPeak("8B widths, 4 layers, full SFT (fp32 master, bf16 compute)", 4, "sft", "full", 8192,
                 "adamw_torch_fused", 29.0, "issue 11: estimated 37.9 GiB before calibration, measured 29.0"),
    MeasuredPeak("8B widths, 2 layers, full SFT (fp32 master, bf16 compute)", 2, "sft", "full", 8192,
                 "adamw_torch_fused", 22.5, "issue 11: estimated 32.2 GiB before calibration, measured 22.5"),
    MeasuredPeak("full-depth 8B LoRA SFT (r16, all linear, bf16 base)", 32, "sft", "lora", 8192,
                 "adamw_torch_fused", 20.9, "issue 11: estimated 25.7 GiB before calibration, measured 20.9"),
    MeasuredPeak("full-depth 8B LoRA SFT (r16, all linear, bf16 base), wrapped + sdpa", 32, "sft", "lora", 8192,
                 "adamw_torch_fused", 21.0, "issue 10: 'about 6,000 tokens/s, 21 GiB peak'"),
    MeasuredPeak("full-depth 8B DPO with LoRA, reference = adapters off (8b's batch: 2 pairs x 2 x 4096)", 32,
                 "dpo", "lora", 2 * 2 * 4096, "rmsprop", 30.0,
                 "issue 10: 'about 1.2 pairs/s for pairs of about 1,900 tokens, 30 GiB peak' (batch shape not "
                 "recorded: taken as the plan's, 8b.yaml dpo.micro_batch_size 2 at max_length 4096)"),
)


# Full DPO on one H200 (docs/gpu-check-runs/2026-11-30-h200-run2.json, step bench_dpo, 'sdpa, live reference'):
# 8B widths with 2 and 4 layers, 8b's batch (2 pairs x chosen/rejected x 4096 tokens), RMSprop, live bf16 reference,
# random weights, torch.cuda.max_memory_allocated. At world 1 there is no FSDP: dpo.train loads the policy in bf16
# and it stays bf16 (weights, gradients, RMSprop state 2 B/param each), unlike the fp32 master FSDP keeps.
GPU_CHECK_DPO_PEAKS = {2: 13.91, 4: 17.98}


def dpo_one_gpu_bf16(layers: int) -> MemoryEstimate:
    """The DPO memory terms for the gpu-check shape above: bf16 policy, gradients and RMSprop state, a bf16 live
    reference, checkpointed activations; without DPO_STEP_EXTRA_GIB. Matching the measured peaks (tests) shows that
    the fixed DPO term, calibrated on LoRA at full depth (issue 10), is not a constant of full DPO: the plans' DPO
    figures, which include it, are on the high side by up to that amount."""
    s = LLAMA3_8B
    shape = ModelShape(f"{s.name} x{layers}", s.hidden, layers, s.heads, s.kv_heads, s.intermediate, s.vocab)
    n = shape.parameters
    act = activation_bytes(shape, 2 * 2 * 4096, True)
    return MemoryEstimate(2 * n, 2 * n, 2 * n, act, 2 * n, 0.0, 0.0, RUNTIME_OVERHEAD_GIB * GIB)
