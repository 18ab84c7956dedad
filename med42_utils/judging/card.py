"""The model card's Clinical Elo Rating Leaderboard, typed from ../shared/seeds/med42-v2-model-card.md
(Prometheus-8x7b-v2.0 judging 4,000 healthcare questions). For reference beside our own ratings."""
from __future__ import annotations

import pandas as pd

CARD_ELO = {
    "Med42-v2-70B": 1764,
    "Llama3-70B-Instruct": 1643,
    "GPT4-o": 1426,
    "Llama3-8B-Instruct": 1352,
    "Mixtral-8x7b-Instruct": 970,
    "Med42-v2-8B": 924,
    "OpenBioLLM-70B": 657,
    "JSL-MedLlama-3-8B-v2.0": 447,
}
CARD_QUESTIONS = 4000
CARD_JUDGE = "prometheus-eval/prometheus-8x7b-v2.0"


def card_table() -> pd.DataFrame:
    return pd.DataFrame({"model (model card)": list(CARD_ELO), "Elo (model card)": list(CARD_ELO.values())})


def shared_with_card(board: pd.DataFrame) -> pd.DataFrame:
    """The models this run rated that the card also rated (an extra model named as in the card, e.g.
    Med42-v2-8B): the card's Elo beside this run's, with this run's by-question interval. Empty when none.
    The two scales are anchored differently (other questions, judge and model set): compare orders, not numbers."""
    shared = [m for m in board.index if m in CARD_ELO]
    cols = [c for c in ("elo", "lower_question", "upper_question") if c in board.columns]
    out = board.loc[shared, cols].rename(columns={"elo": "Elo (this run)", "lower_question": "lower (this run)",
                                                  "upper_question": "upper (this run)"})
    out.insert(0, "Elo (model card)", [CARD_ELO[m] for m in shared])
    return out.rename_axis("model (in both)")
