"""Reading the verdict out of a judge's free text; never raises, says why when it cannot.

A verdict is "A" (the response shown first), "B" (shown second) or "tie". Ties are spelled many ways
("[RESULT] Tie", "tie", "TIE", "draw", "both", "equal", "A = B", "neither"...): all read as "tie", never as
unparseable. Whether a judge is *allowed* to answer tie is the judge's business (judge.allow_ties).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TIE = "tie"
VERDICTS = ("A", "B", TIE)

_MARKER = re.compile(r"\[\s*RESULT\s*\]", re.IGNORECASE)
# The other forms prometheus-eval's own parser (prometheus_eval/parser.py, _parse_output_relative) accepts, each
# ending its line: "[RESULT: A]", "[Result: B", "[Response A]", "Result: A" / "Result A" at the start of a line.
_OFFICIAL = re.compile(
    r"(?:\[\s*RESULT\s*:\s*|\[\s*Response\s+|^[ \t]*Result\s*:?[ \t]*)(A|B)[ \t]*\]?[ \t.*]*$",
    re.IGNORECASE | re.MULTILINE,
)
_LABEL = re.compile(r"^(?:response\s*)?([AB])(?![A-Za-z0-9])", re.IGNORECASE)
_OTHER_LABEL = re.compile(r"(?<![A-Za-z0-9])(?:response\s*)?([AB])(?![A-Za-z0-9])")
# "tie", "a tie", "it's a tie", "tied", "draw", "both", "both are equal", "equal", "equally good", "same",
# "neither", "A = B", "A=B", "tie (bothbad)" (Chatbot Arena's spelling)
_TIE = re.compile(
    r"^(?:it'?s\s+)?(?:a\s+)?(?:tie|tied|draw|both|equal|equally|same|neither)(?![A-Za-z0-9])"
    r"|^(?:response\s*)?a\s*(?:=|==)\s*(?:response\s*)?b(?![A-Za-z0-9])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Parsed:
    winner: str | None  # "A", "B", "tie" or None
    feedback: str
    reason: str | None  # why winner is None


def parse_tie(tail: str) -> bool:
    """True when the text after [RESULT] spells a tie."""
    return bool(_TIE.match(tail.strip(" \t:=-*_`'\"()[]{}.").strip()))


def _feedback(text: str) -> str:
    text = text.strip()
    return text[len("feedback:"):].strip() if text.lower().startswith("feedback:") else text


def parse_verdict(text: object) -> Parsed:
    """'... [RESULT] A' -> A; '[RESULT] Tie' -> tie. Takes the last [RESULT] marker; tolerates case, ':',
    '()', '**', 'Response B'. Without a [RESULT] marker, the official parser's forms ending a line count:
    '[RESULT: A]', '[Result: B', '[Response A]', 'Result: A' at the start of a line (the last one wins).

    Anything else (no marker, 'A or B', 'C', empty, not a string) gives winner None and a reason.
    """
    if not isinstance(text, str):
        return Parsed(None, "", f"judge output is {type(text).__name__}, not text")
    if not text.strip():
        return Parsed(None, "", "empty judge output")
    marks = list(_MARKER.finditer(text))
    if not marks:
        official = list(_OFFICIAL.finditer(text))
        if official:
            last = official[-1]
            return Parsed(last.group(1).upper(), _feedback(text[: last.start()]), None)
        return Parsed(None, text.strip(), "no [RESULT] marker")
    last = marks[-1]
    feedback = _feedback(text[: last.start()])
    tail = text[last.end():].strip().split("\n", 1)[0]
    tail = tail.strip(" \t:=-*_`'\"()[]{}.").strip()
    if not tail:
        return Parsed(None, feedback, "nothing after [RESULT]")
    if parse_tie(tail):
        return Parsed(TIE, feedback, None)
    m = _LABEL.match(tail)
    if not m:
        return Parsed(None, feedback, f"unrecognised result {tail[:40]!r}")
    labels = {x.upper() for x in _OTHER_LABEL.findall(tail)} | {m.group(1).upper()}
    if len(labels) > 1:
        return Parsed(None, feedback, f"ambiguous result {tail[:40]!r}")
    return Parsed(m.group(1).upper(), feedback, None)
