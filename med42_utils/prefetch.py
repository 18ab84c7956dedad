"""Fetch everything a size needs from the Hugging Face Hub, once, where the Hub is reachable (a login node).

    python -m med42_utils.prefetch --size 8b [--dest DIR] [--list]

Compute nodes without internet then run from that cache (export HF_HOME=DIR if you gave --dest, and
HF_HUB_OFFLINE=1). What a size needs, from its params and the project's registries:
  - the SFT sources with a target above 0 (med42_utils/data/registry.py), when data.source is hub, including the
    authors' own files of the sources with no Hub copy (ACI-Bench, MTS-Dialog: GitHub, pinned commit), kept in
    <HF_HOME>/med42_files;
  - the benchmarks (med42_utils/benchmarks/data.py): 01 decontaminates against all of them, 05 scores them;
  - the preference sets of every DPO round (med42_utils/dpo/preference_data.py), when dpo.data_source is hub;
  - the judge's questions, when judge.questions_source is hub;
  - the base model, the judge model (loaded by the job, or served by a server the job starts: judge.server; not a
    judge at judge.api_base) and the reward model (on-policy DPO, when enabled).
Datasets are fetched through the very loaders the stages use, so the cache holds exactly what they read;
models with huggingface_hub's snapshot_download (weights, configs, tokenizer; not Meta's original/*.pth).

Interrupted? Run it again: finished items and finished files are not fetched again (huggingface_hub keeps
finished files and retries a dropped transfer from where it stopped; a file cut off by killing the process
starts over). Gated repos (Llama 3, ToxiGen) need HF_TOKEN in the environment; it is never printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .params import Params, load_params

# Model files the stages load (safetensors weights, configs, tokenizer, chat template); Meta's repos also
# hold original/consolidated.*.pth (a second full copy for their own code), which nothing here reads.
MODEL_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"]
MODEL_SKIP = ["original/*", "*.pth", "*.bin", "*.pt", "*.gguf", "*.h5", "*.msgpack", "*.onnx"]


@dataclass
class Need:
    """One thing a size needs from the Hub."""

    kind: str                      # dataset | model | files (a source's published files, not on the Hub)
    repo_id: str
    roles: list[str]               # what it is for, e.g. "SFT source medmcqa", "base model"
    detail: str = ""               # config / split / files
    fetch: Callable[[], object] | None = field(default=None, repr=False, compare=False)
    unavailable: str | None = None  # why it cannot be fetched from the Hub (then the fix)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.repo_id, self.detail


def is_hub_id(name: str) -> bool:
    from .paths import resolve

    return name != "tiny" and not Path(name).is_absolute() and not resolve(name).exists() and "/" in name


def _snapshot(repo_id: str):
    def fetch():
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_id, allow_patterns=MODEL_FILES, ignore_patterns=MODEL_SKIP)
    return fetch


def _parquet_export(spec):
    """A source read from the Hub's parquet export: its files into the hub cache (what an offline load reads,
    see hub.cached_parquet_export), then the project's loader (its Arrow cache)."""
    from huggingface_hub import snapshot_download

    from .data.loading import load_source
    from .hub import PARQUET_EXPORT, parquet_export_pattern

    try:
        snapshot_download(spec.hub_id, repo_type="dataset", revision=PARQUET_EXPORT,
                          allow_patterns=[parquet_export_pattern(spec.config, spec.split)])
    except Exception as e:  # the export branch may be gone: the loader then fetches a published fallback
        print(f"    parquet export of {spec.hub_id} not fetched ({type(e).__name__}); trying its fallbacks")
    return load_source(spec, "hub")


def _model(repo_id: str, role: str) -> Need:
    return Need("model", repo_id, [role], "weights, config, tokenizer", _snapshot(repo_id))


