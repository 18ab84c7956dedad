"""Load one registry source as an Arrow-backed `datasets.Dataset`: Hub, local folder, or bundled sample."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..hub import PARQUET_EXPORT, cached_parquet_export, hub_load
from ..paths import RESOURCES, resolve
from .registry import Fallback, SourceSpec

SAMPLES_DIR = RESOURCES / "samples" / "sft"
_LOCAL_EXTS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class SourceLoadError(FileNotFoundError):
    """A source cannot be found where params say it is; the message names the source and the fix."""


class FallbackFilesAbsent(SourceLoadError):
    """A fallback's original files are not in the local folder (nothing was wrong with them: they are not there)."""


class SchemaMismatchError(ValueError):
    """A source's columns do not match what its adapter reads."""


def _local_file(folder: Path, spec: SourceSpec) -> tuple[str, str]:
    """(builder, path) of <folder>/<key>.{jsonl,json,parquet,csv} or <folder>/<key>/ (any of those inside)."""
    for ext, builder in _LOCAL_EXTS.items():
        p = folder / f"{spec.key}{ext}"
        if p.is_file():
            return builder, str(p)
    sub = folder / spec.key
    if sub.is_dir():
        for ext, builder in _LOCAL_EXTS.items():
            files = sorted(sub.glob(f"*{ext}"))
            if files:
                return builder, str(sub / f"*{ext}")
    raise SourceLoadError(
        f"source '{spec.key}': no file {spec.key}.jsonl/.json/.parquet/.csv or folder {spec.key}/ in {folder}. "
        f"Fix: export the {spec.hub_id or spec.name} data there in its original schema "
        f"(fields {', '.join(spec.required)}), or set this source's target to 0 in data.targets"
    )


@dataclass
class Loaded:
    """A source's raw rows and where they came from: the copy read, and the fallback used (if any) and why."""

    dataset: object
    origin: str                   # e.g. 'openlifescienceai/medmcqa (train)', a file list, 'bundled sample'
    fallback: str = ""            # '' when the primary copy was read; else which fallback and why the primary failed


def load_source(spec: SourceSpec, mode: str, local_dir: str | Path | None = None):
    """The raw rows of one source. mode: 'hub' (datasets.load_dataset; the authors' published files for sources
    with no Hub copy), 'local' (files under local_dir), 'bundled' (the package's sample in the real schema)."""
    return load_source_traced(spec, mode, local_dir).dataset


def load_source_traced(spec: SourceSpec, mode: str, local_dir: str | Path | None = None) -> Loaded:
    """load_source, also saying which copy was read and which fallback (if any) was used."""
    import datasets

    if mode == "bundled":
        path = SAMPLES_DIR / f"{spec.key}.jsonl"
        if not path.is_file():
            raise SourceLoadError(f"source '{spec.key}': bundled sample {path} is missing; reinstall the package")
        out = Loaded(datasets.load_dataset("json", data_files=str(path), split="train"), "bundled sample")
    elif mode == "local":
        if not local_dir:
            raise SourceLoadError("data.source is 'local' but data.local_dir is not set; set it to the folder of source files")
        folder = resolve(local_dir)
        if not folder.is_dir():
            raise SourceLoadError(f"data.local_dir {folder} is not a folder; fix data.local_dir")
        try:
            builder, path = _local_file(folder, spec)
            out = Loaded(datasets.load_dataset(builder, data_files=path, split="train"), path)
        except SourceLoadError:
            if spec.published is None or find_published(spec, local_dir) is None:
                raise
            out = load_published(spec, local_dir)  # the official files, as published, in <local_dir>/<key>/
    elif mode == "hub":
        out = _load_hub(spec, local_dir)
    else:
        raise ValueError(f"unknown data.source '{mode}'; use hub, local or bundled")
    check_schema(spec, out.dataset.column_names, where=f"{mode}: {out.origin}")
    return out


def _load_hub(spec: SourceSpec, local_dir) -> Loaded:
    import datasets

    if spec.hub_id is None:
        if spec.published is not None:
            return load_published(spec, local_dir)
        raise SourceLoadError(
            f"source '{spec.key}' ({spec.name}) has no Hugging Face Hub copy. {spec.note} "
            f"Then run with data.source: local, or set data.targets.{spec.key}: 0 to leave it out"
        )
    kw = {"split": spec.split}
    if spec.data_files:
        kw["data_files"] = spec.data_files
    if spec.parquet_export:
        return _load_export_or_fallback(spec, local_dir)
    with hub_load(f"dataset (SFT source {spec.key})", spec.hub_id):
        if spec.data_dirs:
            parts = [_load_dir(spec, d, kw) for d in spec.data_dirs]
            ds = datasets.concatenate_datasets(parts)
        else:
            ds = datasets.load_dataset(spec.hub_id, spec.config, **kw)
    return Loaded(ds, f"{spec.hub_id}" + (f" [{spec.config}]" if spec.config else "") + f" ({spec.split})")


