"""The 01 funnel: raw -> filtered -> valid -> exact dedup -> near dedup -> decontaminated -> sampled.

Every step is Arrow-backed (`datasets` map/filter/select, num_proc from params) and every dropped row
is counted per source, step and reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from . import adapters as A
from .decontam import add_contamination_column, build_index
from .dedup import add_dedup_columns, exact_keep_mask, near_keep_mask
from .loading import Loaded, SourceLoadError, load_source_traced, source_plan
from .mixture import check_targets, mixture_frame, sample_indices, source_column
from .registry import REGISTRY, SourceSpec
from .text import conversation_text

FUNNEL_STEPS = ("raw", "filtered", "valid", "exact_dedup", "near_dedup", "decontaminated", "sampled")
MIN_ROWS_PER_PROC = 2_000  # below this a worker pool costs more than it saves


def output_features():
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"),
        "source": Value("string"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
        "drop_reason": Value("string"),
    })


def procs(n_rows: int, num_proc: int) -> int | None:
    """num_proc for a map over n_rows: None (in-process) for small data."""
    n = min(num_proc, n_rows // MIN_ROWS_PER_PROC)
    return n if n > 1 else None


def process_row(row: dict, spec: SourceSpec) -> tuple[list[dict], str]:
    """(messages, '') for a kept row, ([], 'filtered:<reason>' or 'bad_input:<reason>') for a dropped one."""
    if spec.filter is not None:
        reason = spec.filter(row)
        if reason:
            return [], f"filtered:{reason}"
    try:
        return spec.adapter(row), ""
    except A.BadRow as e:
        return [], f"bad_input:{e.reason}"


def adapt_source(raw, spec: SourceSpec, num_proc: int):
    """Raw rows -> id, source, messages, drop_reason (Arrow, parallel)."""
    cols = raw.column_names

    def batch_fn(batch, indices):
        out = {"id": [], "source": [], "messages": [], "drop_reason": []}
        for j, i in enumerate(indices):
            row = {c: batch[c][j] for c in cols}
            msgs, reason = process_row(row, spec)
            out["id"].append(f"{spec.key}-{i:07d}")
            out["source"].append(spec.key)
            out["messages"].append(msgs)
            out["drop_reason"].append(reason)
        return out

    return raw.map(
        batch_fn, batched=True, with_indices=True, remove_columns=cols, features=output_features(),
        num_proc=procs(len(raw), num_proc), desc=f"adapt {spec.key}",
    )


def _counts(ds, column: str) -> dict[str, int]:
    if len(ds) == 0:
        return {}
    return {str(k): int(v) for k, v in ds.select_columns([column]).to_pandas()[column].value_counts().items()}


@dataclass
class CurationResult:
    dataset: object                                   # the curated datasets.Dataset (id, source, messages)
    funnel: dict[str, dict[str, int]]                 # source -> step -> rows left
    drops: list[dict]                                 # {source, step, reason, count}
    decontam: dict[str, dict[str, int]]               # source -> benchmark -> rows removed
    achieved: dict[str, int]
    targets: dict[str, int]
    fingerprints: dict[str, str]
    examples: dict[str, list] = field(default_factory=dict)  # a few removed rows per step, for the notebook
    sources: dict[str, dict] = field(default_factory=dict)    # key -> outcome: status, origin, fallback, rows, reason

    def outcome_frame(self):
        """One row per selected source: loaded / loaded via a fallback / failed (with the reason), rows read, rows
        kept, its target, Table 5's count and the shortfall against both, why a shortfall is expected, and the other
        data files in its local folder that were not read (test splits, metadata)."""
        return outcome_frame(self.sources, self.targets, self.achieved, self.funnel)

    def funnel_frame(self):
        import pandas as pd

        df = pd.DataFrame.from_dict(self.funnel, orient="index").reindex(columns=FUNNEL_STEPS).fillna(0).astype(int)
        df.loc["TOTAL"] = df.sum()
        return df

    def drops_frame(self):
        import pandas as pd

        return pd.DataFrame(self.drops, columns=["source", "step", "reason", "count"])

    def decontam_frame(self):
        import pandas as pd

        return pd.DataFrame.from_dict(self.decontam, orient="index").fillna(0).astype(int)

    def mixture_frame(self):
        return mixture_frame(self.targets, self.achieved)


class RequiredSourceError(SourceLoadError):
    """A source that data.required names cannot be loaded; the message holds every source's outcome."""


def check_required(required: list[str]) -> None:
    unknown = [k for k in required if k not in REGISTRY]
    if unknown:
        raise ValueError(f"data.required names unknown source(s) {', '.join(unknown)}; valid keys: {', '.join(REGISTRY)}")


