"""The taught-facts benchmark: a tiny knowledge test whose facts the bundled SFT samples state in other words.

At size tiny every Table 4 task sits at chance and a random model picks the option with the fewest tokens, so no
stage can differ for a reason a student could follow. This task asks, in new wording, about facts that rows of the
bundled SFT samples state (`taught_by` names the source); its wrong options are plausible terms that no bundled
SFT sample contains, and every option of a question has the same number of tokens under the tiny tokenizer, so
neither length nor chance decides the pick: only what SFT taught the model about which words clinical text uses.
Decontamination (the 01 n-gram check) confirms that no SFT row contains a question (`decontamination`).
"""
from __future__ import annotations

import json
from pathlib import Path

from .data import BUNDLED_DIR, BenchmarkDataError, mc_doc

TASK = "med42_taught_facts"
FILE_NAME = "taught_facts.jsonl"
FIELDS = {"id": str, "subject": str, "taught_by": str, "question": str, "choices": list, "answer": int}


def taught_file(data_dir: str | Path | None = None) -> Path:
    """The bundled file, or <data_dir>/taught_facts.jsonl when a folder holding one is given."""
    if data_dir and (Path(data_dir) / FILE_NAME).is_file():
        return Path(data_dir) / FILE_NAME
    return BUNDLED_DIR / FILE_NAME


def taught_rows(data_dir: str | Path | None = None) -> list[dict]:
    """The raw rows (with `taught_by`), checked: each field present with its type, answer a valid index."""
    path = taught_file(data_dir)
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        for name, typ in FIELDS.items():
            if not isinstance(row.get(name), typ) or isinstance(row.get(name), bool):
                raise BenchmarkDataError(f"{TASK}: {path} line {n}: field '{name}' must be a {typ.__name__}; "
                                         f"rows hold {', '.join(FIELDS)}")
        if not 0 <= row["answer"] < len(row["choices"]) or len(row["choices"]) < 2:
            raise BenchmarkDataError(f"{TASK}: {path} line {n}: 'answer' {row['answer']} is not an index into "
                                     f"{len(row['choices'])} choices (at least 2)")
        rows.append(row)
    return rows


def taught_docs(data_dir: str | Path | None = None) -> list[dict]:
    """The rows as the normalized docs every med42_* task reads (id, subject, question, query, choices, answer)."""
    return [mc_doc(r["id"], r["subject"], r["question"], r["choices"], r["answer"]) for r in taught_rows(data_dir)]


def sft_texts(curated) -> list[str]:
    """The user + assistant text of each curated SFT row (a datasets.Dataset with `messages`)."""
    from ..data.text import conversation_text

    return [conversation_text(m) for m in curated["messages"]]


def taught_check(rows: list[dict], texts: list[str], tokenizer, ngram: int, threshold: float):
    """Per question: is its answer in the run's SFT text, are its wrong options absent from it, do all options
    have the same number of tokens, and is the question free of contamination (01's n-gram check,
    `data.decontam`, with the run's n and threshold, questions with their options)."""
    import pandas as pd

    from ..data.decontam import build_index, contaminating

    corpus = "\n".join(texts).lower()
    idx = build_index({TASK: [mc_doc(r["id"], r["subject"], r["question"], r["choices"], r["answer"])["query"]
                              for r in rows]}, ngram, threshold)
    flagged = {qi for t in texts for _, qi in contaminating(t, idx)}
    out = []
    for i, r in enumerate(rows):
        right = r["choices"][r["answer"]]
        wrong = [c for j, c in enumerate(r["choices"]) if j != r["answer"]]
        tokens = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in r["choices"]]
        out.append({"id": r["id"], "question": r["question"], "answer": right, "taught by": r["taught_by"],
                    "answer in SFT data": right.lower() in corpus,
                    "wrong options in SFT data": sum(w.lower() in corpus for w in wrong),
                    "tokens per option": "/".join(map(str, tokens)), "same tokens": len(set(tokens)) == 1,
                    "contaminated": i in flagged})
    return pd.DataFrame(out).set_index("id")
