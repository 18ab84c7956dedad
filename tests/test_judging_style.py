"""Style control: features as Arena defines them, a hand-computed fit, and a judge that rewards length only."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from med42_utils.judging.elo import bootstrap_bt, bt_elo
from med42_utils.judging.style import (battle_features, bootstrap_style_bt, length_table, simulate_length_judge,
                                       style_bt, style_of)


def test_style_of_counts_markdown_outside_code():
    text = "# Plan\n\n- one\n- two\n1. three\n**Bold** and __also__\n```\n# not a header\n- not a list\n```"
    s = style_of(text)
    assert (s["headers"], s["list_items"], s["bold"]) == (1, 3, 2)
    assert s["tokens"] == len(text.split())
    assert style_of("a b c", count_tokens=lambda t: 7)["tokens"] == 7


def _hand_case():
    """A vs B: 200 battles where A's answer is longer (A wins 90%), 200 where it is shorter (A wins 50%)."""
    answers = {"A": {}, "B": {}}
    rows = []
    for i in range(400):
        q = f"q{i}"
        longer = i < 200
        answers["A"][q] = "w " * (30 if longer else 10)
        answers["B"][q] = "w " * (10 if longer else 30)
        wins = (i % 10 < 9) if longer else (i % 2 == 0)
        rows.append({"question_id": q, "model_a": "A", "model_b": "B", "winner": "model_a" if wins else "model_b"})
    return pd.DataFrame(rows), answers


def test_style_bt_matches_the_hand_computed_case():
    battles, answers = _hand_case()
    X = battle_features(battles, answers)
    assert list(X.columns) == ["tokens"]  # headers/lists/bold never vary: left out
    # logit P(A) = d + c z with z = +1 (longer) or -1 (shorter): d + c = ln 9, d - c = 0 -> d = ln 3
    ratings, coef = style_bt(battles, X)
    assert ratings["A"] - ratings["B"] == pytest.approx(400 * math.log10(3), abs=0.05)       # 190.8 Elo
    assert coef["tokens"] == pytest.approx(400 * math.log10(3), abs=0.05)
    plain = bt_elo(battles)  # A wins 70% overall
    assert plain["A"] - plain["B"] == pytest.approx(400 * math.log10(0.7 / 0.3), abs=0.05)    # 147.2 Elo


def test_without_style_variation_it_is_plain_bradley_terry():
    battles, answers = _hand_case()
    same = {m: {q: "w w w" for q in qs} for m, qs in answers.items()}
    X = battle_features(battles, same)
    assert X.shape[1] == 0
    ratings, _ = style_bt(battles, X)
    plain = bt_elo(battles)
    assert np.allclose(ratings.sort_index(), plain.sort_index(), atol=0.05)


def test_length_driven_judge_is_undone_by_style_control():
    battles, answers = simulate_length_judge(n_models=4, n_questions=150, length_logit=3.0, seed=1)
    plain = bt_elo(battles)
    X = battle_features(battles, answers)
    styled, coef = style_bt(battles, X)
    assert plain["m3"] - plain["m0"] > 150          # the longest answerer looks far better
    spread = lambda r: r.max() - r.min()  # noqa: E731
    assert spread(styled) < 0.3 * spread(plain)      # about equal once length is accounted for
    assert coef["tokens"] > 100
    boot = bootstrap_style_bt(battles, X, rounds=50, by="question", seed=0)
    lo, hi = boot.quantile(0.025), boot.quantile(0.975)
    assert lo["m3"] < hi["m0"] and lo["m0"] < hi["m3"], "with style control the extremes' intervals overlap"
    plain_boot = bootstrap_bt(battles, rounds=50, by="question", seed=0)
    assert plain_boot.quantile(0.025)["m3"] > plain_boot.quantile(0.975)["m0"], "without it they are far apart"

def test_real_quality_survives_style_control():
    battles, answers = simulate_length_judge(n_models=3, n_questions=150, length_logit=0.0, true_gap=100, seed=2)
    styled, _ = style_bt(battles, battle_features(battles, answers))
    assert styled["m2"] - styled["m0"] == pytest.approx(200, abs=45)


def test_length_table_and_bad_input():
    battles, answers = _hand_case()
    t = length_table(answers)
    assert t.loc["A", "mean_tokens"] == pytest.approx(20) and t.loc["A", "answers"] == 400
    with pytest.raises(ValueError, match="not found"):
        battle_features(battles, {"A": answers["A"]})
    with pytest.raises(ValueError, match="rows for"):
        style_bt(battles, battle_features(battles, answers).iloc[:5])
