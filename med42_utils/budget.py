"""Stage budgets and projected minutes on ONE H100, from the params and measured calibration figures.

    python -m med42_utils.budget --size workshop

Every rate below carries its source. "measured" figures come from issue 10 (one H100, Llama 3 8B in
its real shape, this repo's own config builders and TRL's trainers); "derived" ones follow from a
measured figure by the stated rule; "assumed" ones are ours and not measured: the CPU stages and model
loading. The projection applies to a size whose SFT and DPO run on 1 node x 1 H100 with LoRA on an
8B base (size workshop); other sizes get a clear error (their plan is in med42_utils.estimates).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from math import comb

from .estimates import ANSWER_PROMPT_TOKENS, GIB, JUDGE_PROMPT_TOKENS, LLAMA3_8B, model_shape, shape_for
from .params import Params, load_params


@dataclass(frozen=True)
class Figure:
    value: float
    unit: str
    kind: str      # measured | derived | assumed
    source: str


_ISSUE10 = "issue 10, measured on one H100"
CALIBRATION: dict[str, Figure] = {
    "sft_lora_tokens_per_s": Figure(6000, "tokens/s", "measured", f"{_ISSUE10}: full-depth 8B LoRA SFT, r16 on all linear "
                                    "layers, bf16 base, seq 8192, wrapped packing + sdpa; 21 GiB peak"),
    "sft_lora_tokens_per_s_fast": Figure(6600, "tokens/s", "measured", f"{_ISSUE10}: the same with bfd packing + "
                                         "flex_attention + Liger kernels"),
    "dpo_lora_pairs_per_s": Figure(1.2, "pairs/s", "measured", f"{_ISSUE10}: 8B DPO with LoRA, reference = adapters off "
                                   "(no second model), pairs of ~1,900 tokens; 30 GiB peak"),
    "dpo_pair_tokens": Figure(1900, "tokens/pair", "measured", f"{_ISSUE10}: the pair length of the DPO figure"),
    "generate_tokens_per_s_b64": Figure(860, "tokens/s", "measured", f"{_ISSUE10}: transformers generate, full-depth "
                                        "8B bf16, the card's sampling, 512 new tokens, batch 64"),
    "generate_tokens_per_s_b128": Figure(1390, "tokens/s", "measured", f"{_ISSUE10}: the same at batch 128"),
    "forward_tokens_per_s": Figure(18000, "tokens/s", "derived", "3 x the LoRA SFT rate: a training step with "
                                   "checkpointing costs about 4 forward passes, 3 is the cautious ratio (lm-eval "
                                   "log-likelihoods are forward passes only)"),
    "eval_tokens_per_row": Figure(1200, "tokens/row", "assumed", "(ours) ~4 answer options x ~300 tokens of chat "
                                  "template, system prompt, question and option per multiple-choice row"),
    "model_load_s": Figure(60, "s/model", "assumed", "(ours) reading ~16 GB of bf16 safetensors from local disk "
                           "onto the GPU"),
    "curation_rows_per_s": Figure(100, "rows/s", "assumed", "(ours) 01 on CPU: adapters, MinHash near-dedup and "
                                  "13-gram decontamination per kept row, from the local Hub cache"),
    "packing_rows_per_s": Figure(500, "rows/s", "assumed", "(ours) 02 on CPU: chat template + tokenisation"),
}

H100_GIB = 79.1         # an H100 80GB HBM3 as torch reports it (get_device_properties().total_memory / 2**30)


class BudgetError(ValueError):
    """The size is not one this budget can project (not 1 x H100 LoRA on an 8B base), or a count is open."""


@dataclass
class StageBudget:
    stage: str
    budget: str
    work: float
    unit: str
    rate: str
    minutes: float


def _fig(name: str) -> float:
    return CALIBRATION[name].value


def check_applies(params: Params) -> None:
    """The figures are for LoRA on an 8B base on 1 x H100; say so for anything else."""
    s, d = params.sft.hardware, params.dpo.hardware
    problems = []
    if model_shape(params) != LLAMA3_8B:
        problems.append(f"model.base {params.model.base} is not an 8B Llama 3")
    for name, hw in (("sft", s), ("dpo", d)):
        if (hw.nodes, hw.gpus_per_node, hw.accelerator) != (1, 1, "h100"):
            problems.append(f"{name}.hardware is {hw.nodes} x {hw.gpus_per_node} {hw.accelerator}, not 1 x 1 h100")
    if params.sft.method != "lora" or params.dpo.method != "lora":
        problems.append("sft.method and dpo.method must both be lora")
    if problems:
        raise BudgetError(
            f"the one-H100 budget does not apply to size {params.size}: " + "; ".join(problems)
            + ". Its launch plan (dry_run=True) estimates memory and time from med42_utils.estimates instead"
        )


def sft_rate(params: Params) -> tuple[float, str]:
    """The measured LoRA SFT rate that matches the params' packing and attention kernel."""
    fast = (params.packing.strategy == "bfd" and params.model.attn_implementation == "flex_attention"
            and params.sft.speed.liger_kernel)
    key = "sft_lora_tokens_per_s_fast" if fast else "sft_lora_tokens_per_s"
    return _fig(key), key


