"""The paper's per-source filters (Table 5 footnotes). Each returns None to keep a row, else a reason."""
from __future__ import annotations

import re
from typing import Any, Callable
from urllib.parse import urlparse

Filter = Callable[[dict[str, Any]], "str | None"]

# Table 5 [†]: "academia", "bioinformatics", "biology", "cogsci", "fitness", "health".
STACKEXCHANGE_SITES = ("academia", "bioinformatics", "biology", "cogsci", "fitness", "health")
# health.stackexchange.com was renamed medicalsciences.stackexchange.com in 2020; same community.
_SITE_ALIASES = {"medicalsciences": "health"}

# Table 5 [§], as cais/mmlu names the subjects.
MMLU_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_medicine",
    "nutrition",
    "medical_genetics",
    "professional_medicine",
    "college_biology",
    "high_school_biology",
    "virology",
    "high_school_psychology",
    "human_sexuality",
    "human_aging",
    "professional_psychology",
)

# Table 5 [*]: "47 tasks (from over 1,000 tasks) related to science, healthcare and medicine". The paper does
# not list them; we select NIv2 tasks whose task name names one of these domains (ours, an approximation:
# the notebook reports how many distinct tasks it kept).
NIV2_DOMAIN_WORDS = (
    "medical", "medicine", "clinical", "health", "disease", "drug", "biomedical", "biology", "bio",
    "anatomy", "symptom", "patient", "gene", "protein", "chemistry", "chemical", "physics", "science",
    "scientific", "sciq", "pubmed", "mesh", "nutrition", "covid", "adverse", "healthcare",
)
_WORD = re.compile(r"[a-z]+")


def stackexchange_site(row: dict) -> str | None:
    """The site of a stack-exchange-preferences row, from the URLs in its `metadata` list."""
    for url in row.get("metadata") or []:
        host = urlparse(url).netloc.lower() if isinstance(url, str) else ""
        if host.endswith(".stackexchange.com"):
            site = host[: -len(".stackexchange.com")].split(".")[-1]
            return _SITE_ALIASES.get(site, site)
    return None


def stackexchange_filter(row: dict) -> str | None:
    site = stackexchange_site(row)
    if site is None:
        return "no_site_in_metadata"
    return None if site in STACKEXCHANGE_SITES else "site_not_selected"


# Small closed-class word lists are enough to tell HeadQA's two languages apart.
_EN = {"the", "of", "and", "is", "which", "what", "in", "to", "a", "with", "for", "are", "following", "an", "that"}
_ES = {"el", "la", "de", "los", "las", "y", "en", "que", "es", "un", "una", "con", "por", "del", "cuál", "se", "siguientes"}


def looks_english(text: str) -> bool:
    """True when English function words outnumber Spanish ones (HeadQA is es/en only)."""
    toks = re.findall(r"[a-záéíóúñü]+", text.lower())
    return sum(t in _EN for t in toks) > sum(t in _ES for t in toks)


def headqa_filter(row: dict) -> str | None:
    """Table 5 [‡]: English only; and, as for the benchmarks, no questions that need an image."""
    if row.get("image"):
        return "has_image"
    text = " ".join([row.get("qtext") or ""] + [a.get("atext", "") for a in row.get("answers") or [] if isinstance(a, dict)])
    return None if looks_english(text) else "not_english"


def mmlu_filter(row: dict) -> str | None:
    return None if row.get("subject") in MMLU_SUBJECTS else "subject_not_selected"


def niv2_is_domain_task(task_name: str) -> bool:
    words = set(_WORD.findall((task_name or "").lower()))  # [a-z]+ splits on "_" and digits
    return bool(words & set(NIV2_DOMAIN_WORDS))


def niv2_filter(row: dict) -> str | None:
    return None if niv2_is_domain_task(row.get("task_name") or "") else "task_not_selected"


def openorca_submix(row: dict) -> str:
    """The FLAN-collection submix an OpenOrca row came from: the prefix of its id ('t0', 'flan', 'cot', 'niv')."""
    return str(row.get("id") or "").split(".", 1)[0]


def openorca_filter(submix: str) -> Filter:
    def keep(row: dict) -> str | None:
        return None if openorca_submix(row) == submix else "other_submix"

    keep.__name__ = f"openorca_{submix}_filter"
    return keep
