"""Params of 05_benchmarks (paper Table 4) and 06_elo_judging (model card)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class EvalParams(StrictModel):
    tasks: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1, description="stages to evaluate: base, sft, dpo_round1, ...")
    backend: Literal["hf", "vllm"]
    batch_size: int = Field(ge=1)
    apply_chat_template: bool
    system_prompt: bool = Field(description="prepend the model card's system prompt")
    limit: int | None = Field(default=None, ge=1, description="rows per task, a seeded sample (params seed) "
                              "stratified per MMLU subject and per PubMedQA/ToxiGen label; null = all")
    data_source: Literal["hub", "local", "bundled"] = Field(description="where every benchmark's rows come from, "
                                                            "unless `sources` names another for it")
    data_dir: str | None = Field(default=None, description="folder of benchmark files: <benchmark>.jsonl or "
                                 "<benchmark>/ with the official files (docs/benchmark-data.md)")
    sources: dict[str, Literal["hub", "local", "bundled"]] = Field(
        default_factory=dict, description="per benchmark (key or task name), e.g. {medqa: local}: overrides "
        "data_source; a benchmark meant to come from files that data_dir lacks is skipped with a note")
    letter_models: list[str] | None = Field(default=None, description="models also scored in the letter framing "
                                            "(lm-eval's stock tasks); null = every model in eval.models, [] = none")


class SamplingParams(StrictModel):
    temperature: float = Field(ge=0)
    top_k: int = Field(ge=0)
    top_p: float = Field(gt=0, le=1)
    max_new_tokens: int = Field(ge=1)
    repetition_penalty: float = Field(default=1.0, gt=0, description="1.0 = off; Prometheus 2's official 1.03")


class EloParams(StrictModel):
    k: float = Field(gt=0)
    scale: float = Field(gt=0)
    base: float = Field(gt=1)
    initial: float
    bootstrap_rounds: int = Field(ge=1)
    anchor_model: str | None = None
    anchor_value: float | None = None


class JudgeParams(StrictModel):
    backend: Literal["reference", "logprob", "transformers", "vllm", "openai"] = Field(
        description="reference: the tiny stand-in judge (closer to the reference answer wins); logprob: "
                    "P('A') vs P('B') of a local model; transformers/vllm/openai: a generative judge")
    model: str = Field(description="judge model: Hub id, 'tiny', or the endpoint's model name")
    prompt: Literal["prometheus2", "course"] = Field(
        default="course", description="prometheus2: Prometheus 2's own relative-grading template and system prompt "
                                      "(the card's judge); course: our wording for the tiny stand-in judges")
    allow_ties: bool = Field(default=False, description="the judge may answer Tie (half a win each); false = "
                             "the card's Prometheus setup, the prompt asks for A or B only")
    tie_margin: float = Field(default=0.02, ge=0, le=1, description="reference judge: scores this close are a tie")
    reference_metric: Literal["token_f1", "char3_f1"] = Field(default="token_f1",
                                                  description="reference judge: how close an answer is to the reference")
    api_base: str | None = None
    api_key_env: str | None = Field(default=None, description="name of the env var holding the key, never the key")
    answers_backend: Literal["auto", "transformers", "vllm", "openai"] = Field(
        default="auto", description="06's answers: auto = in-process vLLM when installed (not tiny), else "
                                    "transformers; openai = through an OpenAI-compatible server (see server)")
    server: Literal["none", "vllm", "transformers"] = Field(
        default="none", description="openai routes: the job starts one server per model (vllm on GPU nodes from "
                                    "environment-vllm.txt, transformers serve on CPU); none = use api_base as is")
    server_timeout_s: float = Field(default=900.0, gt=0, description="how long a started server may take to load")
    server_max_model_len: int | None = Field(default=None, ge=1, description="vLLM --max-model-len (KV cache sizing)")
    concurrency: int = Field(default=8, ge=1, description="requests in flight to an OpenAI-compatible server, per "
                             "replica of a server the job starts (each replica's KV cache is sized for them)")
    max_retries: int = Field(ge=0)
    batch_size: int = Field(ge=1, description="judgments (and answers) per forward pass")
    questions_source: Literal["hub", "local", "bundled"]
    questions_path: str | None = Field(default=None, description="Hub dataset id (hub) or a JSONL file/folder (local)")
    question_field: str = Field(description="column holding the question text")
    reference_field: str | None = Field(default=None, description="column holding a reference answer, if any")
    num_questions: int | None = Field(default=None, ge=1)
    models: list[str] = Field(min_length=2)
    sampling: SamplingParams = Field(description="answer generation: the model card's pipeline call")
    judge_sampling: SamplingParams = Field(description="the judge's own generation (Prometheus: T=1.0, top_p=0.9)")
    elo: EloParams

    # Where 06's models run, derived from the keys above; the plan, prefetch and preflight all read these.
    # 'loader': in the job's process through inference.load_for_inference; 'vllm': in-process vLLM (vllm in the
    # job's Python); 'server': a server the job starts per model on its node (judge.server); 'remote': a server
    # already running at judge.api_base (nothing of the model on the job's node); 'none': no model (reference).
    @property
    def answers_route(self) -> str:
        """answers_backend 'auto' counts as the loader: the documented environment has no vLLM (answers.pick_backend
        takes in-process vLLM where it is installed)."""
        if self.answers_backend == "openai":
            return "remote" if self.server == "none" else "server"
        return "vllm" if self.answers_backend == "vllm" else "loader"

    @property
    def judge_route(self) -> str:
        if self.backend == "reference":
            return "none"
        if self.backend == "openai":
            return "remote" if self.server == "none" else "server"
        return "vllm" if self.backend == "vllm" else "loader"
