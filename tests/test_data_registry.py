"""The registry reproduces Table 5: counts, printed ratios, and the documented gap in the medical total."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from med42_utils.data.registry import (
    REGISTRY,
    STATED_GENERAL_TOTAL,
    STATED_GRAND_TOTAL,
    STATED_MEDICAL_TOTAL,
    table5_frame,
    table5_totals,
)
from med42_utils.params import load_params

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds" / "med42-v2-paper.txt"


def test_every_printed_ratio_is_count_over_the_stated_grand_total():
    assert STATED_GRAND_TOTAL == 1_296_471
    for s in REGISTRY.values():
        assert round(100 * s.paper_count / STATED_GRAND_TOTAL, 2) == pytest.approx(s.paper_ratio), s.key


def test_medical_rows_do_not_add_up_to_the_stated_total():
    t = table5_totals()
    med = sum(s.paper_count for s in REGISTRY.values() if s.domain == "medical")
    gen = sum(s.paper_count for s in REGISTRY.values() if s.domain == "general")
    assert t["medical_listed"] == med and t["general_listed"] == gen
    assert gen == STATED_GENERAL_TOTAL                      # the general block is consistent
    assert t["medical_gap"] == STATED_MEDICAL_TOTAL - med > 0  # the medical block is not
    assert t["medical_share_listed"] < 73.5
    df = table5_frame()
    assert (df["ratio_vs_listed_rows"] >= df["ratio_vs_stated_total"]).all()
    assert df.loc["medmcqa", "ratio_vs_listed_rows"] == round(100 * 180_462 / t["grand_listed"], 2)


def test_registry_has_18_medical_and_4_general_sources():
    domains = [s.domain for s in REGISTRY.values()]
    assert domains.count("medical") == 18 and domains.count("general") == 4


@pytest.mark.skipif(not SEEDS.is_file(), reason="paper seed text not present in this checkout")
def test_registry_matches_the_table_in_the_paper_text():
    text = SEEDS.read_text()
    for s in REGISTRY.values():
        pattern = re.escape(s.name) + r"[^\t\n]*\t([\d,]+)\t([\d.]+)"
        m = re.search(pattern, text)
        assert m, f"{s.name} not found in Table 5"
        assert int(m.group(1).replace(",", "")) == s.paper_count, s.key
        assert float(m.group(2)) == s.paper_ratio, s.key


@pytest.mark.parametrize("size", ["8b", "70b"])
def test_paper_sizes_target_the_printed_counts(size):
    targets = load_params(size).data.targets
    assert targets == {k: s.paper_count for k, s in REGISTRY.items()}


def test_tiny_targets_cover_the_registry():
    assert set(load_params("tiny").data.targets) == set(REGISTRY)


def test_every_source_documents_hub_copy_and_licence():
    for s in REGISTRY.values():
        assert s.licence, s.key
        assert s.hub_id or "local_dir" in s.note, f"{s.key}: no Hub id and no instructions for a local copy"
        assert s.required, s.key


def test_every_hub_source_records_its_evidence():
    """Each Hub id says where it was checked (a huggingface.co card/listing) and whether that verified it; a mapping
    that no published source supports says so (unresolved), and its note flags it for 01's table."""
    for s in REGISTRY.values():
        assert s.evidence.startswith(("verified:", "partly verified:", "unverified:", "unresolved.")), s.key
        if s.hub_id:
            assert f"huggingface.co/datasets/{s.hub_id}" in s.evidence or s.evidence.startswith("unverified:"), s.key
        assert (s.status == "unresolved") == s.evidence.startswith("unresolved."), s.key
        if s.status == "unresolved":
            assert s.note.startswith("UNRESOLVED"), s.key
    assert [k for k, s in REGISTRY.items() if s.status == "unresolved"] == ["opengpt"]


def test_sources_off_the_hub_are_pinned_published_files_with_evidence():
    """ACI-Bench and MTS-Dialog come from their authors' repositories, pinned to a commit; fallbacks say where."""
    off_hub = {k: s for k, s in REGISTRY.items() if s.hub_id is None}
    assert set(off_hub) == {"aci_bench", "mts_dialog"}
    for k, s in off_hub.items():
        pub = s.published
        assert re.fullmatch(r"[0-9a-f]{40}", pub.commit) and pub.files, k
        assert pub.repo_url.removeprefix("https://") in s.evidence and pub.commit[:7] in s.evidence, k
        assert pub.url(pub.files[0]).startswith(f"https://raw.githubusercontent.com/{pub.repo_url[19:]}/{pub.commit}/"), k
    for k, s in REGISTRY.items():
        for fb in s.fallbacks:
            assert s.parquet_export and fb.evidence.startswith(("verified:", "partly verified:")) and fb.where, k
