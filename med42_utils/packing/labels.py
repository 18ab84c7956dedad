"""Tokenize conversations with the training chat template; labels only on assistant tokens."""
from __future__ import annotations

from collections import Counter
from typing import Any

from ..chat import TRAINING_CHAT_TEMPLATE

IGNORE = -100
REQUIRED = ("id", "source", "messages")


class LabelError(ValueError):
    """A conversation cannot be turned into assistant-only labels; names the row and the fix."""


def tokenize_conversation(tokenizer, messages: list[dict]) -> dict[str, list[int]]:
    """input_ids and labels (-100 outside assistant turns) for one conversation.

    Uses TRL's Llama 3 training template, whose {% generation %} markers make
    `return_assistant_tokens_mask=True` mark each assistant reply and its <|eot_id|>.
    """
    out = tokenizer.apply_chat_template(
        messages,
        chat_template=TRAINING_CHAT_TEMPLATE,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
    return {"input_ids": ids, "labels": [t if m else IGNORE for t, m in zip(ids, mask, strict=True)]}


def check_labels(tokenizer, messages: list[dict], labels: list[int]) -> None:
    """Raise LabelError unless the labelled tokens decode to exactly the assistant replies (+ <|eot_id|>)."""
    eot = tokenizer.eos_token
    want = "".join(m["content"] + eot for m in messages if m["role"] == "assistant")
    # contiguous labelled runs, decoded separately so no prompt text can sneak in between
    runs, cur = [], []
    for t in labels:
        if t == IGNORE:
            if cur:
                runs.append(cur)
                cur = []
        else:
            cur.append(t)
    if cur:
        runs.append(cur)
    got = "".join(tokenizer.decode(r) for r in runs)
    n_assistant = sum(m["role"] == "assistant" for m in messages)
    if got != want or len(runs) != n_assistant:
        raise LabelError(
            f"labelled tokens do not match the assistant turns ({len(runs)} labelled spans for {n_assistant} "
            f"assistant turns): got {got[:80]!r}..., expected {want[:80]!r}...; check the chat template's "
            "{% generation %} markers"
        )


def _validate(row: dict[str, Any]) -> str | None:
    """Why a curated row cannot be trained on (None when it can)."""
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return "no_messages"
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(
            m.get("content"), str
        ):
            return "bad_message"
    if not any(m["role"] == "assistant" and m["content"].strip() for m in msgs):
        return "no_assistant_turn"
    return None


def tokenize_dataset(dataset, tokenizer, num_proc: int = 1, check: bool = True):
    """Curated rows (id, source, messages) -> rows (id, source, input_ids, labels, length, n_labels).

    Rows that cannot be trained on are dropped and counted per (source, reason).
    Returns (tokenized dataset, drops: {source: {reason: n}}).
    """
    missing = [c for c in REQUIRED if c not in dataset.column_names]
    if missing:
        raise LabelError(
            f"curated dataset lacks column(s) {missing}; 01_data_curation must write id, source, messages "
            f"(found {dataset.column_names})"
        )
    reasons = [_validate(r) for r in dataset]
    drops: dict[str, Counter] = {}
    for r, src in zip(reasons, dataset["source"], strict=True):
        if r:
            drops.setdefault(src, Counter())[r] += 1
    keep = [i for i, r in enumerate(reasons) if r is None]
    dataset = dataset.select(keep)

    def fn(row):
        out = tokenize_conversation(tokenizer, row["messages"])
        if check:
            check_labels(tokenizer, row["messages"], out["labels"])
        out["length"] = len(out["input_ids"])
        out["n_labels"] = sum(t != IGNORE for t in out["labels"])
        return out

    extra = [c for c in dataset.column_names if c not in ("id", "source")]
    tokenized = dataset.map(fn, remove_columns=extra, num_proc=num_proc if len(dataset) > 64 else None,
                            desc="tokenize with assistant-only labels")
    return tokenized, {s: dict(c) for s, c in drops.items()}