def outcome_frame(sources: Mapping[str, dict], targets: Mapping[str, int], achieved: Mapping[str, int],
                  funnel: Mapping[str, dict] | None = None):
    import pandas as pd

    rows = []
    for key, o in sources.items():
        spec = REGISTRY[key]
        got = achieved.get(key, 0)
        rows.append({
            "key": key, "status": o["status"], "rows read": o.get("rows", 0),
            "kept": got, "target": targets.get(key, 0), "table 5": spec.paper_count,
            "short of target": max(targets.get(key, 0) - got, 0), "short of table 5": max(spec.paper_count - got, 0),
            "read from": o.get("origin", ""), "fallback used": o.get("fallback", ""),
            "ignored files": ", ".join(o.get("ignored", [])),
            "note": "; ".join(x for x in (o.get("reason", ""), "UNRESOLVED mapping" if spec.status == "unresolved"
                                          else "", spec.shortfall_note if got < spec.paper_count else "") if x),
        })
    return pd.DataFrame(rows).set_index("key") if rows else pd.DataFrame()


def curate(
    params_data,
    benchmarks: Mapping[str, list[str]],
    sources: list[str] | None = None,
    loader=load_source_traced,
) -> CurationResult:
    """Run the whole funnel for `params.data`. `benchmarks`: name -> test question texts.

    A source that cannot be loaded is recorded (status failed, with the reason) and left out; the run stops only
    when it is in data.required, and then before any download if source_plan already says it cannot be had."""
    import datasets

    d = params_data
    check_targets(d.targets)
    required = list(getattr(d, "required", []))
    check_required(required)
    keys = [k for k in REGISTRY if d.targets[k] > 0 and (sources is None or k in sources)]
    targets = {k: d.targets[k] for k in keys}
    funnel: dict[str, dict[str, int]] = {k: {} for k in keys}
    drops: list[dict] = []
    examples: dict[str, list] = {"bad_input": [], "exact_dedup": [], "near_dedup": [], "decontaminated": []}
    fingerprints: dict[str, str] = {}
    outcomes: dict[str, dict] = {}

    if loader is load_source_traced:  # before any download: a required source that cannot be had stops here
        missing = [r for r in source_plan(d) if r["key"] in keys and r["required"] and r["status"] == "missing"]
        if missing:
            raise RequiredSourceError("required source(s) cannot be had here (data.required): " + " | ".join(
                f"{r['key']}: {r['how']}" for r in missing))

    # 1-2. load, filter and adapt each source
    kept_parts = []
    for key in keys:
        spec = REGISTRY[key]
        try:
            got = loader(spec, d.source, d.local_dir)
        except Exception as e:  # recorded per source; stops the run only for a required source (below)
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            outcomes[key] = {"status": "failed", "rows": 0, "origin": "", "fallback": "",
                             "reason": f"{type(e).__name__}: {reason}"}
            funnel[key] = {"raw": 0, "filtered": 0, "valid": 0}
            continue
        loaded = got if isinstance(got, Loaded) else Loaded(got, "custom loader")
        raw = loaded.dataset
        outcomes[key] = {"status": "loaded (fallback)" if loaded.fallback else "loaded", "rows": len(raw),
                         "origin": loaded.origin, "fallback": loaded.fallback, "reason": "",
                         "ignored": list(loaded.ignored)}
        fingerprints[f"raw/{key}"] = raw._fingerprint
        processed = adapt_source(raw, spec, d.num_proc)
        reasons = _counts(processed, "drop_reason")
        n_filtered = sum(v for r, v in reasons.items() if r.startswith("filtered:"))
        n_bad = sum(v for r, v in reasons.items() if r.startswith("bad_input:"))
        funnel[key]["raw"] = len(raw)
        funnel[key]["filtered"] = len(raw) - n_filtered
        funnel[key]["valid"] = len(raw) - n_filtered - n_bad
        for r, v in sorted(reasons.items()):
            if r:
                step, reason = r.split(":", 1)
                drops.append({"source": key, "step": step, "reason": reason, "count": v})
        kept = processed.filter(lambda r: [x == "" for x in r], input_columns=["drop_reason"], batched=True,
                                num_proc=procs(len(processed), d.num_proc), desc=f"keep {key}")
        if n_bad and len(examples["bad_input"]) < 5:
            bad = processed.filter(lambda r: [x.startswith("bad_input:") for x in r], input_columns=["drop_reason"], batched=True)
            examples["bad_input"] += [{"id": b["id"], "reason": b["drop_reason"]} for b in bad.select(range(min(2, len(bad))))]
        kept_parts.append(kept.remove_columns(["drop_reason"]))

    failed_required = [k for k in required if outcomes.get(k, {}).get("status") == "failed"]
    if failed_required:
        table = outcome_frame(outcomes, targets, {}, funnel)
        raise RequiredSourceError(
            f"required source(s) {', '.join(failed_required)} failed to load (data.required): "
            + " | ".join(f"{k}: {outcomes[k]['reason']}" for k in failed_required)
            + f"\nevery source's outcome:\n{table[['status', 'rows read', 'read from', 'note']].to_string()}")
    if not kept_parts:
        if outcomes and all(o["status"] == "failed" for o in outcomes.values()):
            raise SourceLoadError("every selected source failed to load: " + " | ".join(
                f"{k}: {o['reason']}" for k, o in outcomes.items()))
        raise ValueError("no source selected: every data.targets value is 0 (or `sources` names none); nothing to curate")
    ds = datasets.concatenate_datasets(kept_parts)
    nproc = procs(len(ds), d.num_proc)

    def step_counts(ds_now, step):
        c = _counts(ds_now, "source")
        for key in keys:
            funnel[key][step] = c.get(key, 0)

    def record_removed(ds_before, keep_mask, step, reason):
        removed_idx = np.flatnonzero(~keep_mask)
        if len(removed_idx):
            removed = ds_before.select(removed_idx)
            for key, v in sorted(_counts(removed, "source").items()):
                drops.append({"source": key, "step": step, "reason": reason, "count": v})
            examples[step] += [{"id": r["id"]} for r in removed.select(range(min(5, len(removed)))).select_columns(["id"])]

    # 3. dedup across all sources
    dd = d.dedup
    if dd.exact or dd.near:
        ds = add_dedup_columns(ds, dd.num_perm, dd.shingle_size, dd.near, nproc)
    if dd.exact:
        mask = exact_keep_mask(ds.select_columns(["exact_hash"]).to_pandas()["exact_hash"].to_numpy())
        record_removed(ds, mask, "exact_dedup", "same normalized text")
        ds = ds.select(np.flatnonzero(mask))
    step_counts(ds, "exact_dedup")
    if dd.near:
        mask = near_keep_mask(ds, dd.num_perm, dd.minhash_threshold)
        record_removed(ds, mask, "near_dedup", f"MinHash Jaccard >= {dd.minhash_threshold}")
        ds = ds.select(np.flatnonzero(mask))
    step_counts(ds, "near_dedup")
    ds = ds.remove_columns([c for c in ("exact_hash", "minhash") if c in ds.column_names])

    # 4. decontamination against every benchmark
    idx = build_index(dict(benchmarks), d.decontam.ngram, d.decontam.threshold)
    ds = add_contamination_column(ds, idx, nproc)
    flags = ds.select_columns(["source", "contaminated_by", "contaminated_question", "id"]).to_pandas()
    bad = flags[flags.contaminated_by != ""]
    decontam: dict[str, dict[str, int]] = {k: {b: 0 for b in benchmarks} for k in keys}
    for _, r in bad.iterrows():
        for b in r.contaminated_by.split(","):
            decontam[r.source][b] = decontam[r.source].get(b, 0) + 1
    for key, v in bad.source.value_counts().items():
        drops.append({"source": key, "step": "decontaminated", "reason": "benchmark question overlap", "count": int(v)})
    shown = bad.head(10)
    texts = [conversation_text(m)[:300] for m in ds.select(shown.index.to_numpy())["messages"]] if len(shown) else []
    examples["decontaminated"] = [
        {"id": r.id, "question": r.contaminated_question, "text": t} for r, t in zip(shown.itertuples(), texts)
    ]
    ds = ds.select(np.flatnonzero((flags.contaminated_by == "").to_numpy()))
    ds = ds.remove_columns(["contaminated_by", "contaminated_question"])
    step_counts(ds, "decontaminated")

    # 5. sample each source to its target
    picked, achieved = sample_indices(source_column(ds), targets, d.seed)
    ds = ds.select(picked).shuffle(seed=d.seed).flatten_indices()
    step_counts(ds, "sampled")
    fingerprints["curated"] = ds._fingerprint
    return CurationResult(ds, funnel, drops, decontam, achieved, targets, fingerprints, examples, outcomes)


def save(result: CurationResult, out_dir: Path) -> Path:
    """curated/ (datasets save_to_disk, Arrow) plus the report tables as CSV."""
    out_dir.mkdir(parents=True, exist_ok=True)
    result.dataset.save_to_disk(str(out_dir / "curated"))
    result.funnel_frame().to_csv(out_dir / "funnel.csv")
    result.drops_frame().to_csv(out_dir / "drops.csv", index=False)
    result.decontam_frame().to_csv(out_dir / "decontam.csv")
    result.mixture_frame().to_csv(out_dir / "mixture.csv")
    result.outcome_frame().to_csv(out_dir / "sources.csv")
    return out_dir / "curated"
