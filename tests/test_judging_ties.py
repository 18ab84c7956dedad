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


# --- found by mutation testing (docs/testing.md) ---

class RecordingJudge(TableJudge):
    """A TableJudge that keeps what it was shown and reports 2 attempts and a feedback text."""

    def __init__(self, table):
        super().__init__(table)
        self.items = []

    def compare_many(self, items):
        self.items += items
        return [Verdict(v.winner, v.raw, reason=v.reason, attempts=2, feedback=f"fb {v.winner}")
                for v in super().compare_many(items)]


def test_judge_all_defaults_passes_references_records_and_reports_progress(tmp_path):
    qs = [{"id": "q1", "question": "Q1?", "reference": "ref 1"}, {"id": 2, "question": "Q2?"}]
    answers = {"y": {"q1": "y1", "2": "y2"}, "x": {"q1": "x1", "2": "x2"}}
    table = {("x1", "y1"): "A", ("y1", "x1"): "B", ("x2", "y2"): "tie", ("y2", "x2"): "tie"}
    judge, calls = RecordingJudge(table), []
    cache = JudgmentCache(tmp_path / "j.jsonl")
    counts = judge_all(qs, answers, judge, cache, batch_size=3, progress=lambda d, t: calls.append((d, t)))
    assert counts == {"tasks": 4, "from_cache": 0, "judged_now": 4}  # models default: every model answered, sorted
    assert calls == [(0, 4), (3, 4), (4, 4)]
    assert [(i[1], i[2], i[3]) for i in judge.items] == [("x1", "y1", "ref 1"), ("y1", "x1", "ref 1"),
                                                         ("x2", "y2", None), ("y2", "x2", None)]
    recs = JudgmentCache(tmp_path / "j.jsonl").records
    assert [r["attempts"] for r in recs] == [2] * 4 and [r["feedback"] for r in recs] == ["fb A", "fb B", "fb tie", "fb tie"]
    assert [r["winner_model"] for r in recs] == ["x", "x", "tie", "tie"]
    calls.clear()
    assert judge_all(qs, answers, judge, cache, batch_size=3, progress=lambda d, t: calls.append((d, t)))["from_cache"] == 4
    assert calls == []  # nothing to do, nothing reported
    with pytest.raises(KeyError, match="no answers for model 'z'"):
        judge_all(qs, answers, judge, cache, ["x", "z"])


def test_judgments_frame_from_records_filtered_by_judge():
    recs = [{"judge": "j1", "winner_pos": "A"}, {"judge": "j2", "winner_pos": "B"}, {"judge": "j1", "winner_pos": "tie"}]
    df = judgments_frame(iter(recs), "j1")
    assert df["winner_pos"].tolist() == ["A", "tie"] and list(df.index) == [0, 1]
    assert list(df.columns) == ["judge", "winner_pos"]
    assert len(judgments_frame(recs)) == 3


def test_to_battles_columns_index_and_unknown_reasons():
    rows = [("q1", "x", "y", "AB", None), ("q2", "x", "y", "AB", "A"), ("q3", "y", "x", "BA", None), ("q4", "y", "x", "BA", "B")]
    j = _judgments(rows)
    j.loc[2, "reason"] = None  # an unparseable verdict without a reason
    battles, dropped = to_battles(j)
    assert list(battles.columns) == ["question_id", "model_a", "model_b", "winner"]
    assert list(battles.index) == [0, 1] and battles["question_id"].tolist() == ["q2", "q4"]
    assert dropped.set_index("reason")["judgments"].to_dict() == {"no [RESULT] marker": 1, "unknown": 1}
    _, none_dropped = to_battles(j.iloc[[1, 3]])
    assert list(none_dropped.columns) == ["reason", "judgments"] and none_dropped.empty


def test_model_win_rates_list_models_seen_in_one_position_only():
    b = pd.DataFrame({"model_a": ["x", "x"], "model_b": ["y", "z"], "winner": ["model_a", "model_b"]})
    wr = model_win_rates(b)
    assert wr["battles"].to_dict() == {"x": 2, "y": 1, "z": 1}
    assert wr.loc["z", "win_rate"] == 1.0 and wr.loc["x", "win_rate"] == 0.5


def test_position_bias_edge_cases_no_parse_all_ties_one_order():
    none = position_bias(_judgments([("q1", "x", "y", "AB", None), ("q1", "y", "x", "BA", None)]))
    assert none["parsed_judgments"] == 0 and none["per_model"].empty and none["per_pair"].empty
    assert math.isnan(none["tie_share"]) and math.isnan(none["first_position_win_share"])
    ties = position_bias(_judgments([("q1", "x", "y", "AB", "tie"), ("q1", "y", "x", "BA", "tie")]))
    assert math.isnan(ties["first_position_win_share"]) and ties["tie_share"] == 1.0
    assert math.isnan(ties["per_pair"]["first_position_win_share"].iloc[0]) and ties["swap_consistency"] == 1.0
    one = position_bias(_judgments([("q1", "x", "y", "AB", "A"), ("q2", "x", "y", "AB", "tie")]))
    assert (one["swapped_pairs"], one["swap_consistent"]) == (0, 0) and math.isnan(one["swap_consistency"])


def test_position_bias_per_pair_counts_only_decisive_verdicts():
    rows = [("q1", "x", "y", "AB", "A"), ("q1", "y", "x", "BA", "B"), ("q2", "x", "y", "AB", "tie"),
            ("q2", "y", "x", "BA", "A"), ("q3", "x", "z", "AB", "B")]
    pp = position_bias(_judgments(rows))["per_pair"]
    assert list(pp.columns) == ["pair", "judgments", "first_position_win_share", "tie_share"]
    assert pp["pair"].tolist() == ["x vs y", "x vs z"] and pp["judgments"].tolist() == [4, 1]
    assert pp["first_position_win_share"].tolist() == pytest.approx([2 / 3, 0.0])  # A, B, A of x vs y; the tie is out
    assert pp["tie_share"].tolist() == pytest.approx([0.25, 0.0])