def _load_export_or_fallback(spec: SourceSpec, local_dir) -> Loaded:
    """A loading-script repo read through its parquet export; when the export is missing (deleted upstream, or not
    prefetched on an offline node) each published fallback in turn, saying which was used and why."""
    import datasets

    from ..hub import HubUnreachableError, is_unreachable, unreachable_message

    attempts: list[tuple[str, BaseException]] = []
    export = f"{spec.hub_id} parquet export ({PARQUET_EXPORT}/{spec.config or 'default'}/{spec.split})"
    try:
        files = (cached_parquet_export(spec.hub_id, spec.config, spec.split)  # offline: the prefetched copy
                 or parquet_export_files(spec.hub_id, spec.config, spec.split))
        return Loaded(datasets.load_dataset("parquet", data_files=files, split="train"), export)
    except Exception as e:  # a missing export branch or glob, or an unreachable Hub: try the next copy
        attempts.append((export, e))
    for fb in spec.fallbacks:
        try:
            ds, origin = _load_fallback(spec, fb, local_dir)
            check_schema(spec, ds.column_names, where=origin)
        except Exception as e:
            attempts.append((fb.label, e))
            continue
        why = "; ".join(f"{what}: {_short(err)}" for what, err in attempts)
        return Loaded(ds, origin, fallback=f"{fb.label} (because {why})")
    unreachable = [isinstance(e, HubUnreachableError) or is_unreachable(e) for _, e in attempts]
    if any(unreachable) and all(u or isinstance(e, FallbackFilesAbsent) for u, (_, e) in zip(unreachable, attempts)):
        local = [fb for fb in spec.fallbacks if fb.kind == "local_files"]
        raise HubUnreachableError(unreachable_message(f"dataset (SFT source {spec.key})", spec.hub_id)
                                  + " Tried: " + "; ".join(w for w, _ in attempts)
                                  + "".join(f". Or {_how_to_get(fb)}" for fb in local)) from attempts[0][1]
    raise SourceLoadError(
        f"source '{spec.key}' ({spec.name}): no copy could be read. "
        + "; ".join(f"{what}: {_short(err)}" for what, err in attempts)
        + ". Fix: " + " or ".join(_how_to_get(fb) for fb in spec.fallbacks)
        + f", or set data.targets.{spec.key}: 0 to leave it out"
    )


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text[:160]}" if text else type(err).__name__


def _how_to_get(fb: Fallback) -> str:
    if fb.kind == "hub_files":
        return f"prefetch {fb.hub_id} ({', '.join(fb.files)}) where the Hub is reachable"
    return f"put {', '.join(fb.files)} from {fb.where} under <data.local_dir>/<key>/"


def _load_fallback(spec: SourceSpec, fb: Fallback, local_dir) -> tuple[object, str]:
    import datasets

    if fb.kind == "hub_files":
        from huggingface_hub import hf_hub_download

        from ..hub import hub_load

        with hub_load(f"dataset (SFT source {spec.key}, fallback)", fb.hub_id):
            paths = [hf_hub_download(fb.hub_id, f, repo_type="dataset") for f in fb.files]
        builder = "parquet" if paths[0].endswith(".parquet") else "json"
        return datasets.load_dataset(builder, data_files=paths, split="train"), f"{fb.hub_id} ({', '.join(fb.files)})"
    folder = resolve(local_dir) / spec.key if local_dir else None
    if folder is None or not all((folder / f).is_file() for f in fb.files):
        raise FallbackFilesAbsent(f"no {', '.join(fb.files)} in {folder or '<data.local_dir unset>/' + spec.key}")
    rows = []
    for f in fb.files:
        rows += _read_original(spec, folder / f)
    return datasets.Dataset.from_list(rows), ", ".join(str(folder / f) for f in fb.files)


