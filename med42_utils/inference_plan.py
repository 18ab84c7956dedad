"""05's and 06's GPU jobs planned from params alone (no data, no model read): per model, the GPUs and memory it
needs (bf16 weights + KV cache at the card's lengths + runtime overhead, by inference.fit, the rule the loader and
the vLLM server's sizing use too) and the hours it takes; and whether the job's node can hold it, naming the params
key to change when it cannot.

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
- A model the job serves with vLLM (judge.server: vllm) runs on all its GPUs at once: tensor parallelism splits
  each step over the replica's GPUs (decoding reads 1/TP of the weights per GPU; the all-reduce is not counted) and
  the data-parallel replicas run side by side, each with judge.concurrency requests in flight. So its rate is the
  transformers figure at that batch x TP x DP; vLLM itself is faster (not measured here): a ceiling.
- KV cache: bf16 K and V of every layer; eval requests up to EVAL_REQUEST_TOKENS; answers ANSWER_PROMPT_TOKENS +
  judge.sampling.max_new_tokens; judgments JUDGE_PROMPT_TOKENS + judge.judge_sampling.max_new_tokens, for the batch
  in flight; a served replica judge.concurrency x judge.server_max_model_len (4096 when null), as serve sizes it.
- A GPU holds inference.GPU_UTILIZATION of its memory, less the runtime overhead per GPU (estimates).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import budget, estimates
from .estimates import ANSWER_PROMPT_TOKENS, JUDGE_PROMPT_TOKENS, ModelShape
from .inference import Fit, PlacementError, fit_shape, placement_for
from .params import Params

EVAL_REQUEST_TOKENS = 2048   # (ours) system prompt + question + the longest option, upper bound
GPU_GIB = budget.H100_GIB
CARD_QUESTIONS = 4000        # the model card's Elo evaluation: 4,000 clinical questions

# How a model of a job holds the GPUs (params.judge.answers_route / judge_route for 06; 05's lm-eval: the loader).
LOADER, SERVER, IN_PROCESS_VLLM = "loader", "server", "vllm"

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


@dataclass
class ModelNeed:
    """One model of a job: what it holds on the GPUs and how long its work takes."""

    name: str
    shape: ModelShape | None          # None: a model whose size the plan cannot tell (an extra model's folder)
    role: str                         # "scored", "answers" or "judge"
    batch: int                        # sequences in flight per copy (a served model: judge.concurrency per replica)
    seq_tokens: int
    work_tokens: float
    rate: float                       # tokens/s on the job's GPUs
    note: str = ""
    route: str = LOADER               # LOADER (inference.load_for_inference), SERVER (vLLM: TP x DP), IN_PROCESS_VLLM
    parallel: object = None           # SERVER: serve.Parallel on the job's node, or the reason it cannot be served

    @property
    def fit(self) -> Fit | None:
        """inference.fit for one copy: weights + KV cache of batch x seq_tokens, and the fewest 80 GB GPUs."""
        return fit_shape(self.shape, self.batch * self.seq_tokens, GPU_GIB, what=self.name) if self.shape else None

    @property
    def weights_gib(self) -> float:
        return self.fit.weights_gib if self.shape else float("nan")

    @property
    def kv_gib(self) -> float:
        return self.fit.kv_gib if self.shape else float("nan")

    @property
    def total_gib(self) -> float:
        return self.fit.total_gib if self.shape else float("nan")

    @property
    def gpus(self) -> int:
        """80 GB GPUs its weights, KV cache and overhead need (at least 1)."""
        return self.fit.gpus if self.shape else 1

    @property
    def loaded_by_transformers(self) -> bool:
        return self.route == LOADER

    def placement(self, gpus_per_node: int) -> str:
        """Where med42_utils.inference.load_for_inference (and 05's lm-eval arguments) will put this model on the
        job's node: the same arithmetic the job runs, so the plan and the job agree."""
        try:
            return placement_for(self.shape.parameters, 2, gpus_per_node, GPU_GIB, num_layers=self.shape.layers,
                                 what=self.name, kv_bytes_per_token=self.shape.kv_bytes_per_token(),
                                 kv_tokens=self.batch * self.seq_tokens).describe()
        except PlacementError as e:
            return f"cannot place: {e}"

    def serving(self) -> str:
        """How the job's vLLM server runs this model (serve.parallel_sizes on the job's node)."""
        par = self.parallel
        if isinstance(par, str):
            return f"cannot serve: {par}"
        return (f"vllm serve --tensor-parallel-size {par.tensor} --data-parallel-size {par.data}: {par.data} "
                f"replica(s) of {par.tensor} GPU(s), {par.tensor * par.data} GPU(s) busy; "
                f"{self.batch} request(s) in flight per replica")

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
        f = m.fit
        return {"weights (bf16)": round(f.weights_gib, 2), "KV cache": round(f.kv_gib, 2),
                "overhead": round(f.overhead_gib, 2), "total": round(f.total_gib, 2)}

    def lines(self) -> list[str]:
        out = []
        for m in self.models:
            if m.shape is None:
                out.append(f"{m.name} ({m.role}): size unknown ({m.note}); not planned")
                continue
            f = m.fit
            per = " per replica" if m.route == SERVER else ""
            out.append(f"{m.name} ({m.role}, {m.shape.name}): weights {f.weights_gib:,.1f} GiB + KV cache "
                       f"{f.kv_gib:,.1f} GiB ({m.batch} x {m.seq_tokens:,} tokens{per}) + overhead {f.gpus} x "
                       f"{estimates.RUNTIME_OVERHEAD_GIB:g} GiB = {f.total_gib:,.1f} GiB: at least {f.gpus} GPU(s) "
                       f"of 80 GB; {m.work_tokens / 1e6:,.1f}M tokens at {m.rate:,.0f} tokens/s = {m.hours:,.2f} h")
            if m.route == SERVER:
                out.append(f"  served by the job's vLLM server: {m.serving()}")
            elif self.gpus_per_node and m.route == LOADER:
                out.append(f"  placed by the inference loader: {m.placement(self.gpus_per_node)}")
            elif m.route == IN_PROCESS_VLLM:
                out.append("  in-process vLLM (vllm in the job's Python), one GPU unless vLLM is told otherwise")
        return out

    def problems(self, gpus_per_node: int, hw_key: str = "sft.hardware.gpus_per_node") -> list[str]:
        """What cannot fit the job's node, naming the params key to change."""
        out = []
        for m in self.models:
            if m.shape is None:
                continue
            served = m.route == SERVER
            if (not isinstance(m.parallel, str)) if served else m.gpus <= gpus_per_node:
                continue
            weights_only = fit_shape(m.shape, 0, GPU_GIB).gpus
            key = "judge.concurrency or judge.server_max_model_len" if served else self.batch_key
            fix = (f"lower {key} (the KV cache of {m.batch} x {m.seq_tokens:,} tokens is {m.kv_gib:,.1f} GiB)"
                   if weights_only <= gpus_per_node else
                   f"give the job more GPUs per node ({hw_key}, now {gpus_per_node})")
            what = (f"{m.gpus} GPU(s) of 80 GB, as a power of two dividing the node's GPUs for vLLM's tensor "
                    "parallelism," if served else f"{m.gpus} GPU(s) of 80 GB")
            out.append(f"{m.name} needs {m.total_gib:,.1f} GiB = {what} and the job's node has "
                       f"{gpus_per_node}: {fix}")
        return out


def _shape_for(params: Params, stage: str) -> tuple[ModelShape | None, str]:
    from .extra_models import find_extra

    extra = find_extra(params, stage)
    if extra is None or params.model.tiny is not None:
        return estimates.model_shape(params), ""
    name = extra.hub or str(getattr(extra, "path", "") or stage)
    try:
        return estimates.shape_for(name), ""
    except ValueError:
        return None, f"extra model {stage}: no config.json at {name} and no known size in its name"


def _scale(shape: ModelShape) -> float:
    """Per-token cost against Llama 3 8B's (a mixture of experts: its active parameters)."""
    return estimates.LLAMA3_8B.parameters / shape.active_parameters


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


def _served(params: Params, shape: ModelShape | None, gpus: int):
    """serve.parallel_sizes for a model the job serves with vLLM on its node, or why it cannot be."""
    from .serve import parallel_sizes, server_kv_tokens

    if shape is None:
        return "size unknown"
    try:
        return parallel_sizes(shape, gpus, GPU_GIB, server_kv_tokens(params.judge))
    except ValueError as e:
        return str(e)


def _need(params: Params, name: str, shape: ModelShape | None, role: str, route: str, batch: int, seq: int,
          work: float, gpus: int, why: str = "") -> ModelNeed:
    """A generating model of 06's job: in the job's process (batch x seq of KV cache, the measured generate rate at
    that batch), or served by vLLM (judge.concurrency x the server's length per replica, every GPU busy)."""
    from .serve import DEFAULT_MAX_MODEL_LEN

    j = params.judge
    if route == SERVER:
        batch, seq = j.concurrency, j.server_max_model_len or DEFAULT_MAX_MODEL_LEN
    rate = budget.generate_rate(batch)[0] * (_scale(shape) if shape else 1)
    par = _served(params, shape, gpus) if route == SERVER else None
    if par is not None and not isinstance(par, str):
        rate *= par.tensor * par.data
    return ModelNeed(name, shape, role, batch, seq, work, rate, why, route=route, parallel=par)


def _judge_figures(params: Params, gpus: int) -> JobFigures:
    from .extra_models import find_extra, judged_models

    j = params.judge
    try:
        q, counted = budget.num_questions(params), ""
    except budget.BudgetError:
        q, counted = CARD_QUESTIONS, (f"judge.num_questions is null: planned for the card's {CARD_QUESTIONS:,} "
                                      "questions (set it to the file's count for a closer plan); ")
    models = judged_models(params)
    a_route, j_route = j.answers_route, j.judge_route
    fig = JobFigures("judge", batch_key="judge.batch_size",
                     notes=[f"{counted}{q:,} questions x {len(models)} models; generation rate "
                            f"{budget.human_rate(budget.generate_rate(min(j.batch_size, q))[1])} per 8B (transformers "
                            "generate, measured), scaled by parameters; vLLM is faster (not measured here), so these "
                            "hours are a ceiling"])
    if SERVER in (a_route, j_route) and j.server == "vllm":
        fig.notes.append(f"judge.server vllm: the job starts one `vllm serve` per model on its node, one after "
                         f"another, each sized by serve.parallel_sizes for {j.concurrency} request(s) in flight per "
                         f"replica (judge.concurrency) of up to {j.server_max_model_len or 'null: 4096'} tokens "
                         "(judge.server_max_model_len); vLLM comes from its own environment (environment-vllm.txt, "
                         "$MED42_VLLM)")
    for s in models:
        extra = find_extra(params, s)
        if extra is not None and extra.answers is not None:
            fig.notes.append(f"{s}: answers read from {extra.answers}, no model on the GPUs")
            continue
        if a_route == "remote":
            fig.notes.append(f"{s}: answers from the server at judge.api_base, no model on the job's GPUs")
            continue
        if a_route == SERVER and j.server != "vllm":
            fig.notes.append(f"{s}: answers from `transformers serve` on the CPU (judge.server {j.server})")
            continue
        shape, why = _shape_for(params, s)
        fig.models.append(_need(params, s, shape, "answers", a_route, min(j.batch_size, q),
                                ANSWER_PROMPT_TOKENS + j.sampling.max_new_tokens, q * j.sampling.max_new_tokens,
                                gpus, why))
    judgments = q * len(models) * (len(models) - 1)  # every unordered pair in both orders
    if j_route in (LOADER, IN_PROCESS_VLLM) or (j_route == SERVER and j.server == "vllm"):
        try:
            shape, why = estimates.shape_for(j.model), ""
        except ValueError:
            shape, why = None, "no shape for judge.model; add it to med42_utils/estimates.py SHAPES"
        new = 1 if j.backend == "logprob" else j.judge_sampling.max_new_tokens
        fig.models.append(_need(params, j.model, shape, "judge", j_route, min(j.batch_size, judgments),
                                JUDGE_PROMPT_TOKENS + new, judgments * new, gpus, why))
    elif j_route == "remote":
        fig.notes.append("judge.backend openai at judge.api_base: no judge model on the job's GPUs (the key, if "
                         "any, from the environment variable judge.api_key_env names)")
    elif j_route == SERVER:
        fig.notes.append(f"judge from `transformers serve` on the CPU (judge.server {j.server})")
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