def generate_rate(batch: int) -> tuple[float, str]:
    """Generate tokens/s at an effective batch: the measured figure at 128 or 64, scaled down linearly below 64
    (decoding is memory-bound, so throughput grows about linearly with small batches)."""
    if batch >= 128:
        return _fig("generate_tokens_per_s_b128"), "generate_tokens_per_s_b128"
    if batch >= 64:
        return _fig("generate_tokens_per_s_b64"), "generate_tokens_per_s_b64"
    return _fig("generate_tokens_per_s_b64") * batch / 64, f"generate_tokens_per_s_b64 x {batch}/64"


def num_questions(params: Params) -> int:
    """Questions 06 answers: judge.num_questions, or the bundled set's size."""
    j = params.judge
    if j.questions_source == "bundled":
        from .judging.questions import BUNDLED

        n = sum(1 for line in BUNDLED.read_text().splitlines() if line.strip())
        return min(n, j.num_questions) if j.num_questions else n
    if j.num_questions is None:
        raise BudgetError("judge.num_questions is null, so 06's budget is open; set it to the number of questions")
    return j.num_questions


def dpo_pairs(params: Params) -> list[int]:
    """Pairs per round under the per-source cap (the cap bounds the budget; a smaller split gives fewer)."""
    cap = params.dpo.max_samples_per_source
    if cap is None:
        raise BudgetError("dpo.max_samples_per_source is null, so DPO's budget is open; set a cap per source")
    return [cap * len(r.datasets) for r in params.dpo.rounds]


def _sources_text(params: Params, rows: int) -> str:
    """'17,772 rows from 20 of the 22 Table 5 sources (not: aci_bench, mts_dialog)'."""
    from .data.registry import REGISTRY

    used = [k for k, v in params.data.targets.items() if v]
    left = [k for k in REGISTRY if k not in used]
    return f"{rows:,} rows from {len(used)} of the {len(REGISTRY)} Table 5 sources" + (
        f" (not: {', '.join(left)})" if left else "")


def human_rate(rate: str) -> str:
    """A budget's rate with every calibration name replaced by its figure: '6,600 tokens/s (measured)'."""
    for key in sorted(CALIBRATION, key=len, reverse=True):
        f = CALIBRATION[key]
        rate = rate.replace(key, f"{f.value:,g} {f.unit} ({f.kind})")
    return rate


def stage_budgets(params: Params) -> list[StageBudget]:
    """Each stage's budget (work and unit), the rate used and its projected minutes on one H100."""
    check_applies(params)
    load = _fig("model_load_s")
    rows = sum(params.data.targets.values())
    out = [
        StageBudget("01_data_curation", _sources_text(params, rows),
                    rows, "rows", "curation_rows_per_s", rows / _fig("curation_rows_per_s") / 60),
        StageBudget("02_packing", f"{rows:,} rows tokenised into {params.packing.max_length}-token chunks",
                    rows, "rows", "packing_rows_per_s", rows / _fig("packing_rows_per_s") / 60),
    ]
    rate, key = sft_rate(params)
    tokens = params.sft_total_tokens
    out.append(StageBudget("03_sft", f"{params.sft.max_steps} steps x {params.sft_tokens_per_step:,} tokens",
                           tokens, "tokens", key, (tokens / rate + load) / 60))
    pairs = dpo_pairs(params)
    d = params.dpo
    work = sum(pairs) * d.num_train_epochs
    out.append(StageBudget("04_dpo", f"{len(pairs)} rounds: {' + '.join(map(str, pairs))} pairs x {d.num_train_epochs} epoch",
                           work, "pairs", "dpo_lora_pairs_per_s",
                           (work / _fig("dpo_lora_pairs_per_s") + load * len(pairs)) / 60))
    e = params.eval
    if e.limit is None:
        raise BudgetError("eval.limit is null, so 05 scores every row; set a row limit per task for a timed session")
    eval_rows = e.limit * len(e.tasks) * len(e.models)
    eval_tokens = eval_rows * _fig("eval_tokens_per_row")
    out.append(StageBudget("05_benchmarks", f"{e.limit} rows x {len(e.tasks)} tasks x {len(e.models)} models",
                           eval_tokens, "tokens", "forward_tokens_per_s x eval_tokens_per_row",
                           (eval_tokens / _fig("forward_tokens_per_s") + load * len(e.models)) / 60))
    j = params.judge
    q = num_questions(params)
    answer_tokens = q * len(j.models) * j.sampling.max_new_tokens
    a_rate, a_key = generate_rate(min(j.batch_size, q))
    judgments = q * 2 * comb(len(j.models), 2)  # every unordered pair, in both orders
    judge_tokens = judgments * j.judge_sampling.max_new_tokens
    j_rate, j_key = generate_rate(min(j.batch_size, judgments))
    out.append(StageBudget("06_elo_judging", f"{q} questions x {len(j.models)} models x {j.sampling.max_new_tokens} "
                           f"tokens; {judgments} judgments x {j.judge_sampling.max_new_tokens} tokens",
                           answer_tokens + judge_tokens, "tokens (upper bound)", f"{a_key}; {j_key} (judge ~ 8B)",
                           (answer_tokens / a_rate + judge_tokens / j_rate + load * (len(j.models) + 1)) / 60))
    return out


