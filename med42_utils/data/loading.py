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


# Words that mark a held-out split in a file's name, in the spellings the sources ship (ACI-Bench's valid.csv
# and clef_taskC_test3.csv, MTS-Dialog's ValidationSet and TestSet-1, PUBHEALTH's dev.tsv, MedQA's dev/test).
HELD_OUT_WORDS = frozenset({"test", "dev", "valid", "validation", "val", "eval", "evaluation", "heldout"})


def name_words(rel: str | Path) -> list[str]:
    """The words of a path inside a source folder, lower-cased: 'Main-Dataset/MTS-Dialog-TestSet-1.csv' ->
    ['main', 'dataset', 'mts', 'dialog', 'test', 'set', '1']. CamelCase, digits and separators split words."""
    import re

    parts = Path(rel).with_suffix("").parts
    return [w.lower() for part in parts for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", part)]


def _says(words: list[str], split: str) -> bool:
    """Whether the words hold the split's own words in a row ('train' also as 'training')."""
    want = name_words(split.replace("_", "-")) or [split]
    alts = [want] + ([["training"] + want[1:]] if want[0] == "train" else [])
    return any(words[i:i + len(a)] == a for a in alts for i in range(len(words)))


def training_named(spec: SourceSpec, rel: str | Path) -> bool:
    """A file whose name says it is the source's own split (spec.split, e.g. 'train', 'train_sft', MMLU's
    'validation') and no other held-out split."""
    words = name_words(rel)
    splits = spec.split.split("+")
    if not any(_says(words, s) for s in splits):
        return False
    own = {w for s in splits for w in name_words(s.replace("_", "-"))}
    return not (set(words) & (HELD_OUT_WORDS - own))


def listed_files(spec: SourceSpec) -> tuple[str, ...] | None:
    """The files a source's definition names (paths inside its folder), or None when it names none: the authors'
    published files, a local-files fallback's originals, or the Hub file params read (data_files)."""
    if spec.published is not None:
        return spec.published.files
    local = [f for fb in spec.fallbacks if fb.kind == "local_files" for f in fb.files]
    if local:
        return tuple(local)
    if spec.data_files:
        return (spec.data_files,)
    return None


_READABLE = {**_LOCAL_EXTS, ".tsv": "tsv"}


def _data_files(folder: Path) -> list[Path]:
    """Every file of a readable type under folder (recursive), hidden folders (a clone's .git) left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _READABLE
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


@dataclass
class LocalFiles:
    """What a source folder gives: the files read (one builder), and the other data files in it, ignored."""

    builder: str
    files: list[Path]
    ignored: list[Path]


def _find_in(folder: Path, rel: str) -> Path | None:
    return next((p for p in (folder / rel, folder / Path(rel).name) if p.is_file()), None)


def local_files(folder: Path, spec: SourceSpec) -> LocalFiles:
    """The files a source is read from under data.local_dir, and those ignored beside them.

    <folder>/<key>.{jsonl,json,parquet,csv}: that file. A folder <folder>/<key>/: the files the source's definition
    lists (listed_files) and exactly those; for a source with no list, the files whose names say they are its
    training split (training_named), inside its config's folder where there is one (its sites' folders for
    StackExchange). Anything else in the folder is ignored and named; a folder whose files cannot be told apart
    is refused, naming them."""
    for ext, builder in _LOCAL_EXTS.items():
        p = folder / f"{spec.key}{ext}"
        if p.is_file():
            return LocalFiles(builder, [p], [])
    sub = folder / spec.key
    if not sub.is_dir():
        raise SourceLoadError(
            f"source '{spec.key}': no file {spec.key}.jsonl/.json/.parquet/.csv or folder {spec.key}/ in {folder}. "
            f"Fix: export the {spec.hub_id or spec.name} data there in its original schema "
            f"(fields {', '.join(spec.required)}), or set this source's target to 0 in data.targets"
        )
    present = _data_files(sub)
    names = ", ".join(str(p.relative_to(sub)) for p in present) or "no .jsonl/.json/.parquet/.csv/.tsv file"
    listed = listed_files(spec)
    if listed is not None:
        found = [_find_in(sub, rel) for rel in listed]
        missing = [rel for rel, f in zip(listed, found) if f is None]
        if missing:
            raise SourceLoadError(
                f"source '{spec.key}': {sub} lacks {', '.join(missing)} (the files this source is read from); "
                f"found {names}. Fix: put {', '.join(Path(r).name for r in missing)} there as published"
                + (f" ({spec.published.repo_url}, commit {spec.published.commit[:7]})" if spec.published else "")
                + f", or set data.targets.{spec.key}: 0")
        files = [f for f in found if f is not None]
    else:
        chosen = [p for p in present if p.suffix in _LOCAL_EXTS and training_named(spec, p.relative_to(sub))]
        if not chosen:
            raise SourceLoadError(
                f"source '{spec.key}': no file in {sub} is named as its '{spec.split}' split (found {names}); "
                f"files named test/dev/valid or with no split in their name are never read for training. Fix: "
                f"name the {spec.split} file(s) {spec.split}.jsonl (or .json/.parquet/.csv, e.g. "
                f"{spec.split}-00000-of-00001.parquet) in {sub}, or put it at {folder / spec.key}.jsonl")
        if spec.data_dirs:  # StackExchange: the six sites' folders only (a renamed site by its new name too)
            dirs = [*spec.data_dirs, *spec.extra.get("data_dir_aliases", {}).values()]
            chosen = [p for p in chosen if any(Path(d) in p.relative_to(sub).parents or Path(d).name in
                                               p.relative_to(sub).parts[:-1] for d in dirs)]
            if not chosen:
                raise SourceLoadError(
                    f"source '{spec.key}': no training file in {sub} lies in a folder of its sites "
                    f"({', '.join(Path(d).name for d in spec.data_dirs)}); found {names}. Fix: copy those folders "
                    f"of {spec.hub_id} (e.g. {spec.data_dirs[0]}/train-00000-of-00001.parquet) there")
        if spec.config and any(spec.config in p.relative_to(sub).parts[:-1] for p in chosen):
            chosen = [p for p in chosen if spec.config in p.relative_to(sub).parts[:-1]]  # e.g. cais/mmlu's all/
        ext = next(e for e in _LOCAL_EXTS if any(p.suffix == e for p in chosen))  # one type, in _LOCAL_EXTS order
        files = [p for p in chosen if p.suffix == ext]
    kinds = {_READABLE[f.suffix] for f in files}
    if len(kinds) > 1:
        raise SourceLoadError(f"source '{spec.key}': its files {', '.join(map(str, files))} are of different types")
    types = {f.suffix for f in files}
    ignored = [p for p in present if p not in files and p.suffix in types]
    return LocalFiles(kinds.pop(), files, ignored)


def _read_files(spec: SourceSpec, lf: LocalFiles):
    """Read the files of a source as one Dataset; files with other columns than the rest are named, with the fix."""
    import datasets

    if lf.builder == "tsv":
        rows = []
        for f in lf.files:
            rows += _read_original(spec, f)
        return datasets.Dataset.from_list(rows)
    try:
        return datasets.load_dataset(lf.builder, data_files=[str(f) for f in lf.files], split="train")
    except datasets.exceptions.DatasetGenerationError as e:  # DatasetGenerationCastError: files disagree on columns
        columns = {str(f): _columns(lf.builder, f) for f in lf.files}
        bad = [f"{f} (columns {', '.join(c)})" for f, c in columns.items() if any(r not in c for r in spec.required)]
        raise SchemaMismatchError(
            f"source '{spec.key}': its files do not share one schema: "
            + ("; ".join(bad) or "; ".join(f"{f}: {', '.join(c)}" for f, c in columns.items()))
            + f" lack(s) field(s) of {', '.join(spec.required)}. Fix: keep only the {spec.split} file(s) of "
            f"{spec.hub_id or spec.name} in its folder, or set data.targets.{spec.key}: 0") from e


def _columns(builder: str, path: Path) -> list[str]:
    """A file's column names, read from its head (csv header, first json row, parquet schema)."""
    import json

    if builder == "csv":
        import csv

        with path.open(newline="", encoding="utf-8") as f:
            return next(csv.reader(f), [])
    if builder == "parquet":
        import pyarrow.parquet as pq

        return pq.read_schema(path).names
    with path.open(encoding="utf-8") as f:
        head = f.read(1 << 20).lstrip()
    try:
        first = json.loads(head.splitlines()[0]) if head and head[0] == "{" else json.loads(head)[0]
    except (ValueError, IndexError, KeyError):
        return []
    return list(first) if isinstance(first, dict) else []


