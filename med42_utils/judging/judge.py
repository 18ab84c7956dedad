"""Pairwise judges with one API: `judge.compare(instruction, response_a, response_b, reference=None) -> Verdict`.

Backends: `reference` (the tiny course judge, a stand-in for a real one: it prefers the response closer to
the question's reference answer by character 3-gram or token F1, a tie within a margin; see reference.py),
`logprob` (P("A") vs P("B") after the prompt from a local model), `transformers` and `vllm` (generate
feedback + "[RESULT] A|B|Tie", parse, retry), and `openai` (any OpenAI-compatible /chat/completions
endpoint; key from the env var the params name). Build one with `make_judge(params)`.

A verdict is "A", "B" or "tie" (half a win each in the ratings). With `allow_ties=False` (the card's
Prometheus setup) the prompt asks for A or B only and a judge that still answers tie is asked again
(up to max_retries); a tie it keeps to is recorded as a tie, never dropped as unparseable.
"""
from __future__ import annotations

import os
from typing import Sequence

from .parse import TIE, parse_verdict
from .prompt import RESULT_MARKER
from .types import Item, Judge, Verdict, normalise_items


class GenerativeJudge(Judge):
    """Generate text, parse '[RESULT] X', and re-ask (up to max_retries) for the unparseable ones, and for
    ties when ties are not allowed (a tie the judge keeps to after the retries is recorded as a tie)."""

    def __init__(self, model: str, max_retries: int = 1, allow_ties: bool = False, style: str = "course"):
        super().__init__(model, allow_ties, style)
        self.max_retries = max_retries

    def generate(self, conversations: list[list[dict]]) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def compare_many(self, items: Sequence[Item]) -> list[Verdict]:
        items = normalise_items(items)
        convs = [self.messages(it) for it in items]
        results: list[Verdict | None] = [None] * len(items)
        todo = list(range(len(items)))
        for attempt in range(1, self.max_retries + 2):
            if not todo:
                break
            err = None
            try:
                texts = self.generate([convs[i] for i in todo])
            except Exception as e:  # a failed call is one failed attempt, not a crash
                texts = [None] * len(todo)
                err = f"{type(e).__name__}: {e}"
            still = []
            for i, text in zip(todo, texts):
                p = parse_verdict(text)
                reason = p.reason if err is None else f"backend error: {err}"
                results[i] = Verdict(p.winner, text if isinstance(text, str) else "", p.feedback, reason, attempt)
                if p.winner is None or (p.winner == TIE and not self.allow_ties):
                    still.append(i)
            todo = still
        return [r for r in results]  # type: ignore[misc]


def _prompt_texts(tokenizer, convs: list[list[dict]], suffix: str = "") -> list[str]:
    """The judge's prompts through its own chat template, roles fitted by rendering (chat.fit_roles); without a
    template, the turns' texts joined as prometheus-eval joins system and user (chat.SYSTEM_JOIN)."""
    from ..chat import SYSTEM_JOIN, render

    if getattr(tokenizer, "chat_template", None):
        return [render(tokenizer, c, add_generation_prompt=True) + suffix for c in convs]
    return [SYSTEM_JOIN.join(m["content"] for m in c) + suffix for c in convs]


class LogprobJudge(Judge):
    """Compares log P("A") and log P("B") as the next token after the prompt and '[RESULT] '.

    No generation, so it never fails to give a verdict; the tiny course judge. Prompts longer
    than the model's context are cut from the left of the responses' side (the tokenizer's left
    truncation), which keeps the rubric and the result position.
    """

    backend = "logprob"

    def __init__(self, model_obj, tokenizer, model: str, batch_size: int = 4, max_length: int | None = None,
                 allow_ties: bool = False, style: str = "course"):
        super().__init__(model, allow_ties, style)
        self.lm, self.tok, self.batch_size = model_obj, tokenizer, batch_size
        self.max_length = max_length or getattr(model_obj.config, "max_position_embeddings", 4096)
        self.ids = {}
        for label in ("A", "B"):
            enc = tokenizer.encode(label, add_special_tokens=False)
            if len(enc) != 1:
                raise ValueError(f"logprob judge: the judge tokenizer splits {label!r} into {len(enc)} tokens; "
                                 "use a tokenizer with single-token 'A'/'B' or backend 'transformers'")
            self.ids[label] = enc[0]

    def compare_many(self, items: Sequence[Item]) -> list[Verdict]:
        import torch

        items = normalise_items(items)
        texts = _prompt_texts(self.tok, [self.messages(it) for it in items], suffix=f"{RESULT_MARKER} ")
        out: list[Verdict] = []
        self.tok.padding_side = "left"
        self.tok.truncation_side = "left"
        for s in range(0, len(texts), self.batch_size):
            chunk = texts[s : s + self.batch_size]
            # padded with the tokenizer's pad token (one without refuses to pad; models.load_tokenizer sets one)
            enc = self.tok(chunk, return_tensors="pt", padding=True, truncation=True,
                           max_length=self.max_length, add_special_tokens=False).to(self.lm.device)
            with torch.no_grad():
                logits = self.lm(**enc).logits[:, -1, :].float()
            lp = torch.log_softmax(logits, dim=-1)
            for row in lp:
                a, b = float(row[self.ids["A"]]), float(row[self.ids["B"]])
                winner = "A" if a > b else "B" if b > a else (TIE if self.allow_ties else None)
                raw = f"{RESULT_MARKER} {winner}" if winner else "equal log-probabilities"
                out.append(Verdict(winner, raw, "", None if winner else "equal log-probabilities and ties are off",
                                   1, {"A": a, "B": b}))
        return out


