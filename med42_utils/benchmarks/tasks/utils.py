"""Data hooks for the med42_* lm-eval tasks (used with --include_path / TaskManager(include_path=...)).

Each task's `custom_dataset` calls one loader below. lm-eval passes the task metadata as keyword
arguments: `med42_data_source` (hub | local | bundled; default hub) and `med42_data_dir` choose where
the rows come from, `med42_sources` ({benchmark: source}) overrides the source per benchmark, and `med42_limit`
with `med42_seed` draw a seeded sample stratified per MMLU subject / PubMedQA label (docs/benchmark-data.md), e.g.
on the CLI: --metadata '{"med42_data_source": "local", "med42_data_dir": "/data/bench", "med42_limit": 100}'.
"""
from __future__ import annotations

from functools import partial

import datasets

from med42_utils.benchmarks.data import LETTERS, load_benchmark, sample_docs


def load_docs(key: str, **metadata) -> datasets.DatasetDict:
    """The benchmark's normalized docs (or their seeded stratified sample) as the task's 'test' split."""
    source = (metadata.get("med42_sources") or {}).get(key) or metadata.get("med42_data_source") or "hub"
    loaded = load_benchmark(key, source, metadata.get("med42_data_dir"))
    docs = sample_docs(key, loaded.docs, metadata.get("med42_limit"), int(metadata.get("med42_seed") or 0))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


load_mmlu_medical = partial(load_docs, "mmlu_medical")
load_mmlu_pro_health = partial(load_docs, "mmlu_pro_health")
load_medmcqa = partial(load_docs, "medmcqa")
load_medqa = partial(load_docs, "medqa")
load_usmle = partial(load_docs, "usmle")
load_pubmedqa = partial(load_docs, "pubmedqa")
load_toxigen = partial(load_docs, "toxigen")


def load_taught_facts(**metadata) -> datasets.DatasetDict:
    """The course's taught-facts questions (tiny: facts the bundled SFT samples state in other words)."""
    from med42_utils.benchmarks.taught import taught_docs

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(taught_docs(metadata.get("med42_data_dir")))})


def letter_prompt(doc: dict) -> str:
    """The stock lm-eval framing (medqa_4options, medmcqa): 'Question: ...', lettered options, 'Answer:'."""
    options = "".join(f"{LETTERS[i]}. {c}\n" for i, c in enumerate(doc["choices"]))
    return f"Question: {doc['question']}\n{options}Answer:"


def letter_choices(doc: dict) -> list[str]:
    """One letter per option: the continuation scored is the letter, not the answer text."""
    return list(LETTERS[: len(doc["choices"])])
