"""Judge reliability: swap agreement per pair, separability, Cohen's kappa against a second judge."""
from __future__ import annotations

import pandas as pd
import pytest

from med42_utils.judging.reliability import cohen_kappa, judge_agreement, separability, swap_agreement


def _b(rows):
    return pd.DataFrame(rows, columns=["question_id", "model_a", "model_b", "winner"])


def test_swap_agreement_per_pair():
    b = _b([("q1", "x", "y", "model_a"), ("q1", "y", "x", "model_b"),   # x both times: agree
            ("q2", "x", "y", "model_a"), ("q2", "y", "x", "model_a"),   # first position both times: disagree
            ("q3", "x", "y", "tie"), ("q3", "y", "x", "tie"),           # tie both times: agree
            ("q4", "x", "z", "model_b")])                               # one order only: not counted
    t = swap_agreement(b)
    assert t.loc["x vs y", "questions_both_orders"] == 3 and t.loc["x vs y", "same_outcome"] == 2
    assert t.loc["x vs z", "questions_both_orders"] == 0


def test_separability_counts_non_overlapping_intervals():
    board = pd.DataFrame({"lower_question": [1100, 1050, 900], "upper_question": [1200, 1120, 980]},
                         index=["a", "b", "c"])
    s = separability(board)
    assert (s["pairs"], s["separated"]) == (3, 2)  # a-b overlap; a-c and b-c apart
    with pytest.raises(ValueError, match="known intervals"):
        separability(board, kind="battle")


def test_cohen_kappa_known_values():
    assert cohen_kappa("aabb", "aabb") == 1.0
    # 2x2 table [[20, 5], [10, 15]]: po = 0.7, pe = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    x = ["a"] * 25 + ["b"] * 25
    y = ["a"] * 20 + ["b"] * 5 + ["a"] * 10 + ["b"] * 15
    assert cohen_kappa(x, y) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        cohen_kappa([], [])


def test_judge_agreement_matches_on_question_and_positions():
    one = _b([("q1", "x", "y", "model_a"), ("q1", "y", "x", "model_b"), ("q2", "x", "y", "tie")])
    two = _b([("q1", "x", "y", "model_a"), ("q1", "y", "x", "model_a"), ("q3", "x", "y", "tie")])
    r = judge_agreement(one, two)
    assert r["matched"] == 2 and r["agreement"] == 0.5
    with pytest.raises(ValueError, match="no verdict"):
        judge_agreement(one, _b([("q9", "x", "y", "tie")]))


def test_stand_in_second_judge_uses_the_other_metric(tiny_params):
    from med42_utils.judging.reliability import stand_in_second_judge
    from med42_utils.params import load_params

    second = stand_in_second_judge(tiny_params)
    assert second.metric != tiny_params.judge.reference_metric
    assert stand_in_second_judge(load_params("8b")) is None
