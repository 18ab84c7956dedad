"""The 02_packing stage: curated conversations -> assistant-only labels -> packed chunks + stats."""
from __future__ import annotations

import json
from pathlib import Path

from ..manifest import require_stage, stage_done, write_manifest
from ..tiny_model import resolve_base_model
from .labels import tokenize_dataset
from .pack import STRATEGIES, pack, packing_stats

TOKENIZED, STATS = "tokenized", "stats.json"


def packed_dir(stage_dir: Path, strategy: str) -> Path:
    return Path(stage_dir) / f"packed_{strategy}"


def load_curated(run):
    """The curated dataset written by 01_data_curation (clear error when it is missing)."""
    from datasets import load_from_disk

    data_dir = run.dir / "data"
    require_stage(data_dir, "01_data_curation.ipynb")
    path = data_dir / "curated"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found although {data_dir}/manifest.json exists; re-run 01_data_curation.ipynb")
    return load_from_disk(str(path))


def load_tokenizer(params):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(params), trust_remote_code=params.model.trust_remote_code)


def run_packing(run, force: bool = False, max_length: int | None = None) -> dict:
    """Tokenize, pack with both strategies, save datasets + stats + manifest; skip when done."""
    from datasets import load_from_disk

    out = run.stage_dir("02_packing")
    if stage_done(out, run.params) and not force:
        print(f"02_packing already done in {out} (force=True re-runs it)")
        return json.loads((out / STATS).read_text())
    p = run.params
    L = max_length or p.packing.max_length
    curated = load_curated(run)
    tok = load_tokenizer(p)
    tokenized, drops = tokenize_dataset(curated, tok, num_proc=p.data.num_proc)
    if len(tokenized) == 0:
        raise ValueError(f"no trainable conversations in {run.dir / 'data' / 'curated'} (dropped: {drops})")
    tokenized.save_to_disk(str(out / TOKENIZED))
    packed = {s: pack(tokenized, L, s) for s in STRATEGIES}
    for s, ds in packed.items():
        ds.save_to_disk(str(packed_dir(out, s)))
    stats = packing_stats(tokenized, packed, L, p.sft.micro_batch_size)
    stats["dropped"] = drops
    stats["strategy"] = p.packing.strategy
    (out / STATS).write_text(json.dumps(stats, indent=2))
    write_manifest(
        out, "02_packing", p,
        strategy=p.packing.strategy, max_length=L, samples=stats["samples"], tokens=stats["tokens"],
        label_tokens=stats["label_tokens"], dropped=drops,
        chunks={s: v["chunks"] for s, v in stats["strategies"].items()},
        efficiency={s: v["efficiency"] for s, v in stats["strategies"].items()},
        tokenized=TOKENIZED, packed={s: packed_dir(out, s).name for s in STRATEGIES},
    )
    return stats