def _read_original(spec: SourceSpec, path: Path) -> list[dict]:
    """An original distribution file -> rows in the Hub copy's schema (PUBHEALTH's TSV: the label word -> index)."""
    import csv

    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    missing = [c for c in spec.required if rows and c not in rows[0]]
    if not rows or missing:
        raise SchemaMismatchError(f"source '{spec.key}': {path} lacks column(s) {', '.join(missing) or 'rows'}; "
                                  f"found {', '.join(rows[0]) if rows else 'nothing'}")
    if spec.key == "pubhealth":
        from .adapters import HEALTH_FACT_LABELS

        for r in rows:
            word = (r.get("label") or "").strip().lower()
            r["label"] = HEALTH_FACT_LABELS.index(word) if word in HEALTH_FACT_LABELS else -1  # as the Hub copy
    return rows


# ---------------------------------------------------------------- the authors' own files (not on the Hub)
def files_cache_dir() -> Path:
    """Where downloaded published files are kept: <HF_HOME>/med42_files (so prefetch --dest carries them)."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "med42_files"


def find_published(spec: SourceSpec, local_dir=None) -> list[Path] | None:
    """The published files of a source, from <local_dir>/<key>/ (flat, or a clone of the repository) or the download
    cache; None when some file is in neither."""
    folders = ([resolve(local_dir) / spec.key] if local_dir else []) + [files_cache_dir() / spec.key]
    for folder in folders:
        found = []
        for rel in spec.published.files:
            hit = next((p for p in (folder / rel, folder / Path(rel).name) if p.is_file()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def download_published(spec: SourceSpec) -> list[Path]:
    """Download a source's published files (pinned commit) into files_cache_dir()/<key>/; finished files are kept."""
    import urllib.request

    from huggingface_hub import constants

    pub = spec.published
    if constants.HF_HUB_OFFLINE:
        raise SourceLoadError(_published_fix(spec, "this machine is offline (HF_HUB_OFFLINE is set)"))
    dest = files_cache_dir() / spec.key
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in pub.files:
        target = dest / Path(rel).name
        if not target.is_file():
            tmp = target.with_suffix(target.suffix + ".part")
            try:
                with urllib.request.urlopen(pub.url(rel), timeout=60) as r, tmp.open("wb") as f:
                    while chunk := r.read(1 << 20):
                        f.write(chunk)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise SourceLoadError(_published_fix(spec, f"downloading {pub.url(rel)} failed ({e})")) from None
            tmp.rename(target)
        out.append(target)
    return out


def _published_fix(spec: SourceSpec, why: str) -> str:
    pub = spec.published
    return (f"source '{spec.key}' ({spec.name}): its files are not here and {why}. Fix: run "
            f"'python -m med42_utils.prefetch --size <size>' where the internet is reachable, or put "
            f"{', '.join(Path(f).name for f in pub.files)} (from {pub.repo_url}, commit {pub.commit[:7]}: "
            f"{', '.join(pub.url(f) for f in pub.files)}) under <data.local_dir>/{spec.key}/, or set "
            f"data.targets.{spec.key}: 0 to leave it out")


def load_published(spec: SourceSpec, local_dir=None) -> Loaded:
    """A source from its authors' published CSV files: a local copy if there is one, else downloaded."""
    import datasets

    files = find_published(spec, local_dir) or download_published(spec)
    ds = datasets.load_dataset("csv", data_files=[str(f) for f in files], split="train")
    return Loaded(ds, f"{spec.published.repo_url}@{spec.published.commit[:7]}: " + ", ".join(str(f) for f in files))


def parquet_export_files(hub_id: str, config: str | None, split: str) -> str:
    """The Hub's automatic parquet export of one config and split (branch refs/convert/parquet).

    datasets 4+ no longer runs loading scripts; a repo that is still a script is read from this export."""
    return f"hf://datasets/{hub_id}@refs/convert/parquet/{config or 'default'}/{split}/*.parquet"


def _load_dir(spec: SourceSpec, data_dir: str, kw: dict):
    """One Hub sub-folder; falls back to the folder's alias (a renamed StackExchange site) if it is absent."""
    import datasets

    try:
        return datasets.load_dataset(spec.hub_id, spec.config, data_dir=data_dir, **kw)
    except FileNotFoundError as first:  # datasets' DataFilesNotFoundError is a FileNotFoundError
        alias = spec.extra.get("data_dir_aliases", {}).get(data_dir)
        if alias is None:
            raise SourceLoadError(f"source '{spec.key}': {spec.hub_id} has no folder {data_dir} ({first})") from None
        return datasets.load_dataset(spec.hub_id, spec.config, data_dir=alias, **kw)