class TransformersJudge(GenerativeJudge):
    """A local judge model run with transformers generate (sampling per params.judge.judge_sampling)."""

    backend = "transformers"

    def __init__(self, model_obj, tokenizer, model: str, sampling: dict, max_retries: int = 1, batch_size: int = 4,
                 allow_ties: bool = False, style: str = "course"):
        super().__init__(model, max_retries, allow_ties, style)
        self.lm, self.tok, self.sampling, self.batch_size = model_obj, tokenizer, sampling, batch_size

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        import torch

        from ..chat import stop_ids

        texts = _prompt_texts(self.tok, conversations)
        self.tok.padding_side = "left"
        out = []
        for s in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[s : s + self.batch_size], return_tensors="pt", padding=True,
                           add_special_tokens=False).to(self.lm.device)  # a GPU judge gets GPU inputs
            with torch.no_grad():
                gen = self.lm.generate(**enc, **_hf_sampling(self.sampling), eos_token_id=stop_ids(self.tok),
                                       pad_token_id=self.tok.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            out.extend(self.tok.batch_decode(new, skip_special_tokens=True))
        return out


def _hf_sampling(s: dict) -> dict:
    greedy = s["temperature"] == 0
    kw = {"max_new_tokens": s["max_new_tokens"], "do_sample": not greedy}
    if not greedy:
        kw.update(temperature=s["temperature"], top_k=s["top_k"], top_p=s["top_p"])
    if s.get("repetition_penalty", 1.0) != 1.0:
        kw["repetition_penalty"] = s["repetition_penalty"]
    return kw


class VllmJudge(GenerativeJudge):
    """The judge on vLLM (8b/70b: Prometheus-8x7b-v2.0). Needs `pip install vllm` and a GPU."""

    backend = "vllm"

    def __init__(self, model: str, sampling: dict, max_retries: int = 1, trust_remote_code: bool = False,
                 allow_ties: bool = False, style: str = "course", **llm_kwargs):
        super().__init__(model, max_retries, allow_ties, style)
        from vllm import LLM, SamplingParams

        from ..hub import hub_load

        with hub_load("judge model", model):
            self.llm = LLM(model=model, trust_remote_code=trust_remote_code, **llm_kwargs)
        self.sp = SamplingParams(temperature=sampling["temperature"], top_p=sampling["top_p"],
                                 top_k=sampling["top_k"] or -1, max_tokens=sampling["max_new_tokens"],
                                 repetition_penalty=sampling.get("repetition_penalty", 1.0))

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        from ..chat import fit_roles

        tok = self.llm.get_tokenizer()  # the served model's own template decides the roles (by rendering)
        outs = self.llm.chat([fit_roles(tok, c) for c in conversations], self.sp, use_tqdm=False)
        return [o.outputs[0].text for o in outs]


class OpenAIJudge(GenerativeJudge):
    """Any OpenAI-compatible /chat/completions endpoint. The key is read from the env var named in params
    (never stored in params, logs or verdicts); HTTP failures are retried with backoff."""

    backend = "openai"

    def __init__(self, model: str, api_base: str, api_key_env: str | None, sampling: dict, max_retries: int = 1,
                 timeout: float = 120.0, http_retries: int = 3, backoff: float = 1.0, allow_ties: bool = False,
                 style: str = "course", concurrency: int = 1, served_name: str | None = None):
        super().__init__(model, max_retries, allow_ties, style)
        self.concurrency = concurrency  # requests in flight (a server started for the judge batches them)
        self.served_name = served_name  # the name the server knows the model by, when not `model`
        self.before_first_request = None  # e.g. start the judge's server only once there is something to judge
        self.merge_system = False  # set once the endpoint refuses a system turn (HTTP 400): see _post
        if not api_base:
            raise ValueError("judge.backend 'openai' needs judge.api_base (e.g. http://127.0.0.1:8000/v1)")
        self.api_base = api_base.rstrip("/")
        self.api_key_env = api_key_env
        if api_key_env and not os.environ.get(api_key_env):
            raise ValueError(f"judge.api_key_env names '{api_key_env}' but that environment variable is not set; "
                             f"export {api_key_env}=<your key> (never put the key in params)")
        self.sampling, self.timeout, self.http_retries, self.backoff = sampling, timeout, http_retries, backoff

    def __repr__(self) -> str:  # no key in reprs
        return f"OpenAIJudge(model={self.model!r}, api_base={self.api_base!r}, api_key_env={self.api_key_env!r})"

    def _post(self, conv: list[dict]) -> str:
        from ..chat import merge_system
        from ..chat_client import ServerError, chat

        conv = merge_system(conv) if self.merge_system else conv
        rp = self.sampling.get("repetition_penalty", 1.0)  # vLLM's server takes it; others are not sent it
        try:
            return chat(self.api_base, self.served_name or self.model, conv, self.sampling, retries=self.http_retries,
                        backoff=self.backoff, timeout=self.timeout,
                        api_key=os.environ[self.api_key_env] if self.api_key_env else None,
                        extra={"repetition_penalty": rp} if rp != 1.0 else None)[0]
        except ServerError as e:
            if e.code != 400 or self.merge_system or not any(m.get("role") == "system" for m in conv):
                raise
            # the server renders the model's own template; one that takes no system turn answers 400 ("Conversation
            # roles must alternate ..."): ask again, and from now on, with the system text in the user turn
            self.merge_system = True
            return self._post(conv)

    def generate(self, conversations: list[list[dict]]) -> list[str]:
        from concurrent.futures import ThreadPoolExecutor

        if self.before_first_request is not None:
            start, self.before_first_request = self.before_first_request, None
            start()
        def one(c):
            try:
                return self._post(c)
            except RuntimeError as e:
                return f"<request failed: {e}>"

        with ThreadPoolExecutor(max(1, self.concurrency)) as pool:
            return list(pool.map(one, conversations))


def make_judge(params, model=None, tokenizer=None, batch_size: int | None = None) -> Judge:
    """The judge the params ask for. model/tokenizer may be passed in to reuse a loaded model.

    judge.model 'tiny' means the locally built tiny base model (size tiny).
    """
    j = params.judge
    sampling = j.judge_sampling.model_dump()
    bs = batch_size or j.batch_size
    ties = j.allow_ties
    style = j.prompt
    if j.backend == "reference":
        from .reference import ReferenceJudge

        if not j.reference_field:
            raise ValueError("judge.backend 'reference' compares answers with each question's reference answer: "
                             "set judge.reference_field (the bundled questions use 'reference')")
        return ReferenceJudge(metric=j.reference_metric, margin=j.tie_margin, allow_ties=ties)
    if j.backend == "openai":
        if j.server != "none" and not j.api_base:
            raise ValueError(f"judge.server '{j.server}' starts the judge's server inside a block (med42_utils.serve.serving_judge, as "
                             "06's job does: python -m med42_utils.judging.job); make_judge talks to a running "
                             "server: give judge.api_base, or use serving_judge")
        return OpenAIJudge(j.model, j.api_base, j.api_key_env, sampling, j.max_retries, allow_ties=ties, style=style,
                           concurrency=j.concurrency)
    from ..tiny_model import resolve_named

    name = resolve_named(params, j.model)
    if j.backend == "vllm":
        return VllmJudge(name, sampling, j.max_retries, params.model.trust_remote_code, allow_ties=ties, style=style)
    if model is None or tokenizer is None:
        from ..estimates import JUDGE_PROMPT_TOKENS
        from ..inference import load_for_inference

        new = 1 if j.backend == "logprob" else j.judge_sampling.max_new_tokens
        model, tokenizer, _ = load_for_inference(params, name, what="judge model",
                                                 kv_tokens=bs * (JUDGE_PROMPT_TOKENS + new))
    if j.backend == "logprob":
        judge = LogprobJudge(model, tokenizer, name, batch_size=bs, allow_ties=ties, style=style)
    else:
        judge = TransformersJudge(model, tokenizer, name, sampling, j.max_retries, batch_size=bs, allow_ties=ties,
                                  style=style)
    if j.model == "tiny":
        judge.model = "tiny"  # stable cache key across checkouts
    return judge


__all__ = ["LogprobJudge", "TransformersJudge", "VllmJudge", "OpenAIJudge", "make_judge"]
