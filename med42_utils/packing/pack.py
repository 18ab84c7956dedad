"""Pack tokenized conversations with TRL's pack_dataset, and measure what each strategy does.

wrapped: the paper's concatenate-and-chunk ("we concatenated all of our training samples into
         chunks of 8192 tokens"): chunks are full, samples are cut at chunk edges and attend to
         whatever precedes them in the chunk.
bfd:     best-fit decreasing: whole samples are placed into chunks, `seq_lengths` records the
         boundaries so position ids restart per sample (attention stays within a sample);
         samples longer than a chunk are truncated.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
from trl.data_utils import pack_dataset

STRATEGIES = ("wrapped", "bfd")


def pack(tokenized, max_length: int, strategy: str):
    """TRL's pack_dataset on (input_ids, labels); bfd adds seq_lengths per chunk."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown packing strategy '{strategy}'; valid: {', '.join(STRATEGIES)} (packing.strategy)")
    cols = ["input_ids", "labels"]
    missing = [c for c in cols if c not in tokenized.column_names]
    if missing:
        raise ValueError(f"dataset to pack lacks {missing}; tokenize it with packing.tokenize_dataset first")
    # one map batch over everything, so wrapped leaves a single partial chunk at the end
    return pack_dataset(tokenized.select_columns(cols), max_length, strategy,
                        map_kwargs={"batch_size": max(len(tokenized), 1)})


def position_ids(chunk: dict) -> list[int]:
    """Position ids of a chunk: restarting per sample for bfd (from seq_lengths), 0..n-1 for wrapped."""
    if "seq_lengths" in chunk:
        return [p for n in chunk["seq_lengths"] for p in range(n)]
    return list(range(len(chunk["input_ids"])))


def wrapped_split_samples(lengths: list[int], max_length: int) -> int:
    """How many samples a concatenate-and-chunk pass cuts across a chunk edge."""
    ends = np.cumsum(lengths)
    starts = ends - np.asarray(lengths)
    return int(np.sum(starts // max_length != (ends - 1) // max_length))


def padding_waste(lengths: list[int], batch_size: int) -> float:
    """Share of pad tokens when samples are batched unpacked, in order, padded to each batch's longest."""
    lengths = list(lengths)
    padded = sum(max(lengths[i:i + batch_size]) * len(lengths[i:i + batch_size]) for i in range(0, len(lengths), batch_size))
    return 1 - sum(lengths) / padded if padded else 0.0


def packing_stats(tokenized, packed: dict, max_length: int, batch_size: int) -> dict:
    """Efficiency, waste, truncation/splits, tokens per source and chunk counts, per strategy.

    `packed` maps strategy -> packed dataset.
    """
    lengths = list(tokenized["length"])
    n_tokens = int(sum(lengths))
    per_source: dict[str, dict] = defaultdict(lambda: {"samples": 0, "tokens": 0, "label_tokens": 0})
    for src, n, nl in zip(tokenized["source"], lengths, tokenized["n_labels"], strict=True):
        per_source[src]["samples"] += 1
        per_source[src]["tokens"] += int(n)
        per_source[src]["label_tokens"] += int(nl)
    over = [n for n in lengths if n > max_length]
    out = {
        "samples": len(lengths),
        "tokens": n_tokens,
        "label_tokens": int(sum(tokenized["n_labels"])),
        "max_length": max_length,
        "sample_length": {"mean": float(np.mean(lengths)) if lengths else 0.0, "max": int(max(lengths, default=0))},
        "unpacked_padding_waste": {
            f"batch_{batch_size}": padding_waste(lengths, batch_size),
            "pad_to_max_length": 1 - n_tokens / (len(lengths) * max_length) if lengths else 0.0,
        },
        "tokens_per_source": dict(sorted(per_source.items())),
        "strategies": {},
    }
    for strategy, ds in packed.items():
        chunk_lens = [len(x) for x in ds["input_ids"]]
        fill = [n / max_length for n in chunk_lens]
        s = {
            "chunks": len(chunk_lens),
            "tokens_kept": int(sum(chunk_lens)),
            "efficiency": float(sum(chunk_lens) / (len(chunk_lens) * max_length)) if chunk_lens else 0.0,
            "fill": fill,
        }
        if strategy == "bfd":
            s["truncated_samples"] = len(over)
            s["tokens_lost_to_truncation"] = int(sum(n - max_length for n in over))
            s["split_samples"] = 0
        else:
            s["truncated_samples"] = 0
            s["tokens_lost_to_truncation"] = 0
            s["split_samples"] = wrapped_split_samples(lengths, max_length)
        out["strategies"][strategy] = s
    return out
