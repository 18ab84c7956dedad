"""Decontamination: drop SFT rows that contain a benchmark question, by word n-gram overlap.

A row is contaminated by a benchmark question when at least `threshold` of the question's word n-grams
(normalized text) occur in the row's user+assistant text.

Multiple-choice questions arrive as stem + option lines ("A. ...", optionally under an "Options:" label).
A stem of at least n words is compared alone, so a leak is caught whatever the option order or format.
A shorter stem ("Koplik spots are seen in") is too generic to compare alone, so stem + options (label
dropped) are compared; such a question is caught only with its options in the same order (a known limit).
"""
from __future__ import annotations

import re

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from .text import conversation_text, ngrams, words

_OPTION_LINE = re.compile(r"^\s*\(?[A-Ja-j][.):]\s+\S")
_LABEL_LINE = re.compile(r"^\s*(options|choices|answer choices)\s*:?\s*$", re.IGNORECASE)


def question_tokens(question: str, n: int) -> list[str]:
    """The words of a benchmark question to compare: the stem alone if it has >= n words, else stem + options."""
    lines = [ln for ln in question.splitlines() if not _LABEL_LINE.match(ln)]
    stem = [ln for ln in lines if not _OPTION_LINE.match(ln)]
    options = [ln for ln in lines if _OPTION_LINE.match(ln)]
    stem_toks = words("\n".join(stem))
    return stem_toks if len(stem_toks) >= n or not options else stem_toks + words("\n".join(options))


class BenchmarkInputError(ValueError):
    """The benchmark questions given to decontamination are malformed."""


@dataclass
class DecontamIndex:
    """n-gram -> [(benchmark, question number)], plus each question's gram count."""

    n: int
    threshold: float
    grams: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    lengths: set[int] = field(default_factory=set)  # gram lengths to generate for a row
    questions: dict[str, int] = field(default_factory=dict)  # benchmark -> questions indexed


def build_index(benchmarks: dict[str, list[str]], n: int, threshold: float) -> DecontamIndex:
    if not isinstance(benchmarks, dict):
        raise BenchmarkInputError(f"benchmark questions must be a dict name -> list of str, got {type(benchmarks).__name__}")
    idx = DecontamIndex(n=n, threshold=threshold)
    grams: dict[str, list] = defaultdict(list)
    for name, questions in benchmarks.items():
        if not isinstance(questions, (list, tuple)):
            raise BenchmarkInputError(f"benchmark '{name}': questions must be a list of str, got {type(questions).__name__}")
        kept = 0
        for qi, q in enumerate(questions):
            if not isinstance(q, str):
                raise BenchmarkInputError(f"benchmark '{name}' question {qi} is {type(q).__name__}, not str")
            toks = question_tokens(q, n)
            if not toks:
                continue
            gs = ngrams(toks, n)
            idx.lengths.add(min(n, len(toks)))
            idx.sizes[(name, qi)] = len(gs)
            for g in gs:
                grams[g].append((name, qi))
            kept += 1
        idx.questions[name] = kept
    idx.grams = dict(grams)
    return idx


def contaminating(text: str, idx: DecontamIndex) -> list[tuple[str, int]]:
    """(benchmark, question number) of every question this text contains at >= threshold overlap."""
    toks = words(text)
    hits: Counter = Counter()
    for length in idx.lengths:
        for g in ngrams(toks, length) if len(toks) >= length else ():
            for ref in idx.grams.get(g, ()):
                hits[ref] += 1
    return sorted(ref for ref, c in hits.items() if c / idx.sizes[ref] >= idx.threshold)


def add_contamination_column(ds, idx: DecontamIndex, num_proc: int | None):
    """Add `contaminated_by`: the benchmarks whose questions the row contains ('' when clean), and
    `contaminated_question`: 'benchmark:number' of the first match."""

    def batch_fn(batch):
        by, first = [], []
        for messages in batch["messages"]:
            refs = contaminating(conversation_text(messages), idx)
            by.append(",".join(sorted({b for b, _ in refs})))
            first.append(f"{refs[0][0]}:{refs[0][1]}" if refs else "")
        return {"contaminated_by": by, "contaminated_question": first}

    return ds.map(batch_fn, batched=True, batch_size=500, num_proc=num_proc, desc="decontamination")
