"""01_data_curation runs at size tiny (papermill) and records its funnel in data/manifest.json."""
from __future__ import annotations

import pytest

from med42_utils.data.registry import REGISTRY
from med42_utils.manifest import read_manifest


@pytest.mark.slow
def test_01_data_curation(notebook_run):
    _, run_dir = notebook_run
    m = read_manifest(run_dir / "data")
    assert m["stage"] == "01_data_curation" and m["size"] == "tiny"
    assert set(m["funnel"]) == set(REGISTRY)
    assert m["rows"] == sum(m["achieved"].values()) > 0
    assert set(m["decontamination"]["questions_per_benchmark"]) >= {"medqa", "medmcqa", "pubmedqa"}
    removed = sum(sum(v.values()) for v in m["decontamination"]["removed_per_source_and_benchmark"].values())
    assert removed >= 2  # the bundled samples plant MedQA and MedMCQA leaks
    # every source's outcome, one table (sources.csv) and in the manifest
    assert set(m["sources"]) == set(REGISTRY) and all(o["status"] == "loaded" for o in m["sources"].values())
    assert all(o["origin"] == "bundled sample" and o["rows"] > 0 for o in m["sources"].values())
    import pandas as pd

    table = pd.read_csv(run_dir / "data" / "sources.csv", index_col="key")
    assert list(table.index) == list(REGISTRY) and (table["kept"] == pd.Series(m["achieved"])).all()
    steps = {d["step"] for d in m["drops"]}
    assert {"filtered", "bad_input", "exact_dedup", "near_dedup", "decontaminated"} <= steps
    from datasets import load_from_disk

    ds = load_from_disk(m["curated_path"])
    assert ds.column_names == ["id", "source", "messages"] and len(ds) == m["rows"]
