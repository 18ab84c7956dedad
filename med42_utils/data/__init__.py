"""01_data_curation: the Med42-v2 SFT mixture (paper Table 5), from raw sources to a curated dataset.

registry   every Table 5 source: Hub id, licence, paper count/ratio, adapter, filter
adapters   one raw row of a source's real schema -> chat messages (or a counted BadRow)
filters    the paper's source filters (StackExchange sites, HeadQA English, MMLU subjects, ...)
loading    datasets.load_dataset from the Hub, a local folder, or the bundled samples
dedup      exact (normalized hash) and near-duplicate (datasketch MinHash LSH) removal
decontam   n-gram overlap against every evaluated benchmark's questions
mixture    per-source sampling to the params' targets
curate     the whole funnel, Arrow-backed and parallel, with counts for every drop
"""
from .registry import REGISTRY, SourceSpec, get_source, table5_frame

__all__ = ["REGISTRY", "SourceSpec", "get_source", "table5_frame"]