def _ignored_note(folder: Path, ignored: list[Path]) -> tuple[str, ...]:
    return tuple(str(p.relative_to(folder)) for p in ignored)


@dataclass
class Loaded:
    """A source's raw rows and where they came from: the copy read, and the fallback used (if any) and why."""

    dataset: object
    origin: str                   # e.g. 'openlifescienceai/medmcqa (train)', a file list, 'bundled sample'
    fallback: str = ""            # '' when the primary copy was read; else which fallback and why the primary failed
    ignored: tuple[str, ...] = ()  # other data files in the source's local folder, not read (test splits, metadata)


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
            lf = local_files(folder, spec)
        except SourceLoadError:  # a published source with no folder here: the copy prefetch downloaded
            if spec.published is None or (folder / spec.key).exists() or find_published(spec) is None:
                raise
            out = load_published(spec)
        else:
            out = Loaded(_read_files(spec, lf), _origin(spec, lf.files),
                         ignored=_ignored_note(folder / spec.key, lf.ignored))
    elif mode == "hub":
        out = _load_hub(spec, local_dir)
    else:
        raise ValueError(f"unknown data.source '{mode}'; use hub, local or bundled")
    check_schema(spec, out.dataset.column_names, where=f"{mode}: {out.origin}")
    return out


def _origin(spec: SourceSpec, files: list[Path]) -> str:
    where = ", ".join(str(f) for f in files)
    return f"{spec.published.repo_url}@{spec.published.commit[:7]}: {where}" if spec.published else where


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
            ds, origin, ignored = _load_fallback(spec, fb, local_dir)
            check_schema(spec, ds.column_names, where=origin)
        except Exception as e:
            attempts.append((fb.label, e))
            continue
        why = "; ".join(f"{what}: {_short(err)}" for what, err in attempts)
        return Loaded(ds, origin, fallback=f"{fb.label} (because {why})", ignored=ignored)
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


