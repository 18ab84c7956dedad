"""Elo: hand-computed cases, the tie rule, order invariance, the anchor, bootstrap CIs, online Elo."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from med42_utils.judging.elo import (
    EloScale, battle_counts, bootstrap_bt, bt_elo, elo_gap_for_win_rate, empirical_win_rate, fit_bt, leaderboard,
    online_elo, predicted_win_rate, rank_with_ties)
from med42_utils.judging.simulate import simulate_battles


def _battles(rows):
    """rows: (model_a, model_b, winner, count)."""
    out = []
    for a, b, w, n in rows:
        out += [{"model_a": a, "model_b": b, "winner": w}] * n
    df = pd.DataFrame(out)
    df["question_id"] = [f"q{i}" for i in range(len(df))]
    return df


def test_75_percent_gives_400_log10_3():
    b = _battles([("x", "y", "model_a", 60), ("x", "y", "model_b", 20)])
    r = bt_elo(b)
    assert r["x"] - r["y"] == pytest.approx(400 * math.log10(3), abs=0.01)  # 190.85
    assert r.mean() == pytest.approx(1000.0)
    assert elo_gap_for_win_rate(0.75) == pytest.approx(190.8485, abs=1e-3)


def test_three_models_known_gaps_and_scale():
    # x beats y 2:1, y beats z 4:1, x beats z 8:1: consistent BT odds -> exact gaps
    b = _battles([("x", "y", "model_a", 20), ("x", "y", "model_b", 10), ("y", "z", "model_a", 40),
                  ("y", "z", "model_b", 10), ("x", "z", "model_a", 80), ("x", "z", "model_b", 10)])
    r = bt_elo(b)
    assert r["x"] - r["y"] == pytest.approx(400 * math.log10(2), abs=0.02)
    assert r["y"] - r["z"] == pytest.approx(400 * math.log10(4), abs=0.02)
    # other scale and base: gap = scale * log_base(odds)
    r2 = bt_elo(b, EloScale(scale=100, base=math.e, initial=0))
    assert r2["x"] - r2["y"] == pytest.approx(100 * math.log(2), abs=0.01)
    assert r2.mean() == pytest.approx(0.0, abs=1e-9)


def test_ties_count_half_each_way():
    with_ties = _battles([("x", "y", "model_a", 2), ("x", "y", "tie", 2)])  # 3 of 4 "wins" for x
    plain = _battles([("x", "y", "model_a", 3), ("x", "y", "model_b", 1)])
    assert (with_ties_gap := bt_elo(with_ties).diff().iloc[-1]) == pytest.approx(bt_elo(plain).diff().iloc[-1], abs=1e-6)
    assert abs(with_ties_gap) == pytest.approx(190.85, abs=0.01)
    all_ties = _battles([("x", "y", "tie", 10)])
    r = bt_elo(all_ties)
    assert r["x"] == pytest.approx(r["y"], abs=1e-9)
    assert empirical_win_rate(with_ties).loc["x", "y"] == pytest.approx(0.75)


def test_order_and_position_invariance():
    b = simulate_battles({"a": 150, "b": 0, "c": -80, "d": 40}, 60, seed=3)
    r = bt_elo(b)
    shuffled = b.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert np.allclose(bt_elo(shuffled)[r.index], r, atol=1e-6)
    swapped = b.rename(columns={"model_a": "model_b", "model_b": "model_a"}).copy()
    swapped["winner"] = b["winner"].map({"model_a": "model_b", "model_b": "model_a", "tie": "tie"})
    assert np.allclose(bt_elo(swapped)[r.index], r, atol=1e-6)
    renamed = b.replace({"a": "zz", "d": "aa"})
    r3 = bt_elo(renamed)
    assert r3["zz"] == pytest.approx(r["a"], abs=1e-6) and r3["aa"] == pytest.approx(r["d"], abs=1e-6)
    # online Elo is order-dependent by construction; BT is not
    assert not np.allclose(online_elo(shuffled)[r.index], online_elo(b)[r.index])


def test_anchor():
    b = simulate_battles({"a": 100, "b": 0, "c": -100}, 50, seed=1)
    free = bt_elo(b)
    anch = bt_elo(b, anchor_model="b", anchor_value=1114.0)
    assert anch["b"] == pytest.approx(1114.0)
    assert np.allclose((anch - anch["b"]).to_numpy(), (free - free["b"]).to_numpy())
    bs = bootstrap_bt(b, 50, anchor_model="b", anchor_value=1114.0)
    assert np.allclose(bs["b"], 1114.0)
    with pytest.raises(ValueError, match="anchor_model 'nobody'"):
        bt_elo(b, anchor_model="nobody", anchor_value=1.0)
    with pytest.raises(ValueError, match="both"):
        bt_elo(b, anchor_model="b")


def test_recovers_true_ratings_and_matches_plain_logistic_regression():
    from scipy.optimize import minimize

    true = {"a": 300.0, "b": 100.0, "c": 0.0, "d": -400.0}
    b = simulate_battles(true, 400, seed=5)
    r = bt_elo(b, EloScale(initial=0.0))
    for m, v in true.items():
        assert r[m] == pytest.approx(v - np.mean(list(true.values())), abs=25)
    # the same MLE by a generic optimiser on one row per battle
    models = sorted(true)
    ia = b.model_a.map(models.index).to_numpy()
    ib = b.model_b.map(models.index).to_numpy()
    y = (b.winner == "model_a").to_numpy(float)

    def nll(c):
        z = math.log(10) / 400 * (c[ia] - c[ib])
        return np.sum(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y))

    c = minimize(nll, np.zeros(4), method="BFGS").x
    assert np.allclose(c - c.mean(), r[models].to_numpy(), atol=0.05)


def test_separated_data_stays_finite():
    b = _battles([("x", "y", "model_a", 10)])
    r = bt_elo(b)
    assert np.isfinite(r).all() and r["x"] > r["y"] + 800


def test_fit_batched_equals_one_by_one():
    W = np.array([[[0, 3, 5], [1, 0, 2], [1, 4, 0]], [[0, 1, 1], [2, 0, 1], [3, 3, 0]]], float)
    batch = fit_bt(W)
    for k in range(2):
        assert np.allclose(batch[k], fit_bt(W[k]), atol=1e-6)


def test_bootstrap_intervals_cover_and_question_bootstrap_is_wider_for_correlated_battles():
    b = simulate_battles({"a": 60, "b": 0, "c": -60}, 150, seed=2, question_sd=250)
    point = bt_elo(b)
    bb = bootstrap_bt(b, 300, by="battle", seed=1)
    bq = bootstrap_bt(b, 300, by="question", seed=1)
    assert bb.shape == (300, 3) and list(bb.columns) == ["a", "b", "c"]
    for bs in (bb, bq):
        assert ((bs.quantile(0.025) < point) & (point < bs.quantile(0.975))).all()
    wb = (bb.quantile(0.975) - bb.quantile(0.025)).mean()
    wq = (bq.quantile(0.975) - bq.quantile(0.025)).mean()
    assert wq > 1.2 * wb  # battles within a question share an effect: resampling questions is honest
    lb = leaderboard(point, {"battle": bb, "question": bq}, b)
    assert list(lb.columns[:5]) == ["elo", "lower_battle", "upper_battle", "lower_question", "upper_question"]
    assert (lb["battles"] == 2 * 150 * 2).all()
    with pytest.raises(ValueError, match="question_id"):
        bootstrap_bt(b.drop(columns="question_id"), 10, by="question")


def test_bootstrap_is_seeded():
    b = simulate_battles({"a": 60, "b": 0}, 30, seed=2)
    assert bootstrap_bt(b, 20, seed=4).equals(bootstrap_bt(b, 20, seed=4))
    assert not bootstrap_bt(b, 20, seed=4).equals(bootstrap_bt(b, 20, seed=5))


def test_rank_with_ties_by_overlapping_intervals():
    lo = pd.Series({"a": 1100, "b": 1080, "c": 900, "d": 850})
    hi = pd.Series({"a": 1200, "b": 1150, "c": 1000, "d": 1090})
    rank = rank_with_ties(lo, hi)
    assert rank.to_dict() == {"a": 1, "b": 1, "c": 3, "d": 2}


def test_online_elo_hand_computed():
    b = _battles([("x", "y", "model_a", 1)])
    r = online_elo(b, k=4)
    assert r["x"] == pytest.approx(1002.0) and r["y"] == pytest.approx(998.0)
    b2 = _battles([("x", "y", "model_a", 1), ("y", "x", "tie", 1)])
    r2 = online_elo(b2, k=4)
    e_y = 1 / (1 + 10 ** ((1002 - 998) / 400))
    assert r2["y"] == pytest.approx(998 + 4 * (0.5 - e_y))
    assert r2.sum() == pytest.approx(2000.0)


def test_win_rate_matrices_and_counts():
    b = _battles([("x", "y", "model_a", 3), ("y", "x", "model_a", 1)])
    emp = empirical_win_rate(b)
    assert emp.loc["x", "y"] == pytest.approx(0.75) and emp.loc["y", "x"] == pytest.approx(0.25)
    pred = predicted_win_rate(bt_elo(b))
    assert pred.loc["x", "y"] == pytest.approx(0.75, abs=1e-6)
    assert np.isnan(pred.loc["x", "x"])
    assert battle_counts(b).loc["x", "y"] == 4


def test_bad_battles_are_named():
    with pytest.raises(ValueError, match="winner"):
        bt_elo(pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["A"]}))
    with pytest.raises(ValueError, match="model_b"):
        bt_elo(pd.DataFrame({"model_a": ["x"], "winner": ["tie"]}))
    with pytest.raises(ValueError, match="itself"):
        bt_elo(pd.DataFrame({"model_a": ["x"], "model_b": ["x"], "winner": ["tie"]}))
    with pytest.raises(ValueError, match="no battles"):
        bt_elo(pd.DataFrame({"model_a": [], "model_b": [], "winner": []}))


def test_ties_are_half_wins_in_the_win_matrix_bootstrap_and_online_elo():
    from med42_utils.judging.elo import win_matrix

    b = _battles([("x", "y", "model_a", 2), ("y", "x", "tie", 3), ("x", "y", "model_b", 1)])
    W = win_matrix(b)
    assert W.loc["x", "y"] == 3.5 and W.loc["y", "x"] == 2.5  # 2 wins + 3 halves, 1 win + 3 halves
    point = bt_elo(b)
    assert point["x"] - point["y"] == pytest.approx(400 * math.log10(3.5 / 2.5), abs=0.01)
    for by in ("battle", "question"):
        bs = bootstrap_bt(b, 300, by, seed=1)
        assert bs["x"].quantile(0.025) < point["x"] < bs["x"].quantile(0.975)
        assert (bs["x"] - bs["y"]).median() == pytest.approx(point["x"] - point["y"], abs=40)
    only_ties = _battles([("x", "y", "tie", 4)])
    assert online_elo(only_ties).to_dict() == pytest.approx({"x": 1000.0, "y": 1000.0})  # equal and tied: no move


# --- found by mutation testing (docs/testing.md) ---

def test_an_unknown_model_or_winner_is_named_with_its_column():
    import re

    import warnings

    b = pd.DataFrame({"model_a": ["x", "z"], "model_b": ["y", "y"], "winner": ["model_a", "model_b"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checked before pandas is asked for a Categorical it would warn about
        with pytest.raises(ValueError, match=re.escape("value 'z' in column 'model_a' is not one of ['x', 'y']")):
            bt_elo(b, models=["x", "y"])


def test_fit_solves_the_likelihood_equations():
    # at the BT maximum every model's expected wins equal its observed wins (ties half), up to the tiny ridge
    from med42_utils.judging.elo import win_matrix

    b = simulate_battles({"a": 120, "b": 0, "c": -60, "d": 30}, 40, seed=11)
    r = bt_elo(b, EloScale(initial=0.0))
    W = win_matrix(b).to_numpy()
    x = r.to_numpy()
    p = 1 / (1 + 10 ** ((x[None, :] - x[:, None]) / 400))
    np.fill_diagonal(p, 0.0)
    expected = ((W + W.T) * p).sum(1)
    assert np.allclose(expected, W.sum(1), atol=1e-4)
    # and the default stopping rule leaves it converged to well under a thousandth of a point
    for M in (W, np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]], float)):
        assert np.allclose(fit_bt(M), fit_bt(M, tol=1e-12, max_iter=1000), rtol=0, atol=1e-5)


def _sweep_gap():
    """The gap of a clean sweep: N (1 - sigma(u)) = lam * u / 2 with lam = 1e-9 N, u in log-odds, by bisection."""
    lo, hi = 1.0, 60.0
    for _ in range(200):
        u = (lo + hi) / 2
        lo, hi = (u, hi) if (1 / (1 + math.exp(u))) > 1e-9 * u / 2 else (lo, u)
    return u / (math.log(10) / 400)


def test_a_clean_sweep_stays_finite_at_the_same_gap_whatever_the_number_of_battles():
    gap = _sweep_gap()  # ~3213.6 Elo: the ridge is per battle, so 1 win or 1000 wins give the same gap
    for n in (1, 10, 1000):
        r = bt_elo(_battles([("x", "y", "model_a", n)]))
        assert r["x"] - r["y"] == pytest.approx(gap, abs=0.5)
    # batched: each matrix gets its own ridge, as when fitted alone
    W = np.array([[[0, 10], [0, 0]], [[0, 1], [0, 0]], [[0, 3], [1, 0]]], float)
    batch = fit_bt(W)
    for k in range(3):
        assert np.allclose(batch[k], fit_bt(W[k]), atol=1e-6)
    assert batch[0][0] - batch[0][1] == pytest.approx(gap, abs=0.5)


def test_bootstrap_rounds_scale_and_kind_are_checked_and_used():
    b = simulate_battles({"a": 60, "b": 0}, 30, seed=2)
    assert bootstrap_bt(b, 1).shape == (1, 2)
    with pytest.raises(ValueError, match=r"must be >= 1 \(params elo.bootstrap_rounds\)"):
        bootstrap_bt(b, 0)
    with pytest.raises(ValueError, match="by='pairs'; use 'battle' or 'question'"):
        bootstrap_bt(b, 5, by="pairs")
    # another scale: the bootstrap ratings are on it too (centred on initial 0, natural-log units x 100)
    sc = EloScale(scale=100, base=math.e, initial=0)
    point = bt_elo(b, sc)
    for by in ("battle", "question"):
        bs = bootstrap_bt(b, 200, by, sc, seed=3)
        assert (bs["a"] - bs["b"]).median() == pytest.approx(point["a"] - point["b"], abs=15)
        assert np.allclose(bs.mean(axis=1), 0.0)


def test_leaderboard_bounds_rank_counts_and_order_by_hand():
    point = pd.Series({"a": 1100.0, "b": 1000.0, "c": 900.0, "d": 950.0})
    q = np.linspace(0, 1, 101)  # quantile p of each column is its value at p exactly
    bb = pd.DataFrame({"a": 1050 + 100 * q, "b": 950 + 100 * q, "c": 850 + 100 * q, "d": 900 + 100 * q})
    bq = pd.DataFrame({"a": 1000 + 200 * q, "b": 900 + 200 * q, "c": 890 + 20 * q, "d": 700 + 400 * q})
    battles = pd.DataFrame({"model_a": ["a", "a", "b"], "model_b": ["b", "c", "c"], "winner": ["model_a"] * 3})
    lb = leaderboard(point, {"battle": bb, "question": bq}, battles)
    assert list(lb.index) == ["a", "b", "d", "c"]  # by rating, best first
    assert lb.loc["a", ["lower_battle", "upper_battle"]].tolist() == pytest.approx([1052.5, 1147.5])
    assert lb.loc["c", ["lower_question", "upper_question"]].tolist() == pytest.approx([890.5, 909.5])
    # ranked on the question intervals: a [1005, 1195] is above c [890.5, 909.5] only; b [905, 1095] overlaps c
    assert lb["rank"].to_dict() == {"a": 1, "b": 1, "d": 1, "c": 2}
    assert lb["battles"].to_dict() == {"a": 2, "b": 2, "d": 0, "c": 2}
    assert lb["battles"].dtype.kind == "i"
    narrow = leaderboard(point, {"battle": bb, "question": bq}, level=0.5)
    assert narrow.loc["a", ["lower_battle", "upper_battle"]].tolist() == pytest.approx([1075.0, 1125.0])
    assert "battles" not in narrow.columns
    # one bootstrap frame: it is the battle one, and the rank uses it (c's upper 947.5 is below a's and b's lower)
    single = leaderboard(point, bb)
    assert list(single.columns) == ["elo", "lower_battle", "upper_battle", "rank"]
    assert single["rank"].to_dict() == {"a": 1, "b": 2, "d": 2, "c": 3}


def test_rank_counts_only_intervals_strictly_above():
    lo = pd.Series({"a": 1000.0, "b": 900.0})
    hi = pd.Series({"a": 1100.0, "b": 1000.0})  # b's upper bound touches a's lower bound: not separated
    assert rank_with_ties(lo, hi).to_dict() == {"a": 1, "b": 1}
    point = pd.Series({"a": 1050.0, "b": 950.0})
    boot = pd.DataFrame({"a": [1000.0] * 5, "b": [1000.0] * 5})
    assert leaderboard(point, boot)["rank"].to_dict() == {"a": 1, "b": 1}


def test_interval_contrast_bounds_widths_and_ratio():
    from med42_utils.judging.elo import interval_contrast

    board = pd.DataFrame({"elo": [1010.0, 990.0], "lower_battle": [990.0, 970.0], "upper_battle": [1030.0, 1000.0],
                          "lower_question": [950.0, 900.0], "upper_question": [1070.0, 1020.0]}, index=["m1", "m2"])
    c = interval_contrast(board)
    assert list(c.columns) == ["elo", "by battle", "width by battle", "by question", "width by question",
                               "question / battle width"]
    assert c["elo"].tolist() == [1010.0, 990.0]
    assert c["by battle"].tolist() == ["[990.0, 1030.0]", "[970.0, 1000.0]"]
    assert c["by question"].tolist() == ["[950.0, 1070.0]", "[900.0, 1020.0]"]
    assert c["width by battle"].tolist() == [40.0, 30.0] and c["width by question"].tolist() == [120.0, 120.0]
    assert c["question / battle width"].tolist() == pytest.approx([3.0, 4.0])


def test_online_elo_a_win_for_the_second_shown_moves_it_up():
    r = online_elo(_battles([("x", "y", "model_b", 1)]), k=4)
    assert r.to_dict() == pytest.approx({"x": 998.0, "y": 1002.0})


def test_an_explicit_model_list_sets_rows_and_order():
    b = _battles([("x", "y", "model_a", 3), ("y", "x", "model_a", 1)])
    r = bt_elo(b, models=["y", "x"])
    assert list(r.index) == ["y", "x"] and r["x"] - r["y"] == pytest.approx(400 * math.log10(3), abs=0.01)
    emp = empirical_win_rate(b, ["y", "x"])
    assert list(emp.index) == ["y", "x"] and emp.loc["x", "y"] == pytest.approx(0.75)
    counts = battle_counts(b, ["x", "y", "z"])
    assert counts.loc["x", "y"] == 4 and counts.loc["z"].tolist() == [0, 0, 0]
    assert (counts.dtypes.map(lambda d: d.kind) == "i").all()


def test_a_single_battle_gives_a_win_rate():
    emp = empirical_win_rate(_battles([("x", "y", "model_a", 1)]))
    assert emp.loc["x", "y"] == 1.0 and emp.loc["y", "x"] == 0.0
