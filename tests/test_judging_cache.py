"""The judgment cache under interruption (a real subprocess killed mid-run), torn lines, and
position-swap bookkeeping from judgments to battles."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from med42_utils.judging.battles import judge_all, judgment_tasks, judgments_frame, position_bias, to_battles
from med42_utils.judging.cache import JudgmentCache, judgment_key
from med42_utils.judging.elo import bt_elo
from med42_utils.judging.types import Judge, Verdict

QUESTIONS = [{"id": f"q{i}", "question": f"question {i}?", "reference": None} for i in range(6)]
MODELS = ["base", "sft", "dpo_round3"]
ANSWERS = {m: {q["id"]: f"{m} answer to {q['id']}" for q in QUESTIONS} for m in MODELS}
N_TASKS = len(QUESTIONS) * 3 * 2  # 3 pairs, both orders


class PreferJudge(Judge):
    """Prefers the answer of a fixed model ranking, whatever its position; optional delay per item."""

    backend = "prefer"

    def __init__(self, ranking, delay=0.0, always=None):
        super().__init__("rank")
        self.ranking, self.delay, self.always, self.calls = ranking, delay, always, 0

    def compare_many(self, items):
        out = []
        for _, a, b, _ in items:
            self.calls += 1
            time.sleep(self.delay)
            if self.always:
                w = self.always
            else:
                ra = self.ranking.index(a.split(" ")[0])
                rb = self.ranking.index(b.split(" ")[0])
                w = "A" if ra < rb else "B"
            out.append(Verdict(w, f"[RESULT] {w}"))
        return out


def test_tasks_cover_every_pair_in_both_orders():
    tasks = judgment_tasks(QUESTIONS[:1], MODELS, "j")
    assert len(tasks) == 6
    shown = {(t["first"], t["second"]) for t in tasks}
    assert shown == {(a, b) for a in MODELS for b in MODELS if a != b}
    assert len({judgment_key(t) for t in tasks}) == 6
    with pytest.raises(ValueError, match="two distinct"):
        judgment_tasks(QUESTIONS, ["base", "base"], "j")


def test_swap_bookkeeping_maps_positions_to_models(tmp_path):
    cache = JudgmentCache(tmp_path / "j.jsonl")
    judge_all(QUESTIONS, ANSWERS, PreferJudge(["sft", "dpo_round3", "base"]), cache, MODELS, batch_size=5)
    df = judgments_frame(cache)
    assert len(df) == N_TASKS
    # the preferred model wins whichever slot it was shown in
    pb = position_bias(df)
    assert pb["swap_consistency"] == 1.0 and pb["swapped_pairs"] == len(QUESTIONS) * 3
    assert pb["first_position_win_share"] == pytest.approx(0.5)
    battles, dropped = to_battles(df)
    assert len(battles) == N_TASKS and dropped.empty
    r = bt_elo(battles)
    assert r["sft"] > r["dpo_round3"] > r["base"]
    row = df[(df.first == "base") & (df.second == "sft")].iloc[0]
    assert row.winner_pos == "B" and row.winner_model == "sft"


def test_position_biased_judge_gives_equal_ratings(tmp_path):
    cache = JudgmentCache(tmp_path / "j.jsonl")
    judge_all(QUESTIONS, ANSWERS, PreferJudge(MODELS, always="A"), cache, MODELS)
    df = judgments_frame(cache)
    pb = position_bias(df)
    assert pb["first_position_win_share"] == 1.0 and pb["swap_consistency"] == 0.0
    r = bt_elo(to_battles(df)[0])
    assert r.max() - r.min() == pytest.approx(0.0, abs=1e-6)  # both orders cancel the bias


def test_unparseable_verdicts_are_recorded_and_counted(tmp_path):
    class Flaky(PreferJudge):
        def compare_many(self, items):
            vs = super().compare_many(items)
            return [Verdict(None, "gibberish", reason="no [RESULT] marker", attempts=2) if i % 3 == 0 else v
                    for i, v in enumerate(vs)]

    cache = JudgmentCache(tmp_path / "j.jsonl")
    judge_all(QUESTIONS, ANSWERS, Flaky(MODELS), cache, MODELS, batch_size=6)
    df = judgments_frame(cache)
    battles, dropped = to_battles(df)
    n_bad = int(df.winner_pos.isna().sum())
    assert n_bad == N_TASKS // 3 and len(battles) == N_TASKS - n_bad
    assert dropped.set_index("reason")["judgments"].to_dict() == {"no [RESULT] marker": n_bad}
    assert (df.loc[df.winner_pos.isna(), "raw"] == "gibberish").all()


def test_missing_answer_is_named(tmp_path):
    answers = {m: dict(v) for m, v in ANSWERS.items()}
    del answers["sft"]["q3"]
    with pytest.raises(KeyError, match="'sft' has no answer for question 'q3'"):
        judge_all(QUESTIONS, answers, PreferJudge(MODELS), JudgmentCache(tmp_path / "j.jsonl"), MODELS)


def test_torn_last_line_is_dropped_and_redone(tmp_path):
    path = tmp_path / "j.jsonl"
    cache = JudgmentCache(path)
    judge_all(QUESTIONS[:2], ANSWERS, PreferJudge(MODELS), cache, MODELS, batch_size=1)
    full = path.read_bytes()
    lines = full.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # kill mid-write
    again = JudgmentCache(path)
    assert len(again) == len(lines) - 1 and again.torn_bytes > 0
    judge = PreferJudge(MODELS)
    counts = judge_all(QUESTIONS[:2], ANSWERS, judge, again, MODELS, batch_size=1)
    assert judge.calls == 1 and counts["judged_now"] == 1
    assert path.read_bytes() == full  # same content, nothing duplicated


def test_duplicate_and_unreadable_lines_are_counted(tmp_path):
    path = tmp_path / "j.jsonl"
    cache = JudgmentCache(path)
    judge_all(QUESTIONS[:1], ANSWERS, PreferJudge(MODELS), cache, MODELS)
    first = path.read_text().splitlines()[0]
    with open(path, "a") as f:
        f.write(first + "\n" + "{not json\n")
    c = JudgmentCache(path)
    assert len(c) == 6 and c.duplicates == 1 and c.bad_lines == 1


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_judging_cache import QUESTIONS, ANSWERS, MODELS, PreferJudge
    from med42_utils.judging.battles import judge_all
    from med42_utils.judging.cache import JudgmentCache
    judge_all(QUESTIONS, ANSWERS, PreferJudge(["sft", "dpo_round3", "base"], delay=0.05),
              JudgmentCache({path!r}), MODELS, batch_size=1)
""")


def test_killed_run_resumes_without_redoing_duplicating_or_losing(tmp_path):
    path = tmp_path / "judgments.jsonl"
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), path=str(path)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=str(Path(__file__).parents[1]))
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if path.exists() and path.read_bytes().count(b"\n") >= 8:
                break
            if proc.poll() is not None:
                pytest.fail(f"child exited early with {proc.returncode}")
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = path.read_bytes()
    n_before = before.count(b"\n")
    assert 8 <= n_before < N_TASKS  # really killed mid-way
    cache = JudgmentCache(path)
    kept = len(cache)
    judge = PreferJudge(["sft", "dpo_round3", "base"])
    counts = judge_all(QUESTIONS, ANSWERS, judge, cache, MODELS, batch_size=1)
    assert counts["from_cache"] == kept and judge.calls == N_TASKS - kept  # nothing redone
    after = path.read_bytes()
    assert after.startswith(before[: before.rfind(b"\n") + 1])  # nothing lost or rewritten
    keys = [judgment_key(json.loads(line)) for line in after.splitlines()]
    assert len(keys) == N_TASKS == len(set(keys))  # complete, no duplicates
    assert JudgmentCache(path).duplicates == 0
