"""Text normalization shared by dedup and decontamination."""
from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation and whitespace collapsed to single spaces."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    return _NON_WORD.sub(" ", text).strip()


def words(text: str) -> list[str]:
    return normalize(text).split()


def ngrams(tokens: list[str], n: int) -> set[str]:
    """Word n-grams as space-joined strings; a text shorter than n gives itself as one gram."""
    if not tokens:
        return set()
    if len(tokens) < n:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def conversation_text(messages: list[dict]) -> str:
    """The user and assistant turns (system prompts excluded): what dedup and decontam compare."""
    return "\n".join(m["content"] for m in messages if m["role"] in ("user", "assistant"))
