"""Params of 01_data_curation: sources, mixture targets, dedup and decontamination."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictModel


class DedupParams(StrictModel):
    exact: bool
    near: bool
    minhash_threshold: float = Field(gt=0, le=1, description="Jaccard threshold for near-duplicates")
    num_perm: int = Field(ge=16)
    shingle_size: int = Field(ge=1, description="word n-gram size of MinHash shingles")


class DecontamParams(StrictModel):
    ngram: int = Field(ge=3, description="word n-gram length compared with benchmark questions")
    threshold: float = Field(gt=0, le=1, description="share of a question's n-grams found in a row to drop it")


class DataParams(StrictModel):
    source: Literal["hub", "local", "bundled"] = Field(
        description="hub: datasets.load_dataset; local: files under local_dir; bundled: package samples"
    )
    local_dir: str | None = None
    num_proc: int = Field(ge=1)
    seed: int
    targets: dict[str, int] = Field(description="rows per registry source after sampling (Table 5)")
    required: list[str] = Field(default_factory=list, description="sources whose failure to load stops 01; every "
                                "other source that fails is reported in 01's source table and left out")
    dedup: DedupParams
    decontam: DecontamParams
