"""The simulation panel: Bradley-Terry + bootstrap recover known strengths with honest intervals."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pytest

from med42_utils.judging.plots import plot_recovery
from med42_utils.judging.simulate import recovery_study

TRUE = {"m1": 1150.0, "m2": 1050.0, "m3": 1000.0, "m4": 800.0}


def test_recovery_coverage_near_nominal():
    s = recovery_study(TRUE, n_questions=30, reps=60, rounds=200, seed=0)
    ex, cov = s["example"], s["coverage"]
    assert s["n_battles"] == 30 * 4 * 3  # every ordered pair on every question
    assert ex["true"].to_dict() == pytest.approx({"m1": 1000 + 150, "m2": 1050, "m3": 1000, "m4": 800})  # mean 1000
    assert (ex["elo"] - ex["true"]).abs().max() < 120
    assert ex["elo"].mean() == pytest.approx(1000.0)
    # honest 95% intervals: over 60 runs x 4 models, coverage near 0.95 (binomial sd ~0.014 on 240 intervals)
    for kind in ("battle", "question"):
        c = cov[cov.kind == kind]
        assert 0.88 <= c["coverage"].mean() <= 0.99
        assert (c["mean_width"] > 40).all() and (c["mean_width"] < 200).all()


def test_more_questions_narrow_the_intervals():
    few = recovery_study(TRUE, n_questions=10, reps=5, rounds=100, seed=1)["coverage"]["mean_width"].mean()
    many = recovery_study(TRUE, n_questions=160, reps=5, rounds=100, seed=1)["coverage"]["mean_width"].mean()
    assert many < few / 2.5  # ~1/sqrt(16) = 1/4 in theory


def test_bad_settings_and_plot():
    with pytest.raises(ValueError, match="reps >= 1"):
        recovery_study(TRUE, 5, reps=0)
    s = recovery_study(TRUE, n_questions=10, reps=3, rounds=50)
    fig = plot_recovery(s)
    left, right = fig.axes
    assert [t.get_text() for t in left.get_yticklabels()] == ["m1", "m2", "m3", "m4"]
    bars = [p.get_height() for p in right.patches]
    expected = s["coverage"].sort_values(["kind", "model"])["coverage"].tolist()
    assert bars == pytest.approx(expected)


def test_position_bias_cancels_only_when_both_orders_are_judged():
    from med42_utils.judging.simulate import position_bias_study

    true = {"m1": 1100.0, "m2": 1000.0, "m3": 900.0}
    s = position_bias_study(true, n_questions=400, first_position_bonus=150.0, seed=4)
    # equal models would win 1/(1+10^(-150/400)) = 0.70 of the time from the first slot; these are near that
    assert 0.62 < s["first_position_win_share"] < 0.76
    t = s["table"]
    both_err = (t["both orders"] - t["true"]).abs().max()
    one = t["one order (listed first shown first)"] - t["true"]
    assert both_err < 40  # the bonus cancels
    assert one["m1"] > 60 and one["m3"] < -60  # always-first model inflated, always-second deflated
    assert s["battles"] == 400 * 6


def test_a_question_effect_splits_the_two_bootstraps():
    """Correlated battles within a question: the battle bootstrap is too narrow and under-covers; the question
    bootstrap stays near nominal. The truth is what BT converges to (pulled together by the question effect)."""
    from med42_utils.judging.simulate import coverage_table, population_ratings

    true = {"m1": 1100.0, "m2": 1000.0, "m3": 900.0}
    pop = population_ratings(true, question_sd=300.0, seed=1000)
    assert pop["m1"] - pop["m3"] < 200 - 40 and pop.mean() == pytest.approx(1000.0)  # attenuated, centred
    assert population_ratings(true, 0.0).to_dict() == pytest.approx(true)
    flat = recovery_study(true, n_questions=100, reps=40, rounds=150, seed=1000)
    s = recovery_study(true, n_questions=100, reps=40, rounds=150, seed=1000, question_sd=300.0)
    assert s["example"]["true"].to_dict() == pytest.approx(pop.to_dict())
    t = coverage_table(flat, s)
    assert list(t.index) == [0.0, 300.0]
    cov, width = t["coverage"], t["mean width"]
    assert cov.loc[300.0, "by battle"] < cov.loc[300.0, "by question"] - 0.04
    assert cov.loc[300.0, "by question"] >= 0.88 and cov.loc[0.0].min() >= 0.85  # 120 intervals per cell
    assert width.loc[300.0, "by question"] > 1.2 * width.loc[300.0, "by battle"]
    assert abs(width.loc[0.0, "by question"] / width.loc[0.0, "by battle"] - 1) < 0.15


def test_example_misses_and_rank_inversions_are_named():
    import pandas as pd

    from med42_utils.judging.simulate import example_misses, rank_inversions

    ex = pd.DataFrame({"true": [1100.0, 1000.0, 900.0], "elo": [1017.4, 1069.6, 913.0],
                       "lower_battle": [953.6, 1007.7, 850.0], "upper_battle": [1095.4, 1133.0, 980.0],
                       "lower_question": [972.2, 1016.8, 836.2], "upper_question": [1061.9, 1139.7, 966.9]},
                      index=["model 1", "model 2", "model 3"])
    misses = example_misses({"example": ex})
    assert [(r.model, r.kind) for r in misses.itertuples()] == [("model 1", "battle"), ("model 2", "battle"),
                                                               ("model 1", "question"), ("model 2", "question")]
    assert rank_inversions({"example": ex}) == [("model 1", "model 2")]
    ex["elo"] = ex["true"]
    ex[["lower_battle", "lower_question"]] = 0.0
    ex[["upper_battle", "upper_question"]] = 2000.0
    assert example_misses({"example": ex}).empty and rank_inversions({"example": ex}) == []
