"""The judge prompt (rubric verbatim from the model card) and verdict parsing of odd outputs."""
from __future__ import annotations

import re

import pytest

from med42_utils.judging.parse import parse_verdict
from med42_utils.judging.prompt import RUBRIC, build_prompt, judge_messages
from med42_utils.paths import repo_root

CARD = repo_root().parent / "shared" / "seeds" / "med42-v2-model-card.md"


def _card_rubric() -> str:
    text = CARD.read_text(encoding="utf-8")
    m = re.search(r"```\n(### Score Rubric:.*?)\n```", text, re.S)
    assert m, "rubric block not found in the model card"
    return m.group(1)


@pytest.mark.skipif(not CARD.is_file(), reason="seed model card not in this checkout")
def test_rubric_is_the_model_cards_verbatim():
    assert RUBRIC == _card_rubric()


def test_prompt_layout_and_order():
    p = build_prompt("What is the first-line drug for type 2 diabetes?", "Metformin.", "Insulin.")
    keys = ["###Task Description:", "###Instruction:", "###Response A:", "###Response B:", "### Score Rubric:",
            "###Feedback:"]
    pos = [p.index(k) for k in keys]
    assert pos == sorted(pos)
    assert p.index("Metformin.") < p.index("Insulin.")
    assert "[RESULT] (A or B)" in p
    assert RUBRIC in p
    assert "###Reference Answer:" not in p and "reference answer" not in p


def test_prompt_with_reference():
    p = build_prompt("Q?", "a", "b", reference="Gold answer")
    assert p.index("###Response B:") < p.index("###Reference Answer:\nGold answer") < p.index("### Score Rubric:")
    assert "reference answer" in p


def test_swapping_responses_swaps_sections():
    p1 = build_prompt("Q?", "first text", "second text")
    p2 = build_prompt("Q?", "second text", "first text")
    assert p1 != p2
    assert p1.replace("first text", "X").replace("second text", "first text").replace("X", "second text") == p2


def test_messages_and_bad_input():
    msgs = judge_messages("Q?", "a", "b")
    assert [m["role"] for m in msgs] == ["system", "user"]
    with pytest.raises(TypeError, match="response_b"):
        build_prompt("Q?", "a", None)


@pytest.mark.parametrize(
    "text, winner",
    [
        ("Feedback: A is more complete. [RESULT] A", "A"),
        ("Both fine. [RESULT] B", "B"),
        ("[RESULT]: B", "B"),
        ("[result] a", "A"),
        ("Feedback... [RESULT] (B)", "B"),
        ("Feedback... [RESULT] **A**", "A"),
        ("Feedback... [RESULT] Response B", "B"),
        ("Feedback... [ RESULT ] A.", "A"),
        ("[RESULT] A\nsome trailing chatter", "A"),
        ("first try [RESULT] A ... on reflection [RESULT] B", "B"),
        ("[RESULT] B, a clearer answer", "B"),
    ],
)
def test_parse_ok(text, winner):
    p = parse_verdict(text)
    assert p.winner == winner and p.reason is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \n", "empty"),
        (None, "not text"),
        (42, "not text"),
        ("Response A is better.", "no [RESULT]"),
        ("[RESULT]", "nothing after"),
        ("[RESULT] A or B", "ambiguous"),
        ("[RESULT] C", "unrecognised"),
        ("[RESULT] AB", "unrecognised"),
        ("[RESULT] Bothersome", "unrecognised"),
        ("[RESULT] tiebreak: A", "unrecognised"),
    ],
)
def test_parse_odd_outputs_never_crash(text, reason):
    p = parse_verdict(text)
    assert p.winner is None
    assert reason in p.reason


