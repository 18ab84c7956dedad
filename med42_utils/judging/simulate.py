"""Synthetic battles from known ratings: for tests, the benchmark and teaching (what a CI looks like)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .elo import EloScale


def simulate_battles(ratings: dict[str, float], n_questions: int, seed: int = 0, scale: EloScale = EloScale(),
                     first_position_bonus: float = 0.0, question_sd: float = 0.0) -> pd.DataFrame:
    """Every pair of models on every question, in both orders (like the judge pipeline).

    P(shown-first wins) follows the ratings, plus `first_position_bonus` Elo for the first slot;
    `question_sd` adds a per-question, per-model random effect (correlated battles within a question).
    """
    rng = np.random.default_rng(seed)
    models = list(ratings)
    r = np.array([ratings[m] for m in models], float)
    pairs = [(i, j) for i, j in itertools.permutations(range(len(models)), 2)]  # both orders
    ia = np.tile(np.array([p[0] for p in pairs]), n_questions)
    ib = np.tile(np.array([p[1] for p in pairs]), n_questions)
    q = np.repeat(np.arange(n_questions), len(pairs))
    eff = rng.normal(0, question_sd, size=(n_questions, len(models))) if question_sd else np.zeros((n_questions, len(models)))
    d = (r[ia] + eff[q, ia]) - (r[ib] + eff[q, ib]) + first_position_bonus
    p = 1.0 / (1.0 + scale.base ** (-d / scale.scale))
    a_wins = rng.random(len(p)) < p
    names = np.array(models, dtype=object)
    return pd.DataFrame({
        "question_id": [f"q{i:05d}" for i in q],
        "model_a": names[ia],
        "model_b": names[ib],
        "winner": np.where(a_wins, "model_a", "model_b"),
    })
