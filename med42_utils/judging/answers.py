"""Answers from each model to every question, with the model card's sampling and the same system prompt.

transformers generate at size tiny (and wherever vLLM is missing); vLLM when installed for 8b/70b; or, with
judge.answers_backend 'openai', an OpenAI-compatible server per model (med42_utils.serve: the job starts
`vllm serve` or `transformers serve` for each model when judge.server says so, and stops it after).
Saved per model as answers/<model>.jsonl and resumable: questions already answered are skipped.
A `progress(done, total)` hook (e.g. progress.ProgressLine) hears about every answer written.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Callable

from ..chat import SYSTEM_PROMPT, fit_roles, render, stop_ids, with_system_prompt


def _conv(question: str) -> list[dict]:
    return with_system_prompt([{"role": "user", "content": question}], SYSTEM_PROMPT)


def read_answers(path: Path) -> dict[str, str]:
    """{question_id: answer}; a torn last line (killed run) is ignored and redone."""
    out = {}
    if not Path(path).exists():
        return out
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
            out[str(rec["question_id"])] = rec["answer"]
        except (ValueError, KeyError, TypeError):
            continue
    return out


def pick_backend(params) -> str:
    if params.judge.answers_backend != "auto":
        return params.judge.answers_backend
    if params.model.base != "tiny" and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "transformers"


def _generate_transformers(params, model_path: str, questions: list[dict], batch_size: int):
    import torch

    from ..estimates import ANSWER_PROMPT_TOKENS
    from ..inference import load_for_inference

    s = params.judge.sampling
    model, tok, _ = load_for_inference(params, model_path, what="answers model",
                                       kv_tokens=batch_size * (ANSWER_PROMPT_TOKENS + s.max_new_tokens))
    tok.padding_side = "left"
    torch.manual_seed(params.seed)
    for i in range(0, len(questions), batch_size):
        chunk = questions[i : i + batch_size]
        texts = [render(tok, _conv(q["question"]), add_generation_prompt=True) for q in chunk]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.no_grad():
            gen = model.generate(**enc, do_sample=True, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                                 max_new_tokens=s.max_new_tokens, eos_token_id=stop_ids(tok), pad_token_id=tok.pad_token_id)
        new = gen[:, enc["input_ids"].shape[1]:]
        for q, ids, text in zip(chunk, new, tok.batch_decode(new, skip_special_tokens=True)):
            n = int((ids != tok.pad_token_id).sum())
            yield q["id"], text.strip(), n


VLLM_CHUNK = 256  # questions per vLLM call: large enough to keep the GPU busy, small enough for progress lines


def _generate_vllm(params, model_path: str, questions: list[dict]):  # pragma: no cover - needs a GPU
    from vllm import LLM, SamplingParams

    s = params.judge.sampling
    from ..hub import hub_load

    with hub_load("model", model_path, params.size):
        llm = LLM(model=model_path, dtype=params.model.torch_dtype, trust_remote_code=params.model.trust_remote_code,
                  seed=params.seed)
    sp = SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, max_tokens=s.max_new_tokens,
                        seed=params.seed)
    for i in range(0, len(questions), VLLM_CHUNK):
        chunk = questions[i : i + VLLM_CHUNK]
        tok = llm.get_tokenizer()  # roles by rendering the served model's own template (chat.fit_roles)
        outs = llm.chat([fit_roles(tok, _conv(q["question"])) for q in chunk], sp, use_tqdm=False)
        for q, o in zip(chunk, outs):
            yield q["id"], o.outputs[0].text.strip(), len(o.outputs[0].token_ids)


def _generate_openai(params, model_name: str, model_path: str, questions: list[dict], log_dir: Path):
    """Through an OpenAI-compatible server: one started here for this model (judge.server), or judge.api_base."""
    from contextlib import nullcontext

    from ..chat_client import chat_many
    from ..serve import in_flight, server_for

    j = params.judge
    s = j.sampling
    sampling = {"temperature": s.temperature, "top_p": s.top_p, "max_new_tokens": s.max_new_tokens}
    extra = {"top_k": s.top_k} if j.server == "vllm" and s.top_k else {}
    if j.server == "none" and not j.api_base:
        raise ValueError("judge.answers_backend 'openai' needs a server: set judge.server (vllm or transformers) "
                         "to start one per model, or judge.api_base to use a running one")
    key = os.environ.get(j.api_key_env) if j.api_key_env and j.server == "none" else None
    with (server_for(params, model_path, model_name, log_dir) if j.server != "none" else nullcontext()) as srv:
        base, name = (srv.api_base, srv.model_name) if srv else (j.api_base, model_path)
        convs = [_conv(q["question"]) for q in questions]
        outs = chat_many(base, name, convs, sampling, concurrency=in_flight(j, srv), seed=params.seed, api_key=key,
                         extra=extra)
        for q, (text, n) in zip(questions, outs):
            yield q["id"], text.strip(), n


def generate_answers(params, model_name: str, model_path: str, questions: list[dict], out_dir: Path,
                     batch_size: int | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Answer the questions not yet in out_dir/<model_name>.jsonl; returns counts.

    progress(done, total) is called with 0 first and after each answer written (total = answers to generate).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{model_name}.jsonl"
    have = read_answers(path)
    if path.exists() and not path.read_bytes().endswith(b"\n") and path.stat().st_size:
        data = path.read_bytes()
        path.write_bytes(data[: data.rfind(b"\n") + 1])
    todo = [q for q in questions if str(q["id"]) not in have]
    backend = pick_backend(params)
    if backend == "openai":
        gen = _generate_openai(params, model_name, model_path, todo, out_dir.parent / "servers")
    elif backend == "vllm":
        gen = _generate_vllm(params, model_path, todo)
    else:
        gen = _generate_transformers(params, model_path, todo, batch_size or params.judge.batch_size)
    written = 0
    if todo:
        if progress:
            progress(0, len(todo))
        with open(path, "a", encoding="utf-8") as f:
            for qid, text, n in gen:
                f.write(json.dumps({"question_id": str(qid), "model": model_name, "answer": text,
                                    "new_tokens": n}, ensure_ascii=False) + "\n")
                f.flush()
                written += 1
                if progress:
                    progress(written, len(todo))
    return {"model": model_name, "path": str(path), "backend": backend, "cached": len(questions) - len(todo),
            "generated": written}
