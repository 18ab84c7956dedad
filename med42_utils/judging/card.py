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