@pytest.mark.parametrize(
    "text",
    ["[RESULT] Tie", "[RESULT] tie", "[RESULT] TIE", "Feedback: both fine. [RESULT] (Tie)", "[RESULT] **tie**",
     "[RESULT] both", "[RESULT] Both are equally good", "[RESULT] draw", "[RESULT] equal", "[RESULT] Equally good",
     "[RESULT] It's a tie", "[RESULT] a tie.", "[RESULT] tied", "[RESULT] neither", "[RESULT] A = B", "[RESULT] A=B",
     "[RESULT] tie (bothbad)", "first [RESULT] A, then [RESULT] Tie"],
)
def test_parse_ties_in_the_usual_spellings(text):
    p = parse_verdict(text)
    assert p.winner == "tie" and p.reason is None


def test_prompt_offers_tie_only_when_allowed():
    forced = build_prompt("Q?", "a", "b")
    ties = build_prompt("Q?", "a", "b", allow_ties=True)
    assert "[RESULT] (A or B)" in forced and "Tie" not in forced
    assert "[RESULT] (A, B or Tie)" in ties and "or Tie if neither is better" in ties
    assert RUBRIC in ties and judge_messages("Q?", "a", "b", allow_ties=True)[1]["content"] == ties


def test_feedback_is_kept():
    p = parse_verdict("Feedback: A covers dosing; B omits it. [RESULT] A")
    assert p.feedback == "A covers dosing; B omits it."


def test_feedback_keeps_its_first_words_and_a_decorated_tie_is_a_tie():
    """Found by mutation testing: a feedback without the 'Feedback:' label is kept whole, and a tie wrapped in
    markdown or brackets ('**Tie**', '(tie)') reads as a tie."""
    p = parse_verdict("Both answers name the antidote. [RESULT] A")
    assert (p.winner, p.feedback) == ("A", "Both answers name the antidote.")
    q = parse_verdict("Feedback: Both are fine. [RESULT] B")
    assert (q.winner, q.feedback) == ("B", "Both are fine.")
    for tail in ("**Tie**", "(tie)", "`draw`", "[tie]"):
        assert parse_verdict(f"Equal. [RESULT] {tail}").winner == "tie", tail
    from med42_utils.judging.parse import parse_tie

    assert parse_tie("**Tie**") and parse_tie("(draw).") and not parse_tie("**A**")  # verdicts.py calls it directly


def test_every_unparsed_verdict_keeps_the_feedback_and_says_exactly_why():
    """Found by mutation testing (re-run without the spurious timeouts): each way a verdict fails to parse is
    recorded with the judge's feedback and a reason the battles table counts and shows."""
    from med42_utils.judging.parse import Parsed

    assert parse_verdict(None) == Parsed(None, "", "judge output is NoneType, not text")
    assert parse_verdict(42) == Parsed(None, "", "judge output is int, not text")
    assert parse_verdict(" \n") == Parsed(None, "", "empty judge output")
    assert parse_verdict("  Response A is better.\n") == Parsed(None, "Response A is better.", "no [RESULT] marker")
    assert parse_verdict("Feedback: fine. [RESULT] ") == Parsed(None, "fine.", "nothing after [RESULT]")
    assert parse_verdict("Feedback: equal. [RESULT] Tie") == Parsed("tie", "equal.", None)
    assert parse_verdict("Fine. [RESULT] X") == Parsed(None, "Fine.", "unrecognised result 'X'")
    long = "C, since neither response addresses the contraindication"
    assert parse_verdict(f"Fine. [RESULT] {long}") == Parsed(None, "Fine.", f"unrecognised result {long[:40]!r}")
    both = "A or B, both mention the dose but neither the route"
    assert parse_verdict(f"Fine. [RESULT] {both}") == Parsed(None, "Fine.", f"ambiguous result {both[:40]!r}")


def test_only_the_line_after_the_last_result_marker_is_the_verdict():
    p = parse_verdict("Fine. [RESULT] A\nThough B is shorter,\nA is right.")
    assert (p.winner, p.feedback, p.reason) == ("A", "Fine.", None)