def check_schema(spec: SourceSpec, columns: list[str], where: str = "") -> None:
    """Fail, naming the source and the missing fields, when columns do not fit the source's adapter."""
    missing = [f for f in spec.required if f not in columns]
    if missing:
        raise SchemaMismatchError(
            f"source '{spec.key}' ({where or 'data'}) does not match its adapter: missing field(s) "
            f"{', '.join(missing)}; found {', '.join(columns) or 'no columns'}. Fix: give rows in the "
            f"{spec.hub_id or spec.name} schema, or adapt med42_utils/data/adapters.py:{spec.adapter.__name__}"
        )


# ---------------------------------------------------------------- what can be had, before anything is downloaded
def _datasets_cached(hub_id: str) -> bool:
    """Whether datasets' own cache holds a load of this repo (what an offline load_dataset reads)."""
    from datasets import config as dconfig
    from datasets.naming import camelcase_to_snakecase

    org, _, name = hub_id.partition("/")
    return any(Path(dconfig.HF_DATASETS_CACHE).glob(f"{org}___{camelcase_to_snakecase(name)}/*/*/*/dataset_info.json"))


def _hub_file_cached(hub_id: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, filename, repo_type="dataset"), str)


def source_plan(data_params) -> list[dict]:
    """Per selected source (target > 0): where it will be read from and whether it can be had here, checked
    without downloading anything. status: ready | download (the internet is used) | missing (cannot be had here:
    `how` says how to get it). Offline means HF_HUB_OFFLINE: only local files and caches count."""
    from huggingface_hub import constants

    from .registry import REGISTRY

    d = data_params
    offline = bool(constants.HF_HUB_OFFLINE)
    rows = []
    for key, spec in REGISTRY.items():
        if not d.targets.get(key):
            continue
        row = {"key": key, "target": d.targets[key], "required": key in getattr(d, "required", []),
               "from": "", "status": "ready", "how": ""}
        if d.source == "bundled":
            row["from"] = "bundled sample"
        elif d.source == "local":
            row["from"] = f"{d.local_dir}/{key}.*"
            try:
                if not d.local_dir:
                    raise SourceLoadError("data.local_dir is not set")
                _local_file(resolve(d.local_dir), spec)
            except SourceLoadError as e:
                if spec.published is not None and find_published(spec, d.local_dir):
                    row["from"] = f"{d.local_dir}/{key}/ (published files)"
                else:
                    row.update(status="missing", how=str(e))
        elif spec.hub_id is None and spec.published is not None:
            pub = spec.published
            found = find_published(spec, d.local_dir)
            row["from"] = f"{pub.repo_url} @ {pub.commit[:7]}: {', '.join(Path(f).name for f in pub.files)}"
            if found:
                row["from"] = ", ".join(str(f) for f in found)
            elif offline:
                row.update(status="missing", how=_published_fix(spec, "this machine is offline"))
            else:
                row["status"] = "download"
        elif spec.hub_id is None:
            row.update(**{"from": "(no published copy)", "status": "missing", "how": spec.note})
        elif spec.parquet_export:
            row["from"] = f"{spec.hub_id} parquet export" + "".join(f", else {fb.label}" for fb in spec.fallbacks)
            if offline:
                if cached_parquet_export(spec.hub_id, spec.config, spec.split):
                    row["from"] = f"{spec.hub_id} parquet export (cached)"
                else:
                    fb = next((fb for fb in spec.fallbacks if (
                        fb.kind == "hub_files" and all(_hub_file_cached(fb.hub_id, f) for f in fb.files)) or (
                        fb.kind == "local_files" and d.local_dir
                        and all((resolve(d.local_dir) / key / f).is_file() for f in fb.files))), None)
                    if fb is not None:
                        row["from"] = f"fallback {fb.label} (the export is not cached)"
                    else:
                        row.update(status="missing", how=(
                            f"neither the parquet export of {spec.hub_id} nor a fallback is here: run "
                            f"'python -m med42_utils.prefetch --size <size>' where the Hub is reachable"
                            + "".join(f", or {_how_to_get(fb)}" for fb in spec.fallbacks)))
            else:
                row["status"] = "download"
        else:
            row["from"] = spec.hub_id + (f" [{spec.config}]" if spec.config else "") + (
                f" {spec.data_files}" if spec.data_files else "") + f" ({spec.split})"
            if offline and not _datasets_cached(spec.hub_id):
                row.update(status="missing", how=f"not in this machine's datasets cache and the Hub is off: run "
                           f"'python -m med42_utils.prefetch --size <size>' where the Hub is reachable")
            elif not offline:
                row["status"] = "download"
        if spec.status == "unresolved":
            row["how"] = (row["how"] + " | " if row["how"] else "") + "UNRESOLVED mapping: " + spec.note
        rows.append(row)
    return rows
