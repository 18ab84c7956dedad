"""The tiny course judge: a reference-guided stand-in for Prometheus, with real signal and no model.

At size tiny the answering models have a few hundred thousand parameters and no language model can judge them. So the
tiny judge does what a reference-guided grader does, with a stated, checkable measure:

* score each response by its overlap with the question's reference answer, by one of two stated measures:
  `token_f1` (SQuAD-style: lower-cased words, punctuation and English articles removed, F1 of the shared
  word multiset) or `char3_f1` (the same normalisation, then F1 of shared character 3-grams, i.e. chrF with
  n = 3 and beta = 1). Size tiny uses char3_f1: a tiny model's 32 tokens rarely contain a whole
  word of the reference, so token F1 is almost always 0 for every model and every verdict would be a tie;
* the higher score wins; scores within `margin` of each other are a **tie** (when ties are allowed).

It reads both responses the same way, so it has no position bias (first-position share 0.5 among
decisive verdicts, every winner survives swapping the order) - except when ties are off and the two
scores are exactly equal: then it must choose and picks the first shown, which is what a forced
judge's position bias looks like. It is a stand-in: it rewards word overlap, not medical quality.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

from .types import Judge, Verdict, normalise_items
from .parse import TIE, parse_verdict

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation or articles (SQuAD's answer normalisation)."""
    return _ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split()


def f1(r: Counter, g: Counter) -> float:
    """F1 of the multiset overlap of a response's units `r` with the reference's `g`; 0 when they share none."""
    common = sum((r & g).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(r.values()), common / sum(g.values())
    return 2 * precision * recall / (precision + recall)


def token_f1(response: str, reference: str) -> float:
    """F1 of the words the response shares with the reference (multiset overlap); 0 when either is empty."""
    return f1(Counter(words(response)), Counter(words(reference)))


def char3_f1(response: str, reference: str) -> float:
    """F1 of the character 3-grams the normalised response shares with the normalised reference."""
    def grams(text: str) -> Counter:
        t = " ".join(words(text))
        return Counter(t[i : i + 3] for i in range(len(t) - 2))

    return f1(grams(response), grams(reference))


METRICS = {"token_f1": token_f1, "char3_f1": char3_f1}


def decide(score_a: float, score_b: float, margin: float, allow_ties: bool) -> str:
    """'A', 'B' or 'tie' from the two scores (see the module docstring for the rule)."""
    if allow_ties and abs(score_a - score_b) <= margin:
        return TIE
    return "B" if score_b > score_a else "A"


class ReferenceJudge(Judge):
    """Prefers the response closer to the reference answer; a tie within `margin` (when allowed)."""

    backend = "reference"

    def __init__(self, metric: str = "token_f1", margin: float = 0.02, allow_ties: bool = True):
        if metric not in METRICS:
            raise ValueError(f"judge.reference_metric '{metric}' is unknown; use one of {sorted(METRICS)}")
        if not 0 <= margin <= 1:
            raise ValueError(f"judge.tie_margin must be in [0, 1] (a difference of {metric} scores), got {margin}")
        super().__init__(f"{metric}" + (f"@{margin:g}" if allow_ties else ""), allow_ties)
        self.metric, self.margin, self.score = metric, margin, METRICS[metric]

    def compare_many(self, items: Sequence[tuple]) -> list[Verdict]:
        out = []
        for instruction, resp_a, resp_b, reference in normalise_items(items):
            if not isinstance(reference, str) or not reference.strip():
                out.append(Verdict(None, "", "", "no reference answer for this question (reference judge)"))
                continue
            sa, sb = self.score(resp_a, reference), self.score(resp_b, reference)
            verdict = decide(sa, sb, self.margin, self.allow_ties)
            rule = f"tie within {self.margin:g}" if self.allow_ties else "ties off"
            raw = (f"Feedback: {self.metric} with the reference answer: A {sa:.3f}, B {sb:.3f} ({rule}). "
                   f"[RESULT] {'Tie' if verdict == TIE else verdict}")
            p = parse_verdict(raw)  # the same parser as every other judge
            out.append(Verdict(p.winner, raw, p.feedback, p.reason, 1, {"A": sa, "B": sb}))
        return out
