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


@pytest.mark.slow
def test_nb_02_equivalence_shows_context_on_a_trained_model(notebook_run):
    """Untrained, concatenation barely moves a sample's loss; after brief training it does; boundary-aware never."""
    import nbformat

    _, run = notebook_run
    eq = json.loads((run / "packing" / "stats.json").read_text())["equivalence"]
    shift = {w: max(abs(r["concatenated"] - r["alone"]) for r in eq[w]["samples"]) for w in ("untrained", "trained")}
    assert shift["untrained"] < 0.01 and shift["trained"] > 0.05, shift
    for w in ("untrained", "trained"):
        assert all(abs(r["boundary_aware"] - r["alone"]) < 1e-4 for r in eq[w]["samples"])
    first = eq["trained"]["samples"][0]
    assert first["concatenated"] == pytest.approx(first["alone"], abs=1e-4)  # nothing precedes the first sample
    assert len(eq["trained"]["diff_concatenated"]) == len(eq["chunk"]["input_ids"]) == sum(eq["seq_lengths"])
    cells = {c.get("id"): c for c in nbformat.read(run / "02_packing.ipynb", as_version=4).cells}
    assert not any(o.output_type == "error" for o in cells["chunk-picture"].outputs)
    table = "".join(o.get("data", {}).get("text/plain", "") for o in cells["cell-08"].outputs)
    assert "chunks" in table and ".000000" not in table, table  # counts print as integers