def needs(params: Params) -> list[Need]:
    """Everything params need from the Hub, deduplicated (one entry per repo/config/split, all its roles)."""
    from .benchmarks.data import BENCHMARKS, TASK_TO_KEY, raw_rows
    from .data.loading import load_source
    from .data.registry import REGISTRY
    from .dpo.preference_data import load_raw, parse_spec

    out: list[Need] = []
    if is_hub_id(params.model.base):
        out.append(_model(params.model.base, "base model"))
    if params.data.source == "hub":
        for key, n in params.data.targets.items():
            if not n:
                continue
            spec = REGISTRY[key]
            if spec.hub_id is None and spec.published is not None:
                from .data.loading import download_published

                pub = spec.published
                out.append(Need("files", pub.repo_url, [f"SFT source {key}"],
                                f"{pub.commit[:7]}: {', '.join(pub.files)}", lambda spec=spec: download_published(spec)))
                continue
            if spec.hub_id is None:
                out.append(Need("dataset", spec.name, [f"SFT source {key}"], unavailable=(
                    f"no Hub copy: put its files under data.local_dir and use data.source local, or set "
                    f"data.targets.{key}: 0")))
                continue
            detail = ", ".join(x for x in (spec.config, spec.split, spec.data_files,
                                          f"{len(spec.data_dirs)} folders" if spec.data_dirs else None) if x)
            fetch = (lambda spec=spec: _parquet_export(spec)) if getattr(spec, "parquet_export", False) else \
                (lambda spec=spec: load_source(spec, "hub"))
            out.append(Need("dataset", spec.hub_id, [f"SFT source {key}"], detail, fetch))
    per = {TASK_TO_KEY.get(k, k): v for k, v in params.eval.sources.items()}
    for key, b in BENCHMARKS.items():
        if per.get(key, params.eval.data_source) == "hub":
            detail = ", ".join([*(str(c) for c in b.hub_configs if c), b.hub_split])
            out.append(Need("dataset", b.hub_id, [f"benchmark {b.task}"], detail, lambda key=key: raw_rows(key, "hub")))
    if params.dpo.data_source == "hub":
        for r in params.dpo.rounds:
            for spec in r.datasets:
                src, split = parse_spec(spec)
                out.append(Need("dataset", src.hub_id, [f"DPO {r.name} pairs"], split, lambda spec=spec: load_raw(spec, "hub")))
    op = params.dpo.onpolicy
    if op.enabled and op.scorer == "reward_model" and op.reward_model and is_hub_id(op.reward_model):
        out.append(_model(op.reward_model, "reward model (on-policy DPO)"))
    for m in params.extra_models:
        if m.hub is not None and is_hub_id(m.hub):
            out.append(_model(m.hub, f"extra model {m.name}"))
    j = params.judge
    if j.judge_route not in ("none", "remote") and is_hub_id(j.model):  # loaded, or served, on the job's node
        out.append(_model(j.model, f"judge ({j.backend}" + (f", {j.server} server)" if j.judge_route == "server"
                                                            else ")")))
    if j.questions_source == "hub" and j.questions_path:
        from .judging.questions import load_questions

        out.append(Need("dataset", j.questions_path, ["judge questions"], "train",
                        lambda: load_questions("hub", j.questions_path, j.question_field)))
    merged: dict[tuple, Need] = {}
    for n in out:
        if n.key in merged:
            merged[n.key].roles += [r for r in n.roles if r not in merged[n.key].roles]
        else:
            merged[n.key] = n
    return list(merged.values())


def cache_dirs() -> list[Path]:
    """The Hugging Face caches a fetch writes to (hub files; datasets' Arrow tables), from the environment."""
    from datasets import config as dconfig
    from huggingface_hub import constants

    from .data.loading import files_cache_dir

    return [Path(constants.HF_HUB_CACHE), Path(dconfig.HF_DATASETS_CACHE), files_cache_dir()]


def folder_bytes(dirs: list[Path]) -> int:
    """Bytes of the regular files under `dirs` (symlinks into the hub's blob store counted once, as blobs)."""
    total = 0
    for d in dirs:
        if not d.is_dir():
            continue
        for root, _, files in os.walk(d):
            for f in files:
                p = Path(root) / f
                if not p.is_symlink():
                    try:
                        total += p.stat().st_size
                    except OSError:
                        pass
    return total


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def render_needs(items: list[Need]) -> str:
    lines = []
    for n in items:
        what = f"{n.kind:<7} {n.repo_id}" + (f" [{n.detail}]" if n.detail else "")
        lines.append(f"  {what}  <- {', '.join(n.roles)}" + (f"  (NOT ON THE HUB: {n.unavailable})" if n.unavailable else ""))
    return "\n".join(lines)


