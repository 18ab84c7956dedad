"""05's and 06's GPU jobs planned from params alone (no data, no model read): per model, the GPUs and memory it
needs (bf16 weights + KV cache at the card's lengths + runtime overhead) and the hours it takes; and whether the
job's node can hold it, naming the params key to change when it cannot.

    figures = job_figures(params, "eval")       # or "judge"
    figures.models                               # one ModelNeed per model
    figures.problems(gpus_per_node)              # [] or what cannot fit, with the key to change

Assumptions, stated so a reader can check them:
- Rows per benchmark: the published split sizes (BENCHMARK_ROWS, with sources), or eval.limit when smaller.
- A scored row costs eval_tokens_per_row forward tokens (med42_utils.budget, assumed), once per framing.
- Forward rate: budget's forward_tokens_per_s (derived from a measured 8B figure) per 8B-GPU, scaled by parameters;
  lm-eval's HF backend with `parallelize` (70b) splits the layers over the GPUs and runs one GPU at a time, so a 70B
  model scores at one GPU's rate. Generation: budget's measured transformers generate rates (8B, batch 64/128),
  scaled the same way; a mixture of experts costs its active parameters per token.
- KV cache: bf16 K and V of every layer; eval requests up to EVAL_REQUEST_TOKENS; answers 256 prompt tokens +
  judge.sampling.max_new_tokens; judgments budget.JUDGE_PROMPT_TOKENS + judge.judge_sampling.max_new_tokens.
- A GPU holds GPU_USABLE of its memory (the rest: allocator and activations of one forward).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import budget, estimates
from .estimates import GIB, ModelShape
from .params import Params

EVAL_REQUEST_TOKENS = 2048   # (ours) system prompt + question + the longest option, upper bound
ANSWER_PROMPT_TOKENS = 256   # (ours) as budget.judge_memory
GPU_GIB = budget.H100_GIB
GPU_USABLE = 0.9
CARD_QUESTIONS = 4000        # the model card's Elo evaluation: 4,000 clinical questions

# Published rows of the split each benchmark scores (before image questions are dropped), for planning only.
BENCHMARK_ROWS = {
    "mmlu_medical": (1_089, "cais/mmlu test: anatomy 135, clinical_knowledge 265, college_biology 144, "
                            "college_medicine 173, medical_genetics 100, professional_medicine 272"),
    "mmlu_pro_health": (818, "TIGER-Lab/MMLU-Pro test, category health"),
    "medmcqa": (4_183, "openlifescienceai/medmcqa validation"),
    "medqa": (1_273, "GBaker/MedQA-USMLE-4-options test"),
    "usmle": (650, "HuggingSara/usmle_self_assessment train (approximate: Step 1-3 sample exams)"),
    "pubmedqa": (1_000, "qiaojin/PubMedQA pqa_labeled train"),
    "toxigen": (940, "toxigen/toxigen-data annotated test"),
}

# Prometheus 2 8x7B is Mixtral-8x7B-Instruct fine-tuned (its config.json): Mistral-7B's attention and 8 experts of
# MLP 14336 per layer, 2 active per token, vocab 32000 -> 46.7B parameters, 12.9B active.
MIXTRAL_8X7B = ModelShape("Mixtral-8x7B (Prometheus 2 8x7B)", 4096, 32, 32, 8, 8 * 14336, 32000)
MIXTRAL_ACTIVE = ModelShape("Mixtral-8x7B active", 4096, 32, 32, 8, 2 * 14336, 32000)
JUDGE_SHAPES = {**budget.JUDGE_SHAPES, "prometheus-eval/prometheus-8x7b-v2.0": MIXTRAL_8X7B}
ACTIVE_SHAPES = {MIXTRAL_8X7B.name: MIXTRAL_ACTIVE}


@dataclass
class ModelNeed:
    """One model of a job: what it holds on the GPUs and how long its work takes."""

    name: str
    shape: ModelShape | None          # None: a model whose size the plan cannot tell (an extra model's folder)
    role: str                         # "scored", "answers" or "judge"
    batch: int
    seq_tokens: int
    work_tokens: float
    rate: float                       # tokens/s on the job's GPUs
    note: str = ""

    @property
    def weights_gib(self) -> float:
        return 2 * self.shape.parameters / GIB if self.shape else float("nan")

    @property
    def kv_gib(self) -> float:
        return self.batch * self.seq_tokens * budget.kv_bytes_per_token(self.shape) / GIB if self.shape else float("nan")

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + estimates.RUNTIME_OVERHEAD_GIB

    @property
    def gpus(self) -> int:
        """80 GB GPUs its weights, KV cache and overhead need (at least 1)."""
        return max(1, math.ceil(self.total_gib / (GPU_GIB * GPU_USABLE))) if self.shape else 1

    loaded_by_transformers: bool = True  # False: a vLLM judge (sized by the server route, med42_utils.serve)

    def placement(self, gpus_per_node: int) -> str:
        """Where med42_utils.inference.load_for_inference (and 05's lm-eval arguments) will put this model on the
        job's node: the same arithmetic the job runs, so the plan and the job agree."""
        from .inference import PlacementError, placement_for

        try:
            return placement_for(self.shape.parameters, 2, gpus_per_node, GPU_GIB, num_layers=self.shape.layers,
                                 what=self.name).describe()
        except PlacementError as e:
            return f"cannot place: {e}"

    @property
    def hours(self) -> float:
        return self.work_tokens / self.rate / 3600 + budget.CALIBRATION["model_load_s"].value / 3600


@dataclass
class JobFigures:
    job: str
    models: list[ModelNeed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    batch_key: str = ""
    parallel: int = 1                 # models that run at once (one per GPU)
    gpus_per_node: int = 0            # the job's node (0: not known); the loader's placement line uses it

    @property
    def hours(self) -> float:
        if self.parallel <= 1:
            return sum(m.hours for m in self.models)
        waves = [self.models[i:i + self.parallel] for i in range(0, len(self.models), self.parallel)]
        return sum(max(m.hours for m in w) for w in waves)

    def memory_gib(self) -> dict[str, float]:
        """The largest model's memory over all the GPUs it is placed on (the table a plan shows)."""
        m = max((m for m in self.models if m.shape), key=lambda m: m.total_gib, default=None)
        if m is None:
            return {}
        return {"weights (bf16)": round(m.weights_gib, 2), "KV cache": round(m.kv_gib, 2),
                "overhead": estimates.RUNTIME_OVERHEAD_GIB, "total": round(m.total_gib, 2)}

    def lines(self) -> list[str]:
        out = []
        for m in self.models:
            if m.shape is None:
                out.append(f"{m.name} ({m.role}): size unknown ({m.note}); not planned")
                continue
            out.append(f"{m.name} ({m.role}, {m.shape.name}): weights {m.weights_gib:,.1f} GiB + KV cache "
                       f"{m.kv_gib:,.1f} GiB ({m.batch} x {m.seq_tokens:,} tokens) + overhead "
                       f"{estimates.RUNTIME_OVERHEAD_GIB:g} GiB = {m.total_gib:,.1f} GiB: at least {m.gpus} GPU(s) of 80 GB; "
                       f"{m.work_tokens / 1e6:,.1f}M tokens at {m.rate:,.0f} tokens/s = {m.hours:,.2f} h")
            if self.gpus_per_node and m.loaded_by_transformers:
                out.append(f"  placed by the inference loader: {m.placement(self.gpus_per_node)}")
        return out

    def problems(self, gpus_per_node: int, hw_key: str = "sft.hardware.gpus_per_node") -> list[str]:
        """What cannot fit the job's node, naming the params key to change."""
        out = []
        for m in self.models:
            if m.shape is None or m.gpus <= gpus_per_node:
                continue
            weights_only = max(1, math.ceil((m.weights_gib + estimates.RUNTIME_OVERHEAD_GIB) / (GPU_GIB * GPU_USABLE)))
            fix = (f"lower {self.batch_key} (the KV cache of {m.batch} x {m.seq_tokens:,} tokens is "
                   f"{m.kv_gib:,.1f} GiB)" if weights_only <= gpus_per_node else
                   f"give the job more GPUs per node ({hw_key}, now {gpus_per_node})")
            out.append(f"{m.name} needs {m.total_gib:,.1f} GiB = {m.gpus} GPU(s) of 80 GB and the job's node has "
                       f"{gpus_per_node}: {fix}")
        return out


def _shape_for(params: Params, stage: str) -> tuple[ModelShape | None, str]:
    from .extra_models import find_extra

    extra = find_extra(params, stage)
    if extra is None:
        return estimates.model_shape(params), ""
    name = (extra.hub or str(getattr(extra, "path", "") or stage)).lower()
    if params.model.tiny is not None:
        return estimates.model_shape(params), ""
    if "70b" in name:
        return estimates.LLAMA3_70B, ""
    if "8b" in name:
        return estimates.LLAMA3_8B, ""
    return None, f"extra model {stage}: no '8b' or '70b' in its name"


def _scale(shape: ModelShape) -> float:
    active = ACTIVE_SHAPES.get(shape.name, shape)
    return estimates.LLAMA3_8B.parameters / active.parameters


def eval_rows(params: Params) -> tuple[int, int, str]:
    """(rows per model in the full-answer framing, rows more in the letter framing, how they were counted) from
    published sizes and eval.limit: no data read."""
    from .benchmarks.data import TASK_TO_KEY
    from .benchmarks.run import COURSE_TASKS, LETTER_TASKS

    e = params.eval
    rows = letter_rows = 0
    for t in e.tasks:
        if t in COURSE_TASKS:
            continue
        n = BENCHMARK_ROWS[TASK_TO_KEY[t]][0]
        n = min(n, e.limit) if e.limit else n
        rows += n
        letter_rows += n if t in LETTER_TASKS else 0
    note = ("rows: published split sizes" + (f", at most {e.limit} per task (eval.limit)" if e.limit else "")
            + f": {rows:,} per model in the full-answer framing, {letter_rows:,} more in the letter framing")
    return rows, letter_rows, note


def job_figures(params: Params, job: str, gpus_per_node: int | None = None) -> JobFigures:
    """The eval or judge job's models with their memory and hours, from params alone."""
    from .hardware import job_hardware

    gpus = gpus_per_node or job_hardware(params).gpus_per_node
    if job not in ("eval", "judge"):
        raise ValueError(f"no inference plan for job {job!r}; eval or judge")
    fig = _eval_figures(params, gpus) if job == "eval" else _judge_figures(params, gpus)
    fig.gpus_per_node = gpus
    return fig


def _eval_figures(params: Params, gpus: int) -> JobFigures:
    from .extra_models import eval_models

    e = params.eval
    stages, skipped = eval_models(params)
    rows, letter_rows, note = eval_rows(params)
    per_row = budget.CALIBRATION["eval_tokens_per_row"].value
    letter_models = stages if e.letter_models is None else e.letter_models
    fig = JobFigures("eval", notes=[note], batch_key="eval.batch_size")
    for s in stages:
        shape, why = _shape_for(params, s)
        work = (rows + (letter_rows if s in letter_models else 0)) * per_row
        rate = budget.CALIBRATION["forward_tokens_per_s"].value * (_scale(shape) if shape else 1)
        fig.models.append(ModelNeed(s, shape, "scored", e.batch_size, EVAL_REQUEST_TOKENS, work, rate, why))
    one_gpu = all(m.gpus == 1 for m in fig.models)
    fig.parallel = min(gpus, len(fig.models)) if one_gpu and gpus > 1 else 1
    fig.notes.append(f"{'one model per GPU: ' + str(fig.parallel) + ' at once' if fig.parallel > 1 else 'one model at a time'}"
                     f" on 1 node x {gpus} GPU(s); rate: {budget.human_rate('forward_tokens_per_s')} per 8B, "
                     "scaled by parameters (a model split over GPUs runs one GPU at a time)")
    for name, why in skipped.items():
        fig.notes.append(f"extra model {name} not evaluated: {why}")
    return fig


def _judge_figures(params: Params, gpus: int) -> JobFigures:
    from .extra_models import judged_models

    j = params.judge
    try:
        q, counted = budget.num_questions(params), ""
    except budget.BudgetError:
        q, counted = CARD_QUESTIONS, (f"judge.num_questions is null: planned for the card's {CARD_QUESTIONS:,} "
                                      "questions (set it to the file's count for a closer plan); ")
    models = judged_models(params)
    a_rate, a_key = budget.generate_rate(min(j.batch_size, q))
    fig = JobFigures("judge", batch_key="judge.batch_size",
                     notes=[f"{counted}{q:,} questions x {len(models)} models; generation rate {budget.human_rate(a_key)} per "
                            "8B (transformers generate, measured), scaled by parameters; vLLM is faster (not measured "
                            "here), so these hours are a ceiling"])
    from .extra_models import find_extra

    for s in models:
        extra = find_extra(params, s)
        if extra is not None and extra.answers is not None:
            fig.notes.append(f"{s}: answers read from {extra.answers}, no model on the GPUs")
            continue
        shape, why = _shape_for(params, s)
        fig.models.append(ModelNeed(s, shape, "answers", min(j.batch_size, q),
                                    ANSWER_PROMPT_TOKENS + j.sampling.max_new_tokens,
                                    q * j.sampling.max_new_tokens, a_rate * (_scale(shape) if shape else 1), why))
    if j.backend in ("logprob", "transformers", "vllm"):
        shape = JUDGE_SHAPES.get(j.model)
        judgments = q * len(models) * (len(models) - 1)  # every unordered pair in both orders
        j_rate, _ = budget.generate_rate(min(j.batch_size, judgments))
        new = 1 if j.backend == "logprob" else j.judge_sampling.max_new_tokens
        fig.models.append(ModelNeed(j.model, shape, "judge", min(j.batch_size, judgments),
                                    budget.JUDGE_PROMPT_TOKENS + new, judgments * new,
                                    j_rate * (_scale(shape) if shape else 1),
                                    "" if shape else f"no shape for judge.model; add it to inference_plan.JUDGE_SHAPES",
                                    loaded_by_transformers=j.backend != "vllm"))
    else:
        fig.notes.append(f"judge.backend {j.backend}: no judge model on the job's GPUs")
    return fig


def eval_slots(params: Params, gpus: int | None = None) -> int:
    """How many models 05's job evaluates at once: the GPUs (default: this node's CUDA devices) when every model
    fits one GPU, else 1 (a 70B model takes the node)."""
    if gpus is None:
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus <= 1:
        return 1
    return job_figures(params, "eval", gpus).parallel
