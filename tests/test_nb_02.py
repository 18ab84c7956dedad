"""02_packing in the all-notebook smoke run: labels, both strategies, equivalence, stats on disk."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_packing_manifest_and_artifacts(notebook_run):
    from datasets import load_from_disk

    _, run = notebook_run
    d = run / "packing"
    m = json.loads((d / "manifest.json").read_text())
    assert m["stage"] == "02_packing" and m["size"] == "tiny"
    assert m["samples"] > 0 and 0 < m["label_tokens"] < m["tokens"]
    assert set(m["chunks"]) == {"wrapped", "bfd"} and all(n > 0 for n in m["chunks"].values())
    assert 0 < m["efficiency"]["bfd"] <= 1 and 0 < m["efficiency"]["wrapped"] <= 1
    for mode in ("position_ids", "block_mask"):
        eq = m["equivalence"][mode]
        assert eq["max_abs_diff_boundary_aware"] < 1e-4 < eq["max_abs_diff_concatenated"]
    tok = load_from_disk(str(d / "tokenized"))
    assert len(tok) == m["samples"] and sum(tok["length"]) == m["tokens"]
    bfd = load_from_disk(str(d / "packed_bfd"))
    assert len(bfd) == m["chunks"]["bfd"] and "seq_lengths" in bfd.column_names
    stats = json.loads((d / "stats.json").read_text())
    assert sum(v["samples"] for v in stats["tokens_per_source"].values()) == m["samples"]
    assert (run / "02_packing.ipynb").is_file()