def prefetch(params: Params, out=print) -> dict[str, list]:
    """Fetch every need in order; one failure does not stop the others. Returns {"fetched", "cached", "failed",
    "unavailable"} lists of repo ids; a re-run fetches only what is still missing."""
    from .hub import HubUnreachableError, is_unreachable

    items = needs(params)
    dirs = cache_dirs()
    result: dict[str, list] = {"fetched": [], "cached": [], "failed": [], "unavailable": []}
    todo = [n for n in items if not n.unavailable]
    for n in items:
        if n.unavailable:
            result["unavailable"].append(n.repo_id)
            out(f"skip     {n.repo_id} ({', '.join(n.roles)}): {n.unavailable}")
    before = folder_bytes(dirs)
    for i, n in enumerate(todo, 1):
        label = f"[{i}/{len(todo)}] {n.kind} {n.repo_id}" + (f" [{n.detail}]" if n.detail else "")
        out(f"{label} for {', '.join(n.roles)} ...")
        t0 = time.time()
        try:
            n.fetch()
        except Exception as e:  # keep going: report every failure at the end
            if isinstance(e, HubUnreachableError) or is_unreachable(e):
                why = "the Hub cannot be reached from this machine (offline, proxy or firewall?)"
            else:
                why = str(e).splitlines()[0][:200] if str(e) else ""
            gated = " (gated: accept its licence on the Hub and export HF_TOKEN)" if "gated" in str(e).lower() or \
                type(e).__name__ in ("GatedRepoError", "RepositoryNotFoundError") else ""
            out(f"    FAILED: {type(e).__name__}: {why}{gated}")
            result["failed"].append(n.repo_id)
            continue
        after = folder_bytes(dirs)
        grew = after - before
        before = after
        if grew > 0:
            result["fetched"].append(n.repo_id)
            out(f"    fetched {human(grew)} in {time.time() - t0:.0f}s")
        else:
            result["cached"].append(n.repo_id)
            out("    already cached")
    out(f"cache: {', '.join(str(d) for d in dirs)}: {human(folder_bytes(dirs))} in all; "
        f"{len(result['fetched'])} fetched, {len(result['cached'])} already cached, {len(result['failed'])} failed")
    if result["failed"]:
        out("some items failed: fix the cause above and run the same command again; finished items are not fetched again")
    return result


def _use_dest(dest: str) -> Path:
    """Point every Hugging Face cache at DEST (before datasets / huggingface_hub are imported)."""
    d = Path(dest).expanduser().resolve()
    d.mkdir(parents=True, exist_ok=True)
    os.environ["HF_HOME"] = str(d)
    os.environ["HF_HUB_CACHE"] = str(d / "hub")
    os.environ["HF_DATASETS_CACHE"] = str(d / "datasets")
    return d


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", required=True, help="params size, e.g. 8b, 70b, workshop")
    ap.add_argument("--dest", default=None, help="cache folder (becomes HF_HOME); default: your usual HF cache")
    ap.add_argument("--list", action="store_true", help="only list what the size needs")
    a = ap.parse_args(argv)
    params = load_params(a.size)
    items = needs(params)  # imports neither datasets nor huggingface_hub: --dest can still move their caches
    print(f"size {a.size} needs {len(items)} item(s) from the Hugging Face Hub (and its sources' own published files):")
    print(render_needs(items) if items else "  nothing: this size runs from local and bundled files")
    if a.list or not items:
        return 0
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        print("error: HF_HUB_OFFLINE is set, so nothing can be fetched; run this where the Hub is reachable, "
              "with HF_HUB_OFFLINE unset (--list shows what the size needs without fetching)", file=sys.stderr)
        return 2
    dest = _use_dest(a.dest) if a.dest else None
    res = prefetch(params)
    where = f"export HF_HOME={dest} HF_HUB_OFFLINE=1" if dest else "export HF_HUB_OFFLINE=1 (same HF_HOME as here)"
    print(f"on the compute nodes: {where}")
    return 1 if res["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
