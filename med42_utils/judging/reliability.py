"""How far a judge's verdicts can be trusted, beyond position bias.

- swap agreement per model pair: on each question judged in both orders, does the same model win (or a tie
  come out) both times?
- separability (arena-hard's term): the share of model pairs whose confidence intervals do not overlap, i.e.
  that the benchmark tells apart at all;
- agreement with a second judge, or with verdicts a user supplies (rate_verdicts' input format): raw
  agreement and Cohen's kappa on the verdicts both gave, matched by question and the two models' positions.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .elo import check_battles


def swap_agreement(battles: pd.DataFrame) -> pd.DataFrame:
    """Per unordered model pair: questions judged in both orders and the share with the same outcome
    (the same model winning, or a tie both times)."""
    check_battles(battles)
    if "question_id" not in battles.columns:
        raise ValueError("swap agreement needs battles with a question_id column")
    b = battles.assign(
        pair=[" vs ".join(sorted(p)) for p in zip(battles["model_a"], battles["model_b"])],
        first=battles["model_a"] < battles["model_b"],
        outcome=np.select([battles["winner"] == "model_a", battles["winner"] == "model_b"],
                          [battles["model_a"], battles["model_b"]], "tie"),
    )
    rows = []
    for pair, g in b.groupby("pair"):
        one, two = g[g["first"]], g[~g["first"]]
        both = one.merge(two, on="question_id", suffixes=("_1", "_2"))
        agree = int((both["outcome_1"] == both["outcome_2"]).sum())
        rows.append({"pair": pair, "questions_both_orders": len(both), "same_outcome": agree,
                     "swap_agreement": agree / len(both) if len(both) else float("nan")})
    return pd.DataFrame(rows).set_index("pair")


def separability(board: pd.DataFrame, kind: str = "question") -> dict:
    """Share of model pairs whose `lower_<kind>`..`upper_<kind>` intervals (elo.leaderboard) do not overlap."""
    lo, hi = f"lower_{kind}", f"upper_{kind}"
    if lo not in board.columns or hi not in board.columns:
        raise ValueError(f"leaderboard has no {lo}/{hi} columns; known intervals: "
                         f"{sorted(c[6:] for c in board.columns if c.startswith('lower_'))}")
    pairs = list(combinations(board.index, 2))
    apart = [(m, n) for m, n in pairs if board.at[m, lo] > board.at[n, hi] or board.at[n, lo] > board.at[m, hi]]
    return {"pairs": len(pairs), "separated": len(apart), "separability": len(apart) / len(pairs) if pairs else float("nan"),
            "interval": kind}


def cohen_kappa(x, y) -> float:
    """Cohen's kappa of two label sequences of equal length: (observed - chance agreement) / (1 - chance)."""
    x, y = pd.Series(list(x), dtype=object), pd.Series(list(y), dtype=object)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"kappa needs two non-empty label lists of equal length (got {len(x)} and {len(y)})")
    po = float((x.to_numpy() == y.to_numpy()).mean())
    px, py = x.value_counts(normalize=True), y.value_counts(normalize=True)
    pe = float(sum(px.get(k, 0.0) * py.get(k, 0.0) for k in set(px.index) | set(py.index)))
    return 1.0 if pe == 1.0 and po == 1.0 else (po - pe) / (1.0 - pe)


def judge_agreement(first: pd.DataFrame, second: pd.DataFrame, names: tuple[str, str] = ("judge", "other")) -> dict:
    """Agreement between two sets of battles (e.g. 06's judge and a second judge, or a user's verdicts read with
    verdicts.read_verdicts + verdicts_to_battles), matched on (question_id, model_a, model_b): how many verdicts
    both gave, raw agreement, Cohen's kappa, and the confusion table of outcomes."""
    for b in (first, second):
        check_battles(b)
        if "question_id" not in b.columns:
            raise ValueError("judge agreement needs battles with a question_id column in both sets")
    key = ["question_id", "model_a", "model_b"]
    m = first[key + ["winner"]].merge(second[key + ["winner"]], on=key, suffixes=("_1", "_2"))
    if m.empty:
        raise ValueError(f"no verdict of {names[0]} and {names[1]} match on question_id, model_a and model_b; "
                         "check that both judged the same questions and model names")
    return {"matched": len(m), "agreement": float((m["winner_1"] == m["winner_2"]).mean()),
            "kappa": cohen_kappa(m["winner_1"], m["winner_2"]),
            "confusion": pd.crosstab(m["winner_1"].rename(names[0]), m["winner_2"].rename(names[1]))}


def stand_in_second_judge(params):
    """A second judge that costs nothing to run: at tiny (the reference judge), the other reference metric.
    Elsewhere None: a second LLM judge is another GPU job, so supply its verdicts (or your own) instead."""
    j = params.judge
    if j.backend != "reference":
        return None
    from .reference import METRICS, ReferenceJudge

    other = next(m for m in sorted(METRICS) if m != j.reference_metric)
    return ReferenceJudge(other, j.tie_margin, j.allow_ties)