def total_minutes(params: Params) -> float:
    return sum(b.minutes for b in stage_budgets(params))


def judge_memory(params: Params) -> dict[str, float]:
    """GiB on one GPU with the policy (bf16 + KV cache of its answer batch) and the judge (bf16 + KV cache of its
    batch) both resident: does the judge fit beside the policy? (Shapes: estimates.SHAPES.)"""
    j = params.judge
    try:
        judge = shape_for(j.model)
    except ValueError as e:
        raise BudgetError(f"judge.model: {e}") from None
    policy = model_shape(params)
    answer_seq = ANSWER_PROMPT_TOKENS + j.sampling.max_new_tokens
    judge_seq = JUDGE_PROMPT_TOKENS + j.judge_sampling.max_new_tokens
    mem = {
        "policy weights": policy.weights_gib(),
        "policy KV cache": j.batch_size * answer_seq * policy.kv_bytes_per_token() / GIB,
        "judge weights": judge.weights_gib(),
        "judge KV cache": j.batch_size * judge_seq * judge.kv_bytes_per_token() / GIB,
    }
    mem = {k: round(v, 2) for k, v in mem.items()}
    mem["total"] = round(sum(mem.values()), 2)
    mem["H100"] = H100_GIB
    return mem


_PLAN_STAGE = {"sft": "03_sft", "dpo": "04_dpo"}


def plan_notes(params: Params, stage: str) -> list[str]:
    """Lines for a launch plan: the stage's one-H100 budget and projected minutes (none where it does not apply)."""
    try:
        budgets = {b.stage: b for b in stage_budgets(params)}
    except BudgetError:
        return []
    b = budgets[_PLAN_STAGE[stage]]
    rate = CALIBRATION[b.rate]
    total = sum(x.minutes for x in budgets.values())
    return [f"one-H100 budget: {b.budget} -> about {b.minutes:.0f} min at {rate.value:,g} {rate.unit} ({rate.kind}, "
            f"{rate.source.split(':')[0]}); 01 -> 06 about {total:.0f} min (python -m med42_utils.budget --size {params.size})"]


def budget_frame(params: Params):
    """The budget as a pandas DataFrame (one row per stage plus the total)."""
    import pandas as pd

    rows = [asdict(b) for b in stage_budgets(params)]
    df = pd.DataFrame(rows).set_index("stage")
    df["work"] = df["work"].map(lambda w: f"{w:,.0f}")
    df["rate"] = df["rate"].map(human_rate)
    df.loc["total"] = ["01 -> 06 on one H100", "", "", "", df["minutes"].sum()]
    df["minutes"] = df["minutes"].astype(float).round(1)
    return df


def render_budget(params: Params, target_minutes: float = 90) -> str:
    """Text table: budgets, rates, minutes, total against the target, the judge memory check, the sources."""
    budgets = stage_budgets(params)
    lines = [f"Stage budgets for size {params.size} on one H100 (projected from measured figures):", ""]
    for b in budgets:
        lines.append(f"  {b.stage:<16} {b.minutes:6.1f} min  {b.budget}  [{b.rate}]")
    total = sum(b.minutes for b in budgets)
    lines.append(f"  {'total':<16} {total:6.1f} min  (target: at most {target_minutes:g} min)")
    mem = judge_memory(params)
    lines += ["", f"06 with policy and judge ({params.judge.model}) both on the GPU: "
              + ", ".join(f"{k} {v:.1f} GiB" for k, v in mem.items() if k not in ("total", "H100"))
              + f" = {mem['total']:.1f} of {mem['H100']} GiB"]
    lines += ["", "Calibration figures:"]
    lines += [f"  {k} = {f.value:g} {f.unit} ({f.kind}): {f.source}" for k, f in CALIBRATION.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="workshop")
    a = ap.parse_args(argv)
    try:
        print(render_budget(load_params(a.size)))
    except BudgetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
