"""Ties through the judging path: verdicts -> cache -> battles -> Elo as half a win; position-bias output."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from med42_utils.judging.battles import judge_all, judgments_frame, model_win_rates, position_bias, to_battles
from med42_utils.judging.cache import JudgmentCache
from med42_utils.judging.elo import bt_elo, online_elo
from med42_utils.judging.types import Judge, Verdict


class TableJudge(Judge):
    """Decides from a table {(first answer, second answer): verdict} - a judge with a known mind."""

    backend = "table"

    def __init__(self, table, allow_ties=True):
        super().__init__("t", allow_ties)
        self.table = table

    def compare_many(self, items):
        out = []
        for _, a, b, _ref in items:
            w = self.table.get((a, b))
            out.append(Verdict(w, f"[RESULT] {w}", reason=None if w else "no idea"))
        return out


def _judgments(rows):
    """rows: (question_id, first, second, order, winner_pos)."""
    recs = []
    for qid, first, second, order, w in rows:
        pair = sorted([first, second])
        wm = {"A": first, "B": second, "tie": "tie"}.get(w)
        recs.append({"question_id": qid, "pair": pair, "order": order, "first": first, "second": second,
                     "judge": "j", "winner_pos": w, "winner_model": wm, "reason": None if w else "no [RESULT] marker"})
    return pd.DataFrame(recs)


def test_judge_all_keeps_ties_and_they_are_never_unparseable(tmp_path):
    qs = [{"id": "q1", "question": "Q1?"}, {"id": "q2", "question": "Q2?"}]
    answers = {"x": {"q1": "x1", "q2": "x2"}, "y": {"q1": "y1", "q2": "y2"}}
    table = {("x1", "y1"): "A", ("y1", "x1"): "B", ("x2", "y2"): "tie", ("y2", "x2"): "tie"}
    cache = JudgmentCache(tmp_path / "j.jsonl")
    counts = judge_all(qs, answers, TableJudge(table), cache, ["x", "y"], batch_size=3)
    assert counts == {"tasks": 4, "from_cache": 0, "judged_now": 4}
    jf = judgments_frame(JudgmentCache(tmp_path / "j.jsonl"))  # ties survive the cache round trip
    assert sorted(jf["winner_pos"]) == ["A", "B", "tie", "tie"]
    assert set(jf.loc[jf.winner_pos == "tie", "winner_model"]) == {"tie"}
    battles, unparseable = to_battles(jf)
    assert len(battles) == 4 and len(unparseable) == 0
    assert sorted(battles["winner"]) == ["model_a", "model_b", "tie", "tie"]


def test_ties_move_ratings_as_half_wins_hand_computed():
    # x vs y on 6 questions: x wins 2, y wins 1, 3 ties -> x has 2 + 1.5 = 3.5 of 6: odds 3.5 / 2.5
    rows = [(f"q{i}", "x", "y", "AB", w) for i, w in enumerate(["A", "A", "B", "tie", "tie", "tie"])]
    rows.append(("q9", "x", "y", "AB", None))  # one unparseable: dropped and counted, unlike the ties
    battles, unparseable = to_battles(_judgments(rows))
    assert len(battles) == 6 and int(unparseable["judgments"].sum()) == 1
    r = bt_elo(battles)
    assert r["x"] - r["y"] == pytest.approx(400 * math.log10(3.5 / 2.5), abs=0.01)  # 58.45
    # had the ties been dropped (the old behaviour), x would be rated 2:1 better: 120.41
    decisive = battles[battles.winner != "tie"]
    assert bt_elo(decisive).diff().abs().iloc[-1] == pytest.approx(400 * math.log10(2), abs=0.01)


def test_online_elo_tie_by_hand():
    b = pd.DataFrame({"model_a": ["x", "x"], "model_b": ["y", "y"], "winner": ["model_a", "tie"]})
    r = online_elo(b, k=4)
    # x wins at 1000 vs 1000: +2. Then tie at 1002 vs 998: x expected 1/(1+10^(-4/400)), scores 0.5
    e = 1 / (1 + 10 ** (-4 / 400))
    assert r["x"] == pytest.approx(1002 + 4 * (0.5 - e)) and r["y"] == pytest.approx(998 - 4 * (0.5 - e))


def test_position_bias_reports_tie_share_and_model_win_rates():
    rows = [
        ("q1", "x", "y", "AB", "A"), ("q1", "y", "x", "BA", "A"),      # first shown wins both: flips
        ("q2", "x", "y", "AB", "A"), ("q2", "y", "x", "BA", "B"),      # x wins both orders
        ("q3", "x", "y", "AB", "tie"), ("q3", "y", "x", "BA", "tie"),  # tie both orders: consistent
        ("q4", "x", "y", "AB", "tie"), ("q4", "y", "x", "BA", None),   # unparseable: not counted
    ]
    pb = position_bias(_judgments(rows))
    assert pb["parsed_judgments"] == 7 and pb["ties"] == 3
    assert pb["tie_share"] == pytest.approx(3 / 7)
    assert pb["first_position_win_share"] == pytest.approx(3 / 4)  # among the 4 decisive verdicts
    assert (pb["swapped_pairs"], pb["swap_consistent"]) == (3, 2)
    pm = pb["per_model"]
    # x: wins q1-AB, q2-AB, q2-BA (3), ties 3, loses q1-BA (1) of 7 -> (3 + 1.5) / 7
    assert pm.loc["x", ["battles", "wins", "ties", "losses"]].tolist() == [7, 3, 3, 1]
    assert pm.loc["x", "win_rate"] == pytest.approx(4.5 / 7) and pm.loc["y", "win_rate"] == pytest.approx(2.5 / 7)
    assert pm.loc["x", "tie_share"] == pytest.approx(3 / 7)
    assert pb["per_pair"]["tie_share"].iloc[0] == pytest.approx(3 / 7)


def test_model_win_rates_sum_to_half_the_battles():
    b = pd.DataFrame({"model_a": ["x", "y", "z", "x"], "model_b": ["y", "z", "x", "z"],
                      "winner": ["tie", "model_a", "model_b", "model_b"]})
    wr = model_win_rates(b)
    assert (wr["wins"] + 0.5 * wr["ties"]).sum() == pytest.approx(len(b))  # every battle hands out exactly 1 point
    assert list(wr.index) == list(wr.sort_values("win_rate", ascending=False).index)


def test_dpo_judge_scorer_counts_a_tie_half(tiny_params):
    from med42_utils.dpo.scorers import PairwiseJudgeScorer, make_scorer
    from med42_utils.judging.judge import LogprobJudge

    table = {("long", "short"): "A", ("short", "long"): "tie", ("long", "mid"): "tie", ("mid", "long"): "tie",
             ("short", "mid"): "B", ("mid", "short"): "A"}
    assert PairwiseJudgeScorer(TableJudge(table)).score("q", ["long", "short", "mid"]) == [2.5, 0.5, 3.0]  # long: 1 + 3 halves; mid: 2 + 2 halves
    p = tiny_params.model_copy(deep=True)
    p.dpo.onpolicy.scorer = "judge"
    assert isinstance(make_scorer(p).judge, LogprobJudge)  # DPO prompts carry no reference for 06's tiny judge
