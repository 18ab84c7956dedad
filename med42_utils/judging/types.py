"""The judges' shared types: a Verdict, the base Judge (one API over every backend) and the item normaliser.
judge.py (the backends) and reference.py (the tiny course judge) both build on this module."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .prompt import judge_messages


@dataclass(frozen=True)
class Verdict:
    """One judgment. winner is "A" (first shown), "B" (second shown), "tie", or None (unparseable after retries)."""

    winner: str | None
    raw: str
    feedback: str = ""
    reason: str | None = None
    attempts: int = 1
    logprobs: dict | None = field(default=None, compare=False)

    @property
    def parsed(self) -> bool:
        return self.winner is not None


Item = tuple  # (instruction, response_a, response_b, reference | None)


class Judge:
    """Base class: subclasses implement compare_many; compare is the one-pair convenience."""

    backend = "base"

    def __init__(self, model: str, allow_ties: bool = False, style: str = "course"):
        self.model = model
        self.allow_ties = allow_ties
        self.style = style
        judge_messages("q", "a", "b", allow_ties=allow_ties, style=style)  # a bad style/ties pair fails here

    @property
    def name(self) -> str:
        """Identifies the judge in cache keys: backend and model, '+ties' when it may answer tie, '+prometheus2'
        with Prometheus 2's own prompt."""
        return (f"{self.backend}:{self.model}" + ("+ties" if self.allow_ties else "")
                + ("+prometheus2" if self.style == "prometheus2" else ""))

    def messages(self, item) -> list[dict]:
        """The conversation this judge sends for one (instruction, response_a, response_b, reference)."""
        return judge_messages(*item, allow_ties=self.allow_ties, style=self.style)

    def compare(self, instruction: str, response_a: str, response_b: str, reference: str | None = None) -> Verdict:
        return self.compare_many([(instruction, response_a, response_b, reference)])[0]

    def compare_many(self, items: Sequence[Item]) -> list[Verdict]:  # pragma: no cover - abstract
        raise NotImplementedError


def normalise_items(items: Iterable[Item]) -> list[tuple[str, str, str, str | None]]:
    """Items as 4-tuples: a 3-tuple (no reference) gets reference None."""
    return [(*it, None) if len(it) == 3 else tuple(it) for it in items]
