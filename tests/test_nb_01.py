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
    steps = {d["step"] for d in m["drops"]}
    assert {"filtered", "bad_input", "exact_dedup", "near_dedup", "decontaminated"} <= steps
    from datasets import load_from_disk

    ds = load_from_disk(m["curated_path"])
    assert ds.column_names == ["id", "source", "messages"] and len(ds) == m["rows"]
