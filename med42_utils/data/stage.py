"""What 01_data_curation.ipynb runs: benchmark questions for decontamination, the funnel, the manifest."""
from __future__ import annotations

from pathlib import Path

from ..manifest import read_manifest, stage_done, write_manifest
from .curate import CurationResult, curate, save
from .mixture import domain_shares
from .registry import table5_totals
from ..paths import shown

STAGE = "01_data_curation"


def evaluated_benchmark_questions(params) -> tuple[dict[str, list[str]], str]:
    """(benchmark -> question texts, where they came from): the same data the 05 benchmarks evaluate on."""
    from ..benchmarks.data import benchmark_questions

    return benchmark_questions(params), f"med42_utils.benchmarks.data.benchmark_questions (eval.data_source={params.eval.data_source})"


def input_files(params) -> list[Path]:
    """The local files 01 reads (bundled samples or data.local_dir, and local benchmark files it decontaminates
    against); Hub sources are pinned by params."""
    from .loading import SAMPLES_DIR
    from ..paths import resolve

    d, e = params.data, params.eval
    files = [SAMPLES_DIR] if d.source == "bundled" else [resolve(d.local_dir)] if d.source == "local" and d.local_dir else []
    local_bench = e.data_source == "local" or "local" in e.sources.values()
    return files + ([resolve(e.data_dir)] if local_bench and e.data_dir else [])


def run_curation(params, out_dir: Path, force: bool = False, benchmarks: dict[str, list[str]] | None = None) -> dict:
    """Curate into out_dir/curated and write out_dir/manifest.json; skip when already done with these params."""
    if not force and stage_done(out_dir, params) and (out_dir / "curated").is_dir():
        print(f"{shown(out_dir)} already curated with these params; skipping (set force=True to redo)")
        return read_manifest(out_dir)
    if benchmarks is None:
        benchmarks, bench_source = evaluated_benchmark_questions(params)
    else:
        bench_source = "given by the caller"
    result = curate(params.data, benchmarks)
    path = save(result, out_dir)
    write_manifest(out_dir, STAGE, params, input_files=input_files(params), **manifest_fields(result, path, bench_source, benchmarks))
    return read_manifest(out_dir)


def manifest_fields(result: CurationResult, path: Path, bench_source: str, benchmarks: dict[str, list[str]]) -> dict:
    mix = result.mixture_frame()
    return {
        "curated_path": str(path),
        "rows": len(result.dataset),
        "columns": result.dataset.column_names,
        "funnel": result.funnel,
        "drops": result.drops,
        "decontamination": {
            "source": bench_source,
            "questions_per_benchmark": {k: len(v) for k, v in benchmarks.items()},
            "removed_per_source_and_benchmark": result.decontam,
        },
        "targets": result.targets,
        "sources": result.sources,
        "achieved": result.achieved,
        "domain_share_percent": domain_shares(mix),
        "table5": table5_totals(),
        "fingerprints": result.fingerprints,
        "examples": result.examples,
    }