def _load_fallback(spec: SourceSpec, fb: Fallback, local_dir) -> tuple[object, str, tuple[str, ...]]:
    import datasets

    if fb.kind == "hub_files":
        from huggingface_hub import hf_hub_download

        from ..hub import hub_load

        with hub_load(f"dataset (SFT source {spec.key}, fallback)", fb.hub_id):
            paths = [hf_hub_download(fb.hub_id, f, repo_type="dataset") for f in fb.files]
        builder = "parquet" if paths[0].endswith(".parquet") else "json"
        return (datasets.load_dataset(builder, data_files=paths, split="train"),
                f"{fb.hub_id} ({', '.join(fb.files)})", ())
    folder = resolve(local_dir) / spec.key if local_dir else None
    if folder is None or not all((folder / f).is_file() for f in fb.files):
        raise FallbackFilesAbsent(f"no {', '.join(fb.files)} in {folder or '<data.local_dir unset>/' + spec.key}")
    files = [folder / f for f in fb.files]
    ignored = [p for p in _data_files(folder) if p not in files and p.suffix in {f.suffix for f in files}]
    return (_read_files(spec, LocalFiles(_READABLE[files[0].suffix], files, ignored)),
            ", ".join(map(str, files)), _ignored_note(folder, ignored))


# PUBHEALTH's train.tsv/dev.tsv columns, in file order, as the Hub's loading script (health_fact.py) names them
PUBHEALTH_COLUMNS = ("claim_id", "claim", "date_published", "explanation", "fact_checkers", "main_text", "sources",
                     "label", "subjects")


