"""On-policy preference pairs (beyond the paper; how Snorkel built its iterations 2 and 3):
sample K responses per prompt from the current model, score them with a pluggable scorer, keep the
best as chosen and the worst as rejected. Prompts come from the round's datasets."""
from __future__ import annotations

from typing import Sequence

from ..chat import fit_roles
from ..params import Params
from .preference_data import OUT_COLUMNS, DropReport, load_preferences
from .scorers import Scorer


def generate_responses(model, tokenizer, prompts: Sequence[list[dict]], k: int, *, temperature: float, top_k: int,
                       top_p: float, max_new_tokens: int, seed: int,
                       indices: Sequence[int] | None = None) -> list[list[str]]:
    """K sampled responses per conversational prompt, seeded per prompt (seed + its index in the whole prompt list,
    `indices` when these prompts are a shard of it), so reruns agree however the prompts are split over GPUs."""
    import torch

    model.eval()
    out = []
    for i, prompt in enumerate(prompts):
        enc = tokenizer.apply_chat_template(fit_roles(tokenizer, list(prompt)), add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True).to(model.device)
        torch.manual_seed(seed + (indices[i] if indices is not None else i))
        with torch.no_grad():
            gen = model.generate(
                **enc, do_sample=True, num_return_sequences=k, temperature=temperature, top_k=top_k, top_p=top_p,
                max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
            )
        n = enc["input_ids"].shape[1]
        out.append([tokenizer.decode(g[n:], skip_special_tokens=True).strip() for g in gen])
    return out


def last_user_text(prompt: list[dict]) -> str:
    return next(m["content"] for m in reversed(prompt) if m["role"] == "user")


def build_pairs(prompts: Sequence[list[dict]], responses: Sequence[list[str]], scorer: Scorer, source: str,
                prompt_ids: Sequence[str] | None = None, report: DropReport | None = None):
    """Best-vs-worst pair per prompt -> (Dataset in TRL preference format + scores, DropReport).

    Dropped (counted): all scores tied, best and worst texts identical, an empty best or worst response.
    """
    import datasets

    report = report if report is not None else DropReport()
    rows: dict[str, list] = {c: [] for c in (*OUT_COLUMNS, "score_chosen", "score_rejected")}
    for i, (prompt, resp) in enumerate(zip(prompts, responses)):
        scores = scorer.score(last_user_text(prompt), list(resp))
        if len(scores) != len(resp):
            raise ValueError(f"scorer {type(scorer).__name__} returned {len(scores)} scores for {len(resp)} responses")
        best = max(range(len(resp)), key=lambda j: scores[j])
        worst = min(range(len(resp)), key=lambda j: scores[j])
        reason = None
        if scores[best] == scores[worst]:
            reason = "tied_scores"
        elif not resp[best].strip():
            reason = "empty_chosen"
        elif not resp[worst].strip():
            reason = "empty_rejected"
        elif resp[best].strip() == resp[worst].strip():
            reason = "identical_chosen_rejected"
        if reason:
            report.drop(source, reason)
            continue
        rows["prompt"].append(list(prompt))
        rows["chosen"].append([{"role": "assistant", "content": resp[best]}])
        rows["rejected"].append([{"role": "assistant", "content": resp[worst]}])
        rows["source"].append(source)
        rows["prompt_id"].append(prompt_ids[i] if prompt_ids else str(i))
        rows["score_chosen"].append(float(scores[best]))
        rows["score_rejected"].append(float(scores[worst]))
        report.kept[source] += 1
    return datasets.Dataset.from_dict(rows), report


def onpolicy_prompts(params: Params, specs: Sequence[str]):
    """The round's prompts -> (Dataset with prompt and prompt_id, DropReport of the source rows dropped)."""
    d, op = params.dpo, params.dpo.onpolicy
    base, prompt_report = load_preferences(specs, d.data_source, d.data_dir, d.max_samples_per_source, seed=d.seed)
    report = DropReport()  # bad source rows stay counted; kept counts are the on-policy pairs
    for src, reasons in prompt_report.dropped.items():
        report.dropped[src].update(reasons)
    if op.num_prompts is not None and len(base) > op.num_prompts:
        base = base.select(range(op.num_prompts))
    return base, report


def generation_kv_tokens(params: Params) -> int:
    """KV-cache tokens one prompt's sampling holds: k sequences of the longest prompt + max_new_tokens."""
    op = params.dpo.onpolicy
    return op.k * (params.dpo.max_prompt_length + op.max_new_tokens)


def sample_responses(params: Params, model_path: str, prompts: Sequence[list[dict]],
                     indices: Sequence[int] | None = None, model=None, tokenizer=None) -> list[list[str]]:
    """dpo.onpolicy.k responses per prompt from the model at model_path, loaded here (inference.load_for_inference:
    one GPU per replica where it fits) unless model and tokenizer are given; freed before returning."""
    from ..inference import load_for_inference
    from ..models import ensure_pad_token

    op = params.dpo.onpolicy
    if model is None or tokenizer is None:
        model, tokenizer, _ = load_for_inference(params, model_path, what="on-policy model",
                                                 kv_tokens=generation_kv_tokens(params))
    ensure_pad_token(tokenizer)
    out = generate_responses(model, tokenizer, prompts, op.k, temperature=op.temperature, top_k=op.top_k,
                             top_p=op.top_p, max_new_tokens=op.max_new_tokens, seed=op.seed, indices=indices)
    del model  # the policy leaves the GPUs before the scorer's forward passes (when loaded here)
    return out


def score_pairs(base, report: DropReport, responses: Sequence[list[str]], scorer: Scorer, specs: Sequence[str]):
    """Score each prompt's responses -> best/worst pairs (build_pairs), refusing a round where every prompt dropped."""
    source = "onpolicy:" + "+".join(specs)
    ds, report = build_pairs(base["prompt"], responses, scorer, source, base["prompt_id"], report)
    if len(ds) == 0:
        raise ValueError(f"on-policy pairs for {list(specs)}: every prompt was dropped ({report.as_dict()['dropped']})")
    return ds, report


def onpolicy_pairs(params: Params, model_path: str, specs: Sequence[str], scorer: Scorer, model=None, tokenizer=None):
    """Prompts of `specs` -> K samples from the model at model_path -> scored best/worst pairs."""
    base, report = onpolicy_prompts(params, specs)
    responses = sample_responses(params, model_path, base["prompt"], model=model, tokenizer=tokenizer)
    return score_pairs(base, report, responses, scorer, specs)
