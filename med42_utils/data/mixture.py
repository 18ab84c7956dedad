"""Mixture assembly: sample each source to its target count (seeded) and compare with Table 5."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .registry import REGISTRY


class TargetsError(ValueError):
    """data.targets does not name exactly the registry's sources."""


def check_targets(targets: Mapping[str, int]) -> None:
    unknown = [k for k in targets if k not in REGISTRY]
    missing = [k for k in REGISTRY if k not in targets]
    bad = [k for k, v in targets.items() if not isinstance(v, int) or v < 0]
    if unknown or missing or bad:
        parts = []
        if unknown:
            parts.append(f"unknown source(s) {', '.join(unknown)}")
        if missing:
            parts.append(f"missing source(s) {', '.join(missing)}")
        if bad:
            parts.append(f"non-negative integers needed for {', '.join(bad)}")
        raise TargetsError(
            f"data.targets: {'; '.join(parts)}. Fix the data.targets block of params/<size>.yaml; "
            f"valid keys: {', '.join(REGISTRY)} (0 leaves a source out)"
        )


def source_column(ds) -> np.ndarray:
    """The `source` column as a numpy array (respects any indices mapping)."""
    return ds.select_columns(["source"]).to_pandas()["source"].to_numpy()


def sample_indices(sources: np.ndarray, targets: Mapping[str, int], seed: int) -> tuple[np.ndarray, dict[str, int]]:
    """Row indices that take min(target, available) rows of each source, chosen at random (seeded)."""
    rng = np.random.default_rng(seed)
    picked, achieved = [], {}
    for key, target in targets.items():
        idx = np.flatnonzero(sources == key)
        if len(idx) > target:
            idx = np.sort(rng.choice(idx, size=target, replace=False))
        picked.append(idx)
        achieved[key] = int(len(idx))
    return (np.concatenate(picked) if picked else np.array([], dtype=np.int64)), achieved


def mixture_frame(targets: Mapping[str, int], achieved: Mapping[str, int]):
    """Target vs achieved counts and shares, next to Table 5's printed count and ratio."""
    import pandas as pd

    rows = []
    tot_t, tot_a = sum(targets.values()) or 1, sum(achieved.values()) or 1
    for key, spec in REGISTRY.items():
        t, a = targets.get(key, 0), achieved.get(key, 0)
        rows.append({
            "key": key, "domain": spec.domain, "paper_count": spec.paper_count, "paper_ratio": spec.paper_ratio,
            "target": t, "achieved": a, "shortfall": t - a,
            "target_ratio": round(100 * t / tot_t, 2), "achieved_ratio": round(100 * a / tot_a, 2),
        })
    return pd.DataFrame(rows).set_index("key")


def domain_shares(frame) -> dict[str, float]:
    """Medical vs general share (%) of the achieved mixture."""
    tot = frame["achieved"].sum() or 1
    return {d: round(100 * float(frame.loc[frame.domain == d, "achieved"].sum()) / tot, 2) for d in ("medical", "general")}