def _read_pubhealth(path: Path) -> list[dict]:
    """PUBHEALTH's train.tsv read as health_fact.py reads it (its Hub loading script, ImperialCollegeLondon/health_fact):
    tab-separated, the header line skipped, columns by position, 'nan' -> '', a short row padded with ''. A row
    with more than nine fields, which that script could not unpack either, is an error naming the line."""
    import csv

    csv.field_size_limit(1 << 30)
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader, None)  # the header line (its names are not used; health_fact.py skips it too)
        for row in reader:
            if len(row) > len(PUBHEALTH_COLUMNS):
                raise SchemaMismatchError(
                    f"source 'pubhealth': {path} line {reader.line_num} has {len(row)} tab-separated fields, more "
                    f"than PUBHEALTH's {len(PUBHEALTH_COLUMNS)} ({', '.join(PUBHEALTH_COLUMNS)}). Fix: use train.tsv "
                    "from PUBHEALTH.zip as published (github.com/neemakot/Health-Fact-Checking), unedited")
            row = [x if x != "nan" else "" for x in row] + [""] * (len(PUBHEALTH_COLUMNS) - len(row))
            rows.append(dict(zip(PUBHEALTH_COLUMNS, row)))
    return rows


def _read_original(spec: SourceSpec, path: Path) -> list[dict]:
    """An original distribution file -> rows in the Hub copy's schema (PUBHEALTH's TSV: the label word -> index)."""
    import csv

    csv.field_size_limit(1 << 30)
    if spec.key == "pubhealth":
        rows = _read_pubhealth(path)
    else:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
    missing = [c for c in spec.required if rows and c not in rows[0]]
    if not rows or missing:
        raise SchemaMismatchError(f"source '{spec.key}': {path} lacks column(s) {', '.join(missing) or 'rows'}; "
                                  f"found {', '.join(rows[0]) if rows else 'nothing'}")
    if spec.key == "pubhealth":
        from .adapters import HEALTH_FACT_LABELS

        for r in rows:  # health_fact.py: a label outside its four words becomes -1 (our adapter counts those)
            word = r["label"]
            r["label"] = HEALTH_FACT_LABELS.index(word) if word in HEALTH_FACT_LABELS else -1
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
    files = find_published(spec, local_dir) or download_published(spec)
    folder = resolve(local_dir) / spec.key if local_dir else None
    ignored = []
    if folder is not None and folder.is_dir() and all(folder in f.parents for f in files):
        ignored = [p for p in _data_files(folder) if p not in files and p.suffix in {f.suffix for f in files}]
    ds = _read_files(spec, LocalFiles("csv", list(files), ignored))
    return Loaded(ds, _origin(spec, files), ignored=_ignored_note(folder, ignored) if ignored else ())


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
                folder = resolve(d.local_dir)
                lf = local_files(folder, spec)
                row["from"] = ", ".join(str(f.relative_to(folder)) for f in lf.files) + (
                    f" (ignored: {', '.join(_ignored_note(folder / key, lf.ignored))})" if lf.ignored else "")
            except SourceLoadError as e:
                if (spec.published is not None and d.local_dir and not (resolve(d.local_dir) / key).exists()
                        and find_published(spec)):
                    row["from"] = f"{files_cache_dir() / key}/ (published files, downloaded)"
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
                row.update(status="missing", how="not in this machine's datasets cache and the Hub is off: run "
                           "'python -m med42_utils.prefetch --size <size>' where the Hub is reachable")
            elif not offline:
                row["status"] = "download"
        if spec.status == "unresolved":
            row["how"] = (row["how"] + " | " if row["how"] else "") + "UNRESOLVED mapping: " + spec.note
        rows.append(row)
    return rows
