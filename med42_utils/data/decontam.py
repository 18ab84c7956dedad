"""Decontamination: drop SFT rows that contain a benchmark question, by word n-gram overlap.

A row is contaminated by a benchmark question when at least `threshold` of the question's word n-grams
(normalized text) occur in the row's user+assistant text.

Multiple-choice questions arrive as stem + option lines ("A. ...", optionally under an "Options:" label).
A stem of at least n words is compared alone, so a leak is caught whatever the option order or format.
A shorter stem ("Koplik spots are seen in") is too generic to compare alone, so stem + options (label
dropped) are compared; such a question is caught only with its options in the same order (a known limit).
A question that is still shorter than n words must appear verbatim (after normalization) in the row; it is
found through its first 3 words, so a row is scanned with one n-gram pass and one 3-gram pass only.
"""
from __future__ import annotations

import re

import hashlib
import pickle
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


SHORT_KEY = 3


class BenchmarkInputError(ValueError):
    """The benchmark questions given to decontamination are malformed."""


@dataclass
class DecontamIndex:
    """n-gram -> [(benchmark, question number)], plus each question's gram count."""

    n: int
    threshold: float
    grams: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    short: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)  # first 3 words -> (bench, q, text)
    questions: dict[str, int] = field(default_factory=dict)  # benchmark -> questions indexed
    digest: str = ""  # hash of n, threshold and every question: a cheap, stable fingerprint for Dataset.map

    # Dataset.map(num_proc) ships the index to each worker with dill, which is ~10x slower than pickle on
    # large dicts; handing dill one pickled blob keeps that cost small.
    def __getstate__(self):
        return pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    def __setstate__(self, blob):
        self.__dict__.update(pickle.loads(blob))


def build_index(benchmarks: dict[str, list[str]], n: int, threshold: float) -> DecontamIndex:
    if not isinstance(benchmarks, dict):
        raise BenchmarkInputError(f"benchmark questions must be a dict name -> list of str, got {type(benchmarks).__name__}")
    idx = DecontamIndex(n=n, threshold=threshold)
    h = hashlib.sha256(f"{n}|{threshold}".encode())
    grams: dict[str, list] = defaultdict(list)
    short: dict[str, list] = defaultdict(list)
    for name, questions in benchmarks.items():
        if not isinstance(questions, (list, tuple)):
            raise BenchmarkInputError(f"benchmark '{name}': questions must be a list of str, got {type(questions).__name__}")
        kept = 0
        for qi, q in enumerate(questions):
            if not isinstance(q, str):
                raise BenchmarkInputError(f"benchmark '{name}' question {qi} is {type(q).__name__}, not str")
            h.update(f"|{name}|{q}".encode())
            toks = question_tokens(q, n)
            if len(toks) < SHORT_KEY:
                continue  # one or two words: nothing meaningful to match
            kept += 1
            if len(toks) < n:
                short[" ".join(toks[:SHORT_KEY])].append((name, qi, " ".join(toks)))
                continue
            gs = ngrams(toks, n)
            idx.sizes[(name, qi)] = len(gs)
            for g in gs:
                grams[g].append((name, qi))
        idx.questions[name] = kept
    idx.grams = dict(grams)
    idx.short = dict(short)
    idx.digest = h.hexdigest()[:32]
    return idx


def contaminating(text: str, idx: DecontamIndex) -> list[tuple[str, int]]:
    """(benchmark, question number) of every question this text contains at >= threshold overlap."""
    toks = words(text)
    found: set[tuple[str, int]] = set()
    if idx.grams and len(toks) >= idx.n:
        hits: Counter = Counter()
        for g in ngrams(toks, idx.n):
            for ref in idx.grams.get(g, ()):
                hits[ref] += 1
        found.update(ref for ref, c in hits.items() if c / idx.sizes[ref] >= idx.threshold)
    if idx.short and len(toks) >= SHORT_KEY:
        padded = f" {' '.join(toks)} "
        for g in ngrams(toks, SHORT_KEY):
            for name, qi, qtext in idx.short.get(g, ()):
                if f" {qtext} " in padded:
                    found.add((name, qi))
    return sorted(found)


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

    # an explicit fingerprint spares datasets from hashing the whole index (seconds for real benchmark sizes)
    fp = hashlib.sha256(f"{ds._fingerprint}|decontam|{idx.digest}".encode()).hexdigest()[:32]
    return ds.map(batch_fn, batched=True, batch_size=500, num_proc=num_proc, desc="decontamination", new_fingerprint=fp)
