"""Fake Hugging Face caches for offline tests: what a machine holds after `python -m med42_utils.prefetch`.

The Hub cannot be reached here, so these write, into a temporary folder, the two caches the real libraries read
offline: datasets' own cache (what `datasets.load_dataset("<hub id>", ...)` falls back to when HF_HUB_OFFLINE is
set: `<HF_DATASETS_CACHE>/<org>___<name>/<config id>/0.0.0/<hash>/`), and huggingface_hub's file cache
(`<HF_HUB_CACHE>/datasets--<org>--<name>/snapshots/<commit>/...` with refs/main or refs/refs/convert/parquet), which
hf_hub_download and snapshot_download read offline. The real loaders then run unchanged; only the rows are ours:
the bundled samples (written for this project in each source's published schema) or rows a test writes.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
from datasets.arrow_writer import ArrowWriter


def write_datasets_cache(cache: Path, repo: str, splits: dict[str, list[dict]], config: str | None = None,
                         **config_kwargs) -> Path:
    """One cached load of `repo` (config, data_files / data_dir as config_kwargs): what an online load leaves."""
    org, name = repo.split("/")
    config_id = datasets.BuilderConfig(config or "default").create_config_id(config_kwargs) if config_kwargs \
        else (config or "default")
    from datasets.naming import camelcase_to_snakecase

    snake = camelcase_to_snakecase(name)  # datasets names cache folders and files this way
    folder = cache / f"{org}___{snake}" / config_id / "0.0.0" / ("0" * 16)
    folder.mkdir(parents=True, exist_ok=True)
    info_splits = datasets.SplitDict()
    features = None
    for split, rows in splits.items():
        ds = datasets.Dataset.from_list(rows)
        features = ds.features
        with ArrowWriter(path=str(folder / f"{snake}-{split}.arrow")) as w:
            w.write_table(ds.data.table)
            n, nbytes = w.finalize()
        info_splits.add(datasets.SplitInfo(split, num_bytes=nbytes, num_examples=n, dataset_name=snake))
    datasets.DatasetInfo(features=features, splits=info_splits, config_name=config_id,
                         dataset_name=snake).write_to_directory(str(folder))
    return folder


def write_hub_files(hub_cache: Path, repo: str, files: dict[str, list[dict]], revision: str = "main") -> Path:
    """Files of a dataset repo in huggingface_hub's cache at `revision` (main, or refs/convert/parquet)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    org, name = repo.split("/")
    root = hub_cache / f"datasets--{org}--{name}"
    commit = (format(abs(hash((repo, revision))), "x") * 8)[:40]
    snap = root / "snapshots" / commit
    for rel, rows in files.items():
        path = snap / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".parquet"):
            pq.write_table(pa.Table.from_pylist(rows), path)
        else:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ref = root / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)
    return snap


def write_csv(path: Path, rows: list[dict], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=delimiter)
        w.writeheader()
        w.writerows(rows)
    return path


def use_caches(monkeypatch, root: Path) -> tuple[Path, Path]:
    """Point datasets and huggingface_hub at empty caches under root, offline; returns (datasets cache, hub cache)."""
    from datasets import config as dconfig
    from huggingface_hub import constants

    dcache, hcache = root / "datasets", root / "hub"
    dcache.mkdir(parents=True, exist_ok=True)
    hcache.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(dconfig, "HF_DATASETS_CACHE", dcache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hcache))
    monkeypatch.setattr(constants, "HF_HOME", str(root))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(dconfig, "HF_HUB_OFFLINE", True)
    return dcache, hcache
