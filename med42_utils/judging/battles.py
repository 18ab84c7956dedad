"""From questions and answers to judgments (every pair, both orders), battles and position-bias stats."""
from __future__ import annotations

import itertools
from typing import Callable

import pandas as pd

from .cache import JudgmentCache, judgment_key
from .judge import Judge


def judgment_tasks(questions: list[dict], models: list[str], judge_name: str) -> list[dict]:
    """One task per question, unordered model pair and order: 'AB' shows the pair's first model first."""
    if len(set(models)) != len(models) or len(models) < 2:
        raise ValueError(f"judge.models must list at least two distinct models, got {models}")
    tasks = []
    for q in questions:
        for m1, m2 in itertools.combinations(sorted(models), 2):
            for order, (first, second) in (("AB", (m1, m2)), ("BA", (m2, m1))):
                tasks.append({"question_id": str(q["id"]), "pair": [m1, m2], "order": order,
                              "first": first, "second": second, "judge": judge_name})
    return tasks


def judge_all(questions: list[dict], answers: dict[str, dict[str, str]], judge: Judge, cache: JudgmentCache,
              models: list[str] | None = None, batch_size: int = 8,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """Judge every task not yet in the cache, appending each batch as it finishes. Returns counts.

    answers: {model: {question_id: answer text}}; a missing answer is an error naming model and question.
    """
    models = models or sorted(answers)
    by_id = {str(q["id"]): q for q in questions}
    tasks = judgment_tasks(questions, models, judge.name)
    todo = [t for t in tasks if not cache.has(judgment_key(t))]
    for m in models:
        if m not in answers:
            raise KeyError(f"no answers for model '{m}'; generate them first (answers/{m}.jsonl)")
        miss = [qid for qid in by_id if qid not in answers[m]]
        if miss:
            raise KeyError(f"model '{m}' has no answer for question '{miss[0]}' ({len(miss)} missing)")
    done = 0
    for s in range(0, len(todo), batch_size):
        batch = todo[s : s + batch_size]
        items = []
        for t in batch:
            q = by_id[t["question_id"]]
            items.append((q["question"], answers[t["first"]][t["question_id"]], answers[t["second"]][t["question_id"]],
                          q.get("reference")))
        verdicts = judge.compare_many(items)
        recs = []
        for t, v in zip(batch, verdicts):
            winner_model = {"A": t["first"], "B": t["second"]}.get(v.winner) if v.winner else None
            recs.append({**t, "winner_pos": v.winner, "winner_model": winner_model, "reason": v.reason,
                         "attempts": v.attempts, "feedback": v.feedback, "raw": v.raw})
        cache.append(recs)
        done += len(batch)
        if progress:
            progress(done, len(todo))
    return {"tasks": len(tasks), "from_cache": len(tasks) - len(todo), "judged_now": len(todo)}


def judgments_frame(cache_or_records, judge_name: str | None = None) -> pd.DataFrame:
    recs = cache_or_records.records if isinstance(cache_or_records, JudgmentCache) else list(cache_or_records)
    df = pd.DataFrame(recs)
    if judge_name is not None and len(df):
        df = df[df["judge"] == judge_name]
    return df.reset_index(drop=True)


def to_battles(judgments: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arena-style battles (model_a shown first) from parsed judgments, and the unparseable ones counted by reason."""
    ok = judgments["winner_pos"].isin(["A", "B"])
    battles = pd.DataFrame({
        "question_id": judgments.loc[ok, "question_id"],
        "model_a": judgments.loc[ok, "first"],
        "model_b": judgments.loc[ok, "second"],
        "winner": judgments.loc[ok, "winner_pos"].map({"A": "model_a", "B": "model_b"}),
    }).reset_index(drop=True)
    bad = judgments.loc[~ok]
    dropped = (bad.groupby(bad["reason"].fillna("unknown")).size().rename("judgments").reset_index()
               if len(bad) else pd.DataFrame({"reason": [], "judgments": []}))
    return battles, dropped


def position_bias(judgments: pd.DataFrame) -> dict:
    """First-position win share (0.5 = no bias) and swap consistency (same winner in both orders)."""
    ok = judgments[judgments["winner_pos"].isin(["A", "B"])]
    share = float((ok["winner_pos"] == "A").mean()) if len(ok) else float("nan")
    piv = ok.assign(pair_key=ok["pair"].map(tuple)).pivot_table(
        index=["question_id", "pair_key"], columns="order", values="winner_model", aggfunc="first")
    both = piv.dropna(subset=[c for c in ("AB", "BA") if c in piv.columns]) if {"AB", "BA"} <= set(piv.columns) else piv.iloc[:0]
    consistent = int((both["AB"] == both["BA"]).sum()) if len(both) else 0
    pair_rows = []
    for pair_key, g in ok.assign(pair_key=ok["pair"].map(tuple)).groupby("pair_key"):
        pair_rows.append({"pair": " vs ".join(pair_key), "judgments": len(g),
                          "first_position_win_share": float((g["winner_pos"] == "A").mean())})
    return {
        "parsed_judgments": int(len(ok)),
        "first_position_win_share": share,
        "swapped_pairs": int(len(both)),
        "swap_consistent": consistent,
        "swap_consistency": consistent / len(both) if len(both) else float("nan"),
        "per_pair": pd.DataFrame(pair_rows),
    }
